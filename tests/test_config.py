"""Configuration: URL sources, production defaults, options, redaction and the SSL policy."""

from __future__ import annotations

import logging
import traceback

import pytest
from psycopg.conninfo import conninfo_to_dict

import pgkeel
from pgkeel.config import redact, resolve
from pgkeel.errors import ConfigError

URL = "postgresql://app:s3cr3t-pw@db.internal:5432/shop"


def params(cfg: pgkeel.config.Config) -> dict[str, str]:
    return conninfo_to_dict(cfg.conninfo)  # type: ignore[return-value]


def test_production_defaults_applied() -> None:
    """Without options, timeouts, keepalives, server timeouts and pool sizes get the defaults."""
    cfg = resolve("postgresql://u@localhost/db", {}, {})
    p = params(cfg)
    assert p["connect_timeout"] == "5"
    assert (p["keepalives_idle"], p["keepalives_interval"], p["keepalives_count"]) == (
        "30",
        "10",
        "3",
    )
    assert p["tcp_user_timeout"] == "60000"
    assert p["application_name"]
    assert "-c statement_timeout=30s" in p["options"]
    assert "-c lock_timeout=10s" in p["options"]
    assert "-c idle_in_transaction_session_timeout=60s" in p["options"]
    assert (cfg.min_size, cfg.max_size, cfg.timeout) == (2, 10, 5.0)
    assert (cfg.max_idle, cfg.max_lifetime, cfg.leak_timeout) == (300.0, 3600.0, 60.0)


def test_user_values_override_defaults() -> None:
    """URL parameters and keyword options win over defaults; numbers are seconds for settings."""
    cfg = resolve(
        "postgresql://u@localhost/db?connect_timeout=2&application_name=svc",
        {"statement_timeout": 1.5, "lock_timeout": None, "max_size": 3, "min_size": 1},
        {},
    )
    p = params(cfg)
    assert (p["connect_timeout"], p["application_name"]) == ("2", "svc")
    assert "-c statement_timeout=1500ms" in p["options"]
    assert "lock_timeout" not in p["options"]
    assert (cfg.min_size, cfg.max_size) == (1, 3)


def test_database_url_and_pgkeel_env() -> None:
    """DATABASE_URL is used when no url is given, and PGKEEL_* variables set options."""
    env = {
        "DATABASE_URL": "postgresql://u@h1/envdb",
        "PGKEEL_MAX_SIZE": "7",
        "PGKEEL_LOCK_TIMEOUT": "3s",
    }
    cfg = resolve(None, {}, env)
    assert params(cfg)["dbname"] == "envdb"
    assert cfg.max_size == 7
    assert "-c lock_timeout=3s" in params(cfg)["options"]


def test_libpq_environment_left_to_libpq() -> None:
    """With no URL, PG* variables are not overridden: the PGCONNECT_TIMEOUT/PGAPPNAME defaults
    are skipped and PGOPTIONS is kept (merged with the server settings)."""
    env = {"PGCONNECT_TIMEOUT": "9", "PGAPPNAME": "mine", "PGOPTIONS": "-c work_mem=8MB"}
    p = params(resolve(None, {}, env))
    assert "connect_timeout" not in p
    assert "application_name" not in p
    assert p["options"].startswith("-c work_mem=8MB")
    assert "host" not in p


@pytest.mark.parametrize(
    ("url", "part"),
    [
        ("postgresql://app:s3cr3t-pw@h:notaport/db", "port"),
        ("postgresql://app:s3cr3t-pw@h/db?bogus=1", "bogus"),
        ("host=h password=s3cr3t-pw dbname", "dbname"),
    ],
)
def test_malformed_url_names_the_part_without_password(url: str, part: str) -> None:
    """A malformed URL raises ConfigError naming the wrong part and never the password."""
    with pytest.raises(pgkeel.ConfigError) as info:
        resolve(url, {}, {})
    assert part in str(info.value)
    assert "s3cr3t-pw" not in str(info.value)
    assert "s3cr3t-pw" not in "".join(traceback.format_exception(info.value))


def test_unknown_option_and_bad_values() -> None:
    """An unknown option or a bad value raises ConfigError that names it."""
    with pytest.raises(pgkeel.ConfigError, match="'max_sise'"):
        resolve(URL, {"max_sise": 3}, {})
    with pytest.raises(pgkeel.ConfigError, match="size_check"):
        resolve(URL, {"size_check": "maybe"}, {})
    with pytest.raises(pgkeel.ConfigError, match="PGKEEL_TIMEOUT"):
        resolve(URL, {}, {"PGKEEL_TIMEOUT": "soon"})
    with pytest.raises(pgkeel.ConfigError, match="min_size"):
        resolve(URL, {"min_size": 5, "max_size": 2}, {})
    # libpq parameters pass through.
    assert (
        params(resolve(URL, {"target_session_attrs": "read-write"}, {}))["target_session_attrs"]
        == "read-write"
    )


def test_password_redacted_in_repr() -> None:
    """repr()/str() of a Config and a Database never show the password."""
    cfg = resolve(URL, {}, {})
    assert "s3cr3t-pw" in cfg.conninfo  # it is there, for libpq
    for text in (repr(cfg), str(cfg), redact(cfg.conninfo), redact(URL)):
        assert "s3cr3t-pw" not in text
        assert "***" in text
    db = pgkeel.Database(URL + "?sslmode=require")
    assert "s3cr3t-pw" not in repr(db)
    assert "s3cr3t-pw" not in str(db)
    assert "db.internal" in repr(db)


def test_plaintext_to_remote_host_warns(caplog: pytest.LogCaptureFixture) -> None:
    """A non-local host without sslmode>=require logs a warning; local hosts do not."""
    caplog.set_level(logging.WARNING, logger="pgkeel")
    pgkeel.Database(URL)
    assert any("without TLS" in r.getMessage() for r in caplog.records)
    caplog.clear()
    pgkeel.Database("postgresql://u:pw@127.0.0.1/db")
    pgkeel.Database(URL + "?sslmode=verify-full")
    assert not caplog.records


def test_ssl_required_raises_for_plaintext() -> None:
    """ssl='required' turns the plaintext warning into a ConfigError naming the fix."""
    with pytest.raises(pgkeel.ConfigError, match="verify-full"):
        resolve("postgresql://u:pw@a.example,b.example/db?sslmode=prefer", {"ssl": "required"}, {})
    resolve(URL + "?sslmode=verify-full", {"ssl": "required"}, {})


def test_setting_seconds_never_round_to_no_limit() -> None:
    """A tiny positive timeout stays a limit (1ms, not 0 = none); 0 is no limit; negative fails."""
    p = params(resolve("postgresql://u@localhost/db", {"statement_timeout": 0.0004}, {}))
    assert "-c statement_timeout=1ms" in p["options"]
    p = params(resolve("postgresql://u@localhost/db", {"statement_timeout": 0}, {}))
    assert "-c statement_timeout=0" in p["options"]
    with pytest.raises(ConfigError, match="negative"):
        resolve("postgresql://u@localhost/db", {"lock_timeout": -1}, {})
