"""The Redis store's per-space index against a real Redis server: listing reads the space's sorted set instead
of scanning the keyspace, stale members are swept, and data written before the index existed gets indexed."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from dominus_local.stores.kv import KVStore, MemoryKVStore
from dominus_local.stores.kv_redis import INDEX_MARKER, RedisKVStore
from tests.backends.conftest import require
from tests.conftest import CACHE_ENV, FakeClock, with_key_prefix

SPACE = "p/e/c"


@pytest.fixture
async def raw() -> AsyncIterator[aioredis.Redis]:
    """A plain client on the same server, to look at and tamper with the store's Redis keys."""
    client = aioredis.Redis.from_url(require(CACHE_ENV))
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(clock: FakeClock) -> AsyncIterator[RedisKVStore]:
    kv = RedisKVStore(with_key_prefix(require(CACHE_ENV), "x" + secrets.token_hex(6)), clock=clock)
    try:
        yield kv
    finally:
        await kv.flush()
        await kv.close()


def _same_prefix(store: RedisKVStore) -> RedisKVStore:
    return RedisKVStore(f"{require(CACHE_ENV)}?key_prefix={store.prefix}", clock=store.clock)


async def _members(raw: aioredis.Redis, store: RedisKVStore, space: str) -> list[str]:
    return [m.decode() for m in await raw.zrange(f"{store.prefix}i/{space}", 0, -1)]


async def _expire_in_redis(raw: aioredis.Redis, store: RedisKVStore, space: str, key: str) -> None:
    """Let Redis expire a key by itself (an expiry in the past), behind the store's back."""
    for name in (f"{store.prefix}d/{space}/{key}", f"{store.prefix}m/{space}/{key}"):
        assert await raw.pexpireat(name, 1)
    assert await raw.exists(f"{store.prefix}d/{space}/{key}", f"{store.prefix}m/{space}/{key}") == 0


