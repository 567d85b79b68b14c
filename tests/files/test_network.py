"""Archivist over real sockets: ``dominus-local serve`` in a subprocess, download URLs, and a SIGKILL mid-upload."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import httpx
import pytest

from dominus_fastapi import Dominus
from tests.servers import LocalServer

pytestmark = pytest.mark.slow


async def test_sigkill_during_uploads_then_download_urls_after_restart(tmp_path: Path) -> None:
    """Killing the server mid-upload leaves no partial or corrupt object; after the restart, a download URL
    answers a plain HTTP GET over the network with the stored bytes (one server pair keeps the suite fast)."""
    data_dir = tmp_path / "data"
    payloads = {f"batch/file-{i:02d}.bin": bytes([i]) * (2 * 1024 * 1024 + i) for i in range(12)}
    digests = {path: hashlib.sha256(data).hexdigest() for path, data in payloads.items()}
    server = LocalServer(data_dir=data_dir)
    await asyncio.to_thread(server.start)
    psk = server.psk
    finished: dict[str, str] = {}
    client = Dominus(base_url=server.url, token=psk, max_retries=0)
    try:
        await client.files.upload(b"warm-up", "warm.txt")

        async def upload(path: str) -> None:
            record = await client.files.upload(payloads[path], path.rsplit("/", 1)[-1], path=path)
            finished[path] = record["id"]

        tasks = [asyncio.create_task(upload(path)) for path in payloads]
        while not finished and not all(task.done() for task in tasks):
            await asyncio.sleep(0.005)
        assert server.process is not None
        server.process.kill()  # SIGKILL: no shutdown hooks, no flushing
        server.process.wait()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await client.aclose()
        await asyncio.to_thread(server.stop)
    assert finished, "at least one upload completed before the kill"
    assert any(isinstance(outcome, Exception) for outcome in outcomes), "the kill interrupted some uploads"

    async with LocalServer(data_dir=data_dir, psk=psk) as restarted:
        client = Dominus(base_url=restarted.url, token=psk)
        try:
            objects = (await client.files.list(prefix="batch/", limit=100))["objects"]
            visible = {o["path"]: o for o in objects}
            assert set(finished) <= set(visible), "an acknowledged upload was lost"
            for path, record in visible.items():
                assert record["sha256"] == digests[path] and record["size"] == len(payloads[path])
                fetched = await client.files.fetch(record["id"])
                assert fetched["data"] == payloads[path]

            path, record = next(iter(visible.items()))
            link = await client.files.download(record["id"], expires_seconds=300)
            assert link["download_url"].startswith(f"{restarted.url}/archivist/blob/")
            async with httpx.AsyncClient() as http:
                response = await http.get(link["download_url"])  # no Authorization header
                bogus = await http.get(f"{restarted.url}/archivist/blob/not-a-token")
            assert response.status_code == 200 and response.content == payloads[path]
            assert hashlib.sha256(response.content).hexdigest() == record["sha256"]
            assert response.headers["content-type"] == "application/octet-stream"
            assert "file-" in response.headers["content-disposition"]
            assert bogus.status_code == 404 and bogus.headers["content-type"].startswith("text/plain")
        finally:
            await client.aclose()
