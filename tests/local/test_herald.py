"""Herald (spec 7.8): log, batch and query with every filter; the reserved audit categories."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import pytest

from dominus_local.routing import Principal
from dominus_local.security import issue_token
from dominus_local.services.herald import write_audit
from dominus_local.validate import format_timestamp

from .conftest import Harness, add_client, add_user_session, envelope, error_code


def iso(unix: float) -> str:
    return format_timestamp(datetime.fromtimestamp(unix, timezone.utc))


async def log(server: Harness, token: str, **body: Any) -> Any:
    return await server.call("POST", "/api/herald/log", body, token=token)


async def query(server: Harness, token: str, **body: Any) -> list[dict[str, Any]]:
    response = await server.call("POST", "/api/herald/query", body, token=token)
    assert response.status_code == 200, response.content
    data = envelope(response)["data"]
    assert data["count"] == len(data["logs"])
    return list(data["logs"])


async def test_log_is_stamped_from_the_token(server: Harness, token: str) -> None:
    server.wall.now = int(server.wall()) + 1.123
    expected_dt = iso(server.wall.now)
    stored = envelope(
        await log(
            server,
            token,
            level="info",
            message="hello",
            context={"a": 1},
            category="app",
            file="app/main.py",
            function="handler",
        )
    )
    assert stored["data"]["stored"] is True
    [entry] = await query(server, token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert entry == {
        "id": stored["data"]["id"],
        "dt": expected_dt,
        "level": "info",
        "message": "hello",
        "context": {"a": 1},
        "category": "app",
        "file": "app/main.py",
        "function": "handler",
        "project": "local",
        "environment": "development",
        "subject": claims["sub"],
        "subject_type": "client",
        "tenant_id": claims["tenant_id"],
    }


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"level": "warning", "message": "m"}, 400, "level"),
        ({"message": "m"}, 400, "level"),
        ({"level": "info"}, 400, "message"),
        ({"level": "info", "message": ""}, 400, "message"),
        ({"level": "info", "message": "m" * 32769}, 400, "message"),
        ({"level": "info", "message": "m", "context": [1]}, 400, "context"),
        ({"level": "info", "message": "m", "context": {"x": "y" * 70000}}, 413, "context"),
        ({"level": "info", "message": "m", "category": "c" * 65}, 400, "category"),
        ({"level": "info", "message": "m", "category": "audit"}, 403, "category"),
        ({"level": "info", "message": "m", "category": "Audit.login"}, 403, "category"),
    ],
)
async def test_invalid_entries_are_refused(
    server: Harness, token: str, body: dict[str, Any], status: int, field: str
) -> None:
    response = await server.call("POST", "/api/herald/log", body, token=token)
    assert response.status_code == status
    assert envelope(response)["details"]["field"] == field
    assert await query(server, token) == []


async def test_batch_is_partial_by_design(server: Harness, token: str) -> None:
    events: list[Any] = [{"level": "info", "message": f"m{i}"} for i in range(5)]
    events[1] = {"level": "loud", "message": "x"}
    events[3] = "not an object"
    events.append({"level": "error", "message": "audit me", "category": "audit"})
    response = await server.call("POST", "/api/herald/batch", {"events": events}, token=token)
    data = envelope(response)["data"]
    assert (data["total"], data["stored"], data["failed"]) == (6, 3, 3)
    assert [(e["index"], e["code"]) for e in data["errors"]] == [
        (1, "validation_failed"),
        (3, "validation_failed"),
        (5, "forbidden"),
    ]
    assert all(e["error"] for e in data["errors"])
    assert sorted(e["message"] for e in await query(server, token)) == ["m0", "m2", "m4"]


@pytest.mark.parametrize("events", [[], [{"level": "info", "message": "m"}] * 101, "x"])
async def test_batch_size_is_1_to_100(server: Harness, token: str, events: Any) -> None:
    response = await server.call("POST", "/api/herald/batch", {"events": events}, token=token)
    assert response.status_code == 400
    assert error_code(response) == "validation_failed"
    assert await query(server, token) == []


async def test_query_filters(server: Harness, token: str) -> None:
    base = float(int(server.wall()) + 1)  # forward only: the token must stay valid
    entries = [
        ("debug", "Cache warm", "cache", "a.py", "f1"),
        ("info", "User Logged in", "auth", "b.py", "f2"),
        ("warn", "disk almost full", "ops", "a.py", "f1"),
        ("error", "LOGIN failed", "auth", "b.py", "f3"),
        ("critical", "100%_done", "ops", "c.py", "f1"),
    ]
    for offset, (level, message, category, file, function) in enumerate(entries):
        server.wall.now = base + offset
        await log(server, token, level=level, message=message, category=category, file=file, function=function)

    def messages(rows: list[dict[str, Any]]) -> list[str]:
        return [row["message"] for row in rows]

    assert messages(await query(server, token)) == [e[1] for e in reversed(entries)]  # newest first
    assert messages(await query(server, token, level="warn")) == ["100%_done", "LOGIN failed", "disk almost full"]
    assert messages(await query(server, token, category="auth")) == ["LOGIN failed", "User Logged in"]
    assert messages(await query(server, token, file="a.py")) == ["disk almost full", "Cache warm"]
    assert messages(await query(server, token, function="f1", file="c.py")) == ["100%_done"]
    assert messages(await query(server, token, search="logg")) == ["User Logged in"]
    assert messages(await query(server, token, search="LOG")) == ["LOGIN failed", "User Logged in"]
    assert messages(await query(server, token, search="%_")) == ["100%_done"]  # no wildcards
    window = await query(server, token, start_time=iso(base + 1), end_time=iso(base + 3))
    assert messages(window) == ["disk almost full", "User Logged in"]  # start inclusive, end exclusive
    plus_two = datetime.fromtimestamp(base + 3, timezone(timedelta(hours=2))).isoformat()
    offset_form = await query(server, token, start_time=plus_two)
    assert messages(offset_form) == ["100%_done", "LOGIN failed"]
    assert messages(await query(server, token, limit=2)) == ["100%_done", "LOGIN failed"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"level": "verbose"}, "level"),
        ({"start_time": "yesterday"}, "start_time"),
    ],
)
async def test_query_validation(server: Harness, token: str, body: dict[str, Any], field: str) -> None:
    response = await server.call("POST", "/api/herald/query", body, token=token)
    assert response.status_code == 400
    assert envelope(response)["details"]["field"] == field


async def test_other_projects_are_for_administrators(server: Harness, token: str) -> None:
    claims = jwt.decode(token, options={"verify_signature": False})
    other = issue_token(server.app.state, {**claims, "project_slug": "shop"})
    await log(server, other, level="info", message="from shop")
    assert await query(server, token) == []
    assert [e["message"] for e in await query(server, token, project="shop")] == ["from shop"]

    psk = "d" * 64
    await add_client(server, psk)
    plain = await server.mint(psk)
    refused = await server.call("POST", "/api/herald/query", {"environment": "production"}, token=plain)
    assert refused.status_code == 403
    assert error_code(refused) == "forbidden"
    own = await server.call("POST", "/api/herald/query", {"project": "local"}, token=plain)
    assert own.status_code == 200


async def test_session_tokens_are_refused(server: Harness) -> None:
    session = await add_user_session(server)
    assert (await log(server, session, level="info", message="m")).status_code == 403


async def test_write_audit_joins_the_callers_transaction(server: Harness, token: str) -> None:
    claims = jwt.decode(token, options={"verify_signature": False})
    principal = Principal("client", claims["sub"], None, ("admin",), (), None, "local", "development")
    async with server.app.state.db.begin() as conn:
        entry_id = await write_audit(conn, principal, "secure read", {"table": "t"}, "audit.scribe")
    [entry] = await query(server, token, category="audit.scribe")
    assert (entry["id"], entry["context"], entry["subject"]) == (entry_id, {"table": "t"}, claims["sub"])
    assert entry["level"] == "notice"

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback):
        async with server.app.state.db.begin() as conn:
            await write_audit(conn, principal, "never kept", {}, "audit")
            raise Rollback
    assert await query(server, token, category="audit") == []
    with pytest.raises(ValueError):
        async with server.app.state.db.begin() as conn:
            await write_audit(conn, principal, "m", {}, "app")
