"""Warden (spec 7.2): one path, five actions, values encrypted at rest, scoped to project and environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dominus_local.security import issue_token
from dominus_local.services.warden import secrets_table
from dominus_local.settings import LocalSettings

from .conftest import Harness, add_user_session, envelope, error_code, start

PATH = "/api/warden/secrets"


async def secrets(server: Harness, token: str, **body: Any) -> Any:
    return await server.call("POST", PATH, body, token=token)


async def test_lifecycle(server: Harness, token: str) -> None:
    created = envelope(await secrets(server, token, action="create", key="API_KEY", value="v1", comment="c"))
    record = created["data"]["secret"]
    assert "value" not in record
    assert (record["key"], record["comment"], record["version"]) == ("API_KEY", "c", 1)
    assert record["created_at"].endswith("Z") and record["created_at"] == record["updated_at"]

    got = envelope(await secrets(server, token, action="get", key="API_KEY"))["data"]["secret"]
    assert got["value"] == "v1"

    updated = envelope(await secrets(server, token, action="update", key="API_KEY", value={"n": [1, 2]}))
    assert updated["data"]["secret"]["version"] == 2
    assert updated["data"]["secret"]["comment"] == "c"  # kept: no comment given
    got = envelope(await secrets(server, token, action="get", key="API_KEY"))["data"]["secret"]
    assert got["value"] == {"n": [1, 2]}
    again = envelope(await secrets(server, token, action="update", key="API_KEY", value=0, comment="new"))
    assert (again["data"]["secret"]["version"], again["data"]["secret"]["comment"]) == (3, "new")

    deleted = envelope(await secrets(server, token, action="delete", key="API_KEY"))
    assert deleted["data"] == {"deleted": True, "key": "API_KEY"}
    missing = await secrets(server, token, action="get", key="API_KEY")
    assert missing.status_code == 404
    assert error_code(missing) == "not_found"


async def test_missing_keys_and_conflicts(server: Harness, token: str) -> None:
    for action in ("get", "update", "delete"):
        body: dict[str, Any] = {"action": action, "key": "NOPE"}
        if action == "update":
            body["value"] = 1
        response = await server.call("POST", PATH, body, token=token)
        assert response.status_code == 404, action
    await secrets(server, token, action="create", key="K", value=1)
    clash = await secrets(server, token, action="create", key="K", value=2)
    assert clash.status_code == 409
    assert error_code(clash) == "conflict"
    assert envelope(await secrets(server, token, action="get", key="K"))["data"]["secret"]["value"] == 1


async def test_list_is_sorted_filtered_by_plain_prefix_and_without_values(server: Harness, token: str) -> None:
    for key in ("b_1", "a.2", "a_1", "a_2", "ab", "A_1"):
        await secrets(server, token, action="create", key=key, value=key)
    listed = envelope(await secrets(server, token, action="list"))["data"]["secrets"]
    assert [item["key"] for item in listed] == ["A_1", "a.2", "a_1", "a_2", "ab", "b_1"]
    assert all("value" not in item for item in listed)
    # "_" is a plain character, not a LIKE wildcard; the prefix is case-sensitive.
    prefixed = envelope(await secrets(server, token, action="list", prefix="a_"))["data"]["secrets"]
    assert [item["key"] for item in prefixed] == ["a_1", "a_2"]
    upper = envelope(await secrets(server, token, action="list", prefix="A"))["data"]["secrets"]
    assert [item["key"] for item in upper] == ["A_1"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "rename", "key": "K"}, "action"),
        ({"key": "K"}, "action"),
        ({"action": "get"}, "key"),
        ({"action": "get", "key": "bad key"}, "key"),
        ({"action": "get", "key": "x" * 257}, "key"),
        ({"action": "create", "key": "K"}, "value"),
        ({"action": "create", "key": "K", "value": None}, "value"),
        ({"action": "create", "key": "K", "value": 1, "comment": "c" * 1001}, "comment"),
        ({"action": "list", "prefix": 5}, "prefix"),
    ],
)
async def test_validation(server: Harness, token: str, body: dict[str, Any], field: str) -> None:
    response = await server.call("POST", PATH, body, token=token)
    assert response.status_code == 400
    failure = envelope(response)
    assert failure["code"] == "validation_failed"
    assert failure["details"]["field"] == field
    assert envelope(await secrets(server, token, action="list"))["data"]["secrets"] == []


async def test_value_limit_is_64_kib_serialised(server: Harness, token: str) -> None:
    fits = "x" * (64 * 1024 - 2)  # the JSON string adds two quotes
    assert (await secrets(server, token, action="create", key="BIG", value=fits)).status_code == 200
    too_big = await secrets(server, token, action="update", key="BIG", value=fits + "x")
    assert too_big.status_code == 413
    assert error_code(too_big) == "payload_too_large"
    assert envelope(await secrets(server, token, action="get", key="BIG"))["data"]["secret"]["version"] == 1


async def test_values_are_encrypted_at_rest(server: Harness, token: str) -> None:
    await secrets(server, token, action="create", key="DB_PASSWORD", value="hunter2-plaintext")
    async with server.app.state.db.begin() as conn:
        stored = (await conn.execute(select(secrets_table.c.value_encrypted))).scalar_one()
    assert b"hunter2-plaintext" not in stored


async def test_secrets_belong_to_the_tokens_project_and_environment(server: Harness, token: str) -> None:
    await secrets(server, token, action="create", key="SHARED", value="dev")
    import jwt

    claims = jwt.decode(token, options={"verify_signature": False})
    staging = issue_token(server.app.state, {**claims, "environment": "staging"})
    assert (await secrets(server, staging, action="get", key="SHARED")).status_code == 404
    assert envelope(await secrets(server, staging, action="list"))["data"]["secrets"] == []
    await secrets(server, staging, action="create", key="SHARED", value="staging")
    got = await secrets(server, token, action="get", key="SHARED")
    assert envelope(got)["data"]["secret"]["value"] == "dev"


async def test_session_tokens_are_refused(server: Harness) -> None:
    session = await add_user_session(server)
    response = await secrets(server, session, action="list")
    assert response.status_code == 403


async def test_secrets_survive_a_restart(data_dir: Path) -> None:
    settings = LocalSettings(data_dir=data_dir, bcrypt_rounds=4)
    async for first in start(settings):
        await secrets(first, await first.mint(), action="create", key="KEEP", value={"a": 1})
    async for second in start(settings):
        got = await secrets(second, await second.mint(), action="get", key="KEEP")
        assert envelope(got)["data"]["secret"]["value"] == {"a": 1}
