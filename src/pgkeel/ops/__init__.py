"""Operations: auditing a deployment, tracing queries, the slow query log.

``pgkeel doctor`` (:func:`doctor`) audits a running deployment against the production checklist.
It connects with the same configuration resolution as :class:`~pgkeel.Database` (so it audits
what the application will really use), runs read-only checks of the connection and client,
capacity, server settings, schema health, replication and top queries, each in a READ ONLY
transaction with a short statement_timeout, and returns one :class:`Finding` per check (ok /
warn / fail / skipped, what it found, the fix). :func:`exit_code`, :func:`render_text` and
:func:`render_json` turn them into what the ``pgkeel doctor`` command prints. Private modules:
``_checks`` (each check and its SQL), ``_verdicts`` (the judgements, without I/O), ``_context``,
``_model`` and ``_report``.

Tracing (OpenTelemetry spans, with ``pgkeel[otel]``) and the slow query log (``slow_query_ms=``)
are ``_trace``: the query methods import it, so this package loads the doctor only when one of
its names is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pgkeel.ops._checks import CHECKS
    from pgkeel.ops._model import GROUPS, JSON_KEYS, Check, DoctorOptions, Finding, Status
    from pgkeel.ops._report import exit_code, render_json, render_text
    from pgkeel.ops.doctor import doctor, select_checks

__all__ = [
    "CHECKS",
    "GROUPS",
    "JSON_KEYS",
    "Check",
    "DoctorOptions",
    "Finding",
    "Status",
    "doctor",
    "exit_code",
    "render_json",
    "render_text",
    "select_checks",
]

_HOME = {
    "CHECKS": "_checks",
    "GROUPS": "_model",
    "JSON_KEYS": "_model",
    "Check": "_model",
    "DoctorOptions": "_model",
    "Finding": "_model",
    "Status": "_model",
    "exit_code": "_report",
    "render_json": "_report",
    "render_text": "_report",
    "doctor": "doctor",
    "select_checks": "doctor",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'pgkeel.ops' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pgkeel.ops.{home}"), name)
    globals()[name] = value
    return value
