"""Smith's schema DDL, migration records, rollback and the JSON mapping of column types (spec 7.7, 8.2, 8.6)."""

from __future__ import annotations

import base64

import pytest

from dominus_fastapi import AuthorizationError, ConflictError, NotFoundError, ValidationError
from tests.data.conftest import Env

ALL_TYPES = [
    {"name": "id", "type": "BIGSERIAL", "primary_key": True},
    {"name": "i4", "type": "int4"},
    {"name": "i8", "type": "Int8"},
    {"name": "i2", "type": "smallint"},
    {"name": "t", "type": "text"},
    {"name": "vc", "type": "character varying ( 5 )"},
    {"name": "ch", "type": "char(2)"},
    {"name": "b", "type": "bool", "default": False},
    {"name": "n", "type": "decimal(8, 3)"},
    {"name": "r", "type": "float4"},
    {"name": "d", "type": "DOUBLE PRECISION"},
    {"name": "day", "type": "date"},
    {"name": "tod", "type": "time"},
    {"name": "ts", "type": "timestamp"},
    {"name": "tz", "type": "timestamp with time zone"},
    {"name": "u", "type": "uuid", "default": "gen_random_uuid()"},
    {"name": "j", "type": "jsonb"},
    {"name": "raw", "type": "bytea"},
]


async def test_type_names_and_the_json_mapping_of_values(env: Env) -> None:
    db = env.client.db
    await env.client.ddl.create_table("public", "kinds", ALL_TYPES)
    types = {c["name"]: c["type"] for c in await db.columns("kinds")}
    assert types["i4"] == "integer" and types["i8"] == "bigint" and types["vc"] == "varchar(5)"
    assert types["n"] == "numeric(8,3)" and types["d"] == "double precision" and types["tz"] == "timestamptz"
    row = await db.insert(
        "kinds",
        {
            "i4": 7,
            "i8": 2**40,
            "i2": -3,
            "t": "héllo",
            "vc": "abc",
            "ch": "xy",
            "b": True,
            "n": "12.5",
            "r": 1.5,
            "d": 2.25,
            "day": "2025-03-01",
            "tod": "09:30:00",
            "ts": "2025-03-01T09:30:00Z",
            "tz": "2025-03-01T10:30:00+01:00",
            "j": {"a": [1, 2, {"b": None}]},
            "raw": base64.b64encode(b"\x00\x01binary").decode(),
        },
    )
    assert row["id"] == 1 and row["i8"] == 2**40 and row["b"] is True
    assert row["n"] == "12.500" and row["r"] == 1.5 and row["d"] == 2.25
    assert row["day"] == "2025-03-01" and row["tod"] == "09:30:00"
    assert row["ts"] == "2025-03-01T09:30:00.000Z" and row["tz"] == "2025-03-01T09:30:00.000Z"
    assert row["j"] == {"a": [1, 2, {"b": None}]}
    assert base64.b64decode(row["raw"]) == b"\x00\x01binary"
    assert len(row["u"]) == 36 and row["u"][14] == "4"
    defaulted = await db.insert("kinds", {})
    assert defaulted["b"] is False and defaulted["t"] is None
    found = await db.query("kinds", filters={"tz": "2025-03-01T09:30:00.000Z", "n": 12.5, "b": True})
    assert found["total"] == 1
    for bad in (
        {"i4": "7"},
        {"i2": 40000},
        {"vc": "too long"},
        {"b": 1},
        {"n": "abc"},
        {"tz": "yesterday"},
        {"u": "not-a-uuid"},
        {"raw": "***"},
        {"day": "2025-13-01"},
        {"t": {"x": 1}},
    ):
        with pytest.raises(ValidationError) as caught:
            await db.insert("kinds", bad)
        assert caught.value.status_code == 422
    with pytest.raises(ValidationError):
        await env.client.ddl.add_column("public", "kinds", "odd", "geometry")
    assert (await db.query("kinds"))["total"] == 2


