"""Configuration: URL sources, production defaults, options, redaction and the SSL policy."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

import pgkeel
from pgkeel.config import redact, resolve
from pgkeel.errors import ConfigError

URL = "postgresql://app:s3cr3t-pw@db.internal:5432/shop"
CANARY = "canary-Secret-91b7"


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


# --- the options string ------------------------------------------------------------------------


def settings_in(cfg: pgkeel.config.Config) -> dict[str, str]:
    """The settings the server will see, read back from the options string it gets."""
    options = params(cfg).get("options", "")
    words = options.replace("\\ ", "\0").split()
    out: dict[str, str] = {}
    i = 0
    while i < len(words):
        if words[i] == "-c":
            name, _, value = words[i + 1].replace("\0", " ").partition("=")
            out[name] = value
            i += 2
        else:
            i += 1
    return out


def test_other_setting_does_not_drop_a_default() -> None:
    """-c deadlock_timeout=2s in the URL keeps the lock_timeout default (not a substring test)."""
    cfg = resolve("postgresql://u@localhost/db?options=-c%20deadlock_timeout%3D2s", {}, {})
    got = settings_in(cfg)
    assert got["deadlock_timeout"] == "2s"
    assert got["lock_timeout"] == "10s"
    assert got["statement_timeout"] == "30s"


@pytest.mark.parametrize(
    "options",
    [
        "-c statement_timeout=1s",
        "-cstatement_timeout=1s",
        "--statement_timeout=1s",
        "--statement-timeout=1s",
        "-c Statement_Timeout=1s",
    ],
)
def test_user_setting_in_any_form_wins(options: str) -> None:
    """A setting the URL gives in any form the server accepts wins over pgkeel's default."""
    cfg = resolve("host=localhost dbname=db", {"options": options}, {})
    assert settings_in(cfg)["statement_timeout"] == "1s"
    assert dict(cfg.settings)["statement_timeout"] == "1s"


def test_options_escapes_round_trip() -> None:
    """Backslash escapes in options are read like the server does and written back escaped."""
    cfg = resolve("host=localhost", {"options": r"-c search_path=a,\ b -c lock_timeout=3s"}, {})
    assert dict(cfg.settings)["search_path"] == "a, b"
    assert settings_in(cfg)["search_path"] == "a, b"
    assert settings_in(cfg)["lock_timeout"] == "3s"


@pytest.mark.parametrize(
    "options",
    ["-c statement_timeout", "statement_timeout=1s", "-c", f"-c app.password= {CANARY}"],
)
def test_malformed_options_raise(options: str) -> None:
    """A setting without a value, or a word that is not a switch, is a ConfigError (which does
    not quote the stray word: it may be a secret)."""
    with pytest.raises(ConfigError, match="options") as info:
        resolve("host=localhost", {"options": options}, {})
    assert CANARY not in str(info.value)


@pytest.mark.parametrize(
    "value", ["30s -c search_path=evil", "soon", "-1s", "30 seconds", "1e3", "30s;"]
)
def test_environment_settings_validated(value: str) -> None:
    """PGKEEL_STATEMENT_TIMEOUT and its siblings must be a duration: nothing else reaches the
    options string."""
    with pytest.raises(ConfigError, match="PGKEEL_STATEMENT_TIMEOUT"):
        resolve("host=localhost", {}, {"PGKEEL_STATEMENT_TIMEOUT": value})


def test_environment_durations_accepted() -> None:
    """Valid durations from the environment pass, with every PostgreSQL time unit."""
    for value, want in [("45s", "45s"), ("1.5 s", "1.5s"), ("2min", "2min"), ("250", "250")]:
        cfg = resolve("host=localhost", {}, {"PGKEEL_LOCK_TIMEOUT": value})
        assert settings_in(cfg)["lock_timeout"] == want


# --- option values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_size", True),
        ("max_size", "10"),
        ("max_size", 2.5),
        ("max_size", 0),
        ("timeout", "5"),
        ("timeout", float("nan")),
        ("timeout", float("inf")),
        ("timeout", 0),
        ("timeout", -1),
        ("leak_timeout", -0.5),
        ("ssl", True),
        ("session_settings", "sometimes"),
        ("prepare_threshold", -1),
        ("prepare_threshold", True),
        ("prepare_threshold", "5"),
        ("configure", "not callable"),
        ("connect_kwargs", ["context"]),
        ("connect_kwargs", {"autocommit": False}),
        ("connect_kwargs", {"row_factory": None}),
        ("connect_kwargs", {"sslmode": "disable"}),
        ("connect_kwargs", {"bogus": 1}),
        ("statement_timeout", "30 seconds"),
        ("statement_timeout", True),
    ],
)
def test_bad_option_values_name_the_option(option: str, value: object) -> None:
    """A wrong type, a negative or non-finite number, a bad choice: ConfigError naming the
    option, and never the password."""
    with pytest.raises(ConfigError) as info:
        resolve(URL + "?sslmode=verify-full", {option: value, "min_size": 0}, {})
    message = str(info.value)
    assert option in message
    assert "unknown option" not in message  # these options exist
    assert "min_size" not in message
    assert "s3cr3t-pw" not in message


