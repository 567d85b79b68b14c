"""Every Whisperer write records its idempotency key with the write itself (spec 6.3): in the Redis script on
Redis, in the write's transaction on SQLite and PostgreSQL, with the entry in memory otherwise. A retry is
answered from the record and writes nothing; the key reused for another request writes nothing either.

``embedded`` is the in-memory store here and Redis in the run on real backends; ``on_file`` is a SQLite file
(the writer's group commit); the store-level test covers the SQL store's transaction path.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dominus_fastapi import Dominus, DominusError
from dominus_local.idempotency import KeyTaken, KeyUse, StoredAnswer, idempotency_keys
from dominus_local.stores.database import Database
from dominus_local.stores.kv import Keep, KVStore, SqlKVStore
from dominus_local.stores.kv_redis import RedisKVStore
from tests.conftest import make_fast


@pytest.fixture
async def on_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Dominus]:
    for name in ("DOMINUS_LOCAL_DATABASE_URL", "DOMINUS_LOCAL_CACHE_URL"):
        monkeypatch.delenv(name, raising=False)  # the run on real backends would point the server elsewhere
    client = Dominus(base_url=f"embedded://{tmp_path / 'data'}")
    make_fast(client)
    try:
        yield client
    finally:
        await client.aclose()


def _store(client: Dominus) -> KVStore:
    instance = client._transport.embedded.instance  # type: ignore[union-attr]
    assert instance is not None
    store: KVStore = instance.state.extras["whisperer"]
    return store


async def _retried_and_reused(
    client: Dominus,
    write: Callable[[str], Awaitable[Any]],
    reused: Callable[[str], Awaitable[Any]],
    state: Callable[[], Awaitable[Any]],
) -> Any:
    """``write`` with a key, again with it (the same answer, nothing written), then ``reused`` with it (422,
    nothing written); returns the first answer."""
    first = await write("k-1")
    after = await state()
    assert await write("k-1") == first
    assert await state() == after
    with pytest.raises(DominusError) as refused:
        await reused("k-1")
    assert (refused.value.status_code, refused.value.code) == (422, "idempotency_key_reused")
    assert await state() == after
    return first


async def _every_write(client: Dominus) -> None:
    redis = client.redis

    async def counter() -> Any:
        return (await redis.get("hits"))["value"]

    first = await _retried_and_reused(
        client,
        lambda k: redis.incr("hits", 5, idempotency_key=k),
        lambda k: redis.incr("hits", 6, idempotency_key=k),
        counter,
    )
    assert first == {"value": 5}
    assert (await redis.incr("hits", 1, idempotency_key="k-2")) == {"value": 6}
    assert (await redis.incr("hits", 1, idempotency_key="k-2")) == {"value": 6}  # replayed, not 7

    async def lock() -> Any:
        return (await redis.get("lock"))["value"]

    won = await _retried_and_reused(
        client,
        lambda k: redis.setnx("lock", "me", idempotency_key=f"{k}-nx"),
        lambda k: redis.setnx("lock", "you", idempotency_key=f"{k}-nx"),
        lock,
    )
    assert bool(won) and won.existing is None
    # A lost race is an answer too: its retry says "lost, held by me" even after the lock changed hands.
    lost = await redis.setnx("lock", "other", idempotency_key="lost")
    assert not lost and lost.existing == "me"
    await redis.set("lock", "third")
    again = await redis.setnx("lock", "other", idempotency_key="lost")
    assert not again and again.existing == "me"

    async def fields() -> Any:
        return (await redis.hgetall("h"))["fields"]

    assert await _retried_and_reused(
        client,
        lambda k: redis.hset("h", "a", 1, idempotency_key=f"{k}-hs"),
        lambda k: redis.hset("h", "a", 2, idempotency_key=f"{k}-hs"),
        fields,
    ) == {"set": True}
    await redis.hset("h", "b", 2)
    assert await _retried_and_reused(
        client,
        lambda k: redis.hdel("h", "a", idempotency_key=f"{k}-hd"),
        lambda k: redis.hdel("h", "b", idempotency_key=f"{k}-hd"),
        fields,
    ) == {"deleted": True}
    await redis.hset("h", "a", 3)
    # The retry of the first hdel does not remove the field written since.
    assert await redis.hdel("h", "a", idempotency_key="k-1-hd") == {"deleted": True}
    assert (await fields()) == {"a": 3, "b": 2}

    async def exists() -> Any:
        return (await redis.get("lock"))["found"]

    assert await _retried_and_reused(
        client,
        lambda k: redis.delete("lock", idempotency_key=f"{k}-del"),
        lambda k: redis.delete("hits", idempotency_key=f"{k}-del"),
        exists,
    ) == {"deleted": True}
    await redis.set("lock", "back")
    assert await redis.delete("lock", idempotency_key="k-1-del") == {"deleted": True}
    assert (await redis.get("lock"))["found"] is True  # the replay deleted nothing


async def test_every_write_records_its_key_with_the_write(embedded: Dominus) -> None:
    await _every_write(embedded)
    store = _store(embedded)
    if isinstance(store, RedisKVStore):
        # In Redis, next to the data (written by the same script), and not in the database.
        assert len(await store._client.keys(f"{store.prefix}k/*:k-2")) == 1
        instance = embedded._transport.embedded.instance  # type: ignore[union-attr]
        assert instance is not None
        async with instance.state.db.begin() as conn:
            rows = await conn.execute(select(idempotency_keys.c.key).where(idempotency_keys.c.key == "k-2"))
            assert rows.all() == []


async def test_on_a_sqlite_file_every_write_and_its_key_commit_together(on_file: Dominus, tmp_path: Path) -> None:
    await _every_write(on_file)
    store = _store(on_file)
    assert isinstance(store, SqlKVStore)
    with contextlib.closing(sqlite3.connect(tmp_path / "data" / "dominus.db")) as db:
        keys = {k for (k,) in db.execute("SELECT key FROM dispatch_idempotency_keys WHERE status = 200")}
    assert {"k-1", "k-2", "k-1-nx", "lost", "k-1-hs", "k-1-hd", "k-1-del"} <= keys


async def test_a_failed_write_keeps_its_answer_in_the_stores_records(embedded: Dominus) -> None:
    redis = embedded.redis
    await redis.set("plain", "x")
    for attempt in range(2):
        with pytest.raises(DominusError) as refused:
            await redis.hset("plain", "f", 1, idempotency_key="wrong-kind")
        assert refused.value.status_code == 422, attempt
        await redis.delete("plain")
    # The second attempt was answered from the record: the key stayed absent, no hash was made.
    assert (await redis.get("plain"))["found"] is False
    assert (await redis.hgetall("plain"))["found"] is False


class _Recorder:
    async def record_failure(self, use: KeyUse, status: int, body: bytes) -> StoredAnswer | None:
        raise AssertionError("not used here")


async def test_the_sql_store_records_in_the_writes_transaction_and_rolls_back_a_taken_key(db: Database) -> None:
    """The SQLAlchemy path (PostgreSQL, and SQLite without a file): the record is the write's last statement;
    a recorded key raises :class:`KeyTaken` and the write is rolled back with it."""
    store = SqlKVStore(db)
    use = KeyUse("client", "c1", "key-1", "fp", _Recorder())
    assert await store.incr("s", "n", 3, 60, keep=Keep(use, lambda v: {"value": v})) == 3
    assert use.answer is not None
    again = KeyUse("client", "c1", "key-1", "fp", _Recorder())
    with pytest.raises(KeyTaken) as taken:
        await store.incr("s", "n", 3, 60, keep=Keep(again, lambda v: {"value": v}))
    assert taken.value.stored.body == use.answer
    entry = await store.get("s", "n")
    assert entry is not None and entry.value == 3
