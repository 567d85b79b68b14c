"""The store interfaces on their own: the SQL key-value store and the blob stores."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dominus_local.stores.blobs import BlobNotFoundError, DirectoryBlobStore, MemoryBlobStore, check_key
from dominus_local.stores.database import Database
from dominus_local.stores.kv import NotIntegerError, SqlKVStore, WrongTypeError, whisperer_kv
from tests.conftest import FakeClock


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    database = Database("sqlite+aiosqlite://")
    await database.create_all()
    try:
        yield database
    finally:
        await database.dispose()


async def _rows(db: Database) -> int:
    async with db.begin() as conn:
        return int((await conn.execute(select(func.count()).select_from(whisperer_kv))).scalar_one())


async def test_kv_expired_rows_are_purged_after_enough_writes(db: Database) -> None:
    clock = FakeClock(1_000.0)
    store = SqlKVStore(db, clock=clock)
    store.PURGE_EVERY = 10
    for i in range(5):
        await store.set("space", f"old{i}", i, 60)
    clock.advance(61)
    assert await store.scan("space") == []
    assert await _rows(db) == 5  # invisible, not yet dropped
    for i in range(5):
        await store.set("space", f"new{i}", i, 60)
    assert await _rows(db) == 5
    assert await store.scan("space") == [f"new{i}" for i in range(5)]


async def test_kv_spaces_types_and_ranges(db: Database) -> None:
    store = SqlKVStore(db, clock=FakeClock(0.0))
    await store.set("a", "k", 1, 60)
    assert await store.get("b", "k") is None
    await store.hset("a", "h", "f", 1, 60)
    with pytest.raises(WrongTypeError):
        await store.get("a", "h", expect="value")
    with pytest.raises(WrongTypeError):
        await store.hset("a", "k", "f", 1, 60)
    await store.set("a", "max", 2**63 - 1, 60)
    with pytest.raises(NotIntegerError):
        await store.incr("a", "max", 1, 60)
    assert await store.incr("a", "min", -(2**63), 60) == -(2**63)
    assert await store.scan("a", prefix="m") == ["max", "min"]
    assert await store.scan("a", after="k", limit=1) == ["max"]
    assert await store.delete("a", "h") is True and await store.delete("a", "h") is False


async def test_kv_setnx_is_atomic_under_concurrency(db: Database) -> None:
    store = SqlKVStore(db)
    results = await asyncio.gather(*(store.setnx("s", "lock", i, 60) for i in range(100)))
    winners = [i for i, (acquired, _) in enumerate(results) if acquired]
    assert len(winners) == 1
    assert {existing for acquired, existing in results if not acquired} == {winners[0]}


def test_blob_keys_can_never_name_a_path() -> None:
    for bad in ("", "../x", "a/b", ".hidden", "a\\b", "x" * 129, "a\x00"):
        with pytest.raises(ValueError):
            check_key(bad)
    assert check_key("0123abcd_-") == "0123abcd_-"


@pytest.mark.parametrize("kind", ["directory", "memory"])
async def test_blob_store_contract(kind: str, tmp_path: Path) -> None:
    store = DirectoryBlobStore(tmp_path / "blobs") if kind == "directory" else MemoryBlobStore()
    await store.put("abc123", b"one")
    await store.put("abd456", b"two")
    assert await store.get("abc123") == b"one"
    assert await store.delete("abc123") is True
    assert await store.delete("abc123") is False
    with pytest.raises(BlobNotFoundError):
        await store.get("abc123")
    with pytest.raises(ValueError):
        await store.put("../escape", b"x")
    assert await store.get("abd456") == b"two"
    await store.close()


async def test_directory_store_writes_atomically_and_sweeps_only_old_leftovers(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = DirectoryBlobStore(root)
    await store.put("keep01", b"kept")
    await store.put("orphan", b"never committed")
    await store.put("young1", b"being committed elsewhere")
    assert sorted(p.name for p in root.rglob("*") if p.is_file()) == ["keep01", "orphan", "young1"]
    # What an interrupted put leaves: a hidden temporary file, never the final name.
    partial = root / "ke" / ".keep02.deadbeef.part"
    partial.write_bytes(b"half")
    old = time.time() - 3600
    for path in (root / "or" / "orphan", partial, root / "ke" / "keep01"):
        os.utime(path, (old, old))
    removed = await store.sweep(["keep01"], older_than=600)
    assert removed == 2
    assert sorted(p.name for p in root.rglob("*") if p.is_file()) == ["keep01", "young1"]
    with pytest.raises(BlobNotFoundError):
        await store.get("keep02")
