"""What the pages and the JSON routes share: the active tenant, its report table, its file category and
the page-view counter.

Each tenant keeps its reports in ``tenant_<slug>.reports``, registered as a secure table, so that every read
and write carries a reason and an actor and lands in the audit trail (spec 8.3). The table is created on the
first visit of a tenant's reports page. Files live in the Archivist category ``tenant-<slug>``, so one
tenant's users never list or download another tenant's files.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Final
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, field_validator

from dominus_fastapi import ConflictError, Dominus, DominusError, NotFoundError
from dominus_fastapi.deps import CurrentUser, PortalDep
from example_app.errors import AppError

__all__ = [
    "LOG_CATEGORY",
    "MAX_UPLOAD_BYTES",
    "REPORTS_TABLE",
    "ActiveTenant",
    "PageOffer",
    "ReportIn",
    "ReportTables",
    "ReportTablesDep",
    "TenantDep",
    "attachment",
    "files_category",
    "get_active_tenant",
    "get_report_tables",
    "invite",
    "invite_choices",
    "tenant_of",
    "tenant_schema",
    "where_page_opens",
]

LOG_CATEGORY: Final = "example-app"
"""Category of the app's own log entries (the logs page shows these)."""
REPORTS_TABLE: Final = "reports"
MAX_UPLOAD_BYTES: Final = 10 * 1024 * 1024
"""Largest file the files page accepts (the backend's own limit is higher)."""
VIEW_COUNTER_TTL: Final = 86_400
"""A view counter lives for a day from its first view (the cache keeps values at most that long)."""

REPORT_COLUMNS: Final[list[dict[str, Any]]] = [
    {"name": "id", "type": "uuid", "primary_key": True, "default": "gen_random_uuid()"},
    {"name": "title", "type": "varchar(200)", "nullable": False},
    {"name": "amount", "type": "numeric(12,2)", "nullable": False},
    {"name": "note", "type": "text", "nullable": True},
    {"name": "author", "type": "varchar(200)", "nullable": False},
    {"name": "created_at", "type": "timestamptz", "nullable": False, "default": "NOW()"},
]


@dataclass(frozen=True)
class ActiveTenant:
    """The session's active tenant, the other tenants the user may switch to, and the user's name."""

    id: str
    slug: str
    name: str
    tenants: tuple[dict[str, Any], ...]
    username: str

    @property
    def schema(self) -> str:
        return tenant_schema(self.slug)

    @property
    def files_category(self) -> str:
        return files_category(self.slug)


def tenant_schema(slug: str) -> str:
    """The schema of a tenant's own tables: ``tenant_`` and the slug as an identifier."""
    return "tenant_" + re.sub(r"[^a-z0-9_]", "_", slug.lower())[:55]


def files_category(slug: str) -> str:
    """The Archivist category of a tenant's files."""
    return ("tenant-" + re.sub(r"[^a-z0-9_-]", "-", slug.lower()))[:62]


def tenant_of(me: Mapping[str, Any]) -> ActiveTenant:
    """The active tenant of a ``portal.me`` answer; 409 ``no_tenant`` for a user who belongs to none."""
    tenant = me.get("tenant")
    if not tenant:
        raise AppError(409, "Your account belongs to no tenant; ask an administrator to add you to one", "no_tenant")
    name = str(tenant.get("display_name") or tenant.get("name") or tenant["slug"])
    person = me.get("user") or {}
    username = str(person.get("username") or me.get("sub") or "")
    return ActiveTenant(str(tenant["id"]), str(tenant["slug"]), name, tuple(me.get("tenants") or ()), username)


async def get_active_tenant(portal: PortalDep, user: CurrentUser) -> ActiveTenant:
    """The signed-in user's active tenant, read from current data (``portal.me``)."""
    return tenant_of(await portal.me())


TenantDep = Annotated[ActiveTenant, Depends(get_active_tenant)]


