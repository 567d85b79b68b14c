"""Shapes of the dicts that SDK methods return (spec 3.6): ``TypedDict``s, plain dicts at run time.

Timestamps are RFC 3339 strings (spec 1.5). Servers may add fields; these types list the ones the protocol
promises.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = [
    "Client",
    "ClientList",
    "ClientSession",
    "ClientWithPsk",
    "Deleted",
    "EmailVerified",
    "Jwks",
    "LoggedOut",
    "LoginResult",
    "MailSent",
    "Me",
    "MintedToken",
    "NavItem",
    "NavItemList",
    "NavNode",
    "Navigation",
    "Outbox",
    "OutboxMessage",
    "Page",
    "PageAccess",
    "PageList",
    "PasswordChanged",
    "PasswordUpdated",
    "Preferences",
    "Profile",
    "Registered",
    "ResetConfirmed",
    "ResetRequested",
    "Role",
    "RoleList",
    "Scope",
    "ScopeList",
    "SecureTable",
    "SecureTableList",
    "SessionInfo",
    "SessionList",
    "SessionRevoked",
    "SessionsRevoked",
    "Subtype",
    "SubtypeList",
    "Tenant",
    "TenantCategory",
    "TenantCategoryList",
    "TenantList",
    "TenantSummary",
    "TenantSwitched",
    "User",
    "UserCreated",
    "UserList",
    "Validity",
    "VerificationResent",
]


# --- Guardian records (spec 7.6) ------------------------------------------------------------------------


class User(TypedDict):
    id: str
    username: str
    email: str | None
    status: str
    """``active``, ``inactive``, ``suspended``, ``pending`` or ``invited``."""
    created_at: str
    updated_at: str
    last_login_at: str | None


class UserCreated(User):
    invitation_sent: bool
    """Whether the ``invitation`` e-mail was sent (users created with status ``invited``)."""


class Role(TypedDict):
    id: str
    name: str
    description: str | None
    created_at: str
    updated_at: str


class Scope(TypedDict):
    id: str
    slug: str
    display_name: str
    description: str | None
    created_at: str
    updated_at: str


class Client(TypedDict):
    id: str
    label: str
    description: str | None
    status: str
    """``active`` or ``inactive``."""
    is_bootstrap: bool
    created_at: str
    updated_at: str
    last_used_at: str | None


class ClientWithPsk(Client):
    psk: str
    """The client's PSK, shown only in this answer (``create_client``, ``regenerate_psk``)."""


class Tenant(TypedDict):
    id: str
    name: str
    slug: str
    display_name: str | None
    description: str | None
    category_id: str | None
    status: str
    created_at: str
    updated_at: str


class TenantCategory(TypedDict):
    id: str
    name: str
    slug: str
    description: str | None
    color: str
    created_at: str
    updated_at: str


class Subtype(TypedDict):
    id: str
    name: str
    slug: str
    description: str | None
    created_at: str
    updated_at: str


class Page(TypedDict):
    id: str
    path: str
    name: str
    description: str | None
    is_active: bool
    show_in_nav: bool
    created_at: str
    updated_at: str


class NavItem(TypedDict):
    id: str
    title: str
    icon: str | None
    description: str | None
    page_id: str | None
    parent_id: str | None
    item_type: str
    """``link``, ``header`` or ``group_label``."""
    is_active: bool
    sort_order: int
    is_expanded_default: bool
    created_at: str
    updated_at: str


class SecureTable(TypedDict):
    id: str
    schema_name: str
    table_name: str
    created_at: str


# Offset pages and junction answers: ``{items, total}`` (spec 3.4, 7.6).


class UserList(TypedDict):
    items: list[User]
    total: int


class RoleList(TypedDict):
    items: list[Role]
    total: int


class ScopeList(TypedDict):
    items: list[Scope]
    total: int


class ClientList(TypedDict):
    items: list[Client]
    total: int


class TenantList(TypedDict):
    items: list[Tenant]
    total: int


class TenantCategoryList(TypedDict):
    items: list[TenantCategory]
    total: int


class SubtypeList(TypedDict):
    items: list[Subtype]
    total: int


class PageList(TypedDict):
    items: list[Page]
    total: int


class NavItemList(TypedDict):
    items: list[NavItem]
    total: int


class SecureTableList(TypedDict):
    items: list[SecureTable]
    total: int


class Deleted(TypedDict):
    deleted: bool
    id: str


class PasswordUpdated(TypedDict):
    updated: bool
    user_id: str


