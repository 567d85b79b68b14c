"""Shapes of the dicts that SDK methods return (spec 3.6): ``TypedDict``s, plain dicts at run time.

Timestamps are RFC 3339 strings (spec 1.5). Servers may add fields; these types list the ones the protocol
promises.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = [
    "Client",
    "ClientList",
    "ClientWithPsk",
    "Deleted",
    "Jwks",
    "MintedToken",
    "NavItem",
    "NavItemList",
    "Page",
    "PageList",
    "PasswordUpdated",
    "Role",
    "RoleList",
    "Scope",
    "ScopeList",
    "SecureTable",
    "SecureTableList",
    "Subtype",
    "SubtypeList",
    "Tenant",
    "TenantCategory",
    "TenantCategoryList",
    "TenantList",
    "User",
    "UserCreated",
    "UserList",
    "Validity",
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
