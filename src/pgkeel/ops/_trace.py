"""Tracing with OpenTelemetry (``pgkeel[otel]``) and the slow query log, in one hook.

Every query method, transaction, ``run_transaction``, COPY, upsert, stream and pipeline goes
through :func:`traced` (a method decorator) or :func:`block` (a context manager). When the
application has configured no tracer provider and ``slow_query_ms`` is unset, both cost a
dictionary lookup and an attribute read per call: ``opentelemetry`` is never imported by pgkeel,
only used when the application imported it (``sys.modules``) and set a real provider
(``trace.set_tracer_provider``; the API's proxy and no-op providers count as none).

Spans follow OpenTelemetry's database semantic conventions: kind CLIENT, ``db.system.name``
``postgresql``, ``db.namespace`` (the database name), ``server.address`` / ``server.port`` (from the
configuration), ``db.query.text`` (the parameterised text only: ``psycopg.sql.Literal`` parts
become ``?``), ``db.operation.name`` from the server's command tag (never parsed from the SQL),
``db.collection.name`` where the API names a table (COPY, upsert), ``db.response.status_code``
(SQLSTATE) and ``error.type`` on failure, retries as ``retry`` events on the ``run_transaction``
span. Parameter values, error messages (which may quote a value) and the connection string are
never recorded; the span status description is the error type only.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar
from typing import Any, Literal, TypeVar, cast

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from pgkeel.config import Config

__all__ = ["block", "detached", "detached_async", "note", "query_text", "retried", "traced"]

logger = logging.getLogger("pgkeel.query")
_perf = time.perf_counter
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
Rows = Literal["affected", "returned", "one"]

#: The traced query method running in this context (for :func:`note`).
_CURRENT: ContextVar[_Call | None] = ContextVar("pgkeel_trace_call", default=None)
#: Set while a generator enters a block (see :func:`detached`): the spans opened then are not
#: made current, and are children of this call's span.
_DETACHED: ContextVar[_Call | _Off | None] = ContextVar("pgkeel_trace_detached", default=None)


_API = "opentelemetry.trace"
_modules_get = sys.modules.get
_UNKNOWN = object()


class _Otel:
    """The application's tracer provider as last read, and pgkeel's tracer from it (None when
    that provider is none, the API's proxy, or its no-op provider)."""

    provider: Any = None
    tracer: Any = None
    env_checked = False


def _tracer() -> Any:
    """pgkeel's tracer if the application configured a real tracer provider, else None."""
    api = _modules_get(_API)
    if api is None:
        return None
    # The API's global, read directly: get_tracer_provider() looks up an environment variable
    # on every call while none is set, which would cost more than the query's own overhead.
    provider = getattr(api, "_TRACER_PROVIDER", _UNKNOWN)
    if provider is _Otel.provider:
        return _Otel.tracer
    return _new_provider(api, provider)


def _new_provider(api: Any, provider: Any) -> Any:
    seen = provider
    if provider is _UNKNOWN or (provider is None and not _Otel.env_checked):
        # OTEL_PYTHON_TRACER_PROVIDER is loaded on the first get_tracer_provider() call.
        _Otel.env_checked = True
        provider = api.get_tracer_provider()
        seen = getattr(api, "_TRACER_PROVIDER", _UNKNOWN)
    tracer = None
    if provider is not None and not isinstance(
        provider, api.ProxyTracerProvider | api.NoOpTracerProvider
    ):
        from pgkeel import __version__

        tracer = provider.get_tracer("pgkeel", __version__)
    # The tracer first: a thread that sees the new provider must not take the old tracer.
    _Otel.tracer = tracer
    _Otel.provider = seen
    return tracer


#: Per owner class: does it reach its Config through a Database (``_db``, a Transaction)?
_VIA_DB: dict[type, bool] = {}


def _config(owner: Any) -> Any:
    """The Config of a Database, or of a Transaction's Database (None for a bare one)."""
    cls = type(owner)
    via_db = _VIA_DB.get(cls)
    if via_db is None:
        via_db = _VIA_DB[cls] = hasattr(cls, "_db")
    if via_db:
        return getattr(owner._db, "config", None)
    return getattr(owner, "config", None)


def _slow_ms(owner: Any) -> float | None:
    cfg = _config(owner)
    if cfg is None:
        return None
    ms: float | None = cfg.slow_query_ms
    return ms


@functools.lru_cache(maxsize=64)
def _server_attributes(conninfo: str) -> dict[str, Any]:
    """The attributes every span of one configuration shares (never the password)."""
    info = conninfo_to_dict(conninfo)
    attrs: dict[str, Any] = {"db.system.name": "postgresql"}
    if info.get("dbname"):
        attrs["db.namespace"] = str(info["dbname"])
    host = str(info.get("host") or info.get("hostaddr") or "")
    if host and "," not in host:  # several hosts: which one answered is not known here
        attrs["server.address"] = host
        port = str(info.get("port") or "5432")
        if port.isdigit():
            attrs["server.port"] = int(port)
    return attrs


def query_text(query: Any) -> str | None:
    """The parameterised text of a query: a ``psycopg.sql`` composition rendered with its
    literals as ``?`` (a literal may be a secret), a t-string with ``?`` for each value."""
    if isinstance(query, str):
        return query
    if isinstance(query, sql.Composable):
        return _render(query)
    strings = getattr(query, "strings", None)  # string.templatelib.Template (Python 3.14)
    if isinstance(strings, tuple) and all(isinstance(s, str) for s in strings):
        return "?".join(strings)
    return None


def _render(part: sql.Composable) -> str:
    if isinstance(part, sql.Composed):
        return "".join(_render(p) for p in part)
    if isinstance(part, sql.SQL | sql.Identifier | sql.Placeholder):
        return part.as_string(None)
    return "?"


def _table_name(table: Any) -> str | None:
    if isinstance(table, str):
        return table
    if isinstance(table, tuple) and all(isinstance(p, str) for p in table):
        return ".".join(table)
    return None


def _operation(tag: str | None) -> str | None:
    """The operation in a command tag: ``INSERT 0 3`` -> ``INSERT``, ``CREATE TABLE``."""
    if not tag:
        return None
    words = tag.split()
    while words and words[-1].isdigit():
        words.pop()
    return " ".join(words) or None


def _error_type(exc: BaseException) -> tuple[str, str | None]:
    """``error.type`` and ``db.response.status_code`` for an exception."""
    sqlstate = getattr(exc, "sqlstate", None) if isinstance(exc, psycopg.Error) else None
    if sqlstate:
        return sqlstate, sqlstate
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}", None


