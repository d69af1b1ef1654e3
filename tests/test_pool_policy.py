"""The pool's policy without a server (``pgkeel.pool``'s I/O-free modules): the sizing verdict,
the fresh-session baseline, the command tags that mark a connection dirty, the counters and the
last connection error. The same policy under a real server is in ``test_pool.py`` and
``test_database.py``."""

from __future__ import annotations

import threading

import pytest

from pgkeel.config import resolve
from pgkeel.pool._counters import Counters, LastError
from pgkeel.pool._reset import WATCHED_SETTINGS, SessionBaseline, is_dirty
from pgkeel.pool._sizing import pool_size_problem


def test_pool_size_fits_when_free_slots_suffice() -> None:
    """No verdict when max_size fits the free slots, exactly or with room; the pool's own
    connections are not counted as other clients'."""
    fits = {"max_connections": 20, "reserved": 3}
    assert pool_size_problem(max_size=17, in_use=0, ours=0, **fits) is None
    assert pool_size_problem(max_size=10, in_use=7, ours=0, **fits) is None
    assert pool_size_problem(max_size=17, in_use=5, ours=5, **fits) is None
    # More of ours than in use (a stale count): never negative "others".
    assert pool_size_problem(max_size=17, in_use=1, ours=4, **fits) is None


def test_pool_size_problem_names_the_figures_and_the_fix() -> None:
    """A max_size over the free slots is explained with the server's figures and what to do."""
    problem = pool_size_problem(max_size=20, max_connections=12, reserved=3, in_use=4, ours=1)
    assert problem is not None
    assert "max_size=20" in problem
    assert "max_connections=12" in problem
    assert "3 reserved, 3 used by other clients, so 6 free" in problem
    assert "at most 6" in problem
    assert "PgBouncer" in problem


def test_pool_size_problem_with_no_free_slot_never_advises_a_negative_size() -> None:
    """When others already use more than the free slots, the advice is "at most 0", not a
    negative size."""
    problem = pool_size_problem(max_size=5, max_connections=10, reserved=3, in_use=12, ours=0)
    assert problem is not None
    assert "so -5 free" in problem
    assert "at most 0" in problem


@pytest.mark.parametrize(
    "tag",
    ["SET", "RESET", "LISTEN", "PREPARE", "DECLARE CURSOR", "CREATE TABLE", "DO", "DISCARD ALL"],
)
def test_session_command_tags_are_dirty(tag: str) -> None:
    """Every command tag that leaves session state behind marks the connection dirty."""
    assert is_dirty(tag)


@pytest.mark.parametrize("tag", [None, "", "SELECT 1", "INSERT 0 3", "UPDATE 2", "COMMIT"])
def test_ordinary_command_tags_are_clean(tag: str | None) -> None:
    """Ordinary statements (and no statement at all) do not."""
    assert not is_dirty(tag)


def test_session_baseline_query_reads_pgkeels_and_watched_settings_once() -> None:
    """The check reads pgkeel's settings, the options' -c settings and the watched ones, each
    once and lowercased, then counts the LISTEN channels; the values stay out of the query."""
    config = resolve(
        "postgresql://u:secret@localhost/db",
        {"options": "-c Search_Path=app -c work_mem=64MB"},
    )
    baseline = SessionBaseline(config)
    assert len(baseline.names) == len(set(baseline.names))
    assert {"statement_timeout", "work_mem", "search_path", *WATCHED_SETTINGS} <= set(
        baseline.names
    )
    assert baseline.query.startswith("SELECT current_setting('")
    assert "current_setting('work_mem', true)" in baseline.query
    assert baseline.query.endswith("(SELECT count(*) FROM pg_listening_channels())")
    assert "64MB" not in baseline.query
    assert "secret" not in baseline.query


def test_session_baseline_drift_names_what_differs_never_the_values() -> None:
    """Drift is judged against the first fresh session seen for the same settings mode; it
    names the settings (and the LISTEN channels) that differ, never their values."""
    baseline = SessionBaseline(resolve("postgresql://localhost/db", {}))
    fresh = ["value"] * len(baseline.names) + [0]
    assert not baseline.known("set")
    assert baseline.drift("set", fresh) == []  # no fresh session seen yet: no verdict
    baseline.learn("set", fresh)
    baseline.learn("set", ["other"] * len(fresh))  # the first one stays
    assert baseline.known("set")
    assert not baseline.known("startup")
    assert baseline.drift("set", fresh) == []
    assert baseline.drift("set", None) == []
    changed = list(fresh)
    changed[baseline.names.index("search_path")] = "evil, public"
    changed[-1] = 2
    drift = baseline.drift("set", changed)
    assert drift == ["search_path", "LISTEN channels"]
    assert "evil" not in " ".join(drift)
    assert baseline.drift("startup", changed) == []  # another mode's fresh session is unknown


def test_last_error_is_one_line_with_the_class_and_cleared_by_success() -> None:
    """The last connection error reads as one line starting with the error's class (just the
    class if the message is empty), and is forgotten after a success."""
    last = LastError()
    assert last.message is None
    last.record(OSError("connection refused\n\tIs the server running?  "))
    assert last.message == "OSError: connection refused Is the server running?"
    last.record(TimeoutError())
    assert last.message == "TimeoutError"
    last.clear()
    assert last.message is None


def test_counters_add_up_across_threads() -> None:
    """The counters lose no increment when many threads update them at once."""
    counters = Counters()

    def work() -> None:
        for i in range(1000):
            counters.checkout(0.001 * (i % 3))
            counters.error()
            counters.retry()
            counters.reset()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (counters.checkouts, counters.errors, counters.retries, counters.resets) == (
        8000,
        8000,
        8000,
        8000,
    )
    assert counters.wait_max == pytest.approx(0.002)
    assert counters.wait_total == pytest.approx(8 * sum(0.001 * (i % 3) for i in range(1000)))
