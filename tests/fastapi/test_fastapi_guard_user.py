"""Guard-decorated endpoints get their ``CurrentUser`` from the guard, not from FastAPI's dependency system,
with the same answers, overrides and OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Header, Security
from fastapi.routing import APIRoute

from dominus_fastapi import Dominus, require_jwt, require_page_access, require_psk, require_scopes, setup_dominus
from dominus_fastapi.deps import CurrentUser, get_current_user, oauth2_scheme
from dominus_fastapi.guards import COOKIE_SCHEME
from dominus_fastapi.middleware import DominusUser, PortalSession

PAGE = "/reports"
SCHEME = oauth2_scheme.scheme_name
COOKIE = COOKIE_SCHEME


def _app(client: Dominus) -> FastAPI:
    app = FastAPI()
    app.state.dominus = client
    setup_dominus(app, prefix=None, client=client)

    @app.get("/reports/{report_id}")
    @require_page_access(PAGE, redirect_to="/login")
    async def report(report_id: int, user: CurrentUser, q: str | None = None) -> dict[str, Any]:
        return {"id": report_id, "user": user.id, "q": q}

    @app.get("/sync")
    @require_jwt()
    def sync_report(
        user: Annotated[DominusUser, Depends(get_current_user)], other: DominusUser = Depends(get_current_user)
    ) -> dict[str, Any]:
        return {"user": user.id, "same": user is other}

    @app.get("/stacked")
    @require_jwt(subject_type="user")
    @require_scopes("reports:read")
    async def stacked(user: CurrentUser) -> dict[str, Any]:
        return {"user": user.id}

    @app.get("/scoped")
    @require_jwt()
    async def scoped(user: Annotated[DominusUser, Security(get_current_user, scopes=["reports:read"])]) -> str:
        return user.id

    @app.get("/plain")
    @require_jwt()
    async def plain() -> str:
        return "ok"

    @app.get("/machine")
    @require_psk()
    async def machine() -> str:
        return "ok"

    @app.get("/hidden", include_in_schema=False)
    @require_jwt()
    async def hidden(user: CurrentUser) -> str:
        return user.id

    return app


def _route(app: FastAPI, path: str) -> APIRoute:
    return next(r for r in app.routes if isinstance(r, APIRoute) and r.path == path)


async def test_the_guard_fills_current_user_after_its_check(embedded: Dominus) -> None:
    from dominus_fastapi.testing import create_test_user

    app = _app(embedded)
    reader = await create_test_user(embedded, pages=[PAGE], scopes=["reports:read"])
    outsider = await create_test_user(embedded)
    # FastAPI resolves no dependency for these endpoints: the guard gives the user.
    for path in ("/reports/{report_id}", "/sync", "/stacked"):
        assert _route(app, path).dependant.dependencies == []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app.test") as http:
        as_reader = {"Authorization": f"Bearer {reader.access_token}"}
        as_outsider = {"Authorization": f"Bearer {outsider.access_token}"}
        got = await http.get("/reports/7", params={"q": "x"}, headers=as_reader)
        assert got.json() == {"id": 7, "user": reader.id, "q": "x"}
        assert (await http.get("/reports/seven", headers=as_reader)).status_code == 422
        denied = await http.get("/reports/7", headers=as_outsider)
        assert denied.status_code == 403 and denied.json()["code"] == "page_access_denied"
        anonymous = await http.get("/reports/7")
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
        assert anonymous.json()["code"] == "not_authenticated"
        # The guard decides before the user is read, so its redirect for browsers applies.
        browser = await http.get("/reports/7", headers={"Accept": "text/html"})
        assert browser.status_code == 303 and browser.headers["location"] == "/login?next=/reports/7"
        assert (await http.get("/sync", headers=as_reader)).json() == {"user": reader.id, "same": True}
        assert (await http.get("/stacked", headers=as_reader)).json() == {"user": reader.id}
        missing = await http.get("/stacked", headers=as_outsider)
        assert missing.status_code == 403 and missing.json()["code"] == "missing_scope"
        assert (await http.get("/scoped", headers=as_reader)).json() == reader.id
        assert (await http.get("/hidden", headers=as_reader)).json() == reader.id


async def test_overrides_of_current_user_still_apply(embedded: Dominus) -> None:
    from dominus_fastapi.testing import create_test_user

    app = _app(embedded)
    reader = await create_test_user(embedded, pages=[PAGE])
    as_reader = {"Authorization": f"Bearer {reader.access_token}"}

    def fake(user_id: str) -> DominusUser:
        return DominusUser(PortalSession("not-used", {"sub": user_id, "sid": "s-fake", "exp": 2**40}, "bearer"))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app.test") as http:
        app.dependency_overrides[get_current_user] = lambda: fake("u-fake")
        assert (await http.get("/reports/1", headers=as_reader)).json()["user"] == "u-fake"
        assert (await http.get("/sync", headers=as_reader)).json() == {"user": "u-fake", "same": True}

        # An override with parameters of its own is resolved by FastAPI, validation included.
        async def from_header(x_fake_user: Annotated[str, Header()]) -> DominusUser:
            return fake(x_fake_user)

        app.dependency_overrides[get_current_user] = from_header
        got = await http.get("/reports/1", headers={**as_reader, "X-Fake-User": "u-header"})
        assert got.json()["user"] == "u-header"
        invalid = await http.get("/reports/1", headers=as_reader)
        assert invalid.status_code == 422 and "x-fake-user" in invalid.text
        # The guard still checks the real session.
        assert (await http.get("/reports/1", headers={"X-Fake-User": "u-header"})).status_code == 401
        app.dependency_overrides.clear()
        assert (await http.get("/reports/1", headers=as_reader)).json()["user"] == reader.id


async def test_openapi_shows_the_bearer_scheme_on_session_guarded_endpoints(embedded: Dominus) -> None:
    app = _app(embedded)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app.test") as http:
        spec = (await http.get("/openapi.json")).json()
        assert (await http.get("/openapi.json")).json() == spec  # added once, not once per call
    paths = spec["paths"]
    report = paths["/reports/{report_id}"]["get"]
    assert [p["name"] for p in report["parameters"]] == ["report_id", "q"]  # no user, no hidden request
    # Bearer, or the session cookie (the same session).
    for path in ("/reports/{report_id}", "/sync", "/stacked", "/plain"):
        assert paths[path]["get"]["security"] == [{SCHEME: []}, {COOKIE: []}], path
    # FastAPI keeps resolving a Security with scopes itself, and its scopes are shown.
    assert paths["/scoped"]["get"]["security"] == [{SCHEME: ["reports:read"]}, {COOKIE: []}]
    # A PSK caller has no session: no Bearer scheme, its PSK header instead.
    assert paths["/machine"]["get"]["security"] == [{"DominusPsk": []}]
    assert "/hidden" not in paths
    assert spec["components"]["securitySchemes"][SCHEME]["flows"]["password"]["tokenUrl"] == "/auth/token"
    # A document built again (after ``app.openapi_schema = None``) shows it again, once.
    app.openapi_schema = None
    assert app.openapi()["paths"]["/plain"]["get"]["security"] == [{SCHEME: []}, {COOKIE: []}]
