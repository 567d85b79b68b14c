"""The reference README's Schema Management (DDL) block."""

import asyncio
import os

os.environ["DOMINUS_TOKEN"] = "your-psk-token"

from dominus import dominus


async def main():
    categories = await dominus.auth.list_tenant_categories()
    healthcare = next(c for c in categories["items"] if c["slug"] == "healthcare")
    await dominus.auth.create_tenant("Customer Acme", "customer_acme", category_id=healthcare["id"])

    # Create table
    await dominus.ddl.add_table("orders", [
        {"name": "id", "type": "UUID", "constraints": ["PRIMARY KEY"]},
        {"name": "user_id", "type": "UUID", "constraints": ["NOT NULL"]},
        {"name": "total", "type": "DECIMAL(10,2)"},
        {"name": "created_at", "type": "TIMESTAMPTZ", "default": "NOW()"}
    ])

    # Add column
    await dominus.ddl.add_column("orders", "status", "VARCHAR(50)", default="'pending'")

    # Provision tenant schema from category template
    provisioned = await dominus.ddl.provision_tenant("customer_acme", category_slug="healthcare")
    assert provisioned["tenant_slug"] == "customer_acme" and provisioned["created"] is True
    assert (await dominus.ddl.provision_status("customer_acme"))["provisioned"] is True

    columns = [c["name"] for c in await dominus.db.columns("orders")]
    assert columns == ["id", "user_id", "total", "created_at", "status"]
    row = await dominus.db.insert("orders", {
        "id": "0b6f5f0e-6a4c-4b59-9a53-1c1f0c9d2a10",
        "user_id": "7d0b7a55-1c0b-4a43-8f63-1d6c5a1f1e22",
        "total": "12.50",
    })
    assert row["status"] == "pending"
    assert (await dominus.ddl.get_current_version("public"))["version"] == 2
    await dominus.aclose()
    print("ok")


asyncio.run(main())
