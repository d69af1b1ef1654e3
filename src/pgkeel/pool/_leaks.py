"""The leak watcher: a warning, with the stack where it was taken, about a connection held
longer than ``leak_timeout``.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import weakref
from types import FrameType

logger = logging.getLogger("pgkeel.pool")


class LeakWatcher:
    """Warns, once per checkout, about a connection held longer than ``timeout`` seconds, with
    the stack where it was taken. One daemon thread per open Database; the hot query path does
    not register here (its queries are bounded by ``statement_timeout``), only the blocks that
    hand out a connection (``connection()``, ``transaction()``)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.held: dict[int, tuple[float, FrameType | None, int]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.timeout <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=_watch, args=(weakref.ref(self), self._stop), name="pgkeel-leaks", daemon=True
        )
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        """Stop the watcher thread; with ``wait=False`` (the asyncio face, which must not block
        its event loop) let it end by itself within one scan interval."""
        self._stop.set()
        if wait and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None
        # A restart gets a fresh event: the old thread may still be about to see this one.
        self._stop = threading.Event()

    def taken(self, key: int, frame: FrameType) -> None:
        # Keep the frame (cheap) and format the stack only if a warning is due.
        self.held[key] = (time.monotonic(), frame, frame.f_lineno)

    def returned(self, key: int) -> None:
        self.held.pop(key, None)

    def scan(self) -> None:
        now = time.monotonic()
        for key, (since, frame, lineno) in list(self.held.items()):
            if frame is not None and now - since > self.timeout:
                stack = "".join(traceback.format_stack(frame))
                logger.warning(
                    "connection held for %.1f s (leak_timeout=%.1f s), taken at line %s of:\n%s",
                    now - since,
                    self.timeout,
                    lineno,
                    stack,
                )
                # Warn once per checkout; drop the frame reference.
                if key in self.held:
                    self.held[key] = (since, None, lineno)


def _watch(ref: weakref.ref[LeakWatcher], stop: threading.Event) -> None:
    while True:
        watcher = ref()
        if watcher is None:
            return
        interval = min(max(watcher.timeout / 4, 0.05), 5.0)
        watcher.scan()
        del watcher
        if stop.wait(interval):
            return
