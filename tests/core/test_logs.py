"""Herald logs through the SDK (spec 7.8): levels, caller location, query filters, batches, fallback."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from dominus_fastapi import Dominus, DominusSettings, ValidationError
from dominus_fastapi.core.namespaces.logs import short_path
from tests.conftest import InProcessServer, make_fast


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


async def test_every_level_is_stored_with_the_callers_location(local_client: Dominus) -> None:
    logs = local_client.logs
    assert await logs.debug("d message") is True
    assert await logs.info("i message", {"user": 1}, category="billing") is True
    assert await logs.notice("n message") is True
    assert await logs.warn("w message") is True
    assert await logs.error("e message", exception=ValueError("bad input")) is True
    assert await logs.critical("c message", {"a": 1}, "ops", RuntimeError("down")) is True

    entries = await logs.query(limit=10)
    assert [e["message"] for e in entries] == [
        "c message",
        "e message",
        "w message",
        "n message",
        "i message",
        "d message",
    ]
    critical = entries[0]
    assert critical["context"] == {"a": 1, "exception": {"type": "RuntimeError", "message": "down"}}
    assert entries[1]["context"]["exception"] == {"type": "ValueError", "message": "bad input"}
    assert critical["function"] == "test_every_level_is_stored_with_the_callers_location"
    assert critical["file"] == "tests/core/test_logs.py" or critical["file"].endswith("core/test_logs.py")
    assert len(critical["file"].split("/")) <= 3


async def test_query_filters(local_server: InProcessServer, local_client: Dominus) -> None:
    logs = local_client.logs
    start = local_server.wall()
    await logs.info("Payment accepted", category="billing")
    local_server.wall.advance(60)
    await logs.warn("Payment slow", category="billing")
    local_server.wall.advance(60)
    await logs.error("Disk full", category="ops")
    local_server.wall.advance(60)

    assert [e["message"] for e in await logs.query(level="warn")] == ["Disk full", "Payment slow"]
    assert [e["message"] for e in await logs.query(category="billing")] == ["Payment slow", "Payment accepted"]
    assert [e["message"] for e in await logs.query(search="PAYMENT")] == ["Payment slow", "Payment accepted"]
    window = await logs.query(start_time=_at(start + 30), end_time=_at(start + 120))
    assert [e["message"] for e in window] == ["Payment slow"]
    as_text = await logs.query(start_time=_at(start + 59.5).isoformat().replace("+00:00", "Z"))
    assert [e["message"] for e in as_text] == ["Disk full", "Payment slow"]
    assert len(await logs.query(limit=1)) == 1
    assert await logs.query(function="no_such_function") == []
    here = await logs.query(function="test_query_filters")
    assert len(here) == 3


async def test_query_checks_its_arguments_and_returns_empty_on_failure(local_client: Dominus) -> None:
    for bad in (0, 1001, True):
        with pytest.raises(ValidationError) as info:
            await local_client.logs.query(limit=bad)
        assert info.value.details["field"] == "limit"
    with pytest.raises(ValidationError):
        await local_client.logs.query(level="loud")
    # Another project is admin-only territory; failures of the call itself give [].
    assert await local_client.as_user("x.y.z").logs.query() == []


async def test_batch_of_100_and_splitting(local_client: Dominus) -> None:
    events = [{"level": "info", "message": f"event {i}", "category": "batch"} for i in range(100)]
    assert await local_client.logs.batch(events) == {"total": 100, "stored": 100, "failed": 0, "errors": []}

    mixed = [{"level": "info", "message": f"more {i}"} for i in range(230)]
    mixed[5] = {"level": "loud", "message": "bad level"}
    mixed[150] = {"level": "info", "message": ""}
    result = await local_client.logs.batch(mixed)
    assert (result["total"], result["stored"], result["failed"]) == (230, 228, 2)
    assert [e["index"] for e in result["errors"]] == [5, 150]
    assert all(e["code"] for e in result["errors"])
    assert len(await local_client.logs.query(category="batch", limit=1000)) == 100
    assert await local_client.logs.batch([]) == {"total": 0, "stored": 0, "failed": 0, "errors": []}


async def test_log_calls_never_raise_with_the_server_down(capsys: pytest.CaptureFixture[str]) -> None:
    client = Dominus(base_url="http://127.0.0.1:9", token="p" * 64, settings=DominusSettings(cold_start_budget=0))
    make_fast(client)
    try:
        assert await client.logs.info("kept locally", {"order": 7}) is False
        assert await client.logs.error("also kept", exception=KeyError("k")) is False
        assert await client.logs.query() == []
        result = await client.logs.batch([{"level": "warn", "message": f"b{i}"} for i in range(3)])
        assert (result["total"], result["stored"], result["failed"]) == (3, 0, 3)
        assert [e["index"] for e in result["errors"]] == [0, 1, 2]
    finally:
        await client.aclose()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert len(lines) == 5
    first = lines[0]
    assert first["level"] == "INFO" and first["message"] == "kept locally" and first["_fallback"] is True
    assert first["context"] == {"order": 7}
    assert first["dt"].endswith("Z")
    assert lines[1]["context"]["exception"]["type"] == "KeyError"
    assert [line["level"] for line in lines[2:]] == ["WARN", "WARN", "WARN"]
    assert all("p" * 64 not in json.dumps(line) for line in lines)


async def test_rejected_entries_fall_back_too(local_client: Dominus, capsys: pytest.CaptureFixture[str]) -> None:
    assert await local_client.logs.info("reserved", category="audit.login") is False
    assert json.loads(capsys.readouterr().err)["message"] == "reserved"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/app/src/service/api/views.py", "service/api/views.py"),
        ("/home/ana/project/main.py", "ana/project/main.py"),
        ("/Users/bo/x.py", "bo/x.py"),
        ("C:\\work\\pkg\\mod\\file.py", "pkg/mod/file.py"),
        ("/srv/a/b/c/d.py", "b/c/d.py"),
        ("main.py", "main.py"),
    ],
)
def test_short_path(path: str, expected: str) -> None:
    assert short_path(path) == expected


async def test_batch_takes_data_as_the_context(local_client: Dominus) -> None:
    """The reference SDK's README writes batch events with ``data``: it is stored as the context."""
    result = await local_client.logs.batch(
        [
            {"level": "info", "message": "Step 1 complete", "data": {"step": 1}},
            {"level": "info", "message": "Step 2 complete", "context": {"step": 2}},
            {"level": "info", "message": "Step 3 complete", "data": {}},
        ]
    )
    assert (result["stored"], result["failed"]) == (3, 0)
    stored = {e["message"]: e["context"] for e in await local_client.logs.query(search="complete")}
    assert stored == {"Step 1 complete": {"step": 1}, "Step 2 complete": {"step": 2}, "Step 3 complete": {}}
    assert await local_client.logs.info("Cache hit", data={"key": "user:1"}) is True
    assert (await local_client.logs.query(search="Cache hit"))[0]["context"] == {"key": "user:1"}


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"level": "info", "message": "m", "payload": {"a": 1}}, "events[1].payload"),
        ({"level": "info", "message": "m", "data": {"a": 1}, "context": {"b": 2}}, "events[1].data"),
        ({"level": "info", "message": "m", "extra": 1, "tags": []}, "events[1].extra"),
    ],
)
async def test_batch_refuses_what_it_would_lose(
    local_server: InProcessServer, local_client: Dominus, event: dict[str, object], field: str
) -> None:
    """An unknown key, or ``data`` and ``context`` together, is refused before sending: nothing is stored."""
    before = local_server.requests_to("/api/herald/batch")
    with pytest.raises(ValidationError) as refused:
        await local_client.logs.batch([{"level": "info", "message": "fine"}, event])
    assert refused.value.details["field"] == field and refused.value.status_code is None
    assert local_server.requests_to("/api/herald/batch") == before
    assert await local_client.logs.query() == []


async def test_level_methods_refuse_data_and_context_together(local_client: Dominus) -> None:
    with pytest.raises(ValidationError) as refused:
        await local_client.logs.error("Payment failed", {"order": 1}, data={"order": 2})
    assert refused.value.details["field"] == "data"
    assert await local_client.logs.query() == []
