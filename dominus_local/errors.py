"""The one exception that services raise to answer with a failure envelope (spec 4.1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dominus_fastapi.core.wire import CODE_STATUS


class ApiError(Exception):
    """A failure answer: machine ``code``, short English ``message``, optional ``details``.

    The status comes from the code (spec 4.1) unless given. ``headers`` are added to the response
    (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.status = status if status is not None else CODE_STATUS.get(code, 500)
        self.headers: dict[str, str] = dict(headers or {})


class ClientDisconnected(Exception):
    """The client went away while its request ran, and the work was stopped: there is no one to answer."""


def invalid(field: str, reason: str) -> ApiError:
    """400 ``validation_failed`` naming the field and the reason."""
    return ApiError(
        "validation_failed", f"Invalid field '{field}': {reason}", details={"field": field, "reason": reason}
    )


def not_found(what: str, ident: Any = None) -> ApiError:
    details = {"id": ident} if ident is not None else {}
    return ApiError("not_found", f"{what} not found", details=details)


def conflict(message: str, **details: Any) -> ApiError:
    return ApiError("conflict", message, details=details)


def forbidden(message: str = "Permission denied", **details: Any) -> ApiError:
    return ApiError("forbidden", message, details=details)


def unprocessable(message: str, **details: Any) -> ApiError:
    return ApiError("unprocessable", message, details=details)


def too_large(field: str, limit: int) -> ApiError:
    return ApiError(
        "payload_too_large",
        f"Field '{field}' is larger than {limit} bytes",
        details={"field": field, "limit": limit},
    )
