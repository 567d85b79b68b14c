"""Retries (spec 6.2), idempotency keys on retries (6.3), the circuit breaker (6.4) and cold start (6.5)."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from dominus_fastapi import (
    CircuitOpenError,
    Dominus,
    DominusConnectionError,
    DominusSettings,
    DominusTimeoutError,
    NotFoundError,
    RateLimitError,
    ServiceError,
)
from dominus_fastapi.core.resilience import CircuitBreaker, backoff_delay, parse_retry_after, retry_wait
from dominus_local.errors import ApiError
from dominus_local.routing import RequestContext, ServiceRouter
from tests.conftest import FakeClock, InProcessServer, make_fast

# --- a probe service on the real server: records what each attempt carried --------------------------------------

probe = ServiceRouter("probe")
ATTEMPTS: list[dict[str, Any]] = []
FAILURES_LEFT: dict[str, int] = {}


def _record(ctx: RequestContext, name: str) -> None:
    headers = ctx.request.headers
    ATTEMPTS.append(
        {
            "name": name,
            "idempotency_key": headers.get("idempotency-key"),
            "request_id": headers.get("x-request-id"),
            "user_agent": headers.get("user-agent"),
            "content_type": headers.get("content-type"),
            "authorization": headers.get("authorization"),
            "body": ctx.body,
            "query": dict(ctx.request.query_params),
            "cookie": headers.get("cookie"),
        }
    )


@probe.post("/api/probe/unsafe")
async def _unsafe(ctx: RequestContext) -> dict[str, Any]:
    _record(ctx, "unsafe")
    if FAILURES_LEFT.get("unsafe", 0) > 0:
        FAILURES_LEFT["unsafe"] -= 1
        raise ApiError("service_unavailable", "Try again", headers={"Retry-After": "1"})
    return {"ok": True}


@probe.get("/api/probe/query", auth="none")
async def _query(ctx: RequestContext) -> dict[str, Any]:
    _record(ctx, "query")
    return {"ok": True}


@probe.get("/api/probe/set-cookie", auth="none")
async def _set_cookie(ctx: RequestContext) -> dict[str, Any]:
    _record(ctx, "set-cookie")
    raise ApiError("not_found", "Nothing here", headers={"Set-Cookie": "sid=abc; Path=/"})


@probe.get("/api/probe/slow-down")
async def _slow_down(ctx: RequestContext) -> dict[str, Any]:
    _record(ctx, "slow-down")
    raise ApiError("rate_limited", "Slow down", headers={"Retry-After": str(FAILURES_LEFT.get("retry_after", 1))})


@probe.get("/api/probe/refuse")
async def _refuse(ctx: RequestContext) -> dict[str, Any]:
    _record(ctx, "refuse")
    raise ApiError("internal_error", "Broken")


@pytest.fixture
def extra_routers() -> list[Any]:
    ATTEMPTS.clear()
    FAILURES_LEFT.clear()
    return [probe]


class ScriptedRandom(random.Random):
    """Fault picks in a known order: each value is compared with ``error_rate``."""

    def __init__(self, values: list[float]) -> None:
        super().__init__(0)
        self.values = values

    def random(self) -> float:
        return self.values.pop(0) if self.values else 0.99


async def set_faults(client: Dominus, **faults: Any) -> None:
    await client.request("POST", "/api/admin/faults", body=faults)


# --- policy units ----------------------------------------------------------------------------------------------


def test_backoff_doubles_caps_and_jitters() -> None:
    assert [backoff_delay(n, uniform=lambda a, b: 1.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert backoff_delay(0, uniform=lambda a, b: a) == 0.25
    assert backoff_delay(10, uniform=lambda a, b: b) == 12.0
    assert all(0.25 <= backoff_delay(0) <= 0.75 for _ in range(100))


def test_retry_after_replaces_a_shorter_wait_and_caps() -> None:
    one = lambda a, b: 1.0  # noqa: E731
    assert retry_wait(0, None, uniform=one) == 0.5
    assert retry_wait(0, 5.0, uniform=one) == 5.0
    assert retry_wait(3, 1.0, uniform=one) == 4.0
    assert retry_wait(0, 60.0, uniform=one) == 60.0
    assert retry_wait(0, 61.0, uniform=one) is None


def test_parse_retry_after_seconds_and_dates() -> None:
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=20), usegmt=True), now=now.timestamp()) == 20.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_breaker_state_machine() -> None:
    clock = FakeClock(0.0)
    breaker = CircuitBreaker("orchestrator", clock=clock)
    for _ in range(4):
        breaker.before_request()
        breaker.record("failure")
    breaker.before_request()
    breaker.record("success")  # a success resets the count
    for _ in range(5):
        breaker.before_request()
        breaker.record("failure")
    with pytest.raises(CircuitOpenError) as info:
        breaker.before_request("/api/x")
    assert info.value.retry_after == 30.0 and info.value.endpoint == "/api/x"
    clock.advance(30)
    assert breaker.before_request() is True  # the probe
    with pytest.raises(CircuitOpenError):
        breaker.before_request()  # only one probe
    breaker.record("failure")
    with pytest.raises(CircuitOpenError):
        breaker.before_request()  # the failed probe opened it again
    clock.advance(30)
    breaker.before_request()
    breaker.record("neutral")  # an uncounted outcome frees the probe slot
    breaker.before_request()
    breaker.record("success")
    assert breaker.state == "closed"
    breaker.before_request()


# --- retries against the real server --------------------------------------------------------------------------


async def test_unsafe_retry_keeps_key_and_request_id(local_client: Dominus) -> None:
    FAILURES_LEFT["unsafe"] = 2
    assert await local_client.request("POST", "/api/probe/unsafe", body={"n": 1}) == {"ok": True}
    attempts = [a for a in ATTEMPTS if a["name"] == "unsafe"]
    assert len(attempts) == 3
    assert len({a["idempotency_key"] for a in attempts}) == 1
    assert attempts[0]["idempotency_key"] is not None
    assert len({a["request_id"] for a in attempts}) == 1
    assert attempts[0]["user_agent"].startswith("dominus-fastapi/") and " python/" in attempts[0]["user_agent"]
    assert attempts[0]["content_type"] == "text/plain"
    assert attempts[0]["body"] == {"n": 1}


async def test_caller_key_and_max_retries_are_honoured(local_client: Dominus) -> None:
    FAILURES_LEFT["unsafe"] = 5
    with pytest.raises(ServiceError) as info:
        await local_client.request("POST", "/api/probe/unsafe", idempotency_key="my-key-1", max_retries=1)
    assert info.value.retry_after == 1.0
    attempts = [a for a in ATTEMPTS if a["name"] == "unsafe"]
    assert [a["idempotency_key"] for a in attempts] == ["my-key-1", "my-key-1"]
    assert attempts[0]["body"] == {}


async def test_unsafe_is_not_retried_after_send_when_the_host_does_not_honour_keys(local_client: Dominus) -> None:
    await local_client.health.ping()
    local_client._transport.protocol = None  # a host that never said it speaks dominus-2
    FAILURES_LEFT["unsafe"] = 1
    with pytest.raises(ServiceError):
        await local_client.request("POST", "/api/probe/unsafe")
    assert len([a for a in ATTEMPTS if a["name"] == "unsafe"]) == 1


async def test_other_errors_are_not_retried(local_client: Dominus) -> None:
    with pytest.raises(ServiceError):
        await local_client.request("GET", "/api/probe/refuse", safe=True)
    assert len([a for a in ATTEMPTS if a["name"] == "refuse"]) == 1


async def test_retry_after_beyond_the_cap_raises_at_once(local_client: Dominus) -> None:
    FAILURES_LEFT["retry_after"] = 120
    with pytest.raises(RateLimitError) as info:
        await local_client.request("GET", "/api/probe/slow-down", safe=True)
    assert info.value.retry_after == 120.0
    assert len([a for a in ATTEMPTS if a["name"] == "slow-down"]) == 1


async def test_retry_after_within_the_cap_is_waited(local_server: InProcessServer) -> None:
    client = local_server.client()
    sleep = make_fast(client)
    FAILURES_LEFT["retry_after"] = 7
    try:
        with pytest.raises(RateLimitError):
            await client.request("GET", "/api/probe/slow-down", safe=True)
        assert sleep.waits[-2:] == [7.0, 7.0]
        assert len([a for a in ATTEMPTS if a["name"] == "slow-down"]) == 3
    finally:
        await client.aclose()


async def test_get_query_is_encoded_and_auth_none_sends_no_credential(local_client: Dominus) -> None:
    params = {"flag": True, "off": False, "items": ["a", "b c"], "name": "x&y=z", "skip": None}
    await local_client.request("GET", "/api/probe/query", params=params, auth="none", safe=True)
    (attempt,) = [a for a in ATTEMPTS if a["name"] == "query"]
    assert attempt["query"] == {"flag": "true", "off": "false", "items": "a,b c", "name": "x&y=z"}
    assert attempt["authorization"] is None
    assert attempt["idempotency_key"] is None
    assert attempt["content_type"] is None


async def test_set_cookie_is_ignored(embedded: Dominus, local_client: Dominus) -> None:
    with pytest.raises(NotFoundError):
        await local_client.request("GET", "/api/probe/set-cookie", auth="none", safe=True)
    with pytest.raises(NotFoundError):
        await local_client.request("GET", "/api/probe/set-cookie", auth="none", safe=True)
    assert [a["cookie"] for a in ATTEMPTS if a["name"] == "set-cookie"] == [None, None]
    for client in (embedded, Dominus(base_url="http://127.0.0.1:9")):
        assert len(client._transport.http.cookies.jar) == 0
        client._transport.http.cookies.extract_cookies(
            httpx.Response(200, headers={"Set-Cookie": "sid=1; Path=/"}, request=httpx.Request("GET", "http://x/"))
        )
        assert len(client._transport.http.cookies.jar) == 0


async def test_attempt_timeouts_raise_timeout_errors(embedded: Dominus) -> None:
    await embedded.upsert("SLOW", 1)
    await set_faults(embedded, latency_ms=5000, paths=["/api/warden/"])
    with pytest.raises(DominusTimeoutError) as info:
        await embedded.get("SLOW", timeout=0.05, max_retries=1)
    assert info.value.status_code is None and info.value.endpoint == "/api/warden/secrets"
    await set_faults(embedded)
    assert await embedded.get("SLOW") == 1


def test_per_attempt_timeouts_follow_the_spec() -> None:
    transport = Dominus(
        base_url="http://127.0.0.1:9", settings=DominusSettings(timeout=20, connect_timeout=4)
    )._transport
    cases = {
        ("/api/warden/secrets", None, False): 20,
        ("/api/archivist/upload", None, True): 120,
        ("/jwt/mint", None, False): 30,
        ("/jwt/jwks", None, False): 10,
        ("/api/health", None, False): 15,
        ("/api/warden/secrets", 2.5, True): 2.5,
    }
    for (path, override, transfer), expected in cases.items():
        timeout = transport._per_attempt_timeout(path, override, transfer)
        assert timeout.read == expected and timeout.connect == min(expected, 4)


# --- dropped connections and exactly-once -----------------------------------------------------------------------


async def test_dropped_unsafe_post_is_retried_with_its_key_and_applied_once(
    local_server: InProcessServer, local_client: Dominus
) -> None:
    await local_client.upsert("COUNTED", "v1")
    await set_faults(local_client, error_rate=0.5, drop_after_read=True, paths=["/api/warden/secrets"])
    local_server.local.faults.rng = ScriptedRandom([0.0])  # the first request is run, then dropped
    record = await local_client.upsert("COUNTED", "v2")
    assert record["operation"] == "updated"
    assert record["version"] == 2
    await set_faults(local_client)
    listed = await local_client.secrets.list(prefix="COUNTED")
    assert listed[0]["version"] == 2
    assert await local_client.get("COUNTED") == "v2"


async def test_dropped_unsafe_post_without_honoured_keys_is_not_retried(
    local_server: InProcessServer, local_client: Dominus
) -> None:
    await local_client.upsert("ONCE", "v1")
    local_client._transport.protocol = None
    await set_faults(local_client, error_rate=0.5, drop_after_read=True, paths=["/api/warden/secrets"])
    local_server.local.faults.rng = ScriptedRandom([0.0])
    with pytest.raises(DominusConnectionError) as info:
        await local_client.upsert("ONCE", "v2")
    assert info.value.status_code is None
    await set_faults(local_client)
    assert (await local_client.secrets.list(prefix="ONCE"))[0]["version"] == 2  # applied exactly once


async def test_dropped_safe_request_is_retried(local_server: InProcessServer, local_client: Dominus) -> None:
    await local_client.upsert("READ", "v")
    local_client._transport.protocol = None
    await set_faults(local_client, error_rate=0.5, drop_after_read=True, paths=["/api/warden/secrets"])
    local_server.local.faults.rng = ScriptedRandom([0.0, 0.0])
    assert await local_client.get("READ") == "v"


# --- circuit breaker against the real server ---------------------------------------------------------------------


async def test_breaker_opens_fails_fast_probes_and_closes(local_server: InProcessServer, psk: str) -> None:
    client = local_server.client(max_retries=0)
    clock = FakeClock(0.0)
    make_fast(client, clock=clock)
    admin = local_server.client()
    make_fast(admin)
    try:
        await client.secrets.list()  # warm: the cold-start window is over
        await set_faults(admin, error_rate=1, error_status=502, paths=["/api/warden/"])
        for _ in range(5):
            with pytest.raises(ServiceError):
                await client.secrets.list()
        seen = local_server.requests_to("/api/warden/secrets")
        with pytest.raises(CircuitOpenError) as info:
            await client.secrets.list()
        assert info.value.retry_after == pytest.approx(30.0)
        assert info.value.status_code is None
        assert local_server.requests_to("/api/warden/secrets") == seen  # nothing was sent

        clock.advance(30)
        with pytest.raises(ServiceError):
            await client.secrets.list()  # the probe fails: open again
        with pytest.raises(CircuitOpenError):
            await client.secrets.list()

        await set_faults(admin, latency_ms=50)  # the server recovers (slowly)
        clock.advance(30)
        outcomes = await asyncio.gather(*(client.secrets.list() for _ in range(3)), return_exceptions=True)
        assert sum(1 for o in outcomes if o == []) == 1  # exactly one probe let through
        assert sum(1 for o in outcomes if isinstance(o, CircuitOpenError)) == 2
        assert client._transport.breakers["orchestrator"].state == "closed"
        assert await client.secrets.list() == []
    finally:
        await client.aclose()
        await admin.aclose()


async def _four_failures_in_a_row(client: Dominus, admin: Dominus) -> None:
    """Bring ``client``'s orchestrator breaker to one failure short of opening."""
    await client.secrets.list()  # warm: the cold-start window is over
    await set_faults(admin, error_rate=1, error_status=502, paths=["/api/warden/"])
    for _ in range(4):
        with pytest.raises(ServiceError):
            await client.secrets.list(max_retries=0)
    assert client._transport.breakers["orchestrator"].state == "closed"


