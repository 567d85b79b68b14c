"""``CurrentUser``: one dependency that declares the Bearer scheme and reads the middleware's session."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.websockets import WebSocket

from dominus_fastapi import Dominus, setup_dominus
from dominus_fastapi.deps import CurrentUser, get_current_user, oauth2_scheme
from dominus_fastapi.middleware import DominusUser, PortalSession
from dominus_fastapi.testing import APP_ORIGIN, create_test_user
from tests.fastapi.test_fastapi_middleware import websocket_exchange


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
    assert spec["paths"]["/whoami"]["get"]["security"] == [{scheme_name: []}, {"DominusSessionCookie": []}]


async def test_current_user_can_still_be_overridden(embedded: Dominus) -> None:
    app = _app(embedded)
    fake = PortalSession("secret-token", {"sub": "u-fake", "sid": "s-fake", "exp": 2**40}, "bearer")
    app.dependency_overrides[get_current_user] = lambda: DominusUser(fake)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app.test") as http:
        assert (await http.get("/whoami")).json() == {"id": "u-fake", "type": "user"}


async def test_concurrent_requests_share_one_page_access_call(
    dominus: Dominus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the cached answer is missing or stale, concurrent requests ask Portal once, not once each."""
    from asgi_lifespan import LifespanManager

    from dominus_fastapi import dominus_lifespan, require_page_access
    from dominus_fastapi.core.namespaces.portal import PortalNamespace

    real = PortalNamespace.check_page_access
    calls: list[str] = []

    async def counted(self: PortalNamespace, path: str, **kwargs: Any) -> Any:
        calls.append(path)
        return await real(self, path, **kwargs)

    monkeypatch.setattr(PortalNamespace, "check_page_access", counted)
    now = [100.0]
    app = FastAPI(lifespan=dominus_lifespan())
    setup_dominus(app)

    @app.get("/shared")
    @require_page_access("/shared", cache_seconds=10, clock=lambda: now[0])
    async def shared() -> dict[str, bool]:
        return {"open": True}

    user = await create_test_user(dominus, pages=["/shared"])
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        headers = {"Authorization": f"Bearer {user.access_token}"}
        async with httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN, headers=headers) as http:
            answers = await asyncio.gather(*(http.get("/shared") for _ in range(20)))
            assert [a.status_code for a in answers] == [200] * 20
            assert calls == ["/shared"]
            now[0] += 11  # stale: asked again, once
            answers = await asyncio.gather(*(http.get("/shared") for _ in range(20)))
            assert [a.status_code for a in answers] == [200] * 20
            assert calls == ["/shared", "/shared"]


async def test_current_user_in_a_websocket_endpoint(embedded: Dominus) -> None:
    app = _app(embedded)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, user: CurrentUser) -> None:
        await websocket.accept()
        await websocket.send_json({"id": user.id})
        await websocket.close()

    await embedded.auth.create_user("socket", "socket@example.test", "socket-password-1")
    login = await embedded.portal.login("socket", "socket-password-1")
    claims = await embedded.validate_jwt(login["access_token"])
    sent = await websocket_exchange(app, [(b"authorization", f"Bearer {login['access_token']}".encode())])
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"], sent
    assert json.loads(sent[1]["text"]) == {"id": claims["sub"]}
