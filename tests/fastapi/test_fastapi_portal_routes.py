"""The portal router's user routes end to end: tenants, profile, sessions, passwords, registration."""

from __future__ import annotations

import uuid

import httpx

from dominus_fastapi import Dominus
from dominus_fastapi.testing import APP_ORIGIN, TEST_PASSWORD, UserFactory, create_test_user, mailed_token


async def test_tenant_switch_navigation_and_page_check(dominus_user_client: UserFactory) -> None:
    user = await dominus_user_client(tenants=["acme", "globex"], pages=["/dashboard/reports"])
    me = (await user.get("/auth/me")).json()
    assert me["tenant"]["slug"] == "acme" and {t["slug"] for t in me["tenants"]} == {"acme", "globex"}
    assert me["subject_type"] == "user" and me["session_id"] == user.user.session_id

    switched = await user.post("/auth/switch-tenant", json={"tenant_id": "globex"})
    assert switched.status_code == 200
    assert switched.json()["tenant"]["slug"] == "globex"
    assert switched.json()["access_token"] is None  # cookie sessions get a new cookie instead
    assert "dominus_session=" in switched.headers["set-cookie"]
    assert "dominus_refresh" not in switched.headers["set-cookie"]
    assert (await user.get("/whoami")).json()["tenant_id"] == switched.json()["tenant"]["id"]

    foreign = await user.post("/auth/switch-tenant", json={"tenant_id": "initech"})
    assert foreign.status_code in (403, 404)

    assert "items" in (await user.get("/auth/navigation")).json()
    allowed = (await user.post("/auth/check-access", json={"path": "/dashboard/reports"})).json()
    assert allowed["allowed"] is True and allowed["reason"] == "allowed"
    missing = (await user.post("/auth/check-access", json={"path": "/nowhere"})).json()
    assert missing == {"allowed": False, "reason": "page_not_found", "page_id": None}


async def test_profile_and_preferences(dominus_user_client: UserFactory) -> None:
    user = await dominus_user_client()
    profile = (await user.get("/auth/profile")).json()
    assert profile["user_id"] == user.user.id
    updated = await user.put("/auth/profile", json={"display_name": "Alice", "bio": "Hi"})
    assert updated.status_code == 200 and updated.json()["display_name"] == "Alice"
    cleared = (await user.put("/auth/profile", json={"bio": None})).json()
    assert cleared["bio"] is None and cleared["display_name"] == "Alice"  # left-out fields keep their value

    prefs = (await user.get("/auth/preferences")).json()
    assert prefs["theme"] == "system" and prefs["timezone"] == "UTC"
    changed = (await user.put("/auth/preferences", json={"theme": "dark"})).json()
    assert changed["theme"] == "dark" and changed["timezone"] == "UTC"
    bad = await user.put("/auth/preferences", json={"timezone": "Mars/Olympus"})
    assert bad.status_code == 400 and bad.json()["code"] == "validation_failed"
    assert (await user.get("/auth/preferences")).json()["timezone"] == "UTC"
    assert (await user.put("/auth/preferences", json={"theme": "neon"})).status_code == 422


async def test_sessions_and_change_password(dominus: Dominus, dominus_user_client: UserFactory) -> None:
    user = await dominus_user_client()
    second = await dominus.portal.login(user.user.username, TEST_PASSWORD)
    sessions = (await user.get("/auth/sessions")).json()
    assert sessions["total"] == 2
    assert [s["current"] for s in sessions["items"]].count(True) == 1

    revoked = await user.delete(f"/auth/sessions/{second['session_id']}")
    assert revoked.json() == {"revoked": True, "session_id": second["session_id"]}
    assert (await user.get("/auth/sessions")).json()["total"] == 1
    assert (await user.delete(f"/auth/sessions/{uuid.uuid4()}")).status_code == 404
    assert (await user.delete("/auth/sessions/not-a-session")).status_code == 400  # checked before sending

    third = await dominus.portal.login(user.user.username, TEST_PASSWORD)
    changed = await user.post(
        "/auth/change-password", json={"current_password": TEST_PASSWORD, "new_password": "brand-new-password"}
    )
    assert changed.json() == {"changed": True, "revoked_sessions": 1}
    try:
        await dominus.portal.me(user_token=third["access_token"])
        raise AssertionError("the other session should have ended")
    except Exception as exc:
        assert getattr(exc, "code", None) == "session_revoked"
    assert (await user.get("/whoami")).status_code == 200
    assert (await user.post("/auth/sessions/revoke-all")).json() == {"revoked_count": 0}


