"""``dominus_lifespan``: standalone, inside the app's own lifespan, composed; warm-up failures; no secrets shown."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, Request

from dominus_fastapi import Dominus, DominusConnectionError, dominus_lifespan, setup_dominus
from dominus_fastapi.deps import DominusDep
from dominus_fastapi.lifespan import combine_lifespans
from dominus_fastapi.middleware import DominusUser, PortalSession
from dominus_fastapi.testing import APP_ORIGIN, create_test_user


def probe_routes(app: FastAPI) -> None:
    @app.get("/probe")
    async def probe(client: DominusDep, request: Request) -> dict[str, Any]:
        return {
            "same": client is request.app.state.dominus,
            "other": getattr(request.state, "other", None),
            "health": (await client.health.ping())["status"],
        }


async def get_probe(app: FastAPI) -> dict[str, Any]:
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN) as http:
            response = await http.get("/probe")
            assert response.status_code == 200, response.text
            return dict(response.json())


async def test_entered_inside_the_apps_own_lifespan(dominus_base_url: str) -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with dominus_lifespan()(app) as state:
            events.append("started")
            yield {**state, "other": "value"}
        events.append("stopped")

    app = FastAPI(lifespan=lifespan)
    probe_routes(app)
    assert await get_probe(app) == {"same": True, "other": "value", "health": "ok"}
    assert events == ["started", "stopped"]


async def test_composed_with_the_apps_own_lifespan(dominus_base_url: str) -> None:
    order: list[str] = []

    @asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        order.append(f"own sees client: {isinstance(getattr(app.state, 'dominus', None), Dominus)}")
        yield {"other": "composed"}
        order.append("own stopped")

    app = FastAPI(lifespan=combine_lifespans(dominus_lifespan(), own))
    probe_routes(app)
    assert await get_probe(app) == {"same": True, "other": "composed", "health": "ok"}
    assert order == ["own sees client: True", "own stopped"]


async def test_warm_up_failure_is_logged_or_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    psk = "f" * 64
    monkeypatch.setenv("DOMINUS_COLD_START_BUDGET", "0")
    options: dict[str, Any] = {"base_url": "http://127.0.0.1:9", "token": psk, "max_retries": 0}

    app = FastAPI(lifespan=dominus_lifespan(**options))
    with caplog.at_level(logging.WARNING, logger="dominus_fastapi"):
        async with LifespanManager(app):
            assert isinstance(app.state.dominus, Dominus)
    assert "warm-up failed" in caplog.text
    assert psk not in caplog.text

    strict = FastAPI(lifespan=dominus_lifespan(strict=True, **options))
    with pytest.raises(DominusConnectionError):
        async with LifespanManager(strict):
            pass


async def test_missing_lifespan_is_explained(dominus_base_url: str) -> None:
    app = FastAPI()
    setup_dominus(app)

    @app.get("/needs-client")
    async def needs_client(client: DominusDep) -> None:
        return None

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN) as http:
        assert (await http.get("/auth/me")).status_code == 401  # no credential: the client is not needed
        with pytest.raises(RuntimeError, match="dominus_lifespan"):
            await http.get("/needs-client")


async def test_no_token_in_reprs(dominus: Dominus) -> None:
    user = await create_test_user(dominus)
    claims = await dominus.validate_jwt(user.access_token)
    session = PortalSession(user.access_token, claims, "cookie", user.refresh_token)
    for text in (repr(session), str(session), repr(DominusUser(session)), repr(user)):
        assert user.access_token not in text
        assert user.refresh_token is not None and user.refresh_token not in text
        assert user.password not in text
    assert user.id in repr(DominusUser(session))