async def test_a_write_whose_answer_was_lost_is_not_reported_as_never_sent(
    local_server: InProcessServer,
) -> None:
    """The write runs, its answer is lost, that fifth failure opens the breaker: the refused retry must not
    raise CircuitOpenError ("nothing was sent"), but the unknown-outcome error of the lost answer."""
    client = local_server.client()
    clock = FakeClock(0.0)
    make_fast(client, clock=clock)
    admin = local_server.client()
    make_fast(admin)
    try:
        await client.upsert("LOST_ANSWER", "v1")
        await _four_failures_in_a_row(client, admin)
        await set_faults(admin, error_rate=1, drop_after_read=True, paths=["/api/warden/secrets"])
        with pytest.raises(DominusConnectionError) as info:
            await client.upsert("LOST_ANSWER", "v2", idempotency_key="lost-answer-1")
        assert not isinstance(info.value, CircuitOpenError)
        assert info.value.status_code is None and "RemoteProtocolError" in info.value.message
        assert isinstance(info.value.__cause__, CircuitOpenError)  # why it was not retried
        assert client._transport.breakers["orchestrator"].state == "open"

        await set_faults(admin)
        assert (await admin.secrets.list(prefix="LOST_ANSWER"))[0]["version"] == 2  # stored exactly once
        assert await admin.get("LOST_ANSWER") == "v2"
        clock.advance(30)  # the breaker lets a probe through: the same key replays the stored answer
        replayed = await client.upsert("LOST_ANSWER", "v2", idempotency_key="lost-answer-1")
        assert (replayed["operation"], replayed["version"]) == ("updated", 2)
        assert (await admin.secrets.list(prefix="LOST_ANSWER"))[0]["version"] == 2
    finally:
        await set_faults(admin)
        await client.aclose()
        await admin.aclose()


