"""dominus_local on PostgreSQL and Redis, next to the same operations done directly with asyncpg and redis-py.

Runs when ``DOMINUS_TEST_POSTGRES_URL`` (a maintenance database of a PostgreSQL server) and
``DOMINUS_TEST_CACHE_URL`` (a ``redis://`` URL) are set, as ``scripts/services.sh`` exports them; otherwise it
says so and measures nothing. Per run it creates a throwaway database (dropped at the end) and a key prefix of
its own on the Redis server (its keys deleted at the end), and starts ``dominus-local serve`` on both.

Four pairs, each measured by its own :func:`~benchmarks.scenarios._measure_all` call, so that each
dominus-local operation is compared with its own direct baseline (same repeat, same concurrency C):

- Whisperer get (SDK ``redis.get`` of a 64-character value) vs redis-py ``GET`` of a value of the same size;
- Whisperer set (SDK ``redis.set`` with a TTL, over 1,000 keys) vs redis-py ``SET ... EX``;
- Scribe indexed query (SDK ``db.query`` on the indexed column, 20 of 20,000 rows, page of 50 and the total)
  vs the statements the server runs for it, directly on the same table: ``count(*)`` and the
  ``SELECT ... ORDER BY id LIMIT 50`` in one transaction;
- Scribe insert (SDK ``db.insert`` of one row) vs asyncpg ``INSERT ... RETURNING *`` on the same table.

The direct side is what an application would write without the platform: one pooled client in the benchmark
process (asyncpg pool of 10 to 20 connections, as the server's SQLAlchemy pool of 10 plus 10 overflow;
redis-py's default connection pool, as the server's). The dominus-local side adds the SDK, the protocol over
loopback, the server's authentication and validation, and, for Whisperer, the Lua script that keeps expiry and
metadata next to each value. Peak RSS of the dominus-local rows is that of the server process.
"""

from __future__ import annotations

import os
import secrets
import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from benchmarks import processes
from benchmarks.harness import Row
from benchmarks.scenarios import INSERTS, KEY, MATCHES, ROWS, TABLE, Options, _measure_all, _scribe_table
from dominus_fastapi import Dominus

POSTGRES_ENV = "DOMINUS_TEST_POSTGRES_URL"
CACHE_ENV = "DOMINUS_TEST_CACHE_URL"
SCENARIO = "4 dominus_local, PostgreSQL/Redis"

WHISPERER_GET = "Whisperer get via dominus-local (Redis)"
WHISPERER_SET = "Whisperer set via dominus-local (Redis)"
SCRIBE_QUERY = "Scribe indexed query via dominus-local (PostgreSQL)"
SCRIBE_INSERT = "Scribe insert via dominus-local (PostgreSQL)"
REDIS_GET = "redis-py GET direct (baseline)"
REDIS_SET = "redis-py SET EX direct (baseline)"
PG_SELECT = "asyncpg indexed SELECT direct (baseline)"
PG_INSERT = "asyncpg INSERT direct (baseline)"

PAIRS: tuple[tuple[str, str], ...] = (
    (WHISPERER_GET, REDIS_GET),
    (WHISPERER_SET, REDIS_SET),
    (SCRIBE_QUERY, PG_SELECT),
    (SCRIBE_INSERT, PG_INSERT),
)
"""``(dominus-local variant, its direct baseline)``, in the order they are measured."""

VALUE = "v" * 64
TTL = 600
SET_KEYS = 1000


async def backends(options: Options) -> list[Row]:
    """The four pairs above, or no rows (with a line saying why) when the backend variables are not set."""
    admin_url = os.environ.get(POSTGRES_ENV)
    cache_url = os.environ.get(CACHE_ENV)
    if not admin_url or not cache_url:
        missing = " and ".join(name for name, value in ((POSTGRES_ENV, admin_url), (CACHE_ENV, cache_url)) if not value)
        options.log(f"  skipped: {missing} not set (scripts/services.sh run ... starts PostgreSQL and Redis)")
        return []

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
    direct_redis = aioredis.Redis.from_url(cache_url)
    try:
        pool = await asyncpg.create_pool(database_url, min_size=10, max_size=20)
        try:
            env = {
                "DOMINUS_LOCAL_DATABASE_URL": database_url,
                "DOMINUS_LOCAL_CACHE_URL": _with_key_prefix(cache_url, prefix),
            }
            psk = secrets.token_hex(32)
            with processes.LocalServe(psk, env=env) as server:
                client = Dominus(token=psk, base_url=server.url)
                try:
                    return await _pairs(options, client, server.pid, pool, direct_redis, prefix)
                finally:
                    await client.aclose()
        finally:
            await pool.close()
    finally:
        try:
            await _delete_prefix(direct_redis, prefix)
        finally:
            await direct_redis.aclose()
            admin = await asyncpg.connect(admin_url)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()