class _Call:
    """One traced call: its span (if a tracer is configured) and its slow-log clock."""

    __slots__ = ("_name", "_rows", "_rows_key", "_slow", "_span", "_t0", "_text", "_token")

    def __init__(
        self,
        tracer: Any,
        cfg: Any,
        name: str | None,
        query: Any = None,
        table: Any = None,
        *,
        slow: bool = False,
        attach: bool = True,
        rows: Rows | None = None,
    ) -> None:
        self._text = None if query is None else query_text(query)
        self._rows: int | None = None
        self._rows_key = (
            "db.response.returned_rows" if rows in ("returned", "one") else "pgkeel.rows_affected"
        )
        self._slow: float | None = cfg.slow_query_ms if slow and cfg is not None else None
        self._span: Any = None
        self._token: Any = None
        if tracer is not None:
            attrs = dict(_server_attributes(cfg.conninfo)) if cfg is not None else {}
            attrs.setdefault("db.system.name", "postgresql")
            collection = _table_name(table)
            if collection:
                attrs["db.collection.name"] = collection
            if self._text is not None:
                attrs["db.query.text"] = self._text
            if name:
                attrs["db.operation.name"] = name
            target = collection or attrs.get("db.namespace")
            self._name = target or "postgresql"
            span_name = " ".join(p for p in (name, target) if p) or "postgresql"
            api = sys.modules["opentelemetry.trace"]
            outer = _DETACHED.get()
            parent = None
            if isinstance(outer, _Call) and outer._span is not None:
                parent = api.set_span_in_context(outer._span)
            self._span = tracer.start_span(
                span_name, context=parent, kind=api.SpanKind.CLIENT, attributes=attrs
            )
            if attach and outer is None:
                from opentelemetry import context

                self._token = context.attach(api.set_span_in_context(self._span))
        self._t0 = _perf() if self._slow is not None else 0.0

    # --- what the traced code reports --------------------------------------------------------

    def tag(self, tag: str | None) -> None:
        """The server's command tag names the operation (and the span) after the fact."""
        op = _operation(tag)
        span = self._span
        if op and span is not None and span.is_recording():
            span.set_attribute("db.operation.name", op)
            span.update_name(f"{op} {self._name}" if self._name != "postgresql" else op)

    def set(self, key: str, value: Any) -> None:
        if self._span is not None:
            self._span.set_attribute(key, value)

    def add_rows(self, n: int) -> None:
        self._rows = (self._rows or 0) + n

    # --- the end -----------------------------------------------------------------------------

    def done(self, result: Any, rows: Rows | None) -> None:
        if rows == "one":
            self._rows = 0 if result is None else 1
        elif rows == "returned":
            self._rows = len(result)
        elif rows == "affected" and isinstance(result, int) and result >= 0:
            self._rows = result
        self._end(None)

    def _end(self, exc: BaseException | None) -> None:
        if exc is not None and isinstance(exc, GeneratorExit):
            exc = None  # a stream closed early: not a failure
        error = None if exc is None else _error_type(exc)
        span = self._span
        if span is not None:
            try:
                if span.is_recording():
                    if self._rows is not None:
                        span.set_attribute(self._rows_key, self._rows)
                    if error is not None:
                        api = sys.modules["opentelemetry.trace"]
                        span.set_attribute("error.type", error[0])
                        if error[1]:
                            span.set_attribute("db.response.status_code", error[1])
                        span.set_status(api.Status(api.StatusCode.ERROR, error[0]))
                span.end()
            finally:
                if self._token is not None:
                    from opentelemetry import context

                    context.detach(self._token)
        if self._slow is not None:
            self._log_slow(error)

    def _log_slow(self, error: tuple[str, str | None] | None) -> None:
        ms = (_perf() - self._t0) * 1000
        if ms < self._slow:  # type: ignore[operator]  # checked by the caller
            return
        rows = "no row count" if self._rows is None else f"{self._rows} rows"
        outcome = f"failed ({error[0]})" if error else rows
        logger.warning(
            "slow query: %.1f ms, %s: %s",
            ms,
            outcome,
            self._text,
            extra={"duration_ms": round(ms, 3), "rows": self._rows, "query": self._text},
        )

    # --- as a context manager (blocks: transactions, pipelines, streams) ---------------------

    def __enter__(self) -> _Call:
        return self

    def __exit__(self, typ: object, exc: BaseException | None, tb: object) -> None:
        self._end(exc)

    async def __aenter__(self) -> _Call:
        return self

    async def __aexit__(self, typ: object, exc: BaseException | None, tb: object) -> None:
        self._end(exc)


