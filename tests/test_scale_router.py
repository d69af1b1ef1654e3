"""The routing decisions without a server: lag from primary positions, the read-your-writes
floor, rotation, and which queries the router learns are writes or reads."""

from __future__ import annotations

import time

from pgkeel.scale._router import Node, Router


def _router(n: int = 2, max_lag: float = 1.0) -> Router:
    return Router([Node(i, f"r{i}", object()) for i in range(n)], max_lag)


def _ok(router: Router, node: Node, t: float, replay: int) -> None:
    router.replica_sample(
        node, t=t, in_recovery=True, replay_lsn=replay, own_lag=None, timeline=None
    )


def test_lag_is_the_age_of_the_oldest_unreplayed_primary_position() -> None:
    """A replica that replayed the latest position has no lag, even long after the primary's
    last change; one behind is as late as the oldest position it lacks."""
    router = _router()
    router.primary_sample(100.0, 1000, 1)
    router.primary_sample(101.0, 2000, 1)
    router.primary_sample(102.0, 2000, 1)
    assert router.lag_from_samples(200.0, 2000) == 0.0
    assert router.lag_from_samples(102.5, 1500) == 1.5
    assert router.lag_from_samples(102.5, 500) == 2.5


def test_rotation_follows_lag_and_state() -> None:
    """Only replicas under max_replica_lag and in recovery serve; a failed one leaves at once;
    all out means the primary (None)."""
    router = _router()
    a, b = router.nodes
    t = time.monotonic()
    router.primary_sample(t - 3, 10, 1)
    router.primary_sample(t, 20, 1)
    _ok(router, a, t, 20)
    _ok(router, b, t, 5)  # lacks the position of 3 s ago
    assert (a.state, b.state) == ("ok", "lagging")
    assert {router.pick("SELECT 1") for _ in range(4)} == {a}
    router.failed(a, "connection refused")
    assert router.pick("SELECT 1") is None
    message = router.replica_sample(
        b, t=t, in_recovery=False, replay_lsn=None, own_lag=None, timeline=None
    )
    assert message is not None
    assert "not in recovery" in message
    _ok(router, a, t, 20)
    assert router.pick("SELECT 1") is a
    assert a.reads == 5  # the four picks above and this one


def test_read_your_writes_floor() -> None:
    """After a write, reads go to the primary until the monitor has read the primary's
    position after it, then to replicas that replayed that position only."""
    router = _router(1)
    (a,) = router.nodes
    t = time.monotonic()
    router.primary_sample(t, 100, 1)
    _ok(router, a, t, 100)
    assert router.pick("q") is a
    router.wrote()
    assert router.pick("q") is None  # the write's position is not known yet
    router.primary_sample(time.monotonic(), 180, 1)
    assert router.floor_lsn == 180
    assert router.pick("q") is None  # the replica has not replayed it
    _ok(router, a, time.monotonic(), 180)
    assert router.pick("q") is a
    router.primary_sample(time.monotonic(), 260, 1)  # others' writes do not move the floor
    assert router.floor_lsn == 180


def test_primary_reads_count_as_writes_until_a_replica_served_the_query() -> None:
    """A read served by the primary may have written (INSERT ... RETURNING), unless a replica
    served the same text before; a text a replica refused goes to the primary from then on."""
    router = _router(1)
    (a,) = router.nodes
    t = time.monotonic()
    router.primary_sample(t, 1, 1)
    _ok(router, a, t, 1)
    router.served_by_replica("SELECT 1")
    router.served_by_primary("SELECT 1")
    assert router.pick("SELECT 1") is a
    router.served_by_primary("INSERT INTO t VALUES (1) RETURNING id")
    assert router.pick("SELECT 1") is None
    router.learned_write("INSERT INTO t DEFAULT VALUES RETURNING id")
    router.primary_sample(time.monotonic(), 1, 1)
    assert router.pick("SELECT 1") is a
    assert router.pick("INSERT INTO t DEFAULT VALUES RETURNING id") is None
    assert router.primary_reads == 2


def test_reads_on_the_primary_do_not_pin_reads_there() -> None:
    """Reads of new query texts served by the primary (a write pending) do not count as
    writes, so a steady stream of them does not keep every read on the primary; DML through a
    read method does."""
    router = _router(1)
    (a,) = router.nodes
    router.primary_sample(time.monotonic(), 1, 1)
    _ok(router, a, time.monotonic(), 1)
    router.wrote()
    for i in range(100):
        assert router.pick(f"SELECT {i}") is None
        router.served_by_primary(f"SELECT {i}")
    router.primary_sample(time.monotonic(), 1, 1)
    router.served_by_primary("SELECT 'a read that ended after the sample'")
    assert router.pick("SELECT 1") is a


def test_may_write_verdicts() -> None:
    """Statements that start like reads and name no writing word are reads; DML, a
    data-modifying WITH, SELECT INTO, nextval and anything unreadable are writes."""
    from psycopg import sql

    from pgkeel.scale._router import may_write

    reads = ["SELECT 1", "  with x as (select 1) select * from x", "VALUES (1)", "SHOW work_mem"]
    writes = [
        "INSERT INTO t VALUES (1) RETURNING id",
        "WITH d AS (DELETE FROM t RETURNING *) SELECT count(*) FROM d",
        "SELECT * INTO t2 FROM t",
        "SELECT nextval('s')",
        "UPDATE t SET a = 1 RETURNING a",
        "-- a comment first\nSELECT 1",
        "",
    ]
    assert [may_write(q) for q in reads] == [False] * len(reads)
    assert [may_write(q) for q in writes] == [True] * len(writes)
    assert may_write(sql.SQL("SELECT {} FROM t").format(sql.Identifier("a"))) is False
    assert may_write(sql.SQL("DELETE FROM {} RETURNING 1").format(sql.Identifier("t"))) is True
