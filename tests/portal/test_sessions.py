"""Sign-in, tokens and the session life cycle of spec 5.7 through ``client.portal``."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import jwt
import pytest

from dominus_fastapi import AuthenticationError, AuthorizationError, NotFoundError, ValidationError
from tests.portal.conftest import PASSWORD, Env, build_world


async def _user(env: Env, username: str = "alice", email: str = "Alice@Example.com") -> dict[str, object]:
    return dict(await env.client.auth.add_user(username, PASSWORD, email=email))


async def _revoked(env: Env, token: str) -> None:
    with pytest.raises(AuthenticationError) as caught:
        await env.client.portal.me(user_token=token)
    assert caught.value.code == "session_revoked"


async def test_login_token_verifies_against_jwks_with_the_right_claims(env: Env) -> None:
    world = await build_world(env.client)
    result = await env.client.portal.login("carol", PASSWORD, tenant_id="acme")
    assert result["token_type"] == "bearer" and result["expires_in"] == 900
    assert result["tenant"] is not None and result["tenant"]["slug"] == "acme"
    assert result["tenant"]["display_name"] == "Acme Health"
    assert [t["slug"] for t in result["tenants"]] == ["acme", "globex"]
    assert result["user"]["id"] == world.user["id"] and result["user"]["last_login_at"] is not None
    assert len(result["refresh_token"]) >= 43  # 256 bits in base64url

    jwks = await env.client.auth.get_jwks()
    header = jwt.get_unverified_header(result["access_token"])
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    public_key = jwt.PyJWK(key).key
    claims = jwt.decode(result["access_token"], public_key, algorithms=["RS256"])
    assert header["alg"] == "RS256"
    assert claims["sub"] == world.user["id"]
    assert claims["subject_type"] == "user"
    assert claims["sid"] == result["session_id"]
    assert claims["tenant_id"] == world.acme["id"]
    assert claims["roles"] == ["analyst"]  # the auditor role is restricted to Globex
    assert claims["scopes"] == ["reports:read"]
    assert claims["project_slug"] == "local" and claims["environment"] == "development"
    assert claims["exp"] - claims["iat"] == 900

    # The SDK's own local check agrees.
    checked = await env.client.validate_jwt(result["access_token"])
    assert checked["sid"] == result["session_id"]

    in_globex = await env.client.portal.login("CAROL@example.COM", PASSWORD, tenant_id=world.globex["id"])
    globex_claims = await env.client.validate_jwt(in_globex["access_token"])
    assert globex_claims["tenant_id"] == world.globex["id"]
    assert globex_claims["roles"] == ["analyst", "auditor"]
    assert globex_claims["scopes"] == ["audit:read", "reports:read"]


async def test_login_defaults_to_the_first_tenant_by_slug_and_records_last_login(env: Env) -> None:
    world = await build_world(env.client)
    before = await env.client.auth.get_user(world.user["id"])
    assert before["last_login_at"] is None
    result = await env.client.portal.login("carol", PASSWORD)
    assert result["tenant"] is not None and result["tenant"]["id"] == world.acme["id"]
    after = await env.client.auth.get_user(world.user["id"])
    assert after["last_login_at"] == result["user"]["last_login_at"] is not None


async def test_login_failures(env: Env) -> None:
    user = await _user(env)
    with pytest.raises(AuthenticationError) as wrong:
        await env.client.portal.login("alice", "not the password")
    with pytest.raises(AuthenticationError) as unknown:
        await env.client.portal.login("nobody", "not the password")
    assert wrong.value.code == unknown.value.code == "invalid_credentials"
    assert wrong.value.message == unknown.value.message  # nothing tells known from unknown names

    tenant = await env.client.auth.create_tenant("Initech", "initech")
    with pytest.raises(AuthorizationError) as not_mine:
        await env.client.portal.login("alice", PASSWORD, tenant_id="initech")
    assert not_mine.value.code == "forbidden"
    await env.client.auth.add_user_tenants(str(user["id"]), [tenant["id"]])
    assert (await env.client.portal.login("alice", PASSWORD, tenant_id="initech"))["tenant"] is not None

    await env.client.auth.update_user(str(user["id"]), status="suspended")
    with pytest.raises(AuthorizationError) as inactive:
        await env.client.portal.login("alice", PASSWORD)
    assert inactive.value.code == "account_inactive"
    assert inactive.value.details["status"] == "suspended"
    with pytest.raises(AuthenticationError):  # a wrong password still says nothing about the status
        await env.client.portal.login("alice", "not the password")


async def test_refresh_rotates_and_a_reused_token_revokes_the_session(env: Env) -> None:
    await _user(env)
    first = await env.client.portal.login("alice", PASSWORD)
    second = await env.client.portal.refresh(refresh_token=first["refresh_token"])
    assert second["session_id"] == first["session_id"]
    assert second["refresh_token"] != first["refresh_token"]
    assert (await env.client.portal.me(user_token=second["access_token"]))["session_id"] == first["session_id"]

    with pytest.raises(AuthenticationError) as reused:
        await env.client.portal.refresh(refresh_token=first["refresh_token"])
    assert reused.value.code == "session_revoked"
    # The whole session ended: its newest access and refresh tokens are refused too.
    await _revoked(env, second["access_token"])
    with pytest.raises(AuthenticationError) as after:
        await env.client.portal.refresh(refresh_token=second["refresh_token"])
    assert after.value.code == "session_revoked"


async def test_refresh_with_the_session_token_and_refusals(env: Env) -> None:
    await _user(env)
    login = await env.client.portal.login("alice", PASSWORD)
    own = await env.client.as_user(login["access_token"]).portal.refresh()
    assert own["session_id"] == login["session_id"]
    with pytest.raises(AuthenticationError) as old:  # the Bearer form rotated the refresh token as well
        await env.client.portal.refresh(refresh_token=login["refresh_token"])
    assert old.value.code == "session_revoked"

    other = await env.client.portal.login("alice", PASSWORD)
    with pytest.raises(AuthenticationError) as unknown:
        await env.client.portal.refresh(refresh_token="x" * 43)
    assert unknown.value.code == "refresh_token_invalid"
    with pytest.raises(AuthorizationError) as missing:  # the service has no session: refused before sending
        await env.client.portal.refresh()
    assert missing.value.status_code is None and missing.value.details["field"] == "user_token"

    env.clock.advance(timedelta(days=30, seconds=1))
    with pytest.raises(AuthenticationError) as expired:
        await env.client.portal.refresh(refresh_token=other["refresh_token"])
    assert expired.value.code == "refresh_token_expired"


async def test_logout_ends_the_session(env: Env) -> None:
    await _user(env)
    login = await env.client.portal.login("alice", PASSWORD)
    keep = await env.client.portal.login("alice", PASSWORD)
    out = await env.client.portal.logout(user_token=login["access_token"])
    assert out == {"logged_out": True, "session_id": login["session_id"]}
    await _revoked(env, login["access_token"])
    with pytest.raises(AuthenticationError) as refresh:
        await env.client.portal.refresh(refresh_token=login["refresh_token"])
    assert refresh.value.code == "session_revoked"
    assert (await env.client.portal.me(user_token=keep["access_token"]))["session_id"] == keep["session_id"]
    with pytest.raises(AuthorizationError):  # a service token is not a session
        await env.client.portal.logout()


async def test_sessions_list_revoke_and_revoke_all(env: Env) -> None:
    await _user(env)
    await _user(env, "bob", "bob@example.com")
    a = await env.client.portal.login("alice", PASSWORD)
    b = await env.client.portal.login("alice", PASSWORD)
    c = await env.client.portal.login("alice", PASSWORD)
    bob = await env.client.portal.login("bob", PASSWORD)
    view = env.client.as_user(a["access_token"]).portal

    listed = await view.list_sessions()
    assert listed["total"] == 3
    assert {s["id"] for s in listed["items"]} == {a["session_id"], b["session_id"], c["session_id"]}
    assert [s["id"] for s in listed["items"] if s["current"]] == [a["session_id"]]
    assert all(s["subject_type"] == "user" and s["expires_at"] for s in listed["items"])

    assert await view.revoke_session(b["session_id"]) == {"revoked": True, "session_id": b["session_id"]}
    await _revoked(env, b["access_token"])
    with pytest.raises(NotFoundError):  # another user's session is not ours to see
        await view.revoke_session(bob["session_id"])
    with pytest.raises(ValidationError):  # checked before sending
        await view.revoke_session("not-a-uuid")

    d = await env.client.portal.login("alice", PASSWORD)
    assert await view.revoke_all_sessions() == {"revoked_count": 2}
    await _revoked(env, c["access_token"])
    await _revoked(env, d["access_token"])
    assert (await view.list_sessions())["total"] == 1
    assert (await env.client.portal.me(user_token=bob["access_token"]))["user"] is not None

    # The current session may end itself too.
    await view.revoke_session(a["session_id"])
    await _revoked(env, a["access_token"])


async def test_change_password_ends_every_other_session(env: Env) -> None:
    await _user(env)
    current = await env.client.portal.login("alice", PASSWORD)
    other = await env.client.portal.login("alice", PASSWORD)
    with pytest.raises(AuthenticationError) as wrong:
        await env.client.portal.change_password("wrong password", "new password 1", user_token=current["access_token"])
    assert wrong.value.code == "invalid_credentials"
    with pytest.raises(ValidationError) as short:
        await env.client.portal.change_password(PASSWORD, "short", user_token=current["access_token"])
    assert short.value.details["field"] == "new_password"
    await env.client.portal.me(user_token=other["access_token"])  # refused attempts changed nothing

    changed = await env.client.portal.change_password(PASSWORD, "new password 1", user_token=current["access_token"])
    assert changed == {"changed": True, "revoked_sessions": 1}
    await _revoked(env, other["access_token"])
    assert (await env.client.portal.me(user_token=current["access_token"]))["session_id"] == current["session_id"]
    with pytest.raises(AuthenticationError):
        await env.client.portal.login("alice", PASSWORD)
    await env.client.portal.login("alice", "new password 1")


async def test_switch_tenant_issues_a_token_for_the_same_session(env: Env) -> None:
    world = await build_world(env.client)
    login = await env.client.portal.login("carol", PASSWORD)
    switched = await env.client.portal.switch_tenant("globex", user_token=login["access_token"])
    assert switched["session_id"] == login["session_id"]
    assert switched["tenant"]["id"] == world.globex["id"]
    claims = await env.client.validate_jwt(switched["access_token"])
    assert claims["tenant_id"] == world.globex["id"] and "auditor" in claims["roles"]
    me = await env.client.portal.me(user_token=switched["access_token"])
    assert me["tenant"] is not None and me["tenant"]["slug"] == "globex"

    # The refresh token stays; a refresh keeps the tenant the session switched to.
    refreshed = await env.client.portal.refresh(refresh_token=login["refresh_token"])
    assert refreshed["tenant"] is not None and refreshed["tenant"]["slug"] == "globex"

    await env.client.auth.create_tenant("Initech", "initech")
    with pytest.raises(AuthorizationError):
        await env.client.portal.switch_tenant("initech", user_token=refreshed["access_token"])


async def test_client_sessions(env: Env) -> None:
    created = await env.client.auth.create_client("reporting")
    tenant = await env.client.auth.create_tenant("Acme", "acme")
    await env.client.auth.add_client_tenants(created["id"], [tenant["id"]])
    session = await env.client.portal.login_client(created["psk"])
    assert set(session) == {"access_token", "token_type", "expires_in", "session_id"}
    claims = await env.client.validate_jwt(session["access_token"])
    assert claims["subject_type"] == "client" and claims["sub"] == created["id"]
    assert claims["sid"] == session["session_id"] and claims["tenant_id"] == tenant["id"]

    me = await env.client.portal.me(user_token=session["access_token"])
    assert me["subject_type"] == "client" and me["user"] is None
    assert me["client"] is not None and me["client"]["label"] == "reporting"
    assert me["session_id"] == session["session_id"]

    for refused in (
        env.client.portal.get_profile(user_token=session["access_token"]),
        env.client.portal.get_preferences(user_token=session["access_token"]),
        env.client.portal.refresh(user_token=session["access_token"]),
        env.client.portal.change_password(PASSWORD, "new password 1", user_token=session["access_token"]),
    ):
        with pytest.raises(AuthorizationError):
            await refused

    with pytest.raises(AuthenticationError) as bad:
        await env.client.portal.login_client("f" * 64)
    assert bad.value.code == "invalid_credentials"

    await env.client.portal.logout(user_token=session["access_token"])
    await _revoked(env, session["access_token"])


async def test_me_with_the_service_token(env: Env) -> None:
    me = await env.client.portal.me(as_service=True)
    assert me["subject_type"] == "client" and me["session_id"] is None
    assert me["client"] is not None and me["client"]["is_bootstrap"] is True
    assert "admin" in me["roles"] and "admin" in me["scopes"]
    assert me["tenant"] is not None and me["tenant"]["slug"] == "admin"
    with pytest.raises(AuthorizationError):  # user endpoints need a session token
        await env.client.portal.list_sessions()


async def test_guardian_events_end_sessions(env: Env) -> None:
    """Revocations that Guardian causes are seen by Portal: password update, status change, user deletion."""
    user = await _user(env)
    login = await env.client.portal.login("alice", PASSWORD)
    await env.client.auth.update_password(str(user["id"]), "another password")
    await _revoked(env, login["access_token"])

    again = await env.client.portal.login("alice", "another password")
    await env.client.auth.delete_user(str(user["id"]))
    with pytest.raises(AuthenticationError):
        await env.client.portal.me(user_token=again["access_token"])
    with pytest.raises(AuthenticationError):
        await env.client.portal.refresh(refresh_token=again["refresh_token"])


async def test_concurrent_refreshes_with_one_token_rotate_once(env: Env) -> None:
    await _user(env)
    login = await env.client.portal.login("alice", PASSWORD)
    outcomes = await asyncio.gather(
        *(env.client.portal.refresh(refresh_token=login["refresh_token"]) for _ in range(3)),
        return_exceptions=True,
    )
    answers = [o for o in outcomes if isinstance(o, dict)]
    refusals = [o for o in outcomes if isinstance(o, AuthenticationError)]
    assert len(answers) == 1 and len(refusals) == 2
    assert all(r.code == "session_revoked" for r in refusals)
    await _revoked(env, answers[0]["access_token"])  # a reuse ends the session for everyone


async def test_minted_sessions_switch_within_their_lifetime_and_cannot_be_refreshed(env: Env) -> None:
    world = await build_world(env.client)
    minted = await env.client.auth.mint_jwt(world.user["id"], expires_in=120, tenant_id="acme")
    switched = await env.client.portal.switch_tenant("globex", user_token=minted["access_token"])
    assert switched["session_id"] == minted["session_id"] and 0 < switched["expires_in"] <= 120
    claims = await env.client.validate_jwt(switched["access_token"])
    assert claims["tenant_id"] == world.globex["id"] and claims["exp"] - claims["iat"] <= 120
    with pytest.raises(AuthorizationError):
        await env.client.portal.refresh(user_token=minted["access_token"])
    sessions = await env.client.portal.list_sessions(user_token=switched["access_token"])
    assert [s["id"] for s in sessions["items"]] == [minted["session_id"]]


async def test_invited_users_cannot_sign_in_before_accepting(env: Env) -> None:
    await env.client.auth.create_user("frank", "frank@example.com", status="invited")
    with pytest.raises(AuthenticationError) as caught:
        await env.client.portal.login("frank", "any password at all")
    assert caught.value.code == "invalid_credentials"
