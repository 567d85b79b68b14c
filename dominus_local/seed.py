"""Demo data: enough identities, tenants, pages and navigation to show access control at work.

``dominus-local seed --demo`` and the ``seed_demo`` setting call :func:`seed_demo`. It is idempotent: each
entity is found by its unique key (username, slug, name, path) and created only when missing, links are
added as a union, and existing passwords are never overwritten.

What it creates, besides the built-in admin category (spec 7.12):

- tenant categories ``healthcare`` and ``retail``; tenants ``acme`` (healthcare) and ``globex`` (retail);
- scopes ``dashboard.view``, ``reports.view``, ``files.read``, ``files.write``, ``users.manage``;
- roles ``member`` (dashboard and files, everywhere) and ``analyst`` (reports, only in the ``retail``
  category), and the built-in ``admin`` role, which also gets every demo scope;
- users ``admin`` (roles ``admin`` and ``member``, tenants ``acme``, ``globex`` and ``admin``) and ``demo``
  (roles ``member`` and ``analyst``, tenants ``acme`` and ``globex``);
- pages ``/dashboard`` (``dashboard.view``), ``/dashboard/reports`` (``reports.view``), ``/dashboard/files``
  (``files.read``) and ``/dashboard/admin/users`` (``users.manage``, which only the ``admin`` role holds);
- a navigation tree: Dashboard, Reports, Files, and an "Administration" header (role ``admin``) holding
  "Users". So ``admin`` sees the admin page and ``demo`` does not, and ``demo`` sees Reports only while
  ``globex`` is the active tenant.

The default passwords are for local development only; pass others (or set ``DOMINUS_LOCAL_DEMO_ADMIN_PASSWORD``
and ``DOMINUS_LOCAL_DEMO_USER_PASSWORD``) for anything shared.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dominus_local import identity as idm
from dominus_local.security import hash_password_async
from dominus_local.state import LocalState
from dominus_local.validate import new_id, utcnow

__all__ = ["DEFAULT_ADMIN_PASSWORD", "DEFAULT_DEMO_PASSWORD", "seed_demo"]

DEFAULT_ADMIN_PASSWORD = "dominus-admin"
"""Development default of the demo ``admin`` user's password (``DOMINUS_LOCAL_DEMO_ADMIN_PASSWORD``)."""
DEFAULT_DEMO_PASSWORD = "dominus-user"
"""Development default of the demo ``demo`` user's password (``DOMINUS_LOCAL_DEMO_USER_PASSWORD``)."""

_CATEGORIES = (
    ("healthcare", "Healthcare", "#0EA5E9"),
    ("retail", "Retail", "#F59E0B"),
)
_TENANTS = (
    ("acme", "Acme Health", "healthcare"),
    ("globex", "Globex Retail", "retail"),
)
_SCOPES = (
    ("dashboard.view", "View the dashboard"),
    ("reports.view", "View reports"),
    ("files.read", "Read files"),
    ("files.write", "Write files"),
    ("users.manage", "Manage users"),
)
_PAGES = (
    ("/dashboard", "Dashboard", ("dashboard.view",)),
    ("/dashboard/reports", "Reports", ("reports.view",)),
    ("/dashboard/files", "Files", ("files.read",)),
    ("/dashboard/admin/users", "Users", ("users.manage",)),
)


async def _link(conn: AsyncConnection, owner: str, relation: str, owner_id: str, ids: Sequence[str]) -> None:
    await idm.link(conn, idm.JUNCTIONS[(owner, relation)], owner_id, ids)


async def _nav(
    conn: AsyncConnection,
    title: str,
    *,
    page_id: str | None,
    parent_id: str | None,
    sort_order: int,
    item_type: str = "link",
    icon: str | None = None,
) -> str:
    found = (
        await conn.execute(
            select(idm.nav_items.c.id).where(
                idm.nav_items.c.title == title,
                idm.nav_items.c.parent_id.is_(None) if parent_id is None else idm.nav_items.c.parent_id == parent_id,
            )
        )
    ).scalar()
    if found is not None:
        return str(found)
    ident = new_id()
    now = utcnow()
    await conn.execute(
        insert(idm.nav_items).values(
            id=ident,
            title=title,
            icon=icon,
            description=None,
            page_id=page_id,
            parent_id=parent_id,
            item_type=item_type,
            is_active=True,
            sort_order=sort_order,
            is_expanded_default=item_type != "link",
            created_at=now,
            updated_at=now,
        )
    )
    return ident


