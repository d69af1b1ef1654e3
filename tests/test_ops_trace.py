"""Tracing (pgkeel.ops._trace): OpenTelemetry spans for every query, transaction, retry, COPY,
stream and pipeline, on both faces, recorded by the SDK's in-memory exporter; nothing recorded
(and nothing imported) when no tracer provider is configured; no parameter value or password in
any span."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from opentelemetry import trace
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import pgkeel
from pgkeel.ops import _trace

pytest_plugins = ["fix_otel"]

SECRET = "canary-7f3a9c-secret"
SSL_PASSWORD = "sslpw-canary-51e0d2"


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


@pytest.fixture
def db(pg_url: str) -> Iterator[pgkeel.Database]:
    with pgkeel.Database(pg_url, min_size=1, max_size=4) as database:
        database.execute("CREATE TABLE item (id int PRIMARY KEY, name text)")
        yield database


def test_query_span_follows_the_database_conventions(db: pgkeel.Database, spans: Any) -> None:
    """A fetch is one CLIENT span named by the server's command tag, with the system, database,
    server, parameterised text and row count, and no parameter value."""
    spans.clear()
    db.execute_many("INSERT INTO item VALUES (%s, %s)", [(1, "a"), (2, "b")])
    rows = db.fetch_all("SELECT * FROM item WHERE id > %s", (0,))
    assert len(rows) == 2
    info = conninfo_to_dict(db.config.conninfo)
    insert, select = spans.all()
    assert insert.name == f"INSERT {info['dbname']}"
    assert select.name == f"SELECT {info['dbname']}"
    assert select.kind is trace.SpanKind.CLIENT
    assert _attrs(select) == {
        "db.system.name": "postgresql",
        "db.namespace": info["dbname"],
        "server.address": info["host"],
        "server.port": int(info["port"]),
        "db.query.text": "SELECT * FROM item WHERE id > %s",
        "db.operation.name": "SELECT",
        "db.response.returned_rows": 2,
    }
    assert _attrs(insert)["pgkeel.rows_affected"] == 2
    assert select.status.status_code is trace.StatusCode.UNSET


def test_every_query_method_has_its_span(db: pgkeel.Database, spans: Any) -> None:
    """execute, execute_many, fetch_one, fetch_all and fetch_val each give exactly one span,
    with the operation the server ran (multi-word tags such as CREATE INDEX kept whole)."""
    spans.clear()
    db.execute("CREATE INDEX item_name ON item (name)")
    db.execute_many("INSERT INTO item VALUES (%s, %s)", [(1, "a")])
    db.execute("UPDATE item SET name = %s WHERE id = %s", ("b", 1))
    assert db.fetch_one("SELECT name FROM item WHERE id = %s", (1,)) == {"name": "b"}
    assert db.fetch_one("SELECT name FROM item WHERE id = %s", (9,)) is None
    assert db.fetch_val("SELECT count(*) FROM item") == 1
    db.execute("DELETE FROM item")
    got = [
        (_attrs(s)["db.operation.name"], _attrs(s).get("db.response.returned_rows"))
        for s in spans.all()
    ]
    assert got == [
        ("CREATE INDEX", None),
        ("INSERT", None),
        ("UPDATE", None),
        ("SELECT", 1),
        ("SELECT", 0),
        ("SELECT", 1),
        ("DELETE", None),
    ]
    assert [_attrs(s).get("pgkeel.rows_affected") for s in spans.all()][1:3] == [1, 1]


def test_failed_query_records_the_sqlstate_not_the_message(db: pgkeel.Database, spans: Any) -> None:
    """A failing query's span has error.type and db.response.status_code set to the SQLSTATE
    and status ERROR whose description is that code, not the message (which quotes the value)."""
    spans.clear()
    with pytest.raises(psycopg.errors.InvalidTextRepresentation) as info:
        db.fetch_one("SELECT %s::int", (SECRET,))
    assert SECRET in str(info.value)  # the check can fail: the message does quote the value
    (span,) = spans.all()
    assert _attrs(span)["error.type"] == "22P02"
    assert _attrs(span)["db.response.status_code"] == "22P02"
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.status.description == "22P02"
    assert not span.events  # no exception event: its message would carry the value


def test_pool_timeout_span_names_the_exception_class(pg_url: str, spans: Any) -> None:
    """An error without a SQLSTATE (no connection free in time) gives the exception's
    qualified class name as error.type, and the span covers the wait."""
    with pgkeel.Database(pg_url, min_size=1, max_size=1, timeout=1.5) as db, db.connection():
        spans.clear()
        with pytest.raises(psycopg.OperationalError):
            db.fetch_one("SELECT 1")
    (span,) = spans.all()
    assert _attrs(span)["error.type"] == "psycopg_pool.PoolTimeout"
    assert (span.end_time - span.start_time) / 1e9 >= 1.5


def test_transaction_span_is_the_parent_of_its_queries(db: pgkeel.Database, spans: Any) -> None:
    """transaction() is one span; the queries inside are its children, under the caller's
    span, and a block that raises marks the transaction span as failed."""
    tracer = trace.get_tracer("test")
    spans.clear()
    with tracer.start_as_current_span("request") as request, db.transaction() as tx:
        tx.execute("INSERT INTO item VALUES (%s, %s)", (1, "a"))
        tx.fetch_val("SELECT count(*) FROM item")
    insert, count, txn, _ = spans.all()
    assert txn.name.startswith("transaction ")
    assert txn.parent.span_id == request.get_span_context().span_id
    assert insert.parent.span_id == txn.context.span_id
    assert count.parent.span_id == txn.context.span_id
    spans.clear()
    with pytest.raises(ZeroDivisionError), db.transaction():
        _ = 1 / 0
    (failed,) = spans.all()
    assert _attrs(failed)["error.type"] == "builtins.ZeroDivisionError"
    assert failed.status.status_code is trace.StatusCode.ERROR


def test_run_transaction_retries_are_events_on_its_span(db: pgkeel.Database, spans: Any) -> None:
    """Each retry of run_transaction (a real 40001 from the server) is a `retry` event on the
    run_transaction span, with the attempt and the SQLSTATE; each attempt is a child span."""
    attempts = []

    def work(tx: pgkeel.Transaction) -> int:
        attempts.append(1)
        if len(attempts) < 3:
            tx.execute(
                "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure';"
                " END $$"
            )
        return tx.execute("INSERT INTO item VALUES (%s, %s)", (len(attempts), "x"))

    spans.clear()
    assert db.run_transaction(work) == 1
    (run,) = [s for s in spans.all() if s.name.startswith("run_transaction")]
    attempts_spans = [s for s in spans.all() if s.name.startswith("transaction")]
    assert [e.name for e in run.events] == ["retry", "retry"]
    assert [e.attributes["pgkeel.attempt"] for e in run.events] == [1, 2]
    assert {e.attributes["error.type"] for e in run.events} == {"40001"}
    assert len(attempts_spans) == 3
    assert all(s.parent.span_id == run.context.span_id for s in attempts_spans)
    assert [_attrs(s).get("error.type") for s in attempts_spans] == ["40001", "40001", None]
    assert run.status.status_code is trace.StatusCode.UNSET


def test_copy_upsert_stream_and_pipeline_spans(
    db: pgkeel.Database, spans: Any, tmp_path: Path
) -> None:
    """COPY in/out and upsert name their table (db.collection.name) and row count; a stream
    records its query and the rows read; a pipeline is one BATCH span with its size."""
    spans.clear()
    assert db.copy_in("item", [(1, "a"), (2, "b")]) == 2
    assert db.upsert(("public", "item"), [(2, "B"), (3, "c")], key="id") == 2
    assert db.copy_out(("public", "item"), tmp_path / "out.csv") == 3
    assert db.copy_out("SELECT * FROM item WHERE id < 3", tmp_path / "out2.csv") == 2
    assert len(list(db.stream("SELECT * FROM item WHERE id > %s", (0,), batch_size=2))) == 3
    with db.pipeline() as p:
        p.execute("UPDATE item SET name = 'z' WHERE id = 1")
        p.execute("UPDATE item SET name = 'y' WHERE id = 2")
    top = [s for s in spans.all() if not s.name.startswith("transaction")]
    summary = [
        (
            s.name,
            _attrs(s).get("db.collection.name"),
            _attrs(s).get("db.query.text"),
            _attrs(s).get("pgkeel.rows_affected", _attrs(s).get("db.response.returned_rows")),
        )
        for s in top
    ]
    dbname = db.config.conninfo and conninfo_to_dict(db.config.conninfo)["dbname"]
    assert summary == [
        ("COPY item", "item", None, 2),
        ("upsert public.item", "public.item", None, 2),
        ("COPY public.item", "public.item", None, 3),
        (f"COPY {dbname}", None, "SELECT * FROM item WHERE id < 3", 2),
        (f"stream {dbname}", None, "SELECT * FROM item WHERE id > %s", 3),
        (f"BATCH {dbname}", None, None, None),
    ]
    assert _attrs(top[-1])["db.operation.batch.size"] == 2


def test_composed_query_text_hides_literals(db: pgkeel.Database, spans: Any) -> None:
    """A psycopg.sql composition is recorded with its identifiers and its literals as `?`."""
    spans.clear()
    query = sql.SQL("SELECT {} FROM {} WHERE name = {} AND id = %s").format(
        sql.Identifier("id"), sql.Identifier("public", "item"), sql.Literal(SECRET)
    )
    db.fetch_all(query, (1,))
    (span,) = spans.all()
    assert (
        _attrs(span)["db.query.text"]
        == 'SELECT "id" FROM "public"."item" WHERE name = ? AND id = %s'
    )


def test_async_face_spans(pg_url: str, spans: Any) -> None:
    """The asyncio face traces the same way: query spans under the transaction span, retry
    events on run_transaction's, and its methods stay coroutine functions."""

    async def main() -> None:
        async with pgkeel.AsyncDatabase(pg_url, min_size=1, max_size=2) as db:
            await db.execute("CREATE TABLE t (id int)")
            spans.clear()
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO t VALUES (%s)", (1,))
            tries = []

            async def work(tx: pgkeel.AsyncTransaction) -> Any:
                tries.append(1)
                if len(tries) == 1:
                    await tx.execute(
                        "DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40P01'; END $$"
                    )
                return await tx.fetch_val("SELECT count(*) FROM t")

            assert await db.run_transaction(work) == 1
            rows = [r async for r in db.stream("SELECT * FROM t")]
            assert rows == [{"id": 1}]

    asyncio.run(main())
    names = [s.name.split()[0] for s in spans.all()]
    dbname = conninfo_to_dict(pg_url)["dbname"]
    assert names == [
        "INSERT",
        "transaction",
        dbname,  # the failed DO: no command tag came back to name the operation
        "transaction",
        "SELECT",
        "transaction",
        "run_transaction",
        "transaction",
        "stream",
    ]
    insert, txn = spans.all()[:2]
    assert insert.parent.span_id == txn.context.span_id
    (run,) = [s for s in spans.all() if s.name.startswith("run_transaction")]
    assert [e.attributes["error.type"] for e in run.events] == ["40P01"]


