"""The two FastAPI apps of the FastAPI scenario, served by uvicorn (``--factory``).

``bare``: ``GET /item`` and nothing else. ``guarded``: the same endpoint behind ``PortalSessionMiddleware``
(``setup_dominus``), the ``CurrentUser`` dependency and ``@require_page_access`` (answers cached per session),
with the client from ``dominus_lifespan()`` (``DOMINUS_BASE_URL``/``DOMINUS_TOKEN`` name the backend).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from dominus_fastapi import dominus_lifespan, require_page_access, setup_dominus
from dominus_fastapi.deps import CurrentUser

PAGE = "/bench/item"


def bare() -> FastAPI:
    app = FastAPI()

    @app.get("/item")
    async def item() -> dict[str, Any]:
        return {"id": "bench", "ok": True}

    @app.get("/api/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def guarded() -> FastAPI:
    app = FastAPI(lifespan=dominus_lifespan())
    setup_dominus(app, prefix=None)

    @app.get("/item")
    @require_page_access(PAGE)
    async def item(user: CurrentUser) -> dict[str, Any]:
        return {"id": user.id, "ok": True}

    @app.get("/api/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
