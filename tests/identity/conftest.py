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
SECRETS: set[str] = {PSK}
"""Every password, PSK and token that went through ``client.auth`` in this session."""
ERROR_TEXTS: list[str] = []
"""``str`` and ``repr`` of every SDK error raised by ``client.auth`` in this session."""
LOG_LINES: list[str] = []
"""Every log line emitted during this session's identity tests, at every level."""

_SECRET_ARGS = ("password", "psk", "token")
_SECRET_FIELDS = ("psk", "access_token", "refresh_token")


def _recording(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    signature = inspect.signature(method)

    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind_partial(*args, **kwargs)
        for arg in _SECRET_ARGS:
            value = bound.arguments.get(arg)
            if isinstance(value, str) and len(value) >= 8:
                SECRETS.add(value)
        try:
            result = await method(*args, **kwargs)
        except DominusError as exc:
            ERROR_TEXTS.extend((str(exc), repr(exc)))
            if exc.status_code is not None:
                CALLED.add(f"auth.{name}")
            raise
        CALLED.add(f"auth.{name}")
        if isinstance(result, dict):
            SECRETS.update(str(result[key]) for key in _SECRET_FIELDS if result.get(key))
        return result

    return wrapper


class _LineCollector(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            LOG_LINES.append(self.format(record))
        except Exception:  # a broken record must not break the suite; its text is kept raw
            LOG_LINES.append(f"{record.msg!r} {record.args!r}")


@pytest.fixture(scope="session", autouse=True)
def _record_auth_calls() -> Any:
    originals: dict[str, Any] = {}
    for name, member in list(vars(AuthNamespace).items()):
        if name.startswith("_") or not inspect.iscoroutinefunction(member):
            continue
        originals[name] = member
        setattr(AuthNamespace, name, _recording(name, member))
    root = logging.getLogger()
    collector = _LineCollector(logging.DEBUG)
    collector.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    previous_level = root.level
    root.addHandler(collector)
    root.setLevel(logging.DEBUG)
    # aiosqlite traces every driver call at DEBUG; SQL parameters hold only digests and hashes, never a secret.
    driver = logging.getLogger("aiosqlite")
    previous_driver_level = driver.level
    driver.setLevel(logging.INFO)
    yield CALLED
    driver.setLevel(previous_driver_level)
    root.removeHandler(collector)
    root.setLevel(previous_level)
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
