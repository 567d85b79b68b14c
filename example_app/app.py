"""``create_app()``: the example web application, built from the public API of ``dominus_fastapi`` only.

- ``FastAPI(lifespan=dominus_lifespan())`` opens one ``Dominus`` client for the app from the environment
  (``DOMINUS_BASE_URL``, ``DOMINUS_TOKEN``); with an ``embedded:`` URL the backend runs inside the process.
- ``setup_dominus(app, ...)`` adds the session middleware, the exception handlers and the portal router at
  ``/auth`` (form sign-in, sign-out, tenant switch, ...).
- :mod:`example_app.pages` serves the HTML pages, :mod:`example_app.api` the JSON routes beside them (both in
  ``/docs``).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from dominus_fastapi import dominus_lifespan, setup_dominus
from example_app import api, pages
from example_app.backend import ReportTables
from example_app.errors import install_page_errors

__all__ = ["LOGIN_PATH", "REFRESH_COOKIE", "REVALIDATE_SECONDS", "SESSION_COOKIE", "create_app", "outbox_allowed"]

HERE: Final = Path(__file__).resolve().parent
LOGIN_PATH: Final = "/login"
SESSION_COOKIE: Final = "dominus_session"
REFRESH_COOKIE: Final = "dominus_refresh"
REVALIDATE_SECONDS: Final = 30.0
"""How often a session is checked with the backend even on pages that make no call of their own."""


def outbox_allowed(base_url: str | None = None) -> bool:
    """Whether the dev outbox page is on by default: only for a backend on this machine.

    The outbox shows every mail the backend sent, password-reset links included, so it must never be open on
    a shared deployment. It is on for ``embedded:`` URLs and for ``http://`` URLs to a loopback host.
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


def create_app(*, dev_outbox: bool | None = None, revalidate_interval: float | None = REVALIDATE_SECONDS) -> FastAPI:
    """The example app. ``dev_outbox`` turns the ``/outbox`` page on or off (default: :func:`outbox_allowed`).

    The Dominus client is opened by the app's lifespan, so the environment is read at startup, not here.
    """
    app = FastAPI(
        title="Dominus example app",
        summary="A small web application on dominus-fastapi: sign-in, tenants, navigation, data, files, cache, logs",
        lifespan=dominus_lifespan(),
    )
    setup_dominus(
        app,
        login_page=LOGIN_PATH,
        cookie_name=SESSION_COOKIE,
        refresh_cookie_name=REFRESH_COOKIE,
        revalidate_interval=revalidate_interval,
    )
    templates = Jinja2Templates(directory=HERE / "templates")
    app.state.templates = templates
    app.state.report_tables = ReportTables()
    app.state.dev_outbox = outbox_allowed() if dev_outbox is None else dev_outbox
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(pages.router)
    app.include_router(api.router)
    install_page_errors(app, templates, login_path=LOGIN_PATH, cookie_names=(SESSION_COOKIE, REFRESH_COOKIE))
    return app
