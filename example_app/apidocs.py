"""``/docs`` without the network: Swagger UI's files come from the ``fastapi-swagger`` package, not a CDN.

FastAPI's own ``/docs`` page loads Swagger UI from a CDN, which fails on a machine without internet access
(and tells a third party who reads the docs). :func:`install_api_docs` serves the same page with the assets
under ``/docs/assets``. The package ships a current Swagger UI 5 (FastAPI's OpenAPI 3.1 documents need 5.x;
the older ``swagger-ui-bundle`` package holds 4.15, which cannot read them). ReDoc is left out (``/redoc``
answers 404): the app ships no copy of it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse

__all__ = ["ASSETS_PATH", "DOCS_PATH", "install_api_docs", "swagger_ui_assets"]

DOCS_PATH: Final = "/docs"
ASSETS_PATH: Final = "/docs/assets"
OAUTH2_REDIRECT_PATH: Final = "/docs/oauth2-redirect"
ASSETS_PACKAGE: Final = "fastapi_swagger.resources"
"""Where ``swagger-ui-bundle.js``, ``swagger-ui.css`` and ``favicon-32x32.png`` are (a dependency)."""


def swagger_ui_assets() -> Path:
    """The directory of the packaged Swagger UI files."""
    return Path(str(resources.files(ASSETS_PACKAGE)))


def install_api_docs(app: FastAPI, *, favicon_url: str | None = None) -> None:
    """Serve Swagger UI at ``/docs`` from packaged assets; create ``app`` with ``docs_url=None``."""
    if app.docs_url is not None:
        raise ValueError("create the app with FastAPI(docs_url=None): install_api_docs serves /docs itself")
    app.mount(ASSETS_PATH, StaticFiles(directory=swagger_ui_assets()), name="docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API docs",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_PATH}",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=favicon_url or f"{root}{ASSETS_PATH}/favicon-32x32.png",
        )

    @app.get(OAUTH2_REDIRECT_PATH, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
