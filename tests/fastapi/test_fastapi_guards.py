"""Guards as decorators and as dependencies; provider overrides; CSRF; the PSK guard."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, Depends, FastAPI

from dominus_fastapi import Dominus, require_page_access, require_scopes
from dominus_fastapi.deps import CurrentUser, get_current_user, get_db, get_dominus, get_portal
from dominus_fastapi.middleware import DominusUser, PortalSession
from dominus_fastapi.testing import APP_ORIGIN, UserFactory, create_test_user
from tests.fastapi.apps import REPORTS_PAGE


async def test_page_guard_on_own_path_as_dependency(dominus_user_client: UserFactory) -> None:
    reader = await dominus_user_client(pages=[REPORTS_PAGE])
    other = await dominus_user_client()
    assert (await reader.get("/dashboard/reports")).json() == {"page": "reports"}
    denied = await other.get("/dashboard/reports")
    assert denied.status_code == 403 and denied.json()["code"] == "page_access_denied"


async def test_page_guard_redirects_browsers_to_the_login_page(
    dominus_app_client: httpx.AsyncClient, dominus_user_client: UserFactory
) -> None:
    html = {"Accept": "text/html,application/xhtml+xml"}
    response = await dominus_app_client.get("/dashboard/reports/html?tab=2", headers=html)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/dashboard/reports/html%3Ftab%3D2"
    # API callers still get 401, and signed-in users are not redirected.
    assert (await dominus_app_client.get("/dashboard/reports/html")).status_code == 401
    reader = await dominus_user_client(pages=[REPORTS_PAGE])
    page = await reader.get("/dashboard/reports/html", headers=html)
    assert page.status_code == 200 and page.text == "<h1>Reports</h1>"


async def test_scope_guards(dominus_user_client: UserFactory, dominus_app_client: httpx.AsyncClient) -> None:
    assert (await dominus_app_client.get("/scoped/any")).status_code == 401
    nobody = await dominus_user_client()
    reader = await dominus_user_client(scopes=["reports:read"])
    writer = await dominus_user_client(scopes=["reports:read", "reports:write"])
    denied = await nobody.get("/scoped/any")
    assert denied.status_code == 403 and denied.json()["code"] == "missing_scope"
    assert (await reader.get("/scoped/any")).status_code == 200
    partial = await reader.get("/scoped/all")
    assert partial.status_code == 403 and "reports:write" in partial.json()["detail"]
    assert (await writer.get("/scoped/all")).json() == {"ok": True}


async def test_guards_on_a_router_and_the_openapi_of_decorated_endpoints(
    dominus: Dominus, dominus_base_url: str
) -> None:
    from asgi_lifespan import LifespanManager

    from dominus_fastapi import dominus_lifespan, setup_dominus

    app = FastAPI(lifespan=dominus_lifespan())
    setup_dominus(app)
    router = APIRouter(prefix="/team", dependencies=[Depends(require_scopes("team"))])

    @router.get("/members")
    async def members() -> list[str]:
        return ["a", "b"]

    @router.get("/sync/{item_id}")
    @require_page_access("/team")
    def sync_item(item_id: int, q: str | None = None) -> dict[str, Any]:
        """Sync endpoints keep their parameters and docs when decorated."""
        return {"item_id": item_id, "q": q}

    app.include_router(router)
    page = await dominus.auth.create_page("/team", "Team")
    scope = await dominus.auth.create_scope("team", "Team")
    await dominus.auth.add_page_scopes(page["id"], [scope["id"]])
    member = await create_test_user(dominus, scopes=["team"])
    outsider = await create_test_user(dominus)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN) as http:
            as_member = {"Authorization": f"Bearer {member.access_token}"}
            as_outsider = {"Authorization": f"Bearer {outsider.access_token}"}
            assert (await http.get("/team/members", headers=as_member)).json() == ["a", "b"]
            assert (await http.get("/team/members", headers=as_outsider)).status_code == 403
            synced = await http.get("/team/sync/7", params={"q": "x"}, headers=as_member)
            assert synced.json() == {"item_id": 7, "q": "x"}
            bad = await http.get("/team/sync/seven", headers=as_member)
            assert bad.status_code == 422
            spec = (await http.get("/openapi.json")).json()
    operation = spec["paths"]["/team/sync/{item_id}"]["get"]
    assert [p["name"] for p in operation["parameters"]] == ["item_id", "q"]  # the hidden Request stays hidden
    assert operation["description"] == "Sync endpoints keep their parameters and docs when decorated."


async def test_dependency_overrides(dominus_app: FastAPI, dominus_app_client: httpx.AsyncClient) -> None:
    fake_session = PortalSession(
        "token-not-used", {"sub": "u-1", "subject_type": "user", "sid": "s-1", "tenant_id": "t-1"}, "bearer"
    )

    class FakeDb:
        pass

    dominus_app.dependency_overrides[get_current_user] = lambda: DominusUser(fake_session)
    dominus_app.dependency_overrides[get_db] = FakeDb
    try:
        response = await dominus_app_client.get("/whoami")
    finally:
        dominus_app.dependency_overrides.clear()
    assert response.status_code == 200
    assert response.json() == {"id": "u-1", "subject_type": "user", "tenant_id": "t-1", "roles": [], "db": "FakeDb"}
    assert (await dominus_app_client.get("/whoami")).status_code == 401


async def test_portal_provider_is_bound_to_the_session(
    dominus_app: FastAPI, dominus_user_client: UserFactory, dominus: Dominus
) -> None:
    user = await dominus_user_client(tenants=["acme"])
    navigation = await user.get("/my-navigation")
    assert navigation.status_code == 200 and "items" in navigation.json()

    class FakePortal:
        async def get_navigation(self) -> dict[str, Any]:
            return {"items": [{"title": "fake"}]}

    dominus_app.dependency_overrides[get_portal] = FakePortal
    dominus_app.dependency_overrides[get_dominus] = lambda: dominus
    try:
        assert (await user.get("/my-navigation")).json() == {"items": [{"title": "fake"}]}
    finally:
        dominus_app.dependency_overrides.clear()


async def test_csrf_for_cookie_sessions(dominus_user_client: UserFactory) -> None:
    browser = await dominus_user_client(tenants=["acme"])  # cookie session, sends the site's Origin
    body = {"current_password": "wrong-password", "new_password": "another-password"}
    # With the site's Origin the request reaches Portal (which refuses the wrong password).
    assert (await browser.post("/auth/change-password", json=body)).json()["code"] == "invalid_credentials"
    for origin in ("https://evil.example", "http://127.0.0.1.evil.example", "null"):
        refused = await browser.post("/auth/change-password", json=body, headers={"Origin": origin})
        assert refused.status_code == 403, origin
        assert refused.json()["code"] == "csrf_failed"
    del browser.headers["Origin"]  # without Origin the Referer decides; without both the write is refused
    assert (await browser.post("/auth/change-password", json=body)).json()["code"] == "csrf_failed"
    evil_referer = {"Referer": "https://evil.example/x"}
    assert (await browser.post("/auth/change-password", json=body, headers=evil_referer)).status_code == 403
    referer = await browser.post("/auth/change-password", json=body, headers={"Referer": f"{APP_ORIGIN}/settings"})
    assert referer.json()["code"] == "invalid_credentials"
    # Reads are never refused, and a Bearer session needs no Origin.
    assert (await browser.get("/auth/me")).status_code == 200
    api = await dominus_user_client(via="bearer")
    del api.headers["Origin"]  # the plugin's clients all send it; an API caller need not
    assert (await api.post("/auth/change-password", json=body)).json()["code"] == "invalid_credentials"


async def test_allowed_origins(dominus: Dominus, dominus_base_url: str) -> None:
    from asgi_lifespan import LifespanManager

    from dominus_fastapi.testing import signed_in_client
    from tests.fastapi.apps import build_app

    app = build_app(allowed_origins=["https://admin.example.com"])
    user = await create_test_user(dominus)
    async with LifespanManager(app) as manager:
        http = signed_in_client(manager.app, user, origin=APP_ORIGIN)
        async with http:
            body = {"current_password": "wrong-password", "new_password": "another-password"}
            trusted = await http.post(
                "/auth/change-password", json=body, headers={"Origin": "https://admin.example.com"}
            )
            assert trusted.json()["code"] == "invalid_credentials"
            other = await http.post("/auth/change-password", json=body, headers={"Origin": "https://x.example.com"})
            assert other.json()["code"] == "csrf_failed"


async def test_require_jwt_and_require_psk(
    dominus: Dominus, dominus_app_client: httpx.AsyncClient, dominus_user_client: UserFactory
) -> None:
    assert (await dominus_app_client.get("/jwt-only")).status_code == 401
    user = await dominus_user_client()
    assert (await user.get("/jwt-only")).json() == {"user": user.user.id}

    created = await dominus.auth.create_client("reporting-job")
    psk = created["psk"]
    assert (await dominus_app_client.get("/machine")).status_code == 401
    wrong = await dominus_app_client.get("/machine", headers={"X-Dominus-PSK": "f" * 64})
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_credentials"
    assert "f" * 64 not in wrong.text
    for _ in range(2):  # the second call is served from the guard's cache
        ok = await dominus_app_client.get("/machine", headers={"X-Dominus-PSK": psk})
        assert ok.status_code == 200, ok.text
        assert ok.json() == {"client": created["id"], "subject_type": "client"}


async def test_page_access_answers_are_cached_per_session(dominus: Dominus, dominus_base_url: str) -> None:
    """Portal is asked once per session, page and cache period; a grant shows after the period."""
    from asgi_lifespan import LifespanManager

    from dominus_fastapi import dominus_lifespan, setup_dominus

    now = [100.0]
    app = FastAPI(lifespan=dominus_lifespan())
    setup_dominus(app)

    @app.get("/vault")
    @require_page_access("/vault", cache_seconds=10, clock=lambda: now[0])
    async def vault() -> dict[str, bool]:
        return {"open": True}

    page = await dominus.auth.create_page("/vault", "Vault")
    scope = await dominus.auth.create_scope("vault", "Vault")
    await dominus.auth.add_page_scopes(page["id"], [scope["id"]])
    user = await create_test_user(dominus)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        headers = {"Authorization": f"Bearer {user.access_token}"}
        async with httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN, headers=headers) as http:
            assert (await http.get("/vault")).status_code == 403
            await dominus.auth.add_user_scopes(user.id, [scope["id"]])  # Portal reads current Guardian data
            now[0] += 5
            assert (await http.get("/vault")).status_code == 403  # still the cached answer
            now[0] += 6
            assert (await http.get("/vault")).json() == {"open": True}


async def test_recheck_guards_stack_ask_every_time_and_fail_closed(dominus: Dominus, dominus_base_url: str) -> None:
    """Two ``recheck=True`` guards on one endpoint: each asks the server on every request (no cache), a grant
    shows at once, and when the server cannot answer the request fails instead of trusting the token."""
    from asgi_lifespan import LifespanManager

    from dominus_fastapi import dominus_lifespan, setup_dominus
    from tests.conftest import make_fast

    app = FastAPI(lifespan=dominus_lifespan())
    setup_dominus(app)

    @app.post("/vault")
    @require_page_access("/vault", recheck=True)
    @require_scopes("vault.write", recheck=True)
    async def deposit(user: CurrentUser) -> dict[str, str]:
        return {"by": user.id}

    @app.get("/vault")
    @require_scopes("vault.write")
    async def look() -> dict[str, bool]:
        return {"open": True}

    page = await dominus.auth.create_page("/vault", "Vault")
    reader = await dominus.auth.create_scope("vault.read", "Vault")
    writer = await dominus.auth.create_scope("vault.write", "Vault deposits")
    await dominus.auth.add_page_scopes(page["id"], [reader["id"]])
    user = await create_test_user(dominus, scopes=["vault.read"])
    async with LifespanManager(app) as manager:
        make_fast(app.state.dominus)  # the retries of the failing check do not wait
        transport = httpx.ASGITransport(app=manager.app)
        headers = {"Authorization": f"Bearer {user.access_token}"}
        async with httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN, headers=headers) as http:
            refused = await http.post("/vault")
            assert refused.status_code == 403 and refused.json()["code"] == "missing_scope"
            await dominus.auth.add_user_scopes(user.id, [writer["id"]])
            assert (await http.post("/vault")).json() == {"by": user.id}  # granted: seen at once
            assert (await http.get("/vault")).status_code == 403  # the plain guard: the token has no such scope

            await dominus.admin.set_faults(error_rate=1, error_status=503, paths=["/api/portal/auth/me"])
            try:
                down = await http.post("/vault")
            finally:
                await dominus.admin.set_faults()
            assert down.status_code == 503  # fail closed: never the token's word instead
            assert (await http.post("/vault")).status_code == 200