async def test_column_changes_indexes_and_constraints(env: Env) -> None:
    ddl, db = env.client.ddl, env.client.db
    await ddl.create_table(
        "shop",
        "items",
        [
            {"name": "id", "type": "serial", "primary_key": True},
            {"name": "name", "type": "text"},
            {"name": "qty", "type": "int"},
        ],
    )
    assert "shop" in await db.schemas()
    await db.bulk_insert("items", [{"name": "a", "qty": 1}, {"name": "b", "qty": 2}], schema="shop")
    renamed = await ddl.rename_column("shop", "items", "qty", "quantity")
    assert renamed["renamed"] is True and renamed["version"] == 2
    altered = await ddl.alter_column("shop", "items", "name", new_type="varchar(20)", nullable=False, default="'n/a'")
    assert altered["altered"] is True
    columns = {c["name"]: c for c in await db.columns("items", schema="shop")}
    assert columns["name"]["type"] == "varchar(20)" and columns["name"]["nullable"] is False
    assert columns["name"]["default"] == "n/a"
    assert (await db.insert("items", {"quantity": 3}, schema="shop"))["name"] == "n/a"
    await ddl.alter_column("shop", "items", "name", default="DROP")
    assert {c["name"]: c for c in await db.columns("items", schema="shop")}["name"]["default"] is None

    await ddl.create_index("shop", "items", "items_quantity", ["quantity"])
    await ddl.add_constraint("shop", "items", "items_name_key", "unique", "(name)")
    await ddl.add_constraint("shop", "items", "items_quantity_positive", "check", "(quantity > 0 AND quantity < 1000)")
    with pytest.raises(ConflictError):
        await db.insert("items", {"name": "a", "quantity": 5}, schema="shop")
    with pytest.raises(ValidationError):
        await db.insert("items", {"name": "z", "quantity": 0}, schema="shop")
    await ddl.drop_constraint("shop", "items", "items_quantity_positive")
    assert (await db.insert("items", {"name": "zero", "quantity": 0}, schema="shop"))["quantity"] == 0
    await ddl.create_table(
        "shop",
        "orders",
        [{"name": "id", "type": "serial", "primary_key": True}, {"name": "item_id", "type": "int", "nullable": False}],
    )
    await ddl.add_constraint(
        "shop", "orders", "orders_item_fk", "foreign_key", "(item_id) REFERENCES shop.items(id) ON DELETE CASCADE"
    )
    await db.insert("orders", {"item_id": 1}, schema="shop")
    with pytest.raises(ValidationError):
        await db.insert("orders", {"item_id": 999}, schema="shop")
    if env.state.db.is_sqlite:
        # SQLite alters a table by rebuilding it, which a table that others reference cannot survive intact.
        with pytest.raises(ValidationError):
            await ddl.alter_column("shop", "items", "quantity", new_type="bigint")
    await ddl.drop_index("shop", "items_quantity")
    with pytest.raises(NotFoundError):
        await ddl.drop_index("shop", "items_quantity")
    with pytest.raises(NotFoundError):
        await ddl.drop_column("shop", "items", "missing")
    with pytest.raises(NotFoundError):
        await ddl.rename_column("shop", "nothing", "a", "b")
    with pytest.raises(ConflictError):
        await ddl.create_table("shop", "items", [{"name": "id", "type": "int"}])

    migrations = await ddl.list_migrations("shop")
    assert [m["version"] for m in migrations] == list(range(1, len(migrations) + 1))
    assert [m["operation"] for m in migrations][:3] == ["create_table", "rename_column", "alter_column"]
    assert migrations[1]["up"] == 'ALTER TABLE "shop"."items" RENAME COLUMN "qty" TO "quantity"'
    assert migrations[1]["down"] == 'ALTER TABLE "shop"."items" RENAME COLUMN "quantity" TO "qty"'
    drop_index = next(m for m in migrations if m["operation"] == "drop_index")
    assert drop_index["reversible"] is False and drop_index["down"] is None
    file = await ddl.get_migration_file("shop", 2)
    assert file["name"] == "0002_rename_column_items_qty_quantity"
    with pytest.raises(NotFoundError):
        await ddl.get_migration_file("shop", 99)

    truncated = await ddl.truncate_table("shop", "orders")
    assert truncated == {"schema": "shop", "table": "orders", "truncated": True}
    assert (await db.query("orders", schema="shop"))["total"] == 0
    assert (await ddl.get_current_version("shop"))["version"] == len(migrations)
    dropped = await ddl.drop_table("shop", "orders")
    assert dropped["dropped"] is True and dropped["version"] == len(migrations) + 1