class Validity(TypedDict):
    valid: bool


# --- tokens and keys (spec 5.2-5.4, 7.1) ----------------------------------------------------------------


class Jwks(TypedDict):
    keys: list[dict[str, Any]]
    """JWKs: ``kty``, ``use``, ``alg``, ``kid``, ``n``, ``e``."""


class MintedToken(TypedDict):
    access_token: str
    token_type: str
    expires_in: int
    session_id: str


# --- Portal (spec 5.7, 7.9, 8.8, 8.9) -------------------------------------------------------------------


class TenantSummary(TypedDict):
    """The short tenant form of Portal answers."""

    id: str
    slug: str
    name: str
    display_name: str | None
    category_id: str | None


class LoginResult(TypedDict):
    """``portal.login``, ``portal.refresh`` and ``portal.accept_invitation`` (spec 5.7)."""

    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    """Opaque, single use, valid 30 days; each refresh replaces it."""
    session_id: str
    user: User
    tenant: TenantSummary | None
    tenants: list[TenantSummary]


class ClientSession(TypedDict):
    """``portal.login_client``: a client session token (no refresh token)."""

    access_token: str
    token_type: str
    expires_in: int
    session_id: str


class LoggedOut(TypedDict):
    logged_out: bool
    session_id: str


class Me(TypedDict):
    """``portal.me``: the token's subject with its current effective access (spec 7.9)."""

    subject_type: str
    user: User | None
    client: Client | None
    tenant: TenantSummary | None
    tenants: list[TenantSummary]
    scopes: list[str]
    roles: list[str]
    subtypes: list[str]
    session_id: str | None


class TenantSwitched(TypedDict):
    access_token: str
    token_type: str
    expires_in: int
    session_id: str
    tenant: TenantSummary


class PasswordChanged(TypedDict):
    changed: bool
    revoked_sessions: int


class ResetRequested(TypedDict):
    requested: bool


class ResetConfirmed(TypedDict):
    reset: bool


class SessionInfo(TypedDict):
    id: str
    subject_type: str
    created_at: str
    last_seen_at: str | None
    expires_at: str
    user_agent: str | None
    ip_address: str | None
    current: bool


class SessionList(TypedDict):
    items: list[SessionInfo]
    total: int


class SessionRevoked(TypedDict):
    revoked: bool
    session_id: str


class SessionsRevoked(TypedDict):
    revoked_count: int


class Profile(TypedDict):
    user_id: str
    display_name: str | None
    avatar_url: str | None
    bio: str | None
    phone: str | None
    extra: dict[str, Any]
    updated_at: str


class Preferences(TypedDict):
    theme: str
    """``system``, ``light`` or ``dark``."""
    language: str
    timezone: str
    sidebar_collapsed: bool
    notifications_enabled: bool
    email_notifications: bool
    extra: dict[str, Any]
    updated_at: str


class NavNode(TypedDict):
    """One node of the navigation tree (spec 8.9)."""

    id: str
    title: str
    icon: str | None
    description: str | None
    item_type: str
    page_id: str | None
    path: str | None
    sort_order: int
    is_expanded_default: bool
    children: list[NavNode]


class Navigation(TypedDict):
    items: list[NavNode]


class PageAccess(TypedDict):
    """``portal.check_page_access`` (spec 8.8)."""

    allowed: bool
    reason: str
    """``allowed``, ``page_not_found``, ``page_inactive``, ``tenant_not_allowed``, ``missing_scope``,
    ``excluded_scope`` or ``excluded_role``."""
    page_id: str | None


class Registered(TypedDict):
    user: User
    verification: str
    """``sent``, or ``not_required`` on a server configured without e-mail verification."""


class EmailVerified(TypedDict):
    verified: bool
    user: User


class VerificationResent(TypedDict):
    sent: bool


# --- Courier (spec 7.10) ----------------------------------------------------------------------------------

OutboxMessage = TypedDict(
    "OutboxMessage",
    {
        "message_id": str,
        "to": str,
        "from": str,
        "template_alias": str,
        "subject": str,
        "text_body": str,
        "html_body": str,
        "model": dict[str, Any],
        "submitted_at": str,
        "delivered": bool,
        "delivery_error": str | None,
    },
)
"""One outbox message (``from`` is a keyword, hence the functional form)."""


class MailSent(TypedDict):
    to: str
    message_id: str
    submitted_at: str


class Outbox(TypedDict):
    items: list[OutboxMessage]
    total: int