class _Off:
    """What :func:`block` gives when nothing is traced or logged: does nothing, cheaply."""

    __slots__ = ()

    def tag(self, tag: str | None) -> None:
        pass

    def set(self, key: str, value: Any) -> None:
        pass

    def add_rows(self, n: int) -> None:
        pass

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    async def __aenter__(self) -> _Off:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass


_OFF = _Off()


def block(
    owner: Any,
    name: str | None,
    query: Any = None,
    *,
    attach: bool = True,
    rows: Rows | None = None,
) -> _Call | _Off:
    """A span around a block (``with``/``async with``): a transaction, a pipeline, a stream.
    ``attach=False`` for a block that spans generator resumptions (a stream): its span is not
    made current, since a context attached there may be detached from another one."""
    tracer = _tracer()
    if tracer is None:
        return _OFF
    return _Call(tracer, _config(owner), name, query, attach=attach, rows=rows)


@contextlib.contextmanager
def detached(cm: contextlib.AbstractContextManager[T], parent: _Call | _Off) -> Iterator[T]:
    """Enter ``cm`` (a transaction) without making the spans it opens current, as children of
    ``parent``'s: for a generator (a stream), whose caller runs its own code, in its own
    context, between two batches."""
    with contextlib.ExitStack() as stack:
        token = _DETACHED.set(parent)
        try:
            value = stack.enter_context(cm)
        finally:
            _DETACHED.reset(token)
        yield value


