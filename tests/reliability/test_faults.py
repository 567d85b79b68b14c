"""Fault scenarios against an in-process ``dominus_local``, driven by the mixed workload of ``load.py``: a
10-second cold start, bursts of 502/503/504, answers lost after the request ran, a full outage that opens the
breaker, the service token expiring mid-traffic, and audited secure-table writes whose answers are lost.

Fake clocks only: the SDK's backoff sleeps move both its own clock and the server's monotonic clock, so a
10-second cold start or a 30-second breaker recovery take no wall time. Fault picks use a seeded generator,
so every run sees the same faults.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from dominus_fastapi import Dominus
from dominus_fastapi.core.errors import CircuitOpenError
from dominus_local.idempotency import idempotency_keys
from tests.conftest import FakeClock, InProcessServer, make_fast
from tests.reliability.ledger import SCALE, TALLY
from tests.reliability.load import Workload

DATA_PATHS = ["/api/scribe/data/", "/api/whisperer/", "/api/archivist/", "/api/portal/"]
"""Faults hit the workload's paths; the mint, health and admin paths stay clean so that control works."""

WORKERS = 6
ROUNDS = 3 * SCALE


@pytest.fixture
async def admin(local_server: InProcessServer) -> AsyncIterator[Dominus]:
    """A fault-free control client (its own breaker): sets faults, prepares and reconciles."""
    client = local_server.client()
    make_fast(client)
    await Workload.prepare(client)
    try:
        yield client
    finally:
        await client.aclose()
        await client._transport.http.aclose()


async def _load_client(server: InProcessServer, **options: object) -> Dominus:
    client = server.client(**options)
    make_fast(client, clock=server.clock)  # backoff moves the server's clock: cold start and faults
    return client


async def _close(client: Dominus) -> None:
    await client.aclose()
    await client._transport.http.aclose()


async def _assert_no_leaks(server: InProcessServer) -> None:
    """No idempotency key left in progress and no database connection checked out."""
    async with server.local.state.db.begin() as conn:
        running = (await conn.execute(select(func.count()).where(idempotency_keys.c.status.is_(None)))).scalar_one()
    assert TALLY.record("faults: breaker, leaks and tokens", running == 0, f"{running} keys in progress")
    pool = server.local.state.db.engine.sync_engine.pool
    checked_out = pool.checkedout() if hasattr(pool, "checkedout") else 0
    assert TALLY.record("faults: breaker, leaks and tokens", checked_out == 0, f"{checked_out} connections out")


async def test_cold_start_of_ten_seconds_is_ridden_out(local_server: InProcessServer, admin: Dominus) -> None:
    """A fresh client arrives during a 10 s cold start: every operation waits it out and succeeds once."""
    await admin.admin.set_faults(cold_start_seconds=10)
    client = await _load_client(local_server)
    workload = Workload("cold-start")
    try:
        await workload.run(client, workers=WORKERS, rounds=ROUNDS)
        assert client._transport.breakers["orchestrator"].state == "closed"  # cold-start answers are not failures
    finally:
        await _close(client)
    assert local_server.local.faults.cold_start_remaining() == 0
    assert await workload.reconcile(admin, only_not_run=True) == []
    assert workload.failed() == [], [op.error for op in workload.failed()]
    await _assert_no_leaks(local_server)


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_bursts_of_gateway_errors(local_server: InProcessServer, admin: Dominus, status: int) -> None:
    """A third of the requests answer 502/503/504 without running: retries absorb most, nothing runs twice,
    and an operation that finally failed left nothing behind."""
    await admin.admin.set_faults(error_rate=0.3, error_status=status, paths=DATA_PATHS)
    local_server.local.faults.rng = random.Random(status)
    client = await _load_client(local_server, max_retries=4)
    workload = Workload(f"burst-{status}")
    try:
        await workload.run(client, workers=WORKERS, rounds=ROUNDS)
    finally:
        await _close(client)
        await admin.admin.set_faults()
    assert await workload.reconcile(admin, only_not_run=True) == []
    assert len(workload.acked()) > len(workload.ops) // 2
    await _assert_no_leaks(local_server)


async def test_connections_dropped_after_the_request_was_read(local_server: InProcessServer, admin: Dominus) -> None:
    """A quarter of the requests run and then lose their answer: keyed writes are replayed, never re-run."""
    await admin.admin.set_faults(error_rate=0.25, drop_after_read=True, paths=DATA_PATHS)
    local_server.local.faults.rng = random.Random(7)
    client = await _load_client(local_server, max_retries=4)
    workload = Workload("drops")
    try:
        await workload.run(client, workers=WORKERS, rounds=ROUNDS)
    finally:
        await _close(client)
        await admin.admin.set_faults()
    assert await workload.reconcile(admin) == []
    # Keyed writes survive drops; only logins (exempt from replay) may be lost to a drop.
    lost = {op.kind for op in workload.failed()}
    assert lost <= {"login", "insert", "incr", "upload", "read"}
    assert len(workload.acked("insert")) >= len(workload.ops) // 5 * 3 // 4
    await _assert_no_leaks(local_server)


