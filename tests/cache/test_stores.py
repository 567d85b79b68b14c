"""The store interfaces on their own: the key-value stores (SQL and memory) and the blob stores."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dominus_local.stores.blobs import BlobNotFoundError, DirectoryBlobStore, MemoryBlobStore, check_key
from dominus_local.stores.database import Database
from dominus_local.stores.kv import (
    KVStore,
    MemoryKVStore,
    NotIntegerError,
    SqlKVStore,
    WrongTypeError,
    whisperer_kv,
)
from tests.conftest import FakeClock


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


def _kv(kind: str, db: Database, clock: FakeClock | None = None) -> KVStore:
    return SqlKVStore(db, clock=clock) if kind == "sql" else MemoryKVStore(clock=clock)


KINDS = pytest.mark.parametrize("kind", ["sql", "memory"])


@KINDS
async def test_kv_spaces_types_and_ranges(kind: str, db: Database) -> None:
    store = _kv(kind, db, FakeClock(0.0))
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


@KINDS
async def test_kv_setnx_is_atomic_under_concurrency(kind: str, db: Database) -> None:
    store = _kv(kind, db)
    results = await asyncio.gather(*(store.setnx("s", "lock", i, 60) for i in range(100)))
    winners = [i for i, (acquired, _) in enumerate(results) if acquired]
    assert len(winners) == 1
    assert {existing for acquired, existing in results if not acquired} == {winners[0]}


@KINDS
async def test_kv_expiry_nudge_and_counters(kind: str, db: Database) -> None:
    clock = FakeClock(1_000.0)
    store = _kv(kind, db, clock)
    await store.set("s", "k", {"a": [1]}, 60)
    entry = await store.get("s", "k", expect="value")
    assert entry is not None and entry.value == {"a": [1]} and entry.ttl_remaining(clock()) == 60
    entry.value["a"].append(2)  # a read is a copy: changing it changes nothing stored
    again = await store.get("s", "k")
    assert again is not None and again.value == {"a": [1]}
    clock.advance(50)
    nudged = await store.get("s", "k", nudge=True, nudge_ttl=120)
    assert nudged is not None and nudged.ttl_remaining(clock()) == 120
    clock.advance(100)
    plain = await store.get("s", "k", nudge=True)  # back to the TTL it was written with
    assert plain is not None and plain.ttl_remaining(clock()) == 60
    clock.advance(60)
    assert await store.get("s", "k") is None
    assert await store.delete("s", "k") is False
    assert await store.incr("s", "n", 5, 60) == 5
    clock.advance(30)
    assert await store.incr("s", "n", -7, 3600) == -2
    counter = await store.get("s", "n")
    assert counter is not None and counter.ttl_remaining(clock()) == 30  # incr keeps the expiry
    await store.set("s", "text", "x", 60)
    with pytest.raises(NotIntegerError):
        await store.incr("s", "text", 1, 60)
    assert await store.setnx("s", "text", "y", 60) == (False, "x")
    assert [e.value if e else None for e in await store.get_many([("s", "text"), ("s", "nope"), ("t", "n")])] == [
        "x",
        None,
        None,
    ]


@KINDS
async def test_kv_hashes_and_paged_scan(kind: str, db: Database) -> None:
    clock = FakeClock(0.0)
    store = _kv(kind, db, clock)
    assert await store.hset("s", "h", "f1", 1, 60) is True
    assert await store.hset("s", "h", "f1", 2, 60) is False
    assert await store.hset("s", "h", "f2", 3, 120) is True
    entry = await store.get("s", "h", expect="hash")
    assert entry is not None and entry.value == {"f1": 2, "f2": 3} and entry.ttl_seconds == 120
    with pytest.raises(WrongTypeError):
        await store.set("s", "h", 1, 60)
    assert await store.hdel("s", "h", "f1") is True and await store.hdel("s", "h", "f1") is False
    assert await store.hdel("s", "h", "f2") is True
    assert await store.get("s", "h") is None  # the last field removed the key
    for key in ["b", "a", "\u00e9", "ab", "c"]:
        await store.set("s", key, key, 60)
    await store.set("s", "short", 0, 60)
    clock.advance(61)
    await store.set("s", "z", 1, 60)
    seen: list[str] = []
    after: str | None = None
    while page := await store.scan("s", after=after, limit=2):
        seen += page
        after = page[-1]
    assert seen == ["z"]  # everything else expired
    for key in ["b", "a", "\u00e9", "ab"]:
        await store.set("s", key, key, 60)
    assert await store.scan("s") == ["a", "ab", "b", "z", "\u00e9"]  # code-point order
    assert await store.scan("s", prefix="a") == ["a", "ab"]
    clock.advance(61)
    assert await store.purge_expired() == 7  # "c" and "short" were never read, so never dropped before
    assert await store.scan("s") == []


async def test_memory_kv_drops_expired_entries_after_enough_writes() -> None:
    clock = FakeClock(1_000.0)
    store = MemoryKVStore(clock=clock)
    store.PURGE_EVERY = 10
    for i in range(5):
        await store.set("space", f"old{i}", i, 60)
    clock.advance(61)
    for i in range(5):
        await store.set("space", f"new{i}", i, 60)
    assert await store.purge_expired() == 0  # the tenth write dropped the five expired ones
    assert await store.scan("space") == [f"new{i}" for i in range(5)]


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
