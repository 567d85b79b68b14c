"""Secure tables: reason and actor, scopes, and the audit trail (spec 8.3)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dominus_fastapi import AuthorizationError, Dominus, SecureTableError, ServiceError, ValidationError
from dominus_fastapi.core.secure import SecureAccessContext
from dominus_local.services import scribe
from tests.data.conftest import Env

SECRET_VALUE = "SSN-078-05-1120"
CONTEXT = SecureAccessContext(reason="Quarterly compliance review", actor="user-7")


async def _records(env: Env) -> None:
    await env.client.ddl.create_table(
        "public",
        "records",
        [
            {"name": "id", "type": "serial", "primary_key": True},
            {"name": "owner", "type": "text"},
            {"name": "ssn", "type": "text"},
        ],
    )
    await env.client.auth.create_secure_table("records")


async def _count(env: Env) -> int:
    return (await env.client.db.query("records", reason="test check", actor="machine"))["total"]


async def _audit(env: Env) -> list[dict[str, Any]]:
    return await env.client.logs.query(category="audit", search="scribe.", limit=1000)


async def test_secure_methods_refuse_blank_context_before_sending() -> None:
    # Port 9 on loopback refuses connections: reaching the network would raise a connection error instead.
    client = Dominus(base_url="http://127.0.0.1:9", token="x" * 64, max_retries=0)
    try:
        for context in (
            SecureAccessContext("", "user-1"),
            SecureAccessContext("why", "   "),
            SecureAccessContext(" \t", "\n"),
            None,
        ):
            with pytest.raises(SecureTableError):
                await client.secure.query("records", context)  # type: ignore[arg-type]
            with pytest.raises(SecureTableError):
                await client.secure.insert("records", {"owner": "x"}, context)  # type: ignore[arg-type]
            with pytest.raises(SecureTableError):
                await client.secure.update("records", {"owner": "x"}, {"id": 1}, context)  # type: ignore[arg-type]
            with pytest.raises(SecureTableError):
                await client.secure.delete("records", {"id": 1}, context)  # type: ignore[arg-type]
            with pytest.raises(SecureTableError):
                await client.db_secure.bulk_insert("records", [{"owner": "x"}], context)  # type: ignore[arg-type]
    finally:
        await client.aclose()


async def test_db_methods_without_reason_get_the_servers_refusal_and_write_nothing(env: Env) -> None:
    await _records(env)
    db = env.client.db
    with pytest.raises(SecureTableError) as caught:
        await db.insert("records", {"owner": "ann", "ssn": SECRET_VALUE})
    assert caught.value.status_code == 403 and caught.value.code == "secure_table_reason_required"
    with pytest.raises(SecureTableError):
        await db.bulk_insert("records", [{"owner": "ann"}], reason="  ", actor="user-1")
    with pytest.raises(SecureTableError):
        await db.query("records", reason="why")
    with pytest.raises(SecureTableError):
        await db.delete("records", {"owner": "ann"}, actor="user-1")
    with pytest.raises(ValidationError):
        await db.insert("records", {"owner": "ann"}, reason="r" * 1001, actor="user-1")
    assert await _count(env) == 0
    # Listings of secure tables need no reason.
    assert [c["name"] for c in await env.client.secure.columns("records")] == ["id", "owner", "ssn"]
    assert await env.client.db.tables() == [{"name": "records", "schema": "public", "secure": True}]


async def test_every_operation_leaves_an_audit_record_without_row_values(env: Env) -> None:
    await _records(env)
    secure = env.client.secure
    await secure.insert("records", {"owner": "ann", "ssn": SECRET_VALUE}, CONTEXT)
    await secure.bulk_insert("records", [{"owner": "bob", "ssn": SECRET_VALUE + "9"}, {"owner": "cid"}], CONTEXT)
    page = await secure.query("records", CONTEXT, filters={"owner": ["ann", "bob"]}, sort_by="owner")
    assert [r["ssn"] for r in page["rows"]] == [SECRET_VALUE, SECRET_VALUE + "9"]
    await secure.update("records", {"ssn": None}, {"owner": "bob"}, CONTEXT)
    await secure.delete("records", {"owner": "cid"}, CONTEXT)

    entries = await _audit(env)
    by_operation = {e["context"]["operation"]: e for e in entries}
    assert set(by_operation) == {"insert", "bulk_insert", "query", "update", "delete"}
    query = by_operation["query"]
    assert query["message"] == "scribe.query public.records"
    assert query["category"] == "audit" and query["level"] == "notice"
    context = query["context"]
    assert context["service"] == "scribe"
    assert (context["schema"], context["table"]) == ("public", "records")
    assert (context["reason"], context["actor"]) == (CONTEXT.reason, CONTEXT.actor)
    assert context["filters"] == {"owner": ["ann", "bob"]}
    assert context["row_count"] == 2
    assert context["subject_type"] == "client" and context["subject"]
    assert context["request_id"]
    assert by_operation["bulk_insert"]["context"]["affected_rows"] == 2
    assert by_operation["update"]["context"]["affected_rows"] == 1
    assert by_operation["delete"]["context"]["filters"] == {"owner": "cid"}
    text = json.dumps(entries)
    assert SECRET_VALUE not in text


async def test_linked_scopes_restrict_the_table(env: Env) -> None:
    await _records(env)
    auth = env.client.auth
    registration = (await auth.list_secure_tables())["items"][0]
    scope = await auth.create_scope("records:read", "Read records")
    await auth.add_secure_table_scopes(registration["id"], [scope["id"]])
    outsider = await auth.create_client("outsider")
    insider = await auth.create_client("insider")
    await auth.add_client_scopes(insider["id"], [scope["id"]])

    without = await env.other_client(outsider["psk"])
    holder = await env.other_client(insider["psk"])
    try:
        with pytest.raises(AuthorizationError) as caught:
            await without.secure.insert("records", {"owner": "x"}, CONTEXT)
        assert not isinstance(caught.value, SecureTableError) and caught.value.code == "forbidden"
        row = await holder.secure.insert("records", {"owner": "y"}, CONTEXT)
        assert row["owner"] == "y"
    finally:
        await without.aclose()
        await holder.aclose()
    # The admin client holds only the admin scope, so it is refused too.
    with pytest.raises(AuthorizationError):
        await env.client.secure.query("records", CONTEXT)


async def test_a_failed_audit_write_rolls_the_operation_back(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    await _records(env)

    async def broken(*_args: Any, **_kwargs: Any) -> str:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(scribe, "write_audit", broken)
    with pytest.raises(ServiceError) as caught:
        await env.client.secure.insert("records", {"owner": "ann"}, CONTEXT, max_retries=0)
    assert caught.value.status_code == 500
    monkeypatch.undo()
    assert await _count(env) == 0


async def test_a_secure_tables_refusal_comes_before_the_requests_own_and_applies_at_once(env: Env) -> None:
    """Plain reads and inserts learn whether the table is secure from their own statement: a table made secure
    after they ran is refused on the next call, and a bad request tells a caller without a reason nothing about
    the table (no conflict, no unknown column) before the secure table's refusal."""
    await env.client.ddl.create_table(
        "public",
        "records",
        [{"name": "id", "type": "serial", "primary_key": True}, {"name": "owner", "type": "text"}],
    )
    db = env.client.db
    first = await db.insert("records", {"owner": "ann"})
    assert (await db.query("records"))["total"] == 1
    await env.client.auth.create_secure_table("records")
    attempts = [
        db.insert("records", {"owner": "bob"}),
        db.insert("records", {"id": first["id"], "owner": "dup"}),
        db.insert("records", {"nope": 1}),
        db.query("records"),
        db.query("records", filters={"nope": 1}),
        db.query("records", offset=50),
    ]
    for attempt in attempts:
        with pytest.raises(SecureTableError) as caught:
            await attempt
        assert caught.value.code == "secure_table_reason_required"
    assert await _count(env) == 1
    row = await env.client.secure.insert("records", {"owner": "cid"}, CONTEXT)
    assert row["owner"] == "cid"
    assert [e["context"]["operation"] for e in await _audit(env)].count("insert") == 1