@contextlib.asynccontextmanager
async def detached_async(
    cm: contextlib.AbstractAsyncContextManager[T], parent: _Call | _Off
) -> AsyncIterator[T]:
    """:func:`detached` for an async context manager."""
    async with contextlib.AsyncExitStack() as stack:
        token = _DETACHED.set(parent)
        try:
            value = await stack.enter_async_context(cm)
        finally:
            _DETACHED.reset(token)
        yield value


def note(cur: Any) -> None:
    """Hand the cursor's command tag to the traced query method running (if any)."""
    call = _CURRENT.get()
    if call is not None and call._span is not None:
        call.tag(cur.statusmessage)


def retried(exc: BaseException, attempt: int, delay: float) -> None:
    """Record a retry of ``run_transaction`` as an event on its span (the current one)."""
    if _tracer() is None:
        return
    api = sys.modules["opentelemetry.trace"]
    span = api.get_current_span()
    if span.is_recording():
        span.add_event(
            "retry",
            {
                "error.type": _error_type(exc)[0],
                "pgkeel.attempt": attempt + 1,
                "pgkeel.backoff_ms": round(delay * 1000, 3),
            },
        )


def traced(
    name: str | None = None,
    *,
    first: Literal["query", "table"] | None = "query",
    rows: Rows | None = None,
) -> Callable[[F], F]:
    """Decorate a pgkeel method (sync or async) so that each call is traced and, for the query
    methods (``name`` None: the command tag names the operation), slow-logged.

    ``first`` says what the method's first argument is (a query, a table, or neither);
    ``rows`` how the result gives a row count. When nothing is on, the method is called
    straight away.
    """
    slow = name is None
    key = "table" if first == "table" else "query"

    def start(self: Any, args: tuple[Any, ...], kwargs: dict[str, Any], tracer: Any) -> _Call:
        arg = None
        if first is not None:
            arg = args[0] if args else kwargs.get(key, kwargs.get("query_or_table"))
        if first == "table" or isinstance(arg, tuple):  # copy_out(("schema", "table"), ...)
            return _Call(tracer, _config(self), name, None, arg, slow=slow, rows=rows)
        return _Call(tracer, _config(self), name, arg, slow=slow, rows=rows)

    def wrap(fn: F) -> F:
        # The checks are inline: this runs on every query, traced or not.
        if inspect.iscoroutinefunction(fn):
            # An async def, so that the method stays a coroutine function (inspect, FastAPI).
            @functools.wraps(fn)
            async def entry_async(self: Any, *args: Any, **kwargs: Any) -> Any:
                if _modules_get(_API) is None and not Config.any_slow_query_log:
                    return await fn(self, *args, **kwargs)
                tracer = _tracer()
                if tracer is None and (
                    not slow or not Config.any_slow_query_log or _slow_ms(self) is None
                ):
                    return await fn(self, *args, **kwargs)
                call = start(self, args, kwargs, tracer)
                token = _CURRENT.set(call)
                try:
                    result = await fn(self, *args, **kwargs)
                except BaseException as exc:
                    _CURRENT.reset(token)
                    call._end(exc)
                    raise
                _CURRENT.reset(token)
                call.done(result, rows)
                return result

            return cast(F, entry_async)

        @functools.wraps(fn)
        def entry(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _modules_get(_API) is None and not Config.any_slow_query_log:
                return fn(self, *args, **kwargs)
            tracer = _tracer()
            if tracer is None and (
                not slow or not Config.any_slow_query_log or _slow_ms(self) is None
            ):
                return fn(self, *args, **kwargs)
            call = start(self, args, kwargs, tracer)
            token = _CURRENT.set(call)
            try:
                result = fn(self, *args, **kwargs)
            except BaseException as exc:
                _CURRENT.reset(token)
                call._end(exc)
                raise
            _CURRENT.reset(token)
            call.done(result, rows)
            return result

        return cast(F, entry)

    return wrap
