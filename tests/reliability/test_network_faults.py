"""Fault scenarios over real sockets: ``dominus-local serve`` subprocesses on loopback (``tests/servers.py``).

- a latency spike past the client's timeout (the server keeps running what the client gave up on);
- SIGKILL and restart on the same port and data directory in the middle of the mixed workload;
- durability: SQLite in WAL mode (and PostgreSQL when ``DOMINUS_TEST_POSTGRES_URL`` names a server), killed
  with SIGKILL during write bursts, twice over.

The SDK's backoff sleeps and its breaker clock are fake (``make_fast``); the only real waits are for the
subprocess to start and for requests that the server still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dominus_fastapi import Dominus
from tests.conftest import FakeClock, make_fast
from tests.reliability.ledger import SCALE, TALLY, WATCH
from tests.reliability.load import LEDGER_TABLE, Workload
from tests.servers import LocalServer

pytestmark = pytest.mark.slow

DATA_PATHS = ["/api/scribe/data/", "/api/whisperer/", "/api/archivist/", "/api/portal/"]
SERVER_ENV = {"DOMINUS_LOCAL_BCRYPT_ROUNDS": "4"}
POSTGRES_ENV = "DOMINUS_TEST_POSTGRES_URL"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One subprocess server for the module (starting one costs seconds); scenarios use their own names."""
    local = LocalServer(data_dir=tmp_path_factory.mktemp("serve") / "data", env=SERVER_ENV)
    local.start()
    assert local.psk is not None
    WATCH.secret(local.psk)
    try:
        yield local
    finally:
        WATCH.capture("dominus-local serve output", local.output())
        local.stop()


def _client(server: LocalServer, **options: object) -> tuple[Dominus, FakeClock]:
    client = Dominus(base_url=server.url, token=server.psk, **options)  # type: ignore[arg-type]
    clock = FakeClock(0.0)
    make_fast(client, clock=clock)
    return client, clock


def _kill(server: LocalServer) -> None:
    """SIGKILL: no shutdown hooks, no flushing."""
    assert server.process is not None
    server.process.kill()
    server.process.wait()
    WATCH.capture("dominus-local serve output", server.output())
    server.stop()  # closes the output file; the data directory is the caller's and stays


def _kill_and_restart(server: LocalServer) -> None:
    """SIGKILL, then start again on the same port and data directory."""
    _kill(server)
    server.start()


def _in_progress_keys(data_dir: Path) -> int:
    """Idempotency keys still marked running, read from the live WAL database by a second reader."""
    with contextlib.closing(sqlite3.connect(f"file:{data_dir / 'dominus.db'}?mode=ro", uri=True)) as db:
        (count,) = db.execute("SELECT count(*) FROM dispatch_idempotency_keys WHERE status IS NULL").fetchone()
    return int(count)


async def test_latency_spike_past_the_timeout(server: LocalServer) -> None:
    """Answers held 1 s against a 0.25 s timeout: calls time out (the breaker opens), the server still finishes
    what it was given, and afterwards nothing is duplicated or half-applied and the load completes again."""
    admin, _ = _client(server)
    client, clock = _client(server, timeout=0.25, max_retries=1)
    spike = Workload("latency")
    after = Workload("after-latency")
    try:
        await Workload.prepare(admin)
        await client.health.ping()
        await admin.admin.set_faults(latency_ms=1000, paths=DATA_PATHS)
        await spike.run(client, workers=6, rounds=1)
        await admin.admin.set_faults()
        assert {op.error for op in spike.failed()} <= {"DominusTimeoutError", "CircuitOpenError"}, [
            (op.error, op.message) for op in spike.failed()
        ]
        assert len(spike.failed()) >= len(spike.ops) // 2
        deadline = time.monotonic() + 15
        while _in_progress_keys(server.data_dir) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # requests the client gave up on are still running on the server
        TALLY.record("faults: breaker, leaks and tokens", _in_progress_keys(server.data_dir) == 0)

        clock.advance(30)  # the breaker's recovery period: one probe closes it
        await client.db.query(LEDGER_TABLE, limit=1)
        assert client._transport.breakers["orchestrator"].state == "closed"
        await after.run(admin, workers=6, rounds=2 * SCALE)  # with the default timeout, everything goes through again
        assert after.failed() == [], [(op.error, op.message) for op in after.failed()]
        assert await spike.reconcile(admin) == []
        assert await after.reconcile(admin, only_not_run=True) == []
        connections = client._transport.pool_connections()
        assert TALLY.record("faults: breaker, leaks and tokens", connections <= 20, f"{connections} pooled")
    finally:
        await client.aclose()
        await admin.aclose()
    assert client._transport.pool_connections() == 0


def _server_sockets(server: LocalServer) -> int:
    """Sockets the server process holds open (its listener, the clients' connections, database sockets)."""
    assert server.process is not None
    fds = Path(f"/proc/{server.process.pid}/fd")
    count = 0
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd).startswith("socket:")
    return count


