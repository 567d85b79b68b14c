"""The backends benchmark scenario runs end to end on the real servers and leaves nothing behind.

Only that it works: no figures are checked here (performance lives in ``python -m benchmarks``).
"""

from __future__ import annotations

import re

import pytest
import redis.asyncio as aioredis

from benchmarks.backends import (
    OPERATIONS,
    POSTGRES,
    SQLITE,
    backends,
    baseline_variant,
    checks,
    local_variant,
)
from benchmarks.scenarios import Options
from tests.backends.conftest import require
from tests.conftest import CACHE_ENV, POSTGRES_ENV


async def _databases(admin_url: str) -> set[str]:
    import asyncpg  # type: ignore[import-untyped,unused-ignore]

    admin = await asyncpg.connect(admin_url)
    try:
        return {r["datname"] for r in await admin.fetch("SELECT datname FROM pg_database")}
    finally:
        await admin.close()


async def test_every_operation_is_measured_next_to_the_minimal_gateway_and_the_run_cleans_up() -> None:
    admin_url, cache_url = require(POSTGRES_ENV), require(CACHE_ENV)
    before = await _databases(admin_url)
    log: list[str] = []
    rows = await backends(Options(repeats=1, duration=0.1, concurrency=(1, 64), slices=1, log=log.append))

    assert [(row.variant, row.concurrency) for row in rows] == [
        (name, c)
        for backend in (POSTGRES, SQLITE)
        for operation in OPERATIONS
        for c in (1, 64)
        for name in (baseline_variant(operation, backend), local_variant(operation, backend))
    ]
    for row in rows:
        summary = row.summary()
        assert summary["calls"] > 0, row.variant
        assert summary["ratio"] is not None and summary["ratio"] > 0, row.variant
        assert all(sample.errors == 0 for sample in row.samples), row.variant
        assert summary["peak_rss_mib"] is not None and summary["peak_rss_mib"] > 0, row.variant

    # Every target gets its verdict line: ratio at C=64, C=64 against C=1, and the tail, per operation.
    verdicts = checks(rows)
    for backend in (POSTGRES, SQLITE):
        for operation in OPERATIONS:
            mine = [line for line in verdicts if local_variant(operation, backend) in line]
            assert len([line for line in mine if line.startswith(("PASS", "FAIL"))]) == 3, mine

    # The throwaway database is dropped and the run's Redis keys are deleted.
    found = re.search(r"database (\S+), Redis key prefix (\S+)", "\n".join(log))
    assert found is not None, log
    database, prefix = found.groups()
    assert database not in before
    assert database not in await _databases(admin_url)
    direct = aioredis.Redis.from_url(cache_url)
    try:
        assert [key async for key in direct.scan_iter(match=f"{prefix}*")] == []
    finally:
        await direct.aclose()


async def test_without_the_backend_variables_the_postgresql_pass_measures_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    log: list[str] = []
    assert await backends(Options(repeats=1, duration=0.05, concurrency=(1,), log=log.append), which=(POSTGRES,)) == []
    assert len(log) == 1 and "skipped" in log[0] and CACHE_ENV in log[0]
