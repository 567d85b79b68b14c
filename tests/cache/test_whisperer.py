"""Whisperer through the SDK against a real in-process server: values, locks, counters, hashes, TTLs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from typing import Any

import pytest

from dominus_fastapi import Dominus, DominusError, ValidationError
from dominus_fastapi.core.namespaces.redis import SetnxResult
from dominus_local.stores.kv import MemoryKVStore, SqlKVStore
from tests.conftest import CACHE_ENV, InProcessServer


async def test_readme_lock_pattern(embedded: Dominus) -> None:
    dominus = embedded
    ran = False
    if await dominus.redis.setnx("lock:job", "worker-1", ttl=60):
        try:
            ran = True
            held = await dominus.redis.setnx("lock:job", "worker-2", ttl=60)
            assert not held
            assert held == {"acquired": False, "existing": "worker-1"}
            assert held.existing == "worker-1"
        finally:
            await dominus.redis.delete("lock:job")
    assert ran
    again = await dominus.redis.setnx("lock:job", "worker-2", ttl=60)
    assert again and again.acquired and again["existing"] is None
    assert isinstance(again, dict) and isinstance(again, SetnxResult)


async def test_readme_cache_examples(embedded: Dominus) -> None:
    dominus = embedded
    stored = await dominus.redis.set("user:42:profile", {"name": "Ada"}, ttl=300)
    assert stored == {"key": "user:42:profile", "stored": True, "ttl_seconds": 300}
    hit = await dominus.redis.get("user:42:profile")
    assert hit["found"] is True and hit["value"] == {"name": "Ada"} and 299 <= hit["ttl_remaining"] <= 300
    assert (await dominus.redis.incr("hits"))["value"] == 1
    assert (await dominus.redis.incr("hits", delta=5))["value"] == 6
    assert (await dominus.redis.hset("session:1", "theme", "dark"))["set"] is True
    assert await dominus.redis.hgetall("session:1") == {"found": True, "fields": {"theme": "dark"}}
    assert (await dominus.redis.delete("user:42:profile"))["deleted"] is True
    assert await dominus.redis.get("user:42:profile") == {"found": False, "value": None, "ttl_remaining": None}


async def test_two_hundred_concurrent_setnx_exactly_one_acquires(embedded: Dominus) -> None:
    results = await asyncio.gather(*(embedded.redis.setnx("lock:race", f"worker-{i}", ttl=60) for i in range(200)))
    winners = [i for i, result in enumerate(results) if result]
    assert len(winners) == 1
    holder = f"worker-{winners[0]}"
    assert all(result.existing == holder for result in results if not result)
    assert (await embedded.redis.get("lock:race"))["value"] == holder


async def test_thousand_concurrent_incr_count_exactly(embedded: Dominus) -> None:
    results = await asyncio.gather(*(embedded.redis.incr("counter:hits") for _ in range(1000)))
    assert sorted(r["value"] for r in results) == list(range(1, 1001))
    assert (await embedded.redis.get("counter:hits"))["value"] == 1000


async def test_ttl_expiry_with_server_clock(local_server: InProcessServer, local_client: Dominus) -> None:
    redis = local_client.redis
    await redis.set("short", "v", ttl=60)
    await redis.hset("h", "f", 1, ttl=60)
    local_server.wall.advance(59)
    assert (await redis.get("short"))["ttl_remaining"] == 1
    assert (await redis.list())["keys"] == ["h", "short"]
    local_server.wall.advance(1)
    assert (await redis.get("short"))["found"] is False
    assert (await redis.hgetall("h"))["found"] is False
    assert (await redis.list()) == {"keys": [], "cursor": None, "count": 0}
    # An expired key is absent for setnx and incr too.
    assert await redis.setnx("short", "again")
    await redis.incr("n", delta=7, ttl=60)
    local_server.wall.advance(61)
    assert (await redis.incr("n", delta=2))["value"] == 2


async def test_nudge_refreshes_expiry(local_server: InProcessServer, local_client: Dominus) -> None:
    redis = local_client.redis
    await redis.set("k", "v", ttl=100)
    local_server.wall.advance(50)
    plain = await redis.get("k")
    assert plain["ttl_remaining"] == 50  # a plain get does not touch the expiry
    nudged = await redis.get("k", nudge=True)
    assert nudged["ttl_remaining"] == 100  # back to the TTL it was written with
    local_server.wall.advance(90)
    assert (await redis.get("k"))["found"] is True
    assert (await redis.get("k", nudge=True, ttl=600))["ttl_remaining"] == 600
    local_server.wall.advance(599)
    assert (await redis.get("k"))["ttl_remaining"] == 1
    # The TTL it was written with is still 100: a nudge without ttl goes back to it.
    assert (await redis.get("k", nudge=True))["ttl_remaining"] == 100
    assert (await redis.get("missing", nudge=True))["ttl_remaining"] is None


@pytest.mark.parametrize("ttl", [59, 86401, 0, -1, True, 3.5])
async def test_ttl_out_of_bounds_is_refused_before_sending(ttl: Any) -> None:
    # Nothing listens on this port: a request would fail with a connection error, not a ValidationError.
    client = Dominus(base_url="http://127.0.0.1:9", token="0" * 64, max_retries=0)
    try:
        for call in (
            client.redis.set("k", "v", ttl=ttl),
            client.redis.setnx("k", "v", ttl=ttl),
            client.redis.incr("k", ttl=ttl),
            client.redis.hset("k", "f", "v", ttl=ttl),
            client.redis.get("k", nudge=True, ttl=ttl),
        ):
            with pytest.raises(ValidationError) as info:
                await call
            assert info.value.status_code is None
            assert info.value.details["field"] == "ttl"
    finally:
        await client.aclose()


async def test_key_count_and_names_checked_before_sending() -> None:
    client = Dominus(base_url="http://127.0.0.1:9", token="0" * 64, max_retries=0)
    try:
        with pytest.raises(ValidationError, match="at most 100"):
            await client.redis.mget([f"k{i}" for i in range(101)])
        with pytest.raises(ValidationError):
            await client.redis.set("", "v")
        with pytest.raises(ValidationError):
            await client.redis.set("x" * 513, "v")
        with pytest.raises(ValidationError):
            await client.redis.get("k", category="bad category")
        with pytest.raises(ValidationError):
            await client.redis.list(limit=0)
        assert await client.redis.mget([]) == {"results": []}
    finally:
        await client.aclose()


async def test_server_enforces_bounds_too(local_client: Dominus) -> None:
    """The same limits hold for a client that skips the SDK's checks (raw requests)."""
    request = local_client.request
    for ttl in (59, 86401):
        with pytest.raises(ValidationError) as info:
            await request("POST", "/api/whisperer/set", body={"logical_path": "k", "value": 1, "ttl_seconds": ttl})
        assert info.value.status_code == 400 and info.value.details["field"] == "ttl_seconds"
    with pytest.raises(ValidationError) as info:
        await request("POST", "/api/whisperer/list", body={"limit": 501})
    assert info.value.details["field"] == "limit"
    with pytest.raises(ValidationError) as info:
        await request("POST", "/api/whisperer/mget", body={"keys": [{"logical_path": f"k{i}"} for i in range(101)]})
    assert info.value.details["field"] == "keys"
    with pytest.raises(ValidationError) as info:
        await request("POST", "/api/whisperer/set", body={"logical_path": "a\x00b", "value": 1})
    assert info.value.details["field"] == "logical_path"
    with pytest.raises(ValidationError) as info:
        await request("POST", "/api/whisperer/set", body={"logical_path": "k"})
    assert info.value.details == {"field": "value", "reason": "is required"}
    with pytest.raises(ValidationError) as info:
        await request("POST", "/api/whisperer/hset", body={"logical_path": "k", "field": "", "value": 1})
    assert info.value.details["field"] == "field"
    # Nothing of the refused writes was stored.
    assert (await local_client.redis.list())["keys"] == []


