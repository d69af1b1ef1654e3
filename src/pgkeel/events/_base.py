"""What the events faces share without I/O: the values they hand out (:class:`Notification`,
:class:`Reconnected`, :class:`Event`), name and payload checks, the tables' DDL, the SQL of the
durable topics, and the listener's reconnect backoff.

How a durable subscriber never skips an event
---------------------------------------------
Event ids come from a sequence, and a sequence is not commit order: a transaction that took id
10 may commit after one that took id 11 was read, and a consumer that keeps ``last_id`` and
reads ``id > last_id`` then skips 10 for ever. So the position of a consumer is not an id but a
pair of *snapshots*, as PgQ does it. Each event row stores the top-level transaction id of the
transaction that published it (``xid8``, ``pg_current_xact_id()``). A consumer's position is:

- ``done``: a snapshot (``pg_snapshot``); every transaction visible in it has been handled;
- ``batch``: a later snapshot, being read: the events of the transactions visible in ``batch``
  and not in ``done``, in id order, ``last_id`` being the last handled one of them.

When a batch is exhausted, ``done`` becomes ``batch`` and a new ``batch`` is taken with
``pg_current_snapshot()``. A transaction still in flight when a snapshot is taken is not visible
in it, whatever ids it took, so its events belong to the first batch whose snapshot sees it
committed: every committed transaction falls in exactly one batch, and never behind a position
already stored. A rolled-back transaction's rows are never visible, so it is never delivered.
The bounds ``xid >= pg_snapshot_xmin(done)`` and ``xid < pg_snapshot_xmax(batch)`` make the
read an index range; ``pg_visible_in_snapshot`` decides the rest. Transaction ids are 64-bit
(``xid8``), so they never wrap, and they survive a server restart. It needs PostgreSQL 13+.
"""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import datetime
from typing import Any, Final, Literal, LiteralString

import psycopg.errors

from pgkeel.bulk._catalog import check_identifier
from pgkeel.errors import PayloadTooLargeError
from pgkeel.types import dumps_json

__all__ = [
    "CHANNEL",
    "EVENTS_TABLE",
    "NOTIFY_PAYLOAD_LIMIT",
    "SCHEMA_SQL",
    "Event",
    "Notification",
    "Reconnected",
    "check_name",
    "event_payload",
    "notify_payload",
    "reconnect_delay",
]

#: The server refuses a NOTIFY payload of this many bytes or more (BLCKSZ - NAMEDATALEN - 128).
NOTIFY_PAYLOAD_LIMIT: Final = 8000

#: The channel the durable topics' wake-ups are sent on; the payload is the topic's name.
CHANNEL: Final = "pgkeel_events"
EVENTS_TABLE: Final = "pgkeel_events"
CONSUMERS_TABLE: Final = "pgkeel_event_consumers"

Start = Literal["latest", "earliest"]


@dataclasses.dataclass(frozen=True, slots=True)
class Notification:
    """One notification received by a listener."""

    channel: str
    payload: str
    #: The process id of the server backend that sent it.
    pid: int


class Reconnected:
    """Yielded by a listener after it lost its connection and listens again: notifications sent
    meanwhile are gone, so re-read whatever state they stood for. Compare with
    ``item is pgkeel.events.RECONNECTED`` or ``isinstance(item, Reconnected)``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Reconnected"


RECONNECTED: Final = Reconnected()


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One event of a durable topic, as a subscriber receives it."""

    id: int
    topic: str
    payload: Any
    created_at: datetime
    # The batch it was read in: acknowledging it stores (done, batch, id) as the position.
    _done: str = dataclasses.field(repr=False, compare=False)
    _batch: str = dataclasses.field(repr=False, compare=False)


def check_name(name: object, what: str) -> str:
    """A channel, topic or consumer name: a str PostgreSQL keeps as it is (not empty, no NUL,
    at most 63 bytes), else :class:`~pgkeel.IdentifierError`. Names are always sent as
    parameters or quoted identifiers, never pasted into SQL."""
    return check_identifier(name, what)  # type: ignore[arg-type]  # checked at run time


