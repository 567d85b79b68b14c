"""``create_app()``: the example web application, built from the public API of ``dominus_fastapi`` only.

- ``FastAPI(lifespan=dominus_lifespan())`` opens one ``Dominus`` client for the app from the environment
  (``DOMINUS_BASE_URL``, ``DOMINUS_TOKEN``); with an ``embedded:`` URL the backend runs inside the process.
- ``setup_dominus(app, ...)`` adds the session middleware, the exception handlers and the portal router at
  ``/auth`` (form sign-in, sign-out, tenant switch, ...).
- :mod:`example_app.pages` serves the HTML pages, :mod:`example_app.api` the JSON routes beside them (both in
  ``/docs``).
- :mod:`example_app.security`: the ``Host`` names answered (DNS rebinding), no framing, and no start off
  loopback while a demo account keeps its development password.

The app is told where it listens (``host``; ``python -m example_app --host`` passes it), because what it may
show depends on it: the dev outbox, which holds live password-reset links, is never on off loopback.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.trustedhost import TrustedHostMiddleware

from dominus_fastapi import dominus_lifespan, setup_dominus
from example_app import api, pages
from example_app.apidocs import install_api_docs
from example_app.backend import ReportTables
from example_app.errors import install_page_errors
from example_app.security import (
    FrameDenyMiddleware,
    NoStoreMiddleware,
    allowed_hosts_for,
    is_loopback_host,
    refuse_default_demo_passwords,
)
from example_app.text import install_filters

__all__ = [
    "DEFAULT_HOST",
    "LOGIN_PATH",
    "REFRESH_COOKIE",
    "REVALIDATE_SECONDS",
    "SESSION_COOKIE",
    "create_app",
    "outbox_allowed",
]

HERE: Final = Path(__file__).resolve().parent
LOGIN_PATH: Final = "/login"
SESSION_COOKIE: Final = "dominus_session"
REFRESH_COOKIE: Final = "dominus_refresh"
REVALIDATE_SECONDS: Final = 30.0
"""How often a session is checked with the backend even on pages that make no call of their own."""
DEFAULT_HOST: Final = "127.0.0.1"
FAVICON: Final = "/static/favicon.svg"
CACHEABLE_PREFIXES: Final = ("/static/", "/docs/assets/", "/favicon.ico")
"""Paths a browser may keep in its cache; every other answer is ``Cache-Control: no-store`` (see
:class:`~example_app.security.NoStoreMiddleware`)."""


def outbox_allowed(base_url: str | None = None) -> bool:
    """Whether the backend allows the dev outbox page: only a backend on this machine.

    The outbox shows every mail the backend sent, password-reset links included, so it must never be open on
    a shared deployment. It is allowed for ``embedded:`` URLs and for ``http://`` URLs to a loopback host; the
    app turns it on only when it also listens on loopback (see :func:`create_app`).
    """
    url = base_url if base_url is not None else os.environ.get("DOMINUS_BASE_URL", "")
    if url.startswith("embedded:"):
        return True
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "http":
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _lifespan(host: str) -> Any:
    """``dominus_lifespan()``, plus the demo-password check when the app listens beyond loopback."""
    opened = dominus_lifespan()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with opened(app) as state:
            if not is_loopback_host(host):
                await refuse_default_demo_passwords(state["dominus"])
            yield state

    return lifespan


def create_app(
    *,
    host: str = DEFAULT_HOST,
    allowed_hosts: str | Sequence[str] | None = None,
    dev_outbox: bool | None = None,
    revalidate_interval: float | None = REVALIDATE_SECONDS,
) -> FastAPI:
    """The example app, listening on ``host`` (the address given to the server; default loopback).

    - ``allowed_hosts``: the ``Host`` names answered (default: ``EXAMPLE_APP_ALLOWED_HOSTS``, else the
      loopback names for a loopback ``host``, else ``host`` itself; a wildcard ``host`` needs them named).
      Others get 400, so a DNS name rebound to this machine does not reach the app.
    - ``dev_outbox``: the ``/outbox`` page (default: :func:`outbox_allowed`). It is for administrators, over
      loopback connections, and only when ``host`` is loopback: ``dev_outbox=True`` with another ``host``
      raises ``ValueError``.
    - Off loopback, startup fails while a demo account keeps its development password.

    The Dominus client is opened by the app's lifespan, so the environment is read at startup, not here.
    """
    loopback = is_loopback_host(host)
    if dev_outbox and not loopback:
        raise ValueError(f"dev_outbox=True needs a loopback host, not {host!r}: the outbox shows password-reset links")
    hosts = allowed_hosts_for(host, allowed_hosts)
    app = FastAPI(
        title="Dominus example app",
        summary="A small web application on dominus-fastapi: sign-in, tenants, navigation, data, files, cache, logs",
        lifespan=_lifespan(host),
        docs_url=None,
        redoc_url=None,
    )
    setup_dominus(
        app,
        login_page=LOGIN_PATH,
        cookie_name=SESSION_COOKIE,
        refresh_cookie_name=REFRESH_COOKIE,
        revalidate_interval=revalidate_interval,
    )
    templates = Jinja2Templates(directory=HERE / "templates")
    install_filters(templates)
    app.state.templates = templates
    app.state.report_tables = ReportTables()
    app.state.host = host
    app.state.allowed_hosts = hosts
    app.state.dev_outbox = loopback and (outbox_allowed() if dev_outbox is None else dev_outbox)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    install_api_docs(app, favicon_url=FAVICON)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")

    app.include_router(pages.router)
    app.include_router(api.router)
    install_page_errors(
        app, templates, login_path=LOGIN_PATH, cookie_names=(SESSION_COOKIE, REFRESH_COOKIE),
        error_context=pages.error_context,
    )
    # Added last, so outermost: a foreign Host is refused before anything else runs.
    app.add_middleware(NoStoreMiddleware, cacheable=CACHEABLE_PREFIXES)
    app.add_middleware(FrameDenyMiddleware)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts, www_redirect=False)
    return app
