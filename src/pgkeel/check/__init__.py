"""Static checks for PostgreSQL-from-Python code: ``pgkeel check`` and its library API.

The checker reads Python sources with the standard library's ``ast`` (nothing is imported or
run) and reports the wrong patterns of psycopg, psycopg2, asyncpg and pgkeel code that the
usual tools miss or drown in noise: SQL built from strings that reaches a query (PGK001), a
connection per request (PGK002), pooled connections never returned (PGK003), the other driver's
placeholder style (PGK004), INSERT in a loop (PGK005), pools never closed (PGK006), passwords
and weak ``sslmode`` in DSNs (PGK007) and pools without limits (PGK008). It resolves names
through imports and follows assignments within a function, and prefers missing a finding to
inventing one. ``import pgkeel`` does not import it.
"""

from pgkeel.check._config import Config, load_config
from pgkeel.check._engine import Report, check_paths, check_source
from pgkeel.check._model import RULES, Finding, Rule

__all__ = [
    "RULES",
    "Config",
    "Finding",
    "Report",
    "Rule",
    "check_paths",
    "check_source",
    "load_config",
]
