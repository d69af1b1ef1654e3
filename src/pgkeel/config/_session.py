"""How one Database applies its server settings: in the startup packet, or with ``SET`` where a
pooler such as PgBouncer refuses the startup ``options``."""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql

from pgkeel.config._defaults import Config, SessionMode

logger = logging.getLogger("pgkeel.config")


class SessionSettings:
    """How one Database applies its server settings (``Config.session_settings``).

    ``"auto"`` is decided by the first connection: the startup packet if the server takes it,
    else ``SET`` (PgBouncer refuses the ``options`` startup parameter unless told to ignore
    it, and then the settings would silently not apply: both are caught). The decision is
    logged at INFO. No I/O here: the Database connects and reports.
    """

    #: After a startup with ``options``: which of the settings did not come from the client.
    IGNORED_QUERY = (
        "SELECT name FROM pg_settings WHERE name = ANY(%s) AND source IS DISTINCT FROM 'client'"
    )

    def __init__(self, config: Config) -> None:
        self.config = config
        mode = config.session_settings
        self.mode: SessionMode | None = mode
        if mode == "auto":
            self.mode = None if config.settings else "startup"
        self._statement: tuple[sql.Composed, list[str]] | None = None
        if config.settings:
            calls = sql.SQL(", ").join(
                sql.SQL("set_config({}, {}, false)").format(sql.Placeholder(), sql.Placeholder())
                for _ in config.settings
            )
            args = [part for pair in config.settings for part in pair]
            self._statement = (sql.SQL("SELECT ") + calls, args)

    @property
    def decided(self) -> bool:
        return self.mode is not None

    def conninfo(self) -> str:
        """The connection string for the next connection."""
        return self.config.plain_conninfo if self.mode == "set" else self.config.conninfo

    def statement(self) -> tuple[sql.Composed, list[str]] | None:
        """The ``SELECT set_config(...)`` to run on a new or reset connection, if any."""
        return self._statement if self.mode == "set" else None

    def names(self) -> list[str]:
        return [name for name, _ in self.config.settings]

    @staticmethod
    def startup_refused(exc: BaseException) -> bool:
        """Whether a connection failed because the server (a pooler) refused startup
        parameters: PgBouncer says "unsupported startup parameter"."""
        return isinstance(exc, psycopg.OperationalError) and "startup parameter" in str(exc)

    def started(self, ignored: list[str]) -> None:
        """Record the outcome of a first connection made with the settings in its startup
        packet: ``ignored`` lists the ones the session does not have."""
        if ignored:
            self.use_set(
                f"the server ignored {', '.join(ignored)} sent in the startup packet (PgBouncer "
                "with ignore_startup_parameters=options?)"
            )
        else:
            self.mode = "startup"

    def use_set(self, why: str) -> None:
        self.mode = "set"
        logger.info(
            "%s: applying %s with SET on each new connection and after each reset "
            "(session_settings='set'). Behind PgBouncer in transaction mode a SET stays on "
            "the server connection that ran it: make them role or database settings (ALTER "
            "ROLE ... SET), pass session_settings='server', and prepare_threshold=None before "
            "PgBouncer 1.21",
            why,
            ", ".join(self.names()),
        )
