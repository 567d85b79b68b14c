"""Health (spec 7.11), cold start (6.5), fault injection (7.12) and ``GET /metrics``."""

from __future__ import annotations

import random
import re
from typing import Any

import httpx
import pytest

from dominus_fastapi.core.wire import PROTOCOL
from dominus_local.faults import ConnectionDropped
from dominus_local.services import health
from dominus_local.settings import LocalSettings
from dominus_local.state import LocalState

from .conftest import Harness, add_client, envelope, error_code, start

NINE = {"warden", "scribe", "whisperer", "archivist", "guardian", "smith", "herald", "portal", "courier"}


# --- health ------------------------------------------------------------------------------------------------


async def test_health_document(server: Harness) -> None:
    response = await server.call("GET", "/api/health", headers={"Authorization": "Bearer nonsense"})
    document = envelope(response)["data"]
    assert document["status"] == "healthy"
    assert document["protocol"] == PROTOCOL
    assert re.match(r"^\d+\.\d+", document["version"])
    assert set(document["services"]) == NINE
    for entry in document["services"].values():
        assert entry["status"] == "up"
        assert entry["latency_ms"] >= 0


async def test_ping_and_warmup_need_a_token(server: Harness, token: str) -> None:
    assert error_code(await server.call("GET", "/api/health/ping")) == "missing_token"
    assert envelope(await server.call("GET", "/api/health/ping", token=token))["data"] == {"status": "ok"}
    warm = envelope(await server.call("GET", "/api/health/warmup", token=token))["data"]
    assert warm["status"] == "warm"
    assert set(warm["services"]) == NINE
    assert warm["duration_ms"] >= 0