async def _pairs(options: Options, client: Dominus, pid: int, pool: Any, direct: Any, prefix: str) -> list[Row]:
    await client.redis.set(KEY, VALUE)
    direct_key = f"{prefix}direct/{KEY}"
    await direct.set(direct_key, VALUE)
    await _scribe_table(client)
    await _check_table(pool)
    counter = iter(range(10**9))
    select_count = f"SELECT count(*) FROM public.{TABLE} WHERE account = $1"
    select_page = (
        f"SELECT id, account, status, amount, note FROM public.{TABLE} WHERE account = $1 ORDER BY id LIMIT 50 OFFSET 0"
    )
    insert_row = f"INSERT INTO public.{INSERTS} (account, status, amount, note) VALUES ($1, $2, $3, $4) RETURNING *"
    keys = ROWS // MATCHES

    async def whisperer_get() -> None:
        if not (await client.redis.get(KEY))["found"]:
            raise RuntimeError("dominus-local lost the key")

    async def redis_get() -> None:
        if await direct.get(direct_key) is None:
            raise RuntimeError("Redis lost the key")

    async def whisperer_set() -> None:
        await client.redis.set(f"bench/set/{next(counter) % SET_KEYS}", VALUE, ttl=TTL)

    async def redis_set() -> None:
        await direct.set(f"{prefix}direct/set/{next(counter) % SET_KEYS}", VALUE, ex=TTL)

    async def scribe_query() -> None:
        page = await client.db.query(TABLE, filters={"account": next(counter) % keys}, limit=50)
        if page["total"] != MATCHES or len(page["rows"]) != MATCHES:
            raise RuntimeError(f"indexed query found {page['total']} rows, expected {MATCHES}")

    async def pg_select() -> None:
        account = next(counter) % keys
        async with pool.acquire() as conn, conn.transaction():
            total = await conn.fetchval(select_count, account)
            items = await conn.fetch(select_page, account)
        if total != MATCHES or len(items) != MATCHES:
            raise RuntimeError(f"indexed SELECT found {total} rows, expected {MATCHES}")

    async def scribe_insert() -> None:
        n = next(counter)
        await client.db.insert(INSERTS, {"account": n % 1000, "status": "open", "amount": "1.50", "note": "x"})

    async def pg_insert() -> None:
        n = next(counter)
        if await pool.fetchrow(insert_row, n % 1000, "open", Decimal("1.50"), "x") is None:
            raise RuntimeError("INSERT returned no row")

    measured = {
        WHISPERER_GET: (whisperer_get, 5, redis_get, 5),
        WHISPERER_SET: (whisperer_set, 2, redis_set, 2),
        SCRIBE_QUERY: (scribe_query, 2, pg_select, 2),
        SCRIBE_INSERT: (scribe_insert, 2, pg_insert, 2),
    }
    rows: list[Row] = []
    for variant, baseline in PAIRS:
        call, warmup, direct_call, direct_warmup = measured[variant]
        rows += await _measure_all(
            SCENARIO,
            {baseline: (direct_call, direct_warmup), variant: (call, warmup)},
            baseline,
            options,
            rss_pids={variant: pid},
            notes={variant: "peak RSS of the server"},
        )
    return rows


async def _check_table(pool: Any) -> None:
    """The direct statements run on the table and index the server created: fail loudly if they are not there."""
    async with pool.acquire() as conn:
        count = await conn.fetchval(f"SELECT count(*) FROM public.{TABLE}")
        index = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1 AND indexname = $2",
            TABLE,
            f"{TABLE}_account",
        )
        inserts = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"public.{INSERTS}")
    if count != ROWS or index is None or not inserts:
        raise RuntimeError(
            f"the server's tables are not where the direct statements look: public.{TABLE} has {count} rows "
            f"(expected {ROWS}), index {TABLE}_account {'found' if index else 'missing'}, "
            f"public.{INSERTS} {'found' if inserts else 'missing'}"
        )


def _with_key_prefix(url: str, prefix: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "key_prefix"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("key_prefix", prefix)])))


async def _delete_prefix(redis: Any, prefix: str) -> None:
    """Delete every key of this run (the server's and the direct ones) from the shared Redis database."""
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await redis.delete(*batch)
            batch.clear()
    if batch:
        await redis.delete(*batch)


__all__ = ["PAIRS", "backends"]
