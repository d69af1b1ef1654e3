"""A small PostgreSQL lexer: just enough tokens for the checker's SQL questions.

The rules ask three things of a query text: which statement it is (``INSERT ... VALUES
(...)``), which placeholders it uses (``%s`` / ``%(name)s`` for psycopg, ``$1`` for asyncpg) and
what its first keyword is. Answering them needs PostgreSQL's lexical rules (quoted strings with
``''``, ``E''`` escapes, quoted identifiers, dollar quoting ``$tag$...$tag$``, nested ``/* */``
comments), not a parser: a placeholder inside a string literal or a function body is not a
placeholder. pglast's ``parser.scan`` gives the server's own tokens, but it is a compiled
dependency (an extra to install) for a few dozen lines of lexing, and it would have to be told
about psycopg's ``%s`` anyway; this hand-written scanner needs nothing and never raises. Holes
(values the checker could not see, such as an f-string's ``{...}``) are marked by ``HOLE`` in the
text and come back as ``hole`` tokens.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["HOLE", "Token", "first_keyword", "is_row_insert", "placeholders", "scan"]

HOLE = "\x00"

_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT_CHARS = _IDENT_START | frozenset("0123456789$")
_DIGITS = frozenset("0123456789")
_PYFORMAT_CONVERSIONS = frozenset("sbt")


class Token(NamedTuple):
    """One lexical token: ``kind`` is word, param (``$1``), pyformat (``%s``), string, hole, op."""

    kind: str
    text: str


def _is_ident_start(ch: str) -> bool:
    return ch in _IDENT_START or ch > "\x7f"


def _is_ident_char(ch: str) -> bool:
    return ch in _IDENT_CHARS or ch > "\x7f"


def scan(text: str) -> list[Token]:
    """Split ``text`` into tokens, dropping whitespace and comments; never raises."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == HOLE:
            tokens.append(Token("hole", ch))
            i += 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif ch == "'":
            backslash = i > 0 and text[i - 1] in "eE" and (i < 2 or not _is_ident_char(text[i - 2]))
            start, i = i, i + 1
            while i < n:
                if backslash and text[i] == "\\":
                    i += 2
                elif text[i] == "'":
                    if text.startswith("''", i):
                        i += 2
                    else:
                        i += 1
                        break
                else:
                    i += 1
            tokens.append(Token("string", text[start:i]))
        elif ch == '"':
            end = i + 1
            while True:
                end = text.find('"', end)
                if end < 0 or not text.startswith('""', end):
                    break
                end += 2
            end = n if end < 0 else end + 1
            tokens.append(Token("word", text[i:end]))
            i = end
        elif ch == "$":
            j = i + 1
            if j < n and text[j] in _DIGITS:
                while j < n and text[j] in _DIGITS:
                    j += 1
                tokens.append(Token("param", text[i:j]))
                i = j
                continue
            while j < n and (_is_ident_char(text[j]) and text[j] != "$"):
                j += 1
            if j < n and text[j] == "$" and (j == i + 1 or _is_ident_start(text[i + 1])):
                tag = text[i : j + 1]
                end = text.find(tag, j + 1)
                end = n if end < 0 else end + len(tag)
                tokens.append(Token("string", text[i:end]))
                i = end
            else:
                tokens.append(Token("op", ch))
                i += 1
        elif ch == "%":
            j = i + 1
            if j < n and text[j] == "%":
                tokens.append(Token("op", "%%"))
                i += 2
            elif j < n and text[j] in _PYFORMAT_CONVERSIONS:
                tokens.append(Token("pyformat", text[i : j + 1]))
                i = j + 1
            elif j < n and text[j] == "(":
                close = text.find(")", j)
                if 0 <= close < n - 1 and text[close + 1] in _PYFORMAT_CONVERSIONS:
                    tokens.append(Token("pyformat", text[i : close + 2]))
                    i = close + 2
                else:
                    tokens.append(Token("op", ch))
                    i += 1
            else:
                tokens.append(Token("op", ch))
                i += 1
        elif _is_ident_start(ch):
            j = i + 1
            while j < n and _is_ident_char(text[j]):
                j += 1
            tokens.append(Token("word", text[i:j]))
            i = j
        elif ch in _DIGITS:
            j = i + 1
            while j < n and (text[j] in _DIGITS or text[j] == "."):
                j += 1
            tokens.append(Token("number", text[i:j]))
            i = j
        else:
            tokens.append(Token("op", ch))
            i += 1
    return tokens


def first_keyword(tokens: list[Token]) -> str | None:
    """The statement's first word, upper-cased (``None`` when it starts with a hole)."""
    for tok in tokens:
        if tok.kind == "op" and tok.text == "(":
            continue
        return tok.text.upper() if tok.kind == "word" and not tok.text.startswith('"') else None
    return None


def placeholders(tokens: list[Token]) -> tuple[list[str], list[str]]:
    """The query's ``%s``-style and ``$n``-style placeholders, outside literals and comments."""
    pyformat = [t.text for t in tokens if t.kind == "pyformat"]
    dollar = [t.text for t in tokens if t.kind == "param"]
    return pyformat, dollar


def is_row_insert(tokens: list[Token]) -> bool:
    """True for ``INSERT ... VALUES (...)``: one literal row (not ``INSERT ... SELECT``, not a
    ``VALUES`` list the program builds, which is a batch)."""
    words = [(i, t.text.upper()) for i, t in enumerate(tokens) if t.kind == "word"]
    if not any(w == "INSERT" for _, w in words):
        return False
    for i, word in words:
        if word == "VALUES":
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            if nxt is None or nxt.text != "(":
                return False
            # VALUES (...), (...) written out is still one statement per loop turn; but
            # VALUES (...) followed by a hole is a row list built by the program: a batch.
            depth = 0
            for tok in tokens[i + 1 :]:
                if tok.text == "(":
                    depth += 1
                elif tok.text == ")":
                    depth -= 1
                elif depth == 0 and tok.kind == "hole":
                    return False
                elif depth == 0 and tok.kind == "word":
                    break
            return True
    return False
