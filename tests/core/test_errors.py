"""The error tree and its one mapper (spec 4.1, 4.2), checked on paper and against the real server."""

from __future__ import annotations

import pytest

from dominus_fastapi import (
    AuthenticationError,
    AuthorizationError,
    CircuitOpenError,
    ConflictError,
    Dominus,
    DominusConnectionError,
    DominusError,
    DominusTimeoutError,
    NotFoundError,
    RateLimitError,
    SecureTableError,
    ServiceError,
    ValidationError,
)
from dominus_fastapi.core.errors import error_from_response
from dominus_fastapi.core.wire import CODE_STATUS
from tests.conftest import InProcessServer

EXPECTED_BY_CODE: dict[str, type[DominusError]] = {
    "invalid_body": ValidationError,
    "validation_failed": ValidationError,
    "missing_token": AuthenticationError,
    "invalid_token": AuthenticationError,
    "token_expired": AuthenticationError,
    "session_revoked": AuthenticationError,
    "refresh_token_invalid": AuthenticationError,
    "refresh_token_expired": AuthenticationError,
    "invalid_credentials": AuthenticationError,
    "forbidden": AuthorizationError,
    "account_inactive": AuthorizationError,
    "secure_table_reason_required": SecureTableError,
    "not_found": NotFoundError,
    "method_not_allowed": DominusError,
    "request_timeout": DominusTimeoutError,
    "conflict": ConflictError,
    "retention_active": ConflictError,
    "idempotency_in_progress": ConflictError,
    "payload_too_large": ValidationError,
    "unprocessable": ValidationError,
    "idempotency_key_reused": ValidationError,
    "rate_limited": RateLimitError,
    "internal_error": ServiceError,
    "not_implemented": ServiceError,
    "upstream_error": ServiceError,
    "cold_start": ServiceError,
    "service_unavailable": ServiceError,
    "upstream_timeout": DominusTimeoutError,
}

EXPECTED_BY_STATUS: dict[int, type[DominusError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: AuthorizationError,
    404: NotFoundError,
    405: DominusError,
    408: DominusTimeoutError,
    409: ConflictError,
    413: ValidationError,
    422: ValidationError,
    429: RateLimitError,
    500: ServiceError,
    501: ServiceError,
    502: ServiceError,
    503: ServiceError,
    504: DominusTimeoutError,
    507: ServiceError,
    418: DominusError,
}


def test_every_code_of_the_spec_is_covered() -> None:
    assert set(EXPECTED_BY_CODE) == set(CODE_STATUS)


@pytest.mark.parametrize(("code", "expected"), sorted(EXPECTED_BY_CODE.items()))
def test_code_maps_to_class(code: str, expected: type[DominusError]) -> None:
    error = error_from_response(CODE_STATUS[code], code, "m", {"field": "x"}, "/api/x", request_id="r1")
    assert type(error) is expected
    assert (error.status_code, error.code) == (CODE_STATUS[code], code)
    assert (error.endpoint, error.request_id) == ("/api/x", "r1")
    assert error.details == {"field": "x"}


@pytest.mark.parametrize(("status", "expected"), sorted(EXPECTED_BY_STATUS.items()))
def test_status_maps_to_class_without_code(status: int, expected: type[DominusError]) -> None:
    assert type(error_from_response(status)) is expected
    assert type(error_from_response(status, "some_future_code")) is expected


def test_code_wins_over_status() -> None:
    assert type(error_from_response(403, "secure_table_reason_required")) is SecureTableError
    assert type(error_from_response(400, "not_found")) is NotFoundError


def test_message_defaults_and_str_format() -> None:
    error = error_from_response(404, "not_found", "Secret not found", None, "/api/warden/secrets")
    assert str(error) == "Secret not found (status 404, not_found) at /api/warden/secrets"
    assert str(NotFoundError()) == "Resource not found"
    assert str(DominusError("boom", 500)) == "boom (status 500)"
    assert str(DominusConnectionError(endpoint="/api/health")) == "Connection failed at /api/health"
    assert NotFoundError().details == {}
    assert CircuitOpenError().message == "Circuit open"


def test_retry_after_is_kept_where_the_spec_says() -> None:
    limited = error_from_response(429, "rate_limited", retry_after=3.0)
    assert isinstance(limited, RateLimitError) and limited.retry_after == 3.0
    unavailable = error_from_response(503, "service_unavailable", retry_after=2.0)
    assert isinstance(unavailable, ServiceError) and unavailable.retry_after == 2.0
    internal = error_from_response(500, "internal_error", retry_after=2.0)
    assert isinstance(internal, ServiceError) and internal.retry_after is None


def test_hierarchy_keeps_the_readme_classes_catchable() -> None:
    assert issubclass(RateLimitError, DominusError)
    assert issubclass(CircuitOpenError, DominusConnectionError)
    assert issubclass(SecureTableError, AuthorizationError)


# --- against the real server ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected", "code"),
    [
        (429, RateLimitError, "rate_limited"),
        (500, ServiceError, "internal_error"),
        (502, ServiceError, "upstream_error"),
        (503, ServiceError, "service_unavailable"),
        (504, DominusTimeoutError, "upstream_timeout"),
    ],
)
async def test_injected_statuses_map_to_classes(
    local_client: Dominus, status: int, expected: type[DominusError], code: str
) -> None:
    await local_client.request(
        "POST",
        "/api/admin/faults",
        body={"error_rate": 1, "error_status": status, "paths": ["/api/warden/"]},
    )
    with pytest.raises(DominusError) as info:
        await local_client.get("ANY", max_retries=0)
    assert type(info.value) is expected
    assert (info.value.status_code, info.value.code) == (status, code)
    assert info.value.endpoint == "/api/warden/secrets"
    assert info.value.request_id
    if status in (429, 503):
        assert info.value.retry_after == 1.0  # type: ignore[attr-defined]


