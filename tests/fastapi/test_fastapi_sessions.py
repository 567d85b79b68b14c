"""The app built from the public names: sign-in, page access, sign-out and revocation through HTTP."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from dominus_fastapi import Dominus, dominus_lifespan
from dominus_fastapi.testing import APP_ORIGIN, TEST_PASSWORD, UserFactory, create_test_user
from dominus_local import LocalSettings, create_app
from tests.fastapi.apps import ADMIN_PAGE, build_app


async def ensure_admin_page(dominus: Dominus) -> None:
    """The admin page, opened by the ``admin`` scope (which the ``admin`` role holds)."""
    pages = await dominus.auth.list_pages(limit=1000)
    if any(page["path"] == ADMIN_PAGE for page in pages["items"]):
        return
    page = await dominus.auth.create_page(ADMIN_PAGE, "Users")
    scopes = await dominus.auth.list_scopes(limit=1000)
    admin_scope = next(scope["id"] for scope in scopes["items"] if scope["slug"] == "admin")
    await dominus.auth.add_page_scopes(page["id"], [admin_scope])


def set_cookie_headers(response: httpx.Response) -> dict[str, str]:
    return {value.split("=", 1)[0]: value for value in response.headers.get_list("set-cookie")}


async def test_page_access_anonymous_denied_and_admin(
    dominus: Dominus, dominus_app_client: httpx.AsyncClient, dominus_user_client: UserFactory
) -> None:
    await ensure_admin_page(dominus)
    anonymous = await dominus_app_client.get("/admin/users")
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "not_authenticated"
    assert anonymous.headers["www-authenticate"] == "Bearer"

    user = await dominus_user_client(tenants=["acme"])
    denied = await user.get("/admin/users")
    assert denied.status_code == 403
    assert denied.json()["code"] == "page_access_denied"
    assert "missing_scope" in denied.json()["detail"]

    admin = await dominus_user_client(roles=["admin"], tenants=["admin"])
    allowed = await admin.get("/admin/users")
    assert allowed.status_code == 200, allowed.text
    assert allowed.json() == {"admin": admin.user.id}

    # The sync endpoint (which declares its own Request) is guarded the same way.
    assert (await user.get("/admin/sync")).status_code == 403
    assert (await admin.get("/admin/sync")).json() == {"sync": True, "path": "/admin/sync"}


async def test_login_cookie_logout_and_anonymous_again(
    dominus: Dominus, dominus_app_client: httpx.AsyncClient
) -> None:
    user = await create_test_user(dominus, tenants=["acme"])
    http = dominus_app_client

    login = await http.post("/auth/login", json={"username": user.username, "password": TEST_PASSWORD})
    assert login.status_code == 200, login.text
    body = login.json()
    assert set(body) == {"user", "tenant", "tenants", "expires_in"}
    assert body["user"]["id"] == user.id and body["tenant"]["slug"] == "acme"
    assert "access_token" not in login.text and "refresh_token" not in login.text
    cookies = set_cookie_headers(login)
    session_cookie = cookies["dominus_session"]
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie and "Path=/" in session_cookie
    assert "Secure" not in session_cookie  # plain http to a loopback host
    assert "HttpOnly" in cookies["dominus_refresh"]

    cookie_token = http.cookies["dominus_session"]
    me = await http.get("/whoami")
    assert me.status_code == 200 and me.json()["id"] == user.id
    assert (await http.get("/auth/me")).json()["user"]["username"] == user.username

    # A cookie-authenticated write needs the site's Origin (which the plugin's clients send, like browsers).
    del http.headers["Origin"]
    assert (await http.post("/auth/logout")).json()["code"] == "csrf_failed"
    logout = await http.post("/auth/logout", headers={"Origin": APP_ORIGIN})
    assert logout.status_code == 204
    cleared = set_cookie_headers(logout)
    for name in ("dominus_session", "dominus_refresh"):
        assert "Max-Age=0" in cleared[name] and "HttpOnly" in cleared[name] and "SameSite=Lax" in cleared[name]
        assert "Path=/" in cleared[name]
    assert "dominus_session" not in http.cookies
    assert (await http.get("/whoami")).status_code == 401

    # The ended session's token is refused at once, also when replayed as a Bearer token ...
    replay = await http.get("/whoami", headers={"Authorization": f"Bearer {cookie_token}"})
    assert replay.status_code == 401
    # ... while the user's other session (opened by the factory) lives on.
    other = await http.get("/whoami", headers={"Authorization": f"Bearer {user.access_token}"})
    assert other.status_code == 200


async def test_html_form_login_redirects_to_a_safe_next(
    dominus: Dominus, dominus_app_client: httpx.AsyncClient
) -> None:
    user = await create_test_user(dominus, tenants=["acme"])
    form = {"username": user.username, "password": TEST_PASSWORD, "next": "/dashboard?tab=1"}
    response = await dominus_app_client.post("/auth/login", data=form, headers={"Origin": APP_ORIGIN})
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard?tab=1"
    assert "dominus_session" in set_cookie_headers(response)

    origin = {"Origin": APP_ORIGIN}
    for unsafe in ("https://evil.example/steal", "//evil.example", "/\\evil.example", "javascript:alert(1)"):
        response = await dominus_app_client.post("/auth/login", data={**form, "next": unsafe}, headers=origin)
        assert response.status_code == 303
        assert response.headers["location"] == "/", unsafe

    same_site = await dominus_app_client.post(
        "/auth/login", data={**form, "next": f"{APP_ORIGIN}/x?y=1"}, headers=origin
    )
    assert same_site.headers["location"] == "/x?y=1"

    logout = await dominus_app_client.post("/auth/logout", data={"next": "/bye"}, headers={"Origin": APP_ORIGIN})
    assert logout.status_code == 303 and logout.headers["location"] == "/bye"


async def test_login_failures(dominus: Dominus, dominus_app_client: httpx.AsyncClient) -> None:
    user = await create_test_user(dominus)
    wrong = await dominus_app_client.post("/auth/login", json={"username": user.username, "password": "nope-nope"})
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "invalid_credentials"
    assert "nope-nope" not in wrong.text
    assert "set-cookie" not in wrong.headers

    missing = await dominus_app_client.post("/auth/login", json={"username": user.username})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "password"]

    foreign = await dominus_app_client.post(
        "/auth/login",
        json={"username": user.username, "password": TEST_PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403 and foreign.json()["code"] == "csrf_failed"
    assert "set-cookie" not in foreign.headers


async def test_token_endpoint_for_bearer_clients(dominus: Dominus, dominus_app_client: httpx.AsyncClient) -> None:
    user = await create_test_user(dominus, tenants=["acme"])
    token = await dominus_app_client.post(
        "/auth/token", data={"username": user.username, "password": TEST_PASSWORD, "grant_type": "password"}
    )
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 900 and body["refresh_token"]
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    session = await dominus_app_client.get("/session", headers=bearer)
    assert session.json() == {"signed_in": True, "via": "bearer", "request_user": True, "auth_scopes": []}
    # Bearer writes need no Origin (browsers never add the header by themselves).
    switched = await dominus_app_client.post("/auth/switch-tenant", json={"tenant_id": "acme"}, headers=bearer)
    assert switched.status_code == 200 and switched.json()["access_token"]

    refreshed = await dominus_app_client.post("/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200
    assert refreshed.json()["refresh_token"] != body["refresh_token"]
    reused = await dominus_app_client.post("/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert reused.status_code == 401 and reused.json()["code"] == "session_revoked"


@pytest.fixture
def revalidating_clock() -> list[float]:
    return [1000.0]


async def test_revoked_session_is_refused_within_the_interval(
    dominus: Dominus, dominus_base_url: str, revalidating_clock: list[float]
) -> None:
    app = build_app(revalidate_interval=30, clock=lambda: revalidating_clock[0])
    user = await create_test_user(dominus, tenants=["acme"])
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        headers = {"Authorization": f"Bearer {user.access_token}"}
        async with httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN, headers=headers) as http:
            assert (await http.get("/whoami")).status_code == 200
            await dominus.portal.logout(user_token=user.access_token)  # ended elsewhere
            revalidating_clock[0] += 10
            # Within the interval the local check still accepts the token ...
            assert (await http.get("/whoami")).status_code == 200
            revalidating_clock[0] += 25
            # ... and once the interval has passed the backend is asked, and the session is gone.
            refused = await http.get("/whoami")
            assert refused.status_code == 401
            assert (await http.get("/public")).status_code == 200


async def test_expired_cookie_is_refreshed_once_for_concurrent_requests() -> None:
    """Five parallel requests with an expired access cookie: one refresh, five answers, a session that lives.

    The backend runs with a wall clock set 1000 s back while the user signs in, so the access token it issues
    has already expired by the app's (real) clock; the refresh token is still good.
    """
    psk = secrets.token_hex(32)
    wall = [time.time() - 1000]
    server = create_app(LocalSettings(psk=SecretStr(psk), bcrypt_rounds=4), wall_clock=lambda: wall[0])
    async with LifespanManager(server) as backend:
        backend_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=backend.app))
        options: dict[str, Any] = {"base_url": "http://dominus.test", "token": psk, "http_client": backend_http}
        async with Dominus(**options) as admin:
            user = await create_test_user(admin, tenants=["acme"])
        wall[0] = time.time()
        app = build_app()
        app.router.lifespan_context = dominus_lifespan(**options)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            cookies = {"dominus_session": user.access_token, "dominus_refresh": user.refresh_token or ""}
            async with httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN, cookies=cookies) as http:
                responses = await asyncio.gather(*(http.get("/whoami") for _ in range(5)))
                assert [r.status_code for r in responses] == [200] * 5
                assert {r.json()["id"] for r in responses} == {user.id}
                new_refresh = {set_cookie_headers(r)["dominus_refresh"] for r in responses}
                assert len(new_refresh) == 1  # one refresh, shared by all five
                # The client keeps the rewritten cookies and goes on without another refresh.
                again = await http.get("/whoami")
                assert again.status_code == 200 and "set-cookie" not in again.headers
                # Had two refreshes presented the same refresh token, the whole session would have ended.
                assert (await http.get("/auth/me")).json()["session_id"] == user.session_id
        await backend_http.aclose()


async def test_invalid_cookie_is_cleared_and_request_is_anonymous(dominus_app_client: httpx.AsyncClient) -> None:
    dominus_app_client.cookies.set("dominus_session", "not-a-token", domain="127.0.0.1")
    response = await dominus_app_client.get("/session")
    assert response.status_code == 200
    assert response.json()["signed_in"] is False
    cleared = set_cookie_headers(response)
    assert "Max-Age=0" in cleared["dominus_session"] and "Max-Age=0" in cleared["dominus_refresh"]
    assert "dominus_session" not in dominus_app_client.cookies


async def test_login_over_a_stale_cookie_keeps_the_new_cookies(
    dominus: Dominus, dominus_app_client: httpx.AsyncClient
) -> None:
    """The middleware would clear the stale cookie, but the endpoint's own Set-Cookie wins."""
    user = await create_test_user(dominus)
    dominus_app_client.cookies.set("dominus_session", "stale", domain="127.0.0.1")
    login = await dominus_app_client.post("/auth/login", json={"username": user.username, "password": TEST_PASSWORD})
    assert login.status_code == 200
    values = login.headers.get_list("set-cookie")
    assert [v.split("=", 1)[0] for v in values] == ["dominus_session", "dominus_refresh"]
    assert all("Max-Age=0" not in v for v in values)
    assert (await dominus_app_client.get("/whoami")).json()["id"] == user.id