async def _all_pages(store: KVStore, space: str, *, prefix: str = "", limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    after: str | None = None
    while True:
        page = await store.scan(space, prefix=prefix, after=after, limit=limit)
        pages.append(page)
        if len(page) < limit:
            return pages
        after = page[-1]


async def _commands(raw: aioredis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = await raw.info("commandstats")
    return {name: int(value["calls"]) for name, value in stats.items() if name != "cmdstat_info"}


async def _commands_during(raw: aioredis.Redis, work: Any) -> tuple[Any, dict[str, int]]:
    before = await _commands(raw)
    result = await work
    after = await _commands(raw)
    delta = {name: calls - before.get(name, 0) for name, calls in after.items()}
    return result, {name: calls for name, calls in delta.items() if calls}


async def test_listing_matches_the_reference_store_with_dead_keys_absent(
    store: RedisKVStore, raw: aioredis.Redis, clock: FakeClock
) -> None:
    reference = MemoryKVStore(clock=clock)
    keys = ["b", "a*", "a[1]", "a/z", "ä", "a\\b", "ab", "Z", "a", "aa", "a\U0001f600", "a\u00ff", "é/x", "zz"]
    for target in (store, reference):
        for key in keys:
            await target.set(SPACE, key, 1, 600)
        await target.hset(SPACE, "hash", "f", 1, 600)
        await target.set(SPACE, "short", 1, 60)
        await target.set(SPACE, "deleted", 1, 600)
        await target.delete(SPACE, "deleted")
        await target.hset(SPACE, "emptied", "f", 1, 600)
        await target.hdel(SPACE, "emptied", "f")
        await target.set("p/e/other", "a-elsewhere", 1, 600)
    await store.set(SPACE, "redis-expired", 1, 600)
    await _expire_in_redis(raw, store, SPACE, "redis-expired")
    clock.advance(61)  # "short" is expired by the clock; Redis still holds it

    live = sorted([*keys, "hash"])
    assert await store.scan(SPACE, limit=1000) == live
    for prefix in ["", "a", "a[", "é", "z", "nothing"]:
        for limit in [1, 3, 100]:
            assert await _all_pages(store, SPACE, prefix=prefix, limit=limit) == await _all_pages(
                reference, SPACE, prefix=prefix, limit=limit
            ), (prefix, limit)
        for after in [None, "", "a", "a[0", "a\u00ff", "aa", "b", "zzz"]:
            got = await store.scan(SPACE, prefix=prefix, after=after, limit=4)
            assert got == await reference.scan(SPACE, prefix=prefix, after=after, limit=4), (prefix, after)
    assert await store.scan(SPACE, prefix="a[") == ["a[1]"], "glob characters in a prefix are literal"
    assert await store.scan(SPACE, limit=0) == []
    assert await store.scan("p/e/empty") == []
    members = await _members(raw, store, SPACE)
    assert "deleted" not in members and "emptied" not in members, "delete and the last hdel unindex the key"
    assert "redis-expired" not in members and "short" not in members, "listing removes the dead members it meets"
    assert await raw.exists(f"{store.prefix}d/{SPACE}/short") == 0, "an expired key met by a listing is dropped"


async def test_scripts_keep_the_index(store: RedisKVStore, raw: aioredis.Redis, clock: FakeClock) -> None:
    await store.set(SPACE, "s", 1, 60)
    assert await store.setnx(SPACE, "n", 1, 60) == (True, None)
    assert await store.setnx(SPACE, "n", 2, 60) == (False, 1)
    assert await store.incr(SPACE, "i", 1, 600) == 1
    await store.hset(SPACE, "h", "f", 1, 600)
    assert await _members(raw, store, SPACE) == ["h", "i", "n", "s"]
    assert await raw.zscore(f"{store.prefix}i/{SPACE}", "s") == 0
    clock.advance(60)
    assert await store.get(SPACE, "s") is None
    assert await store.get_many([(SPACE, "n")]) == [None]
    assert await _members(raw, store, SPACE) == ["h", "i"], "a read that finds a key expired unindexes it"
    assert await store.delete(SPACE, "i") is True
    assert await store.hdel(SPACE, "h", "f") is True
    assert await raw.exists(f"{store.prefix}i/{SPACE}") == 0, "an empty index is no key at all"


async def test_a_small_space_is_listed_in_few_commands_next_to_a_large_one(
    store: RedisKVStore, raw: aioredis.Redis
) -> None:
    now = store._now_ms()
    for start in range(0, 20_000, 2_000):
        async with raw.pipeline(transaction=False) as pipe:
            for i in range(start, start + 2_000):
                key = f"k{i:05d}"
                args = [now, key, "1", 600, "0"]
                await store._set(keys=store._keys("p/e/big", key), args=args, client=pipe)
            await pipe.execute()
    for key in ["x", "y", "z"]:
        await store.set("p/e/small", key, 1, 600)
    assert await store.ensure_index() == 0, "keys written through the store are indexed already"

    keys, used = await _commands_during(raw, store.scan("p/e/small"))
    assert keys == ["x", "y", "z"]
    assert "cmdstat_scan" not in used, used
    assert sum(used.values()) <= 3, used  # one ZRANGE and one MGET

    page, used = await _commands_during(raw, store.scan("p/e/big", prefix="k1", after="k12345", limit=100))
    assert page == [f"k{i:05d}" for i in range(12_346, 12_446)]
    assert "cmdstat_scan" not in used and sum(used.values()) <= 3, used


async def test_purge_expired_sweeps_members_of_keys_gone(
    store: RedisKVStore, raw: aioredis.Redis, clock: FakeClock
) -> None:
    for key in ["gone", "clock-expired", "kept"]:
        await store.set(SPACE, key, 1, 600 if key == "kept" else 60)
    await store.set("p/e/other", "gone-too", 1, 60)
    await _expire_in_redis(raw, store, SPACE, "gone")
    await _expire_in_redis(raw, store, "p/e/other", "gone-too")
    assert await _members(raw, store, SPACE) == ["clock-expired", "gone", "kept"], "Redis expiry leaves a member"
    clock.advance(61)
    assert await store.purge_expired() == 3
    assert await _members(raw, store, SPACE) == ["kept"]
    assert await raw.exists(f"{store.prefix}i/p/e/other") == 0
    assert await raw.exists(f"{store.prefix}d/{SPACE}/clock-expired", f"{store.prefix}m/{SPACE}/clock-expired") == 0
    assert await store.purge_expired() == 0
    assert await store.scan(SPACE) == ["kept"]


async def test_writes_start_a_background_sweep_now_and_then(store: RedisKVStore, raw: aioredis.Redis) -> None:
    store.PURGE_EVERY = 5
    await store.set(SPACE, "stale", 1, 60)
    await _expire_in_redis(raw, store, SPACE, "stale")
    for i in range(3):
        await store.set(SPACE, f"w{i}", i, 60)
    assert store._purging is None, "not before PURGE_EVERY writes"
    await store.incr(SPACE, "w3", 1, 60)
    assert store._purging is not None
    assert await store._purging == 1
    assert await _members(raw, store, SPACE) == ["w0", "w1", "w2", "w3"]


async def test_data_from_before_the_index_is_indexed_once(store: RedisKVStore, raw: aioredis.Redis) -> None:
    expected = {SPACE: sorted(["a", "b/c", "ä", "h"]), "p/e/d": ["x"]}
    for space, keys in expected.items():
        for key in keys:
            if key == "h":
                await store.hset(space, key, "f", 1, 600)
            else:
                await store.set(space, key, 1, 600)
    await store.set(SPACE, "dead", 1, 600)
    # The layout an older version left behind: data and meta keys, no index, no marker.
    await raw.delete(f"{store.prefix}i/{SPACE}", f"{store.prefix}i/p/e/d", store.prefix + INDEX_MARKER)
    await raw.delete(f"{store.prefix}m/{SPACE}/dead")

    builders = [_same_prefix(store) for _ in range(2)]
    try:
        added = await asyncio.gather(*(b.ensure_index() for b in builders))
        assert added[0] + added[1] >= 6, "every data key was indexed by one builder or both"
        assert await raw.exists(store.prefix + INDEX_MARKER) == 1
        fresh = _same_prefix(store)
        try:
            assert await _all_pages(fresh, SPACE, limit=2) == [expected[SPACE][:2], expected[SPACE][2:], []]
            assert await fresh.scan("p/e/d") == ["x"]
            assert await fresh.ensure_index() == 0, "with the marker present nothing is rebuilt"
        finally:
            await fresh.close()
    finally:
        for builder in builders:
            await builder.close()
    assert "dead" not in await _members(raw, store, SPACE), "the listing removed the member of a dead key"


async def test_a_lister_never_misses_a_key_that_lives_throughout(store: RedisKVStore) -> None:
    stable = [f"s{i:03d}" for i in range(150)]
    for key in stable:
        await store.set(SPACE, key, 1, 600)
    for i in range(100):
        await store.set(SPACE, f"c{i:03d}", 1, 600)
    passes: list[list[str]] = []

    async def churn(worker: int) -> None:
        for i in range(150):
            await store.set(SPACE, f"n{worker}-{i:03d}", 1, 600)
            await store.delete(SPACE, f"c{(worker * 50 + i) % 100:03d}")
            await store.set(SPACE, f"s{(i * 7) % 150:03d}", 2, 600)  # an overwrite keeps the key alive
            await store.set(SPACE, f"c{(worker * 50 + i + 25) % 100:03d}", 1, 600)

    async def lister() -> None:
        for _ in range(6):
            listed: list[str] = []
            for page in await _all_pages(store, SPACE, limit=7):
                listed += page
            passes.append(listed)

    await asyncio.gather(churn(0), churn(1), lister())
    for listed in passes:
        assert listed == sorted(set(listed)), "in order, no key twice"
        assert set(stable) <= set(listed), sorted(set(stable) - set(listed))


async def test_flush_removes_the_indexes_and_the_marker(store: RedisKVStore, raw: aioredis.Redis) -> None:
    await store.set(SPACE, "k", 1, 60)
    assert await store.scan(SPACE) == ["k"]
    assert await raw.exists(f"{store.prefix}i/{SPACE}", store.prefix + INDEX_MARKER) == 2
    assert await store.flush() == 4  # data, meta, index, marker
    assert [key async for key in raw.scan_iter(match=store.prefix + "*")] == []
    assert await store.scan(SPACE) == []
