"""Hostile paths never leave the storage root; the upload cap refuses oversized files and stores nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dominus_fastapi import ValidationError
from tests.files.conftest import FileServer, file_server

HOSTILE_REFUSED = [
    "../../etc/passwd",
    "a/../../b",
    "./x",
    "..",
    "..\\..\\windows\\win.ini",
    "a\x00b",
    "nul\x00",
    "x" * 5000,
    "seg/" + "y" * 256,
    "/".join(["z"] * 600),  # over 1024 characters in all
    "\uff0e\uff0e/\uff0e\uff0e/etc/passwd",  # fullwidth dots fold to ".."
    "a/\u2025/b",  # TWO DOT LEADER folds to ".."
    "a/\ufe52\ufe52/b",  # small full stops
    "a/\uff3c/b",  # fullwidth reverse solidus folds to "\\"
    "line\nbreak",
    "del\x7f",
]


def _tree(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


async def test_hostile_paths_never_leave_the_storage_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0\n")
    etc_digest = hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest() if Path("/etc/passwd").exists() else ""
    async with file_server(tmp_path) as server:
        files = server.admin.files
        before = _tree(tmp_path)
        for path in HOSTILE_REFUSED:
            with pytest.raises(ValidationError) as info:
                await files.upload(b"evil", "evil.txt", path=path)
            assert info.value.status_code == 400 and info.value.details["field"] == "logical_path"
        for name in ("../passwd", "..\\passwd", "a\x00b", "n" * 5000):
            with pytest.raises(ValidationError):
                await server.admin.request(
                    "POST", "/api/archivist/upload", body={"filename": name, "file_content": "ZXZpbA=="}
                )
        with pytest.raises(ValidationError):
            await files.upload(b"evil", "evil.txt", category="../outside")
        for path in HOSTILE_REFUSED[:3]:
            with pytest.raises(ValidationError):
                await files.fetch(path=path)
            with pytest.raises(ValidationError):
                await files.create_folder(path)
        assert (await files.get_storage_stats())["total_objects"] == 0

        # Accepted, but only ever as names inside the category: absolute paths lose their leading "/".
        absolute = await files.upload(b"one", "passwd", path="/etc/passwd")
        assert absolute["path"] == "etc/passwd"
        assert (await files.upload(b"two", "passwd", path="//etc///passwd//"))["id"] == absolute["id"]
        slashy = await files.upload(b"three", "x", path="\u2215etc\u2215passwd")  # DIVISION SLASH is a letter here
        assert slashy["path"] == "\u2215etc\u2215passwd"
        composed = await files.upload(b"four", "cafe", path="caf\u00e9")
        decomposed = await files.upload(b"five", "cafe", path="cafe\u0301")
        assert composed["id"] == decomposed["id"]  # one object under Unicode normalisation
        dots = await files.upload(b"six", "x", path="a/...b/..c./x")
        assert dots["path"] == "a/...b/..c./x"

        after = _tree(tmp_path)
        created = after - before
        blobs = server.data_dir / "blobs"
        assert created, "accepted uploads were stored"
        for path in created:
            assert path.resolve().is_relative_to(server.data_dir.resolve()), path
        stored = _tree(blobs)
        assert len(stored) == 4  # etc/passwd (replaced once), the division-slash name, café, dots
        for path in stored:
            assert path.parent.parent == blobs and len(path.name) == 32 and int(path.name, 16) >= 0
        assert (outside / "passwd").read_text() == "root:x:0:0\n"
        if etc_digest:
            assert hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest() == etc_digest
        listed = {o["path"] for o in (await files.list())["objects"]}
        assert listed == {"etc/passwd", "\u2215etc\u2215passwd", "caf\u00e9", "a/...b/..c./x"}


async def test_upload_cap_is_inclusive_and_the_next_byte_is_413(tmp_path: Path) -> None:
    async with file_server(tmp_path, upload_max_bytes=1024) as server:
        files = server.admin.files
        assert (await files.upload(b"x" * 1024, "max.bin"))["size"] == 1024
        with pytest.raises(ValidationError) as info:
            await files.upload(b"x" * 1025, "over.bin")
        assert info.value.status_code == 413 and info.value.code == "payload_too_large"
        assert [o["path"] for o in (await files.list())["objects"]] == ["max.bin"]


async def test_fifty_mebibytes_plus_one_byte_is_413_with_nothing_stored(files_server: FileServer) -> None:
    files = files_server.admin.files
    with pytest.raises(ValidationError) as info:
        await files.upload(b"\0" * (50 * 1024 * 1024 + 1), "huge.bin")
    assert info.value.status_code == 413 and info.value.code == "payload_too_large"
    assert (await files.get_storage_stats())["total_objects"] == 0
    blobs = files_server.data_dir / "blobs"
    assert not blobs.exists() or _tree(blobs) == set()


async def test_corrupted_blob_is_never_served(files_server: FileServer) -> None:
    files = files_server.admin.files
    record = await files.upload(b"original bytes", "doc.txt")
    (blob,) = _tree(files_server.data_dir / "blobs")
    blob.write_bytes(b"flipped bytes!")
    from dominus_fastapi import ServiceError

    with pytest.raises(ServiceError) as info:
        await files.fetch(record["id"])
    assert info.value.status_code == 500
    link = await files.download(record["id"])
    response = await files_server.get(link["download_url"])
    assert response.status_code == 500 and response.content != b"flipped bytes!"
