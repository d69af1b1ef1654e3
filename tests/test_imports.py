"""``import pgkeel`` stays light: no optional extra, no CLI toolkit, nothing started."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Top-level modules that `import pgkeel` must leave unloaded: optional extras (pglast for
#: migrations, opentelemetry for tracing, FastAPI for integrations, psycopg2/asyncpg backends,
#: cryptography and pgserver for the embedded server) and what only the CLI needs (click, rich).
HEAVY = (
    "asyncpg",
    "click",
    "cryptography",
    "fastapi",
    "flask",
    "jinja2",
    "opentelemetry",
    "pglast",
    "pgserver",
    "psycopg2",
    "prometheus_client",
    "pytest",
    "rich",
    "starlette",
    "uvicorn",
)


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {name.partition(".")[0] for name in out.split()}


@pytest.mark.parametrize(
    "code",
    [
        "import pgkeel",
        "import pgkeel.bulk",
        "import pgkeel.cdc",
        "import pgkeel.config",
        "import pgkeel.embedded",
        "import pgkeel.migrate",
        "import pgkeel.testing",
        "import pgkeel.types",
        "import pgkeel.integrations",
    ],
)
def test_import_loads_no_optional_extra(code: str) -> None:
    """Importing pgkeel (or a core subpackage) loads none of the optional or CLI-only modules."""
    assert _loaded_after(code) & set(HEAVY) == set()


def test_cli_help_does_not_load_pglast() -> None:
    """`pgkeel --help` builds every command group without importing pglast or the extras."""
    code = (
        "import sys\nfrom pgkeel.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "for group in ('db', 'copy', 'migrate'):\n"
        "    try:\n        main([group, '--help'])\n    except SystemExit:\n        pass\n"
    )
    loaded = _loaded_after(code)
    assert "click" in loaded  # the check can fail: the CLI did load
    assert (
        loaded & {"pglast", "fastapi", "psycopg2", "asyncpg", "pgserver", "cryptography"} == set()
    )
