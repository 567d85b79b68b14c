"""All-or-nothing writes: bulk inserts, DDL, rollbacks and category changes (spec 4.1, 7.3, 8.6)."""

from __future__ import annotations

import pytest

from dominus_fastapi import ConflictError, ValidationError
from tests.data.conftest import Env, make_orders, make_tenant


async def _orders_with_rows(env: Env) -> None:
    await make_orders(env.client)
    await env.client.ddl.create_index("public", "orders", "orders_customer_key", ["customer"], unique=True)
    await env.client.db.bulk_insert("orders", [{"customer": f"seed{i}"} for i in range(3)])


@pytest.mark.parametrize(
    ("bad_row", "error"),
    [
        ({"customer": "bad", "amount": "not a number"}, ValidationError),  # refused before any statement runs
        ({"role": "admin"}, ValidationError),  # not-null broken inside the database, after earlier statements
        ({"customer": "seed1"}, ConflictError),  # unique broken inside the database
        ({"customer": "bad", "no_such_column": 1}, ValidationError),
    ],
)
async def test_bulk_insert_with_one_bad_row_inserts_nothing(env: Env, bad_row: dict[str, object], error: type) -> None:
    await _orders_with_rows(env)
    before = await env.checksum()
    rows: list[dict[str, object]] = [{"customer": f"c{i}", "role": "viewer"} for i in range(600)]
    rows.insert(450, bad_row)
    with pytest.raises(error):
        await env.client.db.bulk_insert("orders", rows)
    assert await env.checksum() == before
    assert (await env.client.db.query("orders"))["total"] == 3


async def test_failing_ddl_leaves_schema_and_history_unchanged(env: Env) -> None:
    await _orders_with_rows(env)
    ddl = env.client.ddl
    before = await env.checksum()
    migrations = await ddl.list_migrations("public")
    columns = await env.client.db.columns("orders")
    # The table is rebuilt on SQLite: the copy fails on the null roles, after the new table was created.
    with pytest.raises(ValidationError):
        await ddl.alter_column("public", "orders", "role", nullable=False)
    with pytest.raises(ValidationError):
        await ddl.alter_column("public", "orders", "customer", new_type="integer")
    with pytest.raises(ValidationError):
        await ddl.create_index("public", "orders", "idx_missing", ["missing"])
    with pytest.raises(ConflictError):
        await ddl.create_index("public", "orders", "orders_customer_key", ["role"])
    with pytest.raises(ConflictError):
        await ddl.add_column("public", "orders", "role", "text")
    with pytest.raises(ValidationError):
        await ddl.add_column("public", "orders", "due", "date", default="tomorrow")
    with pytest.raises(ValidationError):
        await ddl.add_constraint("public", "orders", "one_per_role", "unique", "(role, nope)")
    await env.client.db.bulk_insert("orders", [{"customer": "twin", "role": "x"}, {"customer": "twin2", "role": "x"}])
    after_rows = await env.checksum()
    with pytest.raises(ConflictError):
        await ddl.add_constraint("public", "orders", "one_per_role", "unique", "(role)")
    assert await env.checksum() == after_rows
    await env.client.db.delete("orders", {"customer": ["twin", "twin2"]})
    assert await env.checksum() == before
    assert await ddl.list_migrations("public") == migrations
    assert await env.client.db.columns("orders") == columns


async def test_rollback_through_an_irreversible_migration_changes_nothing(env: Env) -> None:
    ddl = env.client.ddl
    await make_orders(env.client)
    await ddl.add_column("public", "orders", "extra", "text")
    await ddl.drop_column("public", "orders", "extra")
    await ddl.add_column("public", "orders", "later", "integer")
    before = await env.checksum()
    current = await ddl.get_current_version("public")
    assert current == {"schema": "public", "version": 5}
    with pytest.raises(ValidationError) as caught:
        await ddl.rollback_migration("public", 1)
    assert caught.value.code == "unprocessable" and caught.value.details["irreversible"] == [4]
    with pytest.raises(ValidationError):
        await ddl.rollback_migration("public", 5)
    assert await env.checksum() == before
    undone = await ddl.rollback_migration("public", 4)
    assert undone == {"schema": "public", "from_version": 5, "to_version": 4, "rolled_back": [5]}
    assert "later" not in [c["name"] for c in await env.client.db.columns("orders")]


async def test_category_change_failing_on_one_tenant_changes_no_tenant(env: Env) -> None:
    client, ddl = env.client, env.client.ddl
    for slug in ("alpha", "beta"):
        await make_tenant(client, slug, "clinic")
        await ddl.provision_tenant(slug, category_slug="clinic")
    # beta already has a table of that name, created directly in its schema.
    await ddl.create_table("tenant_beta", "notes", [{"name": "id", "type": "int"}])
    before = await env.checksum()
    with pytest.raises(ConflictError):
        await ddl.category_create_table("clinic", "notes", [{"name": "id", "type": "serial", "primary_key": True}])
    assert await env.checksum() == before
    assert await ddl.list_category_migrations("clinic") == []
    assert await client.db.tables("tenant_alpha") == []
