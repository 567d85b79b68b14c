"""``if_not_exists=True`` on the DDL calls that create things: setup code that runs on every start.

The protocol has no such flag (spec 7.7): the SDK turns the server's 409 for the very name it asked for into
an answer with ``created``/``added: False``, after checking what it can read back. Other 409s still raise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dominus_fastapi import ConflictError, Dominus
from tests.conftest import make_fast
from tests.data.conftest import ORDERS_COLUMNS, Env, make_tenant


async def declare_orders(client: Dominus) -> list[dict[str, Any]]:
    """What an app declares at start-up: a table, a column added in a later release, an index."""
    return [
        await client.ddl.add_table("orders", ORDERS_COLUMNS, schema="sales", if_not_exists=True),
        await client.ddl.add_column(
            "orders", "status", "VARCHAR(50)", default="'pending'", schema="sales", if_not_exists=True
        ),
        await client.ddl.create_index("sales", "orders", "orders_customer", ["customer"], if_not_exists=True),
    ]


async def test_setup_runs_again_after_a_restart_on_a_data_directory(tmp_path: Path) -> None:
    first = Dominus(base_url=f"embedded://{tmp_path}")
    make_fast(first)
    try:
        created = await declare_orders(first)
        await first.db.insert("orders", {"customer": "ann"}, schema="sales")
    finally:
        await first.aclose()
    assert [r.get("created", r.get("added")) for r in created] == [True, True, True]

    second = Dominus(base_url=f"embedded://{tmp_path}")
    make_fast(second)
    try:
        with pytest.raises(ConflictError, match="already exists"):
            await second.ddl.add_table("orders", ORDERS_COLUMNS, schema="sales")
        again = await declare_orders(second)
        assert again == [
            {"schema": "sales", "table": "orders", "created": False, "version": 3},
            {"schema": "sales", "table": "orders", "column": "status", "added": False, "version": 3},
            {"schema": "sales", "table": "orders", "index_name": "orders_customer", "created": False, "version": 3},
        ]
        # Nothing was changed: no migration recorded, the row is still there.
        assert len(await second.ddl.list_migrations("sales")) == 3
        assert [r["customer"] for r in (await second.db.query("orders", schema="sales"))["rows"]] == ["ann"]
    finally:
        await second.aclose()


async def test_an_existing_table_without_a_declared_column_is_a_conflict(env: Env) -> None:
    ddl = env.client.ddl
    await ddl.add_table("notes", [{"name": "id", "type": "serial", "primary_key": True}])
    before = await env.checksum()
    with pytest.raises(ConflictError) as caught:
        await ddl.add_table(
            "notes",
            [{"name": "id", "type": "serial", "primary_key": True}, {"name": "body", "type": "text"}],
            if_not_exists=True,
        )
    assert caught.value.details["missing"] == ["body"]
    assert "add_column" in caught.value.message and "public.notes" in caught.value.message
    assert await env.checksum() == before
    # Extra columns on the existing table (added later) are fine: only the declared ones must be there.
    await ddl.add_column("notes", "body", "text")
    await ddl.add_column("notes", "extra", "text")
    answer = await ddl.add_table(
        "notes",
        [{"name": "id", "type": "serial", "primary_key": True}, {"name": "body", "type": "text"}],
        if_not_exists=True,
    )
    assert answer["created"] is False


async def test_other_conflicts_still_raise(env: Env) -> None:
    ddl = env.client.ddl
    await ddl.add_table("things", [{"name": "id", "type": "serial", "primary_key": True}])
    # An index name that is a table's name is not "the same index".
    with pytest.raises(ConflictError):
        await ddl.create_index("public", "things", "things", ["id"], if_not_exists=True)
    # A rename onto a taken column is not a creation: no such flag, the 409 as before.
    await ddl.add_column("things", "a", "text")
    await ddl.add_column("things", "b", "text")
    with pytest.raises(ConflictError):
        await ddl.rename_column("public", "things", "a", "b")


async def test_the_default_is_still_the_conflict(env: Env) -> None:
    ddl = env.client.ddl
    await ddl.add_table("things", [{"name": "id", "type": "serial", "primary_key": True}])
    await ddl.add_column("things", "a", "text")
    await ddl.create_index("public", "things", "things_a", ["a"])
    for call in (
        ddl.add_table("things", [{"name": "id", "type": "serial"}]),
        ddl.add_column("things", "a", "text"),
        ddl.create_index("public", "things", "things_a", ["a"]),
    ):
        with pytest.raises(ConflictError):
            await call


async def test_category_ddl_and_tenant_schemas(env: Env) -> None:
    client = env.client
    await make_tenant(client, "acme", "shops")
    await make_tenant(client, "plain")
    columns = [{"name": "id", "type": "serial", "primary_key": True}, {"name": "sku", "type": "text"}]

    async def declare() -> list[dict[str, Any]]:
        return [
            await client.ddl.category_create_table("shops", "items", columns, if_not_exists=True),
            await client.ddl.category_add_column("shops", "items", "price", "numeric(10,2)", if_not_exists=True),
            await client.ddl.category_create_index("shops", "items", "items_sku", ["sku"], if_not_exists=True),
            await client.ddl.provision_tenant("acme", "shops", if_not_exists=True),
            await client.ddl.provision_tenant("plain", if_not_exists=True),
        ]

    first = await declare()
    assert [first[0]["version"], first[1]["version"], first[2]["version"]] == [1, 2, 3]
    assert first[3]["created"] is True and first[4]["created"] is True
    again = await declare()
    assert again[0] == {
        "category_slug": "shops",
        "target": "category",
        "table": "items",
        "created": False,
        "version": 3,
        "applied_schemas": [],
    }
    assert again[1]["added"] is False and again[1]["column"] == "price"
    assert again[2]["created"] is False and again[2]["index_name"] == "items_sku"
    assert again[3]["created"] is False and again[3]["applied_versions"] == []
    assert again[4] == {"tenant_slug": "plain", "schema": "tenant_plain", "created": False}
    assert len(await client.ddl.list_category_migrations("shops")) == 3
    names = [c["name"] for c in await client.db.columns("items", schema="tenant_acme")]
    assert names == ["id", "sku", "price"]
    with pytest.raises(ConflictError):
        await client.ddl.provision_tenant("plain")
