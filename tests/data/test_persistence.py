"""User data on disk survives a restart, and concurrent writers lose nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dominus_fastapi import Dominus
from tests.conftest import make_fast
from tests.data.conftest import Env, make_orders


async def test_tables_rows_and_migrations_survive_a_restart(tmp_path: Path) -> None:
    first = Dominus(base_url=f"embedded://{tmp_path}")
    make_fast(first)
    try:
        await make_orders(first, schema="sales")
        await first.db.bulk_insert("orders", [{"customer": "ann"}, {"customer": "bob"}], schema="sales")
        assert first._transport.embedded is not None
        on_sqlite = first._transport.embedded.instance.state.db.is_sqlite  # type: ignore[union-attr]
    finally:
        await first.aclose()
    if on_sqlite:
        assert (tmp_path / "userdata.db").exists()  # user data kept apart from the service tables

    second = Dominus(base_url=f"embedded://{tmp_path}")
    make_fast(second)
    try:
        assert await second.db.schemas() == ["public", "sales"]
        page = await second.db.query("orders", schema="sales", sort_by="customer")
        assert [r["customer"] for r in page["rows"]] == ["ann", "bob"]
        assert (await second.ddl.get_current_version("sales"))["version"] == 2
        await second.ddl.rollback_migration("sales", 1)
        assert "status" not in [c["name"] for c in await second.db.columns("orders", schema="sales")]
    finally:
        await second.aclose()


async def test_concurrent_writers_lose_nothing(env: Env) -> None:
    await make_orders(env.client)

    async def writer(n: int) -> None:
        await env.client.db.insert("orders", {"customer": f"w{n}"})
        await env.client.db.update("orders", {"role": "done"}, {"customer": f"w{n}"})

    await asyncio.gather(*(writer(n) for n in range(40)))
    page = await env.client.db.query("orders", filters={"role": "done"}, limit=100)
    assert page["total"] == 40
    assert sorted(r["customer"] for r in page["rows"]) == sorted(f"w{n}" for n in range(40))
