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
