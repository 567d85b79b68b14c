"""``CurrentUser``: one dependency that declares the Bearer scheme and reads the middleware's session."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from dominus_fastapi import Dominus, setup_dominus
from dominus_fastapi.deps import CurrentUser, get_current_user, oauth2_scheme
from dominus_fastapi.middleware import DominusUser, PortalSession


def _app(client: Dominus) -> FastAPI:
    app = FastAPI()
    app.state.dominus = client
    setup_dominus(app, prefix=None, client=client)

    @app.get("/whoami")
    async def whoami(user: CurrentUser) -> dict[str, Any]:
        return {"id": user.id, "type": user.subject_type}

    return app


async def test_current_user_reads_the_session_and_declares_the_scheme(embedded: Dominus) -> None:
    app = _app(embedded)
    user_id = (await embedded.auth.create_user("reader", "reader@example.test", "reader-password-1"))["id"]
    login = await embedded.portal.login("reader", "reader-password-1")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app.test") as http:
        anonymous = await http.get("/whoami")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert anonymous.json()["code"] == "not_authenticated"
        bad = await http.get("/whoami", headers={"Authorization": "Bearer not.a.token"})
        assert bad.status_code == 401
        signed_in = await http.get("/whoami", headers={"Authorization": f"Bearer {login['access_token']}"})
        assert signed_in.status_code == 200
        assert signed_in.json() == {"id": user_id, "type": "user"}
        spec = (await http.get("/openapi.json")).json()
    scheme_name = oauth2_scheme.scheme_name
    assert spec["components"]["securitySchemes"][scheme_name]["flows"]["password"]["tokenUrl"] == "/auth/token"
    assert spec["paths"]["/whoami"]["get"]["security"] == [{scheme_name: []}]


async def test_current_user_can_still_be_overridden(embedded: Dominus) -> None:
    app = _app(embedded)
    fake = PortalSession("secret-token", {"sub": "u-fake", "sid": "s-fake", "exp": 2**40}, "bearer")
    app.dependency_overrides[get_current_user] = lambda: DominusUser(fake)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app.test") as http:
        assert (await http.get("/whoami")).json() == {"id": "u-fake", "type": "user"}
