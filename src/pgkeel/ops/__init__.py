"""Operations: ``pgkeel doctor``, an audit of a running deployment against the production
checklist. :func:`doctor` connects with the same configuration resolution as
:class:`~pgkeel.Database` (so it audits what the application will really use), runs read-only
checks of the connection and client, capacity, server settings, schema health, replication and
top queries, each in a READ ONLY transaction with a short statement_timeout, and returns one
:class:`Finding` per check (ok / warn / fail / skipped, what it found, the fix).
:func:`exit_code`, :func:`render_text` and :func:`render_json` turn them into what the
``pgkeel doctor`` command prints. Private modules: ``_checks`` (each check and its SQL),
``_verdicts`` (the judgements, without I/O), ``_context``, ``_model`` and ``_report``.
"""

from __future__ import annotations

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
