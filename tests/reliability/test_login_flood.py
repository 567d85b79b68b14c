"""A sign-in flood against ``dominus-local serve`` (a real subprocess) while its health is polled.

200 concurrent sign-ins (wrong and right passwords, from 50 forwarded end-user addresses and from the
connection's own) at the real bcrypt cost of 12 used to queue behind one another until the health check
itself timed out (503 ``unhealthy``). With the bounded bcrypt pool and the limits of
:mod:`dominus_local.throttle`, the rule is:

- every health poll answers 200 within its budget (``HEALTH_BUDGET``), throughout the flood;
- every sign-in is answered 200, 401 or 429 (with ``Retry-After``): never a 5xx, never a transport error;
- the flood ends well within the test's time (each refused sign-in is answered at once, not queued).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx

from dominus_fastapi import Dominus
from dominus_fastapi.core.errors import AuthenticationError, DominusError, RateLimitError
from tests.reliability.ledger import TALLY, WATCH
from tests.servers import LocalServer

SUITE = "login flood"
LOGINS = 200
HEALTH_BUDGET = 5.0
"""Seconds a health answer may take under the flood: the budget of one of its probes (checked generously)."""
PASSWORD = WATCH.secret("flood-password-1")


async def test_health_stays_up_and_logins_are_answered_during_a_login_flood() -> None:
    env = {
        "DOMINUS_LOCAL_BCRYPT_ROUNDS": "10",  # a real cost (a quarter of the default 12) keeps it short
        "DOMINUS_LOCAL_RATE_LIMIT_ADDRESS_REQUESTS": "20",
        "DOMINUS_LOCAL_BCRYPT_MAX_WAITING": "4",
    }
    # A generous start budget: on a loaded machine the subprocess may take long to import and start.
    async with LocalServer(env=env, startup_timeout=90.0) as server:
        assert server.psk is not None
        WATCH.secret(server.psk)
        limits = httpx.Limits(max_connections=LOGINS + 10, max_keepalive_connections=LOGINS)
        http = httpx.AsyncClient(limits=limits, timeout=60.0)
        client = Dominus(base_url=server.url, token=server.psk, http_client=http, max_retries=0)
        try:
            tenant = await client.auth.create_tenant("Acme", "acme")
            for index in range(2):
                user = await client.auth.add_user(f"flood{index}", PASSWORD, email=f"flood{index}@example.com")
                await client.auth.add_user_tenants(user["id"], [tenant["id"]])
            outcomes: Counter[str] = Counter()
            health: list[tuple[int, float]] = []
            stop = asyncio.Event()

            async def poll_health() -> None:
                async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as probe:
                    while not stop.is_set():
                        started = time.perf_counter()
                        try:
                            status = (await probe.get("/api/health")).status_code
                        except httpx.TransportError:
                            status = 0
                        health.append((status, time.perf_counter() - started))
                        await asyncio.sleep(0.1)

            async def login(index: int) -> None:
                right = index % 4 == 0
                password = PASSWORD if right else f"wrong-{index:04d}"
                forwarded = f"198.51.100.{index % 50 + 1}" if index % 5 else None
                try:
                    session = await client.portal.login(f"flood{index % 2}", password, end_user_ip=forwarded)
                    WATCH.secret(session["access_token"])
                    outcomes["200"] += 1
                except AuthenticationError:
                    outcomes["401"] += 1
                except RateLimitError as exc:
                    outcomes["429" if exc.retry_after is not None else "429 without Retry-After"] += 1
                except DominusError as exc:
                    WATCH.capture_error(exc)
                    outcomes[f"{exc.status_code} {type(exc).__name__}"] += 1

            poller = asyncio.create_task(poll_health())
            await asyncio.sleep(0.3)
            started = time.perf_counter()
            await asyncio.gather(*(login(index) for index in range(LOGINS)))
            elapsed = time.perf_counter() - started
            await asyncio.sleep(0.3)
            stop.set()
            await poller
        finally:
            await client.aclose()
            await http.aclose()
        WATCH.capture("dominus-local serve output", server.output())

    for answer, count in outcomes.items():
        for _ in range(count):
            TALLY.record(SUITE, answer in ("200", "401", "429"), f"login answered {answer}")
    for status, seconds in health:
        TALLY.record(SUITE, status == 200 and seconds <= HEALTH_BUDGET, f"health {status} in {seconds:.2f} s")
    assert sum(outcomes.values()) == LOGINS
    assert set(outcomes) <= {"200", "401", "429"}, outcomes
    assert outcomes["200"] > 0 and outcomes["401"] > 0 and outcomes["429"] > 0, outcomes
    assert len(health) >= 3
    slow = [(status, round(seconds, 2)) for status, seconds in health if status != 200 or seconds > HEALTH_BUDGET]
    assert slow == []
    assert elapsed < 25, f"the flood took {elapsed:.1f} s"
