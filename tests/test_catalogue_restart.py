"""The catalogue service while its PostgreSQL server restarts under a steady request loop."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from fix_catalogue import ROOT  # noqa: F401  (puts the repository root on sys.path)
from fix_http import serve_asgi
from pgkeel import embedded

pytest.importorskip("fastapi")

#: The pool's checkout timeout for this test; a request during the outage must answer within
#: it plus this generous margin (a loaded 2-core box), never hang.
POOL_TIMEOUT = 1.0
MARGIN = 10.0


@pytest.mark.slow
@pytest.mark.fault
def test_requests_fail_fast_during_outage_and_recover(cluster_dir: Path) -> None:
    """While the server is down every request answers 503 (none hangs past the pool timeout,
    none is a 500); once it is back, requests succeed again within 5 s, on their own."""
    from examples.catalogue.app import create_app

    data = cluster_dir / "data"
    server = embedded.start(data)
    port, url = server.port, server.url
    app = create_app(url, min_size=2, max_size=4, timeout=POOL_TIMEOUT, size_check="off")
    log: list[tuple[float, float, int]] = []  # (sent, answered, status)
    stop = threading.Event()
    try:
        with serve_asgi(app) as c:
            made = c.post(
                "/api/products", {"sku": "R-1", "name": "r", "category": "c", "price": "1"}
            )
            path = f"/api/products/{made.json()['id']}"

            def loop() -> None:
                deadline = time.monotonic() + 120  # bounded, whatever happens
                while not stop.is_set() and time.monotonic() < deadline:
                    sent = time.monotonic()
                    status = c.get(path).status
                    log.append((sent, time.monotonic(), status))
                    time.sleep(0.02)

            worker = threading.Thread(target=loop)
            worker.start()
            try:
                _wait_for(lambda: sum(s == 200 for *_, s in log) >= 5)
                server.stop()
                down = time.monotonic()
                _wait_for(lambda: sum(s != 200 and t0 > down for t0, _, s in log) >= 5)
                server = embedded.start(data, port=port)
                back = time.monotonic()
                _wait_for(lambda: any(s == 200 and t0 > back for t0, _, s in log), 60)
            finally:
                stop.set()
                worker.join(60)
    finally:
        server.stop()

    # Requests sent and answered while the server was down (one in flight when it came back
    # may rightly succeed: its checkout was still waiting).
    outage = [(t0, t1, s) for t0, t1, s in log if down < t0 and t1 < back]
    assert outage, "no request ran during the outage"
    assert {s for *_, s in outage} == {503}
    assert max(t1 - t0 for t0, t1, _ in outage) < POOL_TIMEOUT + MARGIN
    first_ok = min(t1 for t0, t1, s in log if s == 200 and t0 > back)
    print(
        f"outage: {len(outage)} requests, slowest {max(t1 - t0 for t0, t1, _ in outage):.2f} s;"
        f" first 200 {first_ok - back:.2f} s after the server was back"
    )
    assert first_ok - back < 5.0, f"recovered {first_ok - back:.1f} s after the server was back"
    # Nothing but 200 and 503 at any time: no request ever saw a 500.
    assert {s for *_, s in log} <= {200, 503}


def _wait_for(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)
