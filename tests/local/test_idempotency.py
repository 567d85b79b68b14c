"""Idempotency keys (spec 6.3): replay, in progress, reuse, failures, exempt endpoints, scope, retention."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest

from dominus_local.settings import LocalSettings

from .conftest import Harness, add_client, envelope, error_code, start
from .probes import ProbeState


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


async def test_same_key_same_request_is_replayed(server: Harness, token: str, probe: Any) -> None:
    state: ProbeState = probe[1]
    first = await server.call("POST", "/api/probe/count", {"a": 1, "b": [1, 2]}, token=token, headers=key("k1"))
    assert "idempotent-replayed" not in first.headers
    # The same JSON with other key order and spacing has the same fingerprint.
    reformatted = base64.b64encode(b'{ "b" : [1,2],\n "a":1 }')
    second = await server.call("POST", "/api/probe/count", token=token, headers=key("k1"), content=reformatted)
    assert second.headers["idempotent-replayed"] == "true"
    assert second.status_code == 200
    assert second.content == first.content
    assert state.runs["count"] == 1


async def test_different_request_with_a_used_key_is_422(server: Harness, token: str, probe: Any) -> None:
    await server.call("POST", "/api/probe/count", {"a": 1}, token=token, headers=key("k2"))
    response = await server.call("POST", "/api/probe/count", {"a": 2}, token=token, headers=key("k2"))
    assert response.status_code == 422
    assert error_code(response) == "idempotency_key_reused"
    other_path = await server.call("POST", "/api/probe/reject", {"a": 1}, token=token, headers=key("k2"))
    assert error_code(other_path) == "idempotency_key_reused"
    assert probe[1].runs == {"count": 1}


async def test_running_key_is_409_with_retry_after(server: Harness, token: str, probe: Any) -> None:
    state: ProbeState = probe[1]
    running = asyncio.create_task(server.call("POST", "/api/probe/slow", {}, token=token, headers=key("k3")))
    await state.entered.wait()
    busy = await server.call("POST", "/api/probe/slow", {}, token=token, headers=key("k3"))
    assert busy.status_code == 409
    assert error_code(busy) == "idempotency_in_progress"
    assert busy.headers["retry-after"] == "1"
    state.release.set()
    done = await running
    assert envelope(done)["data"] == {"run": 1}
    replay = await server.call("POST", "/api/probe/slow", {}, token=token, headers=key("k3"))
    assert replay.headers["idempotent-replayed"] == "true"
    assert state.runs["slow"] == 1


async def test_client_errors_are_kept_and_replayed(server: Harness, token: str, probe: Any) -> None:
    first = await server.call("POST", "/api/probe/reject", {}, token=token, headers=key("k4"))
    assert first.status_code == 409
    second = await server.call("POST", "/api/probe/reject", {}, token=token, headers=key("k4"))
    assert (second.status_code, second.headers["idempotent-replayed"]) == (409, "true")
    assert envelope(second)["code"] == "conflict"
    assert probe[1].runs["reject"] == 1


async def test_server_errors_are_forgotten(server: Harness, token: str, probe: Any) -> None:
    state: ProbeState = probe[1]
    state.failures_left = 1
    failed = await server.call("POST", "/api/probe/flaky", {}, token=token, headers=key("k5"))
    assert failed.status_code == 503
    retried = await server.call("POST", "/api/probe/flaky", {}, token=token, headers=key("k5"))
    assert envelope(retried)["data"] == {"run": 2}
    assert "idempotent-replayed" not in retried.headers


async def test_crashes_are_forgotten(server: Harness, token: str, probe: Any) -> None:
    crashed = await server.call("POST", "/api/probe/crash", {}, token=token, headers=key("k6"))
    assert crashed.status_code == 500
    retried = await server.call("POST", "/api/probe/crash", {}, token=token, headers=key("k6"))
    assert envelope(retried)["data"] == {"run": 2}


async def test_exempt_endpoints_never_store(server: Harness, token: str, probe: Any) -> None:
    for _ in range(2):
        response = await server.call("POST", "/api/probe/credential", {}, token=token, headers=key("k7"))
        assert "idempotent-replayed" not in response.headers
    assert probe[1].runs["credential"] == 2
    # A malformed key is ignored there too.
    ignored = await server.call("POST", "/api/probe/credential", {}, token=token, headers={"Idempotency-Key": b"\xe9"})
    assert ignored.status_code == 200


async def test_get_ignores_the_key(server: Harness, token: str) -> None:
    for _ in range(2):
        response = await server.call("GET", "/api/probe/service", token=token, headers=key("k8"))
        assert "idempotent-replayed" not in response.headers


async def test_a_safe_post_ignores_the_key_and_records_nothing(server: Harness, token: str) -> None:
    from sqlalchemy import func, select

    from dominus_local.idempotency import idempotency_keys

    await server.call("POST", "/api/whisperer/set", {"logical_path": "k", "value": 1}, token=token)
    for _ in range(2):
        response = await server.call("POST", "/api/whisperer/get", {"logical_path": "k"}, token=token, headers=key("9"))
        assert response.status_code == 200
        assert "idempotent-replayed" not in response.headers
    # A malformed key on a read is ignored too, as on a GET.
    ignored = await server.call("POST", "/api/whisperer/get", {"logical_path": "k"}, token=token, headers=key("\t"))
    assert ignored.status_code == 200
    async with server.app.state.db.begin() as conn:
        assert (await conn.execute(select(func.count()).select_from(idempotency_keys))).scalar_one() == 0


@pytest.mark.parametrize("bad", [b"x" * 256, b"tab\there", "caf\u00e9".encode()])
async def test_malformed_keys_are_400(server: Harness, token: str, probe: Any, bad: bytes) -> None:
    response = await server.call("POST", "/api/probe/count", {}, token=token, headers={"Idempotency-Key": bad})
    assert response.status_code == 400
    assert envelope(response)["details"]["field"] == "Idempotency-Key"
    assert "count" not in probe[1].runs


async def test_keys_are_scoped_to_the_subject(server: Harness, token: str, probe: Any) -> None:
    psk = "a" * 64
    await add_client(server, psk)
    other = await server.mint(psk)
    one = await server.call("POST", "/api/probe/count", {}, token=token, headers=key("shared"))
    two = await server.call("POST", "/api/probe/count", {}, token=other, headers=key("shared"))
    assert envelope(one)["data"]["run"] == 1
    assert envelope(two)["data"]["run"] == 2
    assert "idempotent-replayed" not in two.headers


async def test_answers_are_kept_24_hours(server: Harness, token: str, probe: Any) -> None:
    await server.call("POST", "/api/probe/count", {}, token=token, headers=key("k9"))
    server.wall.advance(24 * 3600 - 60)
    token = await server.mint()  # the first token has expired by now
    kept = await server.call("POST", "/api/probe/count", {}, token=token, headers=key("k9"))
    assert kept.headers["idempotent-replayed"] == "true"
    server.wall.advance(120)
    token = await server.mint()
    fresh = await server.call("POST", "/api/probe/count", {}, token=token, headers=key("k9"))
    assert "idempotent-replayed" not in fresh.headers
    assert probe[1].runs["count"] == 2


async def test_keys_survive_a_restart(data_dir: Path) -> None:
    settings = LocalSettings(data_dir=data_dir, bcrypt_rounds=4)
    body = {"action": "create", "key": "ONCE", "value": 1}
    async for first in start(settings):
        token = await first.mint()
        created = await first.call("POST", "/api/warden/secrets", body, token=token, headers=key("restart"))
        assert created.status_code == 200
    async for second in start(settings):
        replay = await second.call("POST", "/api/warden/secrets", body, token=token, headers=key("restart"))
        assert replay.headers["idempotent-replayed"] == "true"
        assert json.loads(base64.b64decode(replay.content)) == json.loads(base64.b64decode(created.content))
