"""The rules: one walk of a module's AST collects what each scope binds, then each call is judged.

Names are resolved through imports and aliases (``import psycopg as pg``), local variables are
followed through their assignments within a function (flow-insensitive: every assignment counts),
and ``self.x`` through the class's own assignments. Where the code is ambiguous (a query received
as a parameter, a receiver of unknown type and a text that does not look like SQL) a rule stays
quiet: a missed finding costs less than a checker that teams switch off.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

from pgkeel.check._sql import HOLE, first_keyword, is_row_insert, placeholders, scan

__all__ = ["RULES", "Finding", "ModuleFacts", "Rule", "analyze"]


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule of the checker: its fixed code, a short name, a severity and what it finds."""

    code: str
    name: str
    severity: str  # "error", "warning" or "info"
    summary: str


RULES: dict[str, Rule] = {
    r.code: r
    for r in (
        Rule("PGK001", "sql-built-from-strings", "error", "SQL built from strings reaches a query"),
        Rule("PGK002", "connection-per-request", "warning", "connection opened per request/loop"),
        Rule("PGK003", "connection-not-returned", "warning", "pooled connection not returned"),
        Rule("PGK004", "placeholder-style", "error", "placeholder style of another driver"),
        Rule("PGK005", "row-by-row-insert", "warning", "INSERT executed once per loop turn"),
        Rule("PGK006", "pool-lifecycle", "warning", "pool never closed or never awaited"),
        Rule("PGK007", "insecure-connection", "warning", "password or weak sslmode in a DSN"),
        Rule("PGK008", "pool-without-limits", "info", "pool without timeout or lifetime"),
    )
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding; ``line`` and ``col`` are 1-based, like ruff's."""

    path: str
    line: int
    col: int
    code: str
    message: str
    end_line: int = 0
    end_col: int = 0

    @property
    def severity(self) -> str:
        """``error``, ``warning`` or ``info`` (the rule's)."""
        rule = RULES.get(self.code)
        return rule.severity if rule else "error"


@dataclass(slots=True)
class ModuleFacts:
    """What a module tells about others: names it closes (``x.close()``), and its pools that are
    never closed in it, keyed by the name they are bound to (another module may close them)."""

    closed: set[str] = field(default_factory=set)
    unclosed: list[tuple[str, Finding]] = field(default_factory=list)


# -- what the libraries are ------------------------------------------------------------------

CONNECT = {
    "psycopg.connect": "psycopg",
    "psycopg.Connection.connect": "psycopg",
    "psycopg.AsyncConnection.connect": "psycopg",
    "psycopg2.connect": "psycopg2",
    "asyncpg.connect": "asyncpg",
    "asyncpg.connection.connect": "asyncpg",
}
POOLS = {
    "psycopg_pool.ConnectionPool": "psycopg",
    "psycopg_pool.AsyncConnectionPool": "psycopg",
    "psycopg_pool.NullConnectionPool": "psycopg",
    "psycopg_pool.AsyncNullConnectionPool": "psycopg",
    "psycopg2.pool.SimpleConnectionPool": "psycopg2",
    "psycopg2.pool.ThreadedConnectionPool": "psycopg2",
    "psycopg2.pool.PersistentConnectionPool": "psycopg2",
    "asyncpg.create_pool": "asyncpg",
    "asyncpg.pool.create_pool": "asyncpg",
    "pgkeel.Database": "pgkeel",
    "pgkeel.AsyncDatabase": "pgkeel",
    "pgkeel.database.Database": "pgkeel",
    "pgkeel.database_async.AsyncDatabase": "pgkeel",
}
TYPES = {
    "psycopg.Connection": ("psycopg", "conn"),
    "psycopg.AsyncConnection": ("psycopg", "conn"),
    "psycopg.Cursor": ("psycopg", "cursor"),
    "psycopg.AsyncCursor": ("psycopg", "cursor"),
    "psycopg.ServerCursor": ("psycopg", "cursor"),
    "psycopg.AsyncServerCursor": ("psycopg", "cursor"),
    "psycopg.extensions.connection": ("psycopg2", "conn"),
    "psycopg2.extensions.connection": ("psycopg2", "conn"),
    "psycopg2.extensions.cursor": ("psycopg2", "cursor"),
    "asyncpg.Connection": ("asyncpg", "conn"),
    "asyncpg.connection.Connection": ("asyncpg", "conn"),
    "asyncpg.Pool": ("asyncpg", "pool"),
    "asyncpg.pool.Pool": ("asyncpg", "pool"),
    "pgkeel.Transaction": ("pgkeel", "db"),
    "pgkeel.AsyncTransaction": ("pgkeel", "db"),
}
for _q, _lib in POOLS.items():
    TYPES[_q] = (_lib, "db" if _lib == "pgkeel" else "pool")
# method -> index of the query argument; the receiver is a connection, cursor, pool or Database
QUERY_METHODS = {
    "execute": 0,
    "executemany": 0,
    "execute_many": 0,
    "mogrify": 0,
    "fetch": 0,
    "fetchrow": 0,
    "fetchval": 0,
    "fetch_one": 0,
    "fetch_all": 0,
    "fetch_val": 0,
    "copy": 0,
    "copy_expert": 0,
    "copy_from_query": 0,
    "prepare": 0,
}
QUERY_FUNCTIONS = {
    "psycopg2.extras.execute_values": ("psycopg2", 1),
    "psycopg2.extras.execute_batch": ("psycopg2", 1),
    "pgkeel.copy_out": ("pgkeel", 1),
    "pgkeel.stream": ("pgkeel", 1),
    "pgkeel.copy.copy_out": ("pgkeel", 1),
    "pgkeel.copy.stream": ("pgkeel", 1),
    # the driver behind these is the caller's: SQL-looking text is required, as for an unknown
    # receiver
    "pandas.read_sql": ("", 0),
    "pandas.read_sql_query": ("", 0),
}
QUERY_KEYWORDS = ("query", "sql", "statement", "operation")
ROW_METHODS = frozenset(
    {"execute", "fetch", "fetchrow", "fetchval", "fetch_one", "fetch_all", "fetch_val"}
)
ASYNCPG_METHODS = frozenset({"fetch", "fetchrow", "fetchval", "copy_from_query", "prepare"})
COMPOSABLE = frozenset({"SQL", "Composed"})
COMPOSABLE_SAFE = frozenset({"Identifier", "Literal", "Placeholder", "DEFAULT", "NULL"})
SQL_MODULES = ("psycopg.sql.", "psycopg2.sql.")
PASS_THROUGH = frozenset({"sqlalchemy.text", "textwrap.dedent", "inspect.cleandoc"})
NUMERIC_CALLS = frozenset({"int", "float", "len", "bool", "round", "abs", "min", "max", "sum"})
NUMERIC_TYPES = frozenset({"int", "float", "bool"})
STR_METHODS = frozenset({"strip", "lstrip", "rstrip", "upper", "lower", "decode", "encode"})
SQL_START = frozenset(
    [
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "WITH",
        "CREATE",
        "ALTER",
        "DROP",
        "TRUNCATE",
        "GRANT",
        "REVOKE",
        "COPY",
        "LISTEN",
        "NOTIFY",
        "UNLISTEN",
        "SET",
        "SHOW",
        "EXPLAIN",
        "VACUUM",
        "ANALYZE",
        "CALL",
        "DO",
        "MERGE",
        "REFRESH",
        "COMMENT",
        "LOCK",
        "DECLARE",
        "VALUES",
        "TABLE",
        "REINDEX",
        "CLUSTER",
    ]
)
CLOSERS = frozenset({"close", "closeall", "terminate", "expire_connections"})
ROUTE_METHODS = frozenset(
    {"get", "post", "put", "patch", "delete", "route", "api_route", "websocket", "head", "options"}
)
WEB_MODULES = ("fastapi", "flask", "starlette", "quart", "sanic", "aiohttp", "litestar", "django")
REQUEST_HOOKS = frozenset({"before_request", "before_app_request", "middleware"})
TEARDOWNS = frozenset({"teardown_appcontext", "teardown_request", "teardown_app_request"})
WEAK_SSLMODES = frozenset({"disable", "allow", "prefer"})
LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1", "[::1]", "localhost.localdomain"})
PSYCOPG_POOL_LIMITS = frozenset({"timeout", "max_lifetime"})
ASYNCPG_POOL_LIMITS = frozenset(
    {"timeout", "command_timeout", "max_inactive_connection_lifetime", "max_queries"}
)

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


class _Analyzer:
    def __init__(self, tree: ast.Module, path: str) -> None:
        self.tree = tree
        self.path = path
        self.aliases: dict[str, str] = {}
        self.families: set[str] = set()
        self.parent: dict[ast.AST, ast.AST] = {}
        self.calls: list[_CallSite] = []
        self.strings: list[ast.Constant] = []
        self.closed: set[str] = set()
        self.awaited: set[str] = set()
        self.views: set[str] = set()  # functions named as endpoints (Route, Depends...)
        self.with_items: set[ast.AST] = set()
        self.findings: list[Finding] = []
        self.facts = ModuleFacts()
        self.module = _Scope(None, None)
        self.web = False
        self.migration = any(
            part in ("migrations", "alembic", "versions")
            for part in path.replace("\\", "/").split("/")
        )
        self._memo: dict[tuple[int, str, tuple[int, int]], Val] = {}
        self._busy: set[tuple[int, str, tuple[int, int]]] = set()
        self._top_ids: set[int] = {id(stmt) for stmt in tree.body}
        self._top = False  # is the statement being bound a direct child of its body?
        self._callers: dict[str, str] | None = None  # helper name -> a handler calling it

    # -- collection --------------------------------------------------------------------------

    def run(self) -> None:
        self._walk_body(self.tree.body, self.module, (), None, False)
        if "psycopg_pool" in self.families:
            self.families.add("psycopg")
        self.web = any(f in self.families for f in WEB_MODULES)
        for site in self.calls:
            self._check_call(site)
        for const in self.strings:
            self._check_dsn_literal(const)

    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
        # one alias table per module: an import inside a function counts everywhere (a name
        # imported twice under different meanings in one module is rare enough)
        if isinstance(node, ast.Import):
            for a in node.names:
                top = a.name.split(".")[0]
                self.families.add(top)
                self.aliases[a.asname or top] = a.name if a.asname else top
        elif node.module and not node.level:
            self.families.add(node.module.split(".")[0])
            for a in node.names:
                self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"

    def qualname(self, node: ast.AST) -> str | None:
        """``pg.connect`` -> ``psycopg.connect`` when ``import psycopg as pg``; None if local."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or node.id not in self.aliases:
            return None
        parts.append(self.aliases[node.id])
        name = ".".join(reversed(parts))
        # psycopg_pool.pool.ConnectionPool, psycopg.connection.Connection... -> public names
        for short, long in (
            ("psycopg_pool.", "psycopg_pool.pool."),
            ("psycopg_pool.", "psycopg_pool.pool_async."),
            ("psycopg.", "psycopg.connection."),
            ("psycopg.", "psycopg.connection_async."),
        ):
            if name.startswith(long):
                name = short + name[len(long) :]
        return name

    def _walk_body(
        self,
        body: Iterable[ast.AST],
        scope: _Scope,
        loops: tuple[_Loop, ...],
        cls: _Class | None,
        in_finally: bool,
    ) -> None:
        for node in body:
            self._walk(node, scope, loops, cls, in_finally)

    def _walk(
        self,
        node: ast.AST,
        scope: _Scope,
        loops: tuple[_Loop, ...],
        cls: _Class | None,
        in_finally: bool,
    ) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for d in node.decorator_list:
                self._walk(d, scope, loops, cls, in_finally)
            for default in (*node.args.defaults, *node.args.kw_defaults):
                if default is not None:
                    self._walk(default, scope, loops, cls, in_finally)
            inner = _Scope(scope, node, cls)
            self._top_ids.update(id(stmt) for stmt in node.body)
            args = node.args
            for a in (*args.posonlyargs, *args.args, *args.kwonlyargs):
                inner.params[a.arg] = a.annotation
            for star in (args.vararg, args.kwarg):
                if star is not None:
                    inner.params[star.arg] = None
            self._walk_body(node.body, inner, (), None, False)
            return
        if isinstance(node, ast.ClassDef):
            info = _Class(node)
            for d in (*node.decorator_list, *node.bases):
                self._walk(d, scope, loops, cls, in_finally)
            body_scope = _Scope(scope, None, None)
            for stmt in node.body:
                if isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None:
                    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                    for t in targets:
                        if isinstance(t, ast.Name):
                            info.body.setdefault(t.id, []).append(stmt.value)
                self._walk(stmt, body_scope if not _is_def(stmt) else scope, loops, info, False)
            return
        if isinstance(node, ast.Lambda):
            return  # a lambda's body is rarely where SQL is run; its args would shadow names
        children = list(ast.iter_child_nodes(node))
        for child in children:
            self.parent[child] = node
        if isinstance(node, ast.Import | ast.ImportFrom):
            self._import(node)
            return
        self._top = id(node) in self._top_ids
        if isinstance(node, ast.Assign):
            for target in node.targets:
                self._bind(target, node.value, scope, cls)
        elif isinstance(node, ast.AnnAssign):
            if node.value is not None:
                self._bind(node.target, node.value, scope, cls)
            elif isinstance(node.target, ast.Name):
                scope.params.setdefault(node.target.id, node.annotation)
        elif isinstance(node, ast.AugAssign):
            if isinstance(node.target, ast.Name):
                scope.bind(node.target.id, "aug", node, self._top)
        elif isinstance(node, ast.NamedExpr):
            scope.bind(node.target.id, "=", node.value)
        elif isinstance(node, ast.For | ast.AsyncFor):
            self._walk(node.iter, scope, loops, cls, in_finally)
            self._bind_loop(node.target, node.iter, scope)
            self._walk_body(node.body, scope, (*loops, node), cls, in_finally)
            self._walk_body(node.orelse, scope, loops, cls, in_finally)
            return
        elif isinstance(node, ast.While):
            self._walk(node.test, scope, loops, cls, in_finally)
            self._walk_body(node.body, scope, (*loops, node), cls, in_finally)
            self._walk_body(node.orelse, scope, loops, cls, in_finally)
            return
        elif isinstance(node, ast.Try | ast.TryStar):
            for part in (node.body, node.handlers, node.orelse):
                self._walk_body(part, scope, loops, cls, in_finally)
            self._walk_body(node.finalbody, scope, loops, cls, True)
            return
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                self.with_items.add(item.context_expr)
                expr = item.context_expr
                if isinstance(expr, ast.Await):
                    self.with_items.add(expr.value)
                if isinstance(expr, ast.Name | ast.Attribute):
                    self.closed.add(_last(expr))  # `with pool:` closes it
                    scope.closed.add(_last(expr))
                if isinstance(item.optional_vars, ast.Name):
                    scope.bind(item.optional_vars.id, "with", expr, self._top)
        elif isinstance(node, ast.comprehension):
            self._bind_loop(node.target, node.iter, scope)
        elif isinstance(node, _Comprehension):
            for gen in node.generators:
                self._walk(gen, scope, loops, cls, in_finally)
            per_item = (*loops, node)
            elts = (node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,)
            for elt in elts:
                self._walk(elt, scope, per_item, cls, in_finally)
            return
        elif isinstance(node, ast.Global | ast.Nonlocal):
            scope.globals.update(node.names)
        elif isinstance(node, ast.Return | ast.Yield | ast.YieldFrom):
            if node.value is not None:
                scope.escapes.update(_value_names(node.value))
        elif isinstance(node, ast.Await):
            if isinstance(node.value, ast.Name | ast.Attribute):
                self.awaited.add(_last(node.value))
        elif isinstance(node, ast.Attribute):
            if node.attr in CLOSERS and isinstance(node.ctx, ast.Load):
                self.closed.add(_last(node.value))
                scope.closed.add(_last(node.value))
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, str) and node.value[:8].lower() == "postgres":
                self.strings.append(node)
        elif isinstance(node, ast.Call):
            self.calls.append(_CallSite(node, scope, loops, in_finally))
            func = node.func
            if in_finally and isinstance(func, ast.Attribute):
                scope.finally_methods.add(func.attr)
            for arg in (*node.args, *(k.value for k in node.keywords)):
                scope.passed.update(_value_names(arg))
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.attr in ("append", "extend", "insert", "add")
                and node.args
            ):
                if func.attr == "extend":
                    scope.bind(func.value.id, "extend", node.args[-1])
                else:
                    scope.appends.setdefault(func.value.id, []).append(node.args[-1])
            self._note_views(node)
        for child in children:
            self._walk(child, scope, loops, cls, in_finally)

    def _note_views(self, call: ast.Call) -> None:
        name = _last(call.func)
        refs: list[ast.expr] = []
        if name in ("Depends", "Security") and call.args:
            refs.append(call.args[0])
        elif name in ("Route", "WebSocketRoute") and len(call.args) > 1:
            refs.append(call.args[1])
        elif name == "add_url_rule" and len(call.args) > 2:
            refs.append(call.args[2])
        elif name in ("path", "re_path", "add_api_route", "add_route") and len(call.args) > 1:
            refs.append(call.args[1])
        refs += [k.value for k in call.keywords if k.arg in ("endpoint", "view_func", "dependency")]
        for ref in refs:
            if isinstance(ref, ast.Name | ast.Attribute):
                self.views.add(_last(ref))

    def _bind(self, target: ast.AST, value: ast.expr, scope: _Scope, cls: _Class | None) -> None:
        if isinstance(target, ast.Name):
            bound = self.module if target.id in scope.globals else scope
            bound.bind(target.id, "=", value, self._top)
        elif isinstance(target, ast.Attribute):
            if isinstance(value, ast.Name):
                scope.escapes.add(value.id)  # stored on an object: owned elsewhere
            owner = scope.cls
            if (
                owner is not None
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
            ):
                owner.attrs.setdefault(target.attr, []).append(value)
        elif isinstance(target, ast.Tuple | ast.List):
            if isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(target.elts):
                for t, v in zip(target.elts, value.elts, strict=True):
                    self._bind(t, v, scope, cls)
            else:
                for t in target.elts:
                    for n in _names_in(t):
                        scope.bind(n, "=", None, line=t.lineno)
        elif isinstance(target, ast.Starred):
            self._bind(target.value, value, scope, cls)

    def _bind_loop(self, target: ast.AST, iterable: ast.expr, scope: _Scope) -> None:
        if isinstance(target, ast.Name):
            scope.bind(target.id, "in", iterable)
        elif (
            isinstance(target, ast.Tuple)
            and isinstance(iterable, ast.Call)
            and isinstance(iterable.func, ast.Name)
            and iterable.func.id in ("enumerate", "zip")
            and iterable.args
        ):
            if iterable.func.id == "enumerate":  # for i, item in enumerate(items)
                sources: list[ast.expr] = [ast.Constant(0), iterable.args[0]]
                hows = ["=", "in"]
            else:  # for a, b in zip(xs, ys)
                sources = list(iterable.args)
                hows = ["in"] * len(sources)
            if len(sources) != len(target.elts):
                sources, hows = [], []
            for elt, source, how in zip(target.elts, sources, hows, strict=False):
                if isinstance(elt, ast.Name):
                    scope.bind(elt.id, how, source)
                else:
                    for n in _names_in(elt):
                        scope.bind(n, "=", None)
            if not sources:
                for n in _names_in(target):
                    scope.bind(n, "=", None)
        else:
            for n in _names_in(target):
                scope.bind(n, "=", None)

    # -- what things are ---------------------------------------------------------------------

    def _lookup(self, name: str, scope: _Scope) -> tuple[_Scope, list[_Binding]]:
        s: _Scope | None = scope
        while s is not None:
            if name in s.assigns or name in s.params:
                return s, s.assigns.get(name, [])
            s = s.parent
        return self.module, []

    def kind(self, node: ast.AST, scope: _Scope, depth: int = 0) -> tuple[str, str] | None:
        """(library, kind) of a connection/cursor/pool/Database expression, else None."""
        if depth > 8:
            return None
        if isinstance(node, ast.Await):
            return self.kind(node.value, scope, depth + 1)
        if isinstance(node, ast.Call):
            q = self.qualname(node.func)
            if q in CONNECT:
                return CONNECT[q], "conn"
            if q in POOLS:
                lib = POOLS[q]
                return lib, "db" if lib == "pgkeel" else "pool"
            if isinstance(node.func, ast.Attribute):
                owner = self.kind(node.func.value, scope, depth + 1)
                if owner is None:
                    return None
                lib, what = owner
                method = node.func.attr
                if method == "cursor" and what == "conn":
                    return lib, "cursor"
                if method in ("connection", "getconn", "acquire") and what in ("pool", "db"):
                    return ("psycopg" if lib == "pgkeel" else lib), "conn"
                if method == "transaction" and what == "db":
                    return lib, "db"
            return None
        if isinstance(node, ast.Name):
            s, values = self._lookup(node.id, scope)
            if node.id in s.params and s.params[node.id] is not None:
                found = self._annotation_kind(s.params[node.id])
                if found:
                    return found
            for how, value, *_ in values:
                if how in ("=", "with") and value is not None:
                    found = self.kind(value, s, depth + 1)
                    if found:
                        return found
            return None
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
            and scope.cls is not None
        ):
            for value in scope.cls.attrs.get(node.attr, []):
                if value is not None:
                    found = self.kind(value, scope, depth + 1)
                    if found:
                        return found
        return None

    def _annotation_kind(self, ann: ast.expr | None) -> tuple[str, str] | None:
        if ann is None:
            return None
        if isinstance(ann, ast.Subscript):
            return self._annotation_kind(ann.value)
        if isinstance(ann, ast.BinOp):
            return self._annotation_kind(ann.left) or self._annotation_kind(ann.right)
        if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
            try:
                return self._annotation_kind(ast.parse(ann.value, mode="eval").body)
            except SyntaxError:
                return None
        q = self.qualname(ann)
        return TYPES.get(q) if q else None

    def value(self, node: ast.AST, scope: _Scope, depth: int = 0) -> Val:
        """How a (query) value was made: see ``Val``."""
        if depth > 12:
            return _OPAQUE
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str):
                return Val(SAFE, node.value)
            return Val(SAFE, str(node.value)) if isinstance(node.value, int | float) else _SAFE
        if isinstance(node, ast.JoinedStr):
            texts: list[str] = []
            parts: list[Val] = []
            for piece in node.values:
                if isinstance(piece, ast.Constant):
                    texts.append(str(piece.value))
                elif isinstance(piece, ast.FormattedValue):
                    v = self.value(piece.value, scope, depth + 1)
                    spec = piece.format_spec
                    if (
                        isinstance(spec, ast.JoinedStr)
                        and all(isinstance(p, ast.Constant) for p in spec.values)
                        and "".join(
                            str(c.value) for c in spec.values if isinstance(c, ast.Constant)
                        )[-1:]
                        in _NUMERIC_SPECS
                    ):
                        v = _SAFE  # {n:d}, {price:.2f}: a number or a ValueError
                    parts.append(v)
                    inline = v.text is not None and v.state == SAFE and piece.format_spec is None
                    texts.append(v.text if inline and v.text is not None else HOLE)
            text = "".join(texts)
            bad = _worst(parts)
            if bad.state != SAFE:
                return Val(DYNAMIC, text, "an f-string", line)
            holes = "".join(
                str(p.value) if isinstance(p, ast.Constant) else HOLE for p in node.values
            )
            fields = [p.value for p in node.values if isinstance(p, ast.FormattedValue)]
            if _variable_in_literal(holes, fields):
                return Val(DYNAMIC, text, "an f-string (a value inside a SQL literal)", line)
            return Val(SAFE, text)
        if hasattr(ast, "TemplateStr") and isinstance(node, ast.TemplateStr):  # Python 3.14
            return _SAFE
        if isinstance(node, ast.BinOp):
            return self._binop(node, scope, depth, line)
        if isinstance(node, ast.IfExp):
            a, b = (
                self.value(node.body, scope, depth + 1),
                self.value(node.orelse, scope, depth + 1),
            )
            worst = _worst((a, b))
            return worst if worst.state != SAFE else Val(SAFE, a.text if a.text else b.text)
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):  # `x and "a"`: "a", or a falsy x ("", None, 0)
                return self.value(node.values[-1], scope, depth + 1)
            vals = [self.value(v, scope, depth + 1) for v in node.values]  # clauses or "true"
            worst = _worst(vals)
            return worst if worst.state != SAFE else Val(SAFE, vals[0].text)
        if isinstance(node, ast.Compare) or (
            isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
        ):
            return _SAFE  # a bool
        if isinstance(node, ast.Call):
            return self._call_value(node, scope, depth, line)
        if isinstance(node, ast.Name):
            return self._name_value(node.id, scope, depth, getattr(node, "lineno", 0))
        if isinstance(node, ast.Attribute):
            if _constant_name(node.attr):
                return _SAFE
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                owner = scope.cls
                if owner is not None and node.attr in owner.body and node.attr not in owner.attrs:
                    return _worst(
                        self.value(v, self.module, depth + 1)
                        for v in owner.body[node.attr]
                        if v is not None
                    )
            return _OPAQUE
        if isinstance(node, ast.Subscript):
            if isinstance(node.value, ast.Name):
                s, values = self._lookup(node.value.id, scope)
                dicts = [v for how, v, *_ in values if how == "=" and isinstance(v, ast.Dict)]
                if dicts and len(dicts) == len(values):
                    return _worst(
                        self.value(v, s, depth + 1) for d in dicts for v in d.values
                    )._replace(text=None)
            return _OPAQUE
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            return _worst(self.value(e, scope, depth + 1) for e in node.elts)._replace(text=None)
        return _OPAQUE

    def _binop(self, node: ast.BinOp, scope: _Scope, depth: int, line: int) -> Val:
        left = self.value(node.left, scope, depth + 1)
        if isinstance(node.op, ast.Add):
            right = self.value(node.right, scope, depth + 1)
            if left.state == DYNAMIC or right.state == DYNAMIC:
                worst = left if left.state == DYNAMIC else right
                return worst._replace(text=_concat(left.text, right.text))
            text = _concat(left.text, right.text)
            if left.state == right.state == SAFE:
                return Val(SAFE, text)
            if left.text is not None or right.text is not None:
                return Val(DYNAMIC, text, "concatenation", line)
            return _OPAQUE
        if isinstance(node.op, ast.Mod) and left.text is not None:
            values: list[ast.expr]
            n: int | None
            if isinstance(node.right, ast.Tuple):
                values, n = list(node.right.elts), len(node.right.elts)
            elif isinstance(node.right, ast.Dict):
                values, n = [v for v in node.right.values if v is not None], None
            else:
                values, n = [node.right], (None if isinstance(node.right, ast.Name) else 1)
            vals = [self.value(v, scope, depth + 1) for v in values]
            text = _percent_text(left.text, n)
            if left.state == DYNAMIC:
                return left._replace(text=text)
            if text is not None and HOLE not in text and HOLE not in left.text:
                return Val(SAFE, text)  # only numeric conversions (%d, %.1f)
            if _worst(vals).state != SAFE:
                return Val(DYNAMIC, text or left.text.replace("%", HOLE), "%-formatting", line)
            if text is not None and _variable_in_literal(text, values):
                return Val(DYNAMIC, text, "%-formatting (a value inside a SQL literal)", line)
            return Val(SAFE, text)
        if isinstance(node.op, ast.Mult) and isinstance(node.left, ast.List | ast.Tuple):
            return left._replace(text=None)
        return _OPAQUE

    def _call_value(self, node: ast.Call, scope: _Scope, depth: int, line: int) -> Val:
        func = node.func
        q = self.qualname(func) or ""
        if isinstance(func, ast.Name) and func.id in NUMERIC_CALLS and func.id not in self.aliases:
            return _SAFE
        if q.startswith(SQL_MODULES) or (isinstance(func, ast.Name) and q.startswith("psycopg")):
            short = q.rsplit(".", 1)[-1]
            if short in COMPOSABLE_SAFE:
                return Val(SAFE, HOLE)
            if short in COMPOSABLE:
                if node.args:
                    inner = self.value(node.args[0], scope, depth + 1)
                    return inner if inner.state == DYNAMIC else inner._replace(state=SAFE)
                return _SAFE
        callee = _last(func).lower()
        if "quote" in callee or "escape" in callee or callee == "mogrify":
            return Val(SAFE, HOLE)  # quote_ident(name), conn.escape_identifier(...): quoted
        if q in PASS_THROUGH and node.args:
            return self.value(node.args[0], scope, depth + 1)
        if not isinstance(func, ast.Attribute):
            if isinstance(func, ast.Name) and func.id == "str" and node.args:
                return self.value(node.args[0], scope, depth + 1)
            return _OPAQUE
        method = func.attr
        if method in STR_METHODS:  # .strip(";"), .decode("utf-8"): the receiver's text
            return self.value(func.value, scope, depth + 1)
        if method in ("format", "join", "as_string"):
            receiver = self.value(func.value, scope, depth + 1)
            if receiver.state == DYNAMIC:
                return receiver
            composable = self._is_composable(func.value, scope)
            if method == "as_string":
                return receiver._replace(state=SAFE) if composable else _OPAQUE
            if receiver.text is None and not composable:
                return _OPAQUE
            if method == "format":
                text = _format_text(
                    receiver.text or HOLE, len(node.args), [k.arg for k in node.keywords if k.arg]
                )
                if composable:
                    return self._composed_args(node, scope, depth, line)._replace(text=text)
                if text is not None and HOLE not in text and HOLE not in (receiver.text or HOLE):
                    return Val(SAFE, text)  # only numeric fields ({:d})
                args = [self.value(a, scope, depth + 1) for a in node.args]
                args += [self.value(k.value, scope, depth + 1) for k in node.keywords]
                if _worst(args).state != SAFE:
                    return Val(DYNAMIC, text or receiver.text, "str.format()", line)
                given = [*node.args, *(k.value for k in node.keywords)]
                if text is not None and _variable_in_literal(text, given):
                    return Val(DYNAMIC, text, "str.format() (a value inside a SQL literal)", line)
                return Val(SAFE, text)
            if not node.args:
                return _OPAQUE
            elems = self._elements(node.args[0], scope, depth + 1)
            if composable:
                return Val(SAFE, HOLE)
            if elems.state == DYNAMIC:
                return Val(DYNAMIC, elems.text, "join()", line)
            return Val(elems.state, elems.text)
        return _OPAQUE

    def _composed_args(self, node: ast.Call, scope: _Scope, depth: int, line: int) -> Val:
        """``SQL(...).format(SQL(name))``: sql.SQL() does no quoting, so a non-constant inside
        it is as bad as an f-string; Identifier/Literal/plain values are quoted."""
        for arg in (*node.args, *(k.value for k in node.keywords)):
            if isinstance(arg, ast.Call) and arg.args:
                q = self.qualname(arg.func) or ""
                if q.startswith(SQL_MODULES) and q.endswith(".SQL"):
                    inner = self.value(arg.args[0], scope, depth + 1)
                    if inner.state != SAFE:
                        return Val(DYNAMIC, None, "sql.SQL() around a non-constant", line)
        return _SAFE

    def _is_composable(self, node: ast.AST, scope: _Scope, depth: int = 0) -> bool:
        if depth > 6:
            return False
        if isinstance(node, ast.Call):
            q = self.qualname(node.func) or ""
            if q.startswith(SQL_MODULES) and q.rsplit(".", 1)[-1] in COMPOSABLE | COMPOSABLE_SAFE:
                return True
            if isinstance(node.func, ast.Attribute) and node.func.attr in ("format", "join"):
                return self._is_composable(node.func.value, scope, depth + 1)
            return False
        if isinstance(node, ast.Name):
            s, values = self._lookup(node.id, scope)
            return any(
                how == "=" and v is not None and self._is_composable(v, s, depth + 1)
                for how, v, *_ in values
            )
        return False

    def _elements(self, node: ast.AST, scope: _Scope, depth: int) -> Val:
        """What the items of an iterable are (for ``sep.join(items)``)."""
        if depth > 12:
            return _OPAQUE
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            vals = [self.value(e, scope, depth + 1) for e in node.elts]
            worst = _worst(vals)
            return worst._replace(text=HOLE) if worst.state != SAFE else Val(SAFE, HOLE)
        if isinstance(node, ast.ListComp | ast.GeneratorExp | ast.SetComp):
            v = self.value(node.elt, scope, depth + 1)
            return v if v.state == DYNAMIC else Val(v.state, HOLE)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Add):
            return _worst(
                (self._elements(node.left, scope, depth + 1), self._elements_or_safe(node, scope))
            )
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id in ("list", "tuple", "sorted"):
                return self._elements(node.args[0], scope, depth + 1) if node.args else _SAFE
            if isinstance(node.func, ast.Name) and node.func.id == "range":
                return _SAFE
            return _OPAQUE
        if isinstance(node, ast.Name | ast.Attribute) and _constant_name(_last(node)):
            return _SAFE  # COLUMNS, c.COLUMNS: a constant by convention
        if isinstance(node, ast.Name):
            s, values = self._lookup(node.id, scope)
            if node.id in s.params or not values:
                return _OPAQUE
            items: list[Val] = []
            for how, bound, *_ in values:
                if bound is None or how == "with":
                    items.append(_OPAQUE)
                elif how in ("=", "extend"):
                    items.append(self._elements(bound, s, depth + 1))
                elif how == "aug" and isinstance(bound, ast.AugAssign):
                    items.append(self._elements(bound.value, s, depth + 1))
                else:
                    items.append(_OPAQUE)
            items += [self.value(a, s, depth + 1) for a in s.appends.get(node.id, [])]
            return _worst(items)
        return _OPAQUE

    def _elements_or_safe(self, node: ast.BinOp, scope: _Scope) -> Val:
        if isinstance(node.op, ast.Mult):
            return _SAFE  # ["%s"] * n: the count does not matter
        return self._elements(node.right, scope, 0)

    def _name_value(self, name: str, scope: _Scope, depth: int, at: int = 0) -> Val:
        s, values = self._lookup(name, scope)
        # The assignments that reach line `at`: from the last unconditional one before it (a
        # reused `q = ...` does not taint an earlier use); all of them if none comes before.
        before = [i for i, b in enumerate(values) if 0 < b[2] < at]
        span = (0, len(values))
        if before:
            start = next((i for i in reversed(before) if values[i][3]), before[0])
            span = (start, before[-1] + 1)
            values = values[span[0] : span[1]]
        key = (id(s), name, span)
        if key in self._memo:
            return self._memo[key]
        if key in self._busy:
            return _SAFE  # q = q + "..." : the loop adds nothing new
        if name in s.params and not values:
            ann = s.params[name]
            if isinstance(ann, ast.Name) and ann.id in NUMERIC_TYPES:
                return _SAFE
            return _SAFE if _constant_name(name) else _OPAQUE
        if not values:
            if _constant_name(name) or name in self.aliases:
                return _SAFE if _constant_name(name) else _OPAQUE
            return _OPAQUE
        self._busy.add(key)
        try:
            vals: list[Val] = []
            text: str | None = None
            for how, v, *_ in values:
                if v is None or how == "with":
                    got = _OPAQUE
                elif how == "=":
                    got = self.value(v, s, depth + 1)
                    if text is None and got.text is not None:
                        text = got.text
                        vals.append(got)
                        continue
                elif how == "aug" and isinstance(v, ast.AugAssign):
                    got = self.value(
                        ast.BinOp(
                            ast.Name(name, ast.Load(), lineno=v.lineno),
                            v.op,
                            v.value,
                            lineno=v.lineno,
                        ),
                        s,
                        depth + 1,
                    )
                    if isinstance(v.op, ast.Add):
                        extra = self.value(v.value, s, depth + 1)
                        text = _concat(text, extra.text) if text is not None else text
                elif how == "in":
                    elems = self._elements(v, s, depth + 1)
                    got = _SAFE if elems.state == SAFE else _OPAQUE
                else:
                    got = _OPAQUE
                vals.append(got)
            worst = _worst(vals)
            if worst.state == DYNAMIC:
                result = worst._replace(text=text if text is not None else worst.text)
            else:
                result = Val(worst.state, text)
        finally:
            self._busy.discard(key)
        self._memo[key] = result
        return result

    # -- the rules ---------------------------------------------------------------------------

    def _report(self, node: ast.AST, code: str, message: str) -> Finding:
        finding = Finding(
            self.path,
            getattr(node, "lineno", 1),
            getattr(node, "col_offset", 0) + 1,
            code,
            message,
            getattr(node, "end_lineno", 0) or 0,
            (getattr(node, "end_col_offset", 0) or 0) + 1,
        )
        self.findings.append(finding)
        return finding

    def _check_call(self, site: _CallSite) -> None:
        call = site.call
        func = call.func
        q = self.qualname(func)
        if q in CONNECT:
            self._check_connect(site, q)
            self._check_conn_args(site, CONNECT[q], pool=False)
        elif q in POOLS:
            self._check_pool(site, q)
            self._check_conn_args(site, POOLS[q], pool=True)
        elif q in QUERY_FUNCTIONS:
            lib, index = QUERY_FUNCTIONS[q]
            arg = _query_arg(call, index)
            if arg is not None:
                receiver = (lib, "conn") if lib else None
                self._check_query(site, arg, receiver, q.rsplit(".", 1)[-1], q)
        if not isinstance(func, ast.Attribute):
            return
        method = func.attr
        if method in QUERY_METHODS:
            arg = _query_arg(call, QUERY_METHODS[method])
            if arg is not None:
                receiver = self.kind(func.value, site.scope)
                if method == "prepare" and (receiver is None or receiver[0] != "asyncpg"):
                    return
                self._check_query(site, arg, receiver, method, _dotted(func) or method)
        elif method == "getconn":
            self._check_getconn(site)
        elif method == "acquire":
            self._check_acquire(site)
        elif method in ("close", "closeall"):
            self._check_teardown(site)

    def _check_query(
        self,
        site: _CallSite,
        arg: ast.expr,
        receiver: tuple[str, str] | None,
        method: str,
        shown: str,
    ) -> None:
        val = self.value(arg, site.scope)
        tokens = scan(val.text) if val.text else []
        first = first_keyword(tokens)
        looks_sql = first in SQL_START
        if val.state == DYNAMIC and (receiver is not None or looks_sql):
            where = f" (built at line {val.line})" if val.line and val.line != arg.lineno else ""
            if first in ("LISTEN", "UNLISTEN", "NOTIFY"):
                fix = (
                    "quote the channel with sql.Identifier, or send with "
                    "`SELECT pg_notify(%s, %s)` and parameters"
                )
            else:
                fix = (
                    "pass values as parameters (%s / $1) and compose identifiers with "
                    "psycopg.sql.SQL(...).format(sql.Identifier(...))"
                )
            self._report(
                arg, "PGK001", f"SQL built with {val.how} reaches `{shown}()`{where}: {fix}"
            )
        if not tokens:
            return
        style = self._style(receiver, method, looks_sql, site.call)
        pyformat, dollar = placeholders(tokens)
        if style == "asyncpg" and pyformat:
            self._report(
                arg,
                "PGK004",
                f"`{pyformat[0]}` placeholder in a query run by asyncpg, which numbers its "
                "parameters: write $1, $2, ...",
            )
        elif style == "pyformat" and dollar:
            self._report(
                arg,
                "PGK004",
                f"`{dollar[0]}` placeholder in a query run by "
                f"{receiver[0] if receiver else 'psycopg'}: write %s (or %(name)s)",
            )
        if (
            method in ROW_METHODS
            and self._row_loop(site)
            and is_row_insert(tokens)
            and not self._in_pipeline(site.call)
        ):
            self._report(
                site.call,
                "PGK005",
                f"INSERT run by `{shown}()` once per loop turn: send the rows in one go with "
                "executemany()/execute_many() or COPY (cursor.copy(), copy_records_to_table(), "
                "pgkeel.copy_in)",
            )

    def _in_pipeline(self, node: ast.AST) -> bool:
        """Inside ``with conn.pipeline():`` the statements of a loop go out in one batch."""
        parent = self.parent.get(node)
        while parent is not None:
            if isinstance(parent, ast.With | ast.AsyncWith) and any(
                isinstance(item.context_expr, ast.Call)
                and _last(item.context_expr.func) in ("pipeline", "batch")
                for item in parent.items
            ):
                return True
            parent = self.parent.get(parent)
        return False

    def _style(
        self, receiver: tuple[str, str] | None, method: str, looks_sql: bool, call: ast.Call
    ) -> str | None:
        """Which placeholders the driver running this query expects: 'asyncpg' ($1),
        'pyformat' (%s), or None when the code does not say."""
        if receiver is not None:
            return "asyncpg" if receiver[0] == "asyncpg" else "pyformat"
        if not looks_sql:
            return None
        pyformat_libs = {"psycopg", "psycopg2", "pgkeel"} & self.families
        asyncpg = "asyncpg" in self.families
        args = call.args
        if asyncpg and (method in ASYNCPG_METHODS or len(args) > 2):
            return "asyncpg"  # fetchrow(q, a, b): only asyncpg takes its values one by one
        if pyformat_libs and len(args) == 2 and isinstance(args[1], ast.Tuple | ast.Dict):
            return "pyformat"  # execute(q, (a, b)): psycopg's one sequence of parameters
        if asyncpg and not pyformat_libs:
            return "asyncpg"
        if pyformat_libs and not asyncpg and method not in ASYNCPG_METHODS:
            return "pyformat"
        return None

    def _row_loop(self, site: _CallSite) -> bool:
        for loop in site.loops:
            if isinstance(loop, ast.For) and isinstance(loop.iter, ast.Tuple | ast.List | ast.Set):
                continue  # a few values written in the code, not rows of data
            if isinstance(loop, _Comprehension):
                if not any(g.is_async for g in loop.generators):
                    return True
                continue
            if isinstance(loop, ast.AsyncFor):
                continue  # consuming a stream: one event per turn
            if isinstance(loop, ast.While) and _is_event_loop(loop):
                continue
            if _is_retry_loop(loop):
                continue
            return True
        return False

    def _enclosing_function(self, scope: _Scope) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        s: _Scope | None = scope
        while s is not None:
            if isinstance(s.func, ast.FunctionDef | ast.AsyncFunctionDef):
                return s.func
            s = s.parent
        return None

    def _is_cli_or_main(self, func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        if func.name in ("main", "upgrade", "downgrade", "cli", "run_migrations_online"):
            return True
        for d in func.decorator_list:
            target = d.func if isinstance(d, ast.Call) else d
            if _last(target) in ("command", "group", "callback", "fixture"):
                return True
        return False

    def _is_handler(self, func: ast.FunctionDef | ast.AsyncFunctionDef, scope: _Scope) -> bool:
        if func.name in self.views:
            return True
        names = [a.arg for a in func.args.args]
        if func.name == "lambda_handler" or names == ["event", "context"]:
            return True  # a serverless function: one call per request
        if not self.web:
            return False
        for d in func.decorator_list:
            target = d.func if isinstance(d, ast.Call) else d
            if isinstance(target, ast.Attribute) and target.attr in ROUTE_METHODS | REQUEST_HOOKS:
                return True
            if _last(target) in ("api_view", "require_http_methods", "login_required"):
                return True
        args = func.args.args
        first = args[1] if args and args[0].arg == "self" and len(args) > 1 else None
        if (args and args[0].arg == "request") or (first is not None and first.arg == "request"):
            return True
        cls = scope.cls
        if cls is not None and func.name in ROUTE_METHODS:
            return any(b.endswith(("View", "ViewSet", "Endpoint", "Handler")) for b in cls.bases)
        return False

    def _check_connect(self, site: _CallSite, q: str) -> None:
        func = self._enclosing_function(site.scope)
        if self.migration or (func is not None and self._is_cli_or_main(func)):
            return
        shown = q.split(".")[0] + ".connect()"
        if func is not None and self._is_handler(func, site.scope):
            self._report(
                site.call,
                "PGK002",
                f"`{shown}` in a request handler opens a connection per request: open one pool "
                "at startup (psycopg_pool, asyncpg.create_pool, pgkeel.Database) and borrow "
                "from it",
            )
            return
        caller = self._handler_calling(func, site) if func is not None else None
        if func is not None and caller is not None:
            self._report(
                site.call,
                "PGK002",
                f"`{shown}` in {func.name}(), which request handler {caller}() calls: a "
                "connection per request; open one pool at startup and borrow from it",
            )
            return
        used = _names_in(site.call)
        for loop in site.loops:
            if isinstance(loop, _Comprehension):
                targets = set().union(*(_names_in(g.target) for g in loop.generators))
            elif isinstance(loop, ast.While):
                targets = set()
            else:
                targets = _names_in(loop.target)
            if targets & used:
                continue  # one connection per server/database listed
            if not isinstance(loop, _Comprehension) and _is_retry_loop(loop):
                continue
            self._report(
                site.call,
                "PGK002",
                f"`{shown}` inside a loop opens a connection per turn: connect once before the "
                "loop, or borrow from a pool",
            )
            return

    def _handler_calling(
        self, func: ast.FunctionDef | ast.AsyncFunctionDef, site: _CallSite
    ) -> str | None:
        """The request handler of this module that calls ``func`` (a module-level helper such as
        ``get_db()``) when the helper opens a new connection on each call; None otherwise."""
        if site.scope.parent is not self.module or site.scope.cls is not None:
            return None
        _how, target = self._binding(site.call)
        if isinstance(target, ast.Name) and target.id in site.scope.globals:
            return None  # a cached module-wide connection: opened once
        if isinstance(target, ast.Attribute) and _last(target.value) != "g":
            return None  # cached on an object (flask's `g` is per request: not a cache)
        if self._callers is None:
            self._callers = {}
            for other in self.calls:
                called = other.call.func
                if not isinstance(called, ast.Name):
                    continue
                outer = self._enclosing_function(other.scope)
                if outer is not None and self._is_handler(outer, other.scope):
                    self._callers.setdefault(called.id, outer.name)
        return self._callers.get(func.name)

    def _binding(self, call: ast.AST) -> tuple[str, ast.AST | None]:
        """How a call's result is kept: ('with'|'returned'|'passed'|'awaited'|'assigned'|...)."""
        node = call
        parent = self.parent.get(node)
        awaited = False
        if isinstance(parent, ast.Await):
            awaited = True
            node, parent = parent, self.parent.get(parent)
        if node in self.with_items or call in self.with_items:
            return "with", None
        if isinstance(parent, ast.Return | ast.Yield | ast.YieldFrom | ast.Lambda):
            return "returned", None
        if isinstance(parent, ast.Call | ast.keyword | ast.Starred):
            return "passed", None
        if isinstance(parent, ast.Assign) and isinstance(parent.targets[0], ast.Subscript):
            return "other", None  # pools[name] = ...: kept in a container, closed from there
        if isinstance(parent, ast.Assign | ast.AnnAssign | ast.NamedExpr):
            target = parent.targets[0] if isinstance(parent, ast.Assign) else parent.target
            return ("awaited-assigned" if awaited else "assigned"), target
        if isinstance(parent, ast.Expr):
            return ("awaited-expr" if awaited else "expr"), None
        return "other", None

    def _check_pool(self, site: _CallSite, q: str) -> None:
        call = site.call
        lib = POOLS[q]
        how, target = self._binding(call)
        is_asyncpg = lib == "asyncpg"
        if is_asyncpg and how in ("assigned", "expr"):
            name = _last(target) if target is not None else ""
            if not name or name not in self.awaited:
                self._report(
                    call,
                    "PGK006",
                    "asyncpg.create_pool() is not awaited: the pool is never started; write "
                    "`pool = await asyncpg.create_pool(...)` or `async with "
                    "asyncpg.create_pool(...)`",
                )
                return
        self._check_limits(call, q, lib)
        if how in ("with", "returned", "passed", "other", "expr") or lib == "pgkeel":
            # a discarded pool is a constructor test; pgkeel closes its own pools at exit
            return
        name = _last(target) if target is not None else ""
        if (
            isinstance(target, ast.Name)
            and target.id in site.scope.escapes | site.scope.passed
            and site.scope.func is not None
        ):
            return
        local = (
            isinstance(target, ast.Name)
            and site.scope.func is not None
            and target.id not in site.scope.globals
        )
        if name and name in (site.scope.closed if local else self.closed):
            return
        finding = self._report(
            call,
            "PGK006",
            "pool created and never closed: close it at shutdown (`with`/`async with`, "
            "`close()` in a lifespan or finally, or `atexit.register(pool.close)`)",
        )
        if name and not local:
            self.facts.unclosed.append((name, finding))

    def _check_limits(self, call: ast.Call, q: str, lib: str) -> None:
        given = {k.arg for k in call.keywords}
        if None in given:
            return  # **options: cannot tell
        if lib == "psycopg" and not given & PSYCOPG_POOL_LIMITS:
            self._report(
                call,
                "PGK008",
                "pool without a checkout timeout or connection lifetime: pass timeout= "
                "(seconds to wait for a connection) and max_lifetime=",
            )
        elif lib == "psycopg2":
            self._report(
                call,
                "PGK008",
                "psycopg2 pools have no checkout timeout or connection lifetime (an empty pool "
                "raises at once): prefer psycopg_pool with timeout= and max_lifetime=, or "
                "pgkeel.Database",
            )
        elif lib == "asyncpg" and not given & ASYNCPG_POOL_LIMITS:
            self._report(
                call,
                "PGK008",
                "asyncpg pool without limits: pass command_timeout= and "
                "max_inactive_connection_lifetime= (and acquire(timeout=...))",
            )

    def _check_getconn(self, site: _CallSite) -> None:
        how, target = self._binding(site.call)
        if how in ("with", "returned", "passed"):
            return
        if "putconn" in site.scope.finally_methods:
            return
        if isinstance(target, ast.Name) and target.id in site.scope.escapes:
            return  # handed to the caller, who returns it
        if target is not None and not isinstance(target, ast.Name):
            return  # stored on an object: returned elsewhere
        self._report(
            site.call,
            "PGK003",
            "`getconn()` without `putconn()` in a `finally`: the connection leaks on an "
            "exception; use `with pool.connection() as conn:` (or putconn in finally)",
        )

    def _check_acquire(self, site: _CallSite) -> None:
        call = site.call
        if not isinstance(self.parent.get(call), ast.Await):
            return
        assert isinstance(call.func, ast.Attribute)
        receiver = self.kind(call.func.value, site.scope)
        if receiver is None:
            if "asyncpg" not in self.families or not _last(call.func.value).lower().endswith(
                "pool"
            ):
                return
        elif receiver != ("asyncpg", "pool"):
            return
        how, target = self._binding(call)
        if how in ("with", "returned", "passed") or "release" in site.scope.finally_methods:
            return
        if target is not None and not isinstance(target, ast.Name):
            return
        if isinstance(target, ast.Name) and target.id in site.scope.escapes:
            return
        self._report(
            call,
            "PGK003",
            "`await pool.acquire()` outside `async with`: the connection leaks on an exception; "
            "use `async with pool.acquire() as conn:` (or release() in finally)",
        )

    def _check_teardown(self, site: _CallSite) -> None:
        func = self._enclosing_function(site.scope)
        if func is None or not any(
            _last(d.func if isinstance(d, ast.Call) else d) in TEARDOWNS
            for d in func.decorator_list
        ):
            return
        assert isinstance(site.call.func, ast.Attribute)
        receiver = site.call.func.value
        found = self.kind(receiver, site.scope)
        if (found and found[1] in ("pool", "db")) or "pool" in _last(receiver).lower():
            self._report(
                site.call,
                "PGK006",
                "the app-context teardown closes the whole pool on every request: return the "
                "request's connection there (putconn) and close the pool once at exit",
            )

    # -- PGK007 ------------------------------------------------------------------------------

    def _check_conn_args(self, site: _CallSite, lib: str, pool: bool) -> None:
        call = site.call
        if lib == "pgkeel":
            return
        kwargs: dict[str, ast.expr] = {k.arg: k.value for k in call.keywords if k.arg}
        inner = kwargs.get("kwargs")
        if isinstance(inner, ast.Dict):
            for key, value in zip(inner.keys, inner.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    kwargs[key.value] = value
        settings: dict[str, str] = {}
        for name in ("host", "sslmode", "password", "ssl"):
            given = kwargs.get(name)
            if isinstance(given, ast.Constant) and isinstance(given.value, str | bool):
                settings[name] = str(given.value)
        index = 2 if lib == "psycopg2" and pool else 0
        dsn = call.args[index] if len(call.args) > index else None
        dsn = dsn or kwargs.get("conninfo") or kwargs.get("dsn")
        text = self.value(dsn, site.scope).text if dsn is not None else None
        dsn_mode: str | None = None
        if text and HOLE not in text:
            if "://" in text:
                # the URL's own password and sslmode are judged where the literal is written
                url = _url_settings(text)
                settings.setdefault("host", url.get("host", ""))
                dsn_mode = url.get("sslmode")
            elif "=" in text:
                for name, setting in _conninfo(text).items():
                    settings.setdefault(name, setting)
        elif dsn is not None:
            settings.pop("host", None)  # a DSN we cannot read may name another host
        problems = self._settings_problems(settings)
        if isinstance(dsn, ast.Constant) and dsn in self.strings:
            # the literal's own problems (a password...) go into this one finding
            problems += self._settings_problems(_url_settings(str(dsn.value)))
            self.strings.remove(dsn)
        host = settings.get("host")
        unset = (
            dsn_mode is None
            and "sslmode" not in settings
            and "ssl" not in kwargs
            and "sslmode" not in kwargs
            and None not in {k.arg for k in call.keywords}
        )
        if unset and host and not _is_local(host):
            problems.append(
                f"no sslmode for {host}: libpq and asyncpg default to prefer, which falls back "
                "to plaintext and never verifies the server; add sslmode=verify-full (or set "
                "PGSSLMODE where it runs)"
            )
        if problems:
            self._report(call, "PGK007", "; ".join(problems))

    def _settings_problems(self, settings: dict[str, str]) -> list[str]:
        problems = []
        password = settings.get("password")
        if password and not _placeholder(password):
            problems.append(
                "password written in the connection settings: read it from the environment "
                "(PGPASSWORD, a passfile, a secret store) instead of the source"
            )
        mode = settings.get("sslmode", "").lower()
        if settings.get("ssl", "").lower() in ("false", "disable", "allow", "prefer"):
            mode = mode or settings["ssl"].lower()
        host = settings.get("host")
        if mode in WEAK_SSLMODES | {"false"} and host is not None and not _is_local(host):
            problems.append(
                f"sslmode={mode} to {host}: the connection can go unencrypted and unverified; "
                "use sslmode=verify-full with the server's CA (sslrootcert=)"
            )
        return problems

    def _check_dsn_literal(self, const: ast.Constant) -> None:
        text = const.value
        assert isinstance(text, str)
        parent = self.parent.get(const)
        if "://" not in text or isinstance(parent, ast.Expr | ast.JoinedStr):
            return  # a docstring, a piece of an f-string
        if isinstance(parent, ast.keyword) and parent.arg in ("help", "metavar", "description"):
            return  # an example in a command line's help
        problems = self._settings_problems(_url_settings(text))
        if problems:
            self._report(const, "PGK007", "; ".join(problems))


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


def _placeholder(password: str) -> bool:
    """A template's stand-in (``{password}``, ``<secret>``, ``${PGPASSWORD}``, ``***``)."""
    return any(mark in password for mark in ("{", "}", "<", ">", "$", "%", "*"))


def _is_local(host: str) -> bool:
    host = host.strip().lower()
    return host in LOCAL_HOSTS or host.startswith(("127.", "/", "@"))  # loopback, a socket


def _url_settings(text: str) -> dict[str, str]:
    try:
        url = urlsplit(text.strip())
        scheme = url.scheme.lower()
        if not scheme.startswith("postgres"):
            return {}
        settings = {"host": url.hostname or ""}
        if url.password:
            settings["password"] = url.password
        for key, values in parse_qs(url.query).items():
            if values:
                settings.setdefault(key, values[-1])
    except ValueError:
        return {}
    return settings


def _conninfo(text: str) -> dict[str, str]:
    """``key=value`` pairs of a libpq conninfo string (values may be single-quoted)."""
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        eq = text.find("=", i)
        if eq < 0:
            break
        key = text[i:eq].strip()
        i = eq + 1
        while i < n and text[i].isspace():
            i += 1
        value: list[str] = []
        if i < n and text[i] == "'":
            i += 1
            while i < n and text[i] != "'":
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(text[i])
                i += 1
            i += 1
        else:
            while i < n and not text[i].isspace():
                value.append(text[i])
                i += 1
        if key:
            out[key] = "".join(value)
    return out


def analyze(tree: ast.Module, path: str) -> tuple[list[Finding], ModuleFacts]:
    """Run every rule over one parsed module."""
    analyzer = _Analyzer(tree, path)
    analyzer.run()
    analyzer.facts.closed = analyzer.closed
    return analyzer.findings, analyzer.facts
