"""The judgements behind the doctor's checks, without I/O: given the numbers a check read from the
server, say ok / warn / fail with the fix. Tested without a server (``tests/test_ops_verdicts.py``);
the checks in :mod:`pgkeel.ops._checks` only read and hand over."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from pgkeel.ops._model import Finding, Status

__all__ = [
    "IndexDef",
    "covered_fks",
    "duplicate_indexes",
    "human_bytes",
    "human_seconds",
    "pool_plan",
    "sequence_verdict",
    "timeout_verdict",
    "wraparound_verdict",
]

#: The transaction-ID space before wraparound (2^31): ages are judged as a fraction of it.
XID_LIMIT = 2**31
#: How many items a finding names in its one-line summary (``details`` holds them all).
SHOWN = 3


def human_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 kB'`` (powers of 1024, as PostgreSQL's pg_size_pretty)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_seconds(s: float) -> str:
    """``95`` -> ``'1 min 35 s'``; ``0.25`` -> ``'250 ms'``."""
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 60:
        return f"{s:.0f} s"
    minutes, sec = divmod(int(s), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s" if sec else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"


def names(items: Iterable[str], total: int | None = None) -> str:
    """The first few names, and how many more."""
    listed = list(items)
    count = len(listed) if total is None else total
    shown = ", ".join(listed[:SHOWN])
    return shown + (f" and {count - SHOWN} more" if count > SHOWN else "")


def worst(*statuses: Status) -> Status:
    order = {"ok": 0, "skipped": 1, "warn": 2, "fail": 3}
    return max(statuses, key=order.__getitem__, default="ok")


# --- capacity -------------------------------------------------------------------------------


def pool_plan(
    *,
    check: str,
    max_connections: int,
    reserved: int,
    others: int,
    pool_size: int,
    instances: int,
    headroom: int,
) -> Finding:
    """Does ``pool_size`` x ``instances`` + ``headroom`` fit in the slots other clients leave?"""
    free = max_connections - reserved - others
    need = pool_size * instances
    detail = {
        "max_connections": max_connections,
        "reserved": reserved,
        "used_by_others": others,
        "free": free,
        "pool_size": pool_size,
        "instances": instances,
        "headroom": headroom,
        "needed": need + headroom,
    }
    plan = (
        f"{instances} x {pool_size} connections + {headroom} headroom = {need + headroom}; "
        f"{free} free of max_connections={max_connections} ({reserved} reserved, "
        f"{others} used by other clients)"
    )
    if need > free:
        return Finding(
            check,
            "fail",
            f"the pool plan does not fit: {plan}",
            f"lower the pool size to at most {max(free - headroom, 0) // max(instances, 1)} per "
            "instance, raise max_connections, or put PgBouncer in front",
            [detail],
        )
    if need + headroom > free:
        return Finding(
            check,
            "warn",
            f"the pool plan leaves no headroom: {plan}",
            f"keep {headroom} slots free for psql, migrations and deploys: lower the pool size "
            f"to {max(free - headroom, 0) // max(instances, 1)} per instance or raise "
            "max_connections",
            [detail],
        )
    return Finding(check, "ok", f"the pool plan fits: {plan}", None, [detail])


# --- settings -------------------------------------------------------------------------------

#: The server timeouts that should not be 0 (no limit) as a server, database or role default.
TIMEOUTS: Mapping[str, str] = {
    "statement_timeout": "30s",
    "idle_in_transaction_session_timeout": "60s",
    "lock_timeout": "10s",
}


def timeout_verdict(
    check: str, settings: Sequence[tuple[str, str, str]], role: str, database: str
) -> Finding:
    """``settings`` is (name, value in ms, where it comes from) for each of :data:`TIMEOUTS` as a
    fresh session of this role in this database gets it (before any client sets its own)."""
    off = [(n, src) for n, value, src in settings if n in TIMEOUTS and value in ("0", "")]
    details = [{"setting": n, "value": v, "source": src} for n, v, src in settings]
    if not off:
        shown = ", ".join(f"{n}={_ms(v)} ({src})" for n, v, src in settings)
        return Finding(check, "ok", f"server defaults: {shown}", None, details)
    sources = sorted({src for _, src in off})
    fix = "; ".join(f"ALTER DATABASE {database} SET {n} = '{TIMEOUTS[n]}'" for n, _ in off)
    return Finding(
        check,
        "warn",
        f"{', '.join(n for n, _ in off)} = 0 (no limit) for a fresh session of {role} "
        f"(from: {', '.join(sources)}): pgkeel sets its own, but psql, cron jobs and other "
        "clients do not",
        f"{fix} (or per role: ALTER ROLE {role} IN DATABASE {database} SET ...)",
        details,
    )


def _ms(value: str) -> str:
    return "0 (no limit)" if value in ("0", "") else human_seconds(int(value) / 1000)


# --- schema ---------------------------------------------------------------------------------


class IndexDef(NamedTuple):
    """What decides whether one index makes another redundant."""

    name: str
    table: str
    columns: tuple[int, ...]  # attribute numbers; 0 for an expression
    opclasses: tuple[int, ...]
    collations: tuple[int, ...]
    method: str
    unique: bool
    primary: bool
    expressions: str | None
    predicate: str | None
    size: int


def duplicate_indexes(indexes: Iterable[IndexDef]) -> list[tuple[IndexDef, IndexDef]]:
    """(redundant, covering) pairs: an index is redundant when another index of the same table,
    method, expressions and predicate starts with the same columns (same operator classes and
    collations). A unique index is only covered by one on exactly its columns that is also
    unique; of two identical indexes the smaller name is kept (a primary key always is)."""
    by_table: dict[tuple[str, str, str | None, str | None], list[IndexDef]] = {}
    for ix in indexes:
        # Only btree orders its columns so that a prefix serves the same queries.
        if ix.method != "btree":
            continue
        by_table.setdefault((ix.table, ix.method, ix.expressions, ix.predicate), []).append(ix)
    out: list[tuple[IndexDef, IndexDef]] = []
    for group in by_table.values():
        for a in group:
            n = len(a.columns)
            for b in group:
                if a is b or len(b.columns) < n:
                    continue
                if (
                    b.columns[:n] != a.columns
                    or b.opclasses[:n] != a.opclasses
                    or b.collations[:n] != a.collations
                ):
                    continue
                if len(b.columns) == n:
                    # Identical: keep the primary key, then a unique one, then the first name.
                    if a.unique != b.unique or a.primary != b.primary:
                        if (a.primary, a.unique) > (b.primary, b.unique):
                            continue
                    elif a.name < b.name:
                        continue
                elif a.unique:
                    continue
                out.append((a, b))
                break
    return sorted(out, key=lambda pair: (pair[0].table, pair[0].name))


def covered_fks(fk_columns: Sequence[int], index_columns: Iterable[Sequence[int]]) -> bool:
    """Whether some index starts with the foreign key's columns (in any order), so that a
    delete or key update on the referenced table finds the referencing rows without a scan."""
    want = set(fk_columns)
    n = len(fk_columns)
    return any(len(cols) >= n and set(cols[:n]) == want for cols in index_columns)


def sequence_verdict(
    check: str, sequences: Sequence[Mapping[str, Any]], ratio: float, hidden: int
) -> Finding:
    """``sequences``: name, last_value, max (the sequence's or its column type's, the lower)."""
    near = []
    for seq in sequences:
        last, top = seq["last_value"], seq["max"]
        if last is None or not top:
            continue
        used = last / top
        if used >= ratio:
            near.append({**seq, "used": round(used, 4)})
    near.sort(key=lambda s: -s["used"])
    note = (
        f"; {hidden} not readable (no USAGE or SELECT on them: grant it, or run as their owner)"
        if hidden
        else ""
    )
    if not near:
        status: Status = "skipped" if hidden and not sequences else "ok"
        return Finding(
            check, status, f"{len(sequences)} sequences below {ratio:.0%} of their maximum{note}"
        )
    status = "fail" if near[0]["used"] >= 0.98 else "warn"
    listed = names(f"{s['name']} {s['used']:.1%} ({s['last_value']} of {s['max']})" for s in near)
    return Finding(
        check,
        status,
        f"{len(near)} sequences near their maximum: {listed}{note}",
        "move the column to bigint (ALTER TABLE ... ALTER COLUMN ... TYPE bigint, then ALTER "
        "SEQUENCE ... AS bigint) before it runs out; inserts fail once it does",
        near,
    )


def wraparound_verdict(check: str, ages: Sequence[Mapping[str, Any]]) -> Finding:
    """``ages``: one mapping per database (``name``, ``age``, ``kind`` "xid" or "multixact")."""
    if not ages:
        return Finding(check, "skipped", "no database is visible")
    top = max(ages, key=lambda a: a["age"])
    used = top["age"] / XID_LIMIT
    details = [{**a, "used": round(a["age"] / XID_LIMIT, 4)} for a in ages]
    text = (
        f"oldest {top['kind']} age {top['age']:,} in {top['name']} ({used:.1%} of the way to "
        "wraparound)"
    )
    fix = (
        f"VACUUM (FREEZE, VERBOSE) the oldest tables of {top['name']} and find what holds "
        "vacuum back (long transactions, abandoned replication slots, prepared transactions); "
        "at 100% the server stops accepting writes"
    )
    if used >= 0.75:
        return Finding(check, "fail", text, fix, details)
    if used >= 0.5:
        return Finding(check, "warn", text, fix, details)
    return Finding(check, "ok", text, None, details)


# --- connection -----------------------------------------------------------------------------


def certificate_verdict(check: str, days_left: float, subject: str) -> Finding:
    """The server certificate's remaining validity."""
    text = f"server certificate {subject} expires in {days_left:.0f} days"
    fix = "renew the server certificate (ssl_cert_file) and reload the server"
    if days_left <= 0:
        return Finding(check, "fail", f"server certificate {subject} has expired", fix)
    if days_left < 7:
        return Finding(check, "fail", text, fix)
    if days_left < 21:
        return Finding(check, "warn", text, fix)
    return Finding(check, "ok", text)


