"""What the rules reason with: ``Val`` (how a value was made: SAFE, OPAQUE or DYNAMIC, with its
static text), scopes and their bindings, and small helpers over AST nodes."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from pgkeel.check._libraries import NUMERIC_CALLS, QUERY_KEYWORDS
from pgkeel.check._sql import HOLE, scan

SAFE, OPAQUE, DYNAMIC = 0, 1, 2
_Binding = tuple[str, ast.AST | None, int, bool]
_Comprehension = ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
_Loop = (
    ast.For
    | ast.AsyncFor
    | ast.While
    | ast.ListComp
    | ast.SetComp
    | ast.GeneratorExp
    | ast.DictComp
)


class Val(NamedTuple):
    """What the checker knows of a value: SAFE (constants only), OPAQUE (not built here, e.g. a
    parameter) or DYNAMIC (a string built from a non-constant); ``text`` is the string with HOLE
    where a piece is unknown; ``how`` and ``line`` say where it became DYNAMIC."""

    state: int
    text: str | None = None
    how: str | None = None
    line: int = 0


_SAFE = Val(SAFE)
_OPAQUE = Val(OPAQUE)


def _worst(vals: Iterable[Val]) -> Val:
    out = _SAFE
    for v in vals:
        if v.state > out.state:
            out = v
    return out


class _Hole(int):
    """Formats as HOLE for a text conversion (``%s``, ``{}``, ``{!r}``) and as 0 for a numeric
    one (``%d``, ``{:.2f}``): a value formatted as a number cannot inject anything."""

    def __format__(self, spec: str) -> str:
        if spec and spec[-1] in _NUMERIC_SPECS:
            return int.__format__(0, spec)
        return HOLE

    def __str__(self) -> str:
        return HOLE

    __repr__ = __str__


_NUMERIC_SPECS = frozenset("bcdoxXneEfFgG%")


class _HoleMap(dict[str, _Hole]):
    def __missing__(self, key: str) -> _Hole:
        return _Hole()


def _percent_text(template: str, n: int | None) -> str | None:
    """The static text of ``template % values`` with HOLE for each value (None if unknown)."""
    attempts: list[object] = [(_Hole(),), _HoleMap()] if n is None else []
    attempts += [tuple(_Hole() for _ in range(k)) for k in ([n] if n is not None else range(8))]
    for values in attempts:
        try:
            return template % values
        except (TypeError, ValueError, KeyError):
            continue
    return None


def _format_text(template: str, nargs: int, names: list[str]) -> str | None:
    try:
        return template.format(*[_Hole()] * nargs, **dict.fromkeys(names, _Hole()))
    except (IndexError, KeyError, ValueError, AttributeError, TypeError):
        return None


def _concat(a: str | None, b: str | None) -> str | None:
    if a is None and b is None:
        return None
    return (a if a is not None else HOLE) + (b if b is not None else HOLE)


# -- scopes ----------------------------------------------------------------------------------


class _Class:
    __slots__ = ("attrs", "bases", "body")

    def __init__(self, node: ast.ClassDef) -> None:
        self.bases = [_last(b) for b in node.bases]
        self.body: dict[str, list[ast.expr | None]] = {}  # class-level assignments
        self.attrs: dict[str, list[ast.expr | None]] = {}  # self.x = ... in methods


class _Scope:
    __slots__ = (
        "appends",
        "assigns",
        "checked",
        "closed",
        "cls",
        "escapes",
        "finally_methods",
        "func",
        "globals",
        "params",
        "parent",
        "passed",
    )

    def __init__(
        self, parent: _Scope | None, func: ast.AST | None, cls: _Class | None = None
    ) -> None:
        self.parent = parent
        self.func = func
        self.cls = cls
        # name -> value expressions; None = bound to something unknown (a tuple unpacking...)
        # name -> (how, value, line, unconditional) in source order
        self.assigns: dict[str, list[_Binding]] = {}
        self.appends: dict[str, list[ast.expr]] = {}
        self.params: dict[str, ast.expr | None] = {}
        self.escapes: set[str] = set()  # names returned, yielded or stored on an object
        self.passed: set[str] = set()  # names handed to a call
        self.closed: set[str] = set()  # names closed here (x.close(), `with x:`)
        self.finally_methods: set[str] = set()  # methods called in a `finally:`
        self.globals: set[str] = set()
        self.checked: set[str] = set()  # names checked against an allow-list (guard clauses)

    def bind(
        self, name: str, how: str, value: ast.AST | None, top: bool = False, line: int = 0
    ) -> None:
        line = line or getattr(value, "lineno", 0) or 0
        self.assigns.setdefault(name, []).append((how, value, line, top))


def _last(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Subscript):
        return _last(node.value)
    if isinstance(node, ast.Call):
        return _last(node.func)
    return ""


def _dotted(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _is_retry_loop(loop: ast.For | ast.AsyncFor | ast.While) -> bool:
    """A loop with a try/except and a break or return: it retries one operation."""
    has_try = has_exit = False
    stack: list[ast.AST] = list(loop.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        if isinstance(node, ast.Try) and node.handlers:
            has_try = True
        elif isinstance(node, ast.Return | ast.Break):
            has_exit = True
        if isinstance(node, ast.For | ast.AsyncFor | ast.While):
            stack.extend(n for n in ast.walk(node) if isinstance(n, ast.Return | ast.Try))
            continue
        stack.extend(ast.iter_child_nodes(node))
    return has_try and has_exit


def _is_event_loop(loop: ast.While) -> bool:
    """``while True:`` / ``while not stop.is_set():``: a server's loop, one event per turn."""
    test = loop.test
    if isinstance(test, ast.UnaryOp):
        test = test.operand
    return isinstance(test, ast.Constant | ast.Call | ast.Attribute | ast.Await)


