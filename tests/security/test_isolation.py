"""Tenant isolation as spec 5.9 defines it, against a real in-process ``dominus_local``.

- A user's session token is refused (403 ``forbidden``) on every endpoint that takes service tokens only:
  every data endpoint (Warden, Scribe, Smith, Whisperer, Archivist, Herald), Guardian, Courier and Admin.
- Through Portal, a user of tenant A sees none of tenant B's pages, navigation, sessions or profile data, and
  cannot switch into tenant B or end one of B's sessions.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dominus_fastapi import Dominus
from dominus_fastapi.core import wire
from dominus_fastapi.core.errors import AuthorizationError, NotFoundError
from tests.conftest import InProcessServer, make_fast
from tests.reliability.ledger import TALLY, WATCH

SUITE = "attacks: tenant isolation"
PASSWORD = WATCH.secret("isolation-password-1")
ENDPOINTS: list[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "endpoints.json").read_text()
)
SERVICE_ONLY = [e for e in ENDPOINTS if e["auth"] == "service" and e["path"].startswith("/api/")]
SAMPLE_ID = "00000000-0000-4000-8000-000000000000"


@dataclass
class Tenancy:
    server: InProcessServer
    admin: Dominus
    alice: str
    """Alice's session token (tenant ``alpha``)."""
    bob: str
    """Bob's session token (tenant ``beta``)."""
    alice_sid: str
    bob_sid: str
    alpha: Any
    beta: Any


@pytest.fixture
async def tenancy(local_server: InProcessServer) -> AsyncIterator[Tenancy]:
    admin = local_server.client()
    make_fast(admin)
    auth = admin.auth
    try:
        alpha = await auth.create_tenant("Alpha", "alpha")
        beta = await auth.create_tenant("Beta", "beta")
        for name, tenant in (("alice", alpha), ("bob", beta)):
            user = await auth.add_user(name, PASSWORD, email=f"{name}@example.com")
            await auth.add_user_tenants(user["id"], [tenant["id"]])
            page = await auth.create_page(f"/{tenant['slug']}-only", f"{tenant['name']} page")
            await auth.add_page_tenants(page["id"], [tenant["id"]])
            await auth.create_nav_item(f"{tenant['name']} corner", page_id=page["id"])
        alice = await admin.portal.login("alice", PASSWORD)
        bob = await admin.portal.login("bob", PASSWORD)
        await admin.portal.update_profile(
            display_name="Bob of Beta", bio="beta secrets", user_token=bob["access_token"]
        )
        await admin.portal.update_preferences(theme="dark", user_token=bob["access_token"])
        for session in (alice, bob):
            WATCH.secret(session["access_token"])
            WATCH.secret(session["refresh_token"])
        yield Tenancy(
            local_server,
            admin,
            alice["access_token"],
            bob["access_token"],
            alice["session_id"],
            bob["session_id"],
            alpha,
            beta,
        )
    finally:
        await admin.aclose()
        await admin._transport.http.aclose()


def _path(template: str) -> str:
    out = template
    while "{" in out:
        start, end = out.index("{"), out.index("}")
        name = out[start + 1 : end]
        value = "public" if name == "schema" else "orders" if name in ("table", "view") else SAMPLE_ID
        out = out[:start] + urllib.parse.quote(value) + out[end + 1 :]
    return out


async def test_user_tokens_are_refused_on_every_service_endpoint(tenancy: Tenancy) -> None:
    refused_wrongly: list[str] = []
    before = await tenancy.admin.secrets.list()
    for endpoint in SERVICE_ONLY:
        body = {**endpoint.get("match", {}), "action": "list", "key": "k", "value": 1}
        response = await tenancy.server.raw(
            endpoint["method"],
            _path(endpoint["path"]),
            headers={"Authorization": f"Bearer {tenancy.alice}"},
            content=wire.encode_body(body) if endpoint["method"] != "GET" else None,
        )
        decoded = wire.parse_response_text(response.content)
        code = decoded.get("code") if isinstance(decoded, dict) else None
        ok = response.status_code == 403 and code == "forbidden"
        what = f"{endpoint['method']} {endpoint['path']}: {response.status_code} {code}"
        if not TALLY.record(SUITE, ok, what):
            refused_wrongly.append(what)
    assert refused_wrongly == []
    assert await tenancy.admin.secrets.list() == before
    assert len(SERVICE_ONLY) > 200


async def test_portal_shows_a_user_only_their_own_tenant(tenancy: Tenancy) -> None:
    portal = tenancy.admin.portal
    checks: dict[str, bool] = {}

    me = await portal.me(user_token=tenancy.alice)
    checks["me names alice"] = me["user"]["username"] == "alice"
    checks["me shows only tenant alpha"] = [t["slug"] for t in me["tenants"]] == ["alpha"]
    checks["active tenant is alpha"] = me["tenant"]["slug"] == "alpha"

    nav = json.dumps(await portal.get_navigation(user_token=tenancy.alice))
    checks["navigation shows alpha's item"] = "Alpha corner" in nav
    checks["navigation hides beta's item"] = "Beta corner" not in nav and "/beta-only" not in nav
    access = await portal.check_page_access("/beta-only", user_token=tenancy.alice)
    checks["beta's page is refused"] = access["allowed"] is False
    own = await portal.check_page_access("/alpha-only", user_token=tenancy.alice)
    checks["alpha's page is allowed"] = own["allowed"] is True

    sessions = (await portal.list_sessions(user_token=tenancy.alice))["items"]
    checks["sessions are alice's only"] = {s["id"] for s in sessions} == {tenancy.alice_sid}
    try:
        await portal.revoke_session(tenancy.bob_sid, user_token=tenancy.alice)
        checks["bob's session cannot be ended by alice"] = False
    except NotFoundError:
        checks["bob's session cannot be ended by alice"] = True
    checks["bob's session still works"] = (await portal.me(user_token=tenancy.bob))["user"]["username"] == "bob"

    profile = await portal.get_profile(user_token=tenancy.alice)
    checks["profile is alice's, not bob's"] = (
        "beta secrets" not in json.dumps(profile) and profile.get("display_name") != "Bob of Beta"
    )
    preferences = await portal.get_preferences(user_token=tenancy.alice)
    checks["preferences are alice's defaults"] = preferences["theme"] == "system"
    await portal.update_profile(display_name="Alice", bio="alpha notes", user_token=tenancy.alice)
    bob_profile = await portal.get_profile(user_token=tenancy.bob)
    checks["alice's update leaves bob's profile alone"] = (
        bob_profile["display_name"] == "Bob of Beta" and bob_profile["bio"] == "beta secrets"
    )

    try:
        await portal.switch_tenant(tenancy.beta["id"], user_token=tenancy.alice)
        checks["switching into beta is refused"] = False
    except AuthorizationError:
        checks["switching into beta is refused"] = True
    try:
        await portal.login("alice", PASSWORD, tenant_id="beta")
        checks["logging into beta is refused"] = False
    except AuthorizationError:
        checks["logging into beta is refused"] = True

    failed = [name for name, ok in checks.items() if not TALLY.record(SUITE, ok, name)]
    assert failed == []
