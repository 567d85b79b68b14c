"""Archivist in ``embedded:`` mode: blobs in memory, download URLs reachable through the client's transport."""

from __future__ import annotations

import hashlib
from pathlib import Path

from dominus_fastapi import Dominus


async def test_ephemeral_instance_round_trip(embedded: Dominus) -> None:
    payload = b"in-memory bytes" * 1000
    record = await embedded.files.upload(payload, "mem.bin", path="a/mem.bin")
    assert (await embedded.files.fetch(record["id"]))["data"] == payload
    link = await embedded.files.download(record["id"])
    assert link["download_url"].startswith("http://dominus-local.embedded/archivist/blob/")  # spec 7.5
    # The pseudo-origin resolves nowhere; only this client's transport reaches it, without credentials.
    response = await embedded._transport.http.get(link["download_url"])
    assert response.status_code == 200 and response.content == payload
    assert hashlib.sha256(response.content).hexdigest() == record["sha256"]
    assert (await embedded.files.browse("/"))["folders"] == [{"name": "general", "path": "general"}]


async def test_data_directory_keeps_files_across_restarts(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path / 'data'}"
    first = Dominus(base_url=url)
    try:
        record = await first.files.upload(b"persisted", "p.txt", tags=["keep"])
        await first.files.create_folder("empty")
    finally:
        await first.aclose()
    second = Dominus(base_url=url)
    try:
        fetched = await second.files.fetch(category="general", path="p.txt")
        assert fetched["data"] == b"persisted" and fetched["id"] == record["id"]
        assert [f["name"] for f in (await second.files.browse("/general"))["folders"]] == ["empty"]
    finally:
        await second.aclose()
