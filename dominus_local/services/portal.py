"""Portal: end-user sessions, profile, preferences, navigation and page access (spec 5.7, 7.9, 8.8, 8.9).

Sessions live in Guardian's ``guardian_sessions`` table (``dominus_local.identity``); Portal opens, rotates
and ends them. Session tokens are RS256 JWTs that carry ``sid`` and the effective roles and scopes of the
session's active tenant (spec 5.9), signed through :mod:`dominus_local.security`.

Lifetimes (stored as SHA-256 digests, single use):

- refresh tokens: 30 days from issue, each usable once (rotation); a reused one ends its session;
- password-reset tokens: 1 hour; a successful reset also spends the user's other reset tokens;
- e-mail verification tokens: 24 hours; a resend spends the earlier ones;
- invitation tokens: 7 days; a new invitation spends the earlier ones.

Other services call :func:`issue_invitation` (Guardian, when it creates an invited user). The clock used for
every lifetime here is ``state.extras["portal"].clock``, so tests can move time instead of sleeping.
"""

from __future__ import annotations

import re
import urllib.parse
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dominus_local import identity, security, throttle
from dominus_local.errors import ApiError, conflict, forbidden, invalid, not_found, unprocessable
from dominus_local.routing import Principal, RequestContext, ServiceRouter
from dominus_local.services import courier, health
from dominus_local.state import LocalState
from dominus_local.stores.database import metadata
from dominus_local.validate import Fields, format_timestamp, is_uuid, new_id, utcnow

REFRESH_TOKEN_TTL = timedelta(days=30)
RESET_TOKEN_TTL = timedelta(hours=1)
VERIFICATION_TOKEN_TTL = timedelta(hours=24)
INVITATION_TOKEN_TTL = timedelta(days=7)

USERNAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
THEMES = ("system", "light", "dark")
MAX_PAGE_PATH = 512

Purpose = Literal["reset", "verification", "invitation"]

_TS = DateTime(timezone=True)

