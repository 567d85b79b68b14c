"""Revocation across processes: two ``dominus-local serve`` processes on one PostgreSQL database, each answering
token checks from memory, with the Redis change feed and with PostgreSQL LISTEN/NOTIFY alone. A session ended,
a user deactivated or deleted, a client suspended through one process is refused by the other within the
documented bound (``revocation.STALE_SECONDS``), also while the other's feed is broken."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import httpx
import pytest
import redis.asyncio as aioredis

import dominus_fastapi.core.wire as wire
from dominus_fastapi import AuthenticationError, Dominus
from dominus_local import revocation
from tests.backends.conftest import client, require
from tests.conftest import CACHE_ENV
from tests.servers import LocalServer

BOUND = revocation.STALE_SECONDS
"""The documented bound: how late another process may still accept a revoked session or an inactive subject."""
PASSWORD = "correct horse battery"


@pytest.fixture(params=["redis", "postgresql"])
def feed_env(request: pytest.FixtureRequest, shared_env: dict[str, str]) -> dict[str, str]:
    """:func:`shared_env` with the Redis cache (Redis feed), or without it (LISTEN/NOTIFY feed)."""
    env = dict(shared_env)
    if request.param == "postgresql":
        del env["DOMINUS_LOCAL_CACHE_URL"]
    return env


@pytest.fixture
async def pair(tmp_path: Path, feed_env: dict[str, str]) -> AsyncIterator[tuple[LocalServer, LocalServer]]:
    """Two processes on one database, cache and bucket, with the same keys."""
    psk = secrets.token_hex(32)
    servers = [LocalServer(data_dir=tmp_path / "keys", psk=psk, env=feed_env, startup_timeout=60.0) for _ in "ab"]
    try:
        await asyncio.gather(*(server.__aenter__() for server in servers))
        yield servers[0], servers[1]
    finally:
        await asyncio.gather(*(asyncio.to_thread(server.stop) for server in servers))


@pytest.fixture
async def sdks(pair: tuple[LocalServer, LocalServer]) -> AsyncIterator[tuple[Dominus, Dominus]]:
    one, two = client(pair[0]), client(pair[1])
    yield one, two
    await one.aclose()
    await two.aclose()


async def _refused_within(refused: Callable[[], Awaitable[bool]], started: float) -> float:
    """Poll ``refused`` until it answers ``True``; every poll sent later than ``BOUND`` after ``started`` must be
    refused. Returns how long after ``started`` the refusal came."""
    while True:
        sent = time.monotonic()
        if await refused():
            return time.monotonic() - started
        assert sent - started <= BOUND, f"still accepted {sent - started:.3f} s after the revocation"
        await asyncio.sleep(0.005)


def _session_refused(sdk: Dominus, token: str) -> Callable[[], Awaitable[bool]]:
    async def refused() -> bool:
        try:
            await sdk.portal.me(user_token=token, max_retries=0)
        except AuthenticationError as exc:
            assert exc.status_code == 401
            return True
        return False

    return refused


async def _user_session(one: Dominus, two: Dominus, name: str) -> tuple[str, str]:
    """A user made through ``one``, signed in through ``two``: ``(user id, access token)``, its checks warmed
    up on ``two`` so that ``two`` answers them from memory."""
    user = await one.auth.create_user(name, f"{name}@example.com", password=PASSWORD)
    login = await two.portal.login(name, PASSWORD)
    token = login["access_token"]
    for _ in range(5):
        assert (await two.portal.me(user_token=token))["user"]["username"] == name
    return user["id"], token


async def test_a_logout_on_one_process_is_refused_by_the_other(sdks: tuple[Dominus, Dominus]) -> None:
    one, two = sdks
    _, token = await _user_session(one, two, "ada")
    started = time.monotonic()
    await one.portal.logout(user_token=token)
    await _refused_within(_session_refused(two, token), started)
    # And the process that ended it refuses it at once.
    with pytest.raises(AuthenticationError):
        await one.portal.me(user_token=token)


async def test_a_deactivated_or_deleted_user_is_refused_by_the_other_process(sdks: tuple[Dominus, Dominus]) -> None:
    one, two = sdks
    disabled_id, disabled = await _user_session(one, two, "grace")
    deleted_id, deleted = await _user_session(one, two, "alan")
    started = time.monotonic()
    await one.auth.update_user(disabled_id, status="suspended")
    await _refused_within(_session_refused(two, disabled), started)
    started = time.monotonic()
    await one.auth.delete_user(deleted_id)
    await _refused_within(_session_refused(two, deleted), started)


async def test_a_suspended_client_is_refused_by_the_other_process(
    pair: tuple[LocalServer, LocalServer], sdks: tuple[Dominus, Dominus]
) -> None:
    one, _ = sdks
    created = await one.auth.create_client("reporting")
    async with httpx.AsyncClient(base_url=pair[1].url) as http:
        minted = await http.post(
            "/jwt/mint",
            content=wire.encode_body({"method": "auth.self", "params": {}}),
            headers={"Authorization": f"Bearer {created['psk']}"},
        )
        assert minted.status_code == 200, minted.text
        service = {"Authorization": f"Bearer {wire.parse_response_text(minted.content)['data']['access_token']}"}
        for _ in range(5):
            assert (await http.get("/api/health/ping", headers=service)).status_code == 200

        async def refused() -> bool:
            status = (await http.get("/api/health/ping", headers=service)).status_code
            assert status in (200, 401)
            return status == 401

        started = time.monotonic()
        await one.auth.update_client(created["id"], status="inactive")
        await _refused_within(refused, started)


async def _break_feeds(env: dict[str, str]) -> int:
    """Close every change-feed connection of the test's servers, as a network fault would; returns how many."""
    if "DOMINUS_LOCAL_CACHE_URL" in env:
        redis = aioredis.Redis.from_url(require(CACHE_ENV))
        try:
            return int(await redis.client_kill_filter(_type="pubsub"))
        finally:
            await redis.aclose()
    url = env["DOMINUS_LOCAL_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = "
            "current_database()",
            revocation.FEED_APPLICATION_NAME,
        )
        return len(rows)
    finally:
        await conn.close()


async def test_a_revocation_while_the_feed_is_broken_is_still_refused(
    sdks: tuple[Dominus, Dominus], feed_env: dict[str, str]
) -> None:
    one, two = sdks
    _, token = await _user_session(one, two, "edsger")
    assert await _break_feeds(feed_env) == 2, "each process listens on one connection of its own"
    started = time.monotonic()
    await one.portal.logout(user_token=token)
    await _refused_within(_session_refused(two, token), started)
    # The feeds come back: sessions keep working and revocations keep reaching the other process.
    _, token = await _user_session(one, two, "barbara")
    started = time.monotonic()
    await one.portal.logout(user_token=token)
    await _refused_within(_session_refused(two, token), started)
