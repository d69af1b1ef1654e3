"""Template strings (``t"..."``, Python 3.14) on the interpreters whose ``ast`` cannot read them.

A t-string is the safe way to write a psycopg query (psycopg 3.3 turns it into parameters), so a
file that uses them must not be reported as unparsable and left unchecked on Python 3.11-3.13.
The tokenizer of those versions reads ``t"..."`` as the name ``t`` followed by a string; writing
``f`` over the ``t`` (same length, so every position stays) gives a module ``ast`` can parse, and
the positions of the rewritten strings let the rules treat them as templates, not f-strings.
"""

from __future__ import annotations

import io
import sys
import tokenize

__all__ = ["rewrite"]

_PREFIXES = frozenset({"t", "tr", "rt"})


def rewrite(text: str) -> tuple[str, frozenset[tuple[int, int]]] | None:
    """``text`` with t-strings made f-strings, and their (line, UTF-8 column) starts; None when
    there is nothing to rewrite (or the interpreter reads t-strings itself)."""
    if sys.version_info >= (3, 14) or ("t'" not in text and 't"' not in text):
        return None
    lines = text.splitlines(keepends=True)
    starts: list[tuple[int, int]] = []
    previous: tokenize.TokenInfo | None = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if (
                tok.type == tokenize.STRING
                and previous is not None
                and previous.type == tokenize.NAME
                and previous.string.lower() in _PREFIXES
                and previous.end == tok.start
            ):
                starts.append(previous.start)
            previous = tok
    except (tokenize.TokenError, SyntaxError):
        return None
    if not starts:
        return None
    for row, col in starts:
        line = lines[row - 1]
        at = col + line[col : col + 2].lower().index("t")
        lines[row - 1] = line[:at] + ("f" if line[at] == "t" else "F") + line[at + 1 :]
    positions = frozenset((row, len(lines[row - 1][:col].encode("utf-8"))) for row, col in starts)
    return "".join(lines), positions
