"""The data examples of ``docs/services/tables.md`` (once the README's), run as written against ``embedded:``."""

from __future__ import annotations

import pytest

from dominus_fastapi import SecureTableError
from dominus_fastapi.core.secure import SecureAccessContext
from tests.data.conftest import Env, make_orders, make_tenant


async def test_orders_lifecycle(env: Env) -> None:
    db = env.client.db
    await make_orders(env.client)
    columns = {c["name"]: c for c in await db.columns("orders")}
    assert columns["status"]["default"] == "pending"
    assert columns["id"]["primary_key"] is True
    assert columns["customer"]["nullable"] is False

    people = [
        ("ann", "admin", "active"),
        ("bob", "manager", "active"),
        ("cid", "viewer", "active"),
        ("dan", "admin", "inactive"),
        ("eve", "manager", "pending"),
    ]
    for customer, role, status in people:
        row = await db.insert("orders", {"customer": customer, "role": role, "status": status, "amount": "19.9"})
        assert row["customer"] == customer and isinstance(row["id"], int)
        assert row["amount"] == "19.90"
        assert row["created_at"].endswith("Z")
    defaulted = await db.insert("orders", {"customer": "fay"})
    assert defaulted["status"] == "pending"

    result = await db.query(
        "orders",
        filters={"status": "active", "role": ["admin", "manager"]},
        sort_by="customer",
        sort_order="DESC",
        limit=50,
        offset=0,
    )
    assert result["total"] == 2
    assert [r["customer"] for r in result["rows"]] == ["bob", "ann"]

    updated = await db.update("orders", {"status": "shipped"}, filters={"customer": "ann"})
    assert updated == {"affected_rows": 1}
    deleted = await db.delete("orders", filters={"customer": ["dan", "eve"]})
    assert deleted == {"affected_rows": 2}
    remaining = await db.query("orders", sort_by="customer")
    assert [(r["customer"], r["status"]) for r in remaining["rows"]] == [
        ("ann", "shipped"),
        ("bob", "active"),
        ("cid", "active"),
        ("fay", "pending"),
    ]
    nulls = await db.query("orders", filters={"role": None})
    assert [r["customer"] for r in nulls["rows"]] == ["fay"]


async def test_bulk_insert_and_pagination_loop(env: Env) -> None:
    db = env.client.db
    await make_orders(env.client)
    rows = [{"customer": f"c{i:04d}", "role": "admin" if i % 2 else "viewer", "amount": i} for i in range(1000)]
    result = await db.bulk_insert("orders", rows)
    assert result["inserted_count"] == 1000
    assert [r["customer"] for r in result["rows"]] == [r["customer"] for r in rows]
    assert all(r["status"] == "pending" for r in result["rows"])

    # The pagination loop of docs/services/tables.md, unchanged.
    seen = []
    offset = 0
    page_size = 100
    while True:
        page = await db.query("orders", limit=page_size, offset=offset)
        seen.extend(row["customer"] for row in page["rows"])
        offset += page_size
        if offset >= page["total"]:
            break
    assert seen == [r["customer"] for r in rows]

    admins = await db.query("orders", filters={"role": "admin"}, limit=10)
    assert admins["total"] == 500 and len(admins["rows"]) == 10


async def test_secure_access_on_a_provisioned_tenant_schema(env: Env) -> None:
    client = env.client
    await make_tenant(client, "customer-acme", "healthcare")
    await client.ddl.category_create_table(
        "healthcare",
        "patients",
        [
            {"name": "id", "type": "serial", "primary_key": True},
            {"name": "name", "type": "text", "nullable": False},
            {"name": "ward", "type": "text"},
        ],
    )
    provisioned = await client.ddl.provision_tenant("customer-acme", category_slug="healthcare")
    schema = provisioned["schema"]
    assert schema == "tenant_customer_acme"
    await client.auth.create_secure_table("patients", schema_name=schema)

    context = SecureAccessContext(reason="Treatment review", actor="user-42")
    await client.secure.insert("patients", {"name": "Jane", "ward": "B"}, context, schema=schema)
    found = await client.secure.query("patients", context, schema=schema, filters={"ward": "B"})
    assert found["total"] == 1 and found["rows"][0]["name"] == "Jane"
    # The alias and the db form with reason/actor reach the same audited endpoint.
    again = await client.db_secure.query("patients", context, schema=schema)
    assert again["total"] == 1
    via_db = await client.db.query("patients", schema=schema, reason="Billing", actor="machine")
    assert via_db["total"] == 1
    with pytest.raises(SecureTableError):
        await client.db.query("patients", schema=schema)
    tables = await client.secure.tables(schema)
    assert tables == [{"name": "patients", "schema": schema, "secure": True}]
