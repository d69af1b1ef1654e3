"""The one walk over a module: imports and aliases, and per scope every binding, call, loop,
``finally``, return and close, for the rules to judge afterwards."""

from __future__ import annotations

import ast
from collections.abc import Iterable

from pgkeel.check._libraries import CLOSERS
from pgkeel.check._model import Finding, ModuleFacts
from pgkeel.check._scope import (
    Val,
    _CallSite,
    _Class,
    _Comprehension,
    _is_def,
    _last,
    _Loop,
    _names_in,
    _Scope,
    _value_names,
    allow_listed,
)


class _Collector:
    """Walks a module once; the scopes, calls and names it records are read by the rules."""

    def __init__(self, tree: ast.Module, path: str) -> None:
        self.tree = tree
        self.path = path
        self.templates: frozenset[tuple[int, int]] = frozenset()  # t-strings read as f-strings
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
        elif isinstance(node, ast.If | ast.Assert) and (checked := allow_listed(node)):
            scope.checked.add(checked)
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
