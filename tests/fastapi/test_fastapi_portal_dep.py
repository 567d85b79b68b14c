"""``PortalDep`` in a web app: an anonymous request never gets the app's own (administrator) answers.

The unbound namespace of an anonymous request used to answer ``me``, ``get_navigation`` and
``check_page_access`` with the app's service credential, an administrator; those calls now raise
``AuthorizationError`` before sending, which the exception handlers turn into a 403.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from dominus_fastapi import Dominus, setup_dominus
from dominus_fastapi.deps import PortalDep

ADMIN_PAGE = "/admin/users"


def _app(client: Dominus) -> FastAPI:
    app = FastAPI()
    app.state.dominus = client
    setup_dominus(app, prefix=None, client=client)

    @app.get("/can-open-admin")
    async def can_open_admin(portal: PortalDep) -> Any:
        return await portal.check_page_access(ADMIN_PAGE)

    @app.get("/me")
    async def me(portal: PortalDep) -> Any:
        return await portal.me()

    @app.get("/navigation")
    async def navigation(portal: PortalDep) -> Any:
        return await portal.get_navigation()

    return app


async def test_anonymous_requests_never_get_the_services_answers(embedded: Dominus) -> None:
    from dominus_fastapi.testing import create_test_user

    page = await embedded.auth.create_page(ADMIN_PAGE, "Users")
    scope = await embedded.auth.create_scope("users.manage", "Manage users")
    await embedded.auth.add_page_scopes(page["id"], [scope["id"]])
    admin = next(r for r in (await embedded.auth.list_roles())["items"] if r["name"] == "admin")
    await embedded.auth.add_role_scopes(admin["id"], [scope["id"]])  # the app's credential may open it
    assert (await embedded.portal.check_page_access(ADMIN_PAGE, as_service=True))["allowed"] is True
    user = await create_test_user(embedded)
    app = _app(embedded)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app.test") as http:
        for path in ("/can-open-admin", "/me", "/navigation"):
            anonymous = await http.get(path)
            assert anonymous.status_code == 403, path
            assert "allowed" not in anonymous.text and "admin" not in anonymous.json()["detail"].lower()
        as_user = {"Authorization": f"Bearer {user.access_token}"}
        assert (await http.get("/can-open-admin", headers=as_user)).json()["allowed"] is False
        assert (await http.get("/me", headers=as_user)).json()["user"]["id"] == user.id
