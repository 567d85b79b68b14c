"""Admin: reseed and reset of the built-in admin entities, fault injection, and the admin-only rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from dominus_fastapi import AuthorizationError, Dominus, ServiceError, ValidationError
from tests.conftest import InProcessServer, make_fast

KINDS = {"tenant_categories", "tenants", "roles", "scopes", "pages", "nav_items"}


@pytest.fixture
async def plain_client(local_server: InProcessServer, local_client: Dominus) -> AsyncIterator[Dominus]:
    """A client without the admin role."""
    created = await local_client.auth.create_client("not-an-admin")
    client = local_server.client(token=created["psk"])
    make_fast(client)
    try:
        yield client
    finally:
        await client.aclose()
        await client._transport.http.aclose()


async def _admin_entities(client: Dominus) -> dict[str, Any]:
    auth = client.auth
    roles = [r for r in (await auth.list_roles(limit=1000))["items"] if r["name"] == "admin"]
    scopes = [s for s in (await auth.list_scopes(limit=1000))["items"] if s["slug"] == "admin"]
    tenants = [t for t in (await auth.list_tenants(limit=1000))["items"] if t["slug"] == "admin"]
    categories = [c for c in (await auth.list_tenant_categories(limit=1000))["items"] if c["slug"] == "admin"]
    pages = [p for p in (await auth.list_pages(limit=1000))["items"] if p["path"] == "/admin"]
    navs = [n for n in (await auth.list_nav_items(limit=1000))["items"] if n["title"] == "Administration"]
    return {
        "roles": roles,
        "scopes": scopes,
        "tenants": tenants,
        "tenant_categories": categories,
        "pages": pages,
        "nav_items": navs,
    }


async def test_reseed_creates_only_what_is_missing(local_client: Dominus) -> None:
    admin = local_client.admin
    first = await admin.reseed_admin_category()
    assert first["success"] is True and first["message"]
    assert set(first["seeded_entities"]) == KINDS
    assert all(count == 0 for count in first["seeded_entities"].values()), "bootstrap already seeded everything"

    before = await _admin_entities(local_client)
    assert all(len(items) == 1 for items in before.values()), before
    await local_client.auth.delete_nav_item(before["nav_items"][0]["id"])
    await local_client.auth.delete_page(before["pages"][0]["id"])
    await local_client.auth.delete_scope(before["scopes"][0]["id"])

    again = await admin.reseed_admin_category()
    assert again["seeded_entities"] == {
        "tenant_categories": 0,
        "tenants": 0,
        "roles": 0,
        "scopes": 1,
        "pages": 1,
        "nav_items": 1,
    }
    after = await _admin_entities(local_client)
    assert all(len(items) == 1 for items in after.values()), after
    assert after["roles"][0]["id"] == before["roles"][0]["id"], "existing entities are left alone"
    assert after["pages"][0]["id"] != before["pages"][0]["id"]


async def test_reset_recreates_everything_and_relinks_the_bootstrap_client(
    local_server: InProcessServer, local_client: Dominus
) -> None:
    before = await _admin_entities(local_client)
    result = await local_client.admin.reset_admin_category()
    assert result["success"] is True and result["message"]
    assert result["operations"] and all(isinstance(step, str) for step in result["operations"])
    assert any("role admin" in step for step in result["operations"])
    after = await _admin_entities(local_client)
    assert all(len(items) == 1 for items in after.values()), after
    assert after["roles"][0]["id"] != before["roles"][0]["id"], "the role was deleted and seeded again"

    # A fresh client with the bootstrap PSK is still an administrator after the reset.
    fresh = local_server.client()
    make_fast(fresh)
    try:
        clients = (await fresh.auth.list_clients(limit=1000))["items"]
        bootstrap = next(c for c in clients if c["is_bootstrap"])
        roles = await fresh.auth.get_client_roles(bootstrap["id"])
        assert [r["name"] for r in roles["items"]] == ["admin"]
        assert (await fresh.admin.reseed_admin_category())["success"] is True
    finally:
        await fresh.aclose()
        await fresh._transport.http.aclose()


async def test_admin_endpoints_refuse_non_administrators(plain_client: Dominus) -> None:
    admin = plain_client.admin
    for call in (admin.reseed_admin_category(), admin.reset_admin_category(), admin.get_faults(), admin.set_faults()):
        with pytest.raises(AuthorizationError) as info:
            await call
        assert info.value.status_code == 403 and info.value.code == "forbidden"


async def test_fault_settings_round_trip(local_client: Dominus) -> None:
    admin = local_client.admin
    neutral = await admin.get_faults()
    assert neutral == {
        "cold_start_seconds": 0,
        "latency_ms": 0,
        "error_rate": 0,
        "error_status": 503,
        "paths": None,
        "drop_after_read": False,
    }
    active = await admin.set_faults(error_rate=1.0, error_status=500, paths=["/api/whisperer"])
    assert active["error_rate"] == 1.0 and active["error_status"] == 500 and active["paths"] == ["/api/whisperer"]
    assert await admin.get_faults() == active
    with pytest.raises(ServiceError) as info:
        await local_client.redis.set("k", "v", max_retries=0)
    assert info.value.status_code == 500
    assert (await local_client.files.list_categories())["categories"] == []  # other paths are untouched
    assert await admin.set_faults() == neutral
    assert (await local_client.redis.set("k", "v"))["stored"] is True
    with pytest.raises(ValidationError):
        await admin.set_faults(error_status=418)