async def test_connections_dropped_after_the_request_was_read(server: LocalServer) -> None:
    """uvicorn closes a quarter of the connections after running the request: keyed writes are replayed and
    applied once, and once the client closes, the server holds no more sockets than before it came."""
    admin, _ = _client(server)
    try:
        await Workload.prepare(admin)
        await admin.health.ping()
        before = _server_sockets(server)
        client, _ = _client(server, max_retries=4)
        workload = Workload("network-drops")
        try:
            await client.health.ping()
            await admin.admin.set_faults(error_rate=0.25, drop_after_read=True, paths=DATA_PATHS)
            await workload.run(client, workers=6, rounds=3 * SCALE)
        finally:
            await admin.admin.set_faults()
            await client.aclose()
        assert await workload.reconcile(admin) == []
        assert len(workload.acked("insert")) >= len(workload.ops) // 5 // 2
        deadline = time.monotonic() + 10
        while _server_sockets(server) > before and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # the server notices the closed connections
        after = _server_sockets(server)
        assert TALLY.record("faults: breaker, leaks and tokens", after <= before, f"{after} sockets, {before} before")
    finally:
        await admin.aclose()


async def test_sigkill_and_restart_mid_traffic(server: LocalServer) -> None:
    """The server dies (SIGKILL) while six coroutines run the mixed workload and comes back on the same port:
    every acknowledged write is there exactly once, nothing is half-applied, and the client recovers."""
    admin, _ = _client(server)
    client, clock = _client(server, max_retries=2)
    workload = Workload("sigkill")
    stop = asyncio.Event()
    back = asyncio.Event()

    async def wait_for_restart() -> None:
        """After a failure: while the server is down, wait for it; afterwards, back off one (fake) second, as a
        caller would, so that an open breaker reaches its probe."""
        if not back.is_set():
            await back.wait()
        else:
            clock.advance(1)
            await asyncio.sleep(0.01)

    try:
        await Workload.prepare(admin)
        await client.health.ping()
        running = asyncio.create_task(
            workload.run(client, workers=6, rounds=1000, pause_after_failure=wait_for_restart, stop=stop)
        )
        while len(workload.acked()) < 30 and not running.done():
            await asyncio.sleep(0.01)
        await asyncio.to_thread(_kill_and_restart, server)
        clock.advance(30)  # let the breaker probe the restarted server
        back.set()
        restarted_at = len(workload.ops)
        while not running.done():
            recent = [op for op in workload.ops[restarted_at:] if op.acked]
            if len(recent) >= 40 * SCALE:
                stop.set()
            await asyncio.sleep(0.01)
        await running
        assert any(not op.acked for op in workload.ops), "the kill interrupted some operations"
        assert client._transport.breakers["orchestrator"].state == "closed"
        assert await workload.reconcile(admin) == []
    finally:
        stop.set()
        back.set()
        await client.aclose()
        await admin.aclose()
    assert client._transport.pool_connections() == 0


async def test_sqlite_wal_survives_sigkill_during_write_bursts(server: LocalServer) -> None:
    """Two bursts of inserts and increments, each cut by SIGKILL: after each restart, every acknowledged
    write is present exactly once (the database runs in WAL mode)."""
    with contextlib.closing(sqlite3.connect(f"file:{server.data_dir / 'dominus.db'}?mode=ro", uri=True)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    await _bursts_cut_by_sigkill(server, "wal")


@pytest.mark.skipif(
    not os.environ.get(POSTGRES_ENV), reason=f"{POSTGRES_ENV} is not set (scripts/services.sh starts PostgreSQL)"
)
async def test_postgresql_survives_sigkill_during_write_bursts(tmp_path: Path) -> None:
    """The same bursts on a server whose database is PostgreSQL (a fresh database of its own)."""
    import asyncpg

    admin_url = os.environ[POSTGRES_ENV]
    name = "t_durability_" + uuid.uuid4().hex[:12]
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    env = {**SERVER_ENV, "DOMINUS_LOCAL_DATABASE_URL": f"{base}/{name}"}
    local = LocalServer(data_dir=tmp_path / "data", env=env)
    await asyncio.to_thread(local.start)
    try:
        await _bursts_cut_by_sigkill(local, "pg")
    finally:
        WATCH.capture("dominus-local serve output", local.output())
        await asyncio.to_thread(local.stop)
        connection = await asyncpg.connect(admin_url)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


async def _bursts_cut_by_sigkill(server: LocalServer, tag: str) -> None:
    """Bursts of inserts and increments from eight coroutines, each cut by SIGKILL after 40 acknowledgements;
    after the restarts, every acknowledged write is present exactly once and nothing is half-applied."""
    assert server.psk is not None
    WATCH.secret(server.psk)
    admin, _ = _client(server)
    try:
        await Workload.prepare(admin)
    finally:
        await admin.aclose()
    bursts = [Workload(f"{tag}-{n}") for n in range(2)]
    for burst in bursts:
        client, _ = _client(server, max_retries=0)
        stop = asyncio.Event()
        try:
            running = asyncio.create_task(
                burst.run(client, workers=8, rounds=1000, kinds=("insert", "incr"), stop=stop)
            )
            while len(burst.acked()) < 40 * SCALE and not running.done():
                await asyncio.sleep(0.005)
            _kill(server)
            stop.set()
            await running
            await asyncio.to_thread(server.start)
        finally:
            await client.aclose()
    admin, _ = _client(server)
    try:
        for burst in bursts:
            assert len(burst.acked()) >= 40 * SCALE
            assert await burst.reconcile(admin, suite="durability") == []
        rows = (await admin.db.query(LEDGER_TABLE, limit=1))["total"]
        assert rows >= sum(len(b.acked("insert")) for b in bursts)
    finally:
        await admin.aclose()
