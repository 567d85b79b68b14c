"""Idempotency keys of Scribe's writes (spec 6.3): recorded in the write's own transaction, replayed without
running again, refused when reused, and kept for a failure too."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select, text

from dominus_fastapi import ConflictError, DominusError
from dominus_local.idempotency import idempotency_keys
from dominus_local.stores.userdata import userdata_for
from tests.data.conftest import Env, make_orders


@contextmanager
def transactions(env: Env) -> Iterator[list[list[str]]]:
    """The statements of every transaction the server commits while the block runs, one list each."""
    engine = env.state.db.engine.sync_engine
    running: dict[int, list[str]] = {}
    committed: list[list[str]] = []

    def executed(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        running.setdefault(id(conn), []).append(statement)

    def commit(conn: Any) -> None:
        committed.append(running.pop(id(conn), []))

    def rollback(conn: Any) -> None:
        running.pop(id(conn), None)

    event.listen(engine, "after_cursor_execute", executed)
    event.listen(engine, "commit", commit)
    event.listen(engine, "rollback", rollback)
    try:
        yield committed
    finally:
        event.remove(engine, "after_cursor_execute", executed)
        event.remove(engine, "commit", commit)
        event.remove(engine, "rollback", rollback)


async def _keys(env: Env, *names: str) -> list[tuple[Any, ...]]:
    """``(key, status)`` of the recorded keys among ``names`` (Scribe's table: in the user data on SQLite)."""
    ud = userdata_for(env.state)
    c = ud.keys_table.c
    async with env.state.db.begin() as conn:
        await ud.prepare(conn)
        return [tuple(r) for r in await conn.execute(select(c.key, c.status).where(c.key.in_(names)).order_by(c.key))]


async def _writer(env: Env, table: str, column: str, value: Any) -> str:
    """The id of the PostgreSQL transaction that wrote the row of ``table`` whose ``column`` is ``value``."""
    async with env.state.db.begin() as conn:
        statement = text(f"SELECT xmin::text FROM {table} WHERE {column} = :value")
        return str((await conn.execute(statement, {"value": value})).scalar_one())


async def _orders(env: Env) -> int:
    return int((await env.client.db.query("orders"))["total"])


async def test_an_insert_and_its_key_commit_in_one_transaction(env: Env) -> None:
    await make_orders(env.client)
    with transactions(env) as committed:
        row = await env.client.db.insert("orders", {"customer": "ada"}, idempotency_key="insert-1")
    if env.state.db.is_sqlite:
        writes = [t for t in committed if any("orders" in s and s.lstrip().upper().startswith("INSERT") for s in t)]
        keyed = [t for t in committed if any(idempotency_keys.name in s for s in t)]
        assert len(writes) == 1 and keyed == writes
    else:
        # Scribe's fast path runs its statements on asyncpg itself, out of SQLAlchemy's sight: the database says
        # which transaction wrote each row.
        assert await _writer(env, "public.orders", "id", row["id"]) == await _writer(
            env, idempotency_keys.name, "key", "insert-1"
        )
    assert await _keys(env, "insert-1") == [("insert-1", 200)]
    assert row["customer"] == "ada"


async def test_a_retried_write_is_replayed_and_a_reused_key_writes_nothing(env: Env) -> None:
    await make_orders(env.client)
    first = await env.client.db.insert("orders", {"customer": "ada"}, idempotency_key="k")
    again = await env.client.db.insert("orders", {"customer": "ada"}, idempotency_key="k")
    assert again == first
    with pytest.raises(DominusError) as reused:
        await env.client.db.insert("orders", {"customer": "bob"}, idempotency_key="k")
    assert (reused.value.status_code, reused.value.code) == (422, "idempotency_key_reused")
    assert await _orders(env) == 1
    # The same for an update and a delete.
    await env.client.db.update("orders", {"customer": "eve"}, {"customer": "ada"}, idempotency_key="u")
    assert await env.client.db.update("orders", {"customer": "eve"}, {"customer": "ada"}, idempotency_key="u") == {
        "affected_rows": 1
    }
    assert (await env.client.db.delete("orders", {"customer": "eve"}, idempotency_key="d")) == {"affected_rows": 1}
    await env.client.db.insert("orders", {"customer": "eve"})
    assert (await env.client.db.delete("orders", {"customer": "eve"}, idempotency_key="d")) == {"affected_rows": 1}
    assert await _orders(env) == 1


async def test_a_failed_write_keeps_its_answer(env: Env) -> None:
    await make_orders(env.client)
    await env.client.ddl.create_index("public", "orders", "orders_customer_key", ["customer"], unique=True)
    await env.client.db.insert("orders", {"customer": "ada"})
    with pytest.raises(ConflictError):
        await env.client.db.insert("orders", {"customer": "ada"}, idempotency_key="dup")
    await env.client.db.delete("orders", {"customer": "ada"})
    # The conflict is gone, but the key's answer was the 409: it is sent again, nothing runs.
    with pytest.raises(ConflictError):
        await env.client.db.insert("orders", {"customer": "ada"}, idempotency_key="dup")
    assert await _orders(env) == 0
    assert await _keys(env, "dup") == [("dup", 409)]


async def test_a_column_added_after_the_table_was_resolved_is_known_at_once(env: Env) -> None:
    await make_orders(env.client)
    await env.client.db.insert("orders", {"customer": "ada"})
    await env.client.ddl.add_column("orders", "note", "TEXT")
    row = await env.client.db.insert("orders", {"customer": "bob", "note": "new"})
    assert row["note"] == "new"
    await env.client.ddl.drop_column("public", "orders", "note")
    assert "note" not in (await env.client.db.query("orders", limit=1))["rows"][0]


async def test_a_table_resolved_before_another_process_changed_it_is_read_again_on_failure(env: Env) -> None:
    await make_orders(env.client)
    await env.client.db.insert("orders", {"customer": "ada"})
    ud = userdata_for(env.state)
    stale = dict(ud.resolved)
    assert ("public", "orders") in stale
    await env.client.ddl.add_column("orders", "note", "TEXT")
    # As if the column had been added by another process: this one still holds the table as it was.
    ud.resolved.update(stale)
    row = await env.client.db.insert("orders", {"customer": "bob", "note": "new"}, idempotency_key="after-ddl")
    assert row["note"] == "new"
    assert ("public", "orders") in ud.resolved and "note" in ud.resolved["public", "orders"][0].columns
