"""Events: plain LISTEN/NOTIFY that survives reconnects, and durable topics that never lose or
skip an event, on both faces with the same names.

``db.notify(channel, payload)`` / ``tx.notify(...)`` send a notification (a transaction's only if
it commits); ``db.listen(*channels)`` gives a :class:`Listener` on a connection of its own, which
notices a lost connection within a bounded time, reconnects, LISTENs again and yields
:data:`RECONNECTED` so the application re-reads its state (NOTIFY is not stored: what was sent
meanwhile is gone). ``tx.publish(topic, payload)`` / ``db.publish(...)`` store an event (the
outbox pattern) with a wake-up NOTIFY sent on commit; ``db.subscribe(topic, consumer=...)`` gives a
:class:`Subscription` whose position is stored in the database, delivering every committed event
at least once, in publication order, never skipping one whose transaction committed late (see
:mod:`pgkeel.events._base`); ``db.prune_events(older_than=...)`` deletes what every consumer has
acknowledged. The tables are created on first use; :data:`SCHEMA_SQL` is their DDL for
migrations. ``AsyncListener`` and ``AsyncSubscription`` are the asyncio faces.
"""

from __future__ import annotations

from pgkeel.events._base import (
    CHANNEL,
    NOTIFY_PAYLOAD_LIMIT,
    RECONNECTED,
    SCHEMA_SQL,
    Event,
    Notification,
    Reconnected,
)
from pgkeel.events.listen import Listener
from pgkeel.events.listen_async import AsyncListener
from pgkeel.events.topics import Subscription
from pgkeel.events.topics_async import AsyncSubscription

__all__ = [
    "CHANNEL",
    "NOTIFY_PAYLOAD_LIMIT",
    "RECONNECTED",
    "SCHEMA_SQL",
    "AsyncListener",
    "AsyncSubscription",
    "Event",
    "Listener",
    "Notification",
    "Reconnected",
    "Subscription",
]