async def test_password_reset_flow(dominus: Dominus, dominus_app_client: httpx.AsyncClient) -> None:
    user = await create_test_user(dominus)
    requested = await dominus_app_client.post("/auth/password-reset/request", json={"email": user.email})
    assert requested.json() == {"requested": True}
    unknown = await dominus_app_client.post("/auth/password-reset/request", json={"email": "nobody@example.test"})
    assert unknown.json() == {"requested": True}
    token = await mailed_token(dominus, user.email, "password-reset")
    confirmed = await dominus_app_client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": "reset-password-1"}
    )
    assert confirmed.json() == {"reset": True}
    again = await dominus_app_client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": "reset-password-2"}
    )
    assert again.status_code == 400 and again.json()["code"] == "validation_failed"
    login = await dominus_app_client.post(
        "/auth/login", json={"username": user.username, "password": "reset-password-1"}
    )
    assert login.status_code == 200


async def test_registration_and_invitation(dominus: Dominus, dominus_app_client: httpx.AsyncClient) -> None:
    await dominus.auth.create_tenant("Acme", "acme")
    body = {"username": "newbie", "email": "newbie@example.test", "password": "newbie-password", "tenant_id": "acme"}
    registered = await dominus_app_client.post("/auth/register", json=body)
    assert registered.status_code == 200, registered.text
    assert registered.json()["verification"] in ("sent", "not_required")
    assert (await dominus_app_client.post("/auth/register", json=body)).status_code == 409
    if registered.json()["verification"] == "sent":
        resent = await dominus_app_client.post("/auth/resend-verification", json={"email": body["email"]})
        assert resent.json() == {"sent": True}
        token = await mailed_token(dominus, body["email"], "email-verification")
        verified = await dominus_app_client.post("/auth/verify-email", json={"token": token})
        assert verified.json()["verified"] is True and verified.json()["user"]["status"] == "active"

    await dominus.auth.create_user("guest", "guest@example.test", status="invited")
    token = await mailed_token(dominus, "guest@example.test", "invitation")
    accepted = await dominus_app_client.post(
        "/auth/accept-invitation", json={"token": token, "password": "guest-password"}, headers={"Origin": APP_ORIGIN}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["user"]["username"] == "guest"
    assert "dominus_session" in dominus_app_client.cookies
    assert (await dominus_app_client.get("/auth/me")).json()["user"]["username"] == "guest"


async def test_machine_client_login(dominus: Dominus, dominus_app_client: httpx.AsyncClient) -> None:
    created = await dominus.auth.create_client("importer")
    answer = await dominus_app_client.post("/auth/login/client", json={"psk": created["psk"]})
    assert answer.status_code == 200
    token = answer.json()["access_token"]
    assert answer.json()["token_type"] == "bearer" and answer.json()["refresh_token"] is None
    me = await dominus_app_client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["subject_type"] == "client" and me.json()["id"] == created["id"]
    wrong = await dominus_app_client.post("/auth/login/client", json={"psk": "0" * 64})
    assert wrong.status_code == 401 and "0" * 64 not in wrong.text


async def test_anonymous_callers_get_401_on_user_routes(dominus_app_client: httpx.AsyncClient) -> None:
    for method, path in (("GET", "/auth/me"), ("GET", "/auth/sessions"), ("GET", "/auth/profile"),
                         ("POST", "/auth/sessions/revoke-all"), ("POST", "/auth/refresh")):
        response = await dominus_app_client.request(method, path)
        assert response.status_code == 401, path
        assert response.json()["code"] == "not_authenticated"
    # Signing out without a session is not an error.
    assert (await dominus_app_client.post("/auth/logout")).status_code == 204
