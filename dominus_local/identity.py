"""Guardian's data: identity tables and the functions other services use to read them.

Every table of users, clients, roles, scopes, tenants, tenant categories, subtypes, pages, navigation items,
secure-table registrations, their junctions (spec 7.6) and the sessions table lives here, on the shared
``metadata``. Every public function takes an open connection (``async with state.db.begin() as conn``) as
its first argument and never opens a transaction of its own, so callers compose them in one transaction.

Case-insensitive uniqueness (usernames, e-mails) is enforced by unique indexes on ``lower(column)``, which
both SQLite and PostgreSQL support; compare with ``func.lower(column) == value.lower()``.
"""

from __future__ import annotations

import hmac
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from dominus_local.errors import forbidden, invalid
from dominus_local.security import generate_psk as new_psk
from dominus_local.security import hash_password, psk_digest, token_digest
from dominus_local.security import verify_password as check_password
from dominus_local.stores.database import metadata
from dominus_local.validate import is_uuid, new_id, utcnow

__all__ = [
    "ACTIVE_CACHE_SECONDS",
    "ADMIN_SLUG",
    "JUNCTIONS",
    "SHARED_ACTIVE_CACHE_SECONDS",
    "ActiveCache",
    "Junction",
    "SubjectAccess",
    "access_for",
    "active_session_expiry",
    "categories",
    "check_password",
    "client_for_psk",
    "clients",
    "default_tenant",
    "delete_with_links",
    "ensure_bootstrap_client",
    "hash_password",
    "link",
    "nav_items",
    "new_psk",
    "pages",
    "psk_digest",
    "reseed_admin_category",
    "reset_admin_category",
    "resolve_tenant",
    "revoke_sessions",
    "roles",
    "scopes",
    "secure_table_scopes",
    "secure_tables",
    "session_is_active",
    "session_previous_digests",
    "sessions",
    "subject_is_active",
    "subtypes",
    "tenant_by_slug",
    "tenant_category_by_slug",
    "tenants",
    "token_digest",
    "users",
    "validate_password",
]

ADMIN_SLUG = "admin"
"""Name of every entity of the built-in admin category (spec 7.12)."""

_TS = DateTime(timezone=True)


def _id() -> Column[str]:
    return Column("id", String(36), primary_key=True)


def _stamps() -> list[Column[Any]]:
    return [Column("created_at", _TS, nullable=False), Column("updated_at", _TS, nullable=False)]


users = Table(
    "guardian_users",
    metadata,
    _id(),
    Column("username", String(64), nullable=False),
    Column("email", String(254), nullable=True),
    Column("password_hash", String(128), nullable=True),
    Column("status", String(16), nullable=False, default="active"),
    *_stamps(),
    Column("last_login_at", _TS, nullable=True),
)
Index("uq_guardian_users_username", func.lower(users.c.username), unique=True)
Index("uq_guardian_users_email", func.lower(users.c.email), unique=True)

clients = Table(
    "guardian_clients",
    metadata,
    _id(),
    Column("label", String(128), nullable=False),
    Column("description", Text, nullable=True),
    Column("status", String(16), nullable=False, default="active"),
    Column("is_bootstrap", Boolean, nullable=False, default=False),
    Column("psk_digest", String(64), nullable=True, unique=True),
    *_stamps(),
    Column("last_used_at", _TS, nullable=True),
)

