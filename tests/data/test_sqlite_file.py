"""Scribe on a SQLite file, where a query or an insert of a table resolved in memory runs in one thread hop
(``Database.direct``, the writer's group commit): the same answers, refusals, idempotency records and secure-
table rules as the general path, which the other modules of this folder exercise in memory.

Most of the tests here are the general path's own tests, run again with ``env`` on a data directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dominus_fastapi import ConflictError, DominusError, NotFoundError
from dominus_local.services import scribe
from dominus_local.stores.userdata import userdata_for
from tests.data.conftest import Env, make_orders, open_env
from tests.data.test_secure import (  # noqa: F401 - collected again with this module's env
    test_a_secure_tables_refusal_comes_before_the_requests_own_and_applies_at_once,
    test_db_methods_without_reason_get_the_servers_refusal_and_write_nothing,
    test_every_operation_leaves_an_audit_record_without_row_values,
    test_linked_scopes_restrict_the_table,
)
from tests.data.test_write_keys import (  # noqa: F401 - collected again with this module's env
    test_a_column_added_after_the_table_was_resolved_is_known_at_once,
    test_a_failed_write_keeps_its_answer,
    test_a_retried_write_is_replayed_and_a_reused_key_writes_nothing,
    test_a_table_resolved_before_another_process_changed_it_is_read_again_on_failure,
)


@pytest.fixture
async def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[Env]:
    """``Dominus(base_url="embedded://<dir>")``: a fresh instance on SQLite files (also in the run on real
    backends, which would otherwise point it at PostgreSQL and Redis)."""
    monkeypatch.setenv("DOMINUS_LOCAL_BCRYPT_ROUNDS", "4")
    for name in ("DOMINUS_LOCAL_DATABASE_URL", "DOMINUS_LOCAL_CACHE_URL"):
        monkeypatch.delenv(name, raising=False)
    async with open_env(f"embedded://{tmp_path / 'data'}") as opened:
        assert opened.state.db.direct is not None
        yield opened


def _data_dir(env: Env) -> Path:
    data_dir = env.state.settings.data_dir
    assert data_dir is not None
    return data_dir


def _recorded(env: Env, key: str) -> list[tuple[Any, ...]]:
    """The key's record as a separate reader of the file sees it (so: committed), in the user data, beside the
    rows it guards."""
    with contextlib.closing(sqlite3.connect(_data_dir(env) / "userdata.db")) as db:
        return db.execute("SELECT key, status FROM dispatch_idempotency_keys WHERE key = ?", (key,)).fetchall()


async def test_an_insert_and_its_key_are_committed_when_answered(env: Env) -> None:
    await make_orders(env.client)
    await env.client.db.query("orders")  # the table is now resolved in memory: the next calls take one hop
    row = await env.client.db.insert("orders", {"customer": "ada", "amount": "2.50"}, idempotency_key="one-hop")
    assert row["customer"] == "ada" and row["amount"] == "2.50" and row["status"] == "pending"
    assert _recorded(env, "one-hop") == [("one-hop", 200)]
    with contextlib.closing(sqlite3.connect(_data_dir(env) / "userdata.db")) as db:
        assert db.execute('SELECT customer FROM "public.orders"').fetchall() == [("ada",)]


async def test_queries_filter_sort_and_page_as_on_the_general_path(env: Env) -> None:
    await make_orders(env.client)
    for index, customer in enumerate(["ada", "bob", "cy", "bob", "dee"]):
        await env.client.db.insert("orders", {"customer": customer, "role": None if index % 2 else "x"})
    query = env.client.db.query
    assert (await query("orders", filters={"customer": "bob"}))["total"] == 2
    chosen = await query("orders", filters={"customer": ["ada", "dee"]})
    assert [r["customer"] for r in chosen["rows"]] == ["ada", "dee"]
    assert (await query("orders", filters={"customer": []}))["total"] == 0
    assert [r["id"] for r in (await query("orders", filters={"role": None}))["rows"]] == [2, 4]
    page = await query("orders", sort_by="customer", sort_order="DESC", limit=2, offset=1)
    assert [r["customer"] for r in page["rows"]] == ["cy", "bob"] and page["total"] == 5
    past = await query("orders", limit=2, offset=10)
    assert past["rows"] == [] and past["total"] == 5
    with pytest.raises(DominusError) as unknown:
        await query("orders", filters={"nope": 1})
    assert unknown.value.status_code == 422


async def test_a_refused_insert_writes_nothing_and_later_inserts_commit(env: Env) -> None:
    await make_orders(env.client)
    await env.client.ddl.create_index("public", "orders", "orders_customer_key", ["customer"], unique=True)
    await env.client.db.insert("orders", {"customer": "ada"})
    with pytest.raises(ConflictError):
        await env.client.db.insert("orders", {"customer": "ada"}, idempotency_key="dup")
    assert _recorded(env, "dup") == [("dup", 409)]
    await env.client.db.insert("orders", {"customer": "bob"})
    assert (await env.client.db.query("orders"))["total"] == 2


def _expire(env: Env) -> None:
    """Let the resolved ``orders`` run out, as it does every ``RESOLVED_SECONDS``."""
    ud = userdata_for(env.state)
    target, _ = ud.resolved["public", "orders"]
    ud.resolved["public", "orders"] = (target, 0.0)


async def test_an_expired_table_is_read_again_once_for_all_the_requests_in_flight(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_orders(env.client)
    await env.client.db.query("orders")
    reads: list[str] = []
    real = scribe._read_catalogue

    async def counted(conn: Any, ud: Any, schema: str, table: str) -> Any:
        reads.append(table)
        return await real(conn, ud, schema, table)

    monkeypatch.setattr(scribe, "_read_catalogue", counted)
    direct = env.state.db.direct
    assert direct is not None
    commits = direct.commits
    _expire(env)
    rows = await asyncio.gather(*(env.client.db.insert("orders", {"customer": f"c{n}"}) for n in range(20)))
    assert sorted(r["customer"] for r in rows) == sorted(f"c{n}" for n in range(20))
    assert reads == ["orders"]
    # Every insert took the writer's one-hop path (the general one does not count as a group commit).
    assert direct.commits > commits
    assert userdata_for(env.state).resolved["public", "orders"][1] > 0
    _expire(env)
    found = await asyncio.gather(*(env.client.db.query("orders", limit=1) for _ in range(10)))
    assert {page["total"] for page in found} == {20} and reads == ["orders", "orders"]


async def test_an_expired_table_that_another_process_dropped_is_refused_as_missing(env: Env) -> None:
    await make_orders(env.client)
    await env.client.db.query("orders")
    _expire(env)
    with contextlib.closing(sqlite3.connect(_data_dir(env) / "userdata.db")) as db:
        db.execute('DROP TABLE "public.orders"')
        db.commit()
    with pytest.raises(NotFoundError) as missing:
        await env.client.db.insert("orders", {"customer": "ada"})
    assert "orders" in str(missing.value)
    assert ("public", "orders") not in userdata_for(env.state).resolved