async def test_degraded_and_unhealthy(server: Harness, token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def degraded(state: LocalState) -> dict[str, Any]:
        return {"status": "degraded", "smtp": "unreachable"}

    async def broken(state: LocalState) -> str:
        raise ConnectionError("store gone")

    monkeypatch.setitem(health.PROBES, "courier", degraded)
    document = envelope(await server.call("GET", "/api/health"))["data"]
    assert document["status"] == "degraded"
    assert document["services"]["courier"] == {
        "status": "degraded",
        "smtp": "unreachable",
        "latency_ms": document["services"]["courier"]["latency_ms"],
    }

    monkeypatch.setitem(health.PROBES, "whisperer", broken)
    response = await server.call("GET", "/api/health")
    assert response.status_code == 503
    failure = envelope(response)
    assert failure["code"] == "service_unavailable"
    assert response.headers["retry-after"]
    assert failure["details"]["status"] == "unhealthy"
    assert failure["details"]["services"]["whisperer"]["status"] == "down"
    assert "store gone" not in response.text
    warm = await server.call("GET", "/api/health/warmup", token=token)
    assert warm.status_code == 503


def test_probes_are_only_for_known_services() -> None:
    async def probe(state: LocalState) -> str:
        return "up"

    with pytest.raises(ValueError):
        health.register_probe("nonsense", probe)


# --- cold start ----------------------------------------------------------------------------------------------


async def test_configured_cold_start_window() -> None:
    async for server in start(LocalSettings(bcrypt_rounds=4, cold_start_seconds=5)):
        response = await server.call("GET", "/api/health")
        assert response.status_code == 503
        failure = envelope(response)
        assert failure["code"] == "cold_start"
        assert response.headers["retry-after"] == "5"
        assert failure["details"]["status"] == "starting"
        assert set(failure["details"]["services"]) == NINE
        mint = await server.call("POST", "/jwt/mint", {"method": "auth.self"}, token=server.psk)
        assert error_code(mint) == "cold_start"
        assert "dominus_local_tokens_minted_total 0\n" in await server.metrics()
        server.clock.advance(3.5)
        assert (await server.call("GET", "/api/health")).headers["retry-after"] == "2"
        server.clock.advance(1.5)
        assert (await server.call("GET", "/api/health")).status_code == 200
        await server.mint()


async def test_injected_cold_start_spares_the_faults_endpoint(server: Harness, token: str) -> None:
    response = await server.call("POST", "/api/admin/faults", {"cold_start_seconds": 10}, token=token)
    assert envelope(response)["data"]["cold_start_seconds"] == 10
    assert error_code(await server.call("GET", "/api/health/ping", token=token)) == "cold_start"
    server.clock.advance(4)
    described = envelope(await server.call("GET", "/api/admin/faults", token=token))["data"]
    assert described["cold_start_seconds"] == 6
    await server.call("POST", "/api/admin/faults", {}, token=token)
    assert (await server.call("GET", "/api/health/ping", token=token)).status_code == 200


# --- faults ----------------------------------------------------------------------------------------------------


NEUTRAL = {
    "cold_start_seconds": 0,
    "latency_ms": 0,
    "error_rate": 0,
    "error_status": 503,
    "paths": None,
    "drop_after_read": False,
}


async def test_faults_start_neutral_and_are_replaced_as_a_whole(server: Harness, token: str) -> None:
    assert envelope(await server.call("GET", "/api/admin/faults", token=token))["data"] == NEUTRAL
    first = {"latency_ms": 5, "error_rate": 0.5, "error_status": 429, "paths": ["/api/warden"]}
    assert envelope(await server.call("POST", "/api/admin/faults", first, token=token))["data"] == {
        **NEUTRAL,
        **first,
    }
    second = envelope(await server.call("POST", "/api/admin/faults", {"latency_ms": 1}, token=token))["data"]
    assert second == {**NEUTRAL, "latency_ms": 1}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"error_status": 418}, "error_status"),
        ({"error_rate": 1.5}, "error_rate"),
        ({"error_rate": -0.1}, "error_rate"),
        ({"latency_ms": 60001}, "latency_ms"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"cold_start_seconds": -1}, "cold_start_seconds"),
        ({"paths": 5}, "paths"),
        ({"paths": ["api/warden"]}, "paths[0]"),
        ({"drop_after_read": "maybe"}, "drop_after_read"),
    ],
)
async def test_fault_validation(server: Harness, token: str, body: dict[str, Any], field: str) -> None:
    await server.call("POST", "/api/admin/faults", {"latency_ms": 7}, token=token)
    response = await server.call("POST", "/api/admin/faults", body, token=token)
    assert response.status_code == 400
    assert envelope(response)["details"]["field"] == field
    assert envelope(await server.call("GET", "/api/admin/faults", token=token))["data"]["latency_ms"] == 7


async def test_faults_are_admin_only(server: Harness) -> None:
    psk = "9" * 64
    await add_client(server, psk)
    plain = await server.mint(psk)
    for method in ("GET", "POST"):
        response = await server.call(method, "/api/admin/faults", {} if method == "POST" else None, token=plain)
        assert response.status_code == 403


@pytest.mark.parametrize(
    ("status", "code", "retry_after"),
    [
        (503, "service_unavailable", "1"),
        (429, "rate_limited", "1"),
        (500, "internal_error", None),
        (502, "upstream_error", None),
        (504, "upstream_timeout", None),
    ],
)
async def test_injected_errors_do_not_run_the_request(
    server: Harness, token: str, status: int, code: str, retry_after: str | None
) -> None:
    faults = {"error_rate": 1, "error_status": status, "paths": ["/api/warden/"]}
    await server.call("POST", "/api/admin/faults", faults, token=token)
    body = {"action": "create", "key": "K", "value": 1}
    response = await server.call("POST", "/api/warden/secrets", body, token=token)
    assert response.status_code == status
    assert error_code(response) == code
    assert response.headers.get("retry-after") == retry_after
    # Paths outside the prefixes are untouched, and the failed request never ran.
    assert (await server.call("GET", "/api/health/ping", token=token)).status_code == 200
    await server.call("POST", "/api/admin/faults", {}, token=token)
    listed = envelope(await server.call("POST", "/api/warden/secrets", {"action": "list"}, token=token))
    assert listed["data"]["secrets"] == []