def _names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


@dataclass(slots=True)
class _CallSite:
    call: ast.Call
    scope: _Scope
    loops: tuple[_Loop, ...]
    in_finally: bool


def _variable_in_literal(marked: str, fields: list[ast.expr]) -> bool:
    """A variable's value spliced inside a SQL string literal (``'{name}'``): a value that
    belongs in a parameter, even when this variable holds a constant today."""
    if not any(_is_variable(f) for f in fields) or HOLE not in marked or "'" not in marked:
        return False
    return any(t.kind == "string" and HOLE in t.text for t in scan(marked))


def _is_variable(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return False
    if isinstance(node, ast.Call):
        callee = _last(node.func)
        return not (
            callee in NUMERIC_CALLS or "quote" in callee.lower() or "escape" in callee.lower()
        )
    return isinstance(node, ast.Name | ast.Attribute | ast.Subscript) and not _constant_name(
        _last(node)
    )


def _is_def(node: ast.AST) -> bool:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)


def _constant_name(name: str) -> bool:
    return len(name) > 1 and name.isupper()


def _value_names(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.Tuple | ast.List):
        for e in node.elts:
            yield from _value_names(e)
    elif isinstance(node, ast.Await | ast.Starred):
        yield from _value_names(node.value)


def _query_arg(call: ast.Call, index: int) -> ast.expr | None:
    if len(call.args) > index:
        arg = call.args[index]
        return None if isinstance(arg, ast.Starred) else arg
    for k in call.keywords:
        if k.arg in QUERY_KEYWORDS:
            return k.value
    return None


def allow_listed(node: ast.AST) -> str | None:
    """The name a guard clause checks against an allow-list: ``if x not in ALLOWED: raise ...``
    (or ``return``), ``assert x in ALLOWED``; None for any other statement."""
    wanted: type[ast.cmpop]
    if isinstance(node, ast.Assert):
        test, wanted = node.test, ast.In
    elif (
        isinstance(node, ast.If)
        and node.body
        and isinstance(node.body[-1], ast.Raise | ast.Return)
        and not node.orelse
    ):
        test, wanted = node.test, ast.NotIn
    else:
        return None
    if (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and len(test.ops) == 1
        and isinstance(test.ops[0], wanted)
    ):
        return test.left.id
    return None
