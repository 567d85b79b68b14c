"""Every ``redis.*``, ``files.*`` and ``admin.*`` name of ``docs/endpoints.json`` exists and reaches its endpoint.

Each method is called once against the real server; the client's request method is wrapped to record what the
SDK sent (method, path, body fields, safe, transfer), which is then compared with the catalogue entry.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from dominus_fastapi import Dominus

CATALOGUE = json.loads((Path(__file__).parents[2] / "docs" / "endpoints.json").read_text())
ENTRIES = {
    name: entry
    for entry in CATALOGUE
    if entry["service"] in ("whisperer", "archivist", "admin")
    for name in entry["python"]
}
TRANSFER = {"files.upload", "files.fetch"}


def _matches(template: str, path: str) -> bool:
    pattern = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template)) + "$"
    return re.match(pattern, path) is not None


async def test_every_catalogue_name_reaches_its_endpoint(
    local_client: Dominus, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[dict[str, Any]] = []
    original = local_client.request

    async def recording(method: str, path: str, **options: Any) -> Any:
        sent.append({"method": method, "path": path, **options})
        return await original(method, path, **options)

    monkeypatch.setattr(local_client, "request", recording)
    d = local_client
    record = await d.files.upload(b"abc", "a.txt", path="dir/a.txt", tags=["t"])
    calls: dict[str, Any] = {
        "redis.set": lambda: d.redis.set("k", 1, ttl=60, category="c"),
        "redis.get": lambda: d.redis.get("k", category="c", nudge=True, ttl=120),
        "redis.list": lambda: d.redis.list(prefix="k", category="c", limit=10),
        "redis.mget": lambda: d.redis.mget([{"logical_path": "k", "category": "c"}]),
        "redis.setnx": lambda: d.redis.setnx("lock", "me", ttl=60, category="c"),
        "redis.incr": lambda: d.redis.incr("n", delta=2, ttl=60, category="c"),
        "redis.hset": lambda: d.redis.hset("h", "f", 1, ttl=60, category="c"),
        "redis.hget": lambda: d.redis.hget("h", "f", category="c"),
        "redis.hgetall": lambda: d.redis.hgetall("h", category="c"),
        "redis.hdel": lambda: d.redis.hdel("h", "f", category="c"),
        "redis.delete": lambda: d.redis.delete("k", category="c"),
        "files.upload": lambda: d.files.upload(b"x", "b.txt", "text/plain", "general", "dir/b.txt", ["t"]),
        "files.download": lambda: d.files.download(record["id"], expires_seconds=60),
        "files.fetch": lambda: d.files.fetch(category="general", path="dir/a.txt"),
        "files.list": lambda: d.files.list(category="general", prefix="dir/", limit=5),
        "files.move": lambda: d.files.move(record["id"], new_category="moved", new_path="m/a.txt"),
        "files.update_meta": lambda: d.files.update_meta(record["id"], tags=["u"], description="d"),
        "files.browse": lambda: d.files.browse("/", view="all", limit=5),
        "files.get_storage_stats": lambda: d.files.get_storage_stats(),
        "files.list_categories": lambda: d.files.list_categories(),
        "files.list_views": lambda: d.files.list_views(include_reserved=True),
        "files.list_categories_in_view": lambda: d.files.list_categories_in_view("all"),
        "files.create_folder": lambda: d.files.create_folder("folder", category="general"),
        "files.delete_folder": lambda: d.files.delete_folder("folder", category="general", force=True),
        "files.delete": lambda: d.files.delete(record["id"]),
        "files.factory_reset": lambda: d.files.factory_reset(confirm=True),
        "admin.reseed_admin_category": lambda: d.admin.reseed_admin_category(),
        "admin.reset_admin_category": lambda: d.admin.reset_admin_category(),
        "admin.set_faults": lambda: d.admin.set_faults(latency_ms=0),
        "admin.get_faults": lambda: d.admin.get_faults(),
    }
    assert set(calls) == set(ENTRIES), "every catalogue name is exercised"
    for name, call in calls.items():
        sent.clear()
        await call()
        assert len(sent) == 1, name
        request, entry = sent[0], ENTRIES[name]
        assert request["method"] == entry["method"], name
        assert _matches(entry["path"], request["path"]), (name, request["path"])
        assert request.get("safe", False) == entry["safe"], name
        assert request.get("transfer", False) == (name in TRANSFER), name
        body = request.get("body") or {}
        assert set(body) <= set(entry["request"]), (name, set(body) - set(entry["request"]))
