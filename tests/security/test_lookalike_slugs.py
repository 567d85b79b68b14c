"""Look-alike tenant slugs: two slugs that differ only by ``-`` and ``_`` map to one schema name.

Smith keeps a tenant's data in ``tenant_<slug>`` with ``-`` turned into ``_`` (spec 8.1), so ``red-team`` and
``red_team`` would share ``tenant_red_team`` and each tenant's users would read the other's rows.

- Guardian refuses the second tenant with 409 ``conflict`` naming the first tenant's slug and the schema, and
  creates nothing.
- On a database that already holds such a pair (made before the check existed), Smith never hands one
  tenant's schema to the other: provisioning, status and deprovisioning through the look-alike slug are 409
  and the owner's table and rows stay.
"""

from __future__ import annotations

import pytest
from sqlalchemy import insert, text

from dominus_fastapi import Dominus
from dominus_fastapi.core.errors import ConflictError
from dominus_local import identity
from dominus_local.validate import new_id, utcnow
from tests.conftest import InProcessServer
from tests.reliability.ledger import TALLY

SUITE = "attacks: look-alike slugs"
PAIRS = [
    ("red-team", "red_team"),
    ("blue_team", "blue-team"),
    ("a-b_c", "a_b-c"),
    ("x--y", "x__y"),
    ("q-", "q_"),
    ("m-1-2", "m_1_2"),
]


@pytest.fixture
def admin(local_client: Dominus) -> Dominus:
    """The service client of ``local_server`` (an administrator)."""
    return local_client


async def test_guardian_refuses_a_tenant_whose_schema_name_is_taken(admin: Dominus) -> None:
    failures: list[str] = []
    for first, second in PAIRS:
        await admin.auth.create_tenant(first.title(), first)
        before = (await admin.auth.list_tenants(limit=100))["total"]
        schema = "tenant_" + first.replace("-", "_")
        try:
            await admin.auth.create_tenant("Look-alike", second)
        except ConflictError as exc:
            ok = (
                exc.code == "conflict"
                and exc.details.get("field") == "slug"
                and exc.details.get("tenant_slug") == first
                and exc.details.get("schema") == schema
                and first in exc.message
                and schema in exc.message
            )
            what = f"{second} after {first}: {exc.details}"
        else:
            ok, what = False, f"{second} after {first}: created"
        ok = ok and (await admin.auth.list_tenants(limit=100))["total"] == before
        if not TALLY.record(SUITE, ok, what):
            failures.append(what)
    assert failures == []
    # Slugs that map to other schema names are still fine.
    assert (await admin.auth.create_tenant("Red team 2", "redteam"))["slug"] == "redteam"
    assert (await admin.auth.create_tenant("Red team 3", "red-team-2"))["slug"] == "red-team-2"


async def test_smith_never_serves_a_schema_to_a_look_alike_tenant(
    admin: Dominus, local_server: InProcessServer
) -> None:
    await admin.auth.create_tenant("Red team", "red-team")
    category = await admin.auth.create_tenant_category("Teams", "teams")
    await admin.ddl.provision_tenant("red-team")
    await admin.ddl.create_table("tenant_red_team", "notes", [{"name": "body", "type": "text"}])
    await admin.db.insert("notes", {"body": "red-team's secret"}, schema="tenant_red_team")
    # A database from before the Guardian check (no unique index either): the look-alike tenant exists already.
    async with local_server.local.state.db.begin() as conn:
        await conn.execute(text("DROP INDEX uq_guardian_tenants_schema"))
        now = utcnow()
        await conn.execute(
            insert(identity.tenants).values(
                id=new_id(), name="Look-alike", slug="red_team", status="active", created_at=now, updated_at=now
            )
        )
    attempts = {
        "provision": lambda: admin.ddl.provision_tenant("red_team"),
        "provision from category": lambda: admin.ddl.provision_from_category("red_team", category["slug"]),
        "status": lambda: admin.ddl.provision_status("red_team"),
        "deprovision": lambda: admin.ddl.deprovision_tenant("red_team"),
        "deprovision cascade": lambda: admin.ddl.deprovision_tenant("red_team", cascade=True),
    }
    failures: list[str] = []
    for name, attempt in attempts.items():
        try:
            await attempt()
        except ConflictError as exc:
            ok = exc.details.get("tenant_slug") == "red-team" and exc.details.get("schema") == "tenant_red_team"
            what = f"{name}: {exc.details}"
        else:
            ok, what = False, f"{name}: answered"
        if not TALLY.record(SUITE, ok, what):
            failures.append(what)
    assert failures == []
    rows = await admin.db.query("notes", schema="tenant_red_team")
    assert [row["body"] for row in rows["rows"]] == ["red-team's secret"]
    status = await admin.ddl.provision_status("red-team")
    assert status["provisioned"] is True
    assert status["tenant_slug"] == "red-team"
