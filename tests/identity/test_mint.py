"""``auth.mint_jwt`` (spec 5.7 "Application-minted user tokens") and the key set, against the real gateway."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from dominus_fastapi.core.errors import AuthenticationError, AuthorizationError, NotFoundError, ValidationError
from dominus_fastapi.core.namespaces.auth import AuthNamespace
from dominus_local import identity

from .conftest import PSK, Server


async def _world(auth: AuthNamespace) -> dict[str, Any]:
    """A user in two tenants of two categories, with a role that applies only in the retail category."""
    health = await auth.create_tenant_category("Healthcare", "healthcare")
    retail = await auth.create_tenant_category("Retail", "retail")
    acme = await auth.create_tenant("Acme", "acme", category_id=health["id"])
    globex = await auth.create_tenant("Globex", "globex", category_id=retail["id"])
    other = await auth.create_tenant("Other", "other")
    await auth.create_scope("dashboard.view", "Dashboard")
    await auth.create_scope("reports.view", "Reports")
    await auth.create_scope("files.read", "Files")
    member = await auth.add_role("member", scope_slugs=["dashboard.view", "files.read"])
    analyst = await auth.add_role("analyst", scope_slugs=["reports.view"], description="retail only")
    await auth.add_role_categories(analyst["id"], [retail["id"]])
    user = await auth.add_user("mia", "password-123", email="mia@example.com", role_id=member["id"])
    await auth.add_user_roles(user["id"], [analyst["id"]])
    await auth.add_user_tenants(user["id"], [globex["id"], acme["id"]])
    return {"user": user, "acme": acme, "globex": globex, "other": other, "analyst": analyst}


async def test_mint_claims_follow_the_active_tenant(server: Server, auth: AuthNamespace) -> None:
    world = await _world(auth)
    user_id = world["user"]["id"]
    minted = await auth.mint_jwt(user_id)
    assert minted["token_type"] == "bearer" and minted["expires_in"] == 900
    claims = await auth.validate_jwt(minted["access_token"])
    assert claims["sub"] == user_id and claims["subject_type"] == "user"
    assert claims["tenant_id"] == world["acme"]["id"]  # first tenant by slug
    assert claims["roles"] == ["member"] and claims["scopes"] == ["dashboard.view", "files.read"]
    assert claims["sid"] == minted["session_id"] and claims["exp"] - claims["iat"] == 900

    at_globex = await auth.validate_jwt((await auth.mint_jwt(user_id, tenant_id="globex"))["access_token"])
    assert at_globex["tenant_id"] == world["globex"]["id"]
    assert at_globex["roles"] == ["analyst", "member"]
    assert at_globex["scopes"] == ["dashboard.view", "files.read", "reports.view"]
    assert (await server.me((await auth.mint_jwt(user_id, tenant_id=world["globex"]["id"]))["access_token"]))[0] == 200

    with pytest.raises(AuthorizationError):
        await auth.mint_jwt(user_id, tenant_id="other")
    with pytest.raises(AuthorizationError):
        await auth.mint_jwt(user_id, tenant_id="admin")


async def test_mint_narrows_scopes(server: Server, auth: AuthNamespace) -> None:
    world = await _world(auth)
    user_id = world["user"]["id"]
    narrowed = await auth.validate_jwt((await auth.mint_jwt(user_id, scopes=["files.read"]))["access_token"])
    assert narrowed["scopes"] == ["files.read"]
    with pytest.raises(AuthorizationError) as caught:
        await auth.mint_jwt(user_id, scopes=["files.read", "reports.view", "nope"])
    assert caught.value.details["missing"] == ["reports.view", "nope"]
    spaced = await server.client.mint_jwt(user_id, scope="dashboard.view files.read", tenant_id="globex")
    assert (await auth.validate_jwt(spaced["access_token"]))["scopes"] == ["dashboard.view", "files.read"]


async def test_mint_session_expires_with_the_token(server: Server, auth: AuthNamespace) -> None:
    world = await _world(auth)
    minted = await auth.mint_jwt(world["user"]["id"], expires_in=60)
    claims = await auth.validate_jwt(minted["access_token"])
    assert claims["exp"] - claims["iat"] == 60
    async with server.state.db.begin() as conn:
        row = (
            await conn.execute(select(identity.sessions).where(identity.sessions.c.id == minted["session_id"]))
        ).one()
        assert await identity.session_is_active(conn, minted["session_id"])
    assert row.subject_id == world["user"]["id"] and row.kind == "user"
    assert (row.expires_at - row.created_at).total_seconds() == 60
    assert row.refresh_digest is None


@pytest.mark.parametrize("expires_in", [0, 59, 3601])
async def test_mint_lifetime_bounds(auth: AuthNamespace, expires_in: int) -> None:
    world = await _world(auth)
    with pytest.raises(ValidationError) as caught:
        await auth.mint_jwt(world["user"]["id"], expires_in=expires_in)
    assert caught.value.details["field"] == "expires_in"


async def test_mint_refuses_unknown_inactive_and_non_user(server: Server, auth: AuthNamespace) -> None:
    world = await _world(auth)
    with pytest.raises(NotFoundError):
        await auth.mint_jwt("00000000-0000-4000-8000-000000000000")
    await auth.update_user(world["user"]["id"], status="inactive")
    with pytest.raises(AuthorizationError) as caught:
        await auth.mint_jwt(world["user"]["id"])
    assert caught.value.code == "account_inactive"
    status, envelope = await server.raw(
        "POST",
        "/jwt/mint",
        {"method": "auth.mint", "params": {"user_id": world["user"]["id"], "system": "client"}},
        token=PSK,
    )
    assert status == 400 and envelope["details"]["field"] == "system"
    status, envelope = await server.raw(
        "POST", "/jwt/mint", {"method": "auth.mint", "params": {"user_id": world["user"]["id"]}}, token="f" * 64
    )
    assert status == 401 and envelope["code"] == "invalid_credentials"


async def test_jwks_is_cached_on_the_namespace(server: Server, auth: AuthNamespace) -> None:
    first = await auth.get_jwks()
    key = first["keys"][0]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
    assert (await auth.get_jwks()) is first
    assert first == await server.client.get_public_key()


async def test_validate_jwt_refuses_tampered_tokens(auth: AuthNamespace) -> None:
    world = await _world(auth)
    token = (await auth.mint_jwt(world["user"]["id"]))["access_token"]
    header, payload, signature = token.split(".")
    forged = ".".join((header, payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB"), signature))
    with pytest.raises(AuthenticationError) as caught:
        await auth.validate_jwt(forged)
    assert caught.value.code == "invalid_token" and token not in str(caught.value)
    with pytest.raises(AuthenticationError):
        await auth.validate_jwt(token, audience="someone-else")
    assert (await auth.validate_jwt(token, leeway=5))["sub"] == world["user"]["id"]
