"""The SDK side: method catalogue, README forms, and checks made before sending (spec 7.3, 7.7, 10)."""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dominus_fastapi import Dominus, ValidationError
from dominus_fastapi.core.namespaces.ddl import normalize_column, translate_default
from dominus_fastapi.core.secure import SecureAccessContext
from tests.data.conftest import Env

CATALOGUE = json.loads((Path(__file__).parents[2] / "docs" / "endpoints.json").read_text())


@pytest.fixture
async def offline() -> AsyncIterator[Dominus]:
    """A client whose orchestrator refuses connections: any request that is sent fails with a connection error."""
    client = Dominus(base_url="http://127.0.0.1:9", token="x" * 64, max_retries=0)
    try:
        yield client
    finally:
        await client.aclose()


async def test_every_catalogue_method_exists(offline: Dominus) -> None:
    client = offline
    names = sorted({name for entry in CATALOGUE if entry["service"] in ("scribe", "smith") for name in entry["python"]})
    assert len(names) > 40
    for name in names:
        namespace, method = name.split(".")
        function = getattr(getattr(client, namespace), method)
        assert inspect.iscoroutinefunction(function), name
        parameters = inspect.signature(function).parameters
        assert "timeout" in parameters and "max_retries" in parameters, name


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("NOW()", "CURRENT_TIMESTAMP"),
        (" now() ", "CURRENT_TIMESTAMP"),
        ("current_timestamp", "CURRENT_TIMESTAMP"),
        ("GEN_RANDOM_UUID()", "gen_random_uuid()"),
        ("'pending'", "pending"),
        ("'it''s'", "it's"),
        ("''", ""),
        ("42", 42),
        ("-1.5", -1.5),
        ("TRUE", True),
        ("false", False),
        ("NULL", None),
        (None, None),
        (7, 7),
        (False, False),
        ("pending", "pending"),
        ("'unterminated", "'unterminated"),
    ],
)
def test_default_translation(given: Any, sent: Any) -> None:
    assert translate_default(given) == sent


def test_readme_column_form_becomes_the_spec_form() -> None:
    column = normalize_column(
        {
            "name": "id",
            "type": "UUID",
            "constraints": ["primary  key", "NOT NULL", "unique"],
            "default": "gen_random_uuid()",
        }
    )
    assert column == {
        "name": "id",
        "type": "UUID",
        "primary_key": True,
        "nullable": False,
        "unique": True,
        "default": "gen_random_uuid()",
    }
    assert normalize_column({"name": "note", "type": "text", "default": "NULL"}) == {"name": "note", "type": "text"}
    assert normalize_column({"name": "n", "type": "int", "nullable": False, "default": "3"})["default"] == 3
    with pytest.raises(ValidationError):
        normalize_column({"name": "age", "type": "int", "constraints": ["CHECK (age > 0)"]})
    with pytest.raises(ValidationError):
        normalize_column({"name": "bad name", "type": "int"})


async def test_limits_and_identifiers_are_checked_before_sending(offline: Dominus) -> None:
    db, ddl = offline.db, offline.ddl
    for call in (
        db.query("orders", limit=0),
        db.query("orders", limit=1001),
        db.query("orders; --"),
        db.query("orders", schema="pub lic"),
        db.query("orders", sort_by="a b"),
        db.query("orders", filters={"a;b": 1}),
        db.insert("orders\u037e", {}),
        db.columns("x", schema="1x"),
        offline.secure.query("orders", SecureAccessContext("r", "a"), limit=5000),
        ddl.add_table("orders", [{"name": "id", "type": "int", "constraints": ["REFERENCES x"]}]),
        ddl.add_table("orders", []),
        ddl.create_index("public", "orders", "idx", ["a", "b c"]),
        ddl.add_column("orders", "bad-name", "text"),
        ddl.drop_table("public", "x y"),
        ddl.compare_versions(["a", "b-c"]),
    ):
        with pytest.raises(ValidationError):
            await call


async def test_add_column_forms(env: Env) -> None:
    ddl = env.client.ddl
    await ddl.add_table("orders", [{"name": "id", "type": "serial", "constraints": ["PRIMARY KEY"]}])
    await ddl.add_column("orders", "status", "VARCHAR(50)", default="'pending'")
    await ddl.add_column("public", "orders", "note", "text")
    await ddl.add_column("public", "orders", "qty", column_type="integer", default="0", nullable=False)
    await ddl.add_column("public", "orders", "flag", type="boolean", default="TRUE")
    await ddl.add_column("orders", "seen_at", "timestamptz", default="NOW()", schema="public")
    with pytest.raises(TypeError):
        await ddl.add_column("public", "orders", "x", "text", column_type="text")
    columns = {c["name"]: c for c in await env.client.db.columns("orders")}
    assert list(columns) == ["id", "status", "note", "qty", "flag", "seen_at"]
    assert columns["status"]["type"] == "varchar(50)" and columns["status"]["default"] == "pending"
    assert columns["qty"]["nullable"] is False and columns["qty"]["default"] == 0
    assert columns["flag"]["default"] is True and columns["seen_at"]["default"] == "CURRENT_TIMESTAMP"
    row = await env.client.db.insert("orders", {})
    assert (row["status"], row["qty"], row["flag"], row["note"]) == ("pending", 0, True, None)
    assert row["seen_at"].endswith("Z")
