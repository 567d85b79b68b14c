"""Warden secrets (spec 7.2) and Health (spec 7.11) through the SDK, against the real server."""

from __future__ import annotations

import asyncio

import pytest

from dominus_fastapi import Dominus, DominusSettings, NotFoundError, ValidationError
from tests.conftest import InProcessServer, make_fast


async def test_upsert_creates_then_updates_and_keeps_comments(local_client: Dominus) -> None:
    created = await local_client.secrets.upsert("DB_URL", "sqlite://", comment="primary")
    assert (created["operation"], created["version"], created["comment"]) == ("created", 1, "primary")
    updated = await local_client.secrets.upsert("DB_URL", "postgres://")
    assert (updated["operation"], updated["version"], updated["comment"]) == ("updated", 2, "primary")
    assert await local_client.secrets.get("DB_URL") == "postgres://"


async def test_upsert_derives_keys_so_a_repeated_call_writes_nothing_twice(local_client: Dominus) -> None:
    first = await local_client.upsert("ONCE", "v1", idempotency_key="deploy-42")
    again = await local_client.upsert("ONCE", "v1", idempotency_key="deploy-42")  # replays :1 and :2
    assert first["operation"] == again["operation"] == "created"
    assert (await local_client.secrets.list(prefix="ONCE"))[0]["version"] == 1
    third = await local_client.upsert("ONCE", "v2", idempotency_key="deploy-43")
    assert (third["operation"], third["version"]) == ("updated", 2)


async def test_concurrent_upserts_of_a_new_key_all_land(local_client: Dominus) -> None:
    results = await asyncio.gather(*(local_client.upsert("RACE", i) for i in range(10)))
    assert sum(r["operation"] == "created" for r in results) == 1
    assert (await local_client.secrets.list(prefix="RACE"))[0]["version"] == 10


async def test_list_is_sorted_filtered_and_without_values(local_client: Dominus) -> None:
    for key in ("b/two", "a.one", "b/one", "c:three"):
        await local_client.upsert(key, {"secret": key})
    assert [s["key"] for s in await local_client.secrets.list()] == ["a.one", "b/one", "b/two", "c:three"]
    listed = await local_client.secrets.list(prefix="b/")
    assert [s["key"] for s in listed] == ["b/one", "b/two"]
    assert all(set(s) >= {"key", "version", "created_at", "updated_at"} and "value" not in s for s in listed)


async def test_delete_and_missing_keys(local_client: Dominus) -> None:
    with pytest.raises(NotFoundError):
        await local_client.secrets.delete("NEVER")
    await local_client.upsert("GONE", 1)
    assert await local_client.secrets.delete("GONE") == {"deleted": True, "key": "GONE"}
    with pytest.raises(NotFoundError):
        await local_client.secrets.get("GONE")


async def test_bad_input_is_refused_before_sending(local_server: InProcessServer, local_client: Dominus) -> None:
    for bad in ("", "has space", "x" * 257, "semi;colon"):
        with pytest.raises(ValidationError) as info:
            await local_client.upsert(bad, 1)
        assert info.value.details["field"] == "key"
    with pytest.raises(ValidationError) as comment:
        await local_client.upsert("OK", 1, comment="c" * 1001)
    assert comment.value.details["field"] == "comment"
    assert await local_server.tokens_minted() == 0


async def test_health_check_ping_and_warmup(local_client: Dominus) -> None:
    document = await local_client.health.check()
    assert document["status"] == "healthy" and document["protocol"] == "dominus-2"
    assert set(document["services"]) >= {"warden", "scribe", "herald", "guardian", "portal", "courier"}
    assert await local_client.health.ping() == {"status": "ok"}
    warm = await local_client.health.warmup()
    assert warm["status"] == "warm" and "duration_ms" in warm


async def test_health_check_reports_a_cold_start_without_raising(local_client: Dominus) -> None:
    await local_client.health.ping()  # past the first request: no cold-start budget any more
    await local_client.request("POST", "/api/admin/faults", body={"cold_start_seconds": 20})
    document = await local_client.health.check(max_retries=0)
    assert document["status"] == "starting"
    await local_client.request("POST", "/api/admin/faults", body={})


async def test_health_check_unreachable_without_psk() -> None:
    client = Dominus(base_url="http://127.0.0.1:9", settings=DominusSettings(cold_start_budget=0))
    make_fast(client)
    try:
        document = await client.health.check()
        assert document["status"] == "unreachable" and "Connection failed" in document["error"]
    finally:
        await client.aclose()
