"""``CurrentTenant`` and the ``TenantData`` views against a real in-process ``dominus_local``.

Alice (tenant ``alpha``) and Bob (tenant ``beta-co``) use the same endpoints; each endpoint reaches data
only through ``TenantData``. Whatever Alice asks for (a path, a key, a row id that belongs to Bob), she gets
her own tenant's data or nothing: no row, file, key or cached answer of ``beta-co`` comes back, and her
writes land in ``alpha``'s schema and categories only (checked with the admin client).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI, UploadFile
from pydantic import BaseModel

from dominus_fastapi import (
    CurrentTenant,
    Dominus,
    DominusTenant,
    NotFoundError,
    TenantData,
    TenantView,
    dominus_lifespan,
    setup_dominus,
)
from dominus_fastapi.tenancy import tenant_category, tenant_schema
from dominus_fastapi.testing import UserFactory

NOTES_COLUMNS = [
    {"name": "id", "type": "SERIAL", "constraints": ["PRIMARY KEY"]},
    {"name": "title", "type": "VARCHAR(200)", "constraints": ["NOT NULL"]},
]


class Note(BaseModel):
    id: int
    title: str


class NoteIn(BaseModel):
    title: str


def build_app() -> FastAPI:
    app = FastAPI(lifespan=dominus_lifespan())
    setup_dominus(app)

    @app.get("/tenant")
    async def tenant(current: CurrentTenant) -> dict[str, str]:
        return {"id": current.id, "slug": current.slug, "name": current.name, "schema": current.schema}

    @app.get("/notes")
    async def notes(data: TenantData, id: int | None = None) -> list[Note]:
        filters = {"id": id} if id is not None else None
        return (await data.db.query("notes", filters, sort_by="id", model=Note))["rows"]

    @app.post("/notes")
    async def add_note(note: NoteIn, data: TenantData) -> dict[str, Any]:
        return dict(await data.db.insert("notes", note.model_dump()))

    @app.delete("/notes/{note_id}")
    async def delete_note(note_id: int, data: TenantData) -> dict[str, Any]:
        return dict(await data.db.delete("notes", {"id": note_id}))

    @app.post("/files")
    async def upload(upload: UploadFile, data: TenantData) -> dict[str, Any]:
        record = await data.files.upload(await upload.read(), upload.filename or "file", upload.content_type)
        return {"path": record["path"], "category": record["category"]}

    @app.get("/files")
    async def listing(data: TenantData) -> list[str]:
        return [item["path"] for item in (await data.files.list())["objects"]]

    @app.get("/files/{path}")
    async def fetch(path: str, data: TenantData) -> dict[str, Any]:
        found = await data.files.fetch(path)
        return {"text": found["data"].decode(), "filename": found["filename"]}

    @app.put("/kv/{key}")
    async def put(key: str, value: str, data: TenantData) -> dict[str, Any]:
        return dict(await data.redis.set(key, value, ttl=300))

    @app.get("/kv/{key}")
    async def get(key: str, data: TenantData) -> dict[str, Any]:
        return dict(await data.redis.get(key))

    @app.get("/kv")
    async def keys(data: TenantData) -> list[str]:
        return (await data.redis.list())["keys"]

    return app


@pytest.fixture
def dominus_app() -> FastAPI:
    return build_app()


async def _provision(dominus: Dominus, *slugs: str) -> None:
    for slug in slugs:
        await dominus.ddl.provision_tenant(slug)
        await dominus.ddl.add_table("notes", NOTES_COLUMNS, schema=tenant_schema(slug))


async def _two_tenants(dominus: Dominus, user_client: UserFactory) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    alice = await user_client(username="alice", tenants=["alpha"])
    bob = await user_client(username="bob", tenants=["beta-co"])
    await _provision(dominus, "alpha", "beta-co")
    return alice, bob


async def test_current_tenant_comes_from_the_token(dominus: Dominus, dominus_user_client: UserFactory) -> None:
    await dominus.auth.create_tenant("Beta Company", "beta-co")
    bob = await dominus_user_client(tenants=["beta-co"])
    answer = (await bob.get("/tenant")).json()
    tenant = await dominus.auth.get_tenant(answer["id"])
    assert answer == {"id": tenant["id"], "slug": "beta-co", "name": "Beta Company", "schema": "tenant_beta_co"}
    assert DominusTenant(tenant["id"], "beta-co", "Beta Company").category == "tenant-beta-co"
    assert tenant_category("beta-co") == "tenant-beta-co"


async def test_current_tenant_refuses_anonymous_and_tenantless(
    dominus_app_client: httpx.AsyncClient, dominus_user_client: UserFactory
) -> None:
    anonymous = await dominus_app_client.get("/tenant")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "not_authenticated"
    loner = await dominus_user_client()
    refused = await loner.get("/tenant")
    assert refused.status_code == 403 and refused.json()["code"] == "no_tenant"
    assert (await loner.get("/notes")).json()["code"] == "no_tenant"


async def test_a_token_without_tenant_claims_asks_the_portal_once(
    dominus: Dominus, dominus_user_client: UserFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server whose tokens carry ``tenant_id`` only: one ``portal.me`` per tenant, then memory."""
    import jwt

    from dominus_fastapi import tenancy
    from dominus_fastapi.core.namespaces.portal import PortalNamespace
    from dominus_local.security import issue_token

    await dominus.auth.create_tenant("Alpha Inc", "alpha")
    alice = await dominus_user_client(tenants=["alpha"], via="bearer")
    claims = jwt.decode(alice.user.access_token, options={"verify_signature": False})
    assert (claims["tenant_slug"], claims["tenant_name"]) == ("alpha", "Alpha Inc")
    bare = {k: v for k, v in claims.items() if k not in ("tenant_slug", "tenant_name", "iat", "nbf", "exp", "jti")}
    instance = dominus._transport.embedded.instance  # type: ignore[union-attr]
    token = issue_token(instance.state, bare)

    asked: list[str] = []
    original_me = PortalNamespace.me

    async def counting_me(self: PortalNamespace, *args: Any, **kwargs: Any) -> Any:
        asked.append("me")
        return await original_me(self, *args, **kwargs)

    monkeypatch.setattr(PortalNamespace, "me", counting_me)
    monkeypatch.setattr(tenancy, "_looked_up", type(tenancy._looked_up)())
    headers = {"Authorization": f"Bearer {token}"}
    first = (await alice.get("/tenant", headers=headers)).json()
    second = (await alice.get("/tenant", headers=headers)).json()
    assert first == second
    assert (first["slug"], first["name"], first["id"]) == ("alpha", "Alpha Inc", claims["tenant_id"])
    assert asked == ["me"]


