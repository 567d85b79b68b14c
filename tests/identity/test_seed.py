"""The demo data: idempotent, and access control that differs by role and tenant (spec 8.8, 8.9)."""

from __future__ import annotations

from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from dominus_fastapi.core.client import Dominus
from dominus_fastapi.core.namespaces.auth import AuthNamespace
from dominus_local.app import create_app
from dominus_local.seed import DEFAULT_ADMIN_PASSWORD, DEFAULT_DEMO_PASSWORD, seed_demo
from dominus_local.settings import LocalSettings

from .conftest import BASE, PSK, Server


def _paths(nodes: list[Any]) -> set[str]:
    found: set[str] = set()
    for node in nodes:
        if node["path"]:
            found.add(node["path"])
        found |= _paths(node["children"])
    return found


async def test_seed_is_idempotent(server: Server, auth: AuthNamespace) -> None:
    first = await seed_demo(server.state)
    counts = {name: (await getattr(auth, f"list_{name}")())["total"] for name in ("users", "roles", "scopes", "pages")}
    navs = (await auth.list_nav_items())["total"]
    assert await seed_demo(server.state) == first
    again = {name: (await getattr(auth, f"list_{name}")())["total"] for name in ("users", "roles", "scopes", "pages")}
    assert again == counts and (await auth.list_nav_items())["total"] == navs
    assert counts["users"] == 2
    slugs = {t["slug"]: t for t in (await auth.list_tenants())["items"]}
    categories: dict[Any, str] = {c["id"]: c["slug"] for c in (await auth.list_tenant_categories())["items"]}
    assert categories[slugs["acme"]["category_id"]] == "healthcare"
    assert categories[slugs["globex"]["category_id"]] == "retail"
    pages = {p["path"] for p in (await auth.list_pages())["items"]}
    assert {"/dashboard", "/dashboard/admin/users", "/dashboard/reports", "/dashboard/files"} <= pages


async def test_seeded_navigation_differs_by_role_and_tenant(server: Server) -> None:
    await seed_demo(server.state)
    portal = server.client.portal
    admin = await portal.login("admin", DEFAULT_ADMIN_PASSWORD)
    demo = await portal.login("demo", DEFAULT_DEMO_PASSWORD, tenant_id="acme")
    admin_paths = _paths((await portal.get_navigation(user_token=admin["access_token"]))["items"])
    demo_paths = _paths((await portal.get_navigation(user_token=demo["access_token"]))["items"])
    assert "/dashboard/admin/users" in admin_paths
    assert "/dashboard/admin/users" not in demo_paths
    assert {"/dashboard", "/dashboard/files"} <= demo_paths and "/dashboard/reports" not in demo_paths
    assert (await portal.check_page_access("/dashboard/admin/users", user_token=admin["access_token"]))["allowed"]
    denied = await portal.check_page_access("/dashboard/admin/users", user_token=demo["access_token"])
    assert denied["allowed"] is False and denied["reason"] == "missing_scope"
    at_globex = await portal.login("demo", DEFAULT_DEMO_PASSWORD, tenant_id="globex")
    assert "/dashboard/reports" in _paths((await portal.get_navigation(user_token=at_globex["access_token"]))["items"])


async def test_the_seed_demo_setting_loads_the_data_at_start() -> None:
    application = create_app(LocalSettings(psk=SecretStr(PSK), bcrypt_rounds=4, seed_demo=True))
    async with LifespanManager(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with (
            httpx.AsyncClient(transport=transport, base_url=BASE) as http,
            Dominus(token=PSK, base_url=BASE, http_client=http, max_retries=0) as client,
        ):
            users = {u["username"] for u in (await client.auth.list_users())["items"]}
            assert users == {"admin", "demo"}
            login = await client.portal.login("admin@example.com", DEFAULT_ADMIN_PASSWORD)
            assert login["user"]["username"] == "admin"
