"""Archivist through the SDK against a real in-process server with a data directory."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import datetime, timedelta, timezone

import pytest

from dominus_fastapi import AuthorizationError, ConflictError, NotFoundError, ValidationError
from tests.files.conftest import FileServer

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


async def test_upload_fetch_and_record(files_server: FileServer) -> None:
    files = files_server.admin.files
    payload = bytes(range(256)) * 10
    record = await files.upload(payload, "report.pdf", path="/reports//2025/q1.pdf/", tags=["q1", "finance"])
    assert record["path"] == "reports/2025/q1.pdf"
    assert record["category"] == "general"
    assert record["filename"] == "report.pdf"
    assert record["content_type"] == "application/pdf"
    assert record["size"] == len(payload)
    assert record["sha256"] == hashlib.sha256(payload).hexdigest() and HEX64.match(record["sha256"])
    assert record["tags"] == ["q1", "finance"] and record["description"] is None
    assert record["is_compliance"] is False and record["retention_until"] is None
    fetched = await files.fetch(record["id"])
    assert fetched == {
        "data": payload,
        "filename": "report.pdf",
        "content_type": "application/pdf",
        "size": len(payload),
        "id": record["id"],
        "path": "reports/2025/q1.pdf",
    }
    by_path = await files.fetch(category="general", path="reports/2025/q1.pdf")
    assert by_path["data"] == payload


async def test_upload_takes_file_like_objects_and_defaults(files_server: FileServer) -> None:
    files = files_server.admin.files
    record = await files.upload(io.BytesIO(b"col\n1\n"), "data.csv", category="exports")
    assert record["path"] == "data.csv" and record["category"] == "exports"
    assert record["content_type"] == "text/csv"
    odd = await files.upload(b"\x00\x01", "blob.unknownext")
    assert odd["content_type"] == "application/octet-stream"
    explicit = await files.upload(b"{}", "x.bin", content_type="application/json")
    assert explicit["content_type"] == "application/json"
    assert (await files.fetch(record["id"]))["data"] == b"col\n1\n"


async def test_overwrite_keeps_id_and_replaces_content(files_server: FileServer) -> None:
    files = files_server.admin.files
    first = await files.upload(b"v1", "a.txt", tags=["old"])
    files_server.wall.advance(10)
    second = await files.upload(b"version two", "a.txt")
    assert second["id"] == first["id"]
    assert second["created_at"] == first["created_at"] and second["updated_at"] != first["updated_at"]
    assert second["sha256"] == hashlib.sha256(b"version two").hexdigest() and second["tags"] == []
    assert (await files.fetch(first["id"]))["data"] == b"version two"
    blobs = [p for p in (files_server.data_dir / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 1, "the replaced content's blob is removed"


async def test_download_url_serves_raw_bytes_until_expiry(files_server: FileServer) -> None:
    files = files_server.admin.files
    payload = b"\x89PNG raw bytes \x00\xff"
    record = await files.upload(payload, "pic.png")
    link = await files.download(record["id"], expires_seconds=120)
    assert set(link) >= {"download_url", "expires_at", "id", "path", "filename", "content_type", "size"}
    assert link["id"] == record["id"] and link["size"] == len(payload) and link["filename"] == "pic.png"
    expires = _parse(link["expires_at"])
    assert expires - datetime.fromtimestamp(files_server.wall(), timezone.utc) <= timedelta(seconds=120)
    response = await files_server.get(link["download_url"])
    assert response.status_code == 200
    assert response.content == payload
    assert hashlib.sha256(response.content).hexdigest() == record["sha256"]
    assert response.headers["content-type"].startswith("image/png")
    files_server.wall.advance(119)
    assert (await files_server.get(link["download_url"])).status_code == 200
    files_server.wall.advance(2)
    expired = await files_server.get(link["download_url"])
    assert expired.status_code == 404 and expired.headers["content-type"].startswith("text/plain")
    # A tampered token is refused as well.
    fresh = await files.download(record["id"])
    tampered = fresh["download_url"][:-3] + ("AAA" if not fresh["download_url"].endswith("AAA") else "BBB")
    assert (await files_server.get(tampered)).status_code == 404
    assert (await files_server.get(fresh["download_url"][:-3] + "%C3%A9%C3%A9")).status_code == 404
    # And a deleted object's URL stops working.
    await files.delete(record["id"])
    assert (await files_server.get(fresh["download_url"])).status_code == 404


async def test_download_checks_expiry_bounds(files_server: FileServer) -> None:
    files = files_server.admin.files
    record = await files.upload(b"x", "x.txt")
    for seconds in (59, 86401):
        with pytest.raises(ValidationError):
            await files.download(record["id"], expires_seconds=seconds)
        with pytest.raises(ValidationError) as info:
            await files_server.admin.request(
                "POST", "/api/archivist/download", body={"id": record["id"], "expires_seconds": seconds}, safe=True
            )
        assert info.value.status_code == 400 and info.value.details["field"] == "expires_seconds"


async def test_target_rules(files_server: FileServer) -> None:
    files = files_server.admin.files
    with pytest.raises(ValidationError):
        await files.fetch()
    with pytest.raises(ValidationError) as info:
        await files_server.admin.request("POST", "/api/archivist/fetch", body={}, safe=True)
    assert info.value.status_code == 400
    with pytest.raises(NotFoundError):
        await files.fetch("00000000-0000-4000-8000-000000000000")
    with pytest.raises(NotFoundError):
        await files.download(category="general", path="nope.txt")
    with pytest.raises(NotFoundError):
        await files.delete(path="nope.txt")


async def test_list_with_prefix_and_cursor(files_server: FileServer) -> None:
    files = files_server.admin.files
    for name in ("b/2.txt", "a/1.txt", "a/3.txt", "a/2.txt", "c.txt"):
        await files.upload(name.encode(), name.rsplit("/", 1)[-1], path=name)
    await files.upload(b"z", "z.txt", category="alpha")
    await files.create_folder("a/empty")
    everything = await files.list()
    assert [(o["category"], o["path"]) for o in everything["objects"]] == [
        ("alpha", "z.txt"),
        ("general", "a/1.txt"),
        ("general", "a/2.txt"),
        ("general", "a/3.txt"),
        ("general", "b/2.txt"),
        ("general", "c.txt"),
    ]
    assert everything["count"] == 6 and everything["cursor"] is None
    pages, cursor = [], None
    while True:
        page = await files.list(category="general", prefix="a/", limit=2, cursor=cursor)
        assert page["count"] == len(page["objects"])
        pages.append([o["path"] for o in page["objects"]])
        cursor = page["cursor"]
        if cursor is None:
            break
    assert pages == [["a/1.txt", "a/2.txt"], ["a/3.txt"]]
    with pytest.raises(ValidationError):
        await files.list(limit=1001)
    with pytest.raises(ValidationError):
        await files.list(category="general", prefix="b/", cursor=(await files.list(prefix="a/", limit=1))["cursor"])


async def test_browse_folders_first_then_files(files_server: FileServer) -> None:
    files = files_server.admin.files
    for path in ("docs/b.txt", "docs/a.txt", "docs/sub/deep.txt", "docs/zeta/x.txt", "top.txt"):
        await files.upload(b"1", path.rsplit("/", 1)[-1], path=path)
    created = await files.create_folder("docs/empty")
    assert created["created"] is True and created["path"] == "docs/empty"
    assert created["placeholder_id"] and created["message"]
    again = await files.create_folder("/docs/empty/")
    assert again["created"] is False and again["placeholder_id"] == created["placeholder_id"]
    await files.upload(b"1", "m.txt", category="media")

    listing = await files.browse("docs", category="general")
    assert listing["path"] == "/docs" and listing["cursor"] is None
    assert [f["name"] for f in listing["folders"]] == ["empty", "sub", "zeta"]
    assert listing["folders"][0] == {"name": "empty", "path": "docs/empty"}
    assert [f["path"] for f in listing["files"]] == ["docs/a.txt", "docs/b.txt"]
    assert "sha256" in listing["files"][0]

    root = await files.browse("/")
    assert [f["name"] for f in root["folders"]] == ["general", "media"] and root["files"] == []
    inside = await files.browse("/general")
    assert [f["path"] for f in inside["folders"]] == ["general/docs"]
    assert [f["path"] for f in inside["files"]] == ["top.txt"]

    first = await files.browse("docs", category="general", limit=2)
    assert "count" not in first
    assert [f["name"] for f in first["folders"]] == ["empty", "sub"] and first["files"] == []
    second = await files.browse("docs", category="general", limit=2, cursor=first["cursor"])
    assert [f["name"] for f in second["folders"]] == ["zeta"]
    assert [f["path"] for f in second["files"]] == ["docs/a.txt"]
    third = await files.browse("docs", category="general", limit=2, cursor=second["cursor"])
    assert [f["path"] for f in third["files"]] == ["docs/b.txt"] and third["cursor"] is None
    with pytest.raises(NotFoundError):
        await files.browse("nothing-here", category="general")

    # The placeholder never shows up as a file, in listings or in statistics.
    assert all(not o["path"].endswith(".folder") for o in (await files.list())["objects"])
    assert (await files.get_storage_stats())["by_category"]["general"]["objects"] == 5


async def test_move_update_and_delete(files_server: FileServer) -> None:
    files = files_server.admin.files
    record = await files.upload(b"content", "a.txt", path="inbox/a.txt")
    other = await files.upload(b"other", "b.txt", path="inbox/b.txt")
    moved = await files.move(record["id"], new_path="archive/2025/a.txt")
    assert moved["id"] == record["id"] and moved["path"] == "archive/2025/a.txt" and moved["category"] == "general"
    moved = await files.move(record["id"], new_category="cold")
    assert moved["category"] == "cold" and moved["path"] == "archive/2025/a.txt"
    assert (await files.fetch(category="cold", path="archive/2025/a.txt"))["data"] == b"content"
    with pytest.raises(NotFoundError):
        await files.fetch(path="inbox/a.txt")
    with pytest.raises(ConflictError) as info:
        await files.move(other["id"], new_category="cold", new_path="archive/2025/a.txt")
    assert info.value.code == "conflict"
    with pytest.raises(ValidationError):
        await files.move(other["id"])

    updated = await files.update_meta(record["id"], tags=["t1"], description="The first file")
    assert updated["tags"] == ["t1"] and updated["description"] == "The first file"
    updated = await files.update_meta(record["id"], description="Changed")
    assert updated["tags"] == ["t1"] and updated["description"] == "Changed"
    with pytest.raises(ValidationError):
        await files.update_meta(record["id"], description="x" * 2001)
    with pytest.raises(ValidationError):
        await files.update_meta(record["id"], tags=["x"] * 51)

    assert await files.delete(record["id"]) == {"deleted": True, "id": record["id"]}
    with pytest.raises(NotFoundError):
        await files.fetch(record["id"])
    assert await files.delete(category="general", path="inbox/b.txt") == {"deleted": True, "id": other["id"]}
    assert [p for p in (files_server.data_dir / "blobs").rglob("*") if p.is_file()] == []


async def test_stats_and_categories(files_server: FileServer) -> None:
    files = files_server.admin.files
    await files.upload(b"12345", "a.txt")
    await files.upload(b"123", "b.txt")
    await files.upload(b"1234567", "c.txt", category="media")
    await files.create_folder("only-folder", category="empty-cat")
    stats = await files.get_storage_stats()
    assert stats == {
        "total_objects": 3,
        "total_size_bytes": 15,
        "by_category": {
            "empty-cat": {"objects": 0, "size_bytes": 0},
            "general": {"objects": 2, "size_bytes": 8},
            "media": {"objects": 1, "size_bytes": 7},
        },
    }
    categories = (await files.list_categories())["categories"]
    assert categories == [
        {"name": "empty-cat", "object_count": 0, "total_size_bytes": 0},
        {"name": "general", "object_count": 2, "total_size_bytes": 8},
        {"name": "media", "object_count": 1, "total_size_bytes": 7},
    ]


async def test_reserved_categories_and_views(files_server: FileServer) -> None:
    admin, user = files_server.admin.files, files_server.user.files
    await admin.upload(b"secret", "s.txt", category="_internal")
    await admin.upload(b"public", "p.txt", category="shared")
    with pytest.raises(AuthorizationError):
        await user.upload(b"x", "x.txt", category="_internal")
    with pytest.raises(AuthorizationError):
        await user.fetch(category="_internal", path="s.txt")
    with pytest.raises(AuthorizationError):
        await user.list(category="_internal")
    assert [o["category"] for o in (await user.list())["objects"]] == ["shared"]
    assert [c["name"] for c in (await user.list_categories())["categories"]] == ["shared"]
    assert [c["name"] for c in (await admin.list_categories())["categories"]] == ["_internal", "shared"]
    assert list((await user.get_storage_stats())["by_category"]) == ["shared"]

    user_views = await user.list_views(include_reserved=True)
    assert user_views == {
        "views": [{"name": "all", "categories": ["shared"], "reserved": False}],
        "total_views": 1,
        "is_admin": False,
    }
    admin_views = await admin.list_views()
    assert [v["name"] for v in admin_views["views"]] == ["all"] and admin_views["is_admin"] is True
    admin_views = await admin.list_views(include_reserved=True)
    assert admin_views["views"] == [
        {"name": "all", "categories": ["shared"], "reserved": False},
        {"name": "reserved", "categories": ["_internal"], "reserved": True},
    ]
    assert admin_views["total_views"] == 2

    in_all = await user.list_categories_in_view("all")
    assert in_all == {"view": "all", "categories": [{"name": "shared", "object_count": 1, "total_size_bytes": 6}]}
    with pytest.raises(AuthorizationError):
        await user.list_categories_in_view("reserved")
    assert [c["name"] for c in (await admin.list_categories_in_view("reserved"))["categories"]] == ["_internal"]
    with pytest.raises(NotFoundError):
        await admin.list_categories_in_view("no-such-view")

    assert [f["name"] for f in (await user.browse("/"))["folders"]] == ["shared"]
    with pytest.raises(AuthorizationError):
        await user.browse("/", view="reserved")
    assert [f["name"] for f in (await admin.browse("/", view="reserved"))["folders"]] == ["_internal"]


async def test_folder_delete_rules(files_server: FileServer) -> None:
    files = files_server.admin.files
    await files.create_folder("projects/x")
    await files.upload(b"1", "a.txt", path="projects/x/a.txt")
    await files.upload(b"2", "b.txt", path="projects/x/deep/b.txt")
    with pytest.raises(ConflictError) as info:
        await files.delete_folder("projects/x")
    assert info.value.code == "conflict"
    assert (await files.get_storage_stats())["total_objects"] == 2
    done = await files.delete_folder("projects/x", force=True)
    assert done == {"deleted": True, "path": "projects/x", "deleted_count": 2}
    assert (await files.list())["objects"] == []
    with pytest.raises(NotFoundError):
        await files.delete_folder("projects/x")
    await files.create_folder("empty")
    assert (await files.delete_folder("empty"))["deleted_count"] == 0
    with pytest.raises(NotFoundError):
        await files.browse("empty", category="general")


async def test_paths_and_folders_do_not_overlap(files_server: FileServer) -> None:
    files = files_server.admin.files
    await files.upload(b"1", "a", path="dir/a")
    with pytest.raises(ConflictError):
        await files.upload(b"2", "b", path="dir/a/b")  # "dir/a" is a file
    with pytest.raises(ConflictError):
        await files.upload(b"2", "dir", path="dir")  # "dir" is a folder
    with pytest.raises(ConflictError):
        await files.create_folder("dir/a")
    with pytest.raises(ValidationError):
        await files.upload(b"2", "x", path="dir/.folder")


async def test_factory_reset(files_server: FileServer) -> None:
    admin, user = files_server.admin.files, files_server.user.files
    await admin.upload(b"1", "a.txt")
    await admin.upload(b"2", "b.txt", category="media")
    await admin.create_folder("f")
    kept = await admin.upload(b"3", "c.txt", compliance=True, actor="user-1")
    with pytest.raises(AuthorizationError):
        await user.factory_reset(confirm=True)
    with pytest.raises(ValidationError) as info:
        await admin.factory_reset()
    assert info.value.details["field"] == "confirm"
    assert (await admin.get_storage_stats())["total_objects"] == 3
    result = await admin.factory_reset(confirm=True)
    assert result == {"reset": True, "deleted_count": 2, "retained_count": 1, "by_category": {"general": 1, "media": 1}}
    assert [o["id"] for o in (await admin.list())["objects"]] == [kept["id"]]
    result = await admin.factory_reset(confirm=True, preserve_compliance=False)
    assert result == {"reset": True, "deleted_count": 1, "retained_count": 0, "by_category": {"general": 1}}
    assert (await admin.list())["objects"] == []
    resets = [r for r in await files_server.audit() if r["context"]["operation"] == "factory_reset"]
    assert [r["context"]["preserve_compliance"] for r in resets] == [True, False]
    assert resets[1]["context"]["compliance_deleted"] == [kept["id"]]


async def test_validation_of_upload_fields(files_server: FileServer) -> None:
    files = files_server.admin.files
    for bad_name in ("", "a/b", "a\\b", "tab\there", "x" * 256):
        with pytest.raises(ValidationError):
            await files.upload(b"1", bad_name)
    with pytest.raises(ValidationError):
        await files.upload(b"1", "a.txt", tags=["x" * 65])
    with pytest.raises(ValidationError):
        await files.upload(b"1", "a.txt", category="Bad Category")
    with pytest.raises(ValidationError):
        await files.upload(b"1", "a.txt", compliance=True, actor="u", retention_days=3651)
    with pytest.raises(ValidationError):
        await files.upload("text is not bytes", "a.txt")  # type: ignore[arg-type]
    for bad_type in ("text/plain\r\nX-Injected: 1", "no-slash", "a/b c"):
        with pytest.raises(ValidationError) as info:
            await files.upload(b"1", "a.txt", content_type=bad_type)
        assert info.value.details["field"] == "content_type"
    body = {"filename": "a.txt", "file_content": "not base64!!"}
    with pytest.raises(ValidationError) as info:
        await files_server.admin.request("POST", "/api/archivist/upload", body=body)
    assert info.value.details["field"] == "file_content"
    assert (await files.get_storage_stats())["total_objects"] == 0
