"""The framework-free client core of dominus_fastapi (never imports fastapi or starlette)."""

from __future__ import annotations

from dominus_fastapi.core.client import Dominus, DominusUserView
from dominus_fastapi.core.errors import (
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
    error_from_response,
)
from dominus_fastapi.core.namespaces.base import UNSET
from dominus_fastapi.core.settings import VERSION, DominusSettings

__all__ = [
    "UNSET",
    "VERSION",
    "AuthenticationError",
    "AuthorizationError",
    "CircuitOpenError",
    "ConflictError",
    "Dominus",
    "DominusConnectionError",
    "DominusError",
    "DominusSettings",
    "DominusTimeoutError",
    "DominusUserView",
    "NotFoundError",
    "RateLimitError",
    "SecureTableError",
    "ServiceError",
    "ValidationError",
    "error_from_response",
]
