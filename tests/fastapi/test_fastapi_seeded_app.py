"""The whole story on the demo data: a test app built only from the public names, driven through HTTP.

``FastAPI(lifespan=dominus_lifespan())`` + ``setup_dominus(app, revalidate_interval=30)``, an endpoint with
``DbDep`` and ``CurrentUser``, and a page behind ``@require_page_access("/dashboard/admin/users")``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from dominus_fastapi import Dominus
from dominus_fastapi.testing import APP_ORIGIN
from dominus_local.seed import DEFAULT_ADMIN_PASSWORD, DEFAULT_DEMO_PASSWORD
from tests.fastapi.apps import build_app

REVALIDATE_SECONDS = 30


@pytest.fixture
def dominus_seed_demo() -> bool:
    return True


@pytest.fixture
def clock() -> list[float]:
    return [5000.0]


@pytest.fixture
def dominus_app(clock: list[float]) -> Any:
    return build_app(revalidate_interval=REVALIDATE_SECONDS, clock=lambda: clock[0])


@asynccontextmanager
async def sign_in(app: Any, username: str, password: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client signed in through ``POST /auth/login``."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN, headers={"Origin": APP_ORIGIN}) as http:
        response = await http.post("/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        assert response.json()["user"]["username"] == username
        assert "dominus_session" in http.cookies
        yield http


async def test_seeded_admin_and_demo_users(
    dominus: Dominus, dominus_asgi_app: Any, dominus_app_client: httpx.AsyncClient, clock: list[float]
) -> None:
    assert (await dominus_app_client.get("/admin/users")).status_code == 401
    assert (await dominus_app_client.get("/schemas")).status_code == 401

    async with sign_in(dominus_asgi_app, "demo", DEFAULT_DEMO_PASSWORD) as demo:
        assert (await demo.get("/admin/users")).status_code == 403
        schemas = await demo.get("/schemas")
        assert schemas.status_code == 200 and "public" in schemas.json()["schemas"]

    async with sign_in(dominus_asgi_app, "admin", DEFAULT_ADMIN_PASSWORD) as admin:
        allowed = await admin.get("/admin/users")
        assert allowed.status_code == 200
        admin_id = allowed.json()["admin"]

        # Sign out through the router: the cookies are cleared and the next request is anonymous.
        assert (await admin.post("/auth/logout")).status_code == 204
        assert "dominus_session" not in admin.cookies
        assert (await admin.get("/admin/users")).status_code == 401
        assert (await admin.get("/whoami")).status_code == 401

    # A session ended elsewhere (here: on another device, through Portal) is refused within the interval.
    async with sign_in(dominus_asgi_app, "admin", DEFAULT_ADMIN_PASSWORD) as admin:
        token = admin.cookies["dominus_session"]
        assert (await admin.get("/whoami")).json()["id"] == admin_id
        await dominus.portal.logout(user_token=token)
        clock[0] += REVALIDATE_SECONDS - 1
        assert (await admin.get("/whoami")).status_code == 200  # not yet asked again: local check only
        clock[0] += 2
        refused = await admin.get("/whoami")
        assert refused.status_code == 401
        assert "dominus_session" not in admin.cookies  # the dead session's cookies were cleared
