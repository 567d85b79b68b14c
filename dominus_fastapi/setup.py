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
    """Set an app up for Dominus sessions in one call; returns ``app`` for chaining.

    Adds :class:`PortalSessionMiddleware`, the exception handlers, the Bearer scheme of guarded endpoints in
    OpenAPI (:func:`~dominus_fastapi.guards.install_guard_openapi`) and (unless ``prefix=None``) the portal
    router at ``prefix``. The client itself comes from ``FastAPI(lifespan=dominus_lifespan())``.

    Args:
        app: The application.
        prefix: Where the portal router's routes go (``/auth/login``, ...); ``None``: no router.
        cookie_name: The access-token cookie.
        refresh_cookie_name: The refresh-token cookie.
        cookie_secure: ``None``: ``Secure`` unless the request is plain http to a loopback host.
        cookie_samesite: ``lax`` (the default), ``strict`` or ``none``.
        cookie_domain: The cookies' ``Domain``; ``None``: the request's host only.
        cookie_max_age: Cookie lifetime in seconds; ``None``: browser-session cookies.
        allowed_origins: Full origins trusted for cookie-authenticated writes besides the app's own.
        revalidate_interval: Seconds between checks with the server that a session is still alive; ``None``:
            never (see :class:`PortalSessionMiddleware`).
        login_page: Where failed form sign-ins and form sign-outs of the router go.
        registration_tenants: The tenants (slugs or UUIDs) that visitors may join through ``POST /register``;
            empty (the default): self-registration is off. The admin tenant never can be one.
        include_invitations: ``False`` leaves out ``POST /accept-invitation``.
        validation_errors: ``"dominus"`` gives FastAPI's 422 request-validation answers the common
            ``{detail, code, request_id}`` shape, with the field list in ``errors`` (see
            :func:`~dominus_fastapi.handlers.install_exception_handlers`); ``"fastapi"`` (the default) keeps
            FastAPI's own body.
        **middleware_options: Further arguments of the middleware (``csrf=``, ``leeway=``, ``clock=``,
            ``client=``).
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
