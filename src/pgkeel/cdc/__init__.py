"""Change data capture: the committed row changes of a publication, through a logical
replication slot, decoded from PostgreSQL's built-in ``pgoutput`` plugin into typed rows.

``changes(db, slot=..., publication=..., create=True)`` streams transactions of
:class:`Change` (``op``, ``table``, ``new``, ``old`` with the Python types a query gives) and
confirms a position to the server only when the application calls :meth:`Changes.ack`, so a
crashed consumer resumes after its last acknowledged transaction (at least once: a transaction
may come again, with the same ``commit_lsn``, for the sink to deduplicate). An unchanged TOAST
value is :data:`UNCHANGED`, never ``None``. A slot pgkeel created and that was lost is an error,
never silently re-created. It needs the ``pgkeel[cdc]`` extra (psycopg2, which speaks the
replication protocol), imported only when a stream opens; ``AsyncChanges`` is the async face.
"""

from __future__ import annotations

from pgkeel.cdc._aio import AsyncChanges, AsyncTransaction
from pgkeel.cdc._decoder import UNCHANGED, format_lsn
from pgkeel.cdc._slots import SlotInfo, drop_slot, list_slots
from pgkeel.cdc._stream import Change, Changes, Transaction, changes
from pgkeel.errors import CdcError, CdcSetupError, SlotLostError

__all__ = [
    "UNCHANGED",
    "AsyncChanges",
    "AsyncTransaction",
    "CdcError",
    "CdcSetupError",
    "Change",
    "Changes",
    "SlotInfo",
    "SlotLostError",
    "Transaction",
    "changes",
    "drop_slot",
    "format_lsn",
    "list_slots",
]
