"""Framing and envelope rules of spec 3 and 4.1, checked with raw requests against the real dispatcher."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from dominus_fastapi.core import wire

from .conftest import Harness, envelope, error_code


def b64(text: str | bytes) -> bytes:
    return base64.b64encode(text.encode() if isinstance(text, str) else text)


async def test_success_is_framed_with_the_required_headers(server: Harness, token: str) -> None:
    response = await server.call("POST", "/api/probe/count", {"a": 1}, token=token)
    assert response.status_code == 200
    body = envelope(response)
    assert body == {"success": True, "data": {"run": 1, "body": {"a": 1}}}
    assert response.headers["content-type"] == "text/plain"
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "content",
    [
        b64('{"x": "y"}').rstrip(b"="),  # padding left out
        b"eyJ4\n IjogInki\r\n\tfQ==",  # whitespace and line breaks inside the base64
        b64('{\n  "x"  :\t"\\u0079"\n}'),  # any JSON spacing and \u escaping
    ],
)
async def test_tolerated_body_forms(server: Harness, token: str, content: bytes) -> None:
    response = await server.call("POST", "/api/probe/count", token=token, content=content)
    assert envelope(response)["data"]["body"] == {"x": "y"}


async def test_empty_body_is_an_empty_object(server: Harness, token: str) -> None:
    response = await server.call("POST", "/api/probe/count", token=token, content=b"")
    assert envelope(response)["data"]["body"] == {}


async def test_content_type_is_ignored(server: Harness, token: str) -> None:
    response = await server.call(
        "POST", "/api/probe/count", {"k": 1}, token=token, headers={"Content-Type": "application/json"}
    )
    assert envelope(response)["data"]["body"] == {"k": 1}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not base64 at all!", "base64"),
        (b64(b"\xff\xfe{}"), "UTF-8"),
        (b64("{oops"), "JSON"),
        (b64("[1, 2]"), "object"),
        (b64('"text"'), "object"),
        (b64("null"), "object"),
        (b64('{"a":' + "[" * 64 + "]" * 64 + "}"), "nested"),  # 65 levels
        (b64('{"a":' * 65 + "1" + "}" * 65), "nested"),  # 65 levels
    ],
)
async def test_rejected_bodies_are_invalid_body(server: Harness, token: str, content: bytes, reason: str) -> None:
    response = await server.call("POST", "/api/probe/count", token=token, content=content)
    assert response.status_code == 400
    body = envelope(response)
    assert body["code"] == "invalid_body"
    assert reason.lower() in body["error"].lower()
    assert server_runs(server) == 0


def server_runs(server: Harness) -> int:
    # The probe counts its runs; a rejected body must never reach it.
    return int(server.app.metrics.requests.get(("POST", "/api/probe/count", 200), 0))


async def test_sixty_four_levels_are_accepted(server: Harness, token: str) -> None:
    nested = '{"a":' * 64 + "1" + "}" * 64  # the top-level object is level 1: 64 objects, 64 levels
    response = await server.call("POST", "/api/probe/count", token=token, content=b64(nested))
    assert response.status_code == 200


async def test_sixteen_mebibyte_body_is_accepted(server: Harness, token: str) -> None:
    raw = wire.encode_body({"blob": "x" * (12 * 1024 * 1024)})
    assert len(raw) >= 16 * 1024 * 1024
    response = await server.call("POST", "/api/probe/count", token=token, content=raw)
    assert response.status_code == 200
    assert len(envelope(response)["data"]["body"]["blob"]) == 12 * 1024 * 1024


async def test_body_over_the_limit_is_413(server: Harness, token: str) -> None:
    raw = b"A" * (server.app.settings.max_body_bytes + 4)
    response = await server.call("POST", "/api/probe/count", token=token, content=raw)
    assert response.status_code == 413
    body = envelope(response)
    assert body["code"] == "payload_too_large"
    assert body["details"]["limit"] == server.app.settings.max_body_bytes


async def test_upload_route_allows_a_larger_body(server: Harness) -> None:
    settings = server.app.settings
    assert server.app._body_limit("/api/archivist/upload") >= settings.upload_max_bytes * 16 / 9
    assert server.app._body_limit("/api/warden/secrets") == settings.max_body_bytes


async def test_unknown_route_is_a_framed_404(server: Harness) -> None:
    for path in ("/api/nowhere", "/jwt/nowhere", "/api/"):
        response = await server.call("GET", path)
        assert response.status_code == 404
        assert error_code(response) == "not_found"


async def test_wrong_method_is_a_framed_405(server: Harness, token: str) -> None:
    response = await server.call("DELETE", "/jwt/jwks", token=token)
    assert response.status_code == 405
    assert error_code(response) == "method_not_allowed"
    assert response.headers["allow"] == "GET"


async def test_unframed_unknown_path_is_plain(server: Harness) -> None:
    response = await server.call("GET", "/favicon.ico")
    assert response.status_code == 404
    assert "cache-control" not in response.headers
    assert wire.parse_response_text(response.content) is None


async def test_request_id_is_echoed_or_created(server: Harness) -> None:
    given = await server.call("GET", "/api/health", headers={"X-Request-Id": "req-123"})
    assert given.headers["x-request-id"] == "req-123"
    fresh = await server.call("GET", "/api/health")
    assert len(fresh.headers["x-request-id"]) == 36
    on_error = await server.call("GET", "/api/missing", headers={"X-Request-Id": "req-404"})
    assert on_error.headers["x-request-id"] == "req-404"


async def test_unhandled_exception_is_500_without_details(
    server: Harness, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="dominus_local")
    response = await server.call("POST", "/api/probe/crash", token=token)
    assert response.status_code == 500
    body = envelope(response)
    assert body["code"] == "internal_error"
    assert "hunter2" not in response.text and "hunter2" not in json.dumps(body)
    assert "Traceback" not in body["error"]
    assert any("/api/probe/crash" in record.getMessage() for record in caplog.records)


async def test_database_errors_keep_bound_values_out_of_the_log(
    server: Harness, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # (aiosqlite's own DEBUG log prints every statement with its values)
    response = await server.call("POST", "/api/probe/db-crash", token=token)
    assert response.status_code == 500
    assert "hunter3-value" not in response.text
    assert caplog.records
    assert "hunter3-value" not in caplog.text


async def test_path_uuid_and_delete_query_parameters(server: Harness, token: str) -> None:
    bad = await server.call("PUT", "/api/probe/items/not-a-uuid", {}, token=token)
    assert bad.status_code == 404
    assert error_code(bad) == "not_found"
    item = "0b9c0b2e-1a6f-4d7e-9a55-2b7c5a0f1e11"
    merged = await server.call("DELETE", f"/api/probe/items/{item}", token=token, content=b"", params={"ids": "a,b"})
    assert envelope(merged)["data"] == {"id": item, "ids": ["a", "b"]}
    body_wins = await server.call(
        "DELETE", f"/api/probe/items/{item}", {"ids": ["c"]}, token=token, params={"ids": "a,b"}
    )
    assert envelope(body_wins)["data"]["ids"] == ["c"]
