"""Prometheus metrics for the web integrations (needs ``prometheus-client``).

Pool figures are read from ``Database.stats()`` at scrape time by a collector; request and
checkout timings are histograms. Every label takes a bounded set of values: the route's
template (``/products/{product_id}``, never the path a client sent), the method, and the status
class; never query text or parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: What a route label becomes when no route matched (a 404): a client cannot grow the label set.
UNMATCHED = "<unmatched>"

_GAUGES = {
    "size": "Connections the pool holds now",
    "available": "Idle connections in the pool",
    "waiting": "Clients waiting for a connection now",
    "max_size": "The pool's maximum size",
}
_COUNTERS = {
    "checkouts": "Connections handed out by the pool",
    "errors": "Queries or transactions that failed",
    "retries": "Transactions run again after a serialization failure or deadlock",
    "connection_errors": "Failed attempts to open a connection",
    "connections_lost": "Connections found broken and discarded",
    "timeouts": "Checkouts that gave up waiting for a connection",
}


class _PoolCollector(Collector):
    def __init__(self, stats: Callable[[], dict[str, Any]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        try:
            stats = self._stats()
        except Exception:
            # A closed or not-yet-open pool has no figures; the scrape still answers.
            return
        for key, doc in _GAUGES.items():
            yield GaugeMetricFamily(f"pgkeel_pool_{key}", doc, value=stats.get(key, 0))
        yield GaugeMetricFamily(
            "pgkeel_pool_in_use",
            "Connections checked out now",
            value=stats.get("size", 0) - stats.get("available", 0),
        )
        for key, doc in _COUNTERS.items():
            yield CounterMetricFamily(f"pgkeel_pool_{key}", doc, value=stats.get(key, 0))
        yield CounterMetricFamily(
            "pgkeel_pool_wait_seconds",
            "Total time clients waited for a connection",
            value=stats.get("wait_ms_total", 0.0) / 1000,
        )


class Metrics:
    """A registry of its own (so two apps in one process never collide) with pgkeel's
    metrics in it."""

    def __init__(self, stats: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_PoolCollector(stats))
        self.requests = Counter(
            "pgkeel_http_requests",
            "HTTP requests answered, by route template, method and status class",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "pgkeel_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            ["route", "method"],
            registry=self.registry,
        )
        self.checkout_wait = Histogram(
            "pgkeel_pool_checkout_wait_seconds",
            "Time a request's transaction waited for a pooled connection",
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.db_errors = Counter(
            "pgkeel_http_database_errors",
            "Database errors answered with an HTTP error, by status",
            ["status"],
            registry=self.registry,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in _METHODS else "OTHER"
        self.requests.labels(route, method, f"{status // 100}xx").inc()
        self.duration.labels(route, method).observe(seconds)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
