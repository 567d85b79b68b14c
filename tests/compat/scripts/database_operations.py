"""The reference README's Database Operations block, secure table access included."""

import asyncio
import os

os.environ["DOMINUS_TOKEN"] = "your-psk-token"

from dominus import SecureTableError, dominus


async def main():
    await dominus.ddl.add_table("users", [
        {"name": "id", "type": "SERIAL", "constraints": ["PRIMARY KEY"]},
        {"name": "email", "type": "VARCHAR(200)"},
        {"name": "name", "type": "VARCHAR(100)"},
        {"name": "status", "type": "VARCHAR(20)", "default": "'active'"},
        {"name": "role", "type": "VARCHAR(20)", "default": "'admin'"},
        {"name": "created_at", "type": "TIMESTAMPTZ", "default": "NOW()"},
    ])
    await dominus.ddl.add_table("events", [
        {"name": "id", "type": "SERIAL", "constraints": ["PRIMARY KEY"]},
        {"name": "type", "type": "VARCHAR(20)"},
        {"name": "user_id", "type": "VARCHAR(20)"},
    ])
    await dominus.ddl.add_table("patients", [
        {"name": "id", "type": "SERIAL", "constraints": ["PRIMARY KEY"]},
        {"name": "name", "type": "TEXT"},
    ], schema="tenant_acme")
    await dominus.auth.create_secure_table("patients", "tenant_acme")

    # List tables
    tables = await dominus.db.tables()
    tenant_tables = await dominus.db.tables(schema="tenant_acme")

    # Insert
    user = await dominus.db.insert("users", {
        "email": "john@example.com",
        "name": "John Doe"
    })
    user_id = user["id"]

    # Query with filters and pagination
    users = await dominus.db.query(
        "users",
        filters={"status": "active", "role": ["admin", "manager"]},
        sort_by="created_at",
        sort_order="desc",
        limit=50,
        offset=0
    )
    assert users["total"] == 1 and users["rows"][0]["email"] == "john@example.com"

    # Update
    await dominus.db.update("users", {"status": "inactive"}, filters={"id": user_id})
    assert (await dominus.db.query("users", filters={"status": "inactive"}))["total"] == 1

    # Delete
    await dominus.db.delete("users", filters={"id": user_id})
    assert (await dominus.db.query("users"))["total"] == 0

    # Bulk insert
    await dominus.db.bulk_insert("events", [
        {"type": "login", "user_id": "123"},
        {"type": "login", "user_id": "456"}
    ])
    assert (await dominus.db.query("events", filters={"type": "login"}))["total"] == 2

    # Secure table access (requires audit reason)
    await dominus.db.insert("patients", {"name": "Ann"}, schema="tenant_acme",
                            reason="Admitting a patient", actor="dr.smith")
    patients = await dominus.db.query(
        "patients",
        schema="tenant_acme",
        reason="Reviewing records for appointment #123",
        actor="dr.smith"
    )
    assert [p["name"] for p in patients["rows"]] == ["Ann"]
    try:
        await dominus.db.query("patients", schema="tenant_acme")
    except SecureTableError as e:
        assert e.status_code == 403
    else:
        raise AssertionError("a secure table needs a reason and an actor")

    assert {"users", "events"} <= {t["name"] for t in tables}
    assert [t["name"] for t in tenant_tables] == ["patients"]
    await dominus.aclose()
    print("ok")


asyncio.run(main())
