"""Session credentials used past their bounds: a rotated-out refresh cookie replayed after the rotation.

The backend runs with a wall clock that is set 1000 s back while a user signs in, so the access token it
issues has already expired by the app's (real) clock while the refresh token is still good: the app's
middleware refreshes the session on the next request, as it does for a browser after 15 minutes.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from dominus_fastapi import AuthenticationError, Dominus, dominus_lifespan
from dominus_fastapi.testing import APP_ORIGIN, TestUser, create_test_user
from dominus_local import LocalSettings, create_app
from tests.fastapi.apps import build_app
from tests.reliability.ledger import TALLY, WATCH


@dataclass
class Backdated:
    """A backend whose sign-ins issue already expired access tokens, and an app bound to it."""

    admin: Dominus
    app: Any
    wall: list[float]

    async def expired_session(self, **options: Any) -> TestUser:
        """A new user signed in 1000 s ago: the access token has expired, the refresh token is good."""
        self.wall[0] = time.time() - 1000
        try:
            user = await create_test_user(self.admin, **options)
        finally:
            self.wall[0] = time.time()
        for token in (user.access_token, user.refresh_token or ""):
            WATCH.secret(token)
        return user

    def browser(self, cookies: dict[str, str]) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=APP_ORIGIN, cookies=cookies)


@asynccontextmanager
async def backdated() -> AsyncIterator[Backdated]:
    psk = secrets.token_hex(32)
    wall = [time.time()]
    server = create_app(LocalSettings(psk=SecretStr(psk), bcrypt_rounds=4), wall_clock=lambda: wall[0])
    async with LifespanManager(server) as backend:
        backend_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=backend.app))
        options: dict[str, Any] = {"base_url": "http://dominus.test", "token": psk, "http_client": backend_http}
        try:
            async with Dominus(**options) as admin:
                app = build_app()
                app.router.lifespan_context = dominus_lifespan(**options)
                async with LifespanManager(app) as manager:
                    yield Backdated(admin, manager.app, wall)
        finally:
            await backend_http.aclose()


def _new_cookies(response: httpx.Response) -> dict[str, str]:
    """The cookie values a response sets (empty values: cleared)."""
    found = {}
    for value in response.headers.get_list("set-cookie"):
        name, _, rest = value.partition("=")
        found[name] = rest.split(";", 1)[0].strip('"')
    return found


# What a thief holds besides the rotated-out refresh cookie, as a function of (victim, thief's own user).
REPLAYS: Sequence[tuple[str, Callable[[TestUser, TestUser], dict[str, str]]]] = [
    ("the refresh cookie alone", lambda victim, own: {}),
    ("with an empty session cookie", lambda victim, own: {"dominus_session": ""}),
    ("with the thief's own expired session cookie", lambda victim, own: {"dominus_session": own.access_token}),
    ("with a forged session cookie", lambda victim, own: {"dominus_session": "e30.e30.c2ln"}),
]


async def test_a_rotated_out_refresh_cookie_alone_gets_no_session() -> None:
    """After the victim's browser refreshed, the old refresh cookie without the victim's old access cookie gets
    nothing: no session on a guarded route, no new cookies; the server sees a reuse and ends the session."""
    failures: list[str] = []
    async with backdated() as env:
        for name, extra in REPLAYS:
            victim = await env.expired_session(tenants=["acme"])
            own = await env.expired_session(tenants=["acme"])
            old = {"dominus_session": victim.access_token, "dominus_refresh": victim.refresh_token or ""}
            async with env.browser(old) as browser:
                first = await browser.get("/whoami")
                rotated = _new_cookies(first)
            assert first.status_code == 200, first.text
            assert rotated["dominus_refresh"] not in ("", victim.refresh_token)
            WATCH.secret(rotated["dominus_session"])
            WATCH.secret(rotated["dominus_refresh"])

            async with env.browser({"dominus_refresh": victim.refresh_token or "", **extra(victim, own)}) as thief:
                guarded = await thief.get("/whoami")
                session = await thief.get("/session")
            handed = _new_cookies(guarded) | _new_cookies(session)
            ok = (
                guarded.status_code == 401
                and session.json()["signed_in"] is False
                and not handed.get("dominus_session")
                and rotated["dominus_session"] not in guarded.text + session.text
            )
            if not TALLY.record("attacks: refresh replay", ok, f"{name}: {guarded.status_code} {sorted(handed)}"):
                failures.append(f"{name}: {guarded.status_code}, cookies {sorted(handed)}")
            if name == "the refresh cookie alone":
                # Reuse detection (spec 5.7): the replay ended the session, also for the rotated tokens.
                with pytest.raises(AuthenticationError) as info:
                    await env.admin.portal.me(user_token=rotated["dominus_session"])
                assert info.value.code == "session_revoked"
    assert failures == []


async def test_the_same_cookie_pair_still_shares_the_refresh() -> None:
    """The legitimate side of the bound: parallel requests with the old pair, and a late one that the browser
    sent before it had the new cookies, all get the one refreshed session, which lives on."""
    async with backdated() as env:
        victim = await env.expired_session(tenants=["acme"])
        old = {"dominus_session": victim.access_token, "dominus_refresh": victim.refresh_token or ""}
        async with env.browser(old) as tab_a, env.browser(old) as tab_b:
            answers = await asyncio.gather(*(tab.get("/whoami") for tab in (tab_a, tab_b) for _ in range(4)))
        async with env.browser(old) as straggler:  # sent before the browser stored the new cookies
            late = await straggler.get("/whoami")
        for response in [*answers, late]:
            ok = response.status_code == 200 and response.json()["id"] == victim.id
            assert TALLY.record("attacks: refresh replay", ok, f"same pair: {response.status_code}"), response.text
        rotated = {_new_cookies(response)["dominus_refresh"] for response in [*answers, late]}
        assert len(rotated) == 1  # one refresh, shared by the nine
        me = await env.admin.portal.me(user_token=_new_cookies(late)["dominus_session"])
        assert me["session_id"] == victim.session_id  # no reuse was seen: the session lives
