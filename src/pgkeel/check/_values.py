"""How a value was made (``Val``) and what an object is (a psycopg connection, an asyncpg pool...),
resolved through imports, assignments that reach a use, ``self.x`` and annotations."""

from __future__ import annotations

import ast

from pgkeel.check._collect import _Collector
from pgkeel.check._libraries import (
    COMPOSABLE,
    COMPOSABLE_SAFE,
    CONNECT,
    NUMERIC_CALLS,
    NUMERIC_TYPES,
    PASS_THROUGH,
    POOLS,
    SQL_MODULES,
    STR_METHODS,
    TYPES,
)
from pgkeel.check._scope import (
    _NUMERIC_SPECS,
    _OPAQUE,
    _SAFE,
    DYNAMIC,
    SAFE,
    Val,
    _Binding,
    _concat,
    _constant_name,
    _format_text,
    _last,
    _percent_text,
    _Scope,
    _variable_in_literal,
    _worst,
)
from pgkeel.check._sql import HOLE


class _Values(_Collector):
    """Answers what an expression is (``kind``) and how it was made (``value``)."""

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
        if isinstance(node, ast.JoinedStr) and (node.lineno, node.col_offset) in self.templates:
            return Val(SAFE, _template_text(node))  # t"...": psycopg makes its fields parameters
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
        if name in s.checked:
            return _SAFE  # `if table not in ALLOWED: raise`: one of the allowed values
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


def _template_text(node: ast.JoinedStr) -> str:
    return "".join(str(p.value) if isinstance(p, ast.Constant) else HOLE for p in node.values)