async def test_real_failures_map_to_classes(local_server: InProcessServer, local_client: Dominus) -> None:
    d = local_client
    with pytest.raises(ValidationError) as bad:
        await d.request("POST", "/api/warden/secrets", body={"action": "explode"})
    assert (bad.value.status_code, bad.value.code) == (400, "validation_failed")

    with pytest.raises(AuthenticationError) as missing:
        await d.request("POST", "/api/warden/secrets", body={"action": "list"}, auth="none")
    assert (missing.value.status_code, missing.value.code) == (401, "missing_token")

    wrong = local_server.client(token="f" * 64)
    try:
        with pytest.raises(AuthenticationError) as refused:
            await wrong.get("X")
        assert (refused.value.status_code, refused.value.code) == (401, "invalid_credentials")
        assert refused.value.endpoint == "/jwt/mint"
        assert "f" * 64 not in str(refused.value) + repr(refused.value)
    finally:
        await wrong.aclose()

    with pytest.raises(AuthenticationError) as forged:
        await d.as_user("not.a.jwt").get("X")
    assert (forged.value.status_code, forged.value.code) == (401, "invalid_token")

    with pytest.raises(NotFoundError) as unknown:
        await d.request("GET", "/api/warden/nothing-here")
    assert (unknown.value.status_code, unknown.value.code) == (404, "not_found")

    with pytest.raises(DominusError) as method:
        await d.request("GET", "/api/warden/secrets", safe=True)
    assert type(method.value) is DominusError
    assert (method.value.status_code, method.value.code) == (405, "method_not_allowed")

    await d.upsert("TAKEN", 1)
    with pytest.raises(ConflictError) as conflict:
        await d.request("POST", "/api/warden/secrets", body={"action": "create", "key": "TAKEN", "value": 2})
    assert (conflict.value.status_code, conflict.value.code) == (409, "conflict")

    with pytest.raises(ValidationError) as too_large:
        await d.upsert("BIG", "x" * (65 * 1024))
    assert (too_large.value.status_code, too_large.value.code) == (413, "payload_too_large")

    await d.secrets.delete("TAKEN", idempotency_key="delete-once")
    with pytest.raises(ValidationError) as reused:
        await d.secrets.delete("OTHER", idempotency_key="delete-once")
    assert (reused.value.status_code, reused.value.code) == (422, "idempotency_key_reused")

    with pytest.raises(AuthorizationError) as forbidden:
        await d.request("POST", "/api/herald/log", body={"level": "info", "message": "m", "category": "audit.x"})
    assert (forbidden.value.status_code, forbidden.value.code) == (403, "forbidden")


BUILTIN_BASES: dict[type[DominusError], type[Exception] | None] = {
    DominusTimeoutError: TimeoutError,
    DominusConnectionError: ConnectionError,
    CircuitOpenError: ConnectionError,
    DominusError: None,
    AuthenticationError: None,
    AuthorizationError: None,
    SecureTableError: None,
    NotFoundError: None,
    ValidationError: None,
    ConflictError: None,
    ServiceError: None,
    RateLimitError: None,
}


@pytest.mark.parametrize("cls", BUILTIN_BASES, ids=lambda c: c.__name__)
def test_timeout_and_connection_errors_are_also_the_builtin_ones(cls: type[DominusError]) -> None:
    """``except TimeoutError`` (the reference README's form) and ``except ConnectionError`` catch them; every
    other class stays clear of ``OSError``; ``DominusError`` comes before the built-in in the MRO."""
    builtin = BUILTIN_BASES[cls]
    error = cls("boom", 504, {"field": "x"}, "/api/x", "upstream_timeout", request_id="r-1")
    if builtin is None:
        assert not isinstance(error, OSError)
    else:
        assert isinstance(error, builtin)
        mro = type(error).__mro__
        assert mro.index(DominusError) < mro.index(builtin)
    assert (error.message, error.status_code, error.details, error.endpoint) == ("boom", 504, {"field": "x"}, "/api/x")
    assert error.args == ("boom",) and str(error) == "boom (status 504, upstream_timeout) at /api/x"


@pytest.mark.parametrize(("status", "code"), [(504, None), (408, "request_timeout"), (504, "upstream_timeout")])
def test_the_mapper_gives_builtin_timeouts(status: int, code: str | None) -> None:
    error = error_from_response(status, code, "slow", endpoint="/api/x")
    try:
        raise error
    except TimeoutError as caught:  # the built-in
        assert caught is error and type(caught) is DominusTimeoutError
