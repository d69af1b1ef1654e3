"""Migration files: discovery, naming, checksums, the next file's name (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgkeel.errors import MigrationError
from pgkeel.migrate import discover, new
from pgkeel.migrate._files import checksum, normalise


def test_discover_orders_by_version_and_ignores_other_files(tmp_path: Path) -> None:
    """Versions sort numerically (9 before 10); READMEs, hidden files, __init__.py are skipped."""
    for name in ("0010_j.sql", "0009_i.py", "README.md", ".hidden.sql", "__init__.py"):
        (tmp_path / name).write_text("SELECT 1;" if name.endswith(".sql") else "def up(tx): ...")
    (tmp_path / "__pycache__").mkdir()
    found = discover(tmp_path)
    assert [(m.version, m.name, m.kind) for m in found] == [(9, "i", "python"), (10, "j", "sql")]
    assert found[1].label == "0010_j"


def test_missing_directory_says_how_to_create_it(tmp_path: Path) -> None:
    """A missing directory is an error naming --dir and `pgkeel migrate new`."""
    with pytest.raises(MigrationError, match="pgkeel migrate new NAME"):
        discover(tmp_path / "nope")


@pytest.mark.parametrize("name", ["1-add.sql", "add.sql", "0001_.sql", "0001_a b.sql", "x_1.py"])
def test_misnamed_files_are_errors(tmp_path: Path, name: str) -> None:
    """A .sql/.py file that does not fit NNNN_name is an error, not silently skipped."""
    (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"does not fit NNNN_name\.sql"):
        discover(tmp_path)


def test_line_endings_and_bom_do_not_change_the_checksum() -> None:
    """CRLF, CR and a UTF-8 BOM normalise to the same text, hence the same checksum."""
    p = Path("x.sql")
    lf = normalise(b"SELECT 1;\nSELECT 2;\n", p)
    assert normalise(b"SELECT 1;\r\nSELECT 2;\r\n", p) == lf
    assert normalise(b"\xef\xbb\xbfSELECT 1;\rSELECT 2;\r", p) == lf
    assert checksum(lf) != checksum(lf + " ")


def test_non_utf8_file_is_an_error(tmp_path: Path) -> None:
    """A file that is not UTF-8 names the byte and the fix."""
    (tmp_path / "0001_a.sql").write_bytes(b"SELECT '\xff';")
    with pytest.raises(MigrationError, match="not UTF-8 text"):
        discover(tmp_path)


def test_new_numbers_the_next_file(tmp_path: Path) -> None:
    """`new` creates 0001_... in an empty directory, then the next number, keeping the width."""
    first = new(tmp_path / "m", "Create products")
    assert first.name == "0001_create_products.sql"
    (tmp_path / "m" / "0001_create_products.sql").write_text("CREATE TABLE p (a int);")
    second = new(tmp_path / "m", "add-tags", kind="python")
    assert second.name == "0002_add_tags.py"
    assert "def up(tx):" in second.read_text()
    wide = tmp_path / "w"
    wide.mkdir()
    (wide / "000001_a.sql").write_text("SELECT 1;")
    assert new(wide, "b").name == "000002_b.sql"


@pytest.mark.parametrize("name", ["", "   ", "a/b", "semi;colon", "ü"])
def test_new_refuses_bad_names(tmp_path: Path, name: str) -> None:
    """Names that would not fit the pattern are refused before a file is written."""
    with pytest.raises(MigrationError, match="must be letters, digits"):
        new(tmp_path, name)
    assert list(tmp_path.iterdir()) == []
