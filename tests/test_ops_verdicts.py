"""The doctor's judgements, report, exit codes and options, without a server."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pgkeel.ops import (
    CHECKS,
    GROUPS,
    JSON_KEYS,
    DoctorOptions,
    Finding,
    exit_code,
    render_json,
    render_text,
    select_checks,
)
from pgkeel.ops._verdicts import (
    XID_LIMIT,
    IndexDef,
    certificate_verdict,
    covered_fks,
    duplicate_indexes,
    human_bytes,
    human_seconds,
    memory_verdict,
    pool_plan,
    sequence_verdict,
    server_verdict,
    timeout_verdict,
    wraparound_verdict,
)


def ix(name: str, cols: tuple[int, ...], **kw: object) -> IndexDef:
    base: dict[str, object] = {
        "name": name, "table": "t", "columns": cols, "opclasses": (1,) * len(cols),
        "collations": (0,) * len(cols), "method": "btree", "unique": False, "primary": False,
        "expressions": None, "predicate": None, "size": 8192,
    }  # fmt: skip
    base.update(kw)
    return IndexDef(**base)  # type: ignore[arg-type]


def test_prefix_index_is_redundant() -> None:
    """An index on (a) is covered by one on (a, b); the wider one is kept."""
    pairs = duplicate_indexes([ix("t_a", (1,)), ix("t_ab", (1, 2))])
    assert [(a.name, b.name) for a, b in pairs] == [("t_a", "t_ab")]


def test_identical_indexes_keep_one() -> None:
    """Of two identical indexes exactly one is reported, the primary key is always kept."""
    pairs = duplicate_indexes([ix("b", (1,)), ix("a", (1,))])
    assert [(a.name, b.name) for a, b in pairs] == [("b", "a")]
    pairs = duplicate_indexes([ix("t_pkey", (1,), unique=True, primary=True), ix("a", (1,))])
    assert [(a.name, b.name) for a, b in pairs] == [("a", "t_pkey")]


def test_not_duplicates() -> None:
    """Different order, opclass, predicate, table, method or a unique prefix are not redundant."""
    assert not duplicate_indexes([ix("ab", (1, 2)), ix("ba", (2, 1))])
    assert not duplicate_indexes([ix("a", (1,)), ix("a2", (1,), opclasses=(2,))])
    assert not duplicate_indexes([ix("a", (1,)), ix("p", (1,), predicate="(x > 0)")])
    assert not duplicate_indexes([ix("a", (1,)), ix("a2", (1,), table="u")])
    assert not duplicate_indexes([ix("a", (1,), method="hash"), ix("a2", (1,), method="hash")])
    # A unique index enforces something a wider index does not.
    assert not duplicate_indexes([ix("u", (1,), unique=True), ix("ab", (1, 2))])
    assert not duplicate_indexes([ix("e", (0,), expressions="lower(x)"), ix("f", (0,))])


def test_fk_coverage() -> None:
    """A foreign key is covered by an index that starts with its columns, in any order."""
    assert covered_fks([2], [[2, 3]])
    assert covered_fks([2, 3], [[3, 2, 1]])
    assert not covered_fks([2], [[3, 2]])
    assert not covered_fks([2, 3], [[2]])
    assert not covered_fks([2], [])


def test_pool_plan() -> None:
    """Fits, fits without headroom (warn), or does not fit (fail, with the size that would)."""
    kw = {"check": "pool_plan", "max_connections": 100, "reserved": 3, "others": 7}
    assert pool_plan(**kw, pool_size=10, instances=4, headroom=5).status == "ok"
    warn = pool_plan(**kw, pool_size=22, instances=4, headroom=5)
    assert warn.status == "warn"
    assert "to 21 per instance" in (warn.fix or "")
    fail = pool_plan(**kw, pool_size=30, instances=4, headroom=5)
    assert fail.status == "fail"
    assert "at most 21 per instance" in (fail.fix or "")
    assert fail.details[0]["free"] == 90
    assert fail.details[0]["needed"] == 125


def test_timeouts() -> None:
    """A timeout at 0 is a warning with the ALTER ROLE that fixes it; all set is ok."""
    off = timeout_verdict(
        "timeouts",
        [("statement_timeout", "0", "default"), ("lock_timeout", "5000", "database")],
        "app",
        "shop",
    )
    assert off.status == "warn"
    assert "ALTER DATABASE shop SET statement_timeout = '30s'" in (off.fix or "")
    assert "ALTER ROLE app IN DATABASE shop" in (off.fix or "")
    assert "lock_timeout" not in (off.fix or "")
    ok = timeout_verdict("timeouts", [("statement_timeout", "30000", "user")], "app", "shop")
    assert ok.status == "ok"
    assert "30 s" in ok.summary


def test_sequences() -> None:
    """Over the ratio warns, over 98% fails, unreadable ones are counted, none read is skipped."""
    seqs = [
        {"name": "a", "last_value": 95, "max": 100},
        {"name": "b", "last_value": None, "max": 9},
    ]
    assert sequence_verdict("sequences", seqs, 0.9, 0).status == "warn"
    assert sequence_verdict("sequences", seqs, 0.96, 0).status == "ok"
    full = [{"name": "a", "last_value": 99, "max": 100}]
    assert sequence_verdict("sequences", full, 0.9, 0).status == "fail"
    hidden = sequence_verdict("sequences", [], 0.9, 2)
    assert hidden.status == "skipped"
    assert "2 not readable" in hidden.summary


def test_wraparound() -> None:
    """Half way to wraparound warns, three quarters fails; the oldest database is named."""
    young = [{"name": "a", "kind": "xid", "age": 1000}]
    assert wraparound_verdict("w", young).status == "ok"
    half = [*young, {"name": "b", "kind": "multixact", "age": XID_LIMIT // 2 + 1}]
    finding = wraparound_verdict("w", half)
    assert finding.status == "warn"
    assert "multixact" in finding.summary
    assert " b " in finding.summary
    assert wraparound_verdict("w", [{"name": "a", "kind": "xid", "age": 1_700_000_000}]).status == (
        "fail"
    )
    assert wraparound_verdict("w", []).status == "skipped"


def test_certificate() -> None:
    """Expired or under a week fails, under three weeks warns."""
    assert certificate_verdict("c", -1, "CN=x").status == "fail"
    assert certificate_verdict("c", 3, "CN=x").status == "fail"
    assert certificate_verdict("c", 10, "CN=x").status == "warn"
    assert certificate_verdict("c", 90, "CN=x").status == "ok"


def test_memory() -> None:
    """shared_buffers too small or too large for RAM, or work_mem x connections over RAM."""
    gb = 1 << 30
    kw = {"work_mem": 4 << 20, "max_connections": 100}
    assert memory_verdict("m", shared_buffers=4 * gb, ram=16 * gb, **kw).status == "ok"
    assert memory_verdict("m", shared_buffers=128 << 20, ram=16 * gb, **kw).status == "warn"
    assert memory_verdict("m", shared_buffers=12 * gb, ram=16 * gb, **kw).status == "warn"
    big = memory_verdict(
        "m", shared_buffers=4 * gb, ram=16 * gb, work_mem=256 << 20, max_connections=100
    )
    assert big.status == "warn"
    assert "work_mem x max_connections" in big.summary
    assert memory_verdict("m", shared_buffers=128 << 20, ram=None, **kw).status == "warn"


def test_human() -> None:
    """Byte and duration texts."""
    assert human_bytes(512) == "512 bytes"
    assert human_bytes(1536) == "1.5 kB"
    assert human_bytes(3 << 30) == "3.0 GB"
    assert human_seconds(0.25) == "250 ms"
    assert human_seconds(95) == "1 min 35 s"
    assert human_seconds(7200) == "2 h"
    assert human_seconds(86400 * 3) == "3 days"


def finding(status: str, check: str = "x") -> Finding:
    return Finding(check, status, "s", group="schema")  # type: ignore[arg-type]


def test_exit_codes() -> None:
    """0 ok or skipped, 1 a warning, 2 a failure; fail_on='fail' lets warnings pass."""
    assert exit_code([finding("ok"), finding("skipped")]) == 0
    assert exit_code([finding("ok"), finding("warn")]) == 1
    assert exit_code([finding("warn"), finding("fail")]) == 2
    assert exit_code([finding("warn")], "fail") == 0
    assert exit_code([finding("fail")], "fail") == 2


def test_json_schema() -> None:
    """--json is a list of objects with exactly the documented keys and JSON types."""
    out = json.loads(
        render_json([Finding("a", "warn", "s", "f", [{"n": 1}], "schema", 0.01), finding("ok")])
    )
    assert [list(o) for o in out] == [list(JSON_KEYS)] * 2
    assert out[0] == {
        "check": "a", "group": "schema", "status": "warn", "summary": "s", "fix": "f",
        "details": [{"n": 1}], "elapsed_ms": 10.0,
    }  # fmt: skip
    assert out[1]["fix"] is None


def test_render_text() -> None:
    """One line per check under its group, the fix below a problem, and the counts."""
    text = render_text(
        [Finding("a", "warn", "found 3", "do this", group="schema"), finding("ok", "b")], "head"
    )
    lines = text.splitlines()
    assert lines[0] == "head"
    assert "schema" in lines
    assert any("warn" in line and "a" in line and "found 3" in line for line in lines)
    assert any(line.strip() == "fix: do this" for line in lines)
    assert lines[-1] == "1 ok, 1 warn, 0 fail, 0 skipped"


def test_select_checks() -> None:
    """--select takes names and groups, --ignore removes; order follows the groups."""
    assert [c.name for c in select_checks(["sequences", "tls"])] == ["tls", "sequences"]
    assert {c.group for c in select_checks(["replication"])} == {"replication"}
    names = [c.name for c in select_checks(ignore=["schema", "tls"])]
    assert "tls" not in names
    assert "sequences" not in names
    assert "timeouts" in names
    assert [c.name for c in select_checks("tls")] == ["tls"]  # a lone name, not its letters
    assert len(select_checks()) == len(CHECKS)
    assert all(c.group in GROUPS for c in CHECKS.values())
    with pytest.raises(ValueError, match="unknown check 'nope'; the checks are server, tls"):
        select_checks(["nope"])


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"instances": -1}, "instances must be a whole number"),
        ({"pool_size": 0}, "pool_size must be a whole number >= 1"),
        ({"pool_size": True}, "pool_size"),
        ({"idle_threshold": 0}, "idle_threshold must be a number of seconds > 0"),
        ({"idle_threshold": float("nan")}, "idle_threshold"),
        ({"sequence_ratio": 1.5}, "sequence_ratio must be a fraction"),
        ({"top": "5"}, "top must be a whole number"),
        ({"slot_wal_bytes": -1}, "slot_wal_bytes"),
    ],
)
def test_options_reject_bad_values(kw: dict[str, object], match: str) -> None:
    """Out-of-range and wrongly typed options raise ValueError naming the option."""
    with pytest.raises(ValueError, match=match):
        DoctorOptions(**kw)  # type: ignore[arg-type]


def test_server_version_end_of_life() -> None:
    """A major version past its end of life warns with the date; a supported one is ok."""
    old = server_verdict("server", 130018, "13.18", dt.date(2026, 12, 7))
    assert old.status == "warn"
    assert "no fixes since 2025-11-13" in old.summary
    ok = server_verdict("server", 150018, "15.18", dt.date(2026, 12, 7))
    assert ok.status == "ok"
    assert "supported until 2027-11-11" in ok.summary
    assert server_verdict("server", 150018, "15.18", dt.date(2027, 11, 11)).status == "warn"
    assert "unknown" in server_verdict("server", 990000, "99.0", dt.date(2026, 1, 1)).summary
