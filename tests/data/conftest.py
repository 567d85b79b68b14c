"""Scribe and Smith tests: the SDK on ``embedded:``, against the real in-process ``dominus_local``.

Guardian fixtures (tenant categories, tenants, secure-table registrations, scopes, clients) are created
through the SDK's ``auth`` namespace, as an application would.

The same tests run on PostgreSQL when ``DOMINUS_TEST_POSTGRES_URL`` names a server's maintenance database
(e.g. ``postgresql://postgres@127.0.0.1:5432/postgres``; needs ``asyncpg``): each test then gets a database of
its own, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from dominus_fastapi import Dominus
from dominus_fastapi.core.transport import DropAwareASGITransport
from dominus_local.services import smith
from dominus_local.state import LocalState
from dominus_local.stores.userdata import userdata_for
from tests.conftest import make_fast

ORDERS_COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "type": "SERIAL", "constraints": ["PRIMARY KEY"]},
    {"name": "customer", "type": "VARCHAR(100)", "constraints": ["NOT NULL"]},
    {"name": "role", "type": "VARCHAR(50)"},
    {"name": "amount", "type": "NUMERIC(10,2)"},
    {"name": "created_at", "type": "TIMESTAMPTZ", "default": "NOW()"},
]


@dataclass
class Env:
    """One embedded instance: the admin SDK client and the server's state."""

    client: Dominus
    state: LocalState
    psk: str

    async def other_client(self, psk: str) -> Dominus:
        """An SDK client of the same instance that authenticates with another client's ``psk``."""
        assert self.client._transport.embedded is not None
        app = self.client._transport.embedded.instance.app  # type: ignore[union-attr]
        http = httpx.AsyncClient(transport=DropAwareASGITransport(app=app))
        other = Dominus(base_url="http://dominus.embedded", token=psk, http_client=http)
        make_fast(other)
        return other

    async def raw(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """A request through the client's transport with no SDK-side checks (for hostile input)."""
        safe = method != "POST" or path.endswith("/query")
        return await self.client.request(method, path, body=body, safe=safe)

    async def checksum(self) -> str:
        """A digest of every user table's rows and of Smith's catalogue and migration history."""
        ud = userdata_for(self.state)
        async with self.state.db.begin() as conn:
            await ud.prepare(conn)
            data = await ud.checksum(conn, await smith.schema_names(conn))
            meta = []
            for table in (smith.schemas_table, smith.tables_table, smith.migrations_table, smith.history_table):
                rows = (await conn.execute(table.select().order_by(*table.primary_key.columns))).all()
                meta.append(repr([tuple(r) for r in rows]))
        return data + "|" + "|".join(meta)


@pytest.fixture(autouse=True)
async def database(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """A fresh PostgreSQL database per test when ``DOMINUS_TEST_POSTGRES_URL`` is set; else SQLite."""
    admin_url = os.environ.get("DOMINUS_TEST_POSTGRES_URL")
    if not admin_url:
        yield
        return
    import asyncpg

    name = "dominus_test_" + uuid.uuid4().hex[:16]
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    monkeypatch.setenv("DOMINUS_LOCAL_DATABASE_URL", f"{base}/{name}")
    try:
        yield
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def env(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    """``Dominus(base_url="embedded:")`` on a fresh in-memory instance (or a fresh PostgreSQL database)."""
    monkeypatch.setenv("DOMINUS_LOCAL_BCRYPT_ROUNDS", "4")
    async with open_env("embedded:") as opened:
        yield opened


@contextlib.asynccontextmanager
async def open_env(base_url: str) -> AsyncIterator[Env]:
    """A client of a fresh embedded instance at ``base_url``, with its own PSK, once the instance is up."""
    psk = secrets.token_hex(32)
    client = Dominus(base_url=base_url, token=psk)
    make_fast(client)
    try:
        await client.health.ping()
        assert client._transport.embedded is not None
        instance = client._transport.embedded.instance
        assert instance is not None
        yield Env(client=client, state=instance.state, psk=psk)
    finally:
        await client.aclose()


async def make_orders(client: Dominus, schema: str = "public") -> None:
    """The README's ``orders`` table, its ``status`` column added afterwards in the README's form."""
    await client.ddl.add_table("orders", ORDERS_COLUMNS, schema=schema)
    await client.ddl.add_column("orders", "status", "VARCHAR(50)", default="'pending'", schema=schema)


async def make_tenant(client: Dominus, slug: str, category_slug: str | None = None) -> dict[str, Any]:
    """A Guardian tenant (and its category, created when missing)."""
    category_id = None
    if category_slug is not None:
        page = await client.auth.list_tenant_categories()
        found = [c for c in page["items"] if c["slug"] == category_slug]
        category = found[0] if found else await client.auth.create_tenant_category(category_slug.title(), category_slug)
        category_id = category["id"]
    tenant: dict[str, Any] = dict(await client.auth.create_tenant(slug.title(), slug, category_id=category_id))
    return tenant
