"""The rules PGK001..PGK008: each call the walk collected (``_collect``) is judged with what
``_values`` can tell of its receiver and arguments.

Names are resolved through imports and aliases (``import psycopg as pg``), a local variable through
the assignments that reach its use (from the last unconditional one before it), and ``self.x``
through the class's own assignments. Where the code is ambiguous (a query received as a parameter,
a receiver of unknown type and a text that does not look like SQL) a rule stays quiet: a missed
finding costs less than a checker that teams switch off.
"""

from __future__ import annotations

import ast
from urllib.parse import parse_qs, urlsplit

from pgkeel.check._libraries import (
    ASYNCPG_METHODS,
    ASYNCPG_POOL_LIMITS,
    CONNECT,
    LOCAL_HOSTS,
    POOLS,
    PSYCOPG_POOL_LIMITS,
    QUERY_FUNCTIONS,
    QUERY_METHODS,
    REQUEST_HOOKS,
    ROUTE_METHODS,
    ROW_METHODS,
    SQL_START,
    TEARDOWNS,
    WEAK_SSLMODES,
    WEB_MODULES,
)
from pgkeel.check._model import Finding, ModuleFacts
from pgkeel.check._scope import (
    DYNAMIC,
    _CallSite,
    _Comprehension,
    _dotted,
    _is_event_loop,
    _is_retry_loop,
    _last,
    _names_in,
    _query_arg,
    _Scope,
)
from pgkeel.check._sql import HOLE, first_keyword, is_row_insert, placeholders, scan
from pgkeel.check._values import _Values

__all__ = ["analyze"]


class _Analyzer(_Values):
    def run(self) -> None:
        self._walk_body(self.tree.body, self.module, (), None, False)
        if "psycopg_pool" in self.families:
            self.families.add("psycopg")
        self.web = any(f in self.families for f in WEB_MODULES)
        for site in self.calls:
            self._check_call(site)
        for const in self.strings:
            self._check_dsn_literal(const)

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


def analyze(
    tree: ast.Module, path: str, templates: frozenset[tuple[int, int]] = frozenset()
) -> tuple[list[Finding], ModuleFacts]:
    """Run every rule over one parsed module; ``templates``: (line, col) of f-strings that were
    t-strings in the source (see ``_tstrings``)."""
    analyzer = _Analyzer(tree, path)
    analyzer.templates = templates
    analyzer.run()
    analyzer.facts.closed = analyzer.closed
    return analyzer.findings, analyzer.facts