def test_unknown_option_suggests_the_close_one() -> None:
    """An unknown option names itself and suggests the option meant."""
    with pytest.raises(ConfigError, match=r"'configur'.*did you mean 'configure'"):
        resolve(URL, {"configur": print}, {})


def test_new_options_accepted() -> None:
    """configure, prepare_threshold, connect_kwargs and session_settings are pgkeel options."""
    cfg = resolve(
        "host=localhost",
        {
            "configure": print,
            "prepare_threshold": None,
            "connect_kwargs": {"cursor_factory": None},
            "session_settings": "set",
        },
        {"PGKEEL_PREPARE_THRESHOLD": "3"},
    )
    assert cfg.configure is print
    assert cfg.prepare_threshold is None
    assert dict(cfg.connect_kwargs) == {"cursor_factory": None}
    assert (
        resolve("host=localhost", {}, {"PGKEEL_PREPARE_THRESHOLD": "none"}).prepare_threshold
        is None
    )
    assert resolve("host=localhost", {}, {"PGKEEL_PREPARE_THRESHOLD": "0"}).prepare_threshold == 0


def test_session_settings_modes_shape_the_connection_string() -> None:
    """startup puts the settings in options; set leaves them out (and blanks PGOPTIONS, which
    PgBouncer would refuse); server sends none of pgkeel's."""
    env = {"PGOPTIONS": "-c work_mem=8MB"}
    startup = resolve("host=localhost", {"session_settings": "startup"}, env)
    assert settings_in(startup)["statement_timeout"] == "30s"
    assert settings_in(startup)["work_mem"] == "8MB"
    set_mode = resolve("host=localhost", {"session_settings": "set"}, env)
    assert params(set_mode)["options"] == ""
    assert dict(set_mode.settings) == {
        "work_mem": "8MB",
        "statement_timeout": "30s",
        "lock_timeout": "10s",
        "idle_in_transaction_session_timeout": "60s",
    }
    auto = resolve("host=localhost", {}, {})
    assert "options" not in conninfo_to_dict(auto.plain_conninfo)
    server = resolve("host=localhost", {"session_settings": "server"}, {})
    assert "options" not in params(server)
    assert server.settings == ()


# --- secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://u@db.internal/x?sslmode=verify-full&sslpassword={CANARY}",
        f"host=db.internal sslmode=verify-full sslpassword={CANARY}",
        f"host=db.internal sslmode=verify-full oauth_client_secret={CANARY}",
        f"host=db.internal sslmode=verify-full options='-c app.api_key={CANARY}'",
        f"host=db.internal sslmode=verify-full options='-c app.password={CANARY}'",
        f"postgresql://u:{CANARY}@db.internal/x?sslmode=verify-full",
    ],
)
def test_every_secret_redacted(url: str, caplog: pytest.LogCaptureFixture) -> None:
    """password, sslpassword, oauth_client_secret and secret-looking -c settings appear in no
    repr, str, safe_conninfo or log record of a Config or a Database."""
    caplog.set_level(logging.DEBUG)
    cfg = resolve(url, {}, {})
    assert CANARY in cfg.conninfo  # there, for libpq
    db = pgkeel.Database(url)
    adb = pgkeel.AsyncDatabase(url)
    seen = [repr(cfg), str(cfg), cfg.safe_conninfo, redact(url), repr(db), str(db), repr(adb)]
    seen += [repr(db.config), str(db.stats())]
    seen += [r.getMessage() + str(r.args) for r in caplog.records]
    assert not [text for text in seen if CANARY in text]


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://u@db.internal:notaport/x?sslpassword={CANARY}",
        f"host=db.internal sslpassword={CANARY} dbname",
        f"host=db.internal sslpassword='{CANARY} dbname",
        f"mysql://u:{CANARY}@db.internal/x",
        f"postgresql://u@db.internal/x?sslpassword={CANARY}&bogus=1",
        f"host=db.internal sslmode=require sslpassword={CANARY}",
    ],
)
def test_secret_not_in_config_errors(url: str) -> None:
    """A ConfigError (malformed URL, unknown parameter, SSL policy) never shows a secret."""
    with pytest.raises(ConfigError) as info:
        resolve(url, {"ssl": "required"}, {})
    text = "".join(traceback.format_exception(info.value))
    assert CANARY not in text


