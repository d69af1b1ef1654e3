"""Translation of the drivers' exceptions (pgkeel.drivers._errors) and the choice of a driver
(pgkeel.drivers.load), without a server."""

from __future__ import annotations

import sys

import asyncpg
import psycopg
import psycopg2
import psycopg2.errors
import pytest
from psycopg import errors as pg_errors

import pgkeel
from pgkeel.config import resolve
from pgkeel.drivers import load
from pgkeel.drivers._errors import translate
from pgkeel.errors import ConfigError, NotSupportedError


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (asyncpg.exceptions.UniqueViolationError("dup"), pg_errors.UniqueViolation),
        (asyncpg.exceptions.CheckViolationError("chk"), pg_errors.CheckViolation),
        (asyncpg.exceptions.SerializationError("ser"), pg_errors.SerializationFailure),
        (asyncpg.exceptions.DeadlockDetectedError("dl"), pg_errors.DeadlockDetected),
        (asyncpg.exceptions.QueryCanceledError("t/o"), pg_errors.QueryCanceled),
        (asyncpg.exceptions.AdminShutdownError("bye"), pg_errors.AdminShutdown),
        (asyncpg.exceptions.ConnectionDoesNotExistError("gone"), psycopg.OperationalError),
        (ConnectionResetError("reset"), psycopg.OperationalError),
        (asyncpg.exceptions.InterfaceError("misuse"), psycopg.InterfaceError),
        (
            asyncpg.exceptions.DataError("value out of int32 range"),
            pg_errors.NumericValueOutOfRange,
        ),
        (psycopg2.errors.UniqueViolation("dup"), pg_errors.UniqueViolation),
        (psycopg2.OperationalError("server closed the connection"), psycopg.OperationalError),
    ],
)
def test_translation_by_sqlstate_and_class(exc: BaseException, cls: type) -> None:
    """Each driver exception becomes the psycopg class a psycopg user would catch."""
    driver = "psycopg2" if type(exc).__module__.startswith("psycopg2") else "asyncpg"
    if isinstance(exc, psycopg2.errors.UniqueViolation):
        # psycopg2 reads pgcode from the server's message; a hand-made one has none.
        exc = _with_pgcode(exc, "23505")
    got = translate(exc, driver=driver)
    assert isinstance(got, cls)


def _with_pgcode(exc: BaseException, code: str) -> BaseException:
    class Coded(type(exc)):  # type: ignore[misc]
        pgcode = code

    return Coded(*exc.args)


def test_unknown_sqlstate_falls_back_to_its_class() -> None:
    """An SQLSTATE psycopg has no class for still maps by its two-letter class."""

    class Odd(Exception):
        sqlstate = "22ZZZ"

    assert type(translate(Odd("x"), driver="asyncpg")) is psycopg.DataError


def test_other_exceptions_pass_unchanged() -> None:
    """A user's exception, a psycopg error or a cancellation is not the driver's: None."""
    assert translate(ValueError("mine"), driver="asyncpg") is None
    assert translate(psycopg.OperationalError("x"), driver="asyncpg") is None
    assert translate(KeyboardInterrupt(), driver="asyncpg") is None


def test_the_detail_is_kept() -> None:
    """The server's DETAIL reaches the translated message."""
    exc = asyncpg.exceptions.UniqueViolationError("dup key")
    exc.detail = "Key (id)=(1) already exists."  # type: ignore[attr-defined]
    assert "Key (id)=(1)" in str(translate(exc, driver="asyncpg"))


def test_driver_choice_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown name lists the valid ones; a driver of the other face names the right class;
    a missing extra names the pip command."""
    with pytest.raises(ConfigError, match="psycopg', 'asyncpg', 'psycopg2"):
        resolve("postgresql:///x", {"driver": "pg8000"})
    with pytest.raises(ConfigError, match=r"pgkeel.AsyncDatabase\(url, driver='asyncpg'\)"):
        pgkeel.Database("postgresql:///x", driver="asyncpg")
    with pytest.raises(ConfigError, match=r"pgkeel.Database\(url, driver='psycopg2'\)"):
        pgkeel.AsyncDatabase("postgresql:///x", driver="psycopg2")
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    with pytest.raises(NotSupportedError, match=r"pip install 'pgkeel\[asyncpg\]'"):
        load("asyncpg", face="async", config=resolve("postgresql:///x"))


def test_driver_from_the_environment() -> None:
    """PGKEEL_DRIVER sets the driver like the other options; a keyword wins."""
    assert resolve("postgresql:///x", environ={"PGKEEL_DRIVER": "asyncpg"}).driver == "asyncpg"
    assert (
        resolve(
            "postgresql:///x", {"driver": "psycopg"}, environ={"PGKEEL_DRIVER": "asyncpg"}
        ).driver
        == "psycopg"
    )
    with pytest.raises(ConfigError, match="driver"):
        resolve("postgresql:///x", environ={"PGKEEL_DRIVER": "nope"})
