"""Every Guardian entity and junction, driven by the catalogue: create, read, page, update, delete, and
get/add/remove/set on each relation (spec 7.6), through the SDK against the real server."""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from dominus_fastapi.core.errors import NotFoundError, ValidationError
from dominus_fastapi.core.namespaces.auth import AuthNamespace

CATALOGUE = json.loads((Path(__file__).parents[2] / "docs" / "endpoints.json").read_text("utf-8"))
_counter = itertools.count(1)

Factory = Callable[[AuthNamespace], Awaitable[dict[str, Any]]]


def _n() -> int:
    return next(_counter)


async def _user(auth: AuthNamespace) -> dict[str, Any]:
    n = _n()
    return dict(await auth.create_user(f"user{n}", f"user{n}@example.com", password="password-123"))


async def _role(auth: AuthNamespace) -> dict[str, Any]:
    return dict(await auth.create_role(f"role-{_n()}", description="a role"))


async def _scope(auth: AuthNamespace) -> dict[str, Any]:
    n = _n()
    return dict(await auth.create_scope(f"scope.{n}", f"Scope {n}"))


async def _client(auth: AuthNamespace) -> dict[str, Any]:
    return dict(await auth.create_client(f"client {_n()}"))


async def _category(auth: AuthNamespace) -> dict[str, Any]:
    n = _n()
    return dict(await auth.create_tenant_category(f"Category {n}", f"cat-{n}"))


async def _tenant(auth: AuthNamespace) -> dict[str, Any]:
    n = _n()
    return dict(await auth.create_tenant(f"Tenant {n}", f"tenant-{n}"))


async def _subtype(auth: AuthNamespace) -> dict[str, Any]:
    n = _n()
    return dict(await auth.create_subtype(f"Subtype {n}", f"sub-{n}"))


async def _page(auth: AuthNamespace) -> dict[str, Any]:
    n = _n()
    return dict(await auth.create_page(f"/p/{n}", f"Page {n}"))


async def _nav(auth: AuthNamespace) -> dict[str, Any]:
    return dict(await auth.create_nav_item(f"Item {_n()}"))


async def _secure(auth: AuthNamespace) -> dict[str, Any]:
    return dict(await auth.create_secure_table(f"table_{_n()}"))


# segment -> (singular python stem, factory, an update that changes something, the field it changes)
ENTITIES: dict[str, tuple[str, Factory, dict[str, Any] | None]] = {
    "users": ("user", _user, {"status": "inactive"}),
    "roles": ("role", _role, {"description": None}),
    "scopes": ("scope", _scope, {"display_name": "Renamed"}),
    "clients": ("client", _client, {"label": "relabelled"}),
    "tenants": ("tenant", _tenant, {"display_name": "Shown"}),
    "tenant-categories": ("tenant_category", _category, {"color": "#112233"}),
    "subtypes": ("subtype", _subtype, {"name": "Renamed"}),
    "pages": ("page", _page, {"is_active": False}),
    "nav-items": ("nav_item", _nav, {"sort_order": 7}),
    "secure-tables": ("secure_table", _secure, None),
}
TARGETS: dict[str, Factory] = {
    "roles": _role,
    "excluded-roles": _role,
    "scopes": _scope,
    "excluded-scopes": _scope,
    "tenants": _tenant,
    "categories": _category,
    "subtypes": _subtype,
}


def _junction_groups() -> list[tuple[str, str, dict[str, str]]]:
    """(entity segment, relation segment, {HTTP method: python name}) for every junction of the catalogue."""
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for entry in CATALOGUE:
        parts = entry["path"].split("/")
        if entry["service"] != "guardian" or len(parts) != 6 or parts[5] not in TARGETS:
            continue
        groups.setdefault((parts[3], parts[5]), {})[entry["method"]] = entry["python"][0].split(".", 1)[1]
    return [(owner, relation, methods) for (owner, relation), methods in sorted(groups.items())]


JUNCTIONS = _junction_groups()


def test_the_catalogue_has_every_junction() -> None:
    assert len(JUNCTIONS) == 28
    assert sum(len(methods) for _, _, methods in JUNCTIONS) == 89


@pytest.mark.parametrize("segment", sorted(ENTITIES))
async def test_entity_lifecycle(auth: AuthNamespace, segment: str) -> None:
    stem, factory, change = ENTITIES[segment]
    plural = "tenant_categories" if stem == "tenant_category" else f"{stem}s"
    first = await factory(auth)
    second = await factory(auth)
    assert {"id", "created_at"} <= set(first)
    got = await getattr(auth, f"get_{stem}")(first["id"])
    assert got["id"] == first["id"]
    everything = await getattr(auth, f"list_{plural}")(limit=1000)
    assert {first["id"], second["id"]} <= {item["id"] for item in everything["items"]}
    one = await getattr(auth, f"list_{plural}")(limit=1, offset=1)
    assert len(one["items"]) == 1 and one["total"] == everything["total"]
    if change is not None:
        updated = await getattr(auth, f"update_{stem}")(first["id"], **change)
        for key, value in change.items():
            assert updated[key] == value
        assert updated["updated_at"] >= first["updated_at"]
        untouched = await getattr(auth, f"get_{stem}")(second["id"])
        assert untouched == {k: v for k, v in second.items() if k not in ("psk", "invitation_sent")}
    assert await getattr(auth, f"delete_{stem}")(first["id"]) == {"deleted": True, "id": first["id"]}
    with pytest.raises(NotFoundError):
        await getattr(auth, f"get_{stem}")(first["id"])
    with pytest.raises(NotFoundError):
        await getattr(auth, f"delete_{stem}")(first["id"])


@pytest.mark.parametrize(("owner", "relation", "methods"), JUNCTIONS, ids=[f"{o}-{r}" for o, r, _ in JUNCTIONS])
async def test_junction(auth: AuthNamespace, owner: str, relation: str, methods: dict[str, str]) -> None:
    _, factory, _ = ENTITIES[owner]
    make_target = TARGETS[relation]
    subject = await factory(auth)
    a, b, c = (await make_target(auth))["id"], (await make_target(auth))["id"], (await make_target(auth))["id"]
    get = getattr(auth, methods["GET"])
    add = getattr(auth, methods["POST"])
    remove = getattr(auth, methods["DELETE"])

    assert await get(subject["id"]) == {"items": [], "total": 0}
    added = await add(subject["id"], [a, b])
    assert {item["id"] for item in added["items"]} == {a, b} and added["total"] == 2
    again = await add(subject["id"], [b, c, c])  # union: b already linked, c given twice
    assert {item["id"] for item in again["items"]} == {a, b, c}
    removed = await remove(subject["id"], [a, "00000000-0000-4000-8000-000000000000"])  # unlinked ids ignored
    assert {item["id"] for item in removed["items"]} == {b, c}
    with pytest.raises(ValidationError):
        await remove(subject["id"], [])
    with pytest.raises(ValidationError) as unknown:
        await add(subject["id"], ["00000000-0000-4000-8000-000000000001"])
    assert unknown.value.status_code == 422
    assert unknown.value.details["missing"] == ["00000000-0000-4000-8000-000000000001"]
    if "PUT" in methods:
        replace = getattr(auth, methods["PUT"])
        assert {item["id"] for item in (await replace(subject["id"], [a]))["items"]} == {a}
        assert await replace(subject["id"], []) == {"items": [], "total": 0}
    assert (await get(subject["id"]))["total"] == (0 if "PUT" in methods else 2)
    with pytest.raises(NotFoundError):
        await get("00000000-0000-4000-8000-000000000002")
