"""Guardian entities through the SDK against the real server: CRUD, paging, updates, junctions (spec 7.6)."""

from __future__ import annotations

import pytest

from dominus_fastapi.core.errors import ConflictError, NotFoundError, ValidationError
from dominus_fastapi.core.namespaces.auth import AuthNamespace

from .conftest import Server


async def test_user_crud_and_paging(auth: AuthNamespace) -> None:
    created = await auth.create_user("alice", "alice@example.com", password="s3cret-pass")
    assert created["username"] == "alice" and created["status"] == "active"
    assert created["invitation_sent"] is False
    assert "password" not in created and "password_hash" not in created
    fetched = await auth.get_user(created["id"])
    assert fetched["email"] == "alice@example.com" and fetched["last_login_at"] is None
    bob = await auth.add_user("bob", "another-pass", email="bob@example.com")
    assert set(bob) >= {"id", "username", "email", "status", "created_at", "updated_at", "last_login_at"}
    page = await auth.list_users(limit=1)
    assert page["total"] == 2 and len(page["items"]) == 1
    by_name = await auth.list_users(order_by="username", order_desc=False)
    assert [u["username"] for u in by_name["items"]] == ["alice", "bob"]
    updated = await auth.update_user(created["id"], email=None)
    assert updated["email"] is None and updated["username"] == "alice"
    assert (await auth.list_users(status="active"))["total"] == 2
    deleted = await auth.delete_user(created["id"])
    assert deleted == {"deleted": True, "id": created["id"]}
    with pytest.raises(NotFoundError):
        await auth.get_user(created["id"])


async def test_uniqueness_is_case_insensitive(auth: AuthNamespace) -> None:
    await auth.create_user("Carol", "carol@example.com", password="password-1")
    with pytest.raises(ConflictError) as caught:
        await auth.create_user("carol", None, password="password-2")
    assert caught.value.details["field"] == "username"
    with pytest.raises(ConflictError) as caught:
        await auth.create_user("carol2", "CAROL@example.com", password="password-2")
    assert caught.value.details["field"] == "email"
    assert (await auth.list_users())["total"] == 1


async def test_client_paths_are_checked_before_sending(auth: AuthNamespace) -> None:
    with pytest.raises(ValidationError):
        await auth.get_user("../clients")
    with pytest.raises(ValidationError):
        await auth.add_user_roles("6f1c5f9e-0000-4000-8000-000000000000", ["nope"])


async def test_non_uuid_path_is_404_on_the_server(server: Server) -> None:
    token = await server.service_token()
    status, envelope = await server.raw("GET", "/api/guardian/users/not-a-uuid", token=token)
    assert status == 404 and envelope["code"] == "not_found"


async def test_list_filters(auth: AuthNamespace) -> None:
    category = await auth.create_tenant_category("Retail", "retail")
    shop = await auth.create_tenant("Shop", "shop", category_id=category["id"])
    closed = await auth.create_tenant("Closed", "closed")
    await auth.update_tenant(closed["id"], status="inactive")
    assert [t["id"] for t in (await auth.list_tenants(category_id=category["id"]))["items"]] == [shop["id"]]
    assert [t["id"] for t in (await auth.list_tenants(status="inactive"))["items"]] == [closed["id"]]
    hidden = await auth.create_page("/hidden", "Hidden", is_active=False, show_in_nav=False)
    assert [p["id"] for p in (await auth.list_pages(is_active=False))["items"]] == [hidden["id"]]
    b = await auth.create_nav_item("B", sort_order=2)
    a = await auth.create_nav_item("A", sort_order=2)
    first = await auth.create_nav_item("Z", sort_order=-1, is_active=False)
    await auth.add_nav_tenants(b["id"], [shop["id"]])
    assert [n["id"] for n in (await auth.list_nav_items(tenant_id=shop["id"]))["items"]] == [b["id"]]
    assert [n["id"] for n in (await auth.list_nav_items(is_active=False))["items"]] == [first["id"]]
    ordered = (await auth.list_nav_items(order_by="title", order_desc=True))["items"]
    assert [n["title"] for n in ordered if n["title"] in ("A", "B", "Z")] == ["Z", "B", "A"]
    by_sort = [n["id"] for n in (await auth.list_nav_items())["items"]]
    assert by_sort.index(first["id"]) < by_sort.index(a["id"]) and by_sort.index(first["id"]) < by_sort.index(b["id"])
    with pytest.raises(ValidationError):
        await auth.list_nav_items(order_by="icon")
    with pytest.raises(ValidationError):
        await auth.list_roles(limit=1001)


async def test_add_role_resolves_slugs_before_creating(auth: AuthNamespace) -> None:
    for n in range(3):
        await auth.create_scope(f"s.{n}", f"S{n}")
    with pytest.raises(NotFoundError) as caught:
        await auth.add_role("broken", scope_slugs=["s.0", "missing.one"])
    assert caught.value.details["missing"] == ["missing.one"]
    assert all(role["name"] != "broken" for role in (await auth.list_roles())["items"])
    role = await auth.add_role("reader", scope_slugs=["s.2", "s.0"], description="reads")
    assert role["name"] == "reader" and role["description"] == "reads"
    assert {s["slug"] for s in (await auth.get_role_scopes(role["id"]))["items"]} == {"s.0", "s.2"}


async def test_add_user_with_one_key_creates_one_user(auth: AuthNamespace) -> None:
    role = await auth.create_role("staff")
    first = await auth.add_user(
        "dora", "password-123", email="dora@example.com", role_id=role["id"], idempotency_key="k1"
    )
    again = await auth.add_user(
        "dora", "password-123", email="dora@example.com", role_id=role["id"], idempotency_key="k1"
    )
    assert again == first and "invitation_sent" not in first
    assert (await auth.list_users())["total"] == 1
    assert [r["name"] for r in (await auth.get_user_roles(first["id"]))["items"]] == ["staff"]
