"""The application under test, built only from the public names of ``dominus_fastapi``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from dominus_fastapi import dominus_lifespan, require_page_access, setup_dominus
from dominus_fastapi.deps import CurrentUser, DbDep

ADMIN_PAGE = "/dashboard/admin/users"


def build_app(**setup_options: Any) -> FastAPI:
    """A small app: a data endpoint for signed-in users and an admin page behind a page-access guard."""
    app = FastAPI(lifespan=dominus_lifespan())
    setup_dominus(app, **setup_options)

    @app.get("/public")
    async def public() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/whoami")
    async def whoami(user: CurrentUser, db: DbDep) -> dict[str, Any]:
        return {"id": user.id, "tenant_id": user.tenant_id, "roles": list(user.roles), "db": type(db).__name__}

    @app.get("/admin/users")
    @require_page_access(ADMIN_PAGE)
    async def admin_users(user: CurrentUser) -> dict[str, Any]:
        return {"admin": user.id}

    return app