def notify_payload(payload: object) -> str:
    """A NOTIFY payload: a str as it is, a dict or list as JSON, ``None`` as ``""``; refused
    (before anything is sent) at the server's 8000-byte limit or with a NUL character."""
    if payload is None:
        return ""
    if isinstance(payload, str):
        text = payload
    elif isinstance(payload, dict | list):
        text = dumps_json(payload).decode()
    else:
        raise TypeError(
            f"a notification payload is a str, or a dict or list sent as JSON, got "
            f"{type(payload).__name__}"
        )
    if "\x00" in text or "\\u0000" in text:
        # The same error a query parameter gets (psycopg refuses NUL in text).
        raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
    # The limit is in the database encoding; UTF-8 (the default) is what we measure, and the
    # server checks again in any case.
    size = len(text.encode())
    if size >= NOTIFY_PAYLOAD_LIMIT:
        raise PayloadTooLargeError(
            f"a notification payload must be under {NOTIFY_PAYLOAD_LIMIT} bytes (the server's "
            f"limit), this one is {size} bytes: send a key and read the data from a table, or "
            "use a durable topic (db.publish / db.subscribe), whose payloads have no such limit"
        )
    return text


def event_payload(payload: object) -> str:
    """A durable event's payload as JSON text, checked as a query parameter would be: what JSON
    cannot hold raises (``TypeError``; NaN and Infinity :class:`~pgkeel.NotStorableError`), and a
    NUL character raises the error the server gives for it, all before anything is stored."""
    text = dumps_json(payload)
    if b"\\u0000" in text and _has_nul(payload):
        raise psycopg.errors.UntranslatableCharacter(
            "unsupported Unicode escape sequence: \\u0000 cannot be converted to text (jsonb "
            "cannot hold a NUL character); remove it, or encode the value (base64) first"
        )
    return text.decode()


def _has_nul(obj: object) -> bool:
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
            stack.extend(item.keys())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def reconnect_delay(attempt: int, cap: float) -> float:
    """Capped, jittered exponential backoff: 0.05 s, 0.1 s, 0.2 s... up to ``cap``."""
    return random.uniform(0.5, 1.0) * min(cap, 0.05 * math.pow(2, min(attempt, 20)))  # noqa: S311 - jitter


# --- the tables -------------------------------------------------------------------------------

#: The tables of the durable topics, one statement each. pgkeel runs them on first use (under an
#: advisory lock, so many processes starting at once are safe). The position columns: ``done``,
#: every transaction visible in it is handled; ``batch``, the batch being read, handled up to
#: ``last_id``.
SCHEMA_STATEMENTS: Final[tuple[LiteralString, ...]] = (
    """CREATE TABLE IF NOT EXISTS pgkeel_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic text NOT NULL,
    payload jsonb NOT NULL,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
)""",
    "CREATE INDEX IF NOT EXISTS pgkeel_events_topic_xid ON pgkeel_events (topic, xid)",
    """CREATE TABLE IF NOT EXISTS pgkeel_event_consumers (
    topic text NOT NULL,
    consumer text NOT NULL,
    done pg_snapshot NOT NULL,
    batch pg_snapshot,
    last_id bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, consumer)
)""",
)

#: The same DDL as one script, for teams that manage the schema through migrations: put it in a
#: migration, and pgkeel finds the tables and creates nothing.
SCHEMA_SQL: Final = "".join(statement + ";\n" for statement in SCHEMA_STATEMENTS)

#: Any constant will do; it only has to be the same in every process (and unlikely elsewhere).
SCHEMA_LOCK_KEY: Final = 0x70676B65656C4576  # "pgkeelEv"

SCHEMA_EXISTS: Final = (
    "SELECT to_regclass('pgkeel_events') IS NOT NULL "
    "AND to_regclass('pgkeel_event_consumers') IS NOT NULL"
)

PUBLISH: Final = (
    "WITH e AS (INSERT INTO pgkeel_events (topic, payload) VALUES (%(topic)s, %(payload)s::jsonb)"
    " RETURNING id) SELECT e.id, pg_notify('pgkeel_events', %(topic)s) FROM e"
)

NOTIFY: Final = "SELECT pg_notify(%s, %s)"

REGISTER: Final = (
    "INSERT INTO pgkeel_event_consumers (topic, consumer, done) "
    "VALUES (%(topic)s, %(consumer)s, "
    # start="earliest": a snapshot in which nothing is visible (3 is the first normal xid).
    "CASE WHEN %(earliest)s THEN '3:3:'::pg_snapshot ELSE pg_current_snapshot() END) "
    "ON CONFLICT (topic, consumer) DO NOTHING"
)

POSITION: Final = (
    "SELECT done::text AS done, batch::text AS batch, last_id FROM pgkeel_event_consumers "
    "WHERE topic = %(topic)s AND consumer = %(consumer)s"
)

