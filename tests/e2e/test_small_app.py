"""A small multi-tenant notes app, built only from the public API of ``dominus_fastapi``, end to end.

Sign-in (the portal router), notes scoped to the user's tenant (``TenantData``), attachments streamed back
(``file_response``), a manager-only page (``require_role``), a cached list (``@cached``), errors of its own,
and a start-up that declares what the app needs and is safe to run on every start. The test starts the app
twice on the same data directory (a restart), then proves that two tenants reach nothing of each other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, UploadFile
from pydantic import BaseModel, Field
from starlette.responses import StreamingResponse

from dominus_fastapi import (
    CurrentTenant,
    Dominus,
    NotFoundError,
    TenantData,
    cached,
    dominus_lifespan,
    file_response,
    require_role,
    setup_dominus,
)
from dominus_fastapi.testing import create_test_user, signed_in_client

NOTES = [
    {"name": "id", "type": "SERIAL", "constraints": ["PRIMARY KEY"]},
    {"name": "title", "type": "VARCHAR(200)", "constraints": ["NOT NULL"]},
    {"name": "body", "type": "TEXT"},
]
TENANTS = {"acme": "Acme", "globex": "Globex"}


class NoteIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    body: str | None = None


class Note(BaseModel):
    id: int
    title: str
    body: str | None


async def declare(dominus: Dominus) -> dict[str, Any]:
    """What the app needs, created when missing: safe on every start."""
    await dominus.auth.ensure_scope("notes.write", "Write notes")
    await dominus.auth.ensure_role("editor", "Writes notes", scope_slugs=["notes.write"])
    await dominus.auth.ensure_role("manager", "Sees the tenant's figures")
    created: dict[str, Any] = {}
    for slug, name in TENANTS.items():
        await dominus.auth.ensure_tenant(name, slug)
        schema = await dominus.ddl.provision_tenant(slug, if_not_exists=True)
        table = await dominus.ddl.add_table("notes", NOTES, schema=schema["schema"], if_not_exists=True)
        created[slug] = (schema["created"], table["created"])
    return created


def create_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with dominus_lifespan()(app) as state:
            app.state.declared = await declare(state["dominus"])
            yield state

    app = FastAPI(lifespan=lifespan)
    setup_dominus(app, validation_errors="dominus")

    @app.get("/notes")
    @cached(ttl=120, tags=["notes"])
    async def list_notes(data: TenantData) -> list[Note]:
        return (await data.db.query("notes", sort_by="id", model=Note))["rows"]

    @app.get("/notes/{note_id}")
    async def read_note(note_id: int, data: TenantData) -> Note:
        rows = (await data.db.query("notes", {"id": note_id}, model=Note))["rows"]
        if not rows:
            raise NotFoundError("no such note", code="note_not_found")
        return rows[0]

    @app.post("/notes", status_code=201)
    async def add_note(note: NoteIn, data: TenantData) -> dict[str, Any]:
        row = await data.db.insert("notes", note.model_dump())
        await data.cache.invalidate("notes")
        return dict(row)

    @app.post("/notes/{note_id}/attachments")
    async def attach(note_id: int, upload: UploadFile, data: TenantData) -> dict[str, Any]:
        await read_note(note_id, data)
        name = upload.filename or "attachment"
        record = await data.files.upload(await upload.read(), name, upload.content_type, path=f"notes/{note_id}/{name}")
        return {"path": record["path"], "size": record["size"]}

    @app.get("/notes/{note_id}/attachments/{name}")
    async def download(note_id: int, name: str, data: TenantData) -> StreamingResponse:
        return file_response(await data.files.stream(f"notes/{note_id}/{name}"))

    @app.get("/figures")
    @require_role("manager")
    async def figures(data: TenantData, tenant: CurrentTenant) -> dict[str, Any]:
        notes = await data.db.query("notes", limit=1)
        files = await data.files.list(prefix="notes/")
        return {"tenant": tenant.name, "notes": notes["total"], "attachments": files["count"]}

    return app


@pytest.fixture
def dominus_seed_demo() -> bool:
    return False


async def test_small_multi_tenant_app(dominus_base_url: str) -> None:
    # First start on a new data directory: everything is created.
    first_app = create_app()
    async with LifespanManager(first_app, startup_timeout=60, shutdown_timeout=60):
        assert first_app.state.declared == {"acme": (True, True), "globex": (True, True)}

    # A restart on the same data: the same start-up finds everything and changes nothing.
    app = create_app()
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager, Dominus(
        base_url=dominus_base_url
    ) as admin:
        assert app.state.declared == {"acme": (False, False), "globex": (False, False)}
        slugs = [t["slug"] for t in (await admin.auth.list_tenants())["items"]]
        assert sorted(s for s in slugs if s in TENANTS) == ["acme", "globex"]  # not twice

        alice = signed_in_client(manager.app, await create_test_user(admin, tenants=["acme"], roles=["editor"]))
        mona = signed_in_client(manager.app, await create_test_user(admin, tenants=["acme"], roles=["manager"]))
        bob = signed_in_client(manager.app, await create_test_user(admin, tenants=["globex"], roles=["editor"]))
        async with alice, mona, bob:
            # Notes, a cached list invalidated by a write.
            assert (await alice.post("/notes", json={"title": "Q3 plan"})).status_code == 201
            listed = await alice.get("/notes")
            assert [n["title"] for n in listed.json()] == ["Q3 plan"]
            assert listed.headers["x-dominus-cache"] == "miss"
            assert (await alice.get("/notes")).headers["x-dominus-cache"] == "hit"
            await alice.post("/notes", json={"title": "Q4 plan", "body": "later"})
            assert [n["title"] for n in (await alice.get("/notes")).json()] == ["Q3 plan", "Q4 plan"]

            # Another tenant: its own list, its own cache entry, its own row ids.
            bob_list = await bob.get("/notes")
            assert bob_list.json() == [] and bob_list.headers["x-dominus-cache"] == "miss"
            await bob.post("/notes", json={"title": "Globex secret"})
            assert [n["title"] for n in (await bob.get("/notes")).json()] == ["Globex secret"]
            assert (await alice.get("/notes")).headers["x-dominus-cache"] == "hit"

            # Attachments, streamed back with their headers.
            pdf = b"%PDF-1.7\n" + bytes(range(256)) * 512
            stored = await alice.post("/notes/1/attachments", files={"upload": ("plan v1.pdf", pdf, "application/pdf")})
            assert stored.json() == {"path": "notes/1/plan v1.pdf", "size": len(pdf)}
            got = await alice.get("/notes/1/attachments/plan v1.pdf")
            assert got.status_code == 200 and got.content == pdf
            assert got.headers["content-length"] == str(len(pdf))
            assert got.headers["content-disposition"] == (
                "attachment; filename=\"plan v1.pdf\"; filename*=UTF-8''plan%20v1.pdf"
            )
            # Bob's note 1 exists, but Alice's attachment path leads nowhere in his tenant.
            assert (await bob.get("/notes/1")).json()["title"] == "Globex secret"
            assert (await bob.get("/notes/1/attachments/plan v1.pdf")).status_code == 404

            # The manager-only page.
            refused = await alice.get("/figures")
            assert refused.status_code == 403 and refused.json()["code"] == "missing_role"
            assert (await mona.get("/figures")).json() == {"tenant": "Acme", "notes": 2, "attachments": 1}

            # Errors of the app's own, in one shape with a request id.
            missing = await alice.get("/notes/99", headers={"X-Request-Id": "req-e2e-1"})
            assert missing.status_code == 404
            assert missing.json() == {"detail": "no such note", "code": "note_not_found", "request_id": "req-e2e-1"}
            invalid = await alice.post("/notes", json={"title": ""})
            assert invalid.status_code == 422 and invalid.json()["code"] == "validation_failed"
            assert [e["loc"] for e in invalid.json()["errors"]] == [["body", "title"]]

        # The two-tenant proof, read with the administrator client: each tenant's data is where it belongs.
        acme_rows = (await admin.db.query("notes", schema="tenant_acme", sort_by="id"))["rows"]
        globex_rows = (await admin.db.query("notes", schema="tenant_globex", sort_by="id"))["rows"]
        assert [r["title"] for r in acme_rows] == ["Q3 plan", "Q4 plan"]
        assert [r["title"] for r in globex_rows] == ["Globex secret"]
        acme_files = await admin.files.list(category="tenant-acme")
        assert [f["path"] for f in acme_files["objects"]] == ["notes/1/plan v1.pdf"]
        assert (await admin.files.list(category="tenant-globex"))["objects"] == []
        assert (await admin.redis.list(prefix="cache:", category="tenant-acme"))["keys"] == ["cache:/notes"]
        assert (await admin.redis.list(prefix="cache:", category="tenant-globex"))["keys"] == ["cache:/notes"]
        globex_entry = await admin.redis.get("cache:/notes", category="tenant-globex")
        assert [n["title"] for n in globex_entry["value"]["body"]] == ["Globex secret"]