async def test_list_limit_above_500_is_lowered(local_client: Dominus) -> None:
    for i in range(3):
        await local_client.redis.set(f"k{i}", i)
    page = await local_client.redis.list(limit=10_000)
    assert page == {"keys": ["k0", "k1", "k2"], "cursor": None, "count": 3}


async def test_value_over_one_mebibyte_is_413(local_client: Dominus) -> None:
    with pytest.raises(ValidationError) as info:
        await local_client.redis.set("big", "x" * (1024 * 1024))
    assert info.value.status_code == 413 and info.value.code == "payload_too_large"
    assert (await local_client.redis.get("big"))["found"] is False
    await local_client.redis.set("fits", "x" * (1024 * 1024 - 2))  # the JSON string's quotes count


async def test_counters_are_integers_and_keep_their_expiry(
    local_server: InProcessServer, local_client: Dominus
) -> None:
    redis = local_client.redis
    assert (await redis.incr("c", delta=10, ttl=100))["value"] == 10
    local_server.wall.advance(40)
    assert (await redis.incr("c", delta=-15, ttl=3600))["value"] == -5
    assert (await redis.get("c"))["ttl_remaining"] == 60
    await redis.set("text", "abc")
    await redis.set("float", 1.5)
    for key in ("text", "float"):
        with pytest.raises(ValidationError) as info:
            await redis.incr(key)
        assert info.value.status_code == 422 and info.value.code == "unprocessable"
    assert (await redis.get("text"))["value"] == "abc"
    await redis.set("big", 2**63 - 1)
    with pytest.raises(ValidationError) as info:
        await redis.incr("big")
    assert info.value.status_code == 422
    assert (await redis.get("big"))["value"] == 2**63 - 1


