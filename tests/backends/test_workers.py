"""``dominus-local serve --workers 2`` on PostgreSQL, Redis and S3: both workers answer on the one port, and every
kind of state is shared between them: sessions, revocations, idempotency keys, setnx locks and files.

Which worker holds a connection is read from Linux's ``/proc`` (the server-side socket of the connection, and
the worker process that has it open), so the test pins one SDK client to each worker without the server saying
anything about its processes."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from dominus_fastapi import AuthenticationError, Dominus
from dominus_local import revocation
from tests.conftest import make_fast
from tests.servers import LocalServer

PASSWORD = "correct horse battery"


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _worker_of(server: LocalServer, client_port: int) -> int:
    """The worker process holding the server side of the connection from local port ``client_port``."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if local_port == server.port and remote_port == client_port:
                inode = fields[9]
    assert inode is not None, "the connection is not in /proc/net/tcp"
    assert server.process is not None
    owners = [pid for pid in _children(server.process.pid) if inode in _socket_inodes(pid)]
    assert len(owners) == 1, f"the connection belongs to {owners}"
    return owners[0]


class Pinned:
    """An SDK client whose single keep-alive connection is held by one known worker."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        # One connection, kept open between calls (the server keeps idle ones for 75 s).
        self.http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=60), timeout=30
        )
        assert server.psk is not None
        self.sdk = Dominus(base_url=server.url, token=server.psk, http_client=self.http)
        make_fast(self.sdk)

    async def worker(self) -> int:
        answer = await self.http.get(f"{self.server.url}/metrics")
        assert answer.status_code == 200
        _, port = answer.extensions["network_stream"].get_extra_info("client_addr")
        return _worker_of(self.server, int(port))

    async def aclose(self) -> None:
        await self.sdk.aclose()
        await self.http.aclose()


@pytest.fixture
async def workers(tmp_path: Path, shared_env: dict[str, str]) -> AsyncIterator[LocalServer]:
    psk = secrets.token_hex(32)
    server = LocalServer(
        data_dir=tmp_path / "data", psk=psk, env=shared_env, startup_timeout=90.0, args=("--workers", "2")
    )
    async with server:
        yield server


async def _one_per_worker(server: LocalServer) -> tuple[Pinned, Pinned]:
    """Two clients pinned to different workers: new connections until both workers have one (with a deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    by_worker: dict[int, Pinned] = {}
    spare: list[Pinned] = []
    while len(by_worker) < 2:
        assert loop.time() < deadline, f"only worker(s) {sorted(by_worker)} answered"
        batch = [Pinned(server) for _ in range(4)]
        for pinned, pid in zip(batch, await asyncio.gather(*(p.worker() for p in batch)), strict=True):
            if pid in by_worker:
                spare.append(pinned)
            else:
                by_worker[pid] = pinned
    for pinned in spare:
        await pinned.aclose()
    first, second = by_worker.values()
    return first, second


async def test_two_workers_answer_and_share_every_kind_of_state(workers: LocalServer) -> None:
    assert workers.process is not None
    one, two = await _one_per_worker(workers)
    try:
        pids = {await one.worker(), await two.worker()}
        assert len(pids) == 2 and pids <= set(_children(workers.process.pid))
        a, b = one.sdk, two.sdk

        # Sessions: a user made through one worker signs in through the other and is known to the first.
        await a.auth.create_user("ada", "ada@example.com", password=PASSWORD)
        token = (await b.portal.login("ada", PASSWORD))["access_token"]
        for _ in range(3):
            assert (await a.portal.me(user_token=token))["user"]["username"] == "ada"
            assert (await b.portal.me(user_token=token))["user"]["username"] == "ada"

        # Revocation: signed out through one worker, refused by the other within the documented bound.
        started = time.monotonic()
        await b.portal.logout(user_token=token)
        while True:
            sent = time.monotonic()
            try:
                await a.portal.me(user_token=token, max_retries=0)
            except AuthenticationError as exc:
                assert exc.status_code == 401
                break
            assert sent - started <= revocation.STALE_SECONDS, "the other worker still accepts the session"
            await asyncio.sleep(0.005)

        # Idempotency: the same key through the other worker replays the first answer; the write ran once.
        key = f"incr-{secrets.token_hex(8)}"
        assert (await a.redis.incr("hits", 1, idempotency_key=key))["value"] == 1
        assert (await b.redis.incr("hits", 1, idempotency_key=key))["value"] == 1
        assert (await b.redis.incr("hits", 1))["value"] == 2

        # A setnx lock is exclusive across the workers, under concurrency.
        attempts = [c.redis.setnx("locks/job", {"by": i}, ttl=60) for i, c in enumerate([a, b] * 5)]
        results = await asyncio.gather(*attempts)
        assert sum(1 for r in results if r["acquired"]) == 1

        # Files: uploaded through one worker, read through the other.
        record = await a.files.upload(b"worker bytes", "w.txt", category="docs")
        assert (await b.files.fetch(record["id"]))["data"] == b"worker bytes"

        # Every call above stayed on its worker (one connection each).
        assert {await one.worker(), await two.worker()} == pids
    finally:
        await one.aclose()
        await two.aclose()