roles = Table(
    "guardian_roles",
    metadata,
    _id(),
    Column("name", String(128), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    *_stamps(),
)

scopes = Table(
    "guardian_scopes",
    metadata,
    _id(),
    Column("slug", String(128), nullable=False, unique=True),
    Column("display_name", String(128), nullable=False),
    Column("description", Text, nullable=True),
    *_stamps(),
)

categories = Table(
    "guardian_tenant_categories",
    metadata,
    _id(),
    Column("name", String(128), nullable=False),
    Column("slug", String(55), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    Column("color", String(7), nullable=False, default="#3B82F6"),
    *_stamps(),
)

tenants = Table(
    "guardian_tenants",
    metadata,
    _id(),
    Column("name", String(128), nullable=False),
    Column("slug", String(55), nullable=False, unique=True),
    Column("display_name", String(128), nullable=True),
    Column("description", Text, nullable=True),
    Column("category_id", String(36), ForeignKey("guardian_tenant_categories.id"), nullable=True),
    Column("status", String(16), nullable=False, default="active"),
    *_stamps(),
)

subtypes = Table(
    "guardian_subtypes",
    metadata,
    _id(),
    Column("name", String(128), nullable=False),
    Column("slug", String(55), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    *_stamps(),
)

pages = Table(
    "guardian_pages",
    metadata,
    _id(),
    Column("path", String(512), nullable=False, unique=True),
    Column("name", String(128), nullable=False),
    Column("description", Text, nullable=True),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("show_in_nav", Boolean, nullable=False, default=True),
    *_stamps(),
)

nav_items = Table(
    "guardian_nav_items",
    metadata,
    _id(),
    Column("title", String(128), nullable=False),
    Column("icon", String(128), nullable=True),
    Column("description", Text, nullable=True),
    Column("page_id", String(36), ForeignKey("guardian_pages.id"), nullable=True),
    Column("parent_id", String(36), ForeignKey("guardian_nav_items.id"), nullable=True),
    Column("item_type", String(16), nullable=False, default="link"),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("sort_order", Integer, nullable=False, default=0),
    Column("is_expanded_default", Boolean, nullable=False, default=False),
    *_stamps(),
)

secure_tables = Table(
    "guardian_secure_tables",
    metadata,
    _id(),
    Column("schema_name", String(63), nullable=False),
    Column("table_name", String(63), nullable=False),
    Column("created_at", _TS, nullable=False),
    UniqueConstraint("schema_name", "table_name", name="uq_guardian_secure_tables_name"),
)

sessions = Table(
    "guardian_sessions",
    metadata,
    _id(),
    Column("kind", String(8), nullable=False),  # "user" or "client"
    Column("subject_type", String(8), nullable=False),
    Column("subject_id", String(36), nullable=False, index=True),
    Column("tenant_id", String(36), nullable=True, index=True),
    Column("refresh_digest", String(64), nullable=True, unique=True),
    Column("refresh_expires_at", _TS, nullable=True),
    Column("created_at", _TS, nullable=False),
    Column("last_seen_at", _TS, nullable=True),
    Column("expires_at", _TS, nullable=False),
    Column("revoked_at", _TS, nullable=True),
    Column("revoked_reason", String(32), nullable=True),
    Column("user_agent", String(512), nullable=True),
    Column("ip_address", String(64), nullable=True),
    Column("extra", JSON, nullable=True),
)
"""Sessions of users and clients (spec 5.7). ``expires_at`` is the end of the session's life."""

session_previous_digests = Table(
    "guardian_session_previous_digests",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("session_id", String(36), ForeignKey("guardian_sessions.id", ondelete="CASCADE"), nullable=False),
    Column("rotated_at", _TS, nullable=False),
)
"""Refresh-token digests already rotated out: presenting one again revokes its session (reuse detection)."""


@dataclass(frozen=True)
class Junction:
    """One many-to-many link of spec 7.6: ``owner`` (e.g. ``users``) to ``target`` (e.g. ``roles``)."""

    table: Table
    owner: Table
    target: Table
    owner_col: str
    target_col: str


def _junction(name: str, owner: Table, owner_col: str, target: Table, target_col: str) -> Junction:
    table = Table(
        f"guardian_{name}",
        metadata,
        Column(owner_col, String(36), ForeignKey(f"{owner.name}.id", ondelete="CASCADE"), primary_key=True),
        Column(target_col, String(36), ForeignKey(f"{target.name}.id", ondelete="CASCADE"), primary_key=True),
        Index(f"ix_guardian_{name}_{target_col}", target_col),
    )
    return Junction(table, owner, target, owner_col, target_col)


JUNCTIONS: dict[tuple[str, str], Junction] = {
    ("users", "roles"): _junction("user_roles", users, "user_id", roles, "role_id"),
    ("users", "scopes"): _junction("user_scopes", users, "user_id", scopes, "scope_id"),
    ("users", "tenants"): _junction("user_tenants", users, "user_id", tenants, "tenant_id"),
    ("users", "subtypes"): _junction("user_subtypes", users, "user_id", subtypes, "subtype_id"),
    ("clients", "roles"): _junction("client_roles", clients, "client_id", roles, "role_id"),
    ("clients", "scopes"): _junction("client_scopes", clients, "client_id", scopes, "scope_id"),
    ("clients", "tenants"): _junction("client_tenants", clients, "client_id", tenants, "tenant_id"),
    ("clients", "subtypes"): _junction("client_subtypes", clients, "client_id", subtypes, "subtype_id"),
    ("roles", "scopes"): _junction("role_scopes", roles, "role_id", scopes, "scope_id"),
    ("roles", "tenants"): _junction("role_tenants", roles, "role_id", tenants, "tenant_id"),
    ("roles", "categories"): _junction("role_categories", roles, "role_id", categories, "category_id"),
    ("roles", "subtypes"): _junction("role_subtypes", roles, "role_id", subtypes, "subtype_id"),
    ("scopes", "tenants"): _junction("scope_tenants", scopes, "scope_id", tenants, "tenant_id"),
    ("scopes", "categories"): _junction("scope_categories", scopes, "scope_id", categories, "category_id"),
    ("subtypes", "tenants"): _junction("subtype_tenants", subtypes, "subtype_id", tenants, "tenant_id"),
    ("subtypes", "categories"): _junction("subtype_categories", subtypes, "subtype_id", categories, "category_id"),
    ("subtypes", "scopes"): _junction("subtype_scopes", subtypes, "subtype_id", scopes, "scope_id"),
    ("pages", "tenants"): _junction("page_tenants", pages, "page_id", tenants, "tenant_id"),
    ("pages", "scopes"): _junction("page_scopes", pages, "page_id", scopes, "scope_id"),
    ("pages", "categories"): _junction("page_categories", pages, "page_id", categories, "category_id"),
    ("pages", "excluded-scopes"): _junction("page_excluded_scopes", pages, "page_id", scopes, "scope_id"),
    ("pages", "excluded-roles"): _junction("page_excluded_roles", pages, "page_id", roles, "role_id"),
    ("nav-items", "tenants"): _junction("nav_tenants", nav_items, "nav_id", tenants, "tenant_id"),
    ("nav-items", "scopes"): _junction("nav_scopes", nav_items, "nav_id", scopes, "scope_id"),
    ("nav-items", "roles"): _junction("nav_roles", nav_items, "nav_id", roles, "role_id"),
    ("nav-items", "subtypes"): _junction("nav_subtypes", nav_items, "nav_id", subtypes, "subtype_id"),
    ("nav-items", "categories"): _junction("nav_categories", nav_items, "nav_id", categories, "category_id"),
    ("secure-tables", "scopes"): _junction("secure_table_scopes", secure_tables, "secure_table_id", scopes, "scope_id"),
}
"""Every junction, keyed by (owner's path segment, relation's path segment) as in ``/api/guardian/...``."""


# --- secrets (hashing and digests live in ``dominus_local.security``; re-exported for callers) ------------


def validate_password(password: Any, field: str = "password") -> str:
    """The password if it is a string of 8 to 72 UTF-8 bytes, else 400 naming ``field`` (spec 5.8)."""
    if not isinstance(password, str):
        raise invalid(field, "must be a string")
    size = len(password.encode("utf-8"))
    if size < 8:
        raise invalid(field, "must be at least 8 bytes long in UTF-8")
    if size > 72:
        raise invalid(field, "must be at most 72 bytes long in UTF-8")
    return password


# --- reads for the gateway, Portal, Scribe and Admin -----------------------------------------------------


@dataclass(frozen=True)
class SubjectAccess:
    """A subject's effective roles and scopes for one active tenant (spec 5.9)."""

    subject_type: Literal["client", "user"]
    sub: str
    tenant_id: str | None
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    tenant_slug: str | None = None
    tenant_name: str | None = None

    def tenant_claims(self) -> dict[str, str]:
        """The optional ``tenant_slug`` and ``tenant_name`` claims (spec 5.3 lets servers add claims).

        They let an application name the active tenant (and find its schema) without a call; the slug of a
        tenant never changes, its name may, and a token keeps the name it was issued with.
        """
        if self.tenant_id is None or self.tenant_slug is None:
            return {}
        return {"tenant_slug": self.tenant_slug, "tenant_name": self.tenant_name or self.tenant_slug}


def _subject(subject_type: str) -> tuple[Table, str]:
    if subject_type == "user":
        return users, "users"
    if subject_type == "client":
        return clients, "clients"
    raise ValueError(f"unknown subject type {subject_type!r}")


async def client_for_psk(conn: AsyncConnection, psk: str) -> str | None:
    """Id of the active client that owns ``psk``, or ``None``."""
    if not isinstance(psk, str) or not psk:
        return None
    row = (
        await conn.execute(
            select(clients.c.id, clients.c.psk_digest, clients.c.status).where(clients.c.psk_digest == psk_digest(psk))
        )
    ).first()
    if row is None or row.status != "active":
        return None
    # The digest lookup already matched; the constant-time compare guards against a collation surprise.
    if not hmac.compare_digest(row.psk_digest, psk_digest(psk)):
        return None
    return str(row.id)


async def subject_is_active(conn: AsyncConnection, subject_type: str, sub: str) -> bool:
    """Whether the user or client ``sub`` exists and its status is ``active`` (spec 5.5 step 4)."""
    if subject_type not in ("user", "client") or not is_uuid(sub):
        return False
    table, _ = _subject(subject_type)
    status = (await conn.execute(select(table.c.status).where(table.c.id == sub.lower()))).scalar()
    return status == "active"


async def session_is_active(conn: AsyncConnection, sid: str) -> bool:
    """Whether session ``sid`` exists, is not revoked and has not expired (spec 5.5 step 5)."""
    return await active_session_expiry(conn, sid) is not None


async def active_session_expiry(conn: AsyncConnection, sid: str) -> datetime | None:
    """When session ``sid`` expires (aware UTC) if it is active now (exists, not revoked, not expired), else
    ``None``."""
    if not is_uuid(sid):
        return None
    row = (
        await conn.execute(select(sessions.c.revoked_at, sessions.c.expires_at).where(sessions.c.id == sid.lower()))
    ).first()
    if row is None or row.revoked_at is not None:
        return None
    expires_at = _aware(row.expires_at)
    return expires_at if expires_at > utcnow() else None


ACTIVE_CACHE_SECONDS = 1.0
"""How long a positive subject/session check may be reused on SQLite, where nothing announces a write made by
another process (the server is one process per SQLite database)."""

SHARED_ACTIVE_CACHE_SECONDS = 5.0
"""The longest a positive check is reused on PostgreSQL, where a change feed announces every revocation to
every process (:mod:`dominus_local.revocation`): a backstop for a change no feed announced (see there)."""

_WATCHED_TABLES = (users.name, clients.name, sessions.name)
_ENDING_COLUMNS = frozenset({"status", "revoked_at"})
"""Columns whose update may end a subject's or a session's access. ``expires_at`` is not one: the server only
ever extends it (refresh), and a remembered session is never reused past the expiry that was read."""
_SET_CLAUSE = re.compile(r"\bSET\s+(.*?)(?:\s+WHERE\s|\s+RETURNING\s|$)", re.IGNORECASE | re.DOTALL)
_ASSIGNED = re.compile(r"(\w+)\s*=")


def may_end_access(statement: str) -> bool:
    """Whether SQL ``statement`` may end a subject's or a session's access: anything but ``SELECT`` and plain
    ``INSERT`` that names the users, clients or sessions table, except an ``UPDATE`` whose ``SET`` clause names
    neither ``status`` nor ``revoked_at`` (a login stamping ``last_login_at``, a refresh rotating its token).
    An ``UPDATE`` whose ``SET`` clause cannot be read counts as ending access."""
    head = statement.lstrip()[:6].upper()
    if head == "SELECT" or (head == "INSERT" and "ON CONFLICT" not in statement.upper()):
        return False
    if not any(name in statement for name in _WATCHED_TABLES):
        return False
    if head == "UPDATE":
        found = _SET_CLAUSE.search(statement)
        if found is not None and not _ENDING_COLUMNS.intersection(_ASSIGNED.findall(found.group(1))):
            return False
    return True


class ActiveCache:
    """An in-process memo of the token checks of spec 5.5 steps 4 and 5 (subject active, session active), so
    that a request does not need a database round trip for them.

    Only positive answers are kept, each for at most ``ttl`` seconds (``clock``: monotonic seconds) and never
    past the session's own expiry. A check that started before any change of the memo (its ``epoch``) does not
    store its answer, so a check racing a revocation cannot store a stale answer.

    *This process's writes.* Every statement that may end access (:func:`may_end_access`: status changes,
    deletions, every kind of revocation) empties the memo when it runs, when its transaction commits and once
    more after the commit has finished (:meth:`committed`, called by :class:`~dominus_local.stores.database.
    Database`), so revocation is immediate inside the process.

    *Other processes' writes.* On SQLite (one serving process per database) nothing announces them and they
    are seen after at most ``ttl`` (:data:`ACTIVE_CACHE_SECONDS`, 1 s). On PostgreSQL the memo is created
    untrusted (``trusted=False``) and a change feed (:mod:`dominus_local.revocation`) drives it: it forgets the
    subjects and sessions other processes change (:meth:`forget_subject`, :meth:`forget_session`,
    :meth:`invalidate`), and it vouches for its own health with :meth:`trust` after every heartbeat. The memo
    answers only while that trust lasts, so a feed that breaks, even silently, turns the memo off within
    :data:`dominus_local.revocation.STALE_SECONDS` and every check goes to the database until the feed is back.
    """

    def __init__(
        self, ttl: float = ACTIVE_CACHE_SECONDS, *, clock: Callable[[], float] = time.monotonic, trusted: bool = True
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self.epoch = 0
        self.announce: Callable[[], Awaitable[None]] | None = None
        """Called after this process commits a write that may end access (a Redis feed publishes it)."""
        self._trusted_until = math.inf if trusted else -math.inf
        self._subjects: dict[tuple[str, str], float] = {}
        self._sessions: dict[str, tuple[float, datetime]] = {}
        self._dirty = f"dominus_identity_dirty_{id(self)}"
        self._committing: set[Connection] = set()

    @property
    def trusted(self) -> bool:
        """Whether remembered answers may be used now."""
        return self.clock() < self._trusted_until

    def trust(self, until: float) -> None:
        """Let remembered answers be used until ``until`` (``clock`` seconds): the feed is known healthy."""
        self._trusted_until = until

    def distrust(self) -> None:
        """Stop using remembered answers and forget them (the feed is down: what it missed is unknown)."""
        self._trusted_until = -math.inf
        self.invalidate()

    def invalidate(self) -> None:
        """Forget every answer (and make checks that are running now not store theirs)."""
        self.epoch += 1
        self._subjects.clear()
        self._sessions.clear()

    def forget_subject(self, subject_type: str, sub: str) -> None:
        """Forget the answer about one user or client (and let no running check store one)."""
        self.epoch += 1
        self._subjects.pop((subject_type, sub.lower()), None)

    def forget_session(self, sid: str) -> None:
        """Forget the answer about one session (and let no running check store one)."""
        self.epoch += 1
        self._sessions.pop(sid.lower(), None)

    def hit(self, subject_type: str, sub: str, sid: str | None) -> bool:
        """Whether both checks are known to pass (``sid`` ``None``: only the subject's)."""
        now = self.clock()
        if now >= self._trusted_until:
            return False
        until = self._subjects.get((subject_type, sub.lower()))
        if until is None or now >= until:
            return False
        if sid is None:
            return True
        entry = self._sessions.get(sid.lower())
        return entry is not None and now < entry[0] and entry[1] > utcnow()

    def remember(
        self, epoch: int, subject_type: str, sub: str, sid: str | None, session_expires: datetime | None
    ) -> None:
        """Keep a positive answer obtained from a check that started at ``epoch`` (dropped if it is stale)."""
        if epoch != self.epoch or self.ttl <= 0 or not self.trusted:
            return
        if len(self._subjects) > 10_000 or len(self._sessions) > 10_000:
            self._subjects.clear()
            self._sessions.clear()
        until = self.clock() + self.ttl
        self._subjects[subject_type, sub.lower()] = until
        if sid is not None and session_expires is not None:
            self._sessions[sid.lower()] = (until, session_expires)

    def watch(self, engine: Engine) -> None:
        """Listen to ``engine`` (a sync engine, e.g. ``AsyncEngine.sync_engine``) for identity writes."""
        event.listen(engine, "before_cursor_execute", self._before_execute)
        event.listen(engine, "commit", self._after_commit)
        event.listen(engine, "rollback", self._after_rollback)

    async def committed(self, conn: Connection) -> None:
        """A transaction of ``conn`` has committed (the commit event runs just before the commit itself)."""
        if conn not in self._committing:
            return
        self._committing.discard(conn)
        # A check that read the row between the commit event and the commit must not store its answer.
        self.invalidate()
        if self.announce is not None:
            await self.announce()

    def aborted(self, conn: Connection) -> None:
        """A transaction of ``conn`` has failed (rolled back, or its commit failed)."""
        self._committing.discard(conn)

    def _before_execute(
        self, conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if may_end_access(statement):
            conn.info[self._dirty] = True
            self.invalidate()

    def _after_commit(self, conn: Connection) -> None:
        if conn.info.pop(self._dirty, False):
            self._committing.add(conn)
            self.invalidate()

    def _after_rollback(self, conn: Connection) -> None:
        conn.info.pop(self._dirty, None)
        self._committing.discard(conn)


async def revoke_sessions(
    conn: AsyncConnection,
    *,
    subject_type: str | None = None,
    subject_id: str | None = None,
    tenant_id: str | None = None,
    session_id: str | None = None,
    except_session: str | None = None,
    reason: str = "revoked",
) -> int:
    """Revoke the active sessions that match every given filter; returns how many were revoked.

    At least one of ``subject_id``, ``tenant_id`` or ``session_id`` must be given, so that a call never
    revokes every session by accident.
    """
    if subject_id is None and tenant_id is None and session_id is None:
        raise ValueError("revoke_sessions needs subject_id, tenant_id or session_id")
    conditions: list[ColumnElement[bool]] = [sessions.c.revoked_at.is_(None)]
    if subject_type is not None:
        conditions.append(sessions.c.subject_type == subject_type)
    if subject_id is not None:
        conditions.append(sessions.c.subject_id == subject_id)
    if tenant_id is not None:
        conditions.append(sessions.c.tenant_id == tenant_id)
    if session_id is not None:
        conditions.append(sessions.c.id == session_id)
    if except_session is not None:
        conditions.append(sessions.c.id != except_session)
    result = await conn.execute(
        update(sessions).where(and_(*conditions)).values(revoked_at=utcnow(), revoked_reason=reason)
    )
    return int(result.rowcount or 0)


async def _tenant_facts(conn: AsyncConnection, tenant_id: str | None) -> tuple[str | None, str | None, str | None]:
    """The tenant's category id, slug and name, in one query (``None`` each when there is no such tenant)."""
    if tenant_id is None:
        return None, None, None
    row = (
        await conn.execute(
            select(tenants.c.category_id, tenants.c.slug, tenants.c.name).where(tenants.c.id == tenant_id)
        )
    ).first()
    if row is None:
        return None, None, None
    return (
        None if row.category_id is None else str(row.category_id),
        str(row.slug),
        str(row.name),
    )


async def _restricted_ids(
    conn: AsyncConnection, owner: str, ids: Iterable[str], tenant_id: str | None, category_id: str | None
) -> set[str]:
    """Of ``ids`` (roles or scopes), those whose tenant/category restriction lets the active tenant in."""
    wanted = set(ids)
    if not wanted:
        return set()
    tenant_link = JUNCTIONS[(owner, "tenants")]
    category_link = JUNCTIONS[(owner, "categories")]
    own_col = tenant_link.owner_col
    restricted: dict[str, set[tuple[str, str]]] = {}
    for link, kind in ((tenant_link, "t"), (category_link, "c")):
        rows = await conn.execute(
            select(link.table.c[own_col], link.table.c[link.target_col]).where(link.table.c[own_col].in_(wanted))
        )
        for owner_id, target_id in rows:
            restricted.setdefault(str(owner_id), set()).add((kind, str(target_id)))
    allowed = set()
    for item in wanted:
        links = restricted.get(item)
        if (
            not links
            or (tenant_id is not None and ("t", tenant_id) in links)
            or (category_id is not None and ("c", category_id) in links)
        ):
            allowed.add(item)
    return allowed


async def access_for(conn: AsyncConnection, subject_type: str, sub: str, tenant_id: str | None) -> SubjectAccess:
    """Effective roles and scopes of a user or client for the active tenant ``tenant_id`` (spec 5.9).

    Roles linked to the subject count when unrestricted, or when the tenant (or its category) is among the
    role's tenants (categories). Scopes are the direct ones plus those of the effective roles, each filtered
    by its own tenant/category restriction by the same rule. Names and slugs come back sorted.
    """
    _, segment = _subject(subject_type)
    category_id, tenant_slug, tenant_name = await _tenant_facts(conn, tenant_id)
    role_link = JUNCTIONS[(segment, "roles")]
    scope_link = JUNCTIONS[(segment, "scopes")]
    direct_roles = (
        await conn.execute(select(role_link.table.c.role_id).where(role_link.table.c[role_link.owner_col] == sub))
    ).scalars()
    role_ids = await _restricted_ids(conn, "roles", [str(r) for r in direct_roles], tenant_id, category_id)
    scope_ids = {
        str(s)
        for s in (
            await conn.execute(
                select(scope_link.table.c.scope_id).where(scope_link.table.c[scope_link.owner_col] == sub)
            )
        ).scalars()
    }
    if role_ids:
        role_scopes = JUNCTIONS[("roles", "scopes")].table
        scope_ids.update(
            str(s)
            for s in (
                await conn.execute(select(role_scopes.c.scope_id).where(role_scopes.c.role_id.in_(role_ids)))
            ).scalars()
        )
    scope_ids = await _restricted_ids(conn, "scopes", scope_ids, tenant_id, category_id)
    role_names: list[str] = []
    if role_ids:
        role_names = [
            str(n) for n in (await conn.execute(select(roles.c.name).where(roles.c.id.in_(role_ids)))).scalars()
        ]
    scope_slugs: list[str] = []
    if scope_ids:
        scope_slugs = [
            str(s) for s in (await conn.execute(select(scopes.c.slug).where(scopes.c.id.in_(scope_ids)))).scalars()
        ]
    return SubjectAccess(
        "user" if subject_type == "user" else "client",
        sub,
        tenant_id,
        tuple(sorted(role_names)),
        tuple(sorted(scope_slugs)),
        tenant_slug,
        tenant_name,
    )


async def _subject_tenants(conn: AsyncConnection, subject_type: str, sub: str) -> list[Any]:
    """The subject's active tenants, ordered by slug."""
    _, segment = _subject(subject_type)
    link = JUNCTIONS[(segment, "tenants")]
    rows = await conn.execute(
        select(tenants)
        .join(link.table, link.table.c.tenant_id == tenants.c.id)
        .where(link.table.c[link.owner_col] == sub, tenants.c.status == "active")
        .order_by(tenants.c.slug)
    )
    return list(rows)


async def default_tenant(
    conn: AsyncConnection, subject_type: str, sub: str, *, exactly_one: bool = False
) -> str | None:
    """The subject's first active tenant by slug; with ``exactly_one``, only when it has exactly one.

    Inactive tenants are never chosen: the spec is silent, and a tenant switched off should not become the
    active tenant of a new token.
    """
    found = await _subject_tenants(conn, subject_type, sub)
    if not found or (exactly_one and len(found) != 1):
        return None
    return str(found[0].id)


async def resolve_tenant(conn: AsyncConnection, subject_type: str, sub: str, tenant: str) -> str:
    """The id of one of the subject's active tenants, given by UUID or slug; else 403 ``forbidden``."""
    if not isinstance(tenant, str) or not tenant:
        raise invalid("tenant_id", "must be a tenant UUID or slug")
    for row in await _subject_tenants(conn, subject_type, sub):
        if (is_uuid(tenant) and str(row.id) == tenant.lower()) or row.slug == tenant:
            return str(row.id)
    raise forbidden("The tenant is not one of the subject's tenants", field="tenant_id")


async def secure_table_scopes(conn: AsyncConnection, schema: str, table: str) -> list[str] | None:
    """Scope slugs guarding a registered secure table (empty list: no scopes); ``None`` if not secure."""
    reg = (
        await conn.execute(
            select(secure_tables.c.id).where(secure_tables.c.schema_name == schema, secure_tables.c.table_name == table)
        )
    ).scalar()
    if reg is None:
        return None
    link = JUNCTIONS[("secure-tables", "scopes")].table
    rows = await conn.execute(
        select(scopes.c.slug)
        .join(link, link.c.scope_id == scopes.c.id)
        .where(link.c.secure_table_id == reg)
        .order_by(scopes.c.slug)
    )
    return [str(s) for s in rows.scalars()]


async def tenant_category_by_slug(conn: AsyncConnection, slug: str) -> dict[str, Any] | None:
    """The tenant-category row with this slug, as a dict of columns, or ``None``."""
    row = (await conn.execute(select(categories).where(categories.c.slug == slug))).mappings().first()
    return dict(row) if row is not None else None


async def tenant_by_slug(conn: AsyncConnection, slug: str) -> dict[str, Any] | None:
    """The tenant row with this slug, as a dict of columns, or ``None``."""
    row = (await conn.execute(select(tenants).where(tenants.c.slug == slug))).mappings().first()
    return dict(row) if row is not None else None


# --- the admin category and the bootstrap client (spec 5.9, 7.12) --------------------------------------


async def find_or_create(
    conn: AsyncConnection, table: Table, key: str, value: str, values: dict[str, Any]
) -> tuple[str, bool]:
    """The id of the row whose ``key`` column equals ``value``, creating it with ``values`` when missing; and
    whether it was created."""
    found = (await conn.execute(select(table.c.id).where(table.c[key] == value))).scalar()
    if found is not None:
        return str(found), False
    ident = new_id()
    now = utcnow()
    row = {"id": ident, key: value, **values, "created_at": now}
    if "updated_at" in table.c:
        row["updated_at"] = now
    await conn.execute(insert(table).values(**row))
    return ident, True


async def link(conn: AsyncConnection, junction: Junction, owner_id: str, target_ids: Sequence[str]) -> int:
    """Add links that are missing (a union); returns how many rows were added."""
    if not target_ids:
        return 0
    existing = {
        str(t)
        for t in (
            await conn.execute(
                select(junction.table.c[junction.target_col]).where(
                    junction.table.c[junction.owner_col] == owner_id,
                    junction.table.c[junction.target_col].in_(list(target_ids)),
                )
            )
        ).scalars()
    }
    fresh = [t for t in dict.fromkeys(target_ids) if t not in existing]
    if fresh:
        await conn.execute(
            insert(junction.table), [{junction.owner_col: owner_id, junction.target_col: t} for t in fresh]
        )
    return len(fresh)


async def reseed_admin_category(conn: AsyncConnection) -> dict[str, int]:
    """Create whatever is missing of the admin category; returns the count created per kind (spec 7.12)."""
    counts = {"tenant_categories": 0, "tenants": 0, "roles": 0, "scopes": 0, "pages": 0, "nav_items": 0}
    category_id, made = await find_or_create(
        conn,
        categories,
        "slug",
        ADMIN_SLUG,
        {"name": "Administration", "description": "Built-in administration category", "color": "#DC2626"},
    )
    counts["tenant_categories"] += made
    _, made = await find_or_create(
        conn,
        tenants,
        "slug",
        ADMIN_SLUG,
        {
            "name": "Administration",
            "display_name": "Administration",
            "description": "Built-in administration tenant",
            "category_id": category_id,
            "status": "active",
        },
    )
    counts["tenants"] += made
    scope_id, made = await find_or_create(
        conn, scopes, "slug", ADMIN_SLUG, {"display_name": "Administration", "description": "Full administration"}
    )
    counts["scopes"] += made
    role_id, made = await find_or_create(
        conn, roles, "name", ADMIN_SLUG, {"description": "Administrators of this project"}
    )
    counts["roles"] += made
    await link(conn, JUNCTIONS[("roles", "scopes")], role_id, [scope_id])
    page_id, made = await find_or_create(
        conn,
        pages,
        "path",
        "/admin",
        {"name": "Administration", "description": "Administration", "is_active": True, "show_in_nav": True},
    )
    counts["pages"] += made
    if made:
        await link(conn, JUNCTIONS[("pages", "scopes")], page_id, [scope_id])
        await link(conn, JUNCTIONS[("pages", "categories")], page_id, [category_id])
    nav_found = (
        await conn.execute(
            select(nav_items.c.id).where(nav_items.c.page_id == page_id, nav_items.c.title == "Administration")
        )
    ).scalar()
    if nav_found is None:
        now = utcnow()
        await conn.execute(
            insert(nav_items).values(
                id=new_id(),
                title="Administration",
                icon="shield",
                description="Administration",
                page_id=page_id,
                parent_id=None,
                item_type="link",
                is_active=True,
                sort_order=1000,
                is_expanded_default=False,
                created_at=now,
                updated_at=now,
            )
        )
        counts["nav_items"] += 1
    return counts


async def _bootstrap_client_id(conn: AsyncConnection) -> str | None:
    found = (await conn.execute(select(clients.c.id).where(clients.c.is_bootstrap.is_(True)))).scalar()
    return None if found is None else str(found)


async def _link_bootstrap(conn: AsyncConnection, client_id: str) -> None:
    role_id = (await conn.execute(select(roles.c.id).where(roles.c.name == ADMIN_SLUG))).scalar()
    tenant_id = (await conn.execute(select(tenants.c.id).where(tenants.c.slug == ADMIN_SLUG))).scalar()
    if role_id is not None:
        await link(conn, JUNCTIONS[("clients", "roles")], client_id, [str(role_id)])
    if tenant_id is not None:
        await link(conn, JUNCTIONS[("clients", "tenants")], client_id, [str(tenant_id)])


async def ensure_bootstrap_client(conn: AsyncConnection, psk: str) -> str:
    """Make sure the admin category and the bootstrap client exist and that the client owns ``psk``.

    The bootstrap client is found by its ``is_bootstrap`` flag, never by label (spec 5.9). It is made active,
    linked to the ``admin`` role and tenant, and given ``psk`` (stored as its SHA-256 digest). Another client
    that happened to own the same PSK loses it, because the configured PSK must identify the bootstrap
    client. Returns the bootstrap client's id.
    """
    if not isinstance(psk, str) or len(psk) < 32:
        raise ValueError("the bootstrap PSK must be at least 32 characters")
    await reseed_admin_category(conn)
    digest = psk_digest(psk)
    client_id = await _bootstrap_client_id(conn)
    now = utcnow()
    others = clients.c.psk_digest == digest
    if client_id is not None:
        others = and_(others, clients.c.id != client_id)
    await conn.execute(update(clients).where(others).values(psk_digest=None, updated_at=now))
    if client_id is None:
        client_id = new_id()
        await conn.execute(
            insert(clients).values(
                id=client_id,
                label="bootstrap",
                description="Bootstrap administrator client",
                status="active",
                is_bootstrap=True,
                psk_digest=digest,
                created_at=now,
                updated_at=now,
                last_used_at=None,
            )
        )
    else:
        current = (
            await conn.execute(select(clients.c.psk_digest, clients.c.status).where(clients.c.id == client_id))
        ).one()
        if current.psk_digest != digest or current.status != "active":
            await conn.execute(
                update(clients)
                .where(clients.c.id == client_id)
                .values(psk_digest=digest, status="active", updated_at=now)
            )
    await _link_bootstrap(conn, client_id)
    return client_id


async def reset_admin_category(conn: AsyncConnection) -> list[str]:
    """Delete the admin category's entities and links, seed them again, relink the bootstrap client.

    Returns the steps taken, as strings (spec 7.12). Tenants of other categories that pointed at the admin
    category are not touched: only the entities named ``admin`` (and the ``/admin`` page and its nav item)
    are removed. Sessions whose active tenant was the admin tenant are revoked, as for any tenant deletion.
    """
    operations: list[str] = []
    page_id = (await conn.execute(select(pages.c.id).where(pages.c.path == "/admin"))).scalar()
    if page_id is not None:
        navs = [
            str(n) for n in (await conn.execute(select(nav_items.c.id).where(nav_items.c.page_id == page_id))).scalars()
        ]
        if navs:
            # Children of the Administration item move up to the top level rather than being deleted.
            await conn.execute(update(nav_items).where(nav_items.c.parent_id.in_(navs)).values(parent_id=None))
            await delete_with_links(conn, nav_items, navs)
            operations.append(f"deleted {len(navs)} nav item(s) of page /admin")
        await delete_with_links(conn, pages, [str(page_id)])
        operations.append("deleted page /admin")
    for table, key, label in (
        (roles, "name", "role"),
        (scopes, "slug", "scope"),
        (tenants, "slug", "tenant"),
        (categories, "slug", "tenant category"),
    ):
        found = (await conn.execute(select(table.c.id).where(table.c[key] == ADMIN_SLUG))).scalar()
        if found is None:
            continue
        if table is tenants:
            revoked = await revoke_sessions(conn, tenant_id=str(found), reason="tenant_deleted")
            operations.append(f"revoked {revoked} session(s) of tenant admin")
        if table is categories:
            await conn.execute(update(tenants).where(tenants.c.category_id == found).values(category_id=None))
        await delete_with_links(conn, table, [str(found)])
        operations.append(f"deleted {label} admin")
    counts = await reseed_admin_category(conn)
    operations.append("seeded " + ", ".join(f"{kind}={n}" for kind, n in counts.items()))
    client_id = await _bootstrap_client_id(conn)
    if client_id is not None:
        await _link_bootstrap(conn, client_id)
        operations.append("linked bootstrap client to role admin and tenant admin")
    return operations


async def delete_with_links(conn: AsyncConnection, table: Table, ids: Sequence[str]) -> None:
    """Delete rows and every junction row that names them (on either side), portably without cascades."""
    for junction in JUNCTIONS.values():
        if junction.owner is table:
            await conn.execute(delete(junction.table).where(junction.table.c[junction.owner_col].in_(ids)))
        if junction.target is table:
            await conn.execute(delete(junction.table).where(junction.table.c[junction.target_col].in_(ids)))
    await conn.execute(delete(table).where(table.c.id.in_(ids)))


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