async def test_hashes_share_the_key_ttl_and_refuse_plain_access(
    local_server: InProcessServer, local_client: Dominus
) -> None:
    redis = local_client.redis
    assert (await redis.hset("h", "a", 1, ttl=100))["set"] is True
    assert (await redis.hset("h", "a", 2, ttl=100))["set"] is False
    local_server.wall.advance(80)
    assert (await redis.hset("h", "b", {"x": [1]}, ttl=100))["set"] is True  # resets the whole hash
    local_server.wall.advance(80)
    assert await redis.hget("h", "a") == {"found": True, "value": 2}
    assert await redis.hget("h", "zz") == {"found": False, "value": None}
    assert await redis.hgetall("h") == {"found": True, "fields": {"a": 2, "b": {"x": [1]}}}
    for call in (redis.get("h"), redis.set("h", 1), redis.incr("h"), redis.setnx("h", 1), redis.mget(["h"])):
        with pytest.raises(ValidationError) as info:
            await call
        assert info.value.status_code == 422
    await redis.set("plain", "v")
    for call in (
        redis.hget("plain", "a"),
        redis.hset("plain", "a", 1),
        redis.hgetall("plain"),
        redis.hdel("plain", "a"),
    ):
        with pytest.raises(ValidationError) as info:
            await call
        assert info.value.status_code == 422
    assert (await redis.get("plain"))["value"] == "v"
    assert (await redis.hdel("h", "a"))["deleted"] is True
    assert (await redis.hdel("h", "a"))["deleted"] is False
    assert (await redis.hdel("h", "b"))["deleted"] is True
    assert (await redis.hgetall("h")) == {"found": False, "fields": {}}
    assert "h" not in (await redis.list())["keys"]