# --- SSL policy ------------------------------------------------------------------------------


@pytest.mark.parametrize("sslmode", ["disable", "prefer", "require", "verify-ca"])
def test_ssl_required_means_verify_full(sslmode: str) -> None:
    """ssl='required' refuses every sslmode below verify-full, require included (no certificate
    check: open to a man in the middle)."""
    with pytest.raises(ConfigError, match="verify-full"):
        resolve(f"postgresql://u@db.example/x?sslmode={sslmode}", {"ssl": "required"}, {})


def test_ssl_verify_ca_said_explicitly() -> None:
    """sslmode=verify-ca passes only with ssl='verify-ca'; that still refuses require."""
    resolve("postgresql://u@db.example/x?sslmode=verify-ca", {"ssl": "verify-ca"}, {})
    with pytest.raises(ConfigError, match="verify-ca"):
        resolve("postgresql://u@db.example/x?sslmode=verify-ca", {"ssl": "required"}, {})
    with pytest.raises(ConfigError, match="certificate"):
        resolve("postgresql://u@db.example/x?sslmode=require", {"ssl": "verify-ca"}, {})
    # Local hosts need no TLS.
    resolve("postgresql://u@localhost/x?sslmode=disable", {"ssl": "required"}, {})


def _service_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "pg_service.conf"
    path.write_text(body)
    return path


def test_service_file_hosts_get_the_ssl_policy(tmp_path: Path) -> None:
    """A host that comes from service= (PGSERVICEFILE) is judged like a URL host."""
    path = _service_file(
        tmp_path,
        "# comment\n[other]\nhost=localhost\n\n[prod]\nhost=db.remote.example\nport=5433\n"
        f"password={CANARY}\n[next]\nsslmode=verify-full\n",
    )
    env = {"PGSERVICEFILE": str(path)}
    with pytest.raises(ConfigError, match=r"db\.remote\.example") as info:
        resolve("service=prod dbname=x", {"ssl": "required"}, env)
    assert CANARY not in str(info.value)
    cfg = resolve("service=prod", {}, env)
    assert cfg.ssl_warning
    assert "db.remote.example" in cfg.ssl_warning
    # PGSERVICE names the service too; an sslmode in the URL still counts.
    assert resolve("sslmode=verify-full", {"ssl": "required"}, {**env, "PGSERVICE": "prod"})
    with pytest.raises(ConfigError):
        resolve("", {"ssl": "required"}, {**env, "PGSERVICE": "prod"})


def test_service_file_sslmode_and_system_file(tmp_path: Path) -> None:
    """The service's own sslmode counts, and PGSYSCONFDIR/pg_service.conf is read when the
    user file does not define the service."""
    (tmp_path / "pg_service.conf").write_text("[prod]\nhost=db.remote.example\nsslmode=require\n")
    env = {"PGSERVICEFILE": str(tmp_path / "missing.conf"), "PGSYSCONFDIR": str(tmp_path)}
    with pytest.raises(ConfigError, match="sslmode=require"):
        resolve("service=prod", {"ssl": "required"}, env)
    (tmp_path / "pg_service.conf").write_text(
        "[prod]\nhost=db.remote.example\nsslmode=verify-full\n"
    )
    resolve("service=prod", {"ssl": "required"}, env)


# --- schemes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u:pw@h/db",
        "sqlite:///tmp/x.db",
        "MariaDB://h/db",
        "postgresql+psycopg://u:pw@h/db",
        "jdbc:postgresql://h/db",
    ],
)
def test_other_schemes_say_unsupported(url: str) -> None:
    """A non-PostgreSQL URL says its scheme is not supported (not libpq's "missing '='")."""
    with pytest.raises(ConfigError, match="scheme") as info:
        resolve(url, {}, {})
    assert url.split("://")[0] in str(info.value)
    assert "postgresql://" in str(info.value)
    assert "pw@" not in str(info.value)


def test_postgres_schemes_and_key_value_still_work() -> None:
    """postgresql://, postgres:// (any case) and key=value strings are accepted."""
    for url in ["postgresql://u@h/db", "postgres://u@h/db", "host=h dbname=db"]:
        assert params(resolve(url, {"ssl": "off"}, {}))["dbname"] == "db"
