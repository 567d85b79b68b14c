"""Exactly once under faults: a write whose answer is lost is retried with its idempotency key, not re-run."""

from __future__ import annotations

import random
from typing import Any

from dominus_fastapi import Dominus
from tests.conftest import InProcessServer
from tests.data.conftest import make_orders


class FirstPick(random.Random):
    """Fault picks that hit the first request only."""

    def __init__(self) -> None:
        super().__init__(0)
        self.values = [0.0]

    def random(self) -> float:
        return self.values.pop(0) if self.values else 0.99


async def _drop_next(server: InProcessServer, client: Dominus, prefix: str) -> FirstPick:
    body: dict[str, Any] = {"error_rate": 0.5, "drop_after_read": True, "paths": [prefix]}
    await client.request("POST", "/api/admin/faults", body=body)
    picks = FirstPick()
    server.local.faults.rng = picks
    return picks


async def test_a_dropped_bulk_insert_is_applied_once(local_server: InProcessServer, local_client: Dominus) -> None:
    await make_orders(local_client)
    picks = await _drop_next(local_server, local_client, "/api/scribe/")
    result = await local_client.db.bulk_insert("orders", [{"customer": f"c{i}"} for i in range(3)])
    assert picks.values == []  # the first attempt ran and lost its answer
    assert result["inserted_count"] == 3
    await local_client.request("POST", "/api/admin/faults", body={})
    assert (await local_client.db.query("orders"))["total"] == 3


async def test_a_dropped_ddl_call_is_recorded_once(local_server: InProcessServer, local_client: Dominus) -> None:
    picks = await _drop_next(local_server, local_client, "/api/smith/")
    created = await local_client.ddl.create_table(
        "public", "t", [{"name": "id", "type": "serial", "primary_key": True}]
    )
    assert picks.values == []
    assert created == {"schema": "public", "table": "t", "created": True, "version": 1}
    await local_client.request("POST", "/api/admin/faults", body={})
    assert [m["version"] for m in await local_client.ddl.list_migrations("public")] == [1]
