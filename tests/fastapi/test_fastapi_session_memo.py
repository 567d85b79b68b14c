"""The middleware remembers tokens it verified: a known token is not checked again while the key set stays the
same, yet expiry, a new key set and a sign-out take effect on the very next request."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, Request

from dominus_fastapi import Dominus, dominus_lifespan, setup_dominus
from dominus_fastapi.core.settings import JWKS_TTL
from dominus_fastapi.middleware import MIDDLEWARE_SCOPE_KEY, SESSION_SCOPE_KEY, PortalSession
from dominus_fastapi.testing import APP_ORIGIN, TestUser, create_test_user


def _app() -> FastAPI:
    app = FastAPI(lifespan=dominus_lifespan())
    setup_dominus(app, prefix=None)

    @app.get("/me")
    async def me(request: Request) -> dict[str, Any]:
        return {"user": request.user.identity if request.user.is_authenticated else None}

    @app.post("/end")
    async def end(request: Request) -> dict[str, Any]:
        session: PortalSession = request.scope[SESSION_SCOPE_KEY]
        request.scope[MIDDLEWARE_SCOPE_KEY].forget_session(session.session_id, session.expires_at)
        return {"ended": session.session_id}

    return app


@dataclass
class Env:
    http: httpx.AsyncClient
    client: Dominus
    user: TestUser
    checks: list[str]


@pytest.fixture
async def env(dominus: Dominus, dominus_base_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    user = await create_test_user(dominus)
    app = _app()
    async with LifespanManager(app) as manager:
        client: Dominus = app.state.dominus
        checks: list[str] = []
        original = client.validate_jwt

        async def counting(token: str, **options: Any) -> dict[str, Any]:
            checks.append(token)
            return await original(token, **options)

        monkeypatch.setattr(client, "validate_jwt", counting)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url=APP_ORIGIN) as http:
            yield Env(http, client, user, checks)


def _bearer(user: TestUser) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.access_token}"}


def _cookie(user: TestUser) -> dict[str, str]:
    return {"Cookie": f"dominus_session={user.access_token}"}


async def _who(env: Env, headers: dict[str, str]) -> Any:
    response = await env.http.get("/me", headers=headers)
    assert response.status_code == 200
    return response.json()["user"]


async def test_a_known_bearer_token_is_verified_once(env: Env) -> None:
    for _ in range(5):
        assert await _who(env, _bearer(env.user)) == env.user.id
    assert env.checks == [env.user.access_token]
    # Another spelling of the header is the same token: checked by the full path, still one identity.
    assert await _who(env, {"Authorization": f"bearer   {env.user.access_token}"}) == env.user.id


async def test_a_known_session_cookie_is_verified_once(env: Env) -> None:
    for _ in range(3):
        assert await _who(env, _cookie(env.user)) == env.user.id
    assert env.checks == [env.user.access_token]


async def test_expiry_is_checked_on_every_request(env: Env) -> None:
    assert await _who(env, _bearer(env.user)) == env.user.id
    expires_at = PortalSession(env.user.access_token, await env.client.validate_jwt(env.user.access_token), "bearer")
    env.client._transport.wall_clock = lambda: expires_at.expires_at + 1
    assert await _who(env, _bearer(env.user)) is None
    assert await _who(env, _cookie(env.user)) is None


async def test_a_new_key_set_means_a_new_check(env: Env) -> None:
    assert await _who(env, _bearer(env.user)) == env.user.id
    jwks = env.client._transport.jwks
    generation = jwks.generation
    # The cached key set grows stale: the next request verifies again against a key set fetched anew.
    jwks.clock = lambda: time.monotonic() + JWKS_TTL + 1
    assert await _who(env, _bearer(env.user)) == env.user.id
    assert jwks.generation != generation
    assert len(env.checks) == 2
    assert await _who(env, _bearer(env.user)) == env.user.id
    assert len(env.checks) == 2


async def test_a_new_client_never_inherits_what_another_client_verified(dominus: Dominus) -> None:
    """Key-set generations are unique in the process: after a restart of the app's lifespan (a new client,
    perhaps of another backend), remembered tokens are checked again."""
    user = await create_test_user(dominus)
    app = _app()
    seen: list[int | None] = []
    checks: list[str] = []
    for _ in range(2):
        async with LifespanManager(app) as manager:
            client: Dominus = app.state.dominus
            original = client.validate_jwt

            async def counting(token: str, original: Any = original, **options: Any) -> dict[str, Any]:
                checks.append(token)
                return dict(await original(token, **options))

            client.validate_jwt = counting  # type: ignore[method-assign]
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url=APP_ORIGIN
            ) as http:
                for _ in range(2):
                    response = await http.get("/me", headers=_bearer(user))
                    assert response.json()["user"] == user.id
            seen.append(client.key_set_generation())
    assert seen[0] is not None and seen[1] is not None and seen[0] != seen[1]
    assert checks == [user.access_token, user.access_token]  # once per client, not once per request


async def test_a_forgotten_session_is_anonymous_on_the_next_request(env: Env) -> None:
    assert await _who(env, _bearer(env.user)) == env.user.id
    ended = await env.http.post("/end", headers=_bearer(env.user))
    assert ended.status_code == 200
    assert await _who(env, _bearer(env.user)) is None
