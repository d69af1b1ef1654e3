"""Plain LISTEN/NOTIFY (pgkeel.events.listen): round trips on both faces, transactional notify,
the 8000-byte limit, hostile names and payloads, pooled connections never left listening, and
the listener's recovery from a terminated backend, a restarted server and a silent network."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import pgkeel
from pgkeel import embedded
from pgkeel.events import RECONNECTED, Notification
from pgkeel.events.listen import listener_conninfo

pytest_plugins = ["fix_db", "fix_proxy"]

HOSTILE = ['x"; DROP TABLE victim; --', "Ünïcødé ✓", "it's", "a b", "UPPER", "1starts"]


def wait_for(listener: pgkeel.events.Listener, timeout: float = 10.0) -> object:
    """The next item that is not a timeout, failing after ``timeout``."""
    item = listener.get(timeout)
    assert item is not None, f"nothing received within {timeout} s"
    return item


def test_round_trip_sync(db: pgkeel.Database) -> None:
    """A str and a dict payload arrive on the right channels, with the sender's backend pid."""
    with db.listen("orders", "stock") as listener:
        db.notify("orders", "o-1")
        db.notify("stock", {"sku": "A", "n": 2})
        db.notify("elsewhere", "not for us")
        db.notify("orders")
        first, second, third = (wait_for(listener) for _ in range(3))
        assert listener.get(0.2) is None
    assert isinstance(first, Notification)
    assert (first.channel, first.payload) == ("orders", "o-1")
    assert (second.channel, second.payload) == ("stock", '{"sku":"A","n":2}')  # type: ignore[attr-defined]
    assert (third.channel, third.payload) == ("orders", "")  # type: ignore[attr-defined]
    assert first.pid > 0
    assert first.pid != listener.stats()["backend_pid"]
    assert listener.stats()["notifications"] == 3


def test_round_trip_async(pg_url: str) -> None:
    """The asyncio face: async with / async for, same names, same values."""

    async def main() -> list[Notification]:
        got: list[Notification] = []
        async with (
            pgkeel.AsyncDatabase(pg_url, size_check="off") as db,
            db.listen("orders") as listener,
        ):
            await db.notify("orders", ["a", 1])
            async with db.transaction() as tx:
                await tx.notify("orders", "in tx")
            async for item in listener:
                assert isinstance(item, Notification)
                got.append(item)
                if len(got) == 2:
                    break
            assert await listener.get(0.1) is None
        return got

    got = asyncio.run(main())
    assert [n.payload for n in got] == ['["a",1]', "in tx"]


def test_transactional_notify_only_on_commit(db: pgkeel.Database) -> None:
    """tx.notify is dropped when the transaction rolls back, delivered when it commits."""
    with db.listen("orders") as listener:

        def rolled_back() -> None:
            with db.transaction() as tx:
                tx.notify("orders", "rolled back")
                raise RuntimeError

        with pytest.raises(RuntimeError):
            rolled_back()
        with db.transaction() as tx:
            tx.notify("orders", "committed")
            assert listener.get(0.2) is None  # not before the commit
        item = wait_for(listener)
        assert listener.get(0.2) is None
    assert isinstance(item, Notification)
    assert item.payload == "committed"


def test_payload_limit_boundary(db: pgkeel.Database) -> None:
    """7999 bytes go through; 8000 bytes (also as multibyte text) raise PayloadTooLargeError
    naming durable topics, and nothing is sent."""
    with db.listen("big") as listener:
        db.notify("big", "x" * 7999)
        assert wait_for(listener).payload == "x" * 7999  # type: ignore[attr-defined]
        for payload in ("x" * 8000, "é" * 4000, {"k": "x" * 8000}):
            with pytest.raises(pgkeel.PayloadTooLargeError, match=r"8000 bytes.*publish"):
                db.notify("big", payload)
        assert listener.get(0.3) is None
    # The raw server agrees on where the limit is.
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("SELECT pg_notify('big', repeat('x', 8000))")


def test_hostile_channel_names(db: pgkeel.Database) -> None:
    """Quotes, SQL, unicode and spaces in channel names are quoted, never executed."""
    db.execute("CREATE TABLE victim (id int)")
    with db.listen(*HOSTILE) as listener:
        for name in HOSTILE:
            db.notify(name, name)
        got = [wait_for(listener) for _ in HOSTILE]
    assert [(n.channel, n.payload) for n in got] == [(h, h) for h in HOSTILE]  # type: ignore[attr-defined]
    assert db.fetch_val("SELECT to_regclass('victim') IS NOT NULL")


