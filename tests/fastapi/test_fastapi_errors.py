"""Every SDK error class raised inside an endpoint becomes its documented status and body."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from dominus_fastapi import (
    AuthenticationError,
    AuthorizationError,
    CircuitOpenError,
    ConflictError,
    DominusConnectionError,
    DominusError,
    DominusTimeoutError,
    NotFoundError,
    RateLimitError,
    SecureTableError,
    ServiceError,
    ValidationError,
    dominus_lifespan,
    install_exception_handlers,
)
from dominus_fastapi.deps import AdminDep, SecretsDep
from dominus_fastapi.testing import APP_ORIGIN

SECRET_TEXT = "psk-0123456789abcdef-secret"

# (error, expected status, expected code, expected Retry-After)
CASES: list[tuple[DominusError, int, str, str | None]] = [
    (ValidationError("Field 'name' is required", 400, code="validation_failed"), 400, "validation_failed", None),
    (ValidationError("Body too large", 413, code="payload_too_large"), 413, "payload_too_large", None),
    (ValidationError("Unknown column 'x'", 422, code="unprocessable"), 422, "unprocessable", None),
    (ValidationError("Identifier is malformed"), 400, "validation_failed", None),
    (AuthenticationError("Token expired", 401, code="token_expired"), 401, "token_expired", None),
    (AuthorizationError("Admin only", 403, code="forbidden"), 403, "forbidden", None),
    (SecureTableError(None, 403, code="secure_table_reason_required"), 403, "secure_table_reason_required", None),
    (SecureTableError(), 403, "secure_table_reason_required", None),
    (NotFoundError("No such row", 404, code="not_found"), 404, "not_found", None),
    (ConflictError("Username taken", 409, code="conflict"), 409, "conflict", None),
    (RateLimitError("Slow down", 429, code="rate_limited", retry_after=2.5), 429, "rate_limited", "3"),
    (RateLimitError("Slow down", 429, code="rate_limited"), 429, "rate_limited", None),
    (ServiceError(f"boom {SECRET_TEXT}", 500, code="internal_error"), 502, "upstream_error", None),
    (ServiceError(f"bad gateway {SECRET_TEXT}", 502, code="upstream_error"), 502, "upstream_error", None),
    (
        ServiceError(f"down {SECRET_TEXT}", 503, code="service_unavailable", retry_after=7),
        503,
        "service_unavailable",
        "7",
    ),
    (DominusTimeoutError(f"slow {SECRET_TEXT}", 504, code="upstream_timeout"), 504, "upstream_timeout", None),
    (DominusTimeoutError(f"read timeout {SECRET_TEXT}"), 504, "upstream_timeout", None),
    (DominusConnectionError(f"refused {SECRET_TEXT}"), 502, "upstream_error", None),
    (CircuitOpenError(f"open {SECRET_TEXT}", retry_after=12.2), 503, "service_unavailable", "13"),
    (DominusError(f"undecodable {SECRET_TEXT}", 405, code="method_not_allowed"), 502, "upstream_error", None),
]


def _app_raising(error: DominusError) -> FastAPI:
    app = FastAPI()
    install_exception_handlers(app)

    @app.get("/fail")
    async def fail() -> None:
        raise error

    return app


@pytest.mark.parametrize(("error", "status", "code", "retry_after"), CASES, ids=lambda v: getattr(v, "__name__", None))
async def test_error_class_maps_to_status_and_body(
    error: DominusError, status: int, code: str, retry_after: str | None
) -> None:
    error.request_id = "req-123"
    transport = httpx.ASGITransport(app=_app_raising(error), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN) as http:
        response = await http.get("/fail")
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"detail", "code", "request_id"}
    assert body["code"] == code
    assert body["request_id"] == "req-123"
    assert response.headers.get("retry-after") == retry_after
    assert SECRET_TEXT not in response.text
    if status < 500:
        assert body["detail"] == error.message
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


def test_every_error_class_is_covered() -> None:
    classes = {type(error) for error, *_ in CASES}
    exported = {
        AuthenticationError, AuthorizationError, CircuitOpenError, ConflictError, DominusConnectionError,
        DominusError, DominusTimeoutError, NotFoundError, RateLimitError, SecureTableError, ServiceError,
        ValidationError,
    }
    assert classes == exported


async def test_real_backend_errors_go_through_the_handlers(dominus_base_url: str) -> None:
    """Errors raised by real calls against the backend: a missing secret, and an injected 429 and 503."""
    app = FastAPI(lifespan=dominus_lifespan(max_retries=0))
    install_exception_handlers(app)

    @app.get("/secret/{key}")
    async def read_secret(key: str, secrets: SecretsDep) -> Any:
        return await secrets.get(key)

    @app.post("/faults")
    async def faults(admin: AdminDep, status: int) -> Any:
        return await admin.set_faults(error_rate=1.0, error_status=status, paths=["/api/warden"])

    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN) as http:
            missing = await http.get("/secret/nope")
            assert missing.status_code == 404
            assert missing.json()["code"] == "not_found"
            assert missing.json()["request_id"]

            assert (await http.post("/faults", params={"status": 429})).status_code == 200
            limited = await http.get("/secret/nope")
            assert limited.status_code == 429
            assert limited.json()["code"] == "rate_limited"
            assert limited.headers["retry-after"] == "1"

            assert (await http.post("/faults", params={"status": 503})).status_code == 200
            unavailable = await http.get("/secret/nope")
            assert unavailable.status_code == 503
            assert unavailable.json() == {
                "detail": "The backend service is temporarily unavailable",
                "code": "service_unavailable",
                "request_id": unavailable.json()["request_id"],
            }
            assert unavailable.headers["retry-after"] == "1"
