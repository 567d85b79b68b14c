"""Page access (spec 8.8), navigation (spec 8.9) and ``me`` agree, per tenant, from current Guardian data."""

from __future__ import annotations

import pytest

from dominus_fastapi import ValidationError
from tests.portal.conftest import PASSWORD, Env, World, build_world, titles


async def _login(env: Env, tenant: str) -> str:
    return (await env.client.portal.login("carol", PASSWORD, tenant_id=tenant))["access_token"]


async def _reasons(env: Env, world: World, token: str) -> dict[str, tuple[bool, str]]:
    portal = env.client.as_user(token).portal
    out: dict[str, tuple[bool, str]] = {}
    for name, page in world.pages.items():
        answer = await portal.check_page_access(page["path"])
        assert answer["page_id"] == page["id"]
        out[name] = (answer["allowed"], answer["reason"])
    return out


async def test_me_navigation_and_page_access_agree_and_follow_the_tenant(env: Env) -> None:
    world = await build_world(env.client)
    acme_token = await _login(env, "acme")

    me = await env.client.portal.me(user_token=acme_token)
    assert me["tenant"] is not None and me["tenant"]["id"] == world.acme["id"]
    assert me["roles"] == ["analyst"] and me["scopes"] == ["reports:read"]
    assert [t["slug"] for t in me["tenants"]] == ["acme", "globex"]

    in_acme = await _reasons(env, world, acme_token)
    assert in_acme == {
        "dashboard": (True, "allowed"),
        "reports": (True, "allowed"),  # needs reports:read, held through the analyst role
        "acme_only": (True, "allowed"),  # restricted to this tenant
        "healthcare": (True, "allowed"),  # restricted to this tenant's category
        "no_auditors": (True, "allowed"),  # auditor is not effective in Acme
        "audit": (False, "missing_scope"),
        "archived": (False, "page_inactive"),
    }
    nav = await env.client.portal.get_navigation(user_token=acme_token)
    assert titles(nav["items"]) == ["Main", ["Dashboard", "Reports", "Finance"], "Acme corner"]
    node = nav["items"][0]["children"][0]
    assert node["path"] == "/dashboard" and node["page_id"] == world.pages["dashboard"]["id"]
    assert node["item_type"] == "link" and node["children"] == []

    # Switching tenant changes every answer.
    switched = await env.client.portal.switch_tenant("globex", user_token=acme_token)
    globex_token = switched["access_token"]
    me = await env.client.portal.me(user_token=globex_token)
    assert me["roles"] == ["analyst", "auditor"] and me["scopes"] == ["audit:read", "reports:read"]
    in_globex = await _reasons(env, world, globex_token)
    assert in_globex["acme_only"] == (False, "tenant_not_allowed")  # a page of another tenant
    assert in_globex["healthcare"] == (False, "tenant_not_allowed")  # another category
    assert in_globex["no_auditors"] == (False, "excluded_role")  # blocked by an excluded role
    assert in_globex["audit"] == (True, "allowed")
    nav = await env.client.portal.get_navigation(user_token=globex_token)
    assert titles(nav["items"]) == ["Main", ["Dashboard", "Reports"], "Compliance", ["Audit"]]


async def test_decisions_read_current_data_not_token_claims(env: Env) -> None:
    world = await build_world(env.client)
    token = await _login(env, "acme")
    assert (await env.client.portal.check_page_access("/dashboard/audit", user_token=token))["allowed"] is False
    await env.client.auth.add_user_scopes(world.user["id"], [world.audit_scope["id"]])
    after = await env.client.portal.check_page_access("/dashboard/audit", user_token=token)
    assert after == {"allowed": True, "reason": "allowed", "page_id": world.pages["audit"]["id"]}
    assert "audit:read" in (await env.client.portal.me(user_token=token))["scopes"]
    # An excluded scope blocks even a page the subject could otherwise open.
    await env.client.auth.add_page_excluded_scopes(world.pages["dashboard"]["id"], [world.audit_scope["id"]])
    blocked = await env.client.portal.check_page_access("/dashboard", user_token=token)
    assert blocked["reason"] == "excluded_scope" and blocked["allowed"] is False
    # A tenant link removed after sign-in: the token's tenant no longer counts.
    await env.client.auth.remove_user_tenants(world.user["id"], [world.acme["id"]])
    me = await env.client.portal.me(user_token=token)
    assert me["tenant"] is None and [t["slug"] for t in me["tenants"]] == ["globex"]
    gone = await env.client.portal.check_page_access("/dashboard/acme", user_token=token)
    assert gone["reason"] == "tenant_not_allowed"