async def test_categories_are_separate_key_spaces(local_client: Dominus) -> None:
    redis = local_client.redis
    await redis.set("k", "default-value")
    await redis.set("k", "tenant-a", category="tenant:a")
    await redis.set("only-b", 1, category="tenant.b")
    assert (await redis.get("k"))["value"] == "default-value"
    assert (await redis.get("k", category="tenant:a"))["value"] == "tenant-a"
    assert (await redis.get("k", category="default"))["value"] == "default-value"
    assert (await redis.list(category="tenant.b"))["keys"] == ["only-b"]
    assert (await redis.list())["keys"] == ["k"]
    await redis.delete("k", category="tenant:a")
    assert (await redis.get("k"))["found"] is True
    results = await redis.mget(
        [
            {"logical_path": "k"},
            {"logical_path": "k", "category": "tenant:a"},
            {"logical_path": "only-b", "category": "tenant.b"},
            "nope",
        ]
    )
    assert results["results"] == [
        {"logical_path": "k", "category": "default", "found": True, "value": "default-value"},
        {"logical_path": "k", "category": "tenant:a", "found": False, "value": None},
        {"logical_path": "only-b", "category": "tenant.b", "found": True, "value": 1},
        {"logical_path": "nope", "category": "default", "found": False, "value": None},
    ]


async def test_cursor_listing_never_skips_or_repeats_while_keys_are_added(local_client: Dominus) -> None:
    redis = local_client.redis
    original = [f"key:{i:03d}" for i in range(0, 100, 2)]
    await asyncio.gather(*(redis.set(key, key) for key in original))
    seen: list[str] = []
    cursor: str | None = None
    added = 0
    while True:
        page = await redis.list(prefix="key:", limit=7, cursor=cursor)
        assert page["count"] == len(page["keys"]) <= 7
        seen += page["keys"]
        cursor = page["cursor"]
        if cursor is None:
            break
        # Keys appear on both sides of the cursor between pages.
        await redis.set(f"key:{added * 2 + 1:03d}", "new")
        await redis.set(f"key:{99 - added * 2:03d}x", "new")
        await redis.set(f"other:{added}", "not matching the prefix")
        added += 1
    assert len(seen) == len(set(seen)), "a key was repeated"
    assert set(original) <= set(seen), "a key that lived throughout was skipped"
    assert seen == sorted(seen)
    assert all(key.startswith("key:") for key in seen)


async def test_cursor_is_bound_to_its_listing(local_client: Dominus) -> None:
    for i in range(3):
        await local_client.redis.set(f"p{i}", i)
    page = await local_client.redis.list(limit=1)
    assert page["cursor"] is not None
    with pytest.raises(ValidationError) as info:
        await local_client.redis.list(limit=1, cursor=page["cursor"], category="other")
    assert info.value.details["field"] == "cursor"
    with pytest.raises(ValidationError):
        await local_client.redis.list(cursor="not-a-cursor")


async def test_delete_reports_absence(local_client: Dominus) -> None:
    assert (await local_client.redis.delete("never"))["deleted"] is False


async def test_restart_keeps_unexpired_keys(tmp_path: Any) -> None:
    url = f"embedded://{tmp_path / 'data'}"
    first = Dominus(base_url=url)
    try:
        await first.redis.set("kept", {"v": 1}, ttl=3600)
        await first.redis.hset("kept-hash", "f", "x", ttl=3600)
        await first.redis.incr("kept-counter", delta=41)
        await first.redis.set("short", "gone soon", ttl=60)
    finally:
        await first.aclose()
    second = Dominus(base_url=url)
    try:
        assert (await second.redis.get("kept"))["value"] == {"v": 1}
        assert (await second.redis.hget("kept-hash", "f"))["value"] == "x"
        assert (await second.redis.incr("kept-counter"))["value"] == 42
        instance = second._transport.embedded.instance  # type: ignore[union-attr]
        assert instance is not None
        store = instance.state.extras["whisperer"]
        real_clock = store.clock
        store.clock = lambda: real_clock() + 61
        assert (await second.redis.get("short"))["found"] is False
        assert (await second.redis.get("kept"))["found"] is True
    finally:
        await second.aclose()


