"""`pgkeel copy in|out`: CSV load and export from the command line, summaries and exit codes."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pgkeel.cli import main
from pgkeel.cli.copy import Meter

pytest_plugins = ["fix_bulk"]


def test_copy_in_then_out_round_trip_with_json_summary(
    pg_url: str, admin: Any, tmp_path: Path
) -> None:
    """copy in loads a CSV (header maps columns) and copy out writes it back, each with --json."""
    admin.execute("CREATE SCHEMA s; CREATE TABLE s.t (id int, name text)")
    src = tmp_path / "in.csv"
    src.write_text('name,id\n"a, b",1\n"multi\nline",2\n')
    runner = CliRunner()
    loaded = runner.invoke(main, ["copy", "in", "s.t", str(src), "--url", pg_url, "--json"])
    assert loaded.exit_code == 0, loaded.output
    summary = json.loads(loaded.output)
    assert summary["ok"] is True
    assert summary["rows"] == 2
    out = tmp_path / "out.csv"
    query = "SELECT id, name FROM s.t ORDER BY id"
    dumped = runner.invoke(main, ["copy", "out", query, str(out), "--url", pg_url])
    assert dumped.exit_code == 0, dumped.output
    assert "out: 2 rows" in dumped.output
    assert out.read_text() == 'id,name\n1,"a, b"\n2,"multi\nline"\n'


def test_copy_in_error_exits_1_and_loads_nothing(pg_url: str, admin: Any, tmp_path: Path) -> None:
    """A bad CSV line makes copy in exit 1 with the server's message; the table stays empty."""
    admin.execute("CREATE TABLE t (id int)")
    src = tmp_path / "bad.csv"
    src.write_text("id\n1\nzwei\n")
    runner = CliRunner()
    result = runner.invoke(main, ["copy", "in", "t", str(src), "--url", pg_url])
    assert result.exit_code == 1
    assert "invalid input syntax for type integer" in result.output
    as_json = runner.invoke(main, ["copy", "in", "nosuch", str(src), "--url", pg_url, "--json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.output)["type"] == "TableNotFoundError"
    assert admin.execute("SELECT count(*) FROM t").fetchone() == (0,)


# The real command in a subprocess: stdout and stderr apart, real signals, real terminals.


def pgkeel(
    *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgkeel", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


@pytest.fixture
def people(admin: Any) -> Any:
    admin.execute("CREATE TABLE people (id int PRIMARY KEY, name text)")
    return admin


FAILS_LATE = "SELECT CASE WHEN g > 1000 THEN 1/0 ELSE g END FROM generate_series(1, 100000) g"


def test_copy_out_failure_leaves_no_file_nor_temp_file(pg_url: str, tmp_path: Path) -> None:
    """A query that fails after 1,000 rows leaves no output and no temporary file behind."""
    out = tmp_path / "out.csv"
    result = pgkeel("copy", "out", FAILS_LATE, str(out), "--url", pg_url)
    assert result.returncode == 1, result.stderr
    assert "division by zero" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_copy_out_failure_keeps_the_previous_file(pg_url: str, tmp_path: Path) -> None:
    """A failed export over an existing file leaves that file as it was."""
    out = tmp_path / "out.csv"
    out.write_text("previous export\n")
    result = pgkeel("copy", "out", FAILS_LATE, str(out), "--url", pg_url)
    assert result.returncode == 1
    assert out.read_text() == "previous export\n"
    assert list(tmp_path.iterdir()) == [out]


def test_copy_out_success_replaces_the_file_with_usual_mode(pg_url: str, tmp_path: Path) -> None:
    """A successful export replaces the target, with the mode open() would give, no temp file."""
    out = tmp_path / "out.csv"
    out.write_text("previous export\n")
    result = pgkeel("copy", "out", "SELECT 1 AS one", str(out), "--url", pg_url)
    assert result.returncode == 0, result.stderr
    assert out.read_text() == "one\n1\n"
    assert list(tmp_path.iterdir()) == [out]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


def test_copy_out_to_stdout_writes_only_data(pg_url: str, people: Any) -> None:
    """`copy out ... -` puts the CSV alone on stdout; the summary (text or JSON) goes to stderr."""
    people.execute("INSERT INTO people VALUES (1, 'a'), (2, 'b')")
    query = "SELECT id, name FROM people ORDER BY id"
    result = pgkeel("copy", "out", query, "-", "--url", pg_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "id,name\n1,a\n2,b\n"
    assert "out: 2 rows" in result.stderr
    as_json = pgkeel("copy", "out", query, "-", "--url", pg_url, "--json")
    assert as_json.stdout == "id,name\n1,a\n2,b\n"
    assert json.loads(as_json.stderr)["rows"] == 2


def test_copy_in_from_stdin(pg_url: str, people: Any) -> None:
    """`copy in TABLE -` reads the CSV from stdin; stdout stays empty, the summary is on stderr."""
    result = pgkeel("copy", "in", "people", "-", "--url", pg_url, input="name,id\nx,1\ny,2\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "in: 2 rows" in result.stderr
    assert people.execute("SELECT id, name FROM people ORDER BY id").fetchall() == [
        (1, "x"),
        (2, "y"),
    ]


def test_error_line_numbers_are_the_files_own(pg_url: str, people: Any, tmp_path: Path) -> None:
    """A bad value on the file's line 3 is reported as line 3, header or not, file or stdin."""
    with_header = tmp_path / "h.csv"
    with_header.write_text("id,name\n1,a\nzwei,b\n")
    result = pgkeel("copy", "in", "people", str(with_header), "--url", pg_url)
    assert result.returncode == 1
    assert "line 3," in result.stderr, result.stderr
    piped = pgkeel("copy", "in", "people", "-", "--url", pg_url, input=with_header.read_text())
    assert "line 3," in piped.stderr, piped.stderr
    no_header = tmp_path / "n.csv"
    no_header.write_text("1,a\n2,b\ndrei,c\n")
    result = pgkeel("copy", "in", "people", str(no_header), "--no-header", "--url", pg_url)
    assert "line 3," in result.stderr, result.stderr
    assert people.execute("SELECT count(*) FROM people").fetchone() == (0,)


def test_empty_and_header_only_files(pg_url: str, people: Any, tmp_path: Path) -> None:
    """An empty file or a blank header says so (exit 1); a header-only file loads 0 rows."""
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = pgkeel("copy", "in", "people", str(empty), "--url", pg_url)
    assert result.returncode == 1
    assert f"{empty} is empty" in result.stderr
    assert "syntax error" not in result.stderr
    blank = tmp_path / "blank.csv"
    blank.write_text("\n1,a\n")
    result = pgkeel("copy", "in", "people", str(blank), "--url", pg_url)
    assert result.returncode == 1
    assert "has no header" in result.stderr
    only_header = tmp_path / "header.csv"
    only_header.write_text("id,name\n")
    result = pgkeel("copy", "in", "people", str(only_header), "--url", pg_url)
    assert result.returncode == 0, result.stderr
    assert "in: 0 rows" in result.stderr
    assert people.execute("SELECT count(*) FROM people").fetchone() == (0,)


def test_copy_out_param(pg_url: str, people: Any) -> None:
    """--param fills the query's %s placeholders; a %s without --param says to use --param."""
    people.execute("INSERT INTO people VALUES (1, 'a'), (2, 'it''s'), (3, 'c')")
    query = "SELECT name FROM people WHERE id = %s OR name = %s ORDER BY id"
    result = pgkeel("copy", "out", query, "-", "--param", "1", "--param", "it's", "--url", pg_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "name\na\nit's\n"
    missing = pgkeel("copy", "out", query, "-", "--url", pg_url)
    assert missing.returncode == 1
    assert "--param" in missing.stderr
    table = pgkeel("copy", "out", "people", "-", "--param", "1", "--url", pg_url)
    assert table.returncode == 2
    assert "SOURCE is a table" in table.stderr


def test_progress_keeps_running_past_100_rows() -> None:
    """The progress task has no total of 100: past 100 rows it is not finished, its clock runs."""
    meter = Meter("out", total_bytes=None, draw=True)
    with meter.shown():
        meter.set_rows(5_000)
        assert meter.bar is not None
        task = meter.bar.tasks[0]
        assert task.total is None
        assert not task.finished
        assert task.stop_time is None
        assert task.fields["rows"] == 5_000
    sized = Meter("in", total_bytes=1_000_000, draw=True)
    with sized.shown():
        sized.add_bytes(250_000)
        sized.set_rows(5_000)
        assert sized.bar is not None
        task = sized.bar.tasks[0]
        assert (task.completed, task.total) == (250_000, 1_000_000)
        assert not task.finished


def test_progress_on_a_terminal_shows_bytes_of_file_size(
    pg_url: str, people: Any, tmp_path: Path
) -> None:
    """On a terminal, copy in draws rows, rows/s and bytes read of the file's size on stderr."""
    src = tmp_path / "big.csv"
    src.write_text("id,name\n" + "".join(f"{i},name{i}\n" for i in range(20_000)))
    size_kb = f"{src.stat().st_size / 1000:.1f}"
    primary, secondary = pty.openpty()
    env = {**os.environ, "COLUMNS": "200", "TERM": "xterm"}
    with subprocess.Popen(
        [sys.executable, "-m", "pgkeel", "copy", "in", "people", str(src), "--url", pg_url],
        stdout=subprocess.PIPE,
        stderr=secondary,
        env=env,
    ) as proc:
        os.close(secondary)
        drawn = b""
        with contextlib.suppress(OSError):  # EIO once the child has closed the terminal
            while chunk := os.read(primary, 65536):
                drawn += chunk
        stdout, _ = proc.communicate(timeout=120)
    os.close(primary)
    assert proc.returncode == 0
    assert stdout == b""
    text = drawn.decode(errors="replace")
    assert f"{size_kb}/{size_kb} kB" in text, text
    assert "20,000 rows" in text
    assert "rows/s" in text


def test_sigint_exits_130_after_rollback(pg_url: str, people: Any, tmp_path: Path) -> None:
    """SIGINT during a copy in (held mid-file by a lock) exits 130 and leaves the table empty."""
    # Row 50,000 waits on an advisory lock this test holds: the COPY is then provably running,
    # with 49,999 rows already inserted in its transaction.
    people.execute(
        """
        CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.id = 50000 THEN PERFORM pg_advisory_xact_lock(42); END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER hold BEFORE INSERT ON people FOR EACH ROW EXECUTE FUNCTION hold();
        """
    )
    src = tmp_path / "big.csv"
    src.write_text("id,name\n" + "".join(f"{i},n\n" for i in range(1, 100_001)))
    people.execute("SELECT pg_advisory_lock(42)")
    with subprocess.Popen(
        [sys.executable, "-m", "pgkeel", "copy", "in", "people", str(src), "--url", pg_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        _wait_for_advisory_wait(people, proc)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    people.execute("SELECT pg_advisory_unlock(42)")
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert stdout == ""
    assert people.execute("SELECT count(*) FROM people").fetchone() == (0,)


def _wait_for_advisory_wait(admin: Any, proc: subprocess.Popen[str]) -> None:
    """Until a backend of the test's database waits on the advisory lock the test holds."""
    deadline = time.monotonic() + 60
    while not admin.execute(
        "SELECT 1 FROM pg_stat_activity"
        " WHERE wait_event = 'advisory' AND datname = current_database()"
    ).fetchone():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the COPY never reached the lock"
        time.sleep(0.05)


def test_sigint_during_copy_out_exits_130_and_leaves_no_file(
    pg_url: str, admin: Any, tmp_path: Path
) -> None:
    """SIGINT while copy out is mid-query (held by a lock) exits 130 and leaves no file at all."""
    admin.execute(
        """
        CREATE FUNCTION hold(n int) RETURNS int LANGUAGE plpgsql AS $$
        BEGIN
            IF n = 50000 THEN PERFORM pg_advisory_xact_lock(42); END IF;
            RETURN n;
        END $$
        """
    )
    admin.execute("SELECT pg_advisory_lock(42)")
    out = tmp_path / "out.csv"
    query = "SELECT hold(g) FROM generate_series(1, 100000) g"
    with subprocess.Popen(
        [sys.executable, "-m", "pgkeel", "copy", "out", query, str(out), "--url", pg_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        _wait_for_advisory_wait(admin, proc)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    admin.execute("SELECT pg_advisory_unlock(42)")
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert list(tmp_path.iterdir()) == []


def test_copy_out_to_a_fifo_writes_through_it(pg_url: str, tmp_path: Path) -> None:
    """A FIFO (like /dev/null) is written directly, not replaced by a renamed temporary file."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = pgkeel("copy", "out", "SELECT 1 AS one", str(fifo), "--url", pg_url)
    reader.join(timeout=60)
    assert result.returncode == 0, result.stderr
    assert received == [b"one\n1\n"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert list(tmp_path.iterdir()) == [fifo]


def test_copy_out_into_a_missing_directory(pg_url: str, tmp_path: Path) -> None:
    """An output in a directory that does not exist fails before the query, naming the file."""
    out = tmp_path / "nosuch" / "out.csv"
    result = pgkeel("copy", "out", "SELECT 1", str(out), "--url", pg_url)
    assert result.returncode == 1
    assert f"cannot write {out}: No such file or directory" in result.stderr


def test_a_first_line_too_long_for_a_header(pg_url: str, people: Any, tmp_path: Path) -> None:
    """A file whose first line is over 1 MiB is refused as headerless, without reading it all."""
    src = tmp_path / "blob.csv"
    src.write_bytes(b"x" * (2 << 20))
    result = pgkeel("copy", "in", "people", str(src), "--url", pg_url)
    assert result.returncode == 1
    assert "is longer than 1,048,576 bytes" in result.stderr
