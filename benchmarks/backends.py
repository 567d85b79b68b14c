"""dominus-local next to the thinnest gateway doing the same unavoidable work, on PostgreSQL + Redis and on the
SQLite default.

The baseline is :mod:`benchmarks.minimal_gateway` under uvicorn: read the base64 JSON body, verify the RS256
Bearer token with a cached key, make ONE call to the store with dominus-local's driver (redis-py asyncio, or
asyncpg; aiosqlite on SQLite), frame the envelope. Both servers get the same requests from the raw keep-alive
load generator (:class:`~benchmarks.loadgen.RawPost`, one connection per worker) and take turns in slices
within each repeat; each dominus-local row's ratio compares it with the baseline measured in the same repeat
at the same concurrency C. Four operations:

- cache get: Whisperer ``get`` of a 64-character value vs redis-py ``GET`` (SQLite: a key-value table of the
  baseline's own, as dominus-local's default keeps its cache in its SQLite database);
- cache set: Whisperer ``set`` with a TTL, over 1,000 keys, vs ``SET ... EX`` (SQLite: ``INSERT OR REPLACE``);
- indexed query: Scribe ``query`` on the indexed column (20 of 20,000 rows, a page of 50 and the total) vs one
  ``SELECT ..., count(*) OVER ()`` on the same table;
- insert: Scribe ``insert`` of one row vs ``INSERT ... RETURNING *`` on the same table.

Unsafe calls (set, insert) carry a fresh ``Idempotency-Key`` each, as the SDK sends them; the baseline ignores
it. The PostgreSQL/Redis pass runs when ``DOMINUS_TEST_POSTGRES_URL`` (a maintenance database) and
``DOMINUS_TEST_CACHE_URL`` (``redis://``) are set, as ``scripts/services.sh`` exports them: it creates a
throwaway database (dropped at the end) and a key prefix of its own (its keys deleted at the end).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from benchmarks import processes
from benchmarks.harness import Row
from benchmarks.loadgen import RawPost
from benchmarks.scenarios import INSERTS, KEY, MATCHES, ROWS, TABLE, Options, _decode, _measure_all, _scribe_table
from dominus_fastapi import Dominus
from dominus_fastapi.core import wire

POSTGRES_ENV = "DOMINUS_TEST_POSTGRES_URL"
CACHE_ENV = "DOMINUS_TEST_CACHE_URL"

POSTGRES = "PostgreSQL/Redis"
SQLITE = "SQLite default"
OPERATIONS = ("cache get", "cache set", "indexed query", "insert")
TARGETS = {POSTGRES: 0.5, SQLITE: 0.3}
"""The lowest acceptable ratio of dominus-local to the minimal gateway at C=16 and C=64, per backend."""
TAIL_TARGET = 4.0
"""The highest acceptable p99/p50 of a dominus-local row at C=64."""

VALUE = "v" * 64
TTL = 600
SET_KEYS = 1000
BODIES = 1000
"""Distinct request bodies per operation, sent in turn."""


def scenario(backend: str) -> str:
    return f"4 backends, {backend}"


def local_variant(operation: str, backend: str) -> str:
    return f"dominus-local {operation} ({backend})"


def baseline_variant(operation: str, backend: str) -> str:
    return f"minimal gateway {operation} ({backend}) (baseline)"


def _bodies(operation: str) -> list[bytes]:
    keys = ROWS // MATCHES
    if operation == "cache get":
        made = [{"logical_path": KEY, "nudge": False}]
    elif operation == "cache set":
        made = [
            {"logical_path": f"bench/set/{i % SET_KEYS}", "value": VALUE, "ttl_seconds": TTL} for i in range(BODIES)
        ]
    elif operation == "indexed query":
        made = [{"filters": {"account": i % keys}, "limit": 50} for i in range(BODIES)]
    else:
        made = [{"data": {"account": i % 1000, "status": "open", "amount": "1.50", "note": "x"}} for i in range(BODIES)]
    return [wire.encode_body(body) for body in made]


PATHS = {
    "cache get": "/api/whisperer/get",
    "cache set": "/api/whisperer/set",
    "indexed query": f"/api/scribe/data/public/{TABLE}/query",
    "insert": f"/api/scribe/data/public/{INSERTS}/insert",
}
KEYED = {"cache set", "insert"}


async def backends(options: Options, *, which: tuple[str, ...] = (POSTGRES, SQLITE)) -> list[Row]:
    """Both passes (the PostgreSQL/Redis one only with its variables set; otherwise a line says why)."""
    rows: list[Row] = []
    if POSTGRES in which:
        admin_url, cache_url = os.environ.get(POSTGRES_ENV), os.environ.get(CACHE_ENV)
        if admin_url and cache_url:
            rows += await _postgres(options, admin_url, cache_url)
        else:
            missing = " and ".join(n for n, v in ((POSTGRES_ENV, admin_url), (CACHE_ENV, cache_url)) if not v)
            options.log(f"  {POSTGRES} skipped: {missing} not set (scripts/services.sh run ... starts them)")
    if SQLITE in which:
        rows += await _sqlite(options)
    return rows


async def _postgres(options: Options, admin_url: str, cache_url: str) -> list[Row]:
    import asyncpg  # type: ignore[import-untyped,unused-ignore]
    import redis.asyncio as aioredis

    name = "bench_" + uuid.uuid4().hex
    prefix = "bench" + secrets.token_hex(6) + ":"
    database_url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    options.log(f"  database {name}, Redis key prefix {prefix}")
    try:
        env = {
            "DOMINUS_LOCAL_DATABASE_URL": database_url,
            "DOMINUS_LOCAL_CACHE_URL": _with_key_prefix(cache_url, prefix),
        }
        baseline_env = {
            "MINIMAL_DATABASE": database_url,
            "MINIMAL_CACHE": cache_url,
            "MINIMAL_KEY_PREFIX": prefix + "minimal:",
            "MINIMAL_QUERY_TABLE": f"public.{TABLE}",
            "MINIMAL_INSERT_TABLE": f"public.{INSERTS}",
        }

        async def seed_baseline() -> None:
            direct = aioredis.Redis.from_url(cache_url)
            try:
                await direct.set(prefix + "minimal:" + KEY, VALUE)
            finally:
                await direct.aclose()

        return await _pass(options, POSTGRES, env, lambda _data_dir: baseline_env, seed_baseline)
    finally:
        direct = aioredis.Redis.from_url(cache_url)
        try:
            await _delete_prefix(direct, prefix)
        finally:
            await direct.aclose()
            admin = await asyncpg.connect(admin_url)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()


async def _sqlite(options: Options) -> list[Row]:
    import aiosqlite

    scratch = Path(tempfile.mkdtemp(prefix="dominus-bench-minimal-"))
    kv = scratch / "kv.db"

    async def seed_baseline() -> None:
        async with aiosqlite.connect(kv) as conn:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT, exp INTEGER)")
            await conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (KEY, VALUE, 0))
            await conn.commit()

    def baseline_env(data_dir: Path | None) -> dict[str, str]:
        assert data_dir is not None
        # The same file and tables as dominus-local's user data (its physical names are schema.table).
        return {
            "MINIMAL_DATABASE": str(data_dir / "userdata.db"),
            "MINIMAL_CACHE": str(kv),
            "MINIMAL_QUERY_TABLE": f'"public.{TABLE}"',
            "MINIMAL_INSERT_TABLE": f'"public.{INSERTS}"',
        }

    try:
        return await _pass(options, SQLITE, {}, baseline_env, seed_baseline)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def _pass(
    options: Options,
    backend: str,
    env: dict[str, str],
    baseline_env: Callable[[Path | None], dict[str, str]],
    seed_baseline: Callable[[], Any],
) -> list[Row]:
    psk = secrets.token_hex(32)
    with processes.LocalServe(psk, env=env) as server:
        async with Dominus(token=psk, base_url=server.url) as client:
            await client.redis.set(KEY, VALUE)
            await _scribe_table(client)
        async with httpx.AsyncClient(base_url=server.url) as http:
            jwks = (await http.get("/jwt/jwks")).content
            mint = wire.encode_body({"method": "auth.self"})
            minted = await http.post("/jwt/mint", content=mint, headers={"Authorization": f"Bearer {psk}"})
            token = _decode(minted.content)["access_token"]
        await seed_baseline()
        keys = _decode(jwks)
        with _minimal_gateway({"MINIMAL_JWKS": json.dumps(keys), **baseline_env(server.data_dir)}) as baseline:
            return await _operations(options, backend, server, baseline, token)


@contextmanager
def _minimal_gateway(env: dict[str, str]) -> Iterator[processes.Server]:
    port = processes.free_port()
    server = processes.Server(
        ["-m", "uvicorn", "benchmarks.minimal_gateway:app", "--port", str(port), "--host", "127.0.0.1",
         "--log-level", "warning", "--no-access-log"],
        port=port,
        env=env,
        ready_path="/health",
    )
    with server:
        yield server


async def _operations(
    options: Options, backend: str, server: processes.Server, baseline: processes.Server, token: str
) -> list[Row]:
    auth = {"Authorization": f"Bearer {token}"}
    rows: list[Row] = []
    for operation in OPERATIONS:
        bodies = _bodies(operation)
        keyed = operation in KEYED
        local = RawPost(server.port, PATHS[operation], bodies, auth, idempotency_key=keyed)
        minimal = RawPost(baseline.port, PATHS[operation], bodies, auth, idempotency_key=keyed)
        ours, theirs = local_variant(operation, backend), baseline_variant(operation, backend)
        try:
            rows += await _measure_all(
                scenario(backend),
                {theirs: (minimal, 5), ours: (local, 5)},
                theirs,
                options,
                rss_pids={theirs: baseline.pid, ours: server.pid},
                notes={ours: "peak RSS of the server"},
            )
        finally:
            await local.aclose()
            await minimal.aclose()
    return rows


def checks(rows: list[Row]) -> list[str]:
    """PASS/FAIL per target of the backends scenario, from this run's medians."""
    summaries = {(r.variant, r.concurrency): r.summary() for r in rows}
    lines: list[str] = []

    def line(ok: bool, text: str) -> None:
        lines.append(f"{'PASS' if ok else 'FAIL'}  {text}")

    for backend, floor in TARGETS.items():
        for operation in OPERATIONS:
            variant = local_variant(operation, backend)
            if (variant, 1) not in summaries:
                continue
            ratios = {c: summaries[variant, c]["ratio"] for c in (1, 16, 64) if (variant, c) in summaries}
            lines.append(
                f"INFO  {variant} / minimal gateway: "
                + ", ".join(f"C={c} {ratio:.2f}x" for c, ratio in ratios.items() if ratio is not None)
            )
            for c in (16, 64):
                ratio = ratios.get(c)
                if ratio is not None:
                    line(ratio >= floor, f"{variant} at C={c}: {ratio:.2f}x the minimal gateway (target >= {floor})")
            if (variant, 64) in summaries:
                top, one = summaries[variant, 64], summaries[variant, 1]
                line(
                    top["calls_per_s"] >= one["calls_per_s"],
                    f"{variant}: {top['calls_per_s']:,.0f} calls/s at C=64, {one['calls_per_s']:,.0f} at C=1 "
                    "(target: C=64 >= C=1)",
                )
                tail = top["p99_ms"] / top["p50_ms"]
                line(tail <= TAIL_TARGET, f"{variant} at C=64: p99 {tail:.2f}x its p50 (target <= {TAIL_TARGET:g})")
    return lines


def _with_key_prefix(url: str, prefix: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "key_prefix"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("key_prefix", prefix)])))


async def _delete_prefix(redis: Any, prefix: str) -> None:
    """Delete every key of this run (the server's and the baseline's) from the shared Redis database."""
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await redis.delete(*batch)
            batch.clear()
    if batch:
        await redis.delete(*batch)


__all__ = ["OPERATIONS", "POSTGRES", "SQLITE", "backends", "checks", "local_variant"]
