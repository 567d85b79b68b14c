"""A client used from several event loops (a script's ``asyncio.run`` calls), and after ``aclose()``.

These tests are synchronous on purpose: each ``asyncio.run`` makes and closes its own loop, as a script does.
Warnings are errors, so a socket or database connection left open by a dropped pool fails the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from dominus_fastapi import Dominus, DominusConnectionError
from dominus_fastapi.core.default import DefaultDominus
from tests.servers import LocalServer


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(startup_timeout=90.0) as running:
        yield running


@pytest.mark.slow
def test_a_client_follows_the_event_loop_over_http(server: LocalServer) -> None:
    client = Dominus(base_url=server.url, token=server.psk)

    async def write() -> int:
        await client.upsert("loop-key", "first")
        return client._transport.pool_connections()

    async def read() -> str:
        value = await client.get("loop-key")
        assert isinstance(value, str)
        return value

    assert asyncio.run(write()) >= 1
    assert asyncio.run(read()) == "first"  # no "Event loop is closed": a new pool in the new loop
    assert asyncio.run(read()) == "first"
    asyncio.run(client.aclose())
    assert client.closed

    async def closed() -> None:
        await client.get("loop-key")

    with pytest.raises(DominusConnectionError, match=r"make a new Dominus"):
        asyncio.run(closed())


@pytest.mark.slow
def test_the_default_client_reopens_after_aclose(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    client = DefaultDominus()
    monkeypatch.setenv("DOMINUS_BASE_URL", server.url)  # read at first use, not when the object was made
    monkeypatch.setenv("DOMINUS_TOKEN", server.psk or "")

    async def use() -> None:
        await client.upsert("reopen", "yes")
        assert await client.get("reopen") == "yes"
        await client.aclose()
        assert client.closed

    asyncio.run(use())
    asyncio.run(use())  # reopened on use


def test_embedded_data_dir_survives_loops_and_memory_says_it_cannot(tmp_path: Path) -> None:
    on_disk = Dominus(base_url=f"embedded://{tmp_path}")
    in_memory = Dominus(base_url="embedded:")

    async def write() -> None:
        await on_disk.upsert("k", "v")
        await in_memory.upsert("k", "v")

    async def read() -> None:
        assert await on_disk.get("k") == "v"
        with pytest.raises(DominusConnectionError, match=r"embedded:///path/to/dir"):
            await in_memory.get("k")  # its data ended with the first loop: never an empty answer

    async def close() -> None:
        await on_disk.aclose()
        await in_memory.aclose()

    asyncio.run(write())
    asyncio.run(read())
    asyncio.run(close())
