"""The identity module on its own: bootstrap, PSK lookup, effective access (spec 5.9), tenants."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dominus_local import identity as idm
from dominus_local.errors import ApiError
from dominus_local.stores.database import Database
from dominus_local.validate import new_id, utcnow

PSK = "b" * 64


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    database = Database("sqlite+aiosqlite:///:memory:")
    await database.create_all()
    yield database
    await database.dispose()


async def _row(conn: AsyncConnection, table: Table, **values: object) -> str:
    ident = new_id()
    now = utcnow()
    row = {"id": ident, "created_at": now, **values}
    if "updated_at" in table.c:
        row["updated_at"] = now
    await conn.execute(insert(table).values(**row))
    return ident


async def test_bootstrap_is_idempotent_and_owns_the_psk(db: Database) -> None:
    async with db.begin() as conn:
        first = await idm.ensure_bootstrap_client(conn, PSK)
    async with db.begin() as conn:
        second = await idm.ensure_bootstrap_client(conn, PSK)
        assert first == second
        assert await idm.client_for_psk(conn, PSK) == first
        assert await idm.client_for_psk(conn, "c" * 64) is None
        access = await idm.access_for(conn, "client", first, await idm.default_tenant(conn, "client", first))
        assert access.roles == ("admin",)
        assert access.scopes == ("admin",)
        assert access.tenant_id is not None
        assert await idm.default_tenant(conn, "client", first, exactly_one=True) == access.tenant_id
        stored = (await conn.execute(select(idm.clients.c.psk_digest).where(idm.clients.c.id == first))).scalar()
        assert stored == idm.psk_digest(PSK) and PSK not in str(stored)
    async with db.begin() as conn:  # a new configured PSK replaces the old one
        assert await idm.ensure_bootstrap_client(conn, "d" * 64) == first
        assert await idm.client_for_psk(conn, PSK) is None
        assert await idm.client_for_psk(conn, "d" * 64) == first


async def test_reseed_counts_then_nothing(db: Database) -> None:
    async with db.begin() as conn:
        counts = await idm.reseed_admin_category(conn)
        assert counts == {"tenant_categories": 1, "tenants": 1, "roles": 1, "scopes": 1, "pages": 1, "nav_items": 1}
        assert set((await idm.reseed_admin_category(conn)).values()) == {0}
        ops = await idm.reset_admin_category(conn)
        assert any("deleted role admin" in op for op in ops)
        assert (await idm.tenant_category_by_slug(conn, "admin")) is not None
        assert (await idm.tenant_by_slug(conn, "admin")) is not None


async def test_effective_roles_and_scopes_follow_tenant_and_category(db: Database) -> None:
    async with db.begin() as conn:
        health = await _row(conn, idm.categories, name="Health", slug="healthcare", color="#000000")
        retail = await _row(conn, idm.categories, name="Retail", slug="retail", color="#000000")
        acme = await _row(conn, idm.tenants, name="Acme", slug="acme", category_id=health, status="active")
        globex = await _row(conn, idm.tenants, name="Globex", slug="globex", category_id=retail, status="active")
        everywhere = await _row(conn, idm.roles, name="member")
        acme_only = await _row(conn, idm.roles, name="acme-staff")
        health_only = await _row(conn, idm.roles, name="clinician")
        read = await _row(conn, idm.scopes, slug="read", display_name="Read")
        records = await _row(conn, idm.scopes, slug="records", display_name="Records")
        retail_scope = await _row(conn, idm.scopes, slug="pos", display_name="POS")
        user = await _row(conn, idm.users, username="alice", email="a@x.io", status="active")
        await idm.link(conn, idm.JUNCTIONS[("roles", "tenants")], acme_only, [acme])
        await idm.link(conn, idm.JUNCTIONS[("roles", "categories")], health_only, [health])
        await idm.link(conn, idm.JUNCTIONS[("roles", "scopes")], everywhere, [read])
        await idm.link(conn, idm.JUNCTIONS[("roles", "scopes")], health_only, [records])
        await idm.link(conn, idm.JUNCTIONS[("scopes", "categories")], retail_scope, [retail])
        await idm.link(conn, idm.JUNCTIONS[("users", "roles")], user, [everywhere, acme_only, health_only])
        await idm.link(conn, idm.JUNCTIONS[("users", "scopes")], user, [retail_scope])
        await idm.link(conn, idm.JUNCTIONS[("users", "tenants")], user, [globex, acme])

        none = await idm.access_for(conn, "user", user, None)
        assert none.roles == ("member",) and none.scopes == ("read",)
        at_acme = await idm.access_for(conn, "user", user, acme)
        assert at_acme.roles == ("acme-staff", "clinician", "member")
        assert at_acme.scopes == ("read", "records")
        at_globex = await idm.access_for(conn, "user", user, globex)
        assert at_globex.roles == ("member",) and at_globex.scopes == ("pos", "read")

        assert await idm.default_tenant(conn, "user", user) == acme  # first by slug
        assert await idm.default_tenant(conn, "user", user, exactly_one=True) is None
        assert await idm.resolve_tenant(conn, "user", user, "globex") == globex
        assert await idm.resolve_tenant(conn, "user", user, acme.upper()) == acme
        with pytest.raises(ApiError) as caught:
            await idm.resolve_tenant(conn, "user", user, "admin")
        assert caught.value.status == 403
        assert await idm.subject_is_active(conn, "user", user)
        assert not await idm.subject_is_active(conn, "user", new_id())
        assert not await idm.subject_is_active(conn, "user", "not-a-uuid")


async def test_sessions_and_secure_tables(db: Database) -> None:
    async with db.begin() as conn:
        user = await _row(conn, idm.users, username="bob", status="active")
        now = utcnow()
        sid = new_id()
        await conn.execute(
            insert(idm.sessions).values(
                id=sid,
                kind="user",
                subject_type="user",
                subject_id=user,
                created_at=now,
                expires_at=now + timedelta(minutes=15),
            )
        )
        old = new_id()
        await conn.execute(
            insert(idm.sessions).values(
                id=old,
                kind="user",
                subject_type="user",
                subject_id=user,
                created_at=now,
                expires_at=now,
            )
        )
        assert await idm.session_is_active(conn, sid)
        assert not await idm.session_is_active(conn, old)
        assert await idm.revoke_sessions(conn, subject_type="user", subject_id=user) == 2
        assert not await idm.session_is_active(conn, sid)

        assert await idm.secure_table_scopes(conn, "public", "notes") is None
        reg = await _row(conn, idm.secure_tables, schema_name="public", table_name="notes")
        assert await idm.secure_table_scopes(conn, "public", "notes") == []
        scope = await _row(conn, idm.scopes, slug="notes.read", display_name="Notes")
        await idm.link(conn, idm.JUNCTIONS[("secure-tables", "scopes")], reg, [scope, scope])
        assert await idm.secure_table_scopes(conn, "public", "notes") == ["notes.read"]


def test_password_rules_and_hashing() -> None:
    with pytest.raises(ApiError) as short:
        idm.validate_password("short")
    assert short.value.status == 400 and "short" not in short.value.message
    with pytest.raises(ApiError):
        idm.validate_password("é" * 37)  # 74 bytes
    hashed = idm.hash_password("correct horse", rounds=4)
    assert idm.check_password("correct horse", hashed)
    assert not idm.check_password("wrong horse!", hashed)
    assert not idm.check_password("x" * 80, hashed)
    assert len(idm.new_psk()) == 64
