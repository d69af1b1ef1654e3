"""Which node serves a read, without I/O: each replica's state and lag as the background monitor
last measured them, the read-your-writes floor, and the round robin.

Lag is measured from positions, not assumed: every monitor round reads the primary's flushed
WAL position (remembered with the time it was read; the flushed one, since WAL inserted but not
yet flushed, such as a background running-transactions record, can wait seconds before any
standby gets it) and each replica's replay position. A replica's
lag is the age of the oldest primary position it has not replayed yet (zero when it has replayed
the latest one), so an idle primary does not make an up-to-date replica look late, as
``now() - pg_last_xact_replay_timestamp()`` would. While the primary cannot be read, a replica's
own figure stands in (zero when it has replayed all it received, else the age of its last
replayed transaction).

Read-your-writes: a write through the Database records when it ended. The first primary
position read after that is at or past the write's commit (a commit returns once flushed, with
``synchronous_commit`` on, the default; with it off a read may come before the commit is
flushed and replicated), and it becomes the floor: until a
replica has replayed it, reads go to the primary; until the monitor has read it, too.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

_monotonic = time.monotonic

#: How long primary positions are remembered, in multiples of max_replica_lag (at least 5 s):
#: a replica behind the oldest one kept is at least that late, past the bound.
_WINDOW_FACTOR = 4.0

#: A replica's states; only "ok" serves reads.
STATES = ("starting", "ok", "lagging", "down", "not_standby", "diverged")


#: The first words of a statement that reads (a data-modifying WITH is caught by its words).
_READ_STARTS = frozenset({"select", "with", "values", "table", "show", "explain"})
#: Words that make a statement a write wherever they stand: DML, SELECT ... INTO, sequences.
_WRITE_WORDS = frozenset(
    {"insert", "update", "delete", "merge", "into", "nextval", "setval", "copy", "call"}
)
#: Every ASCII character that cannot be part of an unquoted identifier separates words.
_SEPARATORS = str.maketrans(
    {chr(c): " " for c in range(128) if not (chr(c).isalnum() or chr(c) == "_")}
)
_VERDICTS: dict[str, bool] = {}


def may_write(query: Any) -> bool:
    """Could ``query`` have changed data? A verdict on its words, not a parse: a statement that
    starts like a read and names no writing word counts as a read (a volatile function that
    writes is not seen: run such calls with execute() or in a transaction). Anything that is
    not text counts as a write. Cached per text."""
    if isinstance(query, bytes):
        query = query.decode("utf-8", "replace")
    elif not isinstance(query, str):
        try:
            query = query.as_string()
        except Exception:
            return True
    verdict = _VERDICTS.get(query)
    if verdict is None:
        words = query.lower().translate(_SEPARATORS).split()
        verdict = not words or words[0] not in _READ_STARTS or not _WRITE_WORDS.isdisjoint(words)
        if len(_VERDICTS) >= 4096:
            _VERDICTS.clear()
        _VERDICTS[query] = verdict
    return verdict


class Node:
    """One replica as the router sees it. ``db`` is its own Database (pool)."""

    __slots__ = (
        "db",
        "error",
        "index",
        "lag",
        "reads",
        "replay_lsn",
        "since",
        "state",
        "target",
        "timeline",
    )

    def __init__(self, index: int, target: str, db: Any) -> None:
        self.index = index
        self.target = target
        self.db = db
        self.state = "starting"
        self.lag: float | None = None
        self.replay_lsn = -1
        self.timeline: int | None = None
        self.error: str | None = None
        self.reads = 0
        self.since = _monotonic()

    def snapshot(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "state": self.state,
            "lag_s": None if self.lag is None else round(self.lag, 3),
            "reads": self.reads,
            "error": self.error,
        }


class Router:
    """Routing state shared by the query path (reads it) and the monitor thread (writes it).
    Plain attribute stores, each atomic under the GIL; the read counts take a lock."""

    def __init__(self, nodes: list[Node], max_lag: float) -> None:
        self.nodes = nodes
        self.max_lag = max_lag
        #: The nodes that may serve reads now (rebuilt on every change of state).
        self.rotation: tuple[Node, ...] = ()
        self._rr = 0
        self._lock = threading.Lock()
        self.primary_reads = 0
        #: When the last write through the Database ended (monotonic).
        self.last_write = -1.0
        #: The read-your-writes floor: a primary position read at ``floor_time``.
        self.floor_lsn = 0
        self.floor_time = 0.0
        self.primary_timeline: int | None = None
        self.primary_error: str | None = None
        #: (time, primary position) pairs, oldest first.
        self.samples: collections.deque[tuple[float, int]] = collections.deque()
        self._window = max(5.0, _WINDOW_FACTOR * max_lag)
        #: Query strings that failed on a replica as writes (they go to the primary).
        self.writes: set[str] = set()
        #: Query strings a replica served (reads: a replica cannot write).
        self.reads: set[str] = set()

    # --- the query path ---------------------------------------------------------------------

    def pick(self, query: Any) -> Node | None:
        """The replica to serve ``query``, or None for the primary."""
        if self.last_write > self.floor_time:
            return None  # a write whose commit position is not known yet
        rotation = self.rotation
        if not rotation or (type(query) is str and query in self.writes):
            return None
        floor = self.floor_lsn
        self._rr += 1
        n = len(rotation)
        for k in range(n):
            node = rotation[(self._rr + k) % n]
            if node.replay_lsn >= floor:
                with self._lock:
                    node.reads += 1
                return node
        return None

    def served_by_primary(self, query: Any) -> None:
        """A read ran on the primary: count it; if it may have written (``INSERT ...
        RETURNING`` through fetch_one), later reads must see it."""
        with self._lock:
            self.primary_reads += 1
        if (type(query) is not str or query not in self.reads) and may_write(query):
            self.wrote()

    def served_by_replica(self, query: Any) -> None:
        if type(query) is str and query not in self.reads and len(self.reads) < 4096:
            self.reads.add(query)

    def learned_write(self, query: Any) -> None:
        """A replica refused ``query`` as a write: send it to the primary from now on."""
        if type(query) is str and len(self.writes) < 4096:
            self.writes.add(query)

    def wrote(self) -> None:
        self.last_write = _monotonic()

    def failed(self, node: Node, error: str) -> None:
        """A read on ``node`` found it unreachable: out of rotation until the monitor sees it
        healthy again."""
        self.set_state(node, "down", error)

    # --- the monitor ------------------------------------------------------------------------

    def primary_sample(self, t: float, lsn: int, timeline: int | None) -> None:
        """The primary's flushed position ``lsn``, read by a query sent at ``t``."""
        self.primary_error = None
        self.primary_timeline = timeline
        samples = self.samples
        samples.append((t, lsn))
        while len(samples) > 2 and samples[1][0] < t - self._window:
            samples.popleft()
        if t > self.last_write and self.floor_time < self.last_write:
            # The first position read after the last write ended: at or past its commit.
            self.floor_lsn = lsn
            self.floor_time = t

    def primary_failed(self, error: str) -> None:
        self.primary_error = error

    def lag_from_samples(self, t: float, replay_lsn: int) -> float | None:
        """The age at ``t`` of the oldest remembered primary position past ``replay_lsn``
        (0.0 if it has replayed them all), or None without samples."""
        if not self.samples:
            return None
        for at, lsn in self.samples:
            if lsn > replay_lsn:
                return max(0.0, t - at)
        return 0.0

    def replica_sample(
        self,
        node: Node,
        *,
        t: float,
        in_recovery: bool,
        replay_lsn: int | None,
        own_lag: float | None,
        timeline: int | None,
        replay_age: float | None = None,
    ) -> str | None:
        """Record what the monitor read on ``node`` at ``t``; return a warning to log once when
        the node newly leaves rotation for a reason worth a warning."""
        if not in_recovery:
            return self.set_state(
                node,
                "not_standby",
                "not in recovery (pg_is_in_recovery() is false): a primary, or a promoted standby",
            )
        node.replay_lsn = -1 if replay_lsn is None else replay_lsn
        node.timeline = timeline
        fresh = self.primary_error is None and self.samples and self.samples[-1][0] >= t - 5
        lag = self.lag_from_samples(t, node.replay_lsn) if fresh else own_lag
        if fresh and lag is not None and node.replay_lsn < self.samples[0][1]:
            # Behind the oldest position remembered (just after open, or far behind): the
            # samples only bound the lag from below; the age of its last replayed transaction
            # is the better guess (too high after an idle spell, which costs one round). With
            # no transaction replayed since it started, the lag is unknown until proven small.
            if replay_age is not None:
                lag = max(lag, replay_age)
            elif lag <= self.max_lag:
                lag = None
        node.lag = lag
        if (
            timeline is not None
            and self.primary_timeline is not None
            and timeline < self.primary_timeline
            and lag is not None
            and lag > self.max_lag
        ):
            return self.set_state(
                node,
                "diverged",
                f"on timeline {timeline} while the primary is on {self.primary_timeline} (a "
                "failover happened): rebuild it from the new primary",
            )
        if lag is None or lag > self.max_lag:
            shown = "unknown" if lag is None else f"{lag:.3f}s"
            return self.set_state(node, "lagging", f"replay lag {shown} > {self.max_lag}s")
        return self.set_state(node, "ok", None)

    def replica_failed(self, node: Node, error: str) -> str | None:
        return self.set_state(node, "down", error)

    def set_state(self, node: Node, state: str, error: str | None) -> str | None:
        old = node.state
        node.state = state
        node.error = error
        if old == state:
            return None
        node.since = _monotonic()
        self.rotation = tuple(n for n in self.nodes if n.state == "ok")
        if state in ("down", "not_standby", "diverged", "lagging") and error:
            return f"replica {node.index} ({node.target}) out of rotation: {error}"
        if state == "ok" and old != "starting":
            return f"replica {node.index} ({node.target}) back in rotation"
        return None

    def snapshot(self) -> dict[str, Any]:
        return {
            "primary_reads": self.primary_reads,
            "replicas": [node.snapshot() for node in self.nodes],
        }
