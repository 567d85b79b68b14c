"""Session credentials used past their bounds: a rotated-out refresh cookie replayed after the rotation, and
permissions used after they were withdrawn (a scope taken from a role, a revoked session).

For the refresh cases the backend runs with a wall clock that is set 1000 s back while a user signs in, so the
access token it issues has already expired by the app's (real) clock while the refresh token is still good: the
app's middleware refreshes the session on the next request, as it does for a browser after 15 minutes.
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
from fastapi import Depends, FastAPI
from pydantic import SecretStr

from dominus_fastapi import (
    AuthenticationError,
    Dominus,
    dominus_lifespan,
    require_jwt,
    require_page_access,
    require_scopes,
    setup_dominus,
)
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


# --- permissions after they were withdrawn: the token's bound, and recheck=True ------------------------------------


def _guarded_app(clock: Callable[[], float]) -> FastAPI:
    """The same three guards twice: as they are (token claims, memos) and with ``recheck=True``."""
    app = FastAPI(lifespan=dominus_lifespan())
    setup_dominus(app, revalidate_interval=30, clock=clock)
    for prefix, recheck in (("/plain", False), ("/recheck", True)):

        @app.post(f"{prefix}/upload", dependencies=[Depends(require_scopes(UPLOAD_SCOPE, recheck=recheck))])
        async def upload() -> dict[str, bool]:
            return {"stored": True}

        @app.post(f"{prefix}/page")
        @require_page_access(UPLOAD_PAGE, clock=clock, recheck=recheck)
        async def page() -> dict[str, bool]:
            return {"stored": True}

        @app.get(f"{prefix}/read", dependencies=[Depends(require_jwt(recheck=recheck))])
        async def read() -> dict[str, bool]:
            return {"read": True}

    return app


UPLOAD_SCOPE = "uploads.write"
UPLOAD_PAGE = "/dashboard/uploads"
ROUTES = [("POST", "/upload"), ("POST", "/page"), ("GET", "/read")]


async def _uploader_role(dominus: Dominus) -> tuple[str, str]:
    """A role holding the upload scope, which also opens the upload page: ``(role_id, scope_id)``."""
    scope = await dominus.auth.create_scope(UPLOAD_SCOPE, "Upload")
    role = await dominus.auth.create_role("uploader")
    await dominus.auth.add_role_scopes(role["id"], [scope["id"]])
    page = await dominus.auth.create_page(UPLOAD_PAGE, "Uploads")
    await dominus.auth.add_page_scopes(page["id"], [scope["id"]])
    return str(role["id"]), str(scope["id"])


async def test_a_withdrawn_scope_is_refused_at_once_only_with_recheck(dominus: Dominus) -> None:
    """A scope taken from the user's role in Guardian: ``recheck=True`` refuses the next write (403); the plain
    scope guard keeps allowing it while the token lives (its documented bound, up to 900 s), the plain page
    guard for its ``cache_seconds``."""
    now = [1000.0]
    role_id, scope_id = await _uploader_role(dominus)
    user = await create_test_user(dominus, roles=["uploader"], tenants=["acme"])
    WATCH.secret(user.access_token)
    bearer = {"Authorization": f"Bearer {user.access_token}"}
    async with LifespanManager(_guarded_app(lambda: now[0])) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN, headers=bearer) as http:
            for method, route in ROUTES:
                for prefix in ("/plain", "/recheck"):
                    before = await http.request(method, prefix + route)
                    assert before.status_code == 200, (prefix, route, before.text)

            await dominus.auth.remove_role_scopes(role_id, [scope_id])
            for route, code in (("/upload", "missing_scope"), ("/page", "page_access_denied")):
                refused = await http.post("/recheck" + route)
                ok = refused.status_code == 403 and refused.json()["code"] == code
                assert TALLY.record("attacks: withdrawn access", ok, f"scope removed, recheck {route}"), refused.text
            assert (await http.get("/recheck/read")).status_code == 200  # the session itself is fine

            # The documented bounds of the plain guards: the token's scopes, the page answer's cache.
            assert (await http.post("/plain/upload")).status_code == 200
            assert (await http.post("/plain/page")).status_code == 200
            now[0] += 11  # past cache_seconds: the page guard asks Portal again
            assert (await http.post("/plain/page")).status_code == 403
            assert (await http.post("/plain/upload")).status_code == 200
        fresh = await dominus.portal.login(user.username, user.password)  # a new token carries current scopes
        WATCH.secret(str(fresh["access_token"]))
        renewed = {"Authorization": f"Bearer {fresh['access_token']}"}
        async with httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN, headers=renewed) as http:
            assert (await http.post("/plain/upload")).status_code == 403


async def test_an_ended_session_is_refused_at_once_only_with_recheck(dominus: Dominus) -> None:
    """A session revoked elsewhere: ``recheck=True`` refuses at once (401) and tells the middleware, which then
    refuses it on every route; before that, the plain guards let it through within ``revalidate_interval``."""
    now = [1000.0]
    await _uploader_role(dominus)
    failures: list[str] = []
    async with LifespanManager(_guarded_app(lambda: now[0])) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        for method, route in ROUTES:
            user = await create_test_user(dominus, roles=["uploader"], tenants=["acme"])
            WATCH.secret(user.access_token)
            bearer = {"Authorization": f"Bearer {user.access_token}"}
            async with httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN, headers=bearer) as http:
                assert (await http.request(method, "/plain" + route)).status_code == 200
                await dominus.portal.revoke_session(str(user.session_id), user_token=user.access_token)
                # Within revalidate_interval (30 s) and the page answer's cache_seconds (10 s): the plain
                # guards do not know yet.
                now[0] += 5
                within = await http.request(method, "/plain" + route)
                assert within.status_code == 200, within.text
                refused = await http.request(method, "/recheck" + route)
                ok = refused.status_code == 401 and refused.json()["code"] == "session_revoked"
                if not TALLY.record("attacks: withdrawn access", ok, f"session revoked, recheck {route}"):
                    failures.append(f"{route}: {refused.status_code} {refused.text}")
                # The recheck told this process's middleware: the plain route refuses the session now too.
                assert (await http.request(method, "/plain" + route)).status_code == 401
    assert failures == []