#: The highest id of a batch: one read of the batch's whole xid range, made once for a batch
#: larger than a page (a backlog), so that its later pages are bounded id ranges (FETCH).
BATCH_END: Final = (
    "SELECT max(id) FROM pgkeel_events "
    "WHERE topic = %(topic)s "
    "AND xid >= pg_snapshot_xmin(%(done)s::pg_snapshot) "
    "AND xid < pg_snapshot_xmax(%(batch)s::pg_snapshot) "
    "AND pg_visible_in_snapshot(xid, %(batch)s::pg_snapshot) "
    "AND NOT pg_visible_in_snapshot(xid, %(done)s::pg_snapshot)"
)

#: The next page of a batch: its events are all in ``(last, end]`` (BATCH_END), so this is a
#: primary-key range read in id order that stops after ``limit`` rows. The xid bounds are left
#: out on purpose (the visibility tests imply them): with them, the planner may read the batch's
#: whole xid range through the (topic, xid) index and sort it for every page, which made
#: draining a backlog of B events cost O(B^2 / limit).
FETCH: Final = (
    "SELECT id, payload, created_at FROM pgkeel_events "
    "WHERE id > %(last)s AND id <= %(end)s AND topic = %(topic)s "
    "AND pg_visible_in_snapshot(xid, %(batch)s::pg_snapshot) "
    "AND NOT pg_visible_in_snapshot(xid, %(done)s::pg_snapshot) "
    "ORDER BY id LIMIT %(limit)s"
)

#: FETCH for a new batch, whose snapshot is taken by the same statement (one round trip): one
#: row per event, each with the snapshot; a single row with a NULL id when there is none.
FETCH_NEW_BATCH: Final = (
    "WITH s AS MATERIALIZED (SELECT pg_current_snapshot() AS b) "
    "SELECT s.b::text AS batch, e.id, e.payload, e.created_at FROM s LEFT JOIN LATERAL ("
    "SELECT id, payload, created_at FROM pgkeel_events "
    "WHERE topic = %(topic)s "
    "AND xid >= pg_snapshot_xmin(%(done)s::pg_snapshot) "
    "AND xid < pg_snapshot_xmax(s.b) "
    "AND pg_visible_in_snapshot(xid, s.b) "
    "AND NOT pg_visible_in_snapshot(xid, %(done)s::pg_snapshot) "
    "ORDER BY id LIMIT %(limit)s) e ON true ORDER BY e.id"
)

STORE: Final = (
    "UPDATE pgkeel_event_consumers SET done = %(done)s::pg_snapshot, "
    "batch = %(batch)s::pg_snapshot, last_id = %(last)s, updated_at = now() "
    "WHERE topic = %(topic)s AND consumer = %(consumer)s"
)

# An event is still needed by a consumer when its transaction is neither in the consumer's done
# snapshot nor handled in its batch (the same condition, written out, in PRUNE and CONSUMERS).
PRUNE: Final = (
    "DELETE FROM pgkeel_events e WHERE e.created_at < now() - make_interval(secs => %s) "
    "AND NOT EXISTS (SELECT 1 FROM pgkeel_event_consumers c WHERE c.topic = e.topic AND "
    "(NOT pg_visible_in_snapshot(e.xid, c.done) AND NOT (c.batch IS NOT NULL "
    "AND pg_visible_in_snapshot(e.xid, c.batch) AND e.id <= c.last_id)))"
)

TOPICS: Final = (
    "SELECT topic, count(*) AS events, max(created_at) AS last_at FROM pgkeel_events "
    "GROUP BY topic ORDER BY topic"
)

CONSUMERS: Final = (
    "SELECT c.topic, c.consumer, c.updated_at, "
    "(SELECT count(*) FROM pgkeel_events e WHERE e.topic = c.topic AND "
    "(NOT pg_visible_in_snapshot(e.xid, c.done) AND NOT (c.batch IS NOT NULL "
    "AND pg_visible_in_snapshot(e.xid, c.batch) AND e.id <= c.last_id))) AS lag_events, "
    "(SELECT extract(epoch FROM now() - min(e.created_at))::float8 FROM pgkeel_events e "
    "WHERE e.topic = c.topic AND "
    "(NOT pg_visible_in_snapshot(e.xid, c.done) AND NOT (c.batch IS NOT NULL "
    "AND pg_visible_in_snapshot(e.xid, c.batch) AND e.id <= c.last_id))) AS lag_seconds "
    "FROM pgkeel_event_consumers c ORDER BY c.topic, c.consumer"
)


def start_flag(start: str) -> bool:
    """``start=`` as REGISTER's ``earliest`` flag, or a clear error."""
    if start not in ("latest", "earliest"):
        raise ValueError(f"start= is 'latest' or 'earliest', got {start!r}")
    return start == "earliest"