async def test_page_lookup_rules(env: Env) -> None:
    world = await build_world(env.client)
    token = await _login(env, "acme")
    portal = env.client.as_user(token).portal
    trailing = await portal.check_page_access("/dashboard/")
    assert trailing == {"allowed": True, "reason": "allowed", "page_id": world.pages["dashboard"]["id"]}
    assert await portal.check_page_access("/nowhere") == {"allowed": False, "reason": "page_not_found", "page_id": None}
    root = await env.client.auth.create_page("/", "Home")
    assert (await portal.check_page_access("/"))["page_id"] == root["id"]
    with pytest.raises(ValidationError) as bad:
        await portal.check_page_access("dashboard")
    assert bad.value.details["field"] == "page_path"


async def test_navigation_restrictions_and_order(env: Env) -> None:
    world = await build_world(env.client)
    auth = env.client.auth
    vip = await auth.create_subtype("VIP", "vip")
    extra = await auth.create_nav_item("Extras", item_type="header", sort_order=5)
    await auth.create_nav_item("Zeta", parent_id=extra["id"], sort_order=1)
    await auth.create_nav_item("Alpha", parent_id=extra["id"], sort_order=1)
    vip_only = await auth.create_nav_item("VIP lounge", parent_id=extra["id"], sort_order=0)
    await auth.add_nav_subtypes(vip_only["id"], [vip["id"]])
    auditors = await auth.create_nav_item("Auditors", parent_id=extra["id"], sort_order=9)
    await auth.add_nav_roles(auditors["id"], [world.auditor["id"]])
    scoped = await auth.create_nav_item("Scoped", parent_id=extra["id"], sort_order=8)
    await auth.add_nav_scopes(scoped["id"], [world.audit_scope["id"]])
    off = await auth.create_nav_item("Off", is_active=False, sort_order=6)
    await auth.create_nav_item("Under off", parent_id=off["id"])
    in_retail = await auth.create_nav_item("Retail desk", sort_order=7)
    retail = await auth.list_tenant_categories()
    retail_id = next(c["id"] for c in retail["items"] if c["slug"] == "retail")
    await auth.add_nav_categories(in_retail["id"], [retail_id])
    acme_desk = await auth.create_nav_item("Acme desk", sort_order=7)
    await auth.add_nav_tenants(acme_desk["id"], [world.acme["id"]])

    token = await _login(env, "acme")
    nav = await env.client.portal.get_navigation(user_token=token)
    # Siblings by sort_order, then title; the inactive item takes its child with it.
    assert titles(nav["items"])[-4:] == ["Acme corner", "Extras", ["Alpha", "Zeta"], "Acme desk"]

    await auth.add_user_subtypes(world.user["id"], [vip["id"]])
    assert (await env.client.portal.me(user_token=token))["subtypes"] == ["vip"]
    switched = await env.client.portal.switch_tenant("globex", user_token=token)
    nav = await env.client.portal.get_navigation(user_token=switched["access_token"])
    extras = next(node for node in nav["items"] if node["title"] == "Extras")
    assert [child["title"] for child in extras["children"]] == ["VIP lounge", "Alpha", "Zeta", "Scoped", "Auditors"]
    assert "Retail desk" in [node["title"] for node in nav["items"]]
    assert "Acme desk" not in [node["title"] for node in nav["items"]]


async def test_service_token_and_client_session_decisions(env: Env) -> None:
    """The subject is whoever the token names: the admin client sees the admin page, a plain client not.

    The service's own answers are asked for explicitly (``as_service=True``): without it the call has no user
    session to act for and is refused before sending.
    """
    service = await env.client.portal.check_page_access("/admin", as_service=True)
    assert service["allowed"] is True and service["reason"] == "allowed"
    nav = await env.client.portal.get_navigation(as_service=True)
    assert "Administration" in [node["title"] for node in nav["items"]]

    created = await env.client.auth.create_client("kiosk")
    session = await env.client.portal.login_client(created["psk"])
    denied = await env.client.portal.check_page_access("/admin", user_token=session["access_token"])
    assert denied["allowed"] is False and denied["reason"] == "tenant_not_allowed"
    nav = await env.client.portal.get_navigation(user_token=session["access_token"])
    assert "Administration" not in [node["title"] for node in nav["items"]]
