"""CDC benchmark: consuming the changes of 1M ``products`` inserts (1,000-row transactions).

Each variant reads its own replication slot, created before the inserts, up to the same end
position, in its own process (so its peak RSS is its own): ``pg_recvlogical`` writing the raw
pgoutput stream to /dev/null (the limit: a C client, no decoding), psycopg2's replication
connection reading raw messages without decoding, and pgkeel delivering decoded, typed rows
(``change.new`` with UUID, Decimal, list, dict, datetime). ``pypgoutput`` is not measured: it
is not installed here. Goal: pgkeel >= 0.5x pg_recvlogical, peak RSS < 100 MB.
Run: ``flock /tmp/pgkeel-bench.lock python bench/cdc.py [--rows N] [--repeat N] [--only a,b]``.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

import _common as c

PG_BIN = Path(os.environ.get("PGKEEL_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
TX_ROWS = 1000
VARIANTS = ("pg_recvlogical", "psycopg2_raw", "pgkeel")


def child(variant: str, url: str, slot: str, endpos: int) -> None:
    """Runs in a subprocess: consume ``slot`` to ``endpos``; print changes, seconds, RSS."""
    start = time.perf_counter()
    n = 0
    if variant == "pg_recvlogical":
        endtxt = f"{endpos >> 32:X}/{endpos & 0xFFFFFFFF:X}"
        subprocess.run(
            [str(PG_BIN / "pg_recvlogical"), "-d", url, "--slot", slot, "--start",
             "-o", "proto_version=1", "-o", "publication_names=bench", "--no-loop",
             "-E", endtxt, "-f", "/dev/null"],
            check=True,
        )  # fmt: skip
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    elif variant == "psycopg2_raw":
        import psycopg2
        from psycopg2.extras import LogicalReplicationConnection, StopReplication

        conn = psycopg2.connect(url, connection_factory=LogicalReplicationConnection)
        cur = conn.cursor()
        cur.start_replication(
            slot_name=slot, decode=False,
            options={"proto_version": "1", "publication_names": "bench"},
        )  # fmt: skip
        count = [0]

        def consume(msg: object) -> None:
            payload = msg.payload  # type: ignore[attr-defined]
            if payload[:1] == b"I":
                count[0] += 1
            if msg.data_start >= endpos:  # type: ignore[attr-defined]
                raise StopReplication

        with contextlib.suppress(StopReplication):
            cur.consume_stream(consume)
        n = count[0]
        conn.close()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    else:
        from pgkeel import cdc

        with cdc.changes(url, slot=slot, publication="bench") as stream:
            for tx in stream.transactions():
                for change in tx:
                    n += change.new is not None and change.new["stock"] >= 0  # type: ignore[operator]
                stream.ack(tx)
                if tx.end_lsn is not None and tx.end_lsn >= endpos:
                    break
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"n": n, "s": time.perf_counter() - start, "rss_mb": rss / 1024}))


def load(url: str, rows: int, slots: list[str]) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        for (name,) in conn.execute(
            "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'bench_%'"
        ).fetchall():
            conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))
        c.reset(url, "products", pk=True)
        conn.execute("DROP PUBLICATION IF EXISTS bench")
        conn.execute("CREATE PUBLICATION bench FOR TABLE products")
        for slot in slots:
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    print(f"inserting {rows:,} rows in {TX_ROWS}-row transactions...", flush=True)
    with psycopg.connect(url) as conn:
        for start in range(0, rows, TX_ROWS):
            batch = c.make_rows(min(TX_ROWS, rows - start), seed=start, start=start)
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY products ({', '.join(c.COLUMNS)}) FROM STDIN") as copy,
            ):
                for r in batch:
                    copy.write_row([*(r[k] for k in c.COLUMNS[:5]), Jsonb(r["metadata"]),
                                    r["stock"], r["created_at"]])  # fmt: skip
            conn.commit()
        row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'").fetchone()
        assert row is not None
        return int(row[0])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    args = c.parser(__doc__ or "", rows=1_000_000, repeat=3).parse_args()
    variants = [v for v in VARIANTS if c.selected(args, v)]
    with c.server() as url:
        slots = [f"bench_{v}_{i}" for i in range(args.repeat) for v in variants]
        endpos = load(url, args.rows, slots)
        c.checkpoint(url)
        results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
        for i in range(args.repeat):  # interleaved: one run of each variant per round
            for v in variants:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", v, url, f"bench_{v}_{i}", str(endpos)],
                    check=True, capture_output=True, text=True,
                ).stdout  # fmt: skip
                res = json.loads(out.strip().splitlines()[-1])
                results[v].append(res)
                print(f"{v:16} run {i}: {res['s']:.2f} s, rss {res['rss_mb']:.0f} MB", flush=True)
        print(f"\n{args.rows:,} changes; median of {args.repeat} runs")
        head = f"{'variant':16} {'seconds':>8} {'changes/s':>12} {'peak RSS':>9}"
        print(f"{head} {'vs recvlogical':>15}")
        base = statistics.median(r["s"] for r in results.get("pg_recvlogical", [{"s": 0}]))
        for v in variants:
            s = statistics.median(r["s"] for r in results[v])
            rss = max(r["rss_mb"] for r in results[v])
            ratio = f"{base / s:.2f}x" if base else "-"
            print(f"{v:16} {s:8.2f} {args.rows / s:12,.0f} {rss:7.0f} MB {ratio:>15}")
        if "pgkeel" in results:
            assert all(r["n"] == args.rows for r in results["pgkeel"]), results["pgkeel"]


if __name__ == "__main__":
    main()
