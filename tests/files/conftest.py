"""A real ``dominus_local`` with a data directory and a fake wall clock, an admin SDK client and a plain one."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from dominus_fastapi import Dominus
from dominus_fastapi.core.transport import DropAwareASGITransport
from dominus_local import LocalSettings, create_app
from dominus_local.app import ROUTERS
from dominus_local.services import guardian
from tests.conftest import FakeClock, make_fast

ORIGIN = "http://dominus.test"


@dataclass
class FileServer:
    app: Any
    state: Any
    data_dir: Path
    wall: FakeClock
    admin: Dominus
    user: Dominus
    """A client without the admin role."""

    async def get(self, url: str) -> httpx.Response:
        """A plain GET without credentials, as a browser would follow a download URL."""
        assert url.startswith(ORIGIN + "/")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=ORIGIN) as http:
            return await http.get(url.removeprefix(ORIGIN))

    async def audit(self) -> list[dict[str, Any]]:
        """Archivist audit records, oldest first."""
        entries = await self.admin.logs.query(category="audit", limit=1000)
        return [e for e in reversed(entries) if e.get("context", {}).get("service") == "archivist"]


def _client(app: Any, psk: str) -> Dominus:
    client = Dominus(
        base_url=ORIGIN, token=psk, http_client=httpx.AsyncClient(transport=DropAwareASGITransport(app=app))
    )
    make_fast(client)
    return client


@contextlib.asynccontextmanager
async def file_server(tmp_path: Path, **overrides: Any) -> AsyncIterator[FileServer]:
    """Start a server in ``tmp_path/data`` with ``overrides`` as settings; yields it with both clients."""
    psk = secrets.token_hex(32)
    wall = FakeClock()
    data_dir = tmp_path / "data"
    settings = LocalSettings(psk=psk, data_dir=data_dir, bcrypt_rounds=4, **overrides)
    extra = [] if guardian.router in ROUTERS else [guardian.router]
    app = create_app(settings, routers=extra, wall_clock=wall)
    async with LifespanManager(app) as manager:
        admin = _client(manager.app, psk)
        created = await admin.auth.create_client("archivist-tests")
        user = _client(manager.app, created["psk"])
        try:
            yield FileServer(manager.app, app.state, data_dir, wall, admin, user)
        finally:
            for client in (admin, user):
                await client.aclose()
                await client._transport.http.aclose()


@pytest.fixture
async def files_server(tmp_path: Path) -> AsyncIterator[FileServer]:
    async with file_server(tmp_path) as server:
        yield server