@pytest.mark.parametrize("name", ["", "a" * 64, "é" * 32, "a\x00b", None, 5])
def test_bad_channel_names_refused(db: pgkeel.Database, name: object) -> None:
    """Empty, over 63 bytes, NUL or not a str: IdentifierError, before anything is sent."""
    with pytest.raises(pgkeel.IdentifierError):
        db.notify(name, "x")  # type: ignore[arg-type]
    with pytest.raises(pgkeel.IdentifierError):
        db.listen("ok", name)  # type: ignore[arg-type]


def test_bad_payloads_refused(db: pgkeel.Database) -> None:
    """NUL and NaN get the errors a query parameter gets; other types a TypeError."""
    with db.listen("p") as listener:
        with pytest.raises(psycopg.DataError, match="NUL"):
            db.notify("p", "a\x00b")
        with pytest.raises(psycopg.DataError, match="NUL"):
            db.notify("p", {"a": "\x00"})
        with pytest.raises(pgkeel.NotStorableError, match="NaN"):
            db.notify("p", {"a": math.nan})
        with pytest.raises(TypeError):
            db.notify("p", {"a": object()})
        with pytest.raises(TypeError, match="str, or a dict or list"):
            db.notify("p", 5)
        assert listener.get(0.3) is None


def test_pool_never_left_listening(pg_url: str) -> None:
    """The listener's session is not a pooled one; after it closes, no backend listens at all."""
    with pgkeel.Database(pg_url, min_size=3, max_size=3, size_check="off") as db:
        listener = db.listen("orders", "stock")
        listener.open()
        pid = listener.stats()["backend_pid"]
        conns = [db._pool.getconn() for _ in range(3)]
        try:
            for conn in conns:
                assert conn.info.backend_pid != pid
                assert conn.execute("SELECT pg_listening_channels()").fetchall() == []
        finally:
            for conn in conns:
                db._pool.putconn(conn)
        listener.close()
        for _ in range(50):
            if not db.fetch_val("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]):
                break
            time.sleep(0.05)
        assert not db.fetch_val("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        assert listener.stats()["connected"] is False


def test_close_is_prompt_while_waiting_sync(db: pgkeel.Database) -> None:
    """close() from another thread ends a get() waiting without a timeout at once."""
    listener = db.listen("quiet")
    listener.open()
    result: list[object] = []
    waiter = threading.Thread(target=lambda: result.append(listener.get()))
    waiter.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    listener.close()
    waiter.join(5)
    assert not waiter.is_alive()
    assert time.monotonic() - t0 < 1.0
    assert result == [None]
    assert listener.stats()["connected"] is False


def test_close_is_prompt_while_waiting_async(pg_url: str) -> None:
    """close() from another task ends an `async for` waiting at once."""

    async def main() -> float:
        async with pgkeel.AsyncDatabase(pg_url, size_check="off") as db:
            listener = db.listen("quiet")
            await listener.open()

            async def consume() -> int:
                return len([item async for item in listener])

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.3)
            t0 = time.monotonic()
            await listener.close()
            assert await asyncio.wait_for(task, 5) == 0
            return time.monotonic() - t0

    assert asyncio.run(main()) < 1.0


def terminate(db: pgkeel.Database, pid: int) -> None:
    assert db.fetch_val("SELECT pg_terminate_backend(%s)", [pid])


@pytest.mark.fault
def test_terminated_backend_reconnects_sync(db: pgkeel.Database) -> None:
    """pg_terminate_backend: the listener yields RECONNECTED, LISTENs again on every channel,
    and receives what is sent afterwards."""
    with db.listen("a", "b", ping_interval=0.5, ping_timeout=1.0) as listener:
        db.notify("a", "before")
        assert wait_for(listener).payload == "before"  # type: ignore[attr-defined]
        old = listener.stats()["backend_pid"]
        terminate(db, old)
        assert wait_for(listener) is RECONNECTED
        assert listener.stats()["backend_pid"] not in (None, old)
        db.notify("a", "after-a")
        db.notify("b", "after-b")
        got = {wait_for(listener).payload for _ in range(2)}  # type: ignore[attr-defined]
        assert got == {"after-a", "after-b"}
        assert listener.stats()["reconnects"] == 1


@pytest.mark.fault
def test_terminated_backend_reconnects_async_callback(pg_url: str) -> None:
    """The asyncio face with on_reconnect: the callback runs instead of the marker."""
    calls: list[float] = []

    async def main() -> str:
        async with pgkeel.AsyncDatabase(pg_url, size_check="off") as db:

            async def again() -> None:
                calls.append(time.monotonic())

            async with db.listen("a", on_reconnect=again, ping_interval=0.5) as listener:
                pid = listener.stats()["backend_pid"]
                await db.execute("SELECT pg_terminate_backend(%s)", [pid])
                assert await listener.get(1.0) is None  # no marker; reconnects meanwhile
                for _ in range(100):
                    if calls:
                        break
                    await asyncio.sleep(0.05)
                await db.notify("a", "after")
                item = await listener.get(5.0)
                assert isinstance(item, Notification)
                return item.payload

    assert asyncio.run(main()) == "after"
    assert len(calls) == 1


@pytest.mark.fault
def test_silent_network_detected(pg_url: str, proxy: object) -> None:
    """A proxy that stops forwarding without closing: the loss is noticed within twice
    ping_interval + ping_timeout, and once the link is back the listener is too."""
    from fix_proxy import Proxy

    assert isinstance(proxy, Proxy)
    interval, timeout = 0.5, 0.5
    with (
        pgkeel.Database(proxy.url(pg_url), size_check="off", connect_timeout=2) as db,
        db.listen("a", ping_interval=interval, ping_timeout=timeout) as listener,
    ):
        db.notify("a", "x")
        assert wait_for(listener).payload == "x"  # type: ignore[attr-defined]
        proxy.stop()
        t0 = time.monotonic()
        while listener.stats()["backend_pid"] is not None and time.monotonic() - t0 < 10:
            listener.get(0.05)
        detected = time.monotonic() - t0
        assert detected <= 2 * (interval + timeout), f"noticed after {detected:.2f} s"
        proxy.start()
        assert wait_for(listener, 15) is RECONNECTED
        db.notify("a", "back")
        assert wait_for(listener).payload == "back"  # type: ignore[attr-defined]


@pytest.fixture
def own_server(cluster_dir: Path) -> Iterator[tuple[Path, embedded.EmbeddedServer]]:
    """A throwaway server of this test's own, that the test may stop and start again."""
    data = cluster_dir / "data"
    server = embedded.start(data)
    holder = [server]
    try:
        yield data, server
    finally:
        holder[0].stop()
        running = embedded.running(data)
        if running is not None:
            running.stop()


@pytest.mark.slow
@pytest.mark.fault
def test_server_restart_reconnects(own_server: tuple[Path, embedded.EmbeddedServer]) -> None:
    """The whole server restarts while a listener waits in another thread: it yields
    RECONNECTED once the server is back and receives notifications sent afterwards."""
    data, server = own_server
    items: list[object] = []
    with pgkeel.Database(server.url, size_check="off") as db, db.listen("a") as listener:
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                item = listener.get(0.2)
                if item is not None:
                    items.append(item)

        worker = threading.Thread(target=loop)
        worker.start()
        try:
            server.stop()
            time.sleep(1.0)
            server = embedded.start(data, port=server.port)
            deadline = time.monotonic() + 30
            while RECONNECTED not in items and time.monotonic() < deadline:
                time.sleep(0.05)
            assert RECONNECTED in items
            for _ in range(100):
                try:
                    db.notify("a", "after restart")
                    break
                except psycopg.OperationalError:
                    time.sleep(0.1)
            while not any(isinstance(i, Notification) for i in items):
                assert time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            stop.set()
            worker.join(10)
            server.stop()
    assert [i.payload for i in items if isinstance(i, Notification)] == ["after restart"]


def test_listener_conninfo_is_the_databases(pg_url: str) -> None:
    """The listener connects with the Database's resolved settings (keepalives, timeouts), and
    an unreachable server fails open() with a scrubbed error."""
    with pgkeel.Database(pg_url, size_check="off", keepalives_idle=7) as db:
        info = psycopg.conninfo.conninfo_to_dict(listener_conninfo(db.config))
        assert info["keepalives_idle"] == "7"
        assert "tcp_user_timeout" in info
    bad = pgkeel.Database(
        "postgresql://u:secret-Pw-93@127.0.0.1:1/x", size_check="off", connect_timeout=1
    )
    with pytest.raises(psycopg.OperationalError) as caught:
        bad.listen("a").open()
    assert "secret-Pw-93" not in str(caught.value)


def test_no_warning_logged_without_loss(
    db: pgkeel.Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A healthy listener pinging while idle logs nothing at warning level."""
    with caplog.at_level(logging.INFO, "pgkeel.events"), db.listen("a", ping_interval=0.1) as lis:
        assert lis.get(0.5) is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_use_after_close(db: pgkeel.Database) -> None:
    """get() and close() after close are harmless: None, no error, nothing closed twice."""
    listener = db.listen("a")
    listener.open()
    listener.close()
    assert listener.get(0.1) is None
    assert list(listener) == []
    listener.close()
    with pytest.raises(psycopg.InterfaceError, match="closed"):
        listener.open()
