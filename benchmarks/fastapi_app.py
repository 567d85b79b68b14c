"""The app of the FastAPI scenario, served by uvicorn (``--factory benchmarks.fastapi_app:both``).

One server process answers both endpoints, so that they share the same interpreter, heap, CPU placement and
HTTP server: two otherwise identical uvicorn processes on these machines differ by up to ~10% in throughput,
which would swamp the difference being measured.

- ``GET /bare/item``: a plain FastAPI app with that one endpoint (and ``/api/health``), nothing else; it
  answers an id as long as a user id, so that both answers have the same size.
- ``GET /dep/item``: the same plain app's endpoint with one trivial dependency (``Depends`` on a function that
  takes the connection and returns a constant): what FastAPI itself charges for any dependency, for reference.
- ``GET /guarded/item``: the same endpoint in an app behind ``PortalSessionMiddleware`` (``setup_dominus``),
  the ``CurrentUser`` dependency and ``@require_page_access`` (answers cached per session), with the client
  from ``dominus_lifespan()`` (``DOMINUS_BASE_URL``/``DOMINUS_TOKEN`` name the backend).

:func:`both` hands each request to one of the two apps by its first path segment (the one check both pay)
and the lifespan to the guarded app.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI
from starlette.requests import HTTPConnection
from starlette.types import Receive, Scope, Send

from dominus_fastapi import dominus_lifespan, require_page_access, setup_dominus
from dominus_fastapi.deps import CurrentUser

PAGE = "/bench/item"
BARE_PATH = "/bare/item"
DEPENDENCY_PATH = "/dep/item"
GUARDED_PATH = "/guarded/item"
BARE_ID = "00000000-0000-4000-8000-000000000000"
"""The bare endpoints' answer: as long as the user id (a UUID) the guarded endpoint answers."""


def bare() -> FastAPI:
    app = FastAPI()

    @app.get(BARE_PATH)
    async def item() -> dict[str, Any]:
        return {"id": BARE_ID, "ok": True}

    @app.get(DEPENDENCY_PATH)
    async def item_with_dependency(value: Annotated[int, Depends(_constant)]) -> dict[str, Any]:
        return {"id": BARE_ID, "ok": True}

    @app.get("/api/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def _constant(connection: HTTPConnection) -> int:
    return 1


def guarded() -> FastAPI:
    app = FastAPI(lifespan=dominus_lifespan())
    setup_dominus(app, prefix=None)

    @app.get(GUARDED_PATH)
    @require_page_access(PAGE)
    async def item(user: CurrentUser) -> dict[str, Any]:
        return {"id": user.id, "ok": True}

    return app


class Both:
    """The two apps behind one ASGI callable (see the module docstring)."""

    def __init__(self) -> None:
        self.bare = bare()
        self.guarded = guarded()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or scope.get("path", "").startswith("/guarded/"):
            await self.guarded(scope, receive, send)
        else:
            await self.bare(scope, receive, send)


def both() -> Both:
    return Both()