async def test_store_follows_where_the_instance_keeps_its_data(
    local_server: InProcessServer, local_client: Dominus, tmp_path: Any
) -> None:
    # Nothing on disk: a dictionary of the process; a data directory: the database's table (kept on restart).
    store = local_server.local.state.extras["whisperer"]
    if os.environ.get(CACHE_ENV):
        # The run on real backends gives every test server a Redis cache.
        assert type(store).__name__ == "RedisKVStore"
    else:
        assert isinstance(store, MemoryKVStore)
    await local_client.redis.set("k", 1)
    assert (await local_client.redis.get("k"))["value"] == 1
    on_disk = Dominus(base_url=f"embedded://{tmp_path / 'data'}")
    try:
        await on_disk.redis.set("k", 2)
        instance = on_disk._transport.embedded.instance  # type: ignore[union-attr]
        assert instance is not None
        if os.environ.get(CACHE_ENV):
            assert type(instance.state.extras["whisperer"]).__name__ == "RedisKVStore"
        else:
            assert isinstance(instance.state.extras["whisperer"], SqlKVStore)
    finally:
        await on_disk.aclose()


async def test_a_retried_set_is_replayed_without_writing_again(embedded: Dominus) -> None:
    """The key is recorded with the write (in the Redis script on Redis): a retry of an earlier set does not
    overwrite a later value, and the key reused for another value writes nothing."""
    redis = embedded.redis
    first = await redis.set("replayed", "one", ttl=600, idempotency_key="set-1")
    await redis.set("replayed", "two", ttl=600)
    assert await redis.set("replayed", "one", ttl=600, idempotency_key="set-1") == first
    assert (await redis.get("replayed"))["value"] == "two"
    with pytest.raises(DominusError) as reused:
        await redis.set("replayed", "three", ttl=600, idempotency_key="set-1")
    assert (reused.value.status_code, reused.value.code) == (422, "idempotency_key_reused")
    assert (await redis.get("replayed"))["value"] == "two"


async def test_a_failed_set_keeps_its_answer(embedded: Dominus) -> None:
    redis = embedded.redis
    await redis.hset("shape", "f", 1, ttl=600)
    with pytest.raises(DominusError) as first:
        await redis.set("shape", "plain", ttl=600, idempotency_key="set-2")
    await redis.delete("shape")
    # The key's answer was the 422: it is sent again and the set does not run.
    with pytest.raises(DominusError) as again:
        await redis.set("shape", "plain", ttl=600, idempotency_key="set-2")
    assert again.value.code == first.value.code and again.value.status_code == first.value.status_code == 422
    assert (await redis.get("shape"))["found"] is False


async def test_on_a_sqlite_file_a_set_and_its_key_commit_together_and_a_reused_key_changes_nothing(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a SQLite file a ``set`` is one function of the writer's group commit: the value and its key's record
    are both in the file once answered; the key replays the answer, and reused for another value writes nothing."""
    for name in ("DOMINUS_LOCAL_DATABASE_URL", "DOMINUS_LOCAL_CACHE_URL"):
        monkeypatch.delenv(name, raising=False)  # the run on real backends would point the server elsewhere
    data_dir = tmp_path / "data"
    client = Dominus(base_url=f"embedded://{data_dir}")
    try:
        first = await client.redis.set("flag", "on", ttl=600, idempotency_key="set-once")
        instance = client._transport.embedded.instance  # type: ignore[union-attr]
        assert instance is not None and instance.state.db.direct is not None
        with contextlib.closing(sqlite3.connect(data_dir / "dominus.db")) as db:
            assert db.execute("SELECT value FROM whisperer_kv WHERE key = 'flag'").fetchall() == [('"on"',)]
            recorded = db.execute("SELECT status FROM dispatch_idempotency_keys WHERE key = 'set-once'").fetchall()
            assert recorded == [(200,)]
        assert await client.redis.set("flag", "on", ttl=600, idempotency_key="set-once") == first
        with pytest.raises(DominusError) as reused:
            await client.redis.set("flag", "off", ttl=600, idempotency_key="set-once")
        assert (reused.value.status_code, reused.value.code) == (422, "idempotency_key_reused")
        assert (await client.redis.get("flag"))["value"] == "on"
    finally:
        await client.aclose()
