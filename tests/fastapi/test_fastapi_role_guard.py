"""``require_role``: as a decorator and as a dependency, the refusal shapes of every guard (401 anonymous, 303
for browsers with ``redirect_to``, 403 ``missing_role``), ``any_of``, and ``recheck`` against current data."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI

from dominus_fastapi import Dominus, dominus_lifespan, require_role, setup_dominus
from dominus_fastapi.deps import CurrentUser
from dominus_fastapi.testing import UserFactory


def role_app() -> FastAPI:
    app = FastAPI(lifespan=dominus_lifespan())
    setup_dominus(app)

    @app.get("/decorated")
    @require_role("editor", redirect_to="/login")
    async def decorated(user: CurrentUser) -> dict[str, Any]:
        return {"user": user.id}

    @app.get("/sync")
    @require_role("editor")
    def sync() -> dict[str, bool]:
        return {"sync": True}

    @app.get("/all", dependencies=[Depends(require_role("editor", "publisher", any_of=False))])
    async def all_of() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/recheck", dependencies=[Depends(require_role("editor", recheck=True))])
    async def rechecked() -> dict[str, bool]:
        return {"ok": True}

    router = APIRouter(prefix="/admin", dependencies=[Depends(require_role("admin"))])

    @router.get("/stats")
    async def stats() -> dict[str, int]:
        return {"users": 1}

    app.include_router(router)
    return app


@pytest.fixture
def dominus_app() -> Any:
    return role_app()


async def test_anonymous_callers_get_401_or_a_redirect(dominus_app_client: httpx.AsyncClient) -> None:
    for path in ("/decorated", "/sync", "/all", "/admin/stats"):
        anonymous = await dominus_app_client.get(path)
        assert anonymous.status_code == 401, path
        assert anonymous.json()["code"] == "not_authenticated"
        assert anonymous.headers["www-authenticate"] == "Bearer"
    browser = await dominus_app_client.get("/decorated?x=1", headers={"Accept": "text/html"})
    assert browser.status_code == 303
    assert browser.headers["location"] == "/login?next=/decorated%3Fx%3D1"


async def test_roles_decide_as_decorator_and_as_dependency(dominus_user_client: UserFactory) -> None:
    nobody = await dominus_user_client()
    editor = await dominus_user_client(roles=["editor"])
    both = await dominus_user_client(roles=["editor", "publisher"], via="bearer")
    admin = await dominus_user_client(roles=["admin"], tenants=["admin"])

    denied = await nobody.get("/decorated")
    assert denied.status_code == 403
    request_id = denied.headers["x-request-id"]  # every error answer names its request
    assert denied.json() == {"detail": "Needs the role(s): editor", "code": "missing_role", "request_id": request_id}
    assert (await editor.get("/decorated")).json() == {"user": editor.user.id}
    assert (await editor.get("/sync")).json() == {"sync": True}
    assert (await nobody.get("/sync")).status_code == 403

    partial = await editor.get("/all")
    assert partial.status_code == 403 and partial.json()["detail"] == "Needs the role(s): publisher"
    assert (await both.get("/all")).json() == {"ok": True}

    assert (await editor.get("/admin/stats")).json()["code"] == "missing_role"
    assert (await admin.get("/admin/stats")).json() == {"users": 1}


async def test_recheck_reads_current_roles_and_live_sessions(
    dominus: Dominus, dominus_user_client: UserFactory
) -> None:
    editor = await dominus_user_client(roles=["editor"])
    assert (await editor.post("/recheck")).json() == {"ok": True}
    await dominus.auth.remove_user_roles(editor.user.id, list(editor.user.role_ids))
    # The token still says "editor": the plain guard lets it through, the rechecking one does not.
    assert (await editor.get("/decorated")).status_code == 200
    withdrawn = await editor.post("/recheck")
    assert withdrawn.status_code == 403 and withdrawn.json()["code"] == "missing_role"

    other = await dominus_user_client(roles=["editor"], via="bearer")
    assert other.user.session_id is not None
    await dominus.portal.logout(user_token=other.user.access_token)
    ended = await other.post("/recheck")
    assert ended.status_code == 401


def test_a_role_guard_needs_role_names() -> None:
    with pytest.raises(ValueError, match="at least one role"):
        require_role()
    with pytest.raises(ValueError, match="role names"):
        require_role("")
