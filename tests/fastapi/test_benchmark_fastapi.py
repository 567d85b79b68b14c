"""The FastAPI benchmark scenario runs end to end (uvicorn, dominus-local serve, a real session token).

Only that it works and leaves the benchmark process as it found it: no figures are checked here (performance
lives in ``python -m benchmarks``).
"""

from __future__ import annotations

import os

from benchmarks.scenarios import FASTAPI_DEPENDENCY, Options, fastapi


async def test_every_variant_answers_and_the_cpu_affinity_is_restored() -> None:
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    log: list[str] = []
    rows = await fastapi(Options(repeats=1, duration=0.2, concurrency=(1, 4), log=log.append))

    variants = ["bare endpoint (baseline)", FASTAPI_DEPENDENCY, "middleware + CurrentUser + page guard"]
    assert sorted((row.variant, row.concurrency) for row in rows) == sorted((v, c) for v in variants for c in (1, 4))
    for row in rows:
        summary = row.summary()
        assert summary["calls"] > 0 and summary["ratio"] > 0, row.variant
    if before is not None:
        assert os.sched_getaffinity(0) == before
    assert len(log) == len(rows)
