"""Transactions: commit/rollback, savepoints, BEGIN options, run_transaction's retry (with the
16-client transfer invariant), what is not retried, and COMMIT with an unknown outcome."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from typing import Any

import psycopg
import pytest

import pgkeel
from pgkeel._transaction_base import backoff
from pgkeel.transaction import isolation_level

pytest_plugins = ["fix_db"]

ACCOUNTS = 5
START = 1000


def test_commit_and_rollback(db: pgkeel.Database) -> None:
    """A clean block commits; a raising block rolls back everything in it."""
    db.execute("CREATE TABLE t (x int)")
    with db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (1)")

    def failing() -> pgkeel.Transaction:
        with db.transaction() as tx:
            tx.execute("INSERT INTO t VALUES (2)")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing()
    assert db.fetch_all("SELECT x FROM t", row=tuple) == [(1,)]
    with pytest.raises(psycopg.ProgrammingError, match="ended"):
        tx.fetch_val("SELECT 1")  # the tx object outlives its block but cannot be used


def test_nested_is_savepoint(db: pgkeel.Database) -> None:
    """A failing nested transaction rolls back only its own work."""
    db.execute("CREATE TABLE t (x int PRIMARY KEY)")
    with db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(psycopg.errors.UniqueViolation):  # noqa: PT012, SIM117 - the block is the test
            with tx.transaction() as inner:
                inner.execute("INSERT INTO t VALUES (2)")
                inner.execute("INSERT INTO t VALUES (1)")
        with tx.transaction() as inner:
            inner.execute("INSERT INTO t VALUES (3)")
    assert db.fetch_all("SELECT x FROM t ORDER BY x", row=tuple) == [(1,), (3,)]


def test_isolation_and_read_only(db: pgkeel.Database) -> None:
    """isolation= and read_only= go into BEGIN; the connection returns to defaults after."""
    with db.transaction(isolation="repeatable read", read_only=True) as tx:
        assert tx.fetch_val("SHOW transaction_isolation") == "repeatable read"
        assert tx.fetch_val("SHOW transaction_read_only") == "on"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            tx.execute("CREATE TABLE nope (x int)")
    with db.transaction() as tx:
        assert tx.fetch_val("SHOW transaction_isolation") == "read committed"
        assert tx.fetch_val("SHOW transaction_read_only") == "off"
    with pytest.raises(ValueError, match="serializable"):
        isolation_level("snapshot")


def test_backoff_is_jittered_exponential_and_capped() -> None:
    """run_transaction's wait before retry n lies in [0, min(cap, base * 2**n)]: never negative,
    never past the cap however many attempts, and spread (jitter) rather than one fixed value."""
    for attempt in range(40):
        bound = min(1.0, 0.01 * 2**attempt)
        waits = [backoff(attempt) for _ in range(50)]
        assert all(0 <= w <= bound for w in waits)
        assert len(set(waits)) > 1
    assert all(0 <= backoff(3, base=1.0, cap=0.5) <= 0.5 for _ in range(50))


def test_atomic_contract(db: pgkeel.Database) -> None:
    """_atomic() yields a connection in a transaction (Database) or a savepoint (tx)."""
    db.execute("CREATE TABLE t (x int)")
    with db._atomic() as conn:
        conn.execute("INSERT INTO t VALUES (1)")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    with db.transaction() as tx:
        with pytest.raises(ZeroDivisionError):  # noqa: PT012, SIM117 - the block is the test
            with tx._atomic() as conn:
                conn.execute("INSERT INTO t VALUES (2)")
                raise ZeroDivisionError
        tx.execute("INSERT INTO t VALUES (3)")
    assert db.fetch_all("SELECT x FROM t ORDER BY x", row=tuple) == [(1,), (3,)]


def setup_bank(db: pgkeel.Database) -> None:
    db.execute("CREATE TABLE account (id int PRIMARY KEY, balance int NOT NULL)")
    db.execute("CREATE TABLE op (id text PRIMARY KEY)")
    db.execute_many("INSERT INTO account VALUES (%s, %s)", [(i, START) for i in range(ACCOUNTS)])


def check_bank(db: pgkeel.Database, op_ids: list[str], calls: Counter[str]) -> None:
    assert db.fetch_val("SELECT sum(balance) FROM account") == ACCOUNTS * START
    # Every operation committed exactly once (op ids are primary keys: a double commit fails).
    assert db.fetch_val("SELECT count(*) FROM op") == len(op_ids)
    assert {r[0] for r in db.fetch_all("SELECT id FROM op", row=tuple)} == set(op_ids)
    assert sum(calls.values()) >= len(op_ids)


def test_transfers_serializable_16_threads(pg_url: str) -> None:
    """16 threads transferring between 5 accounts under SERIALIZABLE keep the total, commit each
    operation once, and the retries they needed (if any) show in stats()."""
    calls: Counter[str] = Counter()
    op_ids: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    with pgkeel.Database(pg_url, min_size=4, max_size=16) as db:
        setup_bank(db)

        def transfer(tx: pgkeel.Transaction, op: str, a: int, b: int, amount: int) -> None:
            with lock:
                calls[op] += 1
            bal = tx.fetch_val("SELECT balance FROM account WHERE id = %s", (a,))
            tx.execute("UPDATE account SET balance = %s WHERE id = %s", (bal - amount, a))
            tx.execute("UPDATE account SET balance = balance + %s WHERE id = %s", (amount, b))
            tx.execute("INSERT INTO op VALUES (%s)", (op,))

        def worker(n: int) -> None:
            rnd = random.Random(n)  # noqa: S311 - reproducible test data
            try:
                for i in range(10):
                    a, b = rnd.sample(range(ACCOUNTS), 2)
                    op = f"{n}-{i}"
                    amount = rnd.randint(1, 50)
                    db.run_transaction(
                        lambda tx, op=op, a=a, b=b, amount=amount: transfer(tx, op, a, b, amount),
                        retries=50,
                    )
                    with lock:
                        op_ids.append(op)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        check_bank(db, op_ids, calls)
        # Whether there was contention depends on scheduling; every retry is counted.
        assert db.stats()["retries"] == sum(calls.values()) - len(op_ids)


def test_transfers_serializable_16_tasks(pg_url: str) -> None:
    """The same invariant with 16 asyncio tasks through AsyncDatabase.run_transaction."""
    calls: Counter[str] = Counter()
    op_ids: list[str] = []

    async def main() -> None:
        async with pgkeel.AsyncDatabase(pg_url, min_size=4, max_size=16) as db:
            await db.execute("CREATE TABLE account (id int PRIMARY KEY, balance int NOT NULL)")
            await db.execute("CREATE TABLE op (id text PRIMARY KEY)")
            await db.execute_many(
                "INSERT INTO account VALUES (%s, %s)", [(i, START) for i in range(ACCOUNTS)]
            )

            async def worker(n: int) -> None:
                rnd = random.Random(n)  # noqa: S311 - reproducible test data
                for i in range(10):
                    a, b = rnd.sample(range(ACCOUNTS), 2)
                    op, amount = f"{n}-{i}", rnd.randint(1, 50)

                    async def transfer(
                        tx: pgkeel.AsyncTransaction,
                        op: str = op,
                        a: int = a,
                        b: int = b,
                        amount: int = amount,
                    ) -> None:
                        calls[op] += 1
                        bal = await tx.fetch_val("SELECT balance FROM account WHERE id = %s", (a,))
                        await asyncio.sleep(0)  # let others interleave
                        await tx.execute(
                            "UPDATE account SET balance = %s WHERE id = %s", (bal - amount, a)
                        )
                        await tx.execute(
                            "UPDATE account SET balance = balance + %s WHERE id = %s", (amount, b)
                        )
                        await tx.execute("INSERT INTO op VALUES (%s)", (op,))

                    await db.run_transaction(transfer, retries=50)
                    op_ids.append(op)

            await asyncio.gather(*(worker(n) for n in range(16)))
            assert db.stats()["retries"] == sum(calls.values()) - len(op_ids)

    asyncio.run(main())
    with pgkeel.Database(pg_url, min_size=1) as db:
        check_bank(db, op_ids, calls)


def test_non_retryable_error_propagates_at_once(db: pgkeel.Database) -> None:
    """Errors other than 40001/40P01 are raised on the first attempt, not retried."""
    calls = 0

    def fn(tx: pgkeel.Transaction) -> None:
        nonlocal calls
        calls += 1
        tx.fetch_val("SELECT 1/0")

    with pytest.raises(psycopg.errors.DivisionByZero):
        db.run_transaction(fn)
    assert calls == 1
    assert db.stats()["retries"] == 0


def test_retries_are_bounded(db: pgkeel.Database) -> None:
    """A transaction that always fails with 40001 runs retries+1 times, then raises it."""
    calls = 0

    def fn(tx: pgkeel.Transaction) -> None:
        nonlocal calls
        calls += 1
        tx.execute("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$")

    with pytest.raises(psycopg.errors.SerializationFailure):
        db.run_transaction(fn, retries=3)
    assert calls == 4
    assert db.stats()["retries"] == 3


KILL_AT_COMMIT = """
CREATE TABLE t (x int);
CREATE FUNCTION die() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(1); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER die_at_commit AFTER INSERT ON t
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION die();
"""


def test_connection_lost_during_commit_is_unknown_not_retried(db: pgkeel.Database) -> None:
    """A backend that dies during COMMIT raises CommitOutcomeUnknownError, run only once, and
    the pool serves the next query."""
    db.execute(KILL_AT_COMMIT)
    calls = 0

    def fn(tx: pgkeel.Transaction) -> None:
        nonlocal calls
        calls += 1
        tx.execute("INSERT INTO t VALUES (1)")

    with pytest.raises(pgkeel.CommitOutcomeUnknownError, match="may or may not"):
        db.run_transaction(fn)
    assert calls == 1
    assert db.fetch_val("SELECT 1") == 1


def test_async_lost_commit_and_savepoint(pg_url: str) -> None:
    """The async face: savepoints roll back alone; a lost COMMIT is an unknown outcome."""

    async def main() -> None:
        async with pgkeel.AsyncDatabase(pg_url, min_size=1, max_size=2) as db:
            await db.execute(KILL_AT_COMMIT)
            await db.execute("CREATE TABLE u (x int PRIMARY KEY)")
            async with db.transaction(isolation="serializable") as tx:
                assert await tx.fetch_val("SHOW transaction_isolation") == "serializable"
                await tx.execute("INSERT INTO u VALUES (1)")
                with pytest.raises(psycopg.errors.UniqueViolation):
                    async with tx.transaction() as inner:
                        await inner.execute("INSERT INTO u VALUES (1)")
            assert await db.fetch_val("SELECT count(*) FROM u") == 1
            calls = 0

            async def fn(tx: Any) -> None:
                nonlocal calls
                calls += 1
                await tx.execute("INSERT INTO t VALUES (1)")

            with pytest.raises(pgkeel.CommitOutcomeUnknownError):
                await db.run_transaction(fn)
            assert calls == 1
            assert await db.fetch_val("SELECT 1") == 1

    asyncio.run(main())


ON_CALL = """
CREATE TABLE doctor (id int PRIMARY KEY, on_call bool NOT NULL);
INSERT INTO doctor VALUES (1, true), (2, true);
"""


def test_serialization_conflict_is_retried_once(db: pgkeel.Database) -> None:
    """Two SERIALIZABLE transactions forced into write skew (a barrier makes both read before
    either writes): exactly one fails with 40001 and is run again, and both end committed."""
    db.execute(ON_CALL)
    barrier = threading.Barrier(2, timeout=30)
    calls: Counter[int] = Counter()

    def go_off_call(tx: pgkeel.Transaction, me: int) -> None:
        calls[me] += 1
        assert tx.fetch_val("SELECT count(*) FROM doctor WHERE on_call") >= 1
        if calls[me] == 1:
            barrier.wait()  # both have read; now both write
        tx.execute("UPDATE doctor SET on_call = false WHERE id = %s", (me,))

    threads = [
        threading.Thread(target=db.run_transaction, args=(lambda tx, me=me: go_off_call(tx, me),))
        for me in (1, 2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(calls.values()) == [1, 2]
    assert db.stats()["retries"] == 1
    assert db.fetch_val("SELECT count(*) FROM doctor WHERE on_call") == 0


def test_serialization_conflict_is_retried_once_async(pg_url: str) -> None:
    """The same forced write skew with two asyncio tasks: one retry, both committed."""

    async def main() -> None:
        async with pgkeel.AsyncDatabase(pg_url, min_size=2, max_size=2) as db:
            await db.execute(ON_CALL)
            barrier = asyncio.Barrier(2)
            calls: Counter[int] = Counter()

            async def go_off_call(tx: pgkeel.AsyncTransaction, me: int) -> None:
                calls[me] += 1
                assert await tx.fetch_val("SELECT count(*) FROM doctor WHERE on_call") >= 1
                if calls[me] == 1:
                    await barrier.wait()
                await tx.execute("UPDATE doctor SET on_call = false WHERE id = %s", (me,))

            async with asyncio.timeout(30):
                await asyncio.gather(
                    *(db.run_transaction(lambda tx, me=me: go_off_call(tx, me)) for me in (1, 2))
                )
            assert sorted(calls.values()) == [1, 2]
            assert db.stats()["retries"] == 1

    asyncio.run(main())