async def test_a_write_answered_5xx_then_refused_by_the_breaker_raises_the_5xx(
    local_server: InProcessServer,
) -> None:
    """A 503 leaves the write's outcome unknown too (spec 4.1): the refused retry raises that answer."""
    client = local_server.client()
    make_fast(client, clock=FakeClock(0.0))
    admin = local_server.client()
    make_fast(admin)
    try:
        await _four_failures_in_a_row(client, admin)
        FAILURES_LEFT["unsafe"] = 1
        with pytest.raises(ServiceError) as info:
            await client.request("POST", "/api/probe/unsafe", body={"n": 1})
        assert (info.value.status_code, info.value.code) == (503, "service_unavailable")
        assert isinstance(info.value.__cause__, CircuitOpenError)
        assert len([a for a in ATTEMPTS if a["name"] == "unsafe"]) == 1  # sent once, not retried
        with pytest.raises(CircuitOpenError):  # a call that sends nothing still says so
            await client.request("POST", "/api/probe/unsafe", body={"n": 2})
        assert len([a for a in ATTEMPTS if a["name"] == "unsafe"]) == 1
    finally:
        await set_faults(admin)
        await client.aclose()
        await admin.aclose()


# --- cold start ------------------------------------------------------------------------------------------------


async def test_cold_start_is_ridden_out_within_the_budget(local_server: InProcessServer) -> None:
    admin = local_server.client()
    make_fast(admin)
    await set_faults(admin, cold_start_seconds=4)
    client = local_server.client()
    clock = FakeClock(0.0)
    sleep = make_fast(client, clock=clock)
    sleep.clocks = (clock, local_server.clock)  # waiting moves the server's clock too
    try:
        await client.upsert("AFTER_COLD", 1)
        assert 4 <= sum(sleep.waits) < 30
        assert client._transport.breakers["orchestrator"].failures == 0  # not counted in the window
        assert await client.get("AFTER_COLD") == 1
    finally:
        await client.aclose()
        await admin.aclose()


