"""Guarded routes document what their guard answers in OpenAPI: 401/403 with the ``ErrorResponse`` schema and
what the caller needs, 303 for ``redirect_to``, and the security requirement (Bearer or the session cookie,
declared as an API key in a cookie; the PSK header for ``require_psk``). Read from ``app.openapi()``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI

from dominus_fastapi import (
    dominus_lifespan,
    require_jwt,
    require_page_access,
    require_psk,
    require_role,
    require_scopes,
    setup_dominus,
)
from dominus_fastapi.handlers import ERROR_RESPONSES

ERROR_SCHEMA = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
BEARER = "OAuth2PasswordBearer"
COOKIE = "DominusSessionCookie"


def guarded_app() -> FastAPI:
    app = FastAPI(lifespan=dominus_lifespan())
    setup_dominus(app, cookie_name="shop_session")

    @app.get("/public")
    async def public() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/shop-admin")
    @require_role("shop-admin", "owner", redirect_to="/sign-in")
    async def shop_admin() -> dict[str, str]:
        return {}

    @app.get("/reports", dependencies=[Depends(require_page_access("/reports"))])
    async def reports() -> dict[str, str]:
        return {}

    @app.get("/machine", dependencies=[Depends(require_psk(scopes=("sync",)))])
    async def machine() -> dict[str, str]:
        return {}

    @app.get("/clients-only", dependencies=[Depends(require_jwt(subject_type="client"))])
    async def clients_only() -> dict[str, str]:
        return {}

    @app.get("/own-403", responses={403: {"description": "Told by the route itself"}})
    @require_scopes("a")
    async def own_403() -> dict[str, str]:
        return {}

    team = APIRouter(prefix="/team", dependencies=[Depends(require_scopes("team.read", "team.write", any_of=False))])

    @team.get("/members")
    @require_role("lead")
    async def members() -> list[str]:
        return []

    app.include_router(team)
    return app


def operation(spec: dict[str, Any], path: str) -> dict[str, Any]:
    found: dict[str, Any] = spec["paths"][path]["get"]
    return found


def test_guarded_routes_document_what_they_need() -> None:
    spec = guarded_app().openapi()

    admin = operation(spec, "/shop-admin")["responses"]
    assert admin["401"] == {
        "description": "Not signed in, or the session has ended (`not_authenticated`)",
        "content": ERROR_SCHEMA,
    }
    assert admin["403"]["description"] == (
        "Signed in, but without one of the roles `shop-admin`, `owner` (`missing_role`)"
    )
    assert admin["403"]["content"] == ERROR_SCHEMA
    assert admin["303"] == {"description": "A browser that is not signed in is sent to `/sign-in?next=<this path>`"}

    reports = operation(spec, "/reports")["responses"]
    assert "the Guardian page `/reports`" in reports["403"]["description"]
    assert "`page_access_denied`" in reports["403"]["description"]
    assert "303" not in reports

    machine = operation(spec, "/machine")
    assert "`X-Dominus-PSK`" in machine["responses"]["401"]["description"]
    assert "`invalid_credentials`" in machine["responses"]["401"]["description"]
    assert machine["responses"]["403"]["description"] == "The client lacks the scope `sync` (`missing_scope`)"
    assert machine["security"] == [{"DominusPsk": []}]

    assert operation(spec, "/clients-only")["responses"]["403"]["description"] == (
        "Needs a client session (`forbidden`)"
    )
    # What a route declares itself wins; what it leaves out is added.
    own = operation(spec, "/own-403")["responses"]
    assert own["403"] == {"description": "Told by the route itself"}
    assert own["401"]["content"] == ERROR_SCHEMA

    # Guards of an included router and of the endpoint add up.
    members = operation(spec, "/team/members")["responses"]["403"]["description"]
    assert members == (
        "Signed in, but without all of the scopes `team.read`, `team.write` (`missing_scope`); "
        "Signed in, but without the role `lead` (`missing_role`)"
    )
    assert "ErrorResponse" in spec["components"]["schemas"]


def test_the_session_cookie_is_a_security_scheme_next_to_bearer() -> None:
    spec = guarded_app().openapi()
    schemes = spec["components"]["securitySchemes"]
    assert schemes[BEARER]["type"] == "oauth2"
    assert schemes[COOKIE]["type"] == "apiKey"
    assert schemes[COOKIE]["in"] == "cookie"
    assert schemes[COOKIE]["name"] == "shop_session"
    assert schemes["DominusPsk"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Dominus-PSK",
        "description": "A machine client's PSK",
    }
    for path in ("/shop-admin", "/reports", "/clients-only", "/own-403", "/team/members", "/auth/me"):
        assert operation(spec, path)["security"] == [{BEARER: []}, {COOKIE: []}], path
    public = operation(spec, "/public")
    assert "security" not in public
    assert not {"401", "403"} & set(public["responses"])


def test_sign_out_shows_its_security_requirement() -> None:
    spec = guarded_app().openapi()
    logout = spec["paths"]["/auth/logout"]["post"]
    assert logout["security"] == [{BEARER: []}, {COOKIE: []}]
    assert logout["responses"]["403"]["description"] == ERROR_RESPONSES[403]["description"]


def test_the_document_is_built_once() -> None:
    app = guarded_app()
    first = app.openapi()
    assert app.openapi() is first
    assert first["paths"]["/auth/logout"]["post"]["security"].count({COOKIE: []}) == 1
