"""A mypy plugin that makes a query mypy cannot prove to be a literal a type error in pgkeel's
query methods, closing for mypy users the gap that ``LiteralString`` closes under pyright.

pgkeel types query parameters ``LiteralString | sql.SQL | sql.Composed``. pyright enforces that;
mypy reads ``LiteralString`` as plain ``str`` (PEP 675 is not implemented there), so after
``q = f"..."`` and after ``q = "SELECT 1"`` alike ``q`` is just a ``str``, and a parameter
annotated ``LiteralString`` is a ``str`` whose callers mypy never checks. A plugin cannot tell
those apart, so this one is strict: a query argument of static type ``str`` passes only if its
value is known where it is used -- a string literal, a name declared ``Final`` with a literal
value (in any module), or ``+`` / ``x if c else y`` of those. Everything else of type ``str`` is
flagged: f-strings, ``%``, ``format()``, ``join()`` and any other call, and every variable,
parameter (even one annotated ``LiteralString``) or attribute not declared ``Final``.
``psycopg.sql`` compositions and ``(schema, name)`` tuples pass; a value typed ``Any`` is not
checked.

Checked: the query argument (``query``, ``query_or_table``) of ``execute``, ``execute_many``,
``fetch_one``, ``fetch_all``, ``fetch_val``, ``stream`` and ``copy_out`` on ``Database``,
``AsyncDatabase``, their transactions, ``pipeline()``'s object and any subclass of those; and of
the functions ``copy_out`` (``pgkeel.bulk.copy``, ``pgkeel.bulk.copy_async``), ``stream`` and
``stream_batches`` (``pgkeel.bulk.stream``, ``pgkeel.bulk.stream_async``). Enable it with
``plugins = ["pgkeel.mypy_plugin"]``.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.errorcodes import ErrorCode
from mypy.nodes import ConditionalExpr, Expression, MemberExpr, NameExpr, OpExpr, StrExpr, Var
from mypy.plugin import FunctionContext, MethodContext, Plugin
from mypy.types import Instance, LiteralType, Type, UnionType, get_proper_type

QUERY_NOT_LITERAL = ErrorCode(
    "pgkeel-query", "A query str whose value is not known to be literal (SQL injection)", "pgkeel"
)
QUERY_BUILT_AT_RUNTIME = QUERY_NOT_LITERAL  # the name it had first

_METHODS = frozenset(
    ("execute", "execute_many", "fetch_one", "fetch_all", "fetch_val", "stream", "copy_out")
)
_CLASSES = (
    "pgkeel.query.QueryMethods",
    "pgkeel.query_async.AsyncQueryMethods",
    "pgkeel.bulk._methods.BulkMethods",
    "pgkeel.bulk._methods_async.AsyncBulkMethods",
    "pgkeel.bulk.pipeline.Pipeline",
    "pgkeel.bulk.pipeline_async.AsyncPipeline",
)
_FUNCTIONS = frozenset(
    f"pgkeel.bulk.{module}{face}.{name}"
    for module, names in (("copy", ("copy_out",)), ("stream", ("stream", "stream_batches")))
    for face in ("", "_async")
    for name in names
)
_QUERY_PARAMETERS = ("query", "query_or_table")


def _literal(expr: Expression) -> bool:
    """Whether ``expr`` is a string whose value mypy knows (or a combination of such)."""
    if isinstance(expr, StrExpr):
        return True
    if isinstance(expr, OpExpr):
        return expr.op == "+" and _literal(expr.left) and _literal(expr.right)
    if isinstance(expr, ConditionalExpr):
        return _literal(expr.if_expr) and _literal(expr.else_expr)
    if isinstance(expr, NameExpr | MemberExpr) and isinstance(expr.node, Var):
        var = expr.node
        return (var.is_final and isinstance(var.final_value, str)) or _literal_type(var.type)
    return False


def _literal_type(typ: Type | None) -> bool:
    """A type that carries its literal value (``Final`` names, ``Literal[...]``)."""
    proper = get_proper_type(typ)
    if isinstance(proper, LiteralType):
        return isinstance(proper.value, str)
    return isinstance(proper, Instance) and proper.last_known_value is not None


def _may_be_plain_str(typ: Type) -> bool:
    """``str`` (or a union with ``str``) whose literal value mypy does not know."""
    proper = get_proper_type(typ)
    if isinstance(proper, UnionType):
        return any(_may_be_plain_str(item) for item in proper.items)
    return (
        isinstance(proper, Instance)
        and proper.type.fullname == "builtins.str"
        and proper.last_known_value is None
    )


class PgkeelPlugin(Plugin):
    def get_method_hook(self, fullname: str) -> Callable[[MethodContext], Type] | None:
        # mypy names the method after the receiver's class (Database, a user's subclass...);
        # _check_method looks at the receiver's bases.
        return _check_method if fullname.rpartition(".")[2] in _METHODS else None

    def get_function_hook(self, fullname: str) -> Callable[[FunctionContext], Type] | None:
        return _check_function if fullname in _FUNCTIONS else None


def _check_method(ctx: MethodContext) -> Type:
    receiver = get_proper_type(ctx.type)
    if isinstance(receiver, Instance) and any(receiver.type.has_base(c) for c in _CLASSES):
        _check(ctx)
    return ctx.default_return_type


def _check_function(ctx: FunctionContext) -> Type:
    _check(ctx)
    return ctx.default_return_type


def _check(ctx: MethodContext | FunctionContext) -> None:
    for i, name in enumerate(ctx.callee_arg_names):
        if name in _QUERY_PARAMETERS and ctx.args[i]:
            expr, typ = ctx.args[i][0], ctx.arg_types[i][0]
            if _may_be_plain_str(typ) and not _literal(expr):
                ctx.api.fail(_message(expr), ctx.context, code=QUERY_NOT_LITERAL)
            return


def _message(expr: Expression) -> str:
    fix = "pass values as %s parameters, names with psycopg.sql.Identifier"
    if isinstance(expr, NameExpr | MemberExpr):
        if isinstance(expr.node, Var) and expr.node.is_final:
            return f'query "{expr.name}" is a Final str built at runtime: {fix}'
        why = "only a Final name with a literal value is"
        return f'query "{expr.name}" is a str mypy cannot prove literal ({why}): {fix}'
    return f"query is a string built at runtime (f-string, +, % or format()): {fix}"


def plugin(version: str) -> type[Plugin]:
    """mypy's entry point."""
    return PgkeelPlugin