class ReportIn(BaseModel):
    """A new report row, and the reason recorded in the audit trail for writing it."""

    title: str = Field(min_length=1, max_length=200)
    amount: Decimal = Field(max_digits=12, decimal_places=2, ge=Decimal("-9999999999.99"))
    note: str | None = Field(default=None, max_length=2000)
    reason: str = Field(min_length=3, max_length=200, description="Why the row is written (audit trail)")

    @field_validator("title", "reason", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("note", mode="before")
    @classmethod
    def _blank_note(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value


class ReportTables:
    """Creates each tenant's secure ``reports`` table once per process (and finds existing ones)."""

    def __init__(self) -> None:
        self._ready: set[str] = set()
        self._lock = asyncio.Lock()

    async def ensure(self, client: Dominus, schema: str) -> None:
        """Make sure ``schema.reports`` exists and is registered as a secure table."""
        if schema in self._ready:
            return
        async with self._lock:
            if schema in self._ready:
                return
            try:
                names = {table.get("name") for table in await client.db.tables(schema)}
            except NotFoundError:
                names = set()
            if REPORTS_TABLE not in names:
                # ConflictError: created meanwhile by another process on the same backend.
                with contextlib.suppress(ConflictError):
                    await client.ddl.create_table(schema, REPORTS_TABLE, REPORT_COLUMNS)
            with contextlib.suppress(ConflictError):  # already registered
                await client.auth.create_secure_table(REPORTS_TABLE, schema)
            self._ready.add(schema)


def get_report_tables(request: Request) -> ReportTables:
    """The app's :class:`ReportTables`, made by ``create_app``."""
    tables: ReportTables = request.app.state.report_tables
    return tables


ReportTablesDep = Annotated[ReportTables, Depends(get_report_tables)]


def attachment(found: Mapping[str, Any]) -> Response:
    """A download answer for a ``files.fetch`` result: the bytes, their type and the file name."""
    filename = str(found["filename"])
    fallback = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
    return Response(
        bytes(found["data"]),
        media_type=str(found["content_type"]),
        headers={"Content-Disposition": disposition, "X-Content-Type-Options": "nosniff"},
    )


@dataclass(frozen=True)
class PageOffer:
    """Where a refused page could be opened: its name and the user's other tenants that grant it."""

    path: str
    name: str | None
    tenants: tuple[Mapping[str, Any], ...]


async def _ids(call: Any) -> set[str]:
    return {str(item["id"]) for item in (await call)["items"]}


async def where_page_opens(
    client: Dominus, user_id: str, path: str, tenants: Sequence[Mapping[str, Any]]
) -> PageOffer:
    """Which of ``tenants`` (the user's, from ``portal.me``) would let the user open the page at ``path``.

    A hint for a refusal page, read with the app's administrator credential (Guardian); the backend still
    decides when the user gets there. It follows spec 5.9 and 8.8 as ``dominus_local`` does: a role counts in
    a tenant when it is unrestricted or names the tenant or its category; scopes are the user's own plus
    those of the roles that count, each under the same restriction; the page needs one of its scopes, and
    its own tenant/category list (if any) must name the tenant. Excluded scopes and roles are not looked at.
    Raises ``DominusError`` when the credential may not read Guardian (the caller falls back to plain words).
    """
    auth = client.auth
    page = None
    offset = 0
    while page is None:
        listed = await auth.list_pages(limit=100, offset=offset)
        page = next((item for item in listed["items"] if item["path"] == path), None)
        offset += 100
        if offset >= listed["total"]:
            break
    if page is None:
        return PageOffer(path, None, ())
    page_scopes, page_tenants, page_categories, roles, own_scopes = await asyncio.gather(
        _ids(auth.get_page_scopes(page["id"])),
        _ids(auth.get_page_tenants(page["id"])),
        _ids(auth.get_page_categories(page["id"])),
        auth.get_user_roles(user_id),
        _ids(auth.get_user_scopes(user_id)),
    )
    role_ids = [str(role["id"]) for role in roles["items"]]
    role_links = await asyncio.gather(*(
        asyncio.gather(_ids(auth.get_role_scopes(r)), _ids(auth.get_role_tenants(r)), _ids(auth.get_role_categories(r)))
        for r in role_ids
    ))
    needed = sorted(page_scopes)
    scope_restrictions = await asyncio.gather(*(
        asyncio.gather(_ids(auth.get_scope_tenants(s)), _ids(auth.get_scope_categories(s))) for s in needed
    ))
    scope_links = dict(zip(needed, scope_restrictions, strict=True))

    def opens_in(tenant: Mapping[str, Any]) -> bool:
        tenant_id, category = str(tenant["id"]), str(tenant.get("category_id") or "")

        def admits(tenant_ids: set[str], category_ids: set[str]) -> bool:
            return (not tenant_ids and not category_ids) or tenant_id in tenant_ids or category in category_ids

        if not admits(page_tenants, page_categories):
            return False
        held = set(own_scopes)
        for scopes, role_tenants, role_categories in role_links:
            if admits(role_tenants, role_categories):
                held |= scopes
        if not page_scopes:
            return True
        return any(admits(*scope_links[scope]) for scope in page_scopes & held)

    return PageOffer(path, str(page["name"]), tuple(t for t in tenants if opens_in(t)))


async def invite_choices(client: Dominus) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The tenants and roles an invitation may give (the first 100 of each), sorted by name."""
    tenants, roles = await asyncio.gather(client.auth.list_tenants(limit=100), client.auth.list_roles(limit=100))
    return (
        sorted((dict(t) for t in tenants["items"]), key=lambda t: str(t.get("display_name") or t["name"]).lower()),
        sorted((dict(r) for r in roles["items"]), key=lambda r: str(r["name"]).lower()),
    )


async def invite(
    client: Dominus,
    username: str,
    email: str,
    tenant: Mapping[str, Any],
    role: Mapping[str, Any],
    inviter: str | None = None,
) -> Mapping[str, Any]:
    """Create an invited user and give it ``tenant`` and ``role``; the backend mails the invitation.

    Guardian has no call that creates a user with its links, so this is three calls; should a link fail, the
    new user is deleted again (the mail already sent then leads to a link that no longer works).
    """
    created = await client.auth.create_user(username, email, status="invited", inviter_name=inviter)
    try:
        await asyncio.gather(
            client.auth.add_user_tenants(created["id"], [str(tenant["id"])]),
            client.auth.add_user_roles(created["id"], [str(role["id"])]),
        )
    except DominusError:
        await client.auth.delete_user(created["id"])
        raise
    return created
