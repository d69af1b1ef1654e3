"""tools/async_to_sync.py: the sync modules are up to date, and the pass does what it says."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parent.parent / "tools" / "async_to_sync.py"


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("async_to_sync", TOOL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_generated_files_are_fresh(tool: ModuleType) -> None:
    """Every generated sync module matches what its async source generates now."""
    assert tool.main(["--check"]) == 0


def test_sources_are_discovered_in_subpackages(tool: ModuleType, tmp_path: Path) -> None:
    """Any `x_async.py` under the package, at any depth, maps to `x.py` beside it; nothing else."""
    for rel in ("database_async.py", "bulk/copy_async.py", "bulk/copy.py", "a/b/c_async.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    (tmp_path / "asyncio_helpers.py").write_text("")
    found = {
        str(src.relative_to(tmp_path)): str(dst.relative_to(tmp_path))
        for src, dst in tool.async_sources(tmp_path).items()
    }
    assert found == {
        "a/b/c_async.py": "a/b/c.py",
        "bulk/copy_async.py": "bulk/copy.py",
        "database_async.py": "database.py",
    }


def test_every_async_module_name_is_renamed(tool: ModuleType) -> None:
    """`pgkeel.<x>_async` becomes `pgkeel.<x>` for every source found, with no list to keep."""
    for src in tool.async_sources():
        assert tool.RENAMES[src.stem] == src.stem.removesuffix("_async")


SOURCE = '''\
"""``AsyncDatabase`` docs."""

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager

from pgkeel.transaction_async import AsyncTransaction


class AsyncDatabase:
    async def __aenter__(self) -> "AsyncDatabase":
        return self

    @asynccontextmanager
    async def block(self) -> AsyncIterator[AsyncTransaction]:
        yield await self.make()  # a comment on AsyncTransaction

    async def make(self) -> AsyncTransaction:
        raise NotImplementedError

    async def size(self, rows: Iterable[int] | AsyncIterable[int]) -> int:
        return (await self.make()).size

    async def run(self, fn: Callable[[], Awaitable[int]]) -> int:
        if True:  # ASYNC
            async with asyncio.timeout(1):
                await asyncio.sleep(0)
        else:
            # sync only
            time.sleep(0)
        return await fn()
'''


def test_convert(tool: ModuleType, tmp_path: Path) -> None:
    """Keywords go, names and modules are renamed (in prose too), ASYNC blocks keep their else,
    comments stay, unused imports go, renames that make names equal leave one."""
    src = tool.ROOT / "src" / "pgkeel" / "thing_async.py"
    out = tool.convert(SOURCE, src, tool.ROOT / "src" / "pgkeel" / "thing.py")
    assert out.startswith("# Generated from src/pgkeel/thing_async.py")
    body = out.split("\n", 2)[2]
    assert "async" not in body
    assert "await" not in body
    assert '"""``Database`` docs."""' in out
    assert "from pgkeel.transaction import Transaction" in out
    assert "def __enter__(self)" in out
    assert "@contextmanager\n    def block(self) -> Iterator[Transaction]:" in out
    assert "yield self.make()  # a comment on Transaction" in out
    assert "def run(self, fn: Callable[[], int]) -> int:" in out
    assert "        # sync only\n        time.sleep(0)\n        return fn()\n" in out
    assert "asyncio" not in out
    assert "from collections.abc import Callable, Iterable, Iterator\n" in out
    assert "def size(self, rows: Iterable[int]) -> int:\n        return self.make().size\n" in out
    assert "Awaitable" not in out
