"""A mypy plugin that makes a query built at runtime (f-string, ``+``, ``%``, ``.format()``) a
type error in pgkeel's query methods.

The query parameters are typed ``LiteralString | sql.SQL | sql.Composed``, which pyright
enforces, but mypy treats ``LiteralString`` as plain ``str`` (PEP 675 is not implemented there).
This plugin closes that gap for mypy users: enable it with ``plugins = ["pgkeel.mypy_plugin"]``.
It flags a ``str`` query argument that is an expression computing a string; literals, names and
``psycopg.sql`` compositions pass.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.errorcodes import ErrorCode
from mypy.nodes import CallExpr, OpExpr
from mypy.plugin import MethodContext, Plugin
from mypy.types import Instance, Type, get_proper_type

QUERY_BUILT_AT_RUNTIME = ErrorCode(
    "pgkeel-query", "A query string built at runtime (SQL injection risk)", "pgkeel"
)

_METHODS = ("execute", "execute_many", "fetch_one", "fetch_all", "fetch_val")
_CLASSES = ("pgkeel.query.QueryMethods", "pgkeel.query_async.AsyncQueryMethods")


def _check_query(ctx: MethodContext) -> Type:
    receiver = get_proper_type(ctx.type)
    if not (isinstance(receiver, Instance) and any(receiver.type.has_base(c) for c in _CLASSES)):
        return ctx.default_return_type
    if ctx.args and ctx.args[0]:
        expr = ctx.args[0][0]
        typ = get_proper_type(ctx.arg_types[0][0])
        if (
            isinstance(expr, CallExpr | OpExpr)
            and isinstance(typ, Instance)
            and typ.type.fullname == "builtins.str"
        ):
            ctx.api.fail(
                "query is a string built at runtime (f-string, +, % or format()): pass values "
                "as parameters (%s) and names with psycopg.sql.Identifier",
                ctx.context,
                code=QUERY_BUILT_AT_RUNTIME,
            )
    return ctx.default_return_type


class PgkeelPlugin(Plugin):
    def get_method_hook(self, fullname: str) -> Callable[[MethodContext], Type] | None:
        # mypy names the method after the receiver's class (Database, a user's subclass...);
        # _check_query looks at the receiver's bases.
        return _check_query if fullname.rpartition(".")[2] in _METHODS else None


def plugin(version: str) -> type[Plugin]:
    """mypy's entry point."""
    return PgkeelPlugin