async def test_cold_start_beyond_the_budget_raises(local_server: InProcessServer) -> None:
    admin = local_server.client()
    make_fast(admin)
    await set_faults(admin, cold_start_seconds=45)
    client = local_server.client(settings=DominusSettings(cold_start_budget=10))
    clock = FakeClock(0.0)
    sleep = make_fast(client, clock=clock)
    sleep.clocks = (clock, local_server.clock)
    try:
        with pytest.raises(ServiceError) as info:
            await client.secrets.list()
        assert info.value.code == "cold_start"
        assert info.value.endpoint == "/api/health"
        assert sum(sleep.waits) == pytest.approx(10.0)  # Retry-After 45, cut to the budget left
        assert info.value.retry_after is not None and info.value.retry_after > 30
    finally:
        await set_faults(admin)
        await client.aclose()
        await admin.aclose()


async def test_cold_start_asking_beyond_the_cap_is_not_waited(local_server: InProcessServer) -> None:
    admin = local_server.client()
    make_fast(admin)
    await set_faults(admin, cold_start_seconds=100)
    client = local_server.client()
    sleep = make_fast(client, clock=FakeClock(0.0))
    try:
        with pytest.raises(ServiceError) as info:
            await client.secrets.list()
        assert info.value.code == "cold_start" and sleep.waits == []
    finally:
        await set_faults(admin)
        await client.aclose()
        await admin.aclose()


async def test_connection_refused_is_retried_in_the_budget_then_raises() -> None:
    client = Dominus(base_url="http://127.0.0.1:9", token="p" * 64, settings=DominusSettings(cold_start_budget=5))
    clock = FakeClock(0.0)
    sleep = make_fast(client, clock=clock)
    try:
        with pytest.raises(DominusConnectionError) as info:
            await client.secrets.list()
        assert info.value.status_code is None
        assert sum(sleep.waits) == pytest.approx(5.0)
        assert client._transport.pool_connections() == 0
        assert "p" * 64 not in str(info.value)
    finally:
        await client.aclose()
