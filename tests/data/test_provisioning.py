"""Category templates, tenant provisioning and the provisioning reports (spec 7.7, 8.6)."""

from __future__ import annotations

import pytest

from dominus_fastapi import ConflictError, NotFoundError
from tests.data.conftest import Env, make_tenant

PATIENTS = [
    {"name": "id", "type": "serial", "constraints": ["PRIMARY KEY"]},
    {"name": "name", "type": "text", "constraints": ["NOT NULL"]},
]
VISITS = [
    {"name": "id", "type": "bigserial", "primary_key": True},
    {"name": "patient_id", "type": "integer", "nullable": False},
    {"name": "at", "type": "timestamptz", "default": "CURRENT_TIMESTAMP"},
]


async def test_provision_from_a_category_template_and_follow_its_changes(env: Env) -> None:
    client, ddl = env.client, env.client.ddl
    await make_tenant(client, "customer_acme", "healthcare")
    first = await ddl.category_create_table("healthcare", "patients", PATIENTS)
    assert first["version"] == 1 and first["applied_schemas"] == []
    second = await ddl.category_create_table("healthcare", "visits", VISITS)
    assert second["version"] == 2

    provisioned = await ddl.provision_tenant("customer_acme", category_slug="healthcare")
    assert provisioned == {
        "tenant_slug": "customer_acme",
        "category_slug": "healthcare",
        "schema": "tenant_customer_acme",
        "created": True,
        "version": 2,
        "applied_versions": [1, 2],
    }
    assert "tenant_customer_acme" in await client.db.schemas()
    tables = await client.db.tables("tenant_customer_acme")
    assert [t["name"] for t in tables] == ["patients", "visits"]
    await client.db.insert("patients", {"name": "Jane"}, schema="tenant_customer_acme")

    # A later template change reaches every tenant of the category in the same call.
    changed = await ddl.category_add_column("healthcare", "patients", "ward", "varchar(10)")
    assert changed["version"] == 3 and changed["applied_schemas"] == ["tenant_customer_acme"]
    await ddl.category_create_index("healthcare", "visits", "idx_visits_patient", ["patient_id"])
    columns = [c["name"] for c in await client.db.columns("patients", schema="tenant_customer_acme")]
    assert columns == ["id", "name", "ward"]
    rows = await client.db.query("patients", schema="tenant_customer_acme")
    assert rows["rows"] == [{"id": 1, "name": "Jane", "ward": None}]

    status = await ddl.provision_status("customer_acme")
    assert status == {
        "tenant_slug": "customer_acme",
        "schema": "tenant_customer_acme",
        "provisioned": True,
        "category_slug": "healthcare",
        "version": 4,
        "head_version": 4,
        "in_sync": True,
    }
    by_category = await ddl.tenants_by_category("healthcare")
    assert [(t["tenant_slug"], t["schema"], t["version"], t["in_sync"]) for t in by_category] == [
        ("customer_acme", "tenant_customer_acme", 4, True)
    ]
    assert by_category[0]["created_at"].endswith("Z")
    sync = await ddl.category_sync_status("healthcare")
    assert sync["head_version"] == 4 and sync["tenants"][0]["in_sync"] is True
    category_status = await ddl.category_status("healthcare")
    assert category_status == {"category_slug": "healthcare", "head_version": 4, "tenant_count": 1, "out_of_sync": []}
    listed = {c["category_slug"]: c for c in await ddl.list_categories()}
    assert listed["healthcare"]["head_version"] == 4 and listed["healthcare"]["tenant_count"] == 1
    migrations = await ddl.list_category_migrations("healthcare")
    assert [m["operation"] for m in migrations] == ["create_table", "create_table", "add_column", "create_index"]
    file = await ddl.get_category_migration_file("healthcare", 3)
    assert file["name"] == "0003_add_column_patients_ward" and '"ward"' in file["up"]

    # A second tenant provisioned later gets the whole stream.
    await make_tenant(client, "customer-beta", "healthcare")
    beta = await ddl.provision_from_category("customer-beta", "healthcare")
    assert beta["schema"] == "tenant_customer_beta" and beta["applied_versions"] == [1, 2, 3, 4]
    assert [p["tenant_slug"] for p in await ddl.list_provisions()] == ["customer-beta", "customer_acme"]
    dropped = await ddl.category_drop_column("healthcare", "patients", "ward")
    assert dropped["applied_schemas"] == ["tenant_customer_beta", "tenant_customer_acme"]
    removed = await ddl.category_drop_table("healthcare", "visits")
    assert removed["version"] == 6
    assert [t["name"] for t in await client.db.tables("tenant_customer_beta")] == ["patients"]


async def test_an_empty_tenant_schema_is_linked_to_a_category_later(env: Env) -> None:
    ddl = env.client.ddl
    await make_tenant(env.client, "globex", "retail")
    await ddl.category_create_table("retail", "carts", [{"name": "id", "type": "serial", "primary_key": True}])
    created = await ddl.provision_tenant("globex")
    assert created == {"tenant_slug": "globex", "schema": "tenant_globex", "created": True}
    status = await ddl.provision_status("globex")
    assert status["provisioned"] is True and status["category_slug"] is None
    with pytest.raises(ConflictError):
        await ddl.provision_tenant("globex")

    synced = await ddl.provision_tenant("globex", category_slug="retail")
    assert synced["created"] is False and synced["applied_versions"] == [1]
    again = await ddl.provision_from_category("globex", "retail")
    assert again["applied_versions"] == [] and again["version"] == 1
    assert (await ddl.provision_status("globex"))["in_sync"] is True


async def test_public_target_and_deprovisioning(env: Env) -> None:
    client, ddl = env.client, env.client.ddl
    await make_tenant(client, "initech", "finance")
    public = await ddl.category_create_table(
        "finance", "ledgers", [{"name": "id", "type": "serial", "primary_key": True}], target="public"
    )
    assert public["target"] == "public" and public["applied_schemas"] == ["public"]
    assert [m["operation"] for m in await ddl.list_public_migrations()] == ["create_table"]
    assert await ddl.list_category_migrations("finance") == []

    await ddl.category_create_table("finance", "accounts", [{"name": "id", "type": "serial", "primary_key": True}])
    await ddl.provision_tenant("initech", category_slug="finance")
    with pytest.raises(ConflictError):
        await ddl.deprovision_tenant("initech")
    gone = await ddl.deprovision_tenant("initech", cascade=True)
    assert gone == {"tenant_slug": "initech", "schema": "tenant_initech", "dropped": True}
    assert "tenant_initech" not in await client.db.schemas()
    assert (await ddl.provision_status("initech"))["provisioned"] is False
    with pytest.raises(NotFoundError):
        await ddl.deprovision_tenant("initech")
    # Provisioned again, the schema starts from the template, not from leftovers.
    again = await ddl.provision_tenant("initech", category_slug="finance")
    assert again["created"] is True and again["applied_versions"] == [1]


async def test_unknown_tenants_and_categories(env: Env) -> None:
    ddl = env.client.ddl
    with pytest.raises(NotFoundError):
        await ddl.provision_tenant("nobody")
    await make_tenant(env.client, "solo")
    with pytest.raises(NotFoundError):
        await ddl.provision_tenant("solo", category_slug="missing")
    with pytest.raises(NotFoundError):
        await ddl.category_create_table("missing", "t", [{"name": "id", "type": "int"}])
    with pytest.raises(NotFoundError):
        await ddl.tenants_by_category("missing")
    with pytest.raises(NotFoundError):
        await ddl.provision_status("nobody")
