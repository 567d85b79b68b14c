"""A real ``dominus_local`` in-process per test, reached through the SDK and through raw framed requests.

Every Guardian call made through ``client.auth`` is recorded for the whole session, so that the catalogue
test can check that every ``auth.*`` method was exercised against the server.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from dominus_fastapi.core import wire
from dominus_fastapi.core.client import Dominus
from dominus_fastapi.core.errors import DominusError
from dominus_fastapi.core.namespaces.auth import AuthNamespace
from dominus_local import app as app_module
from dominus_local.services import courier, guardian, portal
from dominus_local.settings import LocalSettings

PSK = "0123456789abcdef" * 4
BASE = "http://dominus.test"

CALLED: set[str] = set()
"""``auth.*`` names that reached the server during this session (answered, successfully or not)."""


def _recording(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = await method(*args, **kwargs)
        except DominusError as exc:
            if exc.status_code is not None:
                CALLED.add(f"auth.{name}")
            raise
        CALLED.add(f"auth.{name}")
        return result

    return wrapper


@pytest.fixture(scope="session", autouse=True)
def _record_auth_calls() -> Any:
    originals: dict[str, Any] = {}
    for name, member in list(vars(AuthNamespace).items()):
        if name.startswith("_") or not inspect.iscoroutinefunction(member):
            continue
        originals[name] = member
        setattr(AuthNamespace, name, _recording(name, member))
    yield CALLED
    for name, member in originals.items():
        setattr(AuthNamespace, name, member)


@dataclass
class Server:
    """The running instance, a raw HTTP client to it, and the admin SDK client."""

    app: Any
    http: httpx.AsyncClient
    client: Dominus

    @property
    def state(self) -> Any:
        return self.app.state

    async def raw(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> tuple[int, Any]:
        """A framed request (spec 3.1) with an explicit Bearer; returns the status and the decoded envelope."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        content = wire.encode_body(body) if method != "GET" else None
        response = await self.http.request(
            method, path, content=content, headers={**headers, "Content-Type": "text/plain"}, params=params
        )
        return response.status_code, wire.parse_response_text(response.content)

    async def me(self, token: str) -> tuple[int, str | None]:
        """Status and machine code of ``GET /api/portal/auth/me`` with ``token``: does its session still work?"""
        status, envelope = await self.raw("GET", "/api/portal/auth/me", token=token)
        return status, (envelope or {}).get("code") if status != 200 else None

    async def service_token(self, psk: str = PSK) -> str:
        status, envelope = await self.raw("POST", "/jwt/mint", {"method": "auth.self", "params": {}}, token=psk)
        assert status == 200, envelope
        return str(envelope["data"]["access_token"])


def _settings(**overrides: Any) -> LocalSettings:
    return LocalSettings(psk=SecretStr(PSK), bcrypt_rounds=4, **overrides)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    # Services this suite needs that the app may not list yet; each is added once.
    routers = [r for r in (guardian.router, portal.router, courier.router) if r not in app_module.ROUTERS]
    application = app_module.create_app(_settings(), routers=routers)
    async with LifespanManager(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with (
            httpx.AsyncClient(transport=transport, base_url=BASE) as http,
            httpx.AsyncClient(transport=transport, base_url=BASE) as sdk_http,
        ):
            client = Dominus(token=PSK, base_url=BASE, http_client=sdk_http, max_retries=0)
            try:
                yield Server(application, http, client)
            finally:
                await client.aclose()


@pytest.fixture
def auth(server: Server) -> AuthNamespace:
    return server.client.auth


@pytest.fixture
def captured_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog
