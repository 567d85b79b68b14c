"""Scribe at scale: an indexed equality query on 1,000,000 rows against the same query on 10,000 rows.

Both tables are created through ``ddl.create_table``, and their lookup column is indexed through
``ddl.create_index``. Every lookup key matches the same number of rows in both tables, so an index lookup
costs the same at both sizes, and ``total`` (an exact count) can be checked against the known answer.
The query goes through the whole stack: SDK, framing, token, dispatcher, Scribe, SQLite.

Rows are loaded straight into the user-data tables through the server's own layer (loading a million rows
through 1,000 ``bulk_insert`` calls works too, but takes minutes and measures nothing of interest here).

Run: ``python benchmarks/bench_scribe_scale.py`` (``--rows``, ``--baseline``, ``--queries``, ``--data-dir``).
Prints the median and 95th percentile per size and their ratio; exits 1 if a ``total`` is wrong or the
large table is more than ten times slower than the baseline (not the same order of time).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dominus_fastapi import Dominus
from dominus_local.stores.userdata import userdata_for

MATCHES_PER_KEY = 20
COLUMNS = [
    {"name": "id", "type": "bigserial", "primary_key": True},
    {"name": "account", "type": "integer", "nullable": False},
    {"name": "status", "type": "varchar(20)"},
    {"name": "amount", "type": "numeric(12,2)"},
    {"name": "note", "type": "text"},
]


async def load(client: Dominus, table: str, rows: int) -> None:
    """Create ``table`` through Smith, fill it through the server's user-data layer, index it through Smith."""
    await client.ddl.create_table("public", table, COLUMNS)
    instance = client._transport.embedded.instance  # type: ignore[union-attr]
    state = instance.state
    ud = userdata_for(state)
    keys = rows // MATCHES_PER_KEY
    batch = 50_000
    for start in range(0, rows, batch):
        async with state.db.begin() as conn:
            await ud.prepare(conn)
            construct = ud.table("public", table, ["account", "status", "amount", "note"])
            values = [
                {
                    "account": i % keys,
                    "status": ("open", "paid", "void")[i % 3],
                    "amount": f"{i % 1000}.50",
                    "note": f"n{i}",
                }
                for i in range(start, min(start + batch, rows))
            ]
            await conn.execute(sa.insert(construct), values)
    await client.ddl.create_index("public", table, f"{table}_account", ["account"])


async def lookup(client: Dominus, table: str, key: int) -> float:
    """One indexed equality query; checks the exact ``total`` and the rows, returns the seconds it took."""
    started = time.perf_counter()
    page = await client.db.query(table, filters={"account": key}, limit=50)
    elapsed = time.perf_counter() - started
    if page["total"] != MATCHES_PER_KEY or len(page["rows"]) != MATCHES_PER_KEY:
        raise SystemExit(f"{table}: total {page['total']} for account {key}, expected {MATCHES_PER_KEY}")
    if any(row["account"] != key for row in page["rows"]):
        raise SystemExit(f"{table}: a row of another account was returned")
    return elapsed


async def measure(client: Dominus, sizes: dict[str, int], queries: int) -> dict[str, list[float]]:
    """Alternate the tables query by query, so that drift (caches, checkpoints) hits both alike."""
    rng = random.Random(7)
    timings: dict[str, list[float]] = {table: [] for table in sizes}
    for _ in range(queries):
        for table, rows in sizes.items():
            timings[table].append(await lookup(client, table, rng.randrange(rows // MATCHES_PER_KEY)))
    return timings


def summary(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[int(len(ordered) * 0.95) - 1] * 1000,
    }


async def main(arguments: Any) -> int:
    data_dir = Path(arguments.data_dir or tempfile.mkdtemp(prefix="bench-scribe-"))
    client = Dominus(base_url=f"embedded://{data_dir}")
    try:
        await client.health.ping()
        started = time.perf_counter()
        await load(client, "baseline", arguments.baseline)
        await load(client, "large", arguments.rows)
        print(f"loaded {arguments.baseline:,} + {arguments.rows:,} rows in {time.perf_counter() - started:.1f} s")
        sizes = {"baseline": arguments.baseline, "large": arguments.rows}
        await measure(client, sizes, 50)  # warm-up
        timings = await measure(client, sizes, arguments.queries)
        small, large = summary(timings["baseline"]), summary(timings["large"])
    finally:
        await client.aclose()
    ratio = large["median_ms"] / small["median_ms"]
    print(f"{'rows':>12} {'median ms':>10} {'p95 ms':>8}")
    print(f"{arguments.baseline:>12,} {small['median_ms']:>10.2f} {small['p95_ms']:>8.2f}")
    print(f"{arguments.rows:>12,} {large['median_ms']:>10.2f} {large['p95_ms']:>8.2f}")
    print(f"ratio (median, large / baseline): {ratio:.2f}; totals exact ({MATCHES_PER_KEY} per key)")
    return 0 if ratio <= 10 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--data-dir", default=None, help="where the instance keeps its files (default: a temp dir)")
    sys.exit(asyncio.run(main(parser.parse_args())))
