"""The catalogue example service served by uvicorn on a free port over a fresh database."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fix_http import Client, serve_asgi

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def catalogue(pg_url: str) -> Iterator[Client]:
    """The service, migrated, serving an empty catalogue."""
    pytest.importorskip("fastapi")
    from examples.catalogue.app import create_app

    with serve_asgi(create_app(pg_url)) as client:
        yield client
