"""Scribe's PostgreSQL fast path (``dominus_local.services.scribe_postgres``): SQL text prepared once per pooled
connection follows DDL, this process's at once and another process's too, and answers as the SQLAlchemy path does."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from sqlalchemy import event

from dominus_fastapi import Dominus, DominusError
from dominus_fastapi.core.transport import DropAwareASGITransport
from dominus_local.app import create_app
from dominus_local.services.scribe import Target
from dominus_local.settings import LocalSettings
from dominus_local.state import LocalState
from dominus_local.stores.userdata import userdata_for
from tests.backends.conftest import require
from tests.conftest import LOCAL_ORIGIN, POSTGRES_ENV, create_database, drop_database, make_fast

COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "type": "SERIAL", "constraints": ["PRIMARY KEY"]},
    {"name": "name", "type": "VARCHAR(40)", "constraints": ["NOT NULL"]},
    {"name": "amount", "type": "INTEGER"},
]


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    admin_url = require(POSTGRES_ENV)
    name, url = await create_database(admin_url)
    try:
        yield url
    finally:
        await drop_database(admin_url, name)


@asynccontextmanager
async def instance(url: str, psk: str) -> AsyncIterator[tuple[Dominus, LocalState]]:
    """An in-process server on the PostgreSQL database ``url`` (two of them stand for two processes)."""
    app = create_app(LocalSettings(psk=SecretStr(psk), bcrypt_rounds=4, database_url=url))
    async with LifespanManager(app) as manager:
        http = httpx.AsyncClient(transport=DropAwareASGITransport(app=manager.app))
        client = Dominus(base_url=LOCAL_ORIGIN, http_client=http, token=psk)
        make_fast(client)
        try:
            yield client, app.state
        finally:
            await client.aclose()
            await http.aclose()


def _fast(state: LocalState, table: str) -> bool:
    """Whether the last resolved form of ``public.<table>`` takes the fast path."""
    found = userdata_for(state).resolved.get(("public", table))
    assert found is not None, "the table was not resolved"
    target: Target = found[0]
    return target.postgres is not None


async def test_a_column_added_through_smith_is_inserted_and_queried_at_once(database_url: str) -> None:
    async with instance(database_url, secrets.token_hex(32)) as (client, state):
        await client.ddl.add_table("items", COLUMNS)
        first = await client.db.insert("items", {"name": "ada", "amount": 1})
        assert (await client.db.query("items", filters={"name": "ada"}))["rows"] == [first]
        assert _fast(state, "items")
        await client.ddl.add_column("items", "score", "INTEGER", default="0")
        second = await client.db.insert("items", {"name": "bob", "amount": 2, "score": 5})
        assert second == {"id": 2, "name": "bob", "amount": 2, "score": 5}
        page = await client.db.query("items", filters={"score": [5, 6]})
        assert (page["rows"], page["total"]) == ([second], 1)
        assert (await client.db.query("items", filters={"score": 0}))["rows"] == [{**first, "score": 0}]
        assert _fast(state, "items")


async def test_a_type_changed_by_another_process_is_followed_without_a_lost_or_doubled_row(database_url: str) -> None:
    psk = secrets.token_hex(32)
    async with instance(database_url, psk) as (one, one_state), instance(database_url, psk) as (other, _):
        await one.ddl.add_table("items", COLUMNS)
        for index in range(3):  # prepared on the connection (or connections) of the first process
            await one.db.insert("items", {"name": f"n{index}", "amount": index}, idempotency_key=f"k{index}")
            await one.db.query("items", filters={"amount": index})
        assert _fast(one_state, "items")
        # The other process widens the column: the first one's prepared INSERT and SELECT now describe rows of
        # another type. Its insert (in a transaction) fails once and runs again; its query is prepared again.
        await other.ddl.alter_column("public", "items", "amount", "BIGINT")
        small = await one.db.insert("items", {"name": "small", "amount": 5}, idempotency_key="k-small")
        assert await one.db.insert("items", {"name": "small", "amount": 5}, idempotency_key="k-small") == small
        assert (await one.db.query("items", filters={"name": "small"}))["total"] == 1
        row = await one.db.insert("items", {"name": "big", "amount": 2**40}, idempotency_key="k-big")
        assert row["amount"] == 2**40
        assert await one.db.insert("items", {"name": "big", "amount": 2**40}, idempotency_key="k-big") == row
        page = await one.db.query("items", filters={"name": "big"})
        assert (page["rows"], page["total"]) == ([row], 1)
        # Now to text: the first process's resolved table still says integer, so it refuses "abc" and reads the
        # catalogue again before answering.
        await other.ddl.alter_column("public", "items", "amount", "TEXT")
        text_row = await one.db.insert("items", {"name": "t", "amount": "abc"})
        assert text_row["amount"] == "abc"
        page = await one.db.query("items", sort_by="id")
        assert [r["amount"] for r in page["rows"]] == ["0", "1", "2", "5", str(2**40), "abc"]
        assert page["total"] == 6


async def test_a_json_table_and_a_secure_table_go_through_sqlalchemy_and_answer_the_same(database_url: str) -> None:
    async with instance(database_url, secrets.token_hex(32)) as (client, state):
        await client.ddl.add_table("docs", [*COLUMNS, {"name": "body", "type": "JSONB"}])
        row = await client.db.insert("docs", {"name": "a", "amount": 1, "body": {"k": [1, 2]}})
        assert row["body"] == {"k": [1, 2]}
        assert (await client.db.query("docs", filters={"amount": 1}))["rows"] == [row]
        assert not _fast(state, "docs")
        await client.ddl.add_table("vault", COLUMNS)
        await client.auth.create_secure_table("vault")
        with pytest.raises(DominusError) as refused:
            await client.db.insert("vault", {"name": "x", "amount": 1})
        assert refused.value.code == "secure_table_reason_required"
        stored = await client.db.insert("vault", {"name": "x", "amount": 1}, reason="audit", actor="test")
        page = await client.db.query("vault", reason="audit", actor="test")
        assert page["rows"] == [stored]
        assert _fast(state, "vault")  # the table could take it; its registration sends it to the checked path


async def test_requests_that_find_the_table_expired_together_read_the_catalogue_once(database_url: str) -> None:
    async with instance(database_url, secrets.token_hex(32)) as (client, state):
        await client.ddl.add_table("items", COLUMNS)
        await client.db.insert("items", {"name": "ada", "amount": 1})
        ud = userdata_for(state)
        target, _until = ud.resolved["public", "items"]
        ud.resolved["public", "items"] = (target, 0.0)  # expired
        reads: list[str] = []

        def executed(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if "information_schema.columns" in statement:
                reads.append(statement)

        engine = state.db.engine.sync_engine
        event.listen(engine, "after_cursor_execute", executed)
        try:
            pages = await asyncio.gather(*(client.db.query("items", filters={"amount": 1}) for _ in range(8)))
        finally:
            event.remove(engine, "after_cursor_execute", executed)
        assert [page["total"] for page in pages] == [1] * 8
        assert len(reads) == 1
        assert ud.resolved["public", "items"][1] > 0.0
