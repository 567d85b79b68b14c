"""The SDK's error tree (spec 4.2) and the one function that maps an answer to a class."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from dominus_fastapi.core.wire import CODE_STATUS

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "CircuitOpenError",
    "ConflictError",
    "DominusConnectionError",
    "DominusError",
    "DominusTimeoutError",
    "NotFoundError",
    "RateLimitError",
    "SecureTableError",
    "ServiceError",
    "ValidationError",
    "error_from_response",
]


class DominusError(Exception):
    """Base of every SDK error.

    ``status_code`` is ``None`` when there was no HTTP response; ``details`` is always a dict; ``endpoint`` is
    the request path without its query; ``code`` is the server's machine code (``None`` for servers that send
    none); ``request_id`` is the ``X-Request-Id`` of the call.
    """

    default_message: ClassVar[str] = "Dominus request failed"

    def __init__(
        self,
        message: str | None = None,
        status_code: int | None = None,
        details: Mapping[str, Any] | None = None,
        endpoint: str | None = None,
        code: str | None = None,
        *,
        request_id: str | None = None,
    ) -> None:
        self.message: str = message or self.default_message
        self.status_code = status_code
        self.details: dict[str, Any] = dict(details or {})
        self.endpoint = endpoint
        self.code = code
        self.request_id = request_id
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = [f"status {self.status_code}"] if self.status_code is not None else []
        if self.code:
            parts.append(self.code)
        text = self.message
        if parts:
            text += f" ({', '.join(parts)})"
        if self.endpoint:
            text += f" at {self.endpoint}"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, status_code={self.status_code!r}, "
            f"code={self.code!r}, endpoint={self.endpoint!r})"
        )


class _RetryAfterMixin(DominusError):
    """Errors that may carry the wait the server (or the breaker) asked for, in seconds."""

    def __init__(
        self,
        message: str | None = None,
        status_code: int | None = None,
        details: Mapping[str, Any] | None = None,
        endpoint: str | None = None,
        code: str | None = None,
        *,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code, details, endpoint, code, request_id=request_id)
        self.retry_after = retry_after


class AuthenticationError(DominusError):
    """401; no PSK configured; a failed local token check."""

    default_message = "Authentication failed"


class AuthorizationError(DominusError):
    """403."""

    default_message = "Permission denied"


class SecureTableError(AuthorizationError):
    """403 ``secure_table_reason_required``, or a ``secure`` call without a reason and an actor."""

    default_message = "Secure table access needs a reason and an actor"


class NotFoundError(DominusError):
    """404."""

    default_message = "Resource not found"


class ValidationError(DominusError):
    """400, 413, 422, and limits or identifiers the SDK checks before sending."""

    default_message = "Validation failed"


class ConflictError(DominusError):
    """409."""

    default_message = "Conflict"


class ServiceError(_RetryAfterMixin):
    """500, 501, 502, 503 and any other 5xx except 504; ``.retry_after`` is set for a 503."""

    default_message = "Service error"


class DominusTimeoutError(DominusError):
    """504, 408, or a client-side timeout."""

    default_message = "Request timed out"


class DominusConnectionError(DominusError):
    """A transport failure with no HTTP response."""

    default_message = "Connection failed"


class RateLimitError(_RetryAfterMixin):
    """429; ``.retry_after`` holds the wait the server asked for."""

    default_message = "Rate limited"


class CircuitOpenError(DominusConnectionError):
    """The host's circuit breaker is open: nothing was sent; ``.retry_after`` is the time left.

    Raised only when no attempt of the call may have run. When the breaker opens between the attempts of a
    call and an earlier attempt was sent without a usable answer (a lost answer, a timeout, a 5xx), the call
    raises that attempt's unknown-outcome error instead (``DominusConnectionError`` for a lost answer), with
    this error as its ``__cause__``.
    """

    default_message = "Circuit open"

    def __init__(
        self,
        message: str | None = None,
        status_code: int | None = None,
        details: Mapping[str, Any] | None = None,
        endpoint: str | None = None,
        code: str | None = None,
        *,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code, details, endpoint, code, request_id=request_id)
        self.retry_after = retry_after


STATUS_CLASS: dict[int, type[DominusError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: AuthorizationError,
    404: NotFoundError,
    408: DominusTimeoutError,
    409: ConflictError,
    413: ValidationError,
    422: ValidationError,
    429: RateLimitError,
    504: DominusTimeoutError,
}
"""The class for a status when the code is missing or unknown (other 5xx: ``ServiceError``)."""


def _class_for_status(status: int) -> type[DominusError]:
    if status in STATUS_CLASS:
        return STATUS_CLASS[status]
    if 500 <= status <= 599:
        return ServiceError
    return DominusError


CODE_CLASS: dict[str, type[DominusError]] = {
    **{code: _class_for_status(status) for code, status in CODE_STATUS.items()},
    # The one code whose class is narrower than its status's.
    "secure_table_reason_required": SecureTableError,
}
"""The class for every machine code of spec 4.1: its status's class, except for secure tables."""


def class_for(status: int | None, code: str | None) -> type[DominusError]:
    """Code first, then status (spec 4.2)."""
    if code and code in CODE_CLASS:
        return CODE_CLASS[code]
    if status is None:
        return DominusError
    return _class_for_status(status)


def error_from_response(
    status: int | None,
    code: str | None = None,
    message: str | None = None,
    details: Mapping[str, Any] | None = None,
    endpoint: str | None = None,
    *,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> DominusError:
    """Build the error for a failed answer: the class is chosen by ``code``, then by ``status``.

    ``retry_after`` is kept on the classes that carry it (:class:`RateLimitError`, and
    :class:`ServiceError` for a 503).
    """
    cls = class_for(status, code)
    if issubclass(cls, _RetryAfterMixin):
        wait = retry_after if (cls is RateLimitError or status == 503) else None
        return cls(message, status, details, endpoint, code, request_id=request_id, retry_after=wait)
    return cls(message, status, details, endpoint, code, request_id=request_id)
