"""``setup_dominus(app)``: the session middleware, the exception handlers and the portal router in one call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from fastapi import FastAPI

from dominus_fastapi.guards import install_guard_openapi
from dominus_fastapi.handlers import install_exception_handlers
from dominus_fastapi.middleware import PortalSessionMiddleware, SessionConfig
from dominus_fastapi.routers.portal import get_portal_router

__all__ = ["setup_dominus"]


def setup_dominus(
    app: FastAPI,
    *,
    prefix: str | None = "/auth",
    cookie_name: str = "dominus_session",
    refresh_cookie_name: str = "dominus_refresh",
    cookie_secure: bool | None = None,
    cookie_samesite: Literal["lax", "strict", "none"] = "lax",
    cookie_domain: str | None = None,
    cookie_max_age: int | None = None,
    allowed_origins: Sequence[str] = (),
    revalidate_interval: float | None = None,
    login_page: str | None = None,
    registration_tenants: Sequence[str] = (),
    include_invitations: bool = True,
    validation_errors: Literal["fastapi", "dominus"] = "fastapi",
    **middleware_options: Any,
) -> FastAPI:
    """Add :class:`PortalSessionMiddleware`, the exception handlers, the Bearer scheme of guarded endpoints in
    OpenAPI (:func:`~dominus_fastapi.guards.install_guard_openapi`) and (unless ``prefix=None``) the portal
    router at ``prefix``. The client itself comes from ``FastAPI(lifespan=dominus_lifespan())``.

    ``middleware_options`` go to the middleware (``csrf=``, ``leeway=``, ``clock=``, ``client=``). Returns
    ``app`` for chaining.

    Self-registration is off unless ``registration_tenants`` names the tenants that visitors may join
    (``registration_tenants=["acme"]``); the admin tenant never can be (see
    :func:`~dominus_fastapi.routers.portal.get_portal_router`).

    ``validation_errors="dominus"`` gives FastAPI's 422 request-validation answers the common
    ``{detail, code, request_id}`` shape, with the field list in ``errors`` (see
    :func:`~dominus_fastapi.handlers.install_exception_handlers`).
    """
    config = SessionConfig(
        cookie_name=cookie_name,
        refresh_cookie_name=refresh_cookie_name,
        cookie_secure=cookie_secure,
        cookie_samesite=cookie_samesite,
        cookie_domain=cookie_domain,
        cookie_max_age=cookie_max_age,
        allowed_origins=tuple(allowed_origins),
    )
    app.add_middleware(
        PortalSessionMiddleware, config=config, revalidate_interval=revalidate_interval, **middleware_options
    )
    install_exception_handlers(app, validation_errors=validation_errors)
    install_guard_openapi(app, cookie_name=config.cookie_name)
    if prefix is not None:
        app.include_router(
            get_portal_router(
                prefix,
                login_page=login_page,
                session_config=config,
                registration_tenants=registration_tenants,
                include_invitations=include_invitations,
            )
        )
    return app