async def seed_demo(
    state: LocalState, *, admin_password: str | None = None, demo_password: str | None = None
) -> dict[str, str]:
    """Create the demo data when missing (idempotent); returns the ids of the main entities by name.

    Passwords default to the arguments, then ``DOMINUS_LOCAL_DEMO_ADMIN_PASSWORD`` /
    ``DOMINUS_LOCAL_DEMO_USER_PASSWORD``, then the documented development defaults. They are validated
    (8 to 72 bytes) and hashed with the server's bcrypt cost; a user that already exists keeps its password.
    """
    admin_pw = idm.validate_password(
        admin_password or os.environ.get("DOMINUS_LOCAL_DEMO_ADMIN_PASSWORD") or DEFAULT_ADMIN_PASSWORD,
        "admin_password",
    )
    demo_pw = idm.validate_password(
        demo_password or os.environ.get("DOMINUS_LOCAL_DEMO_USER_PASSWORD") or DEFAULT_DEMO_PASSWORD,
        "demo_password",
    )
    rounds = int(getattr(state.settings, "bcrypt_rounds", 12))
    # Hashing happens before the transaction so that the database lock is not held during bcrypt.
    hashes = {
        "admin": await hash_password_async(admin_pw, rounds),
        "demo": await hash_password_async(demo_pw, rounds),
    }
    ids: dict[str, str] = {}
    async with state.db.begin() as conn:
        await idm.reseed_admin_category(conn)
        for slug, name, color in _CATEGORIES:
            ids[f"category:{slug}"], _ = await idm.find_or_create(
                conn, idm.categories, "slug", slug, {"name": name, "description": f"{name} tenants", "color": color}
            )
        for slug, name, category in _TENANTS:
            ids[f"tenant:{slug}"], _ = await idm.find_or_create(
                conn,
                idm.tenants,
                "slug",
                slug,
                {
                    "name": name,
                    "display_name": name,
                    "description": f"Demo tenant {name}",
                    "category_id": ids[f"category:{category}"],
                    "status": "active",
                },
            )
        admin_tenant = await idm.tenant_by_slug(conn, idm.ADMIN_SLUG)
        for slug, display in _SCOPES:
            ids[f"scope:{slug}"], _ = await idm.find_or_create(
                conn, idm.scopes, "slug", slug, {"display_name": display, "description": display}
            )
        ids["role:member"], _ = await idm.find_or_create(
            conn, idm.roles, "name", "member", {"description": "Signed-in members: dashboard and files"}
        )
        ids["role:analyst"], _ = await idm.find_or_create(
            conn, idm.roles, "name", "analyst", {"description": "Reports, in retail tenants only"}
        )
        admin_role = (await conn.execute(select(idm.roles.c.id).where(idm.roles.c.name == idm.ADMIN_SLUG))).scalar()
        ids["role:admin"] = str(admin_role)
        await _link(conn, "roles", "scopes", ids["role:member"], [ids["scope:dashboard.view"], ids["scope:files.read"]])
        await _link(conn, "roles", "scopes", ids["role:analyst"], [ids["scope:reports.view"]])
        await _link(conn, "roles", "categories", ids["role:analyst"], [ids["category:retail"]])
        await _link(conn, "roles", "scopes", ids["role:admin"], [ids[f"scope:{slug}"] for slug, _ in _SCOPES])

        for username, email, roles, tenants in (
            ("admin", "admin@example.com", ("admin", "member"), ("acme", "globex")),
            ("demo", "user@example.com", ("member", "analyst"), ("acme", "globex")),
        ):
            ident, _ = await idm.find_or_create(
                conn,
                idm.users,
                "username",
                username,
                {"email": email, "password_hash": hashes[username], "status": "active", "last_login_at": None},
            )
            ids[f"user:{username}"] = ident
            await _link(conn, "users", "roles", ident, [ids[f"role:{role}"] for role in roles])
            tenant_ids = [ids[f"tenant:{slug}"] for slug in tenants]
            if username == "admin" and admin_tenant is not None:
                tenant_ids.append(str(admin_tenant["id"]))
            await _link(conn, "users", "tenants", ident, tenant_ids)

        for path, name, scopes in _PAGES:
            page_id, _ = await idm.find_or_create(
                conn,
                idm.pages,
                "path",
                path,
                {"name": name, "description": f"The {name.lower()} page", "is_active": True, "show_in_nav": True},
            )
            ids[f"page:{path}"] = page_id
            await _link(conn, "pages", "scopes", page_id, [ids[f"scope:{slug}"] for slug in scopes])

        await _nav(conn, "Dashboard", page_id=ids["page:/dashboard"], parent_id=None, sort_order=0, icon="home")
        await _nav(conn, "Reports", page_id=ids["page:/dashboard/reports"], parent_id=None, sort_order=10, icon="chart")
        await _nav(conn, "Files", page_id=ids["page:/dashboard/files"], parent_id=None, sort_order=20, icon="folder")
        header = await _nav(
            conn, "Admin", page_id=None, parent_id=None, sort_order=90, item_type="header", icon="settings"
        )
        await _link(conn, "nav-items", "roles", header, [ids["role:admin"]])
        await _nav(conn, "Users", page_id=ids["page:/dashboard/admin/users"], parent_id=header, sort_order=0)
    return ids