async def test_error_rate_draws_per_request(server: Harness, token: str) -> None:
    server.app.faults.rng = random.Random(7)
    await server.call("POST", "/api/admin/faults", {"error_rate": 0.5, "paths": ["/api/health/ping"]}, token=token)
    statuses = [(await server.call("GET", "/api/health/ping", token=token)).status_code for _ in range(40)]
    expected_rng = random.Random(7)
    assert statuses == [503 if expected_rng.random() < 0.5 else 200 for _ in range(40)]
    assert {200, 503} == set(statuses)


async def test_latency_holds_the_answer(server: Harness, token: str) -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    server.app.faults.sleep = record
    await server.call("POST", "/api/admin/faults", {"latency_ms": 250, "paths": ["/api/health"]}, token=token)
    assert (await server.call("GET", "/api/health/ping", token=token)).status_code == 200
    await server.call("GET", "/api/admin/faults", token=token)  # never delayed
    assert waits == [0.25]


async def test_drop_after_read_runs_the_request_then_breaks_the_connection(server: Harness, token: str) -> None:
    await server.call(
        "POST", "/api/admin/faults", {"error_rate": 1, "drop_after_read": True, "paths": ["/api/warden"]}, token=token
    )
    body = {"action": "create", "key": "DROPPED", "value": "kept"}
    with pytest.raises(ConnectionDropped):
        await server.call("POST", "/api/warden/secrets", body, token=token, headers={"Idempotency-Key": "d1"})
    await server.call("POST", "/api/admin/faults", {}, token=token)
    got = envelope(await server.call("POST", "/api/warden/secrets", {"action": "get", "key": "DROPPED"}, token=token))
    assert got["data"]["secret"]["value"] == "kept"
    # The retry with the same key is answered from the store: applied exactly once.
    retry = await server.call("POST", "/api/warden/secrets", body, token=token, headers={"Idempotency-Key": "d1"})
    assert (retry.status_code, retry.headers["idempotent-replayed"]) == (200, "true")


async def test_faults_from_settings() -> None:
    settings = LocalSettings(bcrypt_rounds=4, fault_error_rate=1, fault_error_status=502, fault_paths=["/api/health/"])
    async for server in start(settings):
        token = await server.mint()
        assert (await server.call("GET", "/api/health/ping", token=token)).status_code == 502
        assert (await server.call("GET", "/api/health")).status_code == 200


# --- metrics -----------------------------------------------------------------------------------------------------


async def test_metrics_count_requests_by_route_template(server: Harness, token: str) -> None:
    item = "0b9c0b2e-1a6f-4d7e-9a55-2b7c5a0f1e11"
    await server.call("PUT", f"/api/probe/items/{item}", {}, token=token)
    await server.call("PUT", f"/api/probe/items/{item.replace('0', '1')}", {}, token=token)
    await server.call("GET", "/api/health/ping")
    await server.call("GET", "/api/nowhere")
    response = await server.http.get("/metrics", headers={"Authorization": "Bearer ignored"})
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert 'dominus_local_requests_total{method="PUT",route="/api/probe/items/{item_id}",status="200"} 2' in text
    assert 'dominus_local_requests_total{method="GET",route="/api/health/ping",status="401"} 1' in text
    assert 'dominus_local_requests_total{method="GET",route="<unmatched>",status="404"} 1' in text
    assert 'dominus_local_requests_total{method="POST",route="/jwt/mint",status="200"} 1' in text
    assert "dominus_local_tokens_minted_total 1\n" in text
    assert 'dominus_local_request_duration_seconds_count{route="/jwt/mint"} 1' in text
    for line in text.splitlines():
        assert line.startswith("#") or re.match(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)+\})? [0-9.e+-]+$', line), line


async def test_metrics_can_be_turned_off() -> None:
    async for server in start(LocalSettings(bcrypt_rounds=4, metrics_enabled=False)):
        response = await server.http.get("/metrics")
        assert response.status_code == 404
        assert response.text == "Not Found"


async def test_metrics_and_health_over_a_plain_client(server: Harness) -> None:
    assert isinstance(server.http, httpx.AsyncClient)
    assert (await server.http.post("/metrics")).status_code == 405