def test_no_parameter_value_or_password_in_any_span_or_log(
    pg_url: str, spans: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Canary: a secret parameter value (in every method, in errors, in a literal) and the
    password never appear in any span attribute, event, status or name, nor in any log record."""
    password = conninfo_to_dict(pg_url).get("password")
    assert password  # the check can fail: the test server's URL carries a real password
    url = make_conninfo(pg_url, sslpassword=SSL_PASSWORD)
    caplog.set_level(logging.DEBUG)
    spans.clear()
    with pgkeel.Database(url, min_size=1, max_size=2, slow_query_ms=0) as db:
        db.execute("CREATE TABLE s (id int PRIMARY KEY, v text)")
        db.execute("INSERT INTO s VALUES (%s, %s)", (1, SECRET))
        db.execute_many("INSERT INTO s VALUES (%s, %s)", [(2, SECRET)])
        db.fetch_one("SELECT * FROM s WHERE v = %s", (SECRET,))
        db.fetch_all("SELECT * FROM s WHERE v = %(v)s", {"v": SECRET})
        db.fetch_val(sql.SQL("SELECT {}").format(sql.Literal(SECRET)))
        with pytest.raises(psycopg.Error):
            db.fetch_one("SELECT %s::int", (SECRET,))
        with pytest.raises(psycopg.Error):
            db.execute("INSERT INTO s VALUES (%s, %s)", (SECRET, "x"))
        db.copy_in("s", [(3, SECRET)])
        db.upsert("s", [(4, SECRET)], key="id")
        list(db.stream("SELECT * FROM s WHERE v = %s", (SECRET,)))
        with db.pipeline() as p:
            p.execute("UPDATE s SET v = %s", (SECRET,))
        db.run_transaction(lambda tx: tx.execute("UPDATE s SET v = %s", (SECRET,)))
    assert len(spans.all()) >= 12
    assert sum(r.name == "pgkeel.query" for r in caplog.records) >= 6  # the slow log ran too
    dump = []
    for s in spans.all():
        dump.append(s.to_json())
    dump += [r.getMessage() + repr(r.__dict__) for r in caplog.records]
    text = "\n".join(dump)
    assert "SELECT * FROM s WHERE v = %s" in text  # the check can fail: spans and logs are there
    assert SECRET not in text
    assert str(password) not in text
    assert SSL_PASSWORD not in text


def test_nothing_traced_without_a_tracer_provider(db: pgkeel.Database) -> None:
    """With the API's default (proxy) provider or a no-op provider, pgkeel creates no span and
    its hook says off."""
    assert _trace._tracer() is None
    from fix_otel import _reset_global_provider

    _reset_global_provider()
    try:
        trace.set_tracer_provider(trace.NoOpTracerProvider())
        assert _trace._tracer() is None
        assert db.fetch_val("SELECT 1") == 1
    finally:
        _reset_global_provider()


def test_import_does_not_load_opentelemetry() -> None:
    """import pgkeel, and a query run without tracing configured, never import opentelemetry."""
    code = (
        "import sys, pgkeel\n"
        "from pgkeel.ops import _trace\n"
        "assert _trace._tracer() is None\n"
        "print('opentelemetry' in {m.partition('.')[0] for m in sys.modules})\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_query_text_rendering() -> None:
    """query_text: strings as given, compositions with literals as `?`, other objects None."""
    assert _trace.query_text("SELECT %s") == "SELECT %s"
    composed = sql.SQL("SELECT {}, {}, {}").format(
        sql.Literal("x"), sql.Placeholder("p"), sql.Identifier("a b")
    )
    assert _trace.query_text(composed) == 'SELECT ?, %(p)s, "a b"'
    assert _trace.query_text(sql.SQL("SELECT 1")) == "SELECT 1"
    assert _trace.query_text(42) is None
    assert _trace._operation("INSERT 0 3") == "INSERT"
    assert _trace._operation("CREATE TABLE") == "CREATE TABLE"
    assert _trace._operation("") is None


def test_stream_span_does_not_leak_into_the_callers_context(
    db: pgkeel.Database, spans: Any
) -> None:
    """A stream's spans (its own, and its transaction's under it) are never the caller's
    current span between two batches: a query run while iterating is not their child."""
    db.copy_in("item", [(i, "x") for i in range(10)])
    spans.clear()
    seen = []
    for _ in db.stream("SELECT * FROM item", batch_size=3):
        seen.append(trace.get_current_span().get_span_context().is_valid)
        db.fetch_val("SELECT 1")
    assert seen == [False] * 10
    (stream,) = [s for s in spans.all() if s.name.startswith("stream")]
    (txn,) = [s for s in spans.all() if s.name.startswith("transaction")]
    queries = [s for s in spans.all() if s.name.startswith("SELECT")]
    assert len(queries) == 10
    assert txn.parent.span_id == stream.context.span_id
    assert all(q.parent is None for q in queries)
    assert _attrs(stream)["db.response.returned_rows"] == 10


def test_async_stream_span_does_not_leak(pg_url: str, spans: Any) -> None:
    """The same for the asyncio face's stream."""

    async def main() -> list[bool]:
        async with pgkeel.AsyncDatabase(pg_url, min_size=1, max_size=2) as db:
            seen = []
            async for _ in db.stream("SELECT g FROM generate_series(1, 4) g", batch_size=2):
                seen.append(trace.get_current_span().get_span_context().is_valid)
                await db.fetch_val("SELECT 1")
            return seen

    assert asyncio.run(main()) == [False] * 4
    (stream,) = [s for s in spans.all() if s.name.startswith("stream")]
    (txn,) = [s for s in spans.all() if s.name.startswith("transaction")]
    assert txn.parent.span_id == stream.context.span_id
    assert all(s.parent is None for s in spans.all() if s.name.startswith("SELECT"))