one_time_tokens = Table(
    "portal_one_time_tokens",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("purpose", String(16), nullable=False),
    Column("user_id", String(36), ForeignKey("guardian_users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", _TS, nullable=False),
    Column("expires_at", _TS, nullable=False),
    Column("used_at", _TS, nullable=True),
    Index("ix_portal_one_time_tokens_user", "user_id", "purpose"),
)
"""Password-reset, verification and invitation tokens, by SHA-256 digest (spec 5.8)."""

profiles = Table(
    "portal_profiles",
    metadata,
    Column("user_id", String(36), ForeignKey("guardian_users.id", ondelete="CASCADE"), primary_key=True),
    Column("display_name", String(128), nullable=True),
    Column("avatar_url", String(2048), nullable=True),
    Column("bio", Text, nullable=True),
    Column("phone", String(32), nullable=True),
    Column("extra", JSON, nullable=False),
    Column("updated_at", _TS, nullable=False),
)

preferences = Table(
    "portal_preferences",
    metadata,
    Column("user_id", String(36), ForeignKey("guardian_users.id", ondelete="CASCADE"), primary_key=True),
    Column("theme", String(16), nullable=False),
    Column("language", String(35), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("sidebar_collapsed", Boolean, nullable=False),
    Column("notifications_enabled", Boolean, nullable=False),
    Column("email_notifications", Boolean, nullable=False),
    Column("extra", JSON, nullable=False),
    Column("updated_at", _TS, nullable=False),
)

PREFERENCE_DEFAULTS: dict[str, Any] = {
    "theme": "system",
    "language": "en",
    "timezone": "UTC",
    "sidebar_collapsed": False,
    "notifications_enabled": True,
    "email_notifications": True,
}

router = ServiceRouter("portal")


# --- per-instance runtime -------------------------------------------------------------------------------------


@dataclass
class PortalRuntime:
    """Portal's per-instance objects, kept in ``state.extras["portal"]``."""

    clock: Callable[[], datetime] = utcnow
    """Current UTC time for session and one-time-token lifetimes (tests replace it)."""
    _dummy_hash: str | None = field(default=None, init=False, repr=False)

    def now(self) -> datetime:
        return _aware(self.clock())

    async def dummy_hash(self, state: LocalState, rounds: int) -> str:
        """A hash to check unknown usernames against, so that they cost as much time as known ones."""
        if self._dummy_hash is None:
            self._dummy_hash = await _bcrypt(state).hash_password(security.generate_token()[:32], rounds)
        return self._dummy_hash


def runtime(state: LocalState) -> PortalRuntime:
    """Portal's runtime for this instance, created on first use.

    Its clock follows the app's injectable wall clock when there is one, so that one fake clock drives token
    and session times together in tests.
    """
    found = state.extras.get("portal")
    if not isinstance(found, PortalRuntime):
        wall_clock = getattr(state.extras.get("app"), "wall_clock", None)
        found = PortalRuntime(clock=_from_unix(wall_clock) if callable(wall_clock) else utcnow)
        state.extras["portal"] = found
    return found


def _from_unix(wall_clock: Callable[[], float]) -> Callable[[], datetime]:
    return lambda: datetime.fromtimestamp(wall_clock(), timezone.utc)


@router.on_startup
async def _start(state: LocalState) -> None:
    runtime(state)


@router.on_shutdown
async def _stop(state: LocalState) -> None:
    await throttle.close(state)


def _bcrypt(state: LocalState) -> throttle.BcryptPool:
    """The instance's bounded bcrypt pool (a flood is answered 429 rather than queued)."""
    return throttle.runtime(state).pool


async def _throttle_address(ctx: RequestContext) -> None:
    """Count this anonymous-flow request against the end user's address (429 ``rate_limited`` when over)."""
    await throttle.runtime(ctx.state).throttle.hit_address(throttle.address_of(ctx))


async def probe(state: LocalState) -> str:
    """Portal's health entry: its session and profile tables must be readable (spec 7.11)."""
    async with state.db.begin() as conn:
        await conn.execute(select(identity.sessions.c.id).limit(1))
        await conn.execute(select(one_time_tokens.c.digest).limit(1))
        await conn.execute(select(profiles.c.user_id).limit(1))
    return "up"


health.register_probe("portal", probe)


@dataclass(frozen=True)
class PortalConfig:
    """What Portal reads from the server settings (spec 8.10: sender, product name, link bases)."""

    mail_from: str
    product_name: str
    password_reset_url: str
    email_verification_url: str
    invitation_url: str
    require_email_verification: bool
    access_token_ttl: int
    bcrypt_rounds: int


def config(state: LocalState) -> PortalConfig:
    settings = state.settings
    return PortalConfig(
        mail_from=settings.mail_from,
        product_name=settings.product_name,
        password_reset_url=settings.password_reset_url,
        email_verification_url=settings.email_verification_url,
        invitation_url=settings.invitation_url,
        require_email_verification=settings.require_email_verification,
        access_token_ttl=settings.access_token_ttl,
        bcrypt_rounds=settings.bcrypt_rounds,
    )


# --- small helpers ----------------------------------------------------------------------------------------------


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _ts(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


def body_fields(ctx: RequestContext) -> Fields:
    """The request's fields, refusing any ``*_hash`` field (spec 5.8: a hash is never taken for a password)."""
    fields = ctx.fields
    for name in ctx.body:
        if isinstance(name, str) and name.endswith("_hash"):
            raise invalid(name, "fields ending in '_hash' are not accepted; send the plain value over TLS")
    if ctx.request.method == "DELETE":
        for name in ctx.request.query_params:
            if name.endswith("_hash"):
                raise invalid(name, "fields ending in '_hash' are not accepted; send the plain value over TLS")
    return fields


def _password(fields: Fields, name: str) -> str:
    return identity.validate_password(fields.raw(name), name)


def _link(base: str, token: str) -> str:
    """``base`` with ``token=<token>`` added to its query (spec 8.10)."""
    parts = urllib.parse.urlsplit(base)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, v) for k, v in query if k != "token"] + [("token", token)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _user_record(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "username": row.username,
        "email": row.email,
        "status": row.status,
        "created_at": _ts(row.created_at),
        "updated_at": _ts(row.updated_at),
        "last_login_at": _ts(row.last_login_at),
    }


def _client_record(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "label": row.label,
        "description": row.description,
        "status": row.status,
        "is_bootstrap": bool(row.is_bootstrap),
        "created_at": _ts(row.created_at),
        "updated_at": _ts(row.updated_at),
        "last_used_at": _ts(row.last_used_at),
    }


def _tenant_short(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "slug": row.slug,
        "name": row.name,
        "display_name": row.display_name,
        "category_id": row.category_id,
    }


def _segment(subject_type: str) -> str:
    return "users" if subject_type == "user" else "clients"


async def _user_row(conn: AsyncConnection, user_id: str) -> Any:
    return (await conn.execute(select(identity.users).where(identity.users.c.id == user_id))).first()


async def _user_by_login(conn: AsyncConnection, login: str) -> Any:
    """The user whose username or e-mail equals ``login``, ignoring case (spec 5.7)."""
    lowered = login.lower()
    users = identity.users
    return (
        await conn.execute(
            select(users).where(or_(func.lower(users.c.username) == lowered, func.lower(users.c.email) == lowered))
        )
    ).first()


async def _user_by_email(conn: AsyncConnection, email: str) -> Any:
    users = identity.users
    return (await conn.execute(select(users).where(func.lower(users.c.email) == email.lower()))).first()


async def subject_tenants(conn: AsyncConnection, subject_type: str, sub: str) -> list[Any]:
    """The subject's active tenants, ordered by slug (the tenants it may make active)."""
    link = identity.JUNCTIONS[(_segment(subject_type), "tenants")]
    tenants = identity.tenants
    rows = await conn.execute(
        select(tenants)
        .join(link.table, link.table.c.tenant_id == tenants.c.id)
        .where(link.table.c[link.owner_col] == sub, tenants.c.status == "active")
        .order_by(tenants.c.slug, tenants.c.id)
    )
    return list(rows)


async def active_tenant(conn: AsyncConnection, subject_type: str, sub: str, tenant_id: str | None) -> Any:
    """The tenant row of ``tenant_id`` if it is still one of the subject's active tenants, else ``None``.

    A token keeps the tenant it was issued for; when that link is gone (or the tenant was switched off), the
    subject is treated as having no active tenant, so that a stale token never widens access.
    """
    if tenant_id is None:
        return None
    for row in await subject_tenants(conn, subject_type, sub):
        if row.id == tenant_id:
            return row
    return None


# --- sessions and tokens -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedAccess:
    access_token: str
    expires_in: int
    roles: tuple[str, ...]
    scopes: tuple[str, ...]


async def _issue_access(
    conn: AsyncConnection,
    state: LocalState,
    *,
    subject_type: str,
    sub: str,
    tenant_id: str | None,
    session_id: str,
    ttl: int,
) -> IssuedAccess:
    """A session access token for the subject's effective access in ``tenant_id`` (spec 5.3, 5.9)."""
    access = await identity.access_for(conn, subject_type, sub, tenant_id)
    claims = {
        "sub": sub,
        "subject_type": subject_type,
        "tenant_id": tenant_id,
        **access.tenant_claims(),
        "roles": list(access.roles),
        "scopes": list(access.scopes),
        "sid": session_id,
        "project_slug": state.settings.project_slug,
        "environment": state.settings.environment,
    }
    token = security.issue_token(state, claims, ttl=ttl)
    return IssuedAccess(token, ttl, access.roles, access.scopes)


def _token_clock(state: LocalState) -> datetime:
    """Now, by the clock that stamps tokens: a session that ends with its token uses it for its end."""
    return datetime.fromtimestamp(security.signer(state).clock(), timezone.utc)


def _request_meta(ctx: RequestContext) -> dict[str, Any]:
    """The session's ``user_agent`` and ``ip_address``: the end user's, when an app server forwarded them
    (``end_user_agent``, ``end_user_ip``), else the caller's own."""
    agent = throttle.end_user_agent(ctx) if ctx.state.settings.trust_end_user_ip else None
    agent = agent or ctx.request.headers.get("user-agent")
    address = throttle.address_of(ctx)
    return {
        "user_agent": agent[:512] if agent else None,
        "ip_address": address[:64] if address else None,
    }


async def _open_user_session(
    conn: AsyncConnection, state: LocalState, ctx: RequestContext, user_id: str, tenant_id: str | None
) -> tuple[str, str]:
    """Open a user session with a fresh refresh token; returns ``(session_id, refresh_token)``."""
    now = runtime(state).now()
    refresh = security.generate_token()
    session_id = new_id()
    await conn.execute(
        insert(identity.sessions).values(
            id=session_id,
            kind="user",
            subject_type="user",
            subject_id=user_id,
            tenant_id=tenant_id,
            refresh_digest=security.token_digest(refresh),
            refresh_expires_at=now + REFRESH_TOKEN_TTL,
            created_at=now,
            last_seen_at=now,
            expires_at=now + REFRESH_TOKEN_TTL,
            revoked_at=None,
            revoked_reason=None,
            extra=None,
            **_request_meta(ctx),
        )
    )
    return session_id, refresh


async def _login_answer(
    conn: AsyncConnection,
    state: LocalState,
    *,
    user_id: str,
    session_id: str,
    tenant_id: str | None,
    refresh_token: str,
) -> dict[str, Any]:
    """The login shape of spec 5.7, shared by login, refresh and accept-invitation."""
    issued = await _issue_access(
        conn,
        state,
        subject_type="user",
        sub=user_id,
        tenant_id=tenant_id,
        session_id=session_id,
        ttl=config(state).access_token_ttl,
    )
    user = await _user_row(conn, user_id)
    tenants = await subject_tenants(conn, "user", user_id)
    current = next((row for row in tenants if row.id == tenant_id), None)
    return {
        "access_token": issued.access_token,
        "token_type": "bearer",
        "expires_in": issued.expires_in,
        "refresh_token": refresh_token,
        "session_id": session_id,
        "user": _user_record(user),
        "tenant": _tenant_short(current) if current is not None else None,
        "tenants": [_tenant_short(row) for row in tenants],
    }


async def _session_row(conn: AsyncConnection, session_id: str) -> Any:
    return (await conn.execute(select(identity.sessions).where(identity.sessions.c.id == session_id))).first()


def _session_principal(ctx: RequestContext) -> Principal:
    """The principal of a ``user`` endpoint: always a session token (the dispatcher refuses the others)."""
    principal = ctx.subject
    if principal.sid is None:  # pragma: no cover - the dispatcher answers 403 first
        raise forbidden("This endpoint needs a session token")
    return principal


def _users_only(principal: Principal, what: str) -> None:
    if principal.subject_type != "user":
        raise forbidden(f"{what} is only for user sessions; this is a client session")


# --- login, client login, logout ------------------------------------------------------------------------------------


@router.post("/api/portal/auth/login", replay=False)
async def login(ctx: RequestContext) -> dict[str, Any]:
    """Sign a user in by username or e-mail and password (spec 5.7)."""
    fields = body_fields(ctx)
    login_name = fields.str("username", min_len=1, max_len=254, strip=True)
    password = fields.str("password", min_len=1)
    tenant = fields.str("tenant_id", required=False, min_len=1, max_len=128)
    throttle.end_user_agent(ctx)
    state = ctx.state
    await _throttle_address(ctx)
    async with state.db.begin() as conn:
        user = await _user_by_login(conn, login_name)
    cfg = config(state)
    limits = throttle.runtime(state).throttle
    # Failures count per account; an unknown name is counted under its own key, so it behaves the same.
    account = f"u:{user.id}" if user is not None else f"n:{login_name.lower()}"
    recorded = await limits.check_account(account)
    pool = _bcrypt(state)
    if user is None or not user.password_hash:
        # Unknown names and users without a password (invited) cost one bcrypt check too: timing says nothing.
        await pool.verify_password(password, await runtime(state).dummy_hash(state, cfg.bcrypt_rounds))
        await limits.login_failed(account)
        raise ApiError("invalid_credentials", "Wrong username or password")
    if not await pool.verify_password(password, user.password_hash):
        await limits.login_failed(account)
        raise ApiError("invalid_credentials", "Wrong username or password")
    await limits.login_succeeded(account, recorded)
    async with state.db.begin() as conn:
        # Read again inside the writing transaction: the password or status may have changed meanwhile.
        current = await _user_row(conn, user.id)
        if current is None or current.password_hash != user.password_hash:
            raise ApiError("invalid_credentials", "Wrong username or password")
        if current.status != "active":
            raise ApiError("account_inactive", f"The account is {current.status}", details={"status": current.status})
        if tenant is not None:
            tenant_id: str | None = await identity.resolve_tenant(conn, "user", current.id, tenant)
        else:
            tenant_id = await identity.default_tenant(conn, "user", current.id)
        now = runtime(state).now()
        await conn.execute(update(identity.users).where(identity.users.c.id == current.id).values(last_login_at=now))
        session_id, refresh = await _open_user_session(conn, state, ctx, current.id, tenant_id)
        return await _login_answer(
            conn, state, user_id=current.id, session_id=session_id, tenant_id=tenant_id, refresh_token=refresh
        )


@router.post("/api/portal/auth/login-client", replay=False)
async def login_client(ctx: RequestContext) -> dict[str, Any]:
    """Open a client session for the client that owns ``psk`` (spec 5.7); it ends when its token expires."""
    fields = body_fields(ctx)
    psk = fields.str("psk", min_len=1, max_len=1024)
    tenant = fields.str("tenant_id", required=False, min_len=1, max_len=128)
    throttle.end_user_agent(ctx)
    state = ctx.state
    await _throttle_address(ctx)
    async with state.db.begin() as conn:
        client_id = await identity.client_for_psk(conn, psk)
        if client_id is None:
            raise ApiError("invalid_credentials", "The PSK is not valid")
        if tenant is not None:
            tenant_id: str | None = await identity.resolve_tenant(conn, "client", client_id, tenant)
        else:
            tenant_id = await identity.default_tenant(conn, "client", client_id)
        ttl = config(state).access_token_ttl
        now = runtime(state).now()
        session_id = new_id()
        await conn.execute(
            insert(identity.sessions).values(
                id=session_id,
                kind="client",
                subject_type="client",
                subject_id=client_id,
                tenant_id=tenant_id,
                refresh_digest=None,
                refresh_expires_at=None,
                created_at=now,
                last_seen_at=now,
                expires_at=_token_clock(state) + timedelta(seconds=ttl),
                revoked_at=None,
                revoked_reason=None,
                extra=None,
                **_request_meta(ctx),
            )
        )
        await conn.execute(update(identity.clients).where(identity.clients.c.id == client_id).values(last_used_at=now))
        issued = await _issue_access(
            conn, state, subject_type="client", sub=client_id, tenant_id=tenant_id, session_id=session_id, ttl=ttl
        )
    return {
        "access_token": issued.access_token,
        "token_type": "bearer",
        "expires_in": issued.expires_in,
        "session_id": session_id,
    }


@router.post("/api/portal/auth/logout", auth="user")
async def logout(ctx: RequestContext) -> dict[str, Any]:
    """End the Bearer's own session; its access and refresh tokens stop working (spec 5.7)."""
    body_fields(ctx)
    principal = _session_principal(ctx)
    async with ctx.state.db.begin() as conn:
        await identity.revoke_sessions(conn, session_id=principal.sid, reason="logout")
    return {"logged_out": True, "session_id": principal.sid}


# --- refresh and tenant switch -----------------------------------------------------------------------------------


class _Refused(Exception):
    """A refresh refusal that must be answered only after its transaction commits (reuse revokes)."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


@router.post("/api/portal/auth/refresh", auth="service_or_user", replay=False)
async def refresh(ctx: RequestContext) -> dict[str, Any]:
    """Rotate a session's refresh token and issue a new access token (spec 5.7).

    Two forms: the service token with ``refresh_token`` in the body, or a session token as Bearer with an
    empty body (that session is refreshed). A Bearer session with a ``refresh_token`` must name its own
    session. Sessions opened without a refresh token (client sessions, ``auth.mint`` sessions) cannot be
    refreshed: 403.
    """
    fields = body_fields(ctx)
    presented = fields.str("refresh_token", required=False, min_len=1, max_len=1024)
    principal = ctx.subject
    if presented is None and principal.sid is None:
        raise invalid("refresh_token", "is required when the Bearer is a service token")
    state = ctx.state
    refused: ApiError | None = None
    async with state.db.begin() as conn:
        try:
            return await _refresh_in(conn, ctx, principal, presented)
        except _Refused as failure:
            refused = failure.error
    # The transaction has committed the revocation that a reused token causes; now answer the refusal.
    assert refused is not None
    raise refused


async def _refresh_in(
    conn: AsyncConnection, ctx: RequestContext, principal: Principal, presented: str | None
) -> dict[str, Any]:
    state = ctx.state
    now = runtime(state).now()
    sessions = identity.sessions
    if presented is not None:
        digest = security.token_digest(presented)
        session = (await conn.execute(select(sessions).where(sessions.c.refresh_digest == digest))).first()
        if session is None:
            reused = (
                await conn.execute(
                    select(identity.session_previous_digests.c.session_id).where(
                        identity.session_previous_digests.c.digest == digest
                    )
                )
            ).scalar()
            if reused is not None:
                await identity.revoke_sessions(conn, session_id=str(reused), reason="refresh_token_reused")
                raise _Refused(
                    ApiError("session_revoked", "The refresh token was already used; the session has been ended")
                )
            raise ApiError("refresh_token_invalid", "The refresh token is not known")
        if principal.sid is not None and principal.sid != session.id:
            raise ApiError("refresh_token_invalid", "The refresh token belongs to another session")
    else:
        session = await _session_row(conn, str(principal.sid))
        if session is None:  # pragma: no cover - the dispatcher checked the session
            raise ApiError("session_revoked", "The session has ended")
    if session.revoked_at is not None:
        raise ApiError("session_revoked", "The session has ended")
    if session.kind != "user" or session.refresh_digest is None:
        raise forbidden("This session has no refresh token and cannot be refreshed")
    if session.refresh_expires_at is None or _aware(session.refresh_expires_at) <= now:
        raise ApiError("refresh_token_expired", "The refresh token has expired; sign in again")
    if not await identity.subject_is_active(conn, "user", session.subject_id):
        await identity.revoke_sessions(conn, session_id=session.id, reason="subject_inactive")
        raise _Refused(ApiError("session_revoked", "The session has ended"))
    tenant_id = session.tenant_id
    if tenant_id is not None and await active_tenant(conn, "user", session.subject_id, tenant_id) is None:
        # The tenant link is gone: fall back to the default tenant rather than keep a stale one.
        tenant_id = await identity.default_tenant(conn, "user", session.subject_id)
    fresh = security.generate_token()
    # Guarded by the digest it replaces: of two refreshes racing with one token, only the first rotates; the
    # other finds the token rotated out, which is a reuse.
    rotated = await conn.execute(
        update(sessions)
        .where(sessions.c.id == session.id, sessions.c.refresh_digest == session.refresh_digest)
        .values(
            refresh_digest=security.token_digest(fresh),
            refresh_expires_at=now + REFRESH_TOKEN_TTL,
            expires_at=now + REFRESH_TOKEN_TTL,
            last_seen_at=now,
            tenant_id=tenant_id,
        )
    )
    if not rotated.rowcount:
        await identity.revoke_sessions(conn, session_id=session.id, reason="refresh_token_reused")
        raise _Refused(ApiError("session_revoked", "The refresh token was already used; the session has been ended"))
    await conn.execute(
        insert(identity.session_previous_digests).values(
            digest=session.refresh_digest, session_id=session.id, rotated_at=now
        )
    )
    return await _login_answer(
        conn, state, user_id=session.subject_id, session_id=session.id, tenant_id=tenant_id, refresh_token=fresh
    )


@router.post("/api/portal/auth/switch-tenant", auth="user", replay=False)
async def switch_tenant(ctx: RequestContext) -> dict[str, Any]:
    """Make another of the subject's tenants active in this session and issue a new access token.

    The refresh token stays as it is. For a session without a refresh token (client sessions, minted user
    sessions) the new token expires no later than the session itself.
    """
    fields = body_fields(ctx)
    tenant = fields.str("tenant_id", min_len=1, max_len=128)
    principal = _session_principal(ctx)
    state = ctx.state
    async with state.db.begin() as conn:
        tenant_id = await identity.resolve_tenant(conn, principal.subject_type, principal.sub, tenant)
        session = await _session_row(conn, str(principal.sid))
        now = runtime(state).now()
        ttl = config(state).access_token_ttl
        if session.refresh_digest is None:
            remaining = int((_aware(session.expires_at) - _token_clock(state)).total_seconds())
            ttl = max(1, min(ttl, remaining))
        await conn.execute(
            update(identity.sessions)
            .where(identity.sessions.c.id == session.id)
            .values(tenant_id=tenant_id, last_seen_at=now)
        )
        issued = await _issue_access(
            conn,
            state,
            subject_type=principal.subject_type,
            sub=principal.sub,
            tenant_id=tenant_id,
            session_id=session.id,
            ttl=ttl,
        )
        row = (await conn.execute(select(identity.tenants).where(identity.tenants.c.id == tenant_id))).first()
    return {
        "access_token": issued.access_token,
        "token_type": "bearer",
        "expires_in": issued.expires_in,
        "session_id": session.id,
        "tenant": _tenant_short(row),
    }


# --- me ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """What page-access and navigation decisions read: current Guardian data (spec 5.9)."""

    subject_type: str
    sub: str
    tenant_id: str | None
    category_id: str | None
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    role_ids: frozenset[str]
    scope_ids: frozenset[str]
    subtype_ids: frozenset[str]
    subtype_slugs: tuple[str, ...]


async def load_subject(conn: AsyncConnection, subject_type: str, sub: str, tenant_id: str | None) -> Subject:
    """The subject's effective access for ``tenant_id``, read from current data (spec 5.9)."""
    tenant = await active_tenant(conn, subject_type, sub, tenant_id)
    tenant_id = tenant.id if tenant is not None else None
    access = await identity.access_for(conn, subject_type, sub, tenant_id)
    role_ids: set[str] = set()
    if access.roles:
        role_ids = {
            str(r)
            for r in (
                await conn.execute(select(identity.roles.c.id).where(identity.roles.c.name.in_(access.roles)))
            ).scalars()
        }
    scope_ids: set[str] = set()
    if access.scopes:
        scope_ids = {
            str(s)
            for s in (
                await conn.execute(select(identity.scopes.c.id).where(identity.scopes.c.slug.in_(access.scopes)))
            ).scalars()
        }
    link = identity.JUNCTIONS[(_segment(subject_type), "subtypes")]
    subtype_rows = (
        await conn.execute(
            select(identity.subtypes.c.id, identity.subtypes.c.slug)
            .join(link.table, link.table.c.subtype_id == identity.subtypes.c.id)
            .where(link.table.c[link.owner_col] == sub)
            .order_by(identity.subtypes.c.slug)
        )
    ).all()
    return Subject(
        subject_type=subject_type,
        sub=sub,
        tenant_id=tenant_id,
        category_id=tenant.category_id if tenant is not None else None,
        roles=access.roles,
        scopes=access.scopes,
        role_ids=frozenset(role_ids),
        scope_ids=frozenset(scope_ids),
        subtype_ids=frozenset(str(row.id) for row in subtype_rows),
        subtype_slugs=tuple(str(row.slug) for row in subtype_rows),
    )


@router.get("/api/portal/auth/me", auth="service_or_user")
async def me(ctx: RequestContext) -> dict[str, Any]:
    """The token's subject, its active tenant and its effective access from current data (spec 7.9)."""
    principal = ctx.subject
    async with ctx.state.db.begin() as conn:
        subject = await load_subject(conn, principal.subject_type, principal.sub, principal.tenant_id)
        user = client = None
        if principal.subject_type == "user":
            row = await _user_row(conn, principal.sub)
            user = _user_record(row) if row is not None else None
        else:
            row = (await conn.execute(select(identity.clients).where(identity.clients.c.id == principal.sub))).first()
            client = _client_record(row) if row is not None else None
        tenants = await subject_tenants(conn, principal.subject_type, principal.sub)
        if principal.sid is not None:
            await conn.execute(
                update(identity.sessions)
                .where(identity.sessions.c.id == principal.sid)
                .values(last_seen_at=runtime(ctx.state).now())
            )
    current = next((row for row in tenants if row.id == subject.tenant_id), None)
    return {
        "subject_type": principal.subject_type,
        "user": user,
        "client": client,
        "tenant": _tenant_short(current) if current is not None else None,
        "tenants": [_tenant_short(row) for row in tenants],
        "scopes": list(subject.scopes),
        "roles": list(subject.roles),
        "subtypes": list(subject.subtype_slugs),
        "session_id": principal.sid,
    }


# --- passwords ----------------------------------------------------------------------------------------------------


@router.post("/api/portal/security/change-password", auth="user")
async def change_password(ctx: RequestContext) -> dict[str, Any]:
    """Change the user's password after checking the current one; every other session ends (spec 7.9)."""
    fields = body_fields(ctx)
    current_password = fields.str("current_password", min_len=1)
    new_password = _password(fields, "new_password")
    principal = _session_principal(ctx)
    _users_only(principal, "Changing a password")
    state = ctx.state
    async with state.db.begin() as conn:
        user = await _user_row(conn, principal.sub)
    pool = _bcrypt(state)
    if user is None or not await pool.verify_password(current_password, user.password_hash):
        raise ApiError("invalid_credentials", "The current password is wrong", details={"field": "current_password"})
    hashed = await pool.hash_password(new_password, config(state).bcrypt_rounds)
    async with state.db.begin() as conn:
        now = runtime(state).now()
        result = await conn.execute(
            update(identity.users)
            .where(identity.users.c.id == principal.sub, identity.users.c.password_hash == user.password_hash)
            .values(password_hash=hashed, updated_at=now)
        )
        if not result.rowcount:
            raise ApiError(
                "invalid_credentials", "The current password is wrong", details={"field": "current_password"}
            )
        revoked = await identity.revoke_sessions(
            conn,
            subject_type="user",
            subject_id=principal.sub,
            except_session=principal.sid,
            reason="password_changed",
        )
    return {"changed": True, "revoked_sessions": revoked}


async def _new_one_time_token(
    conn: AsyncConnection, state: LocalState, user_id: str, purpose: Purpose, ttl: timedelta
) -> str:
    """Issue a single-use token for ``purpose``, spending the user's earlier unused ones of that purpose."""
    now = runtime(state).now()
    await conn.execute(
        update(one_time_tokens)
        .where(
            one_time_tokens.c.user_id == user_id,
            one_time_tokens.c.purpose == purpose,
            one_time_tokens.c.used_at.is_(None),
        )
        .values(used_at=now)
    )
    token = security.generate_token()
    await conn.execute(
        insert(one_time_tokens).values(
            digest=security.token_digest(token),
            purpose=purpose,
            user_id=user_id,
            created_at=now,
            expires_at=now + ttl,
            used_at=None,
        )
    )
    return token


async def _spend_one_time_token(conn: AsyncConnection, state: LocalState, token: str, purpose: Purpose) -> str:
    """Mark a valid token used and return its user id; else 400 ``validation_failed`` on ``token``."""
    now = runtime(state).now()
    row = (
        await conn.execute(
            select(one_time_tokens).where(
                one_time_tokens.c.digest == security.token_digest(token), one_time_tokens.c.purpose == purpose
            )
        )
    ).first()
    if row is None:
        raise invalid("token", "is not valid")
    if row.used_at is not None:
        raise invalid("token", "has already been used")
    if _aware(row.expires_at) <= now:
        raise invalid("token", "has expired")
    # The ``used_at IS NULL`` guard makes two concurrent uses of one token succeed at most once.
    result = await conn.execute(
        update(one_time_tokens)
        .where(one_time_tokens.c.digest == row.digest, one_time_tokens.c.used_at.is_(None))
        .values(used_at=now)
    )
    if not result.rowcount:
        raise invalid("token", "has already been used")
    return str(row.user_id)


async def _display_name(conn: AsyncConnection, user: Any) -> str:
    """The user's profile display name, or else the username (spec 8.10)."""
    name = (await conn.execute(select(profiles.c.display_name).where(profiles.c.user_id == user.id))).scalar()
    return str(name) if name else str(user.username)


def _check_email(fields: Fields, name: str = "email") -> str:
    value = fields.raw(name)
    if value is None:
        raise invalid(name, "is required")
    return courier.check_address(name, value)


@router.post("/api/portal/security/request-reset")
async def request_reset(ctx: RequestContext) -> dict[str, Any]:
    """Send a password-reset mail when the address belongs to an active user; always ``{requested: true}``.

    The answer is the same for unknown addresses, so it reveals nothing about accounts (spec 7.9). Beyond
    ``mail_per_address_limit`` requests for one address in its window, nothing is sent and the answer stays
    the same (a silent drop, so the limit reveals nothing either); too many requests from one end-user
    address are 429 ``rate_limited`` (see :mod:`dominus_local.throttle`).
    """
    fields = body_fields(ctx)
    email = _check_email(fields)
    throttle.end_user_agent(ctx)
    state = ctx.state
    cfg = config(state)
    await _throttle_address(ctx)
    if not await throttle.runtime(state).throttle.allow_mail("reset", email):
        return {"requested": True}
    async with state.db.begin() as conn:
        user = await _user_by_email(conn, email)
        if user is not None and user.status == "active" and user.email:
            token = await _new_one_time_token(conn, state, user.id, "reset", RESET_TOKEN_TTL)
            await courier.send_template(
                conn,
                state,
                template_alias="password-reset",
                to=user.email,
                from_email=cfg.mail_from,
                tag="password-reset",
                model={
                    "name": await _display_name(conn, user),
                    "action_url": _link(cfg.password_reset_url, token),
                    "product_name": cfg.product_name,
                },
            )
    return {"requested": True}


@router.post("/api/portal/security/confirm-reset")
async def confirm_reset(ctx: RequestContext) -> dict[str, Any]:
    """Set a new password with a reset token (single use, 1 hour); every session of the user ends."""
    fields = body_fields(ctx)
    token = fields.str("token", min_len=1, max_len=1024)
    new_password = _password(fields, "new_password")
    throttle.end_user_agent(ctx)
    state = ctx.state
    await _throttle_address(ctx)
    hashed = await _bcrypt(state).hash_password(new_password, config(state).bcrypt_rounds)
    async with state.db.begin() as conn:
        user_id = await _spend_one_time_token(conn, state, token, "reset")
        user = await _user_row(conn, user_id)
        if user is None or user.status != "active":
            raise invalid("token", "is not valid")
        now = runtime(state).now()
        await conn.execute(
            update(identity.users).where(identity.users.c.id == user_id).values(password_hash=hashed, updated_at=now)
        )
        # Any other reset link sent earlier must not work after the password changed.
        await conn.execute(
            update(one_time_tokens)
            .where(
                one_time_tokens.c.user_id == user_id,
                one_time_tokens.c.purpose == "reset",
                one_time_tokens.c.used_at.is_(None),
            )
            .values(used_at=now)
        )
        await identity.revoke_sessions(conn, subject_type="user", subject_id=user_id, reason="password_reset")
    return {"reset": True}


# --- sessions ----------------------------------------------------------------------------------------------------


@router.get("/api/portal/security/sessions", auth="user")
async def list_sessions(ctx: RequestContext) -> dict[str, Any]:
    """The subject's active sessions, newest first, the current one marked (spec 7.9)."""
    principal = _session_principal(ctx)
    now = runtime(ctx.state).now()
    sessions = identity.sessions
    async with ctx.state.db.begin() as conn:
        rows = (
            await conn.execute(
                select(sessions)
                .where(
                    sessions.c.subject_type == principal.subject_type,
                    sessions.c.subject_id == principal.sub,
                    sessions.c.revoked_at.is_(None),
                    sessions.c.expires_at > now,
                )
                .order_by(sessions.c.created_at.desc(), sessions.c.id)
            )
        ).all()
    items = [
        {
            "id": row.id,
            "subject_type": row.subject_type,
            "created_at": _ts(row.created_at),
            "last_seen_at": _ts(row.last_seen_at),
            "expires_at": _ts(row.expires_at),
            "user_agent": row.user_agent,
            "ip_address": row.ip_address,
            "current": row.id == principal.sid,
        }
        for row in rows
    ]
    return {"items": items, "total": len(items)}


@router.delete("/api/portal/security/sessions/{session_id}", auth="user")
async def revoke_session(ctx: RequestContext) -> dict[str, Any]:
    """End one of the subject's own sessions (the current one included); others' sessions are 404.

    Revoking a session that has already ended answers the same, so a repeated call is harmless.
    """
    body_fields(ctx)
    principal = _session_principal(ctx)
    session_id = ctx.path_uuid("session_id")
    async with ctx.state.db.begin() as conn:
        row = await _session_row(conn, session_id)
        if row is None or row.subject_type != principal.subject_type or row.subject_id != principal.sub:
            raise not_found("Session", session_id)
        await identity.revoke_sessions(conn, session_id=session_id, reason="revoked")
    return {"revoked": True, "session_id": session_id}


@router.post("/api/portal/security/sessions/revoke-all", auth="user")
async def revoke_all_sessions(ctx: RequestContext) -> dict[str, Any]:
    """End every session of the subject except the current one."""
    body_fields(ctx)
    principal = _session_principal(ctx)
    async with ctx.state.db.begin() as conn:
        count = await identity.revoke_sessions(
            conn,
            subject_type=principal.subject_type,
            subject_id=principal.sub,
            except_session=principal.sid,
            reason="revoked_all",
        )
    return {"revoked_count": count}


# --- profile and preferences -------------------------------------------------------------------------------------


def _profile_record(row: Any) -> dict[str, Any]:
    return {
        "user_id": row.user_id,
        "display_name": row.display_name,
        "avatar_url": row.avatar_url,
        "bio": row.bio,
        "phone": row.phone,
        "extra": row.extra if row.extra is not None else {},
        "updated_at": _ts(row.updated_at),
    }


def _preferences_record(row: Any) -> dict[str, Any]:
    return {
        "theme": row.theme,
        "language": row.language,
        "timezone": row.timezone,
        "sidebar_collapsed": bool(row.sidebar_collapsed),
        "notifications_enabled": bool(row.notifications_enabled),
        "email_notifications": bool(row.email_notifications),
        "extra": row.extra if row.extra is not None else {},
        "updated_at": _ts(row.updated_at),
    }


async def _profile_row(conn: AsyncConnection, state: LocalState, user_id: str) -> Any:
    """The user's profile, created empty the first time it is needed (spec 7.9)."""
    row = (await conn.execute(select(profiles).where(profiles.c.user_id == user_id))).first()
    if row is None:
        await conn.execute(
            insert(profiles).values(
                user_id=user_id,
                display_name=None,
                avatar_url=None,
                bio=None,
                phone=None,
                extra={},
                updated_at=runtime(state).now(),
            )
        )
        row = (await conn.execute(select(profiles).where(profiles.c.user_id == user_id))).first()
    return row


async def _preferences_row(conn: AsyncConnection, state: LocalState, user_id: str) -> Any:
    row = (await conn.execute(select(preferences).where(preferences.c.user_id == user_id))).first()
    if row is None:
        await conn.execute(
            insert(preferences).values(
                user_id=user_id, extra={}, updated_at=runtime(state).now(), **PREFERENCE_DEFAULTS
            )
        )
        row = (await conn.execute(select(preferences).where(preferences.c.user_id == user_id))).first()
    return row


def _optional_text(fields: Fields, name: str, max_len: int, *, single_line: bool = True) -> str | None:
    """An optional text field without control characters (``bio`` may also hold line breaks and tabs)."""
    value: str | None = fields.str(name, required=False, max_len=max_len)
    if value is not None:
        allowed = "" if single_line else "\n\r\t"
        if any((ord(ch) < 32 and ch not in allowed) or ord(ch) == 127 for ch in value):
            raise invalid(name, "must not contain control characters")
    return value


def _avatar_url(fields: Fields) -> str | None:
    value = _optional_text(fields, "avatar_url", 2048)
    if value is None:
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(ch.isspace() for ch in value):
        raise invalid("avatar_url", "must be an http(s) URL")
    return value


def _not_null(fields: Fields, name: str) -> None:
    """PUT updates: an explicit ``null`` for a non-nullable attribute is 400 (spec 3.1)."""
    if fields.present(name) and fields.raw(name) is None:
        raise invalid(name, "cannot be null")


@router.get("/api/portal/profile", auth="user")
async def get_profile(ctx: RequestContext) -> dict[str, Any]:
    """The user's profile (users only; client sessions get 403)."""
    principal = _session_principal(ctx)
    _users_only(principal, "A profile")
    async with ctx.state.db.begin() as conn:
        return _profile_record(await _profile_row(conn, ctx.state, principal.sub))


@router.put("/api/portal/profile", auth="user")
async def update_profile(ctx: RequestContext) -> dict[str, Any]:
    """Update the profile: an absent field is kept, ``null`` clears it; ``extra`` replaces the stored object."""
    fields = body_fields(ctx)
    principal = _session_principal(ctx)
    _users_only(principal, "A profile")
    values: dict[str, Any] = {}
    if fields.present("display_name"):
        values["display_name"] = _optional_text(fields, "display_name", 128)
    if fields.present("avatar_url"):
        values["avatar_url"] = _avatar_url(fields)
    if fields.present("bio"):
        values["bio"] = _optional_text(fields, "bio", 2000, single_line=False)
    if fields.present("phone"):
        values["phone"] = _optional_text(fields, "phone", 32)
    if fields.present("extra"):
        _not_null(fields, "extra")
        values["extra"] = fields.dict("extra")
    async with ctx.state.db.begin() as conn:
        await _profile_row(conn, ctx.state, principal.sub)
        if values:
            values["updated_at"] = runtime(ctx.state).now()
            await conn.execute(update(profiles).where(profiles.c.user_id == principal.sub).values(**values))
        return _profile_record(await _profile_row(conn, ctx.state, principal.sub))


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _timezone(fields: Fields) -> str:
    value: str = fields.str("timezone", min_len=1, max_len=64)
    known = _timezones()
    if known:
        if value not in known:
            raise invalid("timezone", "must be an IANA time zone name such as Europe/Paris")
        return value
    try:  # no tz database listing on this system: ask zoneinfo directly
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise invalid("timezone", "must be an IANA time zone name such as Europe/Paris") from None
    return value


@router.get("/api/portal/profile/preferences", auth="user")
async def get_preferences(ctx: RequestContext) -> dict[str, Any]:
    """The user's preferences, with the defaults of spec 7.9 until changed (users only)."""
    principal = _session_principal(ctx)
    _users_only(principal, "Preferences")
    async with ctx.state.db.begin() as conn:
        return _preferences_record(await _preferences_row(conn, ctx.state, principal.sub))


@router.put("/api/portal/profile/preferences", auth="user")
async def update_preferences(ctx: RequestContext) -> dict[str, Any]:
    """Update preferences: an absent field is kept; none of them may be set to ``null``."""
    fields = body_fields(ctx)
    principal = _session_principal(ctx)
    _users_only(principal, "Preferences")
    values: dict[str, Any] = {}
    for name in (*PREFERENCE_DEFAULTS, "extra"):
        _not_null(fields, name)
    if fields.present("theme"):
        values["theme"] = fields.str("theme", choices=THEMES)
    if fields.present("language"):
        values["language"] = fields.str("language", max_len=35, pattern=LANGUAGE_TAG)
    if fields.present("timezone"):
        values["timezone"] = _timezone(fields)
    for flag in ("sidebar_collapsed", "notifications_enabled", "email_notifications"):
        if fields.present(flag):
            if not isinstance(fields.raw(flag), bool):
                raise invalid(flag, "must be a boolean")
            values[flag] = fields.raw(flag)
    if fields.present("extra"):
        values["extra"] = fields.dict("extra")
    async with ctx.state.db.begin() as conn:
        await _preferences_row(conn, ctx.state, principal.sub)
        if values:
            values["updated_at"] = runtime(ctx.state).now()
            await conn.execute(update(preferences).where(preferences.c.user_id == principal.sub).values(**values))
        return _preferences_record(await _preferences_row(conn, ctx.state, principal.sub))


# --- page access (spec 8.8) and navigation (spec 8.9) ------------------------------------------------------------


@dataclass(frozen=True)
class Restrictions:
    """The links of one page or nav item, as sets of ids."""

    tenants: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    subtypes: frozenset[str] = frozenset()
    excluded_scopes: frozenset[str] = frozenset()
    excluded_roles: frozenset[str] = frozenset()

    def tenant_matches(self, subject: Subject) -> bool:
        if not self.tenants and not self.categories:
            return True
        if subject.tenant_id is None:
            return False
        return subject.tenant_id in self.tenants or (
            subject.category_id is not None and subject.category_id in self.categories
        )


_PAGE_LINKS = {
    "tenants": "tenants",
    "categories": "categories",
    "scopes": "scopes",
    "excluded_scopes": "excluded-scopes",
    "excluded_roles": "excluded-roles",
}
_NAV_LINKS = {
    "tenants": "tenants",
    "categories": "categories",
    "scopes": "scopes",
    "roles": "roles",
    "subtypes": "subtypes",
}


async def _restrictions(
    conn: AsyncConnection, owner: str, links: Mapping[str, str], ids: Sequence[str]
) -> dict[str, Restrictions]:
    """The restrictions of every owner in ``ids``, read in one query per junction."""
    found: dict[str, dict[str, set[str]]] = {ident: {} for ident in ids}
    if ids:
        for attribute, relation in links.items():
            junction = identity.JUNCTIONS[(owner, relation)]
            owner_col = junction.table.c[junction.owner_col]
            target_col = junction.table.c[junction.target_col]
            for owner_id, target_id in await conn.execute(select(owner_col, target_col).where(owner_col.in_(ids))):
                found[str(owner_id)].setdefault(attribute, set()).add(str(target_id))
    return {
        ident: Restrictions(**{name: frozenset(values) for name, values in attrs.items()})
        for ident, attrs in found.items()
    }


def page_decision(page: Any, restrictions: Restrictions, subject: Subject) -> str:
    """The reason of spec 8.8 for one existing page: ``allowed`` or the first failing check."""
    if not page.is_active:
        return "page_inactive"
    if not restrictions.tenant_matches(subject):
        return "tenant_not_allowed"
    if restrictions.scopes and not restrictions.scopes & subject.scope_ids:
        return "missing_scope"
    if restrictions.excluded_scopes & subject.scope_ids:
        return "excluded_scope"
    if restrictions.excluded_roles & subject.role_ids:
        return "excluded_role"
    return "allowed"


def normalise_page_path(value: str) -> str:
    """The lookup form of a page path: without a trailing ``/``, except for the root (spec 8.8)."""
    stripped = value.rstrip("/")
    return stripped if stripped else "/"


async def check_page_access(conn: AsyncConnection, subject: Subject, path: str) -> dict[str, Any]:
    """``{allowed, reason, page_id}`` for ``path`` (spec 8.8)."""
    page = (await conn.execute(select(identity.pages).where(identity.pages.c.path == path))).first()
    if page is None:
        return {"allowed": False, "reason": "page_not_found", "page_id": None}
    restrictions = (await _restrictions(conn, "pages", _PAGE_LINKS, [page.id]))[page.id]
    reason = page_decision(page, restrictions, subject)
    return {"allowed": reason == "allowed", "reason": reason, "page_id": page.id}


def _item_matches(restrictions: Restrictions, subject: Subject) -> bool:
    return (
        restrictions.tenant_matches(subject)
        and (not restrictions.scopes or bool(restrictions.scopes & subject.scope_ids))
        and (not restrictions.roles or bool(restrictions.roles & subject.role_ids))
        and (not restrictions.subtypes or bool(restrictions.subtypes & subject.subtype_ids))
    )


async def navigation(conn: AsyncConnection, subject: Subject) -> list[dict[str, Any]]:
    """The navigation tree of spec 8.9 for ``subject``: the top-level nodes, each with ``children``."""
    items = (await conn.execute(select(identity.nav_items).where(identity.nav_items.c.is_active.is_(True)))).all()
    if not items:
        return []
    item_restrictions = await _restrictions(conn, "nav-items", _NAV_LINKS, [row.id for row in items])
    page_ids = sorted({row.page_id for row in items if row.page_id is not None})
    pages: dict[str, Any] = {}
    if page_ids:
        pages = {
            row.id: row for row in await conn.execute(select(identity.pages).where(identity.pages.c.id.in_(page_ids)))
        }
    page_restrictions = await _restrictions(conn, "pages", _PAGE_LINKS, page_ids)

    def kept(row: Any) -> bool:
        if not _item_matches(item_restrictions[row.id], subject):
            return False
        if row.page_id is None:
            return True
        page = pages.get(row.page_id)
        return page is not None and page_decision(page, page_restrictions[page.id], subject) == "allowed"

    children: dict[str | None, list[Any]] = {}
    for row in items:
        if kept(row):
            children.setdefault(row.parent_id, []).append(row)
    for siblings in children.values():
        siblings.sort(key=lambda row: (row.sort_order, row.title, row.id))

    def build(parent: str | None, seen: frozenset[str]) -> list[dict[str, Any]]:
        nodes: list[dict[str, Any]] = []
        for row in children.get(parent, []):
            if row.id in seen:  # defensive: Guardian refuses cycles, but never loop on bad data
                continue
            below = build(row.id, seen | {row.id})
            if row.item_type in ("header", "group_label") and row.page_id is None and not below:
                continue
            page = pages.get(row.page_id) if row.page_id is not None else None
            nodes.append(
                {
                    "id": row.id,
                    "title": row.title,
                    "icon": row.icon,
                    "description": row.description,
                    "item_type": row.item_type,
                    "page_id": row.page_id,
                    "path": page.path if page is not None else None,
                    "sort_order": row.sort_order,
                    "is_expanded_default": bool(row.is_expanded_default),
                    "children": below,
                }
            )
        return nodes

    return build(None, frozenset())


@router.get("/api/portal/nav", auth="service_or_user")
async def get_navigation(ctx: RequestContext) -> dict[str, Any]:
    """The navigation tree for the token's subject and active tenant (spec 8.9)."""
    principal = ctx.subject
    async with ctx.state.db.begin() as conn:
        subject = await load_subject(conn, principal.subject_type, principal.sub, principal.tenant_id)
        return {"items": await navigation(conn, subject)}


@router.post("/api/portal/nav/check-access", auth="service_or_user", safe=True)
async def check_access(ctx: RequestContext) -> dict[str, Any]:
    """Whether the token's subject may open the page at ``page_path`` (spec 8.8)."""
    fields = body_fields(ctx)
    path = fields.str("page_path", min_len=1, max_len=MAX_PAGE_PATH + 1)
    if not path.startswith("/"):
        raise invalid("page_path", "must start with '/'")
    principal = ctx.subject
    async with ctx.state.db.begin() as conn:
        subject = await load_subject(conn, principal.subject_type, principal.sub, principal.tenant_id)
        return await check_page_access(conn, subject, normalise_page_path(path))


# --- registration and invitations -----------------------------------------------------------------------------------


async def _registration_tenant(conn: AsyncConnection, tenant: str) -> str:
    """The id of the active tenant a self-registered user may join; never the built-in admin tenant.

    The admin tenant (slug ``admin``) and every tenant of the built-in admin category are refused with 403
    ``forbidden`` (``details.reason: "admin_tenant"``) whatever the caller allows: administrators are created
    by an administrator through Guardian, never by signing up. Which other tenants are open to sign-up is the
    application's choice (``get_portal_router(registration_tenants=[...])``).
    """
    tenants, categories = identity.tenants, identity.categories
    condition = tenants.c.slug == tenant
    if is_uuid(tenant):
        condition = or_(condition, tenants.c.id == tenant.lower())
    row = (
        await conn.execute(
            select(tenants.c.id, tenants.c.slug, tenants.c.status, categories.c.slug.label("category_slug"))
            .outerjoin(categories, categories.c.id == tenants.c.category_id)
            .where(condition)
        )
    ).first()
    if row is None:
        raise unprocessable("The tenant does not exist", field="tenant_id", missing=[tenant])
    if identity.ADMIN_SLUG in (row.slug, row.category_slug):
        raise forbidden(
            "Registration into the admin tenant is not allowed; administrators are created by an administrator",
            field="tenant_id",
            reason="admin_tenant",
        )
    if row.status != "active":
        raise unprocessable("The tenant is not active", field="tenant_id", reason="inactive")
    return str(row.id)


async def _check_unique(conn: AsyncConnection, username: str, email: str) -> None:
    users = identity.users
    taken = (await conn.execute(select(users.c.id).where(func.lower(users.c.username) == username.lower()))).first()
    if taken is not None:
        raise conflict("The username is taken", field="username")
    taken = (await conn.execute(select(users.c.id).where(func.lower(users.c.email) == email.lower()))).first()
    if taken is not None:
        raise conflict("The e-mail address is taken", field="email")


async def _send_verification(conn: AsyncConnection, state: LocalState, user: Any) -> None:
    cfg = config(state)
    token = await _new_one_time_token(conn, state, user.id, "verification", VERIFICATION_TOKEN_TTL)
    await courier.send_template(
        conn,
        state,
        template_alias="email-verification",
        to=user.email,
        from_email=cfg.mail_from,
        tag="email-verification",
        model={
            "name": await _display_name(conn, user),
            "action_url": _link(cfg.email_verification_url, token),
            "product_name": cfg.product_name,
        },
    )


@router.post("/api/portal/register")
async def register(ctx: RequestContext) -> dict[str, Any]:
    """Create a user in an active tenant: ``pending`` with a verification mail, or ``active`` when the server
    is configured without verification (setting ``require_email_verification``).

    Never into the admin tenant (403 ``forbidden``, see :func:`_registration_tenant`); which tenants are open
    to sign-up is up to the application, which alone knows (the FastAPI router's ``registration_tenants``).
    """
    fields = body_fields(ctx)
    username = fields.str("username", pattern=USERNAME)
    email = _check_email(fields)
    password = _password(fields, "password")
    tenant = fields.str("tenant_id", min_len=1, max_len=128)
    throttle.end_user_agent(ctx)
    state = ctx.state
    cfg = config(state)
    await _throttle_address(ctx)
    async with state.db.begin() as conn:  # cheap checks first, so that bad input costs no bcrypt time
        await _registration_tenant(conn, tenant)
        await _check_unique(conn, username, email)
    hashed = await _bcrypt(state).hash_password(password, cfg.bcrypt_rounds)
    try:
        async with state.db.begin() as conn:
            await _check_unique(conn, username, email)
            tenant_id = await _registration_tenant(conn, tenant)
            now = runtime(state).now()
            user_id = new_id()
            await conn.execute(
                insert(identity.users).values(
                    id=user_id,
                    username=username,
                    email=email,
                    password_hash=hashed,
                    status="pending" if cfg.require_email_verification else "active",
                    created_at=now,
                    updated_at=now,
                    last_login_at=None,
                )
            )
            await identity.link(conn, identity.JUNCTIONS[("users", "tenants")], user_id, [tenant_id])
            user = await _user_row(conn, user_id)
            if cfg.require_email_verification:
                await _send_verification(conn, state, user)
            verification = "sent" if cfg.require_email_verification else "not_required"
            return {"user": _user_record(user), "verification": verification}
    except IntegrityError:
        # A concurrent registration took the name between the check and the insert.
        raise conflict("The username or e-mail address is taken", field="username") from None


@router.post("/api/portal/register/verify")
async def verify_email(ctx: RequestContext) -> dict[str, Any]:
    """Activate a pending user with a verification token (single use, 24 hours)."""
    fields = body_fields(ctx)
    token = fields.str("token", min_len=1, max_len=1024)
    throttle.end_user_agent(ctx)
    state = ctx.state
    await _throttle_address(ctx)
    async with state.db.begin() as conn:
        user_id = await _spend_one_time_token(conn, state, token, "verification")
        user = await _user_row(conn, user_id)
        if user is None or user.status != "pending":
            raise invalid("token", "is not valid: the account is not awaiting verification")
        await conn.execute(
            update(identity.users)
            .where(identity.users.c.id == user_id)
            .values(status="active", updated_at=runtime(state).now())
        )
        return {"verified": True, "user": _user_record(await _user_row(conn, user_id))}


@router.post("/api/portal/register/resend-verification")
async def resend_verification(ctx: RequestContext) -> dict[str, Any]:
    """Send a new verification mail to a pending user (earlier links stop working); always ``{sent: true}``.

    Limited like the password-reset request: per end-user address (429) and per mail address (silently).
    """
    fields = body_fields(ctx)
    email = _check_email(fields)
    throttle.end_user_agent(ctx)
    state = ctx.state
    await _throttle_address(ctx)
    if not await throttle.runtime(state).throttle.allow_mail("verification", email):
        return {"sent": True}
    async with state.db.begin() as conn:
        user = await _user_by_email(conn, email)
        if user is not None and user.status == "pending" and user.email:
            await _send_verification(conn, state, user)
    return {"sent": True}


async def issue_invitation(
    conn: AsyncConnection, state: LocalState, user_id: str, *, inviter_name: str | None = None
) -> bool:
    """Send the ``invitation`` mail to an invited user, in the caller's transaction (spec 7.6, 8.10).

    Guardian calls this when it creates a user with status ``invited``. The link carries a single-use token
    valid for 7 days; earlier invitation links of the user stop working. ``inviter_name`` defaults to the
    product name. Returns whether a mail was sent (``False`` when the user has no e-mail address or is not
    ``invited``).
    """
    user = await _user_row(conn, user_id)
    if user is None or user.status != "invited" or not user.email:
        return False
    cfg = config(state)
    token = await _new_one_time_token(conn, state, user.id, "invitation", INVITATION_TOKEN_TTL)
    await courier.send_template(
        conn,
        state,
        template_alias="invitation",
        to=user.email,
        from_email=cfg.mail_from,
        tag="invitation",
        model={
            "name": await _display_name(conn, user),
            "action_url": _link(cfg.invitation_url, token),
            "inviter_name": inviter_name or cfg.product_name,
            "product_name": cfg.product_name,
        },
    )
    return True


@router.post("/api/portal/register/accept-invitation", replay=False)
async def accept_invitation(ctx: RequestContext) -> dict[str, Any]:
    """Set an invited user's password (token single use, 7 days), make them active and sign them in."""
    fields = body_fields(ctx)
    token = fields.str("token", min_len=1, max_len=1024)
    password = _password(fields, "password")
    throttle.end_user_agent(ctx)
    state = ctx.state
    await _throttle_address(ctx)
    hashed = await _bcrypt(state).hash_password(password, config(state).bcrypt_rounds)
    async with state.db.begin() as conn:
        user_id = await _spend_one_time_token(conn, state, token, "invitation")
        user = await _user_row(conn, user_id)
        if user is None or user.status != "invited":
            raise invalid("token", "is not valid: the account is not awaiting an invitation")
        now = runtime(state).now()
        await conn.execute(
            update(identity.users)
            .where(identity.users.c.id == user_id)
            .values(password_hash=hashed, status="active", updated_at=now, last_login_at=now)
        )
        tenant_id = await identity.default_tenant(conn, "user", user_id)
        session_id, refresh = await _open_user_session(conn, state, ctx, user_id, tenant_id)
        return await _login_answer(
            conn, state, user_id=user_id, session_id=session_id, tenant_id=tenant_id, refresh_token=refresh
        )


__all__ = [
    "INVITATION_TOKEN_TTL",
    "REFRESH_TOKEN_TTL",
    "RESET_TOKEN_TTL",
    "VERIFICATION_TOKEN_TTL",
    "PortalRuntime",
    "Subject",
    "check_page_access",
    "issue_invitation",
    "load_subject",
    "navigation",
    "router",
    "runtime",
]
