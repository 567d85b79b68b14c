"""The reference SDK's ``dominus.errors`` module: the error tree, with its own names for two classes.

The reference SDK defined ``ConnectionError`` and ``TimeoutError`` here (and exported them from the package as
``DominusConnectionError`` and ``DominusTimeoutError``); both names are kept as aliases. Unlike the reference
SDK's, these also derive from the built-in ``ConnectionError`` and ``TimeoutError``.
"""

from __future__ import annotations

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
)

ConnectionError = DominusConnectionError
TimeoutError = DominusTimeoutError

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "CircuitOpenError",
    "ConflictError",
    "ConnectionError",
    "DominusConnectionError",
    "DominusError",
    "DominusTimeoutError",
    "NotFoundError",
    "RateLimitError",
    "SecureTableError",
    "ServiceError",
    "TimeoutError",
    "ValidationError",
]
