"""The processes of the durable-topic crash test (tests/test_events_crash.py), run as scripts.

``publish URL P N SEED``: publisher ``P`` publishes events ``{"p": P, "s": 0..N-1}`` on topic
``stress``, one per transaction: a quarter of them in a transaction held open a random 0-5 ms
before COMMIT (so commits overtake each other), the rest with ``db.publish``; about 10 % are
published with ``"rb": true`` and rolled back instead (their ``s`` is not reused). A
transaction that fails (the server restarts) is retried unless its event turns out stored.
``consume URL OUT``: subscribes as consumer ``crash`` and appends ``PID P S ID`` to ``OUT`` for
every event before acknowledging it; it runs until killed.
"""

from __future__ import annotations

import os
import random
import sys
import time

import psycopg
from psycopg_pool import PoolTimeout

import pgkeel

TOPIC = "stress"


class Rollback(Exception):
    """Raised inside a transaction to roll it back on purpose."""


def publish(url: str, p: int, n: int, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not a secret
    with opened(url) as db:
        s = 0
        while s < n:
            rollback = rng.random() < 0.1
            payload = {"p": p, "s": s, **({"rb": True} if rollback else {})}
            delay = rng.uniform(0, 0.005) if rng.random() < 0.25 else 0.0
            try:
                if rollback or delay:
                    with db.transaction() as tx:
                        tx.publish(TOPIC, payload)
                        time.sleep(delay)
                        give_up(rollback)
                else:
                    db.publish(TOPIC, payload)  # a transaction of its own
            except Rollback:
                s += 1
                continue
            except (psycopg.Error, PoolTimeout, pgkeel.CommitOutcomeUnknownError):
                if not stored(db, payload):
                    time.sleep(0.05)
                    continue
            s += 1


def give_up(rollback: bool) -> None:
    if rollback:
        raise Rollback


def opened(url: str) -> pgkeel.Database:
    """An open Database, waiting for the server if it is restarting."""
    while True:
        db = pgkeel.Database(url, min_size=1, max_size=2, size_check="off", timeout=2)
        try:
            db.open()
        except psycopg.OperationalError:
            time.sleep(0.1)
        else:
            return db


def stored(db: pgkeel.Database, payload: dict[str, object]) -> bool:
    """Whether ``payload`` is stored; retried until the server answers."""
    while True:
        try:
            return bool(
                db.fetch_val(
                    "SELECT count(*) FROM pgkeel_events WHERE topic = %s AND payload @> %s",
                    [TOPIC, payload],
                )
            )
        except (psycopg.Error, PoolTimeout):
            time.sleep(0.05)


def consume(url: str, out: str) -> None:
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pid = os.getpid()
    os.write(fd, f"{pid} start\n".encode())
    with (
        opened(url) as db,
        db.subscribe(TOPIC, "crash", start="earliest", ack_interval=0.2, poll_interval=1.0) as sub,
    ):
        for event in sub:
            payload = event.payload
            rb = " rb" if payload.get("rb") else ""
            # One write() per line: a SIGKILL never leaves half a line.
            os.write(fd, f"{pid} {payload['p']} {payload['s']} {event.id}{rb}\n".encode())
            sub.ack(event)


if __name__ == "__main__":
    if sys.argv[1] == "publish":
        publish(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        consume(sys.argv[2], sys.argv[3])