def memory_verdict(
    check: str, *, shared_buffers: int, work_mem: int, max_connections: int, ram: int | None
) -> Finding:
    """shared_buffers and work_mem (bytes) against the server's RAM when it is known."""
    shown = (
        f"shared_buffers={human_bytes(shared_buffers)}, work_mem={human_bytes(work_mem)}, "
        f"max_connections={max_connections}"
    )
    detail = {
        "shared_buffers": shared_buffers,
        "work_mem": work_mem,
        "max_connections": max_connections,
        "ram": ram,
    }
    problems = []
    if ram is None:
        if shared_buffers <= 128 * 1024 * 1024:
            problems.append("shared_buffers is at most the 128 MB default")
        where = "RAM not visible (the server is not on this host)"
    else:
        where = f"RAM {human_bytes(ram)}"
        if shared_buffers < ram * 0.1 and ram >= 2 << 30:
            problems.append(f"shared_buffers is under 10% of RAM ({human_bytes(ram)})")
        if shared_buffers > ram * 0.5:
            problems.append(f"shared_buffers is over 50% of RAM ({human_bytes(ram)})")
        if work_mem * max_connections > ram:
            problems.append(
                "work_mem x max_connections exceeds RAM: a burst of sorts can exhaust memory"
            )
    if not problems:
        return Finding(check, "ok", f"{shown}; {where}", None, [detail])
    return Finding(
        check,
        "warn",
        f"{'; '.join(problems)} ({shown}; {where})",
        "set shared_buffers to about 25% of RAM and work_mem so that work_mem x "
        "max_connections stays under RAM (raise it per query with SET LOCAL work_mem instead)",
        [detail],
    )


#: When each major version stops getting fixes (the PostgreSQL versioning policy: five years).
END_OF_LIFE: Mapping[int, dt.date] = {
    12: dt.date(2024, 11, 21),
    13: dt.date(2025, 11, 13),
    14: dt.date(2026, 11, 12),
    15: dt.date(2027, 11, 11),
    16: dt.date(2028, 11, 9),
    17: dt.date(2029, 11, 8),
    18: dt.date(2030, 11, 14),
}


def server_verdict(check: str, version_num: int, version: str, today: dt.date) -> Finding:
    """The server's major version against the community's end-of-life dates."""
    major = version_num // 10000
    end = END_OF_LIFE.get(major)
    if end is not None and today >= end:
        return Finding(
            check,
            "warn",
            f"PostgreSQL {version}: major version {major} has had no fixes since {end}",
            "upgrade to a supported major version (pg_upgrade, or logical replication to a new "
            "server)",
        )
    until = f"supported until {end}" if end else "support dates unknown to this pgkeel"
    return Finding(check, "ok", f"PostgreSQL {version} ({until})")