async def test_rollback_reverses_in_order_and_is_recorded(env: Env) -> None:
    ddl, db = env.client.ddl, env.client.db
    await ddl.create_table(
        "app", "people", [{"name": "id", "type": "serial", "primary_key": True}, {"name": "nick", "type": "text"}]
    )
    await db.insert("people", {"nick": "ann"}, schema="app")
    await ddl.add_column("app", "people", "age", "integer", default=30)
    await ddl.rename_column("app", "people", "nick", "handle")
    await ddl.alter_column("app", "people", "handle", new_type="varchar(10)", nullable=False)
    await ddl.create_index("app", "people", "people_age", ["age"])
    await ddl.add_constraint("app", "people", "people_adult", "check", "(age >= 18)")

    result = await ddl.rollback_migration("app", 1)
    assert result["rolled_back"] == [6, 5, 4, 3, 2]
    columns = await db.columns("people", schema="app")
    assert [(c["name"], c["type"], c["nullable"]) for c in columns] == [("id", "serial", False), ("nick", "text", True)]
    assert (await db.query("people", schema="app"))["rows"] == [{"id": 1, "nick": "ann"}]
    assert [m["version"] for m in await ddl.list_migrations("app")] == [1]
    history = (await ddl.migration_history("app"))["events"]
    assert [(e["version"], e["action"]) for e in history] == [
        (1, "apply"),
        (2, "apply"),
        (3, "apply"),
        (4, "apply"),
        (5, "apply"),
        (6, "apply"),
        (6, "rollback"),
        (5, "rollback"),
        (4, "rollback"),
        (3, "rollback"),
        (2, "rollback"),
    ]
    again = await ddl.add_column("app", "people", "email", "text")
    assert again["version"] == 2
    compare = await ddl.compare_versions(["app", "public"])
    assert compare == {"versions": {"app": 2, "public": 0}, "in_sync": False}
    with pytest.raises(NotFoundError):
        await ddl.compare_versions(["app", "nowhere"])
    await ddl.rollback_migration("app", 0)
    assert await db.tables("app") == []


async def test_raw_ddl_is_admin_only_and_irreversible(env: Env) -> None:
    ddl = env.client.ddl
    key = "INTEGER PRIMARY KEY" if env.state.db.is_sqlite else "SERIAL PRIMARY KEY"
    done = await ddl.execute_raw("public", f"CREATE TABLE events (id {key}, kind TEXT NOT NULL, at TIMESTAMPTZ)")
    assert done == {"schema": "public", "executed": True, "version": 1}
    await ddl.execute_raw("public", "CREATE INDEX events_kind ON events (kind)")
    row = await env.client.db.insert("events", {"kind": "boot", "at": "2025-01-01T00:00:00Z"})
    assert row == {"id": 1, "kind": "boot", "at": "2025-01-01T00:00:00.000Z"}
    assert [t["name"] for t in await env.client.db.tables()] == ["events"]
    migrations = await ddl.list_migrations("public")
    assert [m["operation"] for m in migrations] == ["raw", "raw"] and not migrations[0]["reversible"]
    with pytest.raises(ValidationError):
        await ddl.execute_raw("public", "CREATE TABLE a (x int); DROP TABLE events")
    with pytest.raises(ValidationError):
        await ddl.execute_raw("public", "ATTACH DATABASE 'x.db' AS other")
    for statement in ("DROP TABLE guardian_clients", "DROP TABLE main.guardian_clients", "DROP SCHEMA public CASCADE"):
        with pytest.raises(ValidationError):
            await ddl.execute_raw("public", statement)
    assert (await env.client.auth.list_clients())["total"] >= 1  # the service tables are out of reach

    outsider = await env.client.auth.create_client("app")
    other = await env.other_client(outsider["psk"])
    try:
        with pytest.raises(AuthorizationError):
            await other.ddl.execute_raw("public", "DROP TABLE events")
        assert (await other.db.query("events"))["total"] == 1
    finally:
        await other.aclose()
