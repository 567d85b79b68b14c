"""dominus_fastapi: the async, FastAPI-first SDK for the Dominus platform.

``from dominus_fastapi import dominus`` gives a default client configured from the environment, created on
first access (not at import time). Applications that want explicit control create ``Dominus(...)`` and close
it with ``await client.aclose()`` or ``async with``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
)
from dominus_fastapi.core.namespaces.base import UNSET
from dominus_fastapi.core.secure import SecureAccessContext
from dominus_fastapi.core.settings import VERSION, DominusSettings

if TYPE_CHECKING:
    from dominus_fastapi.guards import require_jwt, require_page_access, require_psk, require_scopes
    from dominus_fastapi.handlers import install_exception_handlers
    from dominus_fastapi.lifespan import dominus_lifespan
    from dominus_fastapi.middleware import PortalSessionMiddleware
    from dominus_fastapi.routers import end_user_of, get_portal_router
    from dominus_fastapi.setup import setup_dominus

# The FastAPI helpers are imported on first use, so that the client alone does not load FastAPI.
_FASTAPI_EXPORTS = {
    "PortalSessionMiddleware": "dominus_fastapi.middleware",
    "dominus_lifespan": "dominus_fastapi.lifespan",
    "end_user_of": "dominus_fastapi.routers",
    "get_portal_router": "dominus_fastapi.routers",
    "install_exception_handlers": "dominus_fastapi.handlers",
    "require_jwt": "dominus_fastapi.guards",
    "require_page_access": "dominus_fastapi.guards",
    "require_psk": "dominus_fastapi.guards",
    "require_scopes": "dominus_fastapi.guards",
    "setup_dominus": "dominus_fastapi.setup",
}

__version__ = VERSION

__all__ = [
    "UNSET",
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
    "PortalSessionMiddleware",
    "RateLimitError",
    "SecureAccessContext",
    "SecureTableError",
    "ServiceError",
    "ValidationError",
    "__version__",
    "dominus",
    "dominus_lifespan",
    "end_user_of",
    "get_portal_router",
    "install_exception_handlers",
    "require_jwt",
    "require_page_access",
    "require_psk",
    "require_scopes",
    "setup_dominus",
]

_default_client: Dominus | None = None


def __getattr__(name: str) -> Any:
    """``dominus``: the default client, created from the environment on first access."""
    global _default_client
    if name == "dominus":
        if _default_client is None or _default_client.closed:
            _default_client = Dominus()
        return _default_client
    if name in _FASTAPI_EXPORTS:
        value = getattr(importlib.import_module(_FASTAPI_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
