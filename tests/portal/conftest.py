"""Portal and Courier tests: the SDK on ``embedded:``, against the real in-process ``dominus_local``.

Guardian fixtures (tenants, roles, scopes, users, pages, nav items) are created through the SDK's ``auth``
namespace as an application would. Time moves through Portal's injectable clock, never by sleeping.
"""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from dominus_fastapi import Dominus
from dominus_fastapi.core.transport import DropAwareASGITransport
from dominus_fastapi.core.types import NavItem, Page, Role, Scope, Tenant, TenantCategory, User
from dominus_local.services import courier as courier_service
from dominus_local.services import portal as portal_service
from dominus_local.state import LocalState
from tests.conftest import make_fast

PASSWORD = "correct horse battery"


class PortalClock:
    """Portal's and Courier's clock: starts now, ticks 1 ms per reading (so that events are ordered the way they
    happened) and jumps when told to by :meth:`advance`."""

    TICK = timedelta(milliseconds=1)

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += self.TICK
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Env:
    """One embedded instance: the admin SDK client, the server state and Portal's clock."""

    client: Dominus
    state: LocalState
    clock: PortalClock
    psk: str

    async def other_client(self, psk: str) -> Dominus:
        """An SDK client of the same instance that authenticates with another client's ``psk``."""
        app = self.client._transport.embedded.instance.app  # type: ignore[union-attr]
        http = httpx.AsyncClient(transport=DropAwareASGITransport(app=app))
        other = Dominus(base_url="http://dominus.embedded", token=psk, http_client=http)
        make_fast(other)
        return other

    async def outbox_link(self, to: str, template_alias: str) -> tuple[str, dict[str, Any]]:
        """The token in the newest ``template_alias`` mail to ``to``, and that mail."""
        page = await self.client.courier.outbox(to=to, template_alias=template_alias, limit=1)
        assert page["total"] >= 1, f"no {template_alias} mail to {to}"
        mail = page["items"][0]
        url = mail["model"]["action_url"]
        assert url in mail["text_body"] and url.replace("&", "&amp;") in mail["html_body"]
        token = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["token"][0]
        return token, dict(mail)


@pytest.fixture
async def env(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    """``Dominus(base_url="embedded:")`` on a fresh in-memory instance with a fast bcrypt cost."""
    monkeypatch.setenv("DOMINUS_LOCAL_BCRYPT_ROUNDS", "4")
    psk = secrets.token_hex(32)
    client = Dominus(base_url="embedded:", token=psk)
    make_fast(client)
    try:
        await client.health.ping()
        assert client._transport.embedded is not None
        instance = client._transport.embedded.instance
        assert instance is not None
        state = instance.state
        clock = PortalClock(portal_service.runtime(state).now())
        portal_service.runtime(state).clock = clock
        courier_service.runtime(state).clock = clock
        yield Env(client=client, state=state, clock=clock, psk=psk)
    finally:
        await client.aclose()


@dataclass
class World:
    """The access-control scenario: a category, two tenants, scopes, roles, a user, pages and nav items."""

    category: TenantCategory
    acme: Tenant
    globex: Tenant
    reports_scope: Scope
    audit_scope: Scope
    analyst: Role
    auditor: Role
    user: User
    pages: dict[str, Page]
    nav: dict[str, NavItem]


async def build_world(client: Dominus, *, username: str = "carol", email: str = "carol@example.com") -> World:
    """Create the Guardian data of the page-access and navigation tests through ``client.auth``."""
    auth = client.auth
    category = await auth.create_tenant_category("Healthcare", "healthcare")
    retail = await auth.create_tenant_category("Retail", "retail")
    acme = await auth.create_tenant("Acme", "acme", category_id=category["id"], display_name="Acme Health")
    globex = await auth.create_tenant("Globex", "globex", category_id=retail["id"])
    reports_scope = await auth.create_scope("reports:read", "Read reports")
    audit_scope = await auth.create_scope("audit:read", "Read the audit trail")
    analyst = await auth.add_role("analyst", scope_slugs=["reports:read"])
    auditor = await auth.add_role("auditor", scope_slugs=["audit:read"])
    # The auditor role applies only in Globex: it is effective there, and not in Acme.
    await auth.add_role_tenants(auditor["id"], [globex["id"]])
    user = await auth.add_user(username, PASSWORD, email=email, role_id=analyst["id"])
    await auth.add_user_roles(user["id"], [auditor["id"]])
    await auth.add_user_tenants(user["id"], [acme["id"], globex["id"]])

    pages: dict[str, Page] = {}
    pages["dashboard"] = await auth.create_page("/dashboard", "Dashboard")
    pages["reports"] = await auth.create_page("/dashboard/reports", "Reports")
    await auth.add_page_scopes(pages["reports"]["id"], [reports_scope["id"]])
    pages["acme_only"] = await auth.create_page("/dashboard/acme", "Acme corner")
    await auth.add_page_tenants(pages["acme_only"]["id"], [acme["id"]])
    pages["healthcare"] = await auth.create_page("/dashboard/care", "Care")
    await auth.add_page_categories(pages["healthcare"]["id"], [category["id"]])
    pages["no_auditors"] = await auth.create_page("/dashboard/finance", "Finance")
    await auth.add_page_excluded_roles(pages["no_auditors"]["id"], [auditor["id"]])
    pages["audit"] = await auth.create_page("/dashboard/audit", "Audit")
    await auth.add_page_scopes(pages["audit"]["id"], [audit_scope["id"]])
    pages["archived"] = await auth.create_page("/dashboard/archive", "Archive", is_active=False)

    nav: dict[str, NavItem] = {}
    nav["main"] = await auth.create_nav_item("Main", item_type="header", sort_order=1)
    nav["dashboard"] = await auth.create_nav_item(
        "Dashboard", page_id=pages["dashboard"]["id"], parent_id=nav["main"]["id"], sort_order=1
    )
    nav["reports"] = await auth.create_nav_item(
        "Reports", page_id=pages["reports"]["id"], parent_id=nav["main"]["id"], sort_order=2
    )
    nav["finance"] = await auth.create_nav_item(
        "Finance", page_id=pages["no_auditors"]["id"], parent_id=nav["main"]["id"], sort_order=3
    )
    nav["acme"] = await auth.create_nav_item("Acme corner", page_id=pages["acme_only"]["id"], sort_order=2)
    nav["audit_group"] = await auth.create_nav_item("Compliance", item_type="group_label", sort_order=3)
    nav["audit"] = await auth.create_nav_item("Audit", page_id=pages["audit"]["id"], parent_id=nav["audit_group"]["id"])
    nav["archive"] = await auth.create_nav_item("Archive", page_id=pages["archived"]["id"], sort_order=4)
    return World(
        category=category,
        acme=acme,
        globex=globex,
        reports_scope=reports_scope,
        audit_scope=audit_scope,
        analyst=analyst,
        auditor=auditor,
        user=user,
        pages=pages,
        nav=nav,
    )


def titles(items: list[Any]) -> list[Any]:
    """The navigation tree as nested titles: ``["Main", ["Dashboard", ...]]``."""
    out: list[Any] = []
    for node in items:
        out.append(node["title"])
        if node["children"]:
            out.append(titles(node["children"]))
    return out
