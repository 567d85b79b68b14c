"""Compliance objects: retention blocks deletion, moves and overwrites; every access is audited."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from dominus_fastapi import ConflictError, Dominus, ValidationError
from tests.files.conftest import FileServer


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


async def test_compliance_upload_needs_an_actor_before_sending() -> None:
    client = Dominus(base_url="http://127.0.0.1:9", token="0" * 64, max_retries=0)
    try:
        with pytest.raises(ValidationError) as info:
            await client.files.upload(b"x", "x.txt", compliance=True)
        assert info.value.status_code is None and info.value.details["field"] == "actor"
    finally:
        await client.aclose()


async def test_server_requires_owner_on_compliance_upload(files_server: FileServer) -> None:
    body = {"filename": "x.txt", "file_content": "eA==", "is_compliance": True}
    with pytest.raises(ValidationError) as info:
        await files_server.admin.request("POST", "/api/archivist/upload", body=body)
    assert info.value.details["field"] == "owner_user_id"
    assert (await files_server.admin.files.get_storage_stats())["total_objects"] == 0


async def test_retention_blocks_delete_move_and_overwrite(files_server: FileServer) -> None:
    files = files_server.admin.files
    now = datetime.fromtimestamp(files_server.wall(), timezone.utc)
    record = await files.upload(b"ledger", "ledger.csv", path="records/ledger.csv", compliance=True, actor="auditor-7")
    assert record["is_compliance"] is True and record["owner_user_id"] == "auditor-7"
    assert abs(_parse(record["retention_until"]) - (now + timedelta(days=90))) < timedelta(seconds=1)
    short = await files.upload(b"memo", "memo.txt", compliance=True, actor="auditor-7", retention_days=1)
    assert abs(_parse(short["retention_until"]) - (now + timedelta(days=1))) < timedelta(seconds=1)

    for call in (files.fetch(record["id"]), files.download(record["id"]), files.delete(record["id"])):
        with pytest.raises(ValidationError) as info:
            await call
        assert info.value.status_code == 400 and info.value.details["field"] == "actor_user_id"
    with pytest.raises(ConflictError) as conflict:
        await files.delete(record["id"], actor="auditor-7")
    assert conflict.value.code == "retention_active" and conflict.value.status_code == 409
    with pytest.raises(ConflictError) as conflict:
        await files.move(record["id"], new_path="elsewhere.csv")
    assert conflict.value.code == "retention_active"
    with pytest.raises(ConflictError) as conflict:
        await files.upload(b"tampered", "ledger.csv", path="records/ledger.csv")
    assert conflict.value.code == "retention_active"
    with pytest.raises(ConflictError) as conflict:
        await files.delete_folder("records", force=True)
    assert conflict.value.code == "retention_active"
    assert (await files.fetch(record["id"], actor="auditor-7"))["data"] == b"ledger"

    updated = await files.update_meta(record["id"], tags=["fy2025"], description="General ledger")
    assert updated["tags"] == ["fy2025"] and updated["sha256"] == record["sha256"]

    files_server.wall.advance(90 * 86400 + 1)
    assert await files.delete(record["id"], actor="auditor-9") == {"deleted": True, "id": record["id"]}
    assert await files.delete(short["id"], actor="auditor-9") == {"deleted": True, "id": short["id"]}


async def test_every_access_is_audited_with_the_actor(files_server: FileServer) -> None:
    files = files_server.admin.files
    plain = await files.upload(b"plain", "plain.txt")
    await files.fetch(plain["id"])
    record = await files.upload(b"secret", "s.txt", category="hr", compliance=True, actor="alice", retention_days=1)
    await files.fetch(record["id"], actor="bob")
    await files.download(category="hr", path="s.txt", actor="carol", expires_seconds=60)
    with pytest.raises(ConflictError):
        await files.delete(record["id"], actor="dave")  # refused: nothing was accessed, nothing recorded
    files_server.wall.advance(86400 + 1)
    await files.delete(record["id"], actor="erin")

    records = await files_server.audit()
    assert [(r["context"]["operation"], r["context"]["actor"]) for r in records] == [
        ("upload", "alice"),
        ("fetch", "bob"),
        ("download", "carol"),
        ("delete", "erin"),
    ]
    for entry in records:
        context = entry["context"]
        assert entry["category"] == "audit"
        assert context["service"] == "archivist"
        assert (context["id"], context["category"], context["path"]) == (record["id"], "hr", "s.txt")
        assert context["subject_type"] == "client" and context["request_id"]
        assert entry["message"].startswith(f"archivist.{context['operation']} hr/s.txt")
