"""Guardian lookups by unique key and the idempotent ``ensure_*`` calls (spec 8.7), and the built-in entities
of the admin category (spec 7.12), which an application cannot take over by reusing their names."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dominus_fastapi.core.errors import ConflictError, NotFoundError, ValidationError
from dominus_fastapi.core.namespaces.auth import AuthNamespace
from tests.identity.conftest import Server


async def declare(auth: AuthNamespace) -> dict[str, Any]:
    """Everything an app needs in Guardian, declared the way a start-up function does."""
    category = await auth.ensure_tenant_category("Shops", "shops")
    scope = await auth.ensure_scope("reports.read", "Read reports")
    role = await auth.ensure_role("analyst", "Reads reports", scope_slugs=["reports.read"])
    page = await auth.ensure_page("/reports", "Reports", scope_slugs=["reports.read"])
    tenant = await auth.ensure_tenant("Acme", "acme", category_id=category["id"])
    return {"category": category, "scope": scope, "role": role, "page": page, "tenant": tenant}


async def test_ensure_creates_once_and_then_returns_the_existing_entities(auth: AuthNamespace) -> None:
    first = await declare(auth)
    counts = {
        "roles": (await auth.list_roles())["total"],
        "scopes": (await auth.list_scopes())["total"],
        "pages": (await auth.list_pages())["total"],
        "tenants": (await auth.list_tenants())["total"],
    }
    second = await declare(auth)
    assert {k: v["id"] for k, v in second.items()} == {k: v["id"] for k, v in first.items()}
    assert counts == {
        "roles": (await auth.list_roles())["total"],
        "scopes": (await auth.list_scopes())["total"],
        "pages": (await auth.list_pages())["total"],
        "tenants": (await auth.list_tenants())["total"],
    }
    role_scopes = await auth.get_role_scopes(first["role"]["id"])
    assert [s["slug"] for s in role_scopes["items"]] == ["reports.read"]
    assert [s["slug"] for s in (await auth.get_page_scopes(first["page"]["id"]))["items"]] == ["reports.read"]
    assert second["tenant"]["category_id"] == first["category"]["id"]


async def test_differing_attributes_are_left_and_scopes_are_only_added(auth: AuthNamespace) -> None:
    await auth.ensure_scope("a", "A")
    await auth.ensure_scope("b", "B")
    role = await auth.ensure_role("editor", "first description", scope_slugs=["a"])
    again = await auth.ensure_role("editor", "second description", scope_slugs=["b"])
    assert again["id"] == role["id"] and again["description"] == "first description"
    linked = await auth.get_role_scopes(role["id"])
    assert sorted(s["slug"] for s in linked["items"]) == ["a", "b"]
    scope = await auth.ensure_scope("a", "Another name")
    assert scope["display_name"] == "A"
    page = await auth.ensure_page("/docs", "Docs", is_active=True)
    assert (await auth.ensure_page("/docs", "Renamed", is_active=False))["id"] == page["id"]
    assert (await auth.get_page(page["id"]))["is_active"] is True


async def test_an_unknown_scope_slug_writes_nothing(auth: AuthNamespace) -> None:
    with pytest.raises(NotFoundError) as caught:
        await auth.ensure_role("ghost-role", scope_slugs=["no.such.scope"])
    assert caught.value.details["missing"] == ["no.such.scope"]
    with pytest.raises(NotFoundError):
        await auth.get_role_by_name("ghost-role")
    with pytest.raises(NotFoundError):
        await auth.ensure_page("/ghost", "Ghost", scope_slugs=["no.such.scope"])
    with pytest.raises(NotFoundError):
        await auth.get_page_by_path("/ghost")
    with pytest.raises(ValidationError):
        await auth.ensure_page("/ghost", "Ghost", scope_slugs="no.such.scope")


async def test_concurrent_starts_agree_on_one_entity(auth: AuthNamespace) -> None:
    scopes = await asyncio.gather(*(auth.ensure_scope("shared", "Shared") for _ in range(5)))
    assert len({s["id"] for s in scopes}) == 1
    assert [s["slug"] for s in (await auth.list_scopes())["items"]].count("shared") == 1


async def test_lookups_by_unique_key(auth: AuthNamespace) -> None:
    made = await declare(auth)
    assert (await auth.get_tenant_by_slug("acme"))["id"] == made["tenant"]["id"]
    assert (await auth.get_role_by_name("analyst"))["id"] == made["role"]["id"]
    assert (await auth.get_scope_by_slug("reports.read"))["id"] == made["scope"]["id"]
    assert (await auth.get_page_by_path("/reports"))["id"] == made["page"]["id"]
    assert (await auth.get_page_by_path("/reports/"))["id"] == made["page"]["id"]
    assert (await auth.get_tenant_category_by_slug("shops"))["id"] == made["category"]["id"]
    for lookup, value in (
        (auth.get_tenant_by_slug, "nobody"),
        (auth.get_role_by_name, "Analyst"),
        (auth.get_scope_by_slug, "reports"),
        (auth.get_page_by_path, "/report"),
        (auth.get_tenant_category_by_slug, "shop"),
    ):
        with pytest.raises(NotFoundError) as caught:
            await lookup(value)
        assert repr(value) in caught.value.message


async def test_lookups_page_through_long_lists(auth: AuthNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    from dominus_fastapi.core.namespaces import auth as auth_module

    monkeypatch.setattr(auth_module, "_SCOPE_PAGE", 2)
    for n in range(5):
        await auth.create_scope(f"many.{n}", f"Many {n}")
    assert (await auth.get_scope_by_slug("many.4"))["slug"] == "many.4"


# --- the built-in entities of the admin category -----------------------------------------------------------

BUILTINS = [
    ("page", "path", "/admin", "'/admin' is a built-in page of Dominus; choose another path"),
    ("role", "name", "admin", "'admin' is a built-in role of Dominus; choose another name"),
    ("scope", "slug", "admin", "'admin' is a built-in scope of Dominus; choose another slug"),
    ("tenant", "slug", "admin", "'admin' is a built-in tenant of Dominus; choose another slug"),
    ("tenant_category", "slug", "admin", "'admin' is a built-in tenant category of Dominus; choose another slug"),
]


async def _create(auth: AuthNamespace, kind: str, value: str, ensure: bool) -> Any:
    verb = "ensure" if ensure else "create"
    if kind == "page":
        return await getattr(auth, f"{verb}_page")(value, "My admin")
    if kind == "role":
        return await getattr(auth, f"{verb}_role")(value)
    if kind == "scope":
        return await getattr(auth, f"{verb}_scope")(value, "My admin")
    return await getattr(auth, f"{verb}_{kind}")("My admin", value)


@pytest.mark.parametrize(("kind", "field", "value", "message"), BUILTINS, ids=[b[0] for b in BUILTINS])
async def test_a_builtin_name_is_refused_with_a_message_that_says_so(
    auth: AuthNamespace, server: Server, kind: str, field: str, value: str, message: str
) -> None:
    for ensure in (False, True):
        with pytest.raises(ConflictError) as caught:
            await _create(auth, kind, value, ensure)
        assert caught.value.message == message
        assert caught.value.details == {"field": field, "builtin": True}


async def test_a_taken_ordinary_name_keeps_the_plain_message(auth: AuthNamespace) -> None:
    await auth.create_page("/shop", "Shop")
    with pytest.raises(ConflictError) as caught:
        await auth.create_page("/shop", "Shop")
    assert caught.value.message == "A page with this path already exists"
    assert "builtin" not in caught.value.details


async def test_renaming_onto_a_builtin_name_is_refused_the_same_way(auth: AuthNamespace) -> None:
    role = await auth.ensure_role("managers")
    with pytest.raises(ConflictError) as caught:
        await auth.update_role(role["id"], name="admin")
    assert caught.value.message == "'admin' is a built-in role of Dominus; choose another name"
    assert (await auth.get_role(role["id"]))["name"] == "managers"