async def test_breaker_opens_under_an_outage_and_recovers(local_server: InProcessServer, admin: Dominus) -> None:
    """A full outage of the data paths: the breaker opens after five failures, later calls fail fast without
    reaching the server, and once the outage ends and 30 s pass, one probe closes it and the load completes."""
    client = await _load_client(local_server, max_retries=0)
    clock = FakeClock(0.0)
    make_fast(client, clock=clock)  # the breaker's clock: moved here by hand only
    client._transport.policy.sleep.clocks = (clock, local_server.clock)  # type: ignore[attr-defined]
    breaker = client._transport.breakers["orchestrator"]
    outage = Workload("outage")
    recovered = Workload("recovered")
    try:
        await client.health.ping()  # warm: the cold-start window is over
        await admin.admin.set_faults(error_rate=1.0, error_status=503, paths=DATA_PATHS)
        await outage.run(client, workers=WORKERS, rounds=1)
        assert breaker.state == "open"
        fast = [op for op in outage.ops if op.error == CircuitOpenError.__name__]
        assert len(fast) >= len(outage.ops) - 5, "after five failures, calls fail fast"
        sent = sum(local_server.requests_to(p) for p in _routes(local_server))
        await outage.run(client, workers=2, rounds=1)
        assert sum(local_server.requests_to(p) for p in _routes(local_server)) == sent, "nothing sent while open"

        await admin.admin.set_faults()
        clock.advance(30)
        await client.db.query("load_ledger", limit=1)  # the probe
        assert breaker.state == "closed"
        await recovered.run(client, workers=WORKERS, rounds=2)
    finally:
        await _close(client)
    assert await outage.reconcile(admin, only_not_run=True) == []
    assert await recovered.reconcile(admin, only_not_run=True) == []
    assert recovered.failed() == []
    TALLY.record("faults: breaker, leaks and tokens", breaker.state == "closed")
    await _assert_no_leaks(local_server)


def _routes(server: InProcessServer) -> list[str]:
    return sorted({path for (_, path, _) in server.local.metrics.requests if path.startswith(tuple(DATA_PATHS))})


async def test_service_token_expiring_mid_traffic(local_server: InProcessServer, admin: Dominus) -> None:
    """The server's clock jumps past the service token's lifetime while the load runs: every coroutine's
    401 leads to one shared new mint, and every operation still succeeds exactly once."""
    client = await _load_client(local_server)
    first = Workload("token-expiry-1")
    second = Workload("token-expiry-2")
    try:
        await first.run(client, workers=WORKERS, rounds=1)
        minted = await local_server.tokens_minted()
        local_server.wall.advance(1000)  # past the 900 s token lifetime (and within the counters' 1 h TTL)
        await second.run(client, workers=WORKERS, rounds=ROUNDS)
        new_mints = await local_server.tokens_minted() - minted
    finally:
        await _close(client)
    assert await first.reconcile(admin, only_not_run=True) == []
    assert await second.reconcile(admin, only_not_run=True) == []
    assert first.failed() == [] and second.failed() == [], [(op.error, op.message) for op in second.failed()]
    assert TALLY.record("faults: breaker, leaks and tokens", 1 <= new_mints <= 2, f"{new_mints} new mints")
    await _assert_no_leaks(local_server)


async def test_secure_writes_with_lost_answers_leave_one_audit_record_each(
    local_server: InProcessServer, admin: Dominus
) -> None:
    """Audited writes to a secure table lose their answers a third of the time: each replayed write is stored
    once and leaves exactly one audit record (spec 8.3), carrying its request id."""
    await admin.ddl.create_table(
        "public",
        "vault",
        [{"name": "id", "type": "serial", "primary_key": True}, {"name": "op_id", "type": "text"}],
    )
    await admin.auth.create_secure_table("vault")
    client = await _load_client(local_server, max_retries=6)
    await admin.admin.set_faults(error_rate=0.33, drop_after_read=True, paths=["/api/scribe/data/"])
    local_server.local.faults.rng = random.Random(11)
    acked: list[str] = []
    try:
        for n in range(20):
            op_id = f"vault-{n}"
            await client.db.insert("vault", {"op_id": op_id}, reason="reliability check", actor="machine")
            acked.append(op_id)
    finally:
        await admin.admin.set_faults()
        await _close(client)
    sent = local_server.requests_to("/api/scribe/data/{schema}/{table}/insert")
    assert sent > len(acked) + 1, "some answers were lost and the writes sent again"
    rows = (await admin.db.query("vault", limit=1000, reason="reconcile", actor="machine"))["rows"]
    stored = sorted(row["op_id"] for row in rows)
    audits = await admin.logs.query(category="audit", limit=1000)
    inserts = [a for a in audits if a.get("context", {}).get("operation") == "insert"]
    checks = {
        "every acknowledged secure insert stored once": stored == sorted(acked),
        "one audit record per insert": len(inserts) == len(acked),
        "distinct request ids": len({a["context"].get("request_id") for a in inserts}) == len(acked),
    }
    failed = [name for name, ok in checks.items() if not TALLY.record("faults", ok, name)]
    assert failed == [], (len(stored), len(inserts), len(acked))
