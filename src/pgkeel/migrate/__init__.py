"""Migrations: versioned SQL (and Python) files in a directory, applied in order, exactly once,
by any number of runners at once (pods starting together); each applied file's checksum is
kept, statements that cannot run in a transaction are found in the parse tree, a migration that
stopped half way blocks the next ones until a person resolves it, and a linter catches the
statements that would lock a busy table before they reach production.

The functions mirror the ``pgkeel migrate`` commands: :func:`up`, :func:`status`,
:func:`lint`, :func:`new`, :func:`baseline`, :func:`resolve`. Splitting and linting need the
``migrate`` extra (pglast): ``pip install 'pgkeel[migrate]'``; importing this package does not.
"""

from pgkeel.migrate._files import Migration, discover
from pgkeel.migrate._files import new_file as new
from pgkeel.migrate._rules import RULES, Finding, Rule
from pgkeel.migrate._runner import Applied, Entry, baseline, lint, resolve, status, up

__all__ = [
    "RULES",
    "Applied",
    "Entry",
    "Finding",
    "Migration",
    "Rule",
    "baseline",
    "discover",
    "lint",
    "new",
    "resolve",
    "status",
    "up",
]
