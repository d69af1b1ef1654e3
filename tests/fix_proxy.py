"""A TCP proxy between a client and the test server, for network faults: ``stop()`` makes the
link go silent (bytes are no longer forwarded, yet no socket is closed: what a dead router or a
pulled cable looks like), ``start()`` forwards again, ``cut()`` closes every connection.

The ``proxy`` fixture proxies the test database of ``pg_url``; ``proxy.url`` is the URL through it.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo


class Proxy:
    """Forwards 127.0.0.1:``port`` to ``host``:``target_port``, one thread per connection."""

    def __init__(self, host: str, target_port: int) -> None:
        self.host, self.target_port = host, target_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._closing = False
        self._links: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def stop(self) -> None:
        """Stop forwarding in both directions, keeping every connection open."""
        self._forwarding.clear()

    def start(self) -> None:
        """Forward again."""
        self._forwarding.set()

    def cut(self) -> None:
        """Close every connection through the proxy (new ones are still accepted)."""
        with self._lock:
            links, self._links = self._links, []
        for a, b in links:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def close(self) -> None:
        self._closing = True
        self._forwarding.set()
        self._server.close()
        self.cut()
        self._accepter.join(5)

    def url(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's."""
        params: dict[str, Any] = conninfo_to_dict(url)
        params.update(host="127.0.0.1", port=str(self.port))
        params.pop("hostaddr", None)
        return make_conninfo(**params)

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((self.host, self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._links.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        try:
            while not self._closing:
                if not self._forwarding.is_set():
                    # Silent: read nothing, send nothing, close nothing.
                    self._forwarding.wait(0.1)
                    continue
                ready, _, _ = select.select([a, b], [], [], 0.1)
                for s in ready:
                    if not self._forwarding.is_set():
                        break
                    data = s.recv(65536)
                    if not data:
                        return
                    peer[s].sendall(data)
        except OSError:
            return
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()


@pytest.fixture
def proxy(pg_url: str) -> Iterator[Proxy]:
    """A proxy to the test server (a TCP host; a Unix socket server is skipped)."""
    params = conninfo_to_dict(pg_url)
    host = str(params.get("host") or "")
    if not host or host.startswith("/"):
        pytest.skip("the test server listens on a Unix socket only; the proxy needs TCP")
    p = Proxy(host, int(params.get("port") or 5432))
    try:
        yield p
    finally:
        p.close()
