"""Answers no ``dominus_local`` gives but proxies and older servers do (spec 3.2, 3.3, 5.2, 5.4, 10).

These are the faults a real server cannot produce, so respx stands in for the host here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx

from dominus_fastapi import (
    AuthenticationError,
    Dominus,
    DominusError,
    DominusSettings,
    NotFoundError,
    ServiceError,
)
from tests.conftest import make_fast

HOST = "http://legacy.test"
PSK = "k" * 64


def framed(payload: Any) -> bytes:
    return base64.b64encode(json.dumps(payload).encode())


@pytest.fixture
async def legacy() -> AsyncIterator[tuple[Dominus, respx.MockRouter]]:
    """A client of a host that answers plain JSON health (no protocol) and mints with ``data.token``."""
    with respx.mock(base_url=HOST, assert_all_called=False) as mock:
        mock.get("/api/health").respond(200, json={"status": "healthy"})
        mock.post("/jwt/mint").respond(
            200, content=framed({"success": True, "data": {"token": "a.b.c", "expires_in": 900}})
        )
        client = Dominus(base_url=HOST, token=PSK, settings=DominusSettings(cold_start_budget=0))
        make_fast(client)
        try:
            yield client, mock
        finally:
            await client.aclose()


async def test_plain_json_error_from_a_proxy(legacy: tuple[Dominus, respx.MockRouter]) -> None:
    client, mock = legacy
    mock.post("/api/warden/secrets").respond(502, json={"detail": "Bad gateway from the proxy"})
    with pytest.raises(ServiceError) as info:
        await client.get("K", max_retries=0)
    assert (info.value.message, info.value.status_code, info.value.code) == ("Bad gateway from the proxy", 502, None)


async def test_unreadable_error_body_keeps_500_characters(legacy: tuple[Dominus, respx.MockRouter]) -> None:
    client, mock = legacy
    mock.post("/api/warden/secrets").respond(404, text="<html>" + "x" * 2000)
    with pytest.raises(NotFoundError) as info:
        await client.get("K")
    assert info.value.message.startswith("<html>") and len(info.value.message) == 500


async def test_undecodable_success_is_an_error(legacy: tuple[Dominus, respx.MockRouter]) -> None:
    client, mock = legacy
    mock.post("/api/warden/secrets").respond(200, text="<html>maintenance</html>")
    with pytest.raises(DominusError) as info:
        await client.get("K")
    assert type(info.value) is DominusError and info.value.message == "Undecodable response"


async def test_failure_envelope_with_a_2xx_status(legacy: tuple[Dominus, respx.MockRouter]) -> None:
    client, mock = legacy
    route = mock.post("/api/warden/secrets")
    route.respond(200, content=framed({"success": False, "error": "Nope"}))
    with pytest.raises(DominusError) as plain:
        await client.get("K")
    assert type(plain.value) is DominusError and plain.value.message == "Nope"
    route.respond(200, content=framed({"success": False, "error": "Gone", "code": "not_found"}))
    with pytest.raises(NotFoundError):
        await client.get("K")


async def test_bare_key_set_and_token_fallback(legacy: tuple[Dominus, respx.MockRouter]) -> None:
    client, mock = legacy
    mock.get("/jwt/jwks").respond(200, json={"keys": [{"kid": "k1", "kty": "RSA"}]})
    assert await client.get_public_key() == {"keys": [{"kid": "k1", "kty": "RSA"}]}
    secrets = mock.post("/api/warden/secrets").respond(
        200, content=framed({"success": True, "data": {"secret": {"value": 42}}})
    )
    assert await client.get("K") == 42
    assert secrets.calls.last.request.headers["authorization"] == "Bearer a.b.c"


async def test_401_without_code_is_reminted_once(legacy: tuple[Dominus, respx.MockRouter]) -> None:
    client, mock = legacy
    route = mock.post("/api/warden/secrets").respond(401, json={"error": "Unauthorized"})
    with pytest.raises(AuthenticationError):
        await client.get("K")
    assert route.call_count == 2
    assert mock.routes[1].call_count == 2  # the mint: once, then once more after the 401


async def test_unsafe_post_is_not_retried_on_a_host_without_dominus_2(legacy: tuple[Dominus, respx.MockRouter]) -> None:
    client, mock = legacy
    route = mock.post("/api/warden/secrets").respond(503, json={"error": "Busy"}, headers={"Retry-After": "1"})
    with pytest.raises(ServiceError) as info:
        await client.secrets.delete("K")
    assert route.call_count == 1 and info.value.retry_after == 1.0
    assert client._transport.protocol is None
    with pytest.raises(ServiceError):
        await client.get("K")  # a safe POST is retried
    assert route.call_count == 4


async def test_dropped_connection_before_sending_is_retried_for_unsafe_calls(
    legacy: tuple[Dominus, respx.MockRouter],
) -> None:
    client, mock = legacy
    ok = httpx.Response(200, content=framed({"success": True, "data": {"deleted": True, "key": "K"}}))
    route = mock.post("/api/warden/secrets").mock(side_effect=[httpx.ConnectError("refused"), ok])
    assert await client.secrets.delete("K") == {"deleted": True, "key": "K"}
    keys = {call.request.headers["idempotency-key"] for call in route.calls}
    assert route.call_count == 2 and len(keys) == 1