async def test_rows_of_another_tenant_are_out_of_reach(
    dominus: Dominus, dominus_user_client: UserFactory
) -> None:
    alice, bob = await _two_tenants(dominus, dominus_user_client)
    assert (await bob.post("/notes", json={"title": "beta plan"})).status_code == 200
    bob_note = (await bob.get("/notes")).json()[0]
    # Bob's row id, asked for in Alice's name: her filter and her delete run in her own (empty) schema.
    assert (await alice.get("/notes", params={"id": bob_note["id"]})).json() == []
    assert (await alice.delete(f"/notes/{bob_note['id']}")).json() == {"affected_rows": 0}
    assert (await alice.post("/notes", json={"title": "alpha plan"})).status_code == 200

    assert [n["title"] for n in (await alice.get("/notes")).json()] == ["alpha plan"]
    assert [n["title"] for n in (await bob.get("/notes")).json()] == ["beta plan"]
    in_beta = await dominus.db.query("notes", schema="tenant_beta_co")
    assert [row["title"] for row in in_beta["rows"]] == ["beta plan"]
    in_alpha = await dominus.db.query("notes", schema="tenant_alpha")
    assert [row["title"] for row in in_alpha["rows"]] == ["alpha plan"]


async def test_files_of_another_tenant_are_out_of_reach(dominus: Dominus, dominus_user_client: UserFactory) -> None:
    alice, bob = await _two_tenants(dominus, dominus_user_client)
    stored = await bob.post("/files", files={"upload": ("secret.txt", b"beta only", "text/plain")})
    assert stored.json() == {"path": "secret.txt", "category": "tenant-beta-co"}
    await alice.post("/files", files={"upload": ("mine.txt", b"alpha", "text/plain")})

    assert (await alice.get("/files")).json() == ["mine.txt"]
    missing = await alice.get("/files/secret.txt")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert (await bob.get("/files/secret.txt")).json() == {"text": "beta only", "filename": "secret.txt"}
    # An upload to the same path by Alice is a different object in her category.
    await alice.post("/files", files={"upload": ("secret.txt", b"alpha's own", "text/plain")})
    assert (await bob.get("/files/secret.txt")).json()["text"] == "beta only"
    beta = await dominus.files.list(category="tenant-beta-co")
    assert [item["path"] for item in beta["objects"]] == ["secret.txt"]


async def test_keys_of_another_tenant_are_out_of_reach(dominus: Dominus, dominus_user_client: UserFactory) -> None:
    alice, bob = await _two_tenants(dominus, dominus_user_client)
    assert (await bob.put("/kv/plan", params={"value": "beta"})).status_code == 200
    assert (await alice.get("/kv/plan")).json()["found"] is False
    assert (await alice.get("/kv")).json() == []
    await alice.put("/kv/plan", params={"value": "alpha"})
    assert (await bob.get("/kv/plan")).json()["value"] == "beta"
    assert (await alice.get("/kv/plan")).json()["value"] == "alpha"
    assert (await dominus.redis.get("plan", category="tenant-beta-co"))["value"] == "beta"
    assert (await dominus.redis.get("plan"))["found"] is False


async def test_views_take_no_schema_category_or_id(dominus: Dominus) -> None:
    """The views have no way to name another tenant's place: no ``schema``, ``category`` or ``file_id``."""
    import inspect

    view = TenantView(dominus, DominusTenant("00000000-0000-4000-8000-000000000000", "alpha", "Alpha"))
    for part in (view.db, view.files, view.redis):
        for name, method in inspect.getmembers(part, inspect.iscoroutinefunction):
            if name.startswith("_"):
                continue
            params = inspect.signature(method).parameters
            assert not {"schema", "category", "file_id", "new_category"} & set(params), (part, name)
            assert {"timeout", "max_retries"} <= set(params), (part, name)
    places = (view.db.schema, view.files.category, view.redis.category, view.cache.category)
    assert places == ("tenant_alpha", "tenant-alpha", "tenant-alpha", "tenant-alpha")
    with pytest.raises(NotFoundError):
        await view.files.fetch("nothing-here.txt")


def test_the_tenant_dependencies_can_be_imported_with_the_other_providers() -> None:
    import dominus_fastapi.deps as deps
    import dominus_fastapi.tenancy as tenancy

    assert deps.CurrentTenant is tenancy.CurrentTenant and deps.TenantData is tenancy.TenantData
    assert {"CurrentTenant", "TenantData"} <= set(deps.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        deps.Nope
