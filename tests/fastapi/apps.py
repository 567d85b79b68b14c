"""The applications under test, built only from the public names of ``dominus_fastapi``."""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.responses import HTMLResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from dominus_fastapi import dominus_lifespan, require_page_access, require_scopes, setup_dominus
from dominus_fastapi.deps import CurrentUser, DbDep, PortalDep, SessionDep
from dominus_fastapi.guards import require_jwt, require_psk

ADMIN_PAGE = "/dashboard/admin/users"
REPORTS_PAGE = "/dashboard/reports"

request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="unset")


class Recorder:
    """What the app saw: background tasks run, context values observed around the endpoint."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.seen_after: list[str] = []


class ContextProbe:
    """Outermost pure ASGI middleware: sets a context variable and reads it back after the app ran."""

    def __init__(self, app: ASGIApp, recorder: Recorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = request_var.set("outer")
        try:
            await self.app(scope, receive, send)
            self.recorder.seen_after.append(request_var.get())
        finally:
            request_var.reset(token)


def build_app(*, with_dominus: bool = True, **setup_options: Any) -> FastAPI:
    """The test app: public, signed-in, guarded, streaming, background and websocket routes."""
    app = FastAPI(lifespan=dominus_lifespan())
    recorder = Recorder()
    app.state.recorder = recorder
    if with_dominus:
        setup_options.setdefault("registration_tenants", ["acme"])  # sign-up is opt-in: open one tenant
        setup_dominus(app, **setup_options)

    @app.get("/public")
    async def public() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/whoami")
    async def whoami(user: CurrentUser, db: DbDep) -> dict[str, Any]:
        return {
            "id": user.id,
            "subject_type": user.subject_type,
            "tenant_id": user.tenant_id,
            "roles": list(user.roles),
            "db": type(db).__name__,
        }

    @app.get("/schemas")
    async def schemas(user: CurrentUser, db: DbDep) -> dict[str, Any]:
        return {"user": user.id, "schemas": await db.schemas()}

    @app.get("/session")
    async def session(session: SessionDep, request: Request) -> dict[str, Any]:
        return {
            "signed_in": session is not None,
            "via": session.via if session else None,
            "request_user": request.user.is_authenticated,
            "auth_scopes": list(request.auth.scopes),
        }

    @app.get("/my-navigation")
    async def my_navigation(portal: PortalDep, user: CurrentUser) -> Any:
        return await portal.get_navigation()

    @app.get("/admin/users")
    @require_page_access(ADMIN_PAGE)
    async def admin_users(user: CurrentUser) -> dict[str, Any]:
        return {"admin": user.id}

    @app.get("/admin/sync")
    @require_page_access(ADMIN_PAGE)
    def admin_sync(request: Request) -> dict[str, Any]:
        return {"sync": True, "path": request.url.path}

    @app.get("/dashboard/reports", dependencies=[Depends(require_page_access())])
    async def reports() -> dict[str, str]:
        return {"page": "reports"}

    @app.get("/dashboard/reports/html", response_class=HTMLResponse)
    @require_page_access(REPORTS_PAGE, redirect_to="/login")
    async def reports_html() -> str:
        return "<h1>Reports</h1>"

    @app.get("/scoped/any", dependencies=[Depends(require_scopes("reports:read", "admin"))])
    async def scoped_any() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/scoped/all")
    @require_scopes("reports:read", "reports:write", any_of=False)
    async def scoped_all() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/jwt-only")
    @require_jwt()
    async def jwt_only(request: Request) -> dict[str, str]:
        return {"user": request.user.identity}

    @app.get("/machine")
    @require_psk()
    async def machine(request: Request) -> dict[str, Any]:
        client = request.state.dominus_client
        return {"client": client.id, "subject_type": client.subject_type}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"chunk-{i};".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/background")
    async def background() -> JSONResponse:
        recorder.events.append("endpoint")
        return JSONResponse({"queued": True}, background=BackgroundTask(recorder.events.append, "background"))

    @app.get("/context")
    async def context() -> dict[str, str]:
        seen = request_var.get()
        request_var.set("endpoint")
        return {"seen": seen}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        user = websocket.user
        await websocket.send_json({"authenticated": user.is_authenticated, "id": getattr(user, "id", None)})
        message = await websocket.receive_text()
        await websocket.send_text(f"echo:{message}")
        await websocket.close()

    app.add_middleware(ContextProbe, recorder=recorder)
    return app
