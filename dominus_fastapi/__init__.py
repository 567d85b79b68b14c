"""dominus_fastapi: the async, FastAPI-first SDK for the Dominus platform.

``from dominus_fastapi import dominus`` gives a default client that reads its settings from the environment at
its first use (not at import time) and opens again on use after ``aclose()``. It is stateless, as a client
shared by the requests of a web app must be: portal calls for a user need ``dominus.as_user(token)``.
Applications that want explicit control create ``Dominus(...)`` and close it with ``await client.aclose()``
or ``async with``. (The ``dominus`` package of this distribution offers the reference SDK's stateful
``from dominus import dominus`` for scripts.)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dominus_fastapi.core.client import Dominus, DominusUserView
from dominus_fastapi.core.default import DefaultDominus
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
    from dominus_fastapi.caching import ResponseCache, cached
    from dominus_fastapi.guards import require_jwt, require_page_access, require_psk, require_role, require_scopes
    from dominus_fastapi.handlers import install_exception_handlers, request_id_of
    from dominus_fastapi.lifespan import dominus_lifespan
    from dominus_fastapi.middleware import PortalSessionMiddleware
    from dominus_fastapi.responses import content_disposition, file_response
    from dominus_fastapi.routers import end_user_of, get_portal_router
    from dominus_fastapi.setup import setup_dominus
    from dominus_fastapi.tenancy import CurrentTenant, DominusTenant, TenantData, TenantView

# The FastAPI helpers are imported on first use, so that the client alone does not load FastAPI.
_FASTAPI_EXPORTS = {
    "CurrentTenant": "dominus_fastapi.tenancy",
    "DominusTenant": "dominus_fastapi.tenancy",
    "ResponseCache": "dominus_fastapi.caching",
    "TenantData": "dominus_fastapi.tenancy",
    "TenantView": "dominus_fastapi.tenancy",
    "cached": "dominus_fastapi.caching",
    "content_disposition": "dominus_fastapi.responses",
    "file_response": "dominus_fastapi.responses",
    "request_id_of": "dominus_fastapi.handlers",
    "PortalSessionMiddleware": "dominus_fastapi.middleware",
    "dominus_lifespan": "dominus_fastapi.lifespan",
    "end_user_of": "dominus_fastapi.routers",
    "get_portal_router": "dominus_fastapi.routers",
    "install_exception_handlers": "dominus_fastapi.handlers",
    "require_jwt": "dominus_fastapi.guards",
    "require_page_access": "dominus_fastapi.guards",
    "require_psk": "dominus_fastapi.guards",
    "require_role": "dominus_fastapi.guards",
    "require_scopes": "dominus_fastapi.guards",
    "setup_dominus": "dominus_fastapi.setup",
}

__version__ = VERSION
"""The version of the installed distribution."""

__all__ = [
    "UNSET",
    "AuthenticationError",
    "AuthorizationError",
    "CircuitOpenError",
    "ConflictError",
    "CurrentTenant",
    "Dominus",
    "DominusConnectionError",
    "DominusError",
    "DominusSettings",
    "DominusTenant",
    "DominusTimeoutError",
    "DominusUserView",
    "NotFoundError",
    "PortalSessionMiddleware",
    "RateLimitError",
    "ResponseCache",
    "SecureAccessContext",
    "SecureTableError",
    "ServiceError",
    "TenantData",
    "TenantView",
    "ValidationError",
    "__version__",
    "cached",
    "content_disposition",
    "dominus",
    "dominus_lifespan",
    "end_user_of",
    "file_response",
    "get_portal_router",
    "install_exception_handlers",
    "request_id_of",
    "require_jwt",
    "require_page_access",
    "require_psk",
    "require_role",
    "require_scopes",
    "setup_dominus",
]

_default_client: DefaultDominus | None = None


def __getattr__(name: str) -> Any:
    """``dominus``: the default client (its settings are read at its first use)."""
    global _default_client
    if name == "dominus":
        if _default_client is None:
            _default_client = DefaultDominus()
        return _default_client
    if name in _FASTAPI_EXPORTS:
        value = getattr(importlib.import_module(_FASTAPI_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
