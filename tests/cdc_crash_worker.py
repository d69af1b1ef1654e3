"""The two processes of the CDC crash test (tests/test_cdc_crash.py), run as scripts.

``writer SOURCE SEED TXS``: random inserts/updates/deletes on tables ``a`` and ``b`` in
transactions of random size, then a marker row (``a.id = -1``) in a last transaction.
``consumer SOURCE SINK``: applies each transaction to the sink in one sink transaction that
also records its ``commit_lsn`` (so a transaction delivered again after a crash is skipped),
acknowledges only after that commit, and exits once it applied the marker.
"""

from __future__ import annotations

import random
import sys
from typing import Any

import psycopg
from psycopg import sql

from pgkeel import cdc

KEYS = 400


def writer(source: str, seed: int, txs: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not a secret
    with psycopg.connect(source) as conn:
        for _ in range(txs):
            with conn.transaction():
                for _ in range(rng.randint(1, 49)):
                    table = rng.choice("ab")
                    key = rng.randrange(KEYS)
                    op = rng.random()
                    if op < 0.5:
                        # One statement per operation on purpose: a random workload.
                        if table == "a":
                            conn.execute(  # noqa: PGK005
                                "INSERT INTO a VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE "
                                "SET v = excluded.v, n = excluded.n",
                                (key, f"v{rng.random()}\t'é", rng.randrange(10**9)),
                            )
                        else:
                            conn.execute(  # noqa: PGK005
                                "INSERT INTO b VALUES (%s, %s, now()) ON CONFLICT (id) DO UPDATE "
                                "SET doc = excluded.doc, at = excluded.at",
                                (key, psycopg.types.json.Jsonb({"r": rng.random()})),
                            )
                    elif op < 0.8:
                        if table == "a":
                            conn.execute("UPDATE a SET n = n + 1 WHERE id = %s", (key,))
                        else:
                            conn.execute(
                                """UPDATE b SET doc = doc || '{"u": 1}' WHERE id = %s""", (key,)
                            )
                    else:
                        query = sql.SQL("DELETE FROM {} WHERE id = %s").format(
                            sql.Identifier(table)
                        )
                        conn.execute(query, (key,))
        conn.execute("INSERT INTO a VALUES (-1, 'end', 0)")
        conn.commit()


def apply(sink: psycopg.Connection[Any], change: cdc.Change) -> None:
    table = change.table[1]
    if change.op == "delete":
        assert change.old is not None
        query = sql.SQL("DELETE FROM {} WHERE id = %s").format(sql.Identifier(table))
        sink.execute(query, (change.old["id"],))
        return
    assert change.new is not None
    row = change.new
    if table == "a":
        sink.execute(
            "INSERT INTO a VALUES (%(id)s, %(v)s, %(n)s) ON CONFLICT (id) DO UPDATE "
            "SET v = excluded.v, n = excluded.n",
            row,
        )
    else:
        sink.execute(
            "INSERT INTO b VALUES (%(id)s, %(doc)s, %(at)s) ON CONFLICT (id) DO UPDATE "
            "SET doc = excluded.doc, at = excluded.at",
            {**row, "doc": psycopg.types.json.Jsonb(row["doc"])},
        )


def consumer(source: str, sink_url: str) -> None:
    with psycopg.connect(sink_url) as sink:
        if sink.execute("SELECT 1 FROM a WHERE id = -1").fetchone():
            return  # a killed run already applied (and maybe acknowledged) the end marker
    with (
        psycopg.connect(sink_url) as sink,
        cdc.changes(source, slot="crash", publication="crash") as stream,
    ):
        for tx in stream.transactions():
            done = False
            with sink.transaction():
                # The deduplication the README shows: one row per applied commit_lsn, written in
                # the same sink transaction as the changes.
                fresh = sink.execute(  # noqa: PGK005 - one row per transaction, by design
                    "INSERT INTO applied VALUES (%s::pg_lsn, '0/0') "
                    "ON CONFLICT DO NOTHING RETURNING 1",
                    (cdc.format_lsn(tx.commit_lsn),),
                ).fetchone()
                for change in tx:
                    if fresh:
                        apply(sink, change)
                    if change.table[1] == "a" and (change.new or {}).get("id") == -1:
                        done = True
                if fresh:
                    sink.execute(
                        "UPDATE applied SET end_lsn = %s::pg_lsn WHERE commit_lsn = %s::pg_lsn",
                        (cdc.format_lsn(tx.end_lsn or 0), cdc.format_lsn(tx.commit_lsn)),
                    )
            stream.ack(tx)  # only once the sink committed
            if done:
                return


if __name__ == "__main__":
    if sys.argv[1] == "writer":
        writer(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        consumer(sys.argv[2], sys.argv[3])
