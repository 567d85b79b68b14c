"""Guardian's data rules (spec 5.7-5.9, 7.6, 8.7): refusals that change nothing, revocations, bootstrap."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from dominus_fastapi.core.client import Dominus
from dominus_fastapi.core.errors import (
    AuthorizationError,
    ConflictError,
    ValidationError,
)
from dominus_fastapi.core.namespaces.auth import AuthNamespace
from dominus_local.services import herald

from .conftest import BASE, PSK, Server

MISSING = "00000000-0000-4000-8000-00000000abcd"


async def _admin_user(auth: AuthNamespace, name: str = "root") -> str:
    roles = await auth.list_roles()
    admin_role = next(r for r in roles["items"] if r["name"] == "admin")
    user = await auth.add_user(name, "password-123", email=f"{name}@example.com", role_id=admin_role["id"])
    return user["id"]


async def test_password_length_is_counted_in_utf8_bytes(auth: AuthNamespace) -> None:
    for bad in ("short", "x" * 73, "é" * 37):
        with pytest.raises(ValidationError) as caught:
            await auth.create_user("pw", None, password=bad)
        assert caught.value.status_code == 400 and caught.value.details["field"] == "password"
        assert bad not in str(caught.value) and bad not in repr(caught.value)
    assert (await auth.list_users())["total"] == 0
    user = await auth.create_user("pw", None, password="é" * 36)  # exactly 72 bytes
    with pytest.raises(ValidationError):
        await auth.update_password(user["id"], "seven77")
    assert (await auth.verify_password(user["id"], "é" * 36)) == {"valid": True}
    with pytest.raises(ValidationError):
        await auth.create_user("nopw", None)  # a password is required unless invited


async def test_hash_fields_are_refused_everywhere(server: Server, auth: AuthNamespace) -> None:
    token = await server.service_token()
    user = await auth.create_user("hashy", None, password="password-123")
    for method, path, body in (
        ("POST", "/api/guardian/users", {"username": "h2", "password_hash": "$2b$12$abc"}),
        ("PUT", f"/api/guardian/users/{user['id']}", {"password_hash": "x"}),
        ("PUT", f"/api/guardian/users/{user['id']}/password", {"password": "password-999", "password_hash": "x"}),
        ("POST", "/api/guardian/clients", {"label": "c", "psk_hash": "x"}),
        ("POST", f"/api/guardian/users/{user['id']}/roles", {"role_ids": [MISSING], "token_hash": "x"}),
    ):
        status, envelope = await server.raw(method, path, body, token=token)
        assert status == 400, (path, envelope)
        assert envelope["code"] == "validation_failed" and envelope["details"]["field"].endswith("_hash")
    assert (await auth.list_users())["total"] == 1
    assert (await auth.verify_password(user["id"], "password-123"))["valid"] is True
    assert (await auth.list_clients())["total"] == 1  # only the bootstrap client


async def test_unknown_ids_in_bodies_are_422(auth: AuthNamespace) -> None:
    with pytest.raises(ValidationError) as caught:
        await auth.create_tenant("T", "t1", category_id=MISSING)
    assert caught.value.status_code == 422 and caught.value.code == "unprocessable"
    assert caught.value.details == {"field": "category_id", "missing": [MISSING]}
    with pytest.raises(ValidationError) as caught:
        await auth.create_nav_item("N", page_id=MISSING)
    assert caught.value.details["field"] == "page_id"
    with pytest.raises(ValidationError) as caught:
        await auth.create_nav_item("N", parent_id=MISSING)
    assert caught.value.details["field"] == "parent_id"
    assert (await auth.list_tenants())["total"] == 1  # the built-in admin tenant only
    assert (await auth.list_nav_items())["total"] == 1  # the built-in Administration item only


async def test_nav_item_cycles_are_422(auth: AuthNamespace) -> None:
    top = await auth.create_nav_item("Top", item_type="header")
    child = await auth.create_nav_item("Child", parent_id=top["id"])
    grandchild = await auth.create_nav_item("Grandchild", parent_id=child["id"])
    with pytest.raises(ValidationError) as caught:
        await auth.update_nav_item(top["id"], parent_id=grandchild["id"])
    assert caught.value.status_code == 422 and caught.value.details["field"] == "parent_id"
    with pytest.raises(ValidationError) as caught:
        await auth.update_nav_item(top["id"], parent_id=top["id"])
    assert caught.value.status_code == 422
    assert (await auth.get_nav_item(top["id"]))["parent_id"] is None
    listed = await auth.list_nav_items(parent_id=top["id"])
    assert [item["id"] for item in listed["items"]] == [child["id"]]


async def test_delete_guards_are_409(auth: AuthNamespace) -> None:
    category = await auth.create_tenant_category("Health", "health")
    tenant = await auth.create_tenant("Acme", "acme", category_id=category["id"])
    with pytest.raises(ConflictError):
        await auth.delete_tenant_category(category["id"])
    page = await auth.create_page("/x", "X")
    parent = await auth.create_nav_item("Parent", page_id=page["id"])
    child = await auth.create_nav_item("Child", parent_id=parent["id"])
    with pytest.raises(ConflictError):
        await auth.delete_page(page["id"])
    with pytest.raises(ConflictError):
        await auth.delete_nav_item(parent["id"])
    await auth.delete_nav_item(child["id"])
    await auth.delete_nav_item(parent["id"])
    await auth.delete_page(page["id"])
    await auth.delete_tenant(tenant["id"])
    await auth.delete_tenant_category(category["id"])


async def test_uniqueness_of_every_entity(auth: AuthNamespace) -> None:
    await auth.create_role("editor")
    await auth.create_scope("notes.read", "Read notes")
    await auth.create_tenant_category("Cat", "cat")
    await auth.create_tenant("T", "tee")
    await auth.create_subtype("Sub", "sub")
    await auth.create_page("/dup", "Dup")
    await auth.create_secure_table("notes", schema_name="app")
    await auth.create_client("same label")
    await auth.create_client("same label")  # labels need not be unique
    for call, field in (
        (auth.create_role("editor"), "name"),
        (auth.create_scope("notes.read", "Again"), "slug"),
        (auth.create_tenant_category("Other", "cat"), "slug"),
        (auth.create_tenant("Other", "tee"), "slug"),
        (auth.create_subtype("Other", "sub"), "slug"),
        (auth.create_page("/dup", "Other"), "path"),
        (auth.create_secure_table("notes", schema_name="app"), "table_name"),
    ):
        with pytest.raises(ConflictError) as caught:
            await call
        assert caught.value.details["field"] == field
    other = await auth.create_scope("notes.write", "Write notes")
    with pytest.raises(ConflictError):
        await auth.update_scope(other["id"], slug="notes.read")
    assert (await auth.create_secure_table("notes"))["schema_name"] == "public"


async def test_updates_send_only_what_is_passed(auth: AuthNamespace) -> None:
    category = await auth.create_tenant_category("Cat", "cat2", description="d", color="#abcdef")
    tenant = await auth.create_tenant("Acme", "acme2", category_id=category["id"], display_name="ACME")
    unchanged = await auth.update_tenant(tenant["id"])
    assert unchanged["display_name"] == "ACME" and unchanged["category_id"] == category["id"]
    cleared = await auth.update_tenant(tenant["id"], display_name=None, category_id=None)
    assert cleared["display_name"] is None and cleared["category_id"] is None and cleared["name"] == "Acme"
    with pytest.raises(ValidationError) as caught:
        await auth.update_tenant(tenant["id"], name=None)
    assert caught.value.details["field"] == "name"
    with pytest.raises(ValidationError):
        await auth.update_tenant_category(category["id"], color="red")
    assert (await auth.get_tenant_category(category["id"]))["color"] == "#abcdef"


@pytest.mark.parametrize(
    ("field", "value"),
    [("username", "a@b"), ("username", ""), ("email", "two@@example.com"), ("status", "banned")],
)
async def test_bad_user_fields_are_400(auth: AuthNamespace, field: str, value: str) -> None:
    args: dict[str, Any] = {"username": "okname", "email": "ok@example.com", "password": "password-123"}
    args[field] = value
    with pytest.raises(ValidationError) as caught:
        await auth.create_user(**args)
    assert caught.value.status_code == 400 and caught.value.details["field"] == field


@pytest.mark.parametrize("path", ["dashboard", "/trailing/", "/q?x=1", "/" + "a" * 512])
async def test_bad_page_paths_are_400(auth: AuthNamespace, path: str) -> None:
    with pytest.raises(ValidationError):
        await auth.create_page(path, "Bad")


async def test_non_admin_clients_get_403(server: Server, auth: AuthNamespace) -> None:
    created = await auth.create_client("worker")
    async with Dominus(token=created["psk"], base_url=BASE, http_client=server.http, max_retries=0) as worker:
        with pytest.raises(AuthorizationError) as caught:
            await worker.auth.list_users()
        assert caught.value.status_code == 403
        with pytest.raises(AuthorizationError):
            await worker.auth.create_role("sneaky")
        with pytest.raises(AuthorizationError):
            await worker.auth.add_client_roles(created["id"], [(await auth.list_roles())["items"][0]["id"]])
        with pytest.raises(AuthorizationError):
            await worker.auth.mint_jwt(await _admin_user(auth))
        assert "keys" in await worker.auth.get_jwks()  # the key set is not a Guardian endpoint
    assert (await auth.get_client_roles(created["id"]))["total"] == 0
    assert all(role["name"] != "sneaky" for role in (await auth.list_roles())["items"])


async def test_session_tokens_are_refused_even_for_admins(server: Server, auth: AuthNamespace) -> None:
    root = await _admin_user(auth)
    minted = await auth.mint_jwt(root)
    claims = await auth.validate_jwt(minted["access_token"])
    assert "admin" in claims["roles"] and claims["sid"] == minted["session_id"]
    with pytest.raises(AuthorizationError):
        await server.client.as_user(minted["access_token"]).auth.list_users()


async def test_psk_extras(server: Server, auth: AuthNamespace) -> None:
    created = await auth.create_client("rotating", description="rotates")
    assert len(created["psk"]) == 64 and created["is_bootstrap"] is False
    assert "psk" not in await auth.get_client(created["id"])
    assert (await auth.verify_psk(created["id"], created["psk"]))["valid"] is True
    assert (await auth.verify_psk(created["id"], PSK))["valid"] is False
    assert (await server.raw("POST", "/jwt/mint", {"method": "auth.self", "params": {}}, token=created["psk"]))[
        0
    ] == 200
    rotated = await auth.regenerate_psk(created["id"])
    assert rotated["psk"] != created["psk"] and rotated["id"] == created["id"]
    status, envelope = await server.raw(
        "POST", "/jwt/mint", {"method": "auth.self", "params": {}}, token=created["psk"]
    )
    assert status == 401 and envelope["code"] == "invalid_credentials"
    assert (await auth.verify_psk(created["id"], rotated["psk"]))["valid"] is True
    await auth.update_client(created["id"], status="inactive")
    status, _ = await server.raw("POST", "/jwt/mint", {"method": "auth.self", "params": {}}, token=rotated["psk"])
    assert status == 401


async def test_bootstrap_client_is_found_by_flag(server: Server, auth: AuthNamespace) -> None:
    clients = (await auth.list_clients())["items"]
    assert [(c["label"], c["is_bootstrap"]) for c in clients] == [("bootstrap", True)]
    boot = clients[0]
    token = await server.service_token()
    status, envelope = await server.raw(
        "POST", "/api/guardian/clients", {"label": "x", "is_bootstrap": True}, token=token
    )
    assert status == 200 and envelope["data"]["is_bootstrap"] is False
    await auth.create_client("bootstrap")  # another client with the label changes nothing
    renamed = await auth.update_client(boot["id"], label="renamed")
    assert renamed["is_bootstrap"] is True
    with pytest.raises(ConflictError):
        await auth.delete_client(boot["id"])
    with pytest.raises(ConflictError):
        await auth.update_client(boot["id"], status="inactive")
    assert (await auth.get_client_roles(boot["id"]))["items"][0]["name"] == "admin"
    assert [t["slug"] for t in (await auth.get_client_tenants(boot["id"]))["items"]] == ["admin"]
    assert (await auth.list_users())["total"] == 0  # still an administrator


async def test_revocations(server: Server, auth: AuthNamespace) -> None:
    tenant = await auth.create_tenant("Acme", "acme")
    user = await auth.create_user("sam", "sam@example.com", password="password-123")
    await auth.add_user_tenants(user["id"], [tenant["id"]])

    async def session() -> str:
        return (await auth.mint_jwt(user["id"]))["access_token"]

    token = await session()
    assert await server.me(token) == (200, None)
    await auth.update_password(user["id"], "password-456")
    assert await server.me(token) == (401, "session_revoked")
    assert (await auth.verify_password(user["id"], "password-456"))["valid"] is True

    token = await session()
    await auth.update_user(user["id"], username="samuel")  # not a status change: the session lives on
    assert await server.me(token) == (200, None)
    await auth.update_user(user["id"], status="suspended")
    await auth.update_user(user["id"], status="active")
    assert await server.me(token) == (401, "session_revoked")

    token = await session()
    await auth.delete_tenant(tenant["id"])
    assert await server.me(token) == (401, "session_revoked")

    token = await session()
    await auth.delete_user(user["id"])
    assert (await server.me(token))[0] == 401


async def test_invited_users_get_an_invitation(server: Server, auth: AuthNamespace) -> None:
    with pytest.raises(ValidationError) as caught:
        await auth.create_user("ghost", None, status="invited")
    assert caught.value.details["field"] == "email"
    invited = await auth.create_user("newbie", "newbie@example.com", status="invited", inviter_name="Ada")
    assert invited["status"] == "invited" and invited["invitation_sent"] is True
    outbox = await server.client.courier.outbox()
    assert any("newbie@example.com" in str(message) for message in outbox["items"])


async def test_writes_are_audited_without_secrets(server: Server, auth: AuthNamespace) -> None:
    user = await auth.create_user("audited", None, password="very-secret-pw")
    await auth.update_password(user["id"], "another-secret")
    client = await auth.create_client("audited client")
    await auth.add_user_roles(user["id"], [(await auth.create_role("r"))["id"]])
    async with server.state.db.begin() as conn:
        rows = (await conn.execute(select(herald.logs_table))).mappings().all()
    audit = [dict(row) for row in rows if str(row["category"]).startswith("audit")]
    messages = " ".join(str(row) for row in audit)
    assert user["id"] in messages and client["id"] in messages
    for secret in ("very-secret-pw", "another-secret", client["psk"], "$2b$"):
        assert secret not in messages
    assert uuid.UUID(user["id"])


async def test_reprs_hold_no_secret(server: Server, auth: AuthNamespace) -> None:
    created = await auth.create_client("repr check")
    async with Dominus(token=created["psk"], base_url=BASE, http_client=server.http, max_retries=0) as other:
        await other.auth.get_jwks()
        texts = [repr(other), str(other), repr(other.auth), repr(other.settings), repr(server.client)]
    texts += [repr(server.state.settings), repr(server.state.extras.get("security"))]
    for text in texts:
        assert created["psk"] not in text and PSK not in text


async def test_concurrent_duplicates_create_one_user(auth: AuthNamespace) -> None:
    results = await asyncio.gather(
        *(auth.create_user("twin", None, password="password-123") for _ in range(5)), return_exceptions=True
    )
    assert sum(isinstance(r, dict) for r in results) == 1
    assert sum(isinstance(r, ConflictError) for r in results) == 4
    assert (await auth.list_users())["total"] == 1


async def test_deleted_and_inactive_clients_lose_their_tokens(server: Server, auth: AuthNamespace) -> None:
    for finish in ("delete", "deactivate"):
        created = await auth.create_client(f"short-lived {finish}")
        token = await server.service_token(created["psk"])
        assert (await server.raw("GET", "/api/warden/jwks", token=token))[0] == 200
        if finish == "delete":
            await auth.delete_client(created["id"])
        else:
            await auth.update_client(created["id"], status="inactive")
        status, envelope = await server.raw("GET", "/api/warden/jwks", token=token)
        assert status == 401 and envelope["code"] == "invalid_token"
