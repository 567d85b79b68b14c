"""A real ``dominus_local`` per test, in-process, reached with raw httpx requests framed by ``wire``."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from dominus_fastapi.core import wire
from dominus_local.app import DominusLocalApp, create_app
from dominus_local.routing import ServiceRouter
from dominus_local.security import credentials
from dominus_local.settings import LocalSettings

ORIGIN = "http://dominus.test"

_ENV = (
    "DOMINUS_TOKEN",
    "DOMINUS_LOCAL_PSK",
    "DOMINUS_LOCAL_DATA_DIR",
    "DOMINUS_LOCAL_DATABASE_URL",
    "CB_PROJECT_SLUG",
    "CB_ENVIRONMENT",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def envelope(response: httpx.Response) -> dict[str, Any]:
    """The decoded envelope of a framed response (asserting the framing headers on the way)."""
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-request-id"]
    decoded = wire.parse_response_text(response.content)
    assert isinstance(decoded, dict), response.content[:200]
    assert decoded["success"] is (response.status_code == 200)
    return decoded


def error_code(response: httpx.Response) -> str:
    body = envelope(response)
    assert body["success"] is False
    return str(body["code"])


@dataclass
class Harness:
    """The app, its ASGI entry point, an httpx client bound to it, its PSK and its fake clocks."""

    app: DominusLocalApp
    http: httpx.AsyncClient
    psk: str
    clock: Clock
    """Monotonic clock: cold start and faults."""
    wall: Clock
    """Unix clock: token times and idempotency retention."""

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        headers: dict[str, Any] | None = None,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """A request with ``body`` framed as the SDK frames it (or ``content`` sent as is)."""
        sent: dict[str, Any] = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if content is None and method != "GET":
            content = wire.encode_body(body)
        return await self.http.request(method, path, content=content, headers=sent, params=params)

    async def mint(self, psk: str | None = None) -> str:
        response = await self.call("POST", "/jwt/mint", {"method": "auth.self", "params": {}}, token=psk or self.psk)
        assert response.status_code == 200, response.content
        return str(envelope(response)["data"]["access_token"])

    async def metrics(self) -> str:
        response = await self.http.get("/metrics")
        assert response.status_code == 200
        return response.text


@pytest.fixture
def settings() -> LocalSettings:
    return LocalSettings(bcrypt_rounds=4)


@pytest.fixture
def extra_routers(probe: Any) -> Iterable[ServiceRouter]:
    """The probe service (``/api/probe/*``) joins every test server."""
    return (probe[0],)


POSTGRES_ENV = "DOMINUS_TEST_POSTGRES_URL"
"""When set (``postgresql://user@host:port/db``), every in-memory test server gets a fresh PostgreSQL database
on that server instead of in-memory SQLite; it is dropped after the test."""


@contextlib.asynccontextmanager
async def _database_for(settings: LocalSettings) -> AsyncIterator[LocalSettings]:
    admin_url = os.environ.get(POSTGRES_ENV)
    if not admin_url or settings.data_dir is not None or settings.database_url:
        yield settings
        return
    import asyncpg  # type: ignore[import-untyped,unused-ignore]

    name = f"test_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        yield settings.model_copy(update={"database_url": f"{base}/{name}"})
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def start(
    settings: LocalSettings, routers: Iterable[ServiceRouter] = (), *, wall: Clock | None = None
) -> AsyncIterator[Harness]:
    clock = Clock(1_000.0)
    wall = wall or Clock(time.time())
    async with _database_for(settings) as chosen:
        app = create_app(chosen, routers=routers, clock=clock, wall_clock=wall)
        async with (
            LifespanManager(app) as manager,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url=ORIGIN) as http,
        ):
            yield Harness(app, http, credentials(app.state).psk, clock, wall)


@pytest.fixture
async def server(settings: LocalSettings, extra_routers: Iterable[ServiceRouter]) -> AsyncIterator[Harness]:
    async for harness in start(settings, extra_routers):
        yield harness


@pytest.fixture
async def token(server: Harness) -> str:
    """A service token of the bootstrap (administrator) client."""
    return await server.mint()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


# --- identities made directly in the database, for the auth rules ----------------------------------------------


async def add_client(harness: Harness, psk: str, *, status: str = "active") -> str:
    """A client (no roles, no tenants) owning ``psk``."""
    from dominus_local import identity
    from dominus_local.validate import new_id, utcnow

    client_id = new_id()
    now = utcnow()
    async with harness.app.state.db.begin() as conn:
        await conn.execute(
            identity.clients.insert().values(
                id=client_id,
                label=f"client-{client_id[:8]}",
                status=status,
                is_bootstrap=False,
                psk_digest=identity.psk_digest(psk),
                created_at=now,
                updated_at=now,
            )
        )
    return client_id


async def set_client_status(harness: Harness, client_id: str, status: str) -> None:
    from dominus_local import identity

    async with harness.app.state.db.begin() as conn:
        await conn.execute(identity.clients.update().where(identity.clients.c.id == client_id).values(status=status))


async def add_user_session(harness: Harness, *, revoked: bool = False, roles: tuple[str, ...] = ()) -> str:
    """A user with an open (or revoked) session; returns a session token for it."""
    from datetime import timedelta

    from dominus_local import identity
    from dominus_local.security import issue_token
    from dominus_local.validate import new_id, utcnow

    user_id, sid = new_id(), new_id()
    now = utcnow()
    async with harness.app.state.db.begin() as conn:
        await conn.execute(
            identity.users.insert().values(
                id=user_id, username=f"u{user_id[:8]}", status="active", created_at=now, updated_at=now
            )
        )
        await conn.execute(
            identity.sessions.insert().values(
                id=sid,
                kind="user",
                subject_type="user",
                subject_id=user_id,
                created_at=now,
                expires_at=now + timedelta(hours=1),
                revoked_at=now if revoked else None,
            )
        )
    claims = {
        "sub": user_id,
        "subject_type": "user",
        "sid": sid,
        "tenant_id": None,
        "roles": list(roles),
        "scopes": [],
        "project_slug": "local",
        "environment": "development",
    }
    return issue_token(harness.app.state, claims)


@pytest.fixture
def probe() -> Any:
    from .probes import build

    return build()
