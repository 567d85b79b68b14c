"""Guardian identities and access control (spec 7.6), application-minted user tokens and the key set.

Every Guardian method is admin only on the server: the client's PSK must belong to an administrator client.
Path ids and id lists are checked to be UUIDs before sending (``ValidationError``), so that a malformed id
can never change the request's path. PUT updates send only the arguments passed: the default ``UNSET``
leaves an attribute alone and an explicit ``None`` clears it (spec 7.6).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

from dominus_fastapi.core.errors import ConflictError, NotFoundError, ValidationError
from dominus_fastapi.core.namespaces.base import UNSET, Namespace, Requester, Unset, compact, update_fields
from dominus_fastapi.core.types import (
    Client,
    ClientList,
    ClientWithPsk,
    Deleted,
    Jwks,
    MintedToken,
    NavItem,
    NavItemList,
    Page,
    PageList,
    PasswordUpdated,
    Role,
    RoleList,
    Scope,
    ScopeList,
    SecureTable,
    SecureTableList,
    Subtype,
    SubtypeList,
    Tenant,
    TenantCategory,
    TenantCategoryList,
    TenantList,
    User,
    UserCreated,
    UserList,
    Validity,
)

JWKS_TTL_SECONDS = 3600.0
"""How long ``auth.get_jwks`` keeps the key set on the client object (spec 7.6)."""
_SCOPE_PAGE = 1000


class _LocalValidator(Protocol):
    async def validate_jwt(
        self,
        token: str,
        *,
        audience: str | Sequence[str] | None = None,
        leeway: float = 0,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> dict[str, Any]: ...


def _uuid(field: str, value: Any) -> str:
    """``value`` as a canonical UUID string, else ``ValidationError`` naming ``field``."""
    if isinstance(value, str) and len(value) == 36:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise ValidationError(f"'{field}' must be a UUID", details={"field": field, "reason": "must be a UUID"})


def _optional_uuid(field: str, value: Any) -> None:
    if value is not None and value is not UNSET:
        _uuid(field, value)


def _uuid_list(field: str, values: Sequence[str] | None) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        raise ValidationError(
            f"'{field}' must be a list of UUIDs, not a string", details={"field": field, "reason": "must be a list"}
        )
    return [_uuid(f"{field}[{index}]", value) for index, value in enumerate(values)]


def _step_key(base: str | None, step: int) -> str | None:
    """The idempotency key of a multi-request method's ``step``-th unsafe request (spec 3.5)."""
    return None if base is None else f"{base}:{step}"


class AuthNamespace(Namespace):
    """Guardian identities and access control (spec 7.6), ``mint_jwt``, the key set and local token checks."""

    __slots__ = ("_clock", "_jwks", "_jwks_at")

    def __init__(self, client: Requester, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(client)
        self._clock = clock
        self._jwks: Jwks | None = None
        self._jwks_at = 0.0

    # --- README forms and tokens ------------------------------------------------------------------------

    async def add_user(
        self,
        username: str,
        password: str,
        email: str | None = None,
        *,
        role_id: str | None = None,
        status: str = "active",
        inviter_name: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> User:
        """Create a user and, when ``role_id`` is given, link that role; returns the user record.

        Sends ``create_user`` then ``add_user_roles``. Their idempotency keys derive from one base key
        (``<key>:1``, ``<key>:2``), so a retried ``add_user`` with the same key never creates a second user.
        """
        if role_id is not None:
            _uuid("role_id", role_id)
        base = idempotency_key or str(uuid.uuid4())
        user = await self.create_user(
            username,
            email,
            password=password,
            status=status,
            inviter_name=inviter_name,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=_step_key(base, 1),
        )
        if role_id is not None:
            await self.add_user_roles(
                user["id"], [role_id], timeout=timeout, max_retries=max_retries, idempotency_key=_step_key(base, 2)
            )
        record = dict(user)
        record.pop("invitation_sent", None)
        return cast(User, record)

    async def add_role(
        self,
        name: str,
        scope_slugs: Sequence[str] | None = None,
        description: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> Role:
        """Create a role holding the scopes named by ``scope_slugs``; returns the role record.

        Every slug is resolved through ``list_scopes`` (all pages) first: an unknown slug raises
        ``NotFoundError`` (``details.missing``) before anything is created. Then ``create_role`` and, when there
        are scopes, ``add_role_scopes`` are sent with idempotency keys ``<key>:1`` and ``<key>:2``.
        """
        if isinstance(scope_slugs, str):
            raise ValidationError(
                "'scope_slugs' must be a list of scope slugs, not a string",
                details={"field": "scope_slugs", "reason": "must be a list"},
            )
        wanted = list(dict.fromkeys(scope_slugs or ()))
        scope_ids: list[str] = []
        if wanted:
            by_slug: dict[str, str] = {}
            offset = 0
            while True:
                page = await self.list_scopes(
                    limit=_SCOPE_PAGE, offset=offset, timeout=timeout, max_retries=max_retries
                )
                for scope in page["items"]:
                    by_slug[scope["slug"]] = scope["id"]
                offset += len(page["items"])
                if not page["items"] or offset >= page["total"]:
                    break
            missing = [slug for slug in wanted if slug not in by_slug]
            if missing:
                raise NotFoundError(
                    f"Unknown scope slug(s): {', '.join(missing)}",
                    details={"field": "scope_slugs", "missing": missing},
                )
            scope_ids = [by_slug[slug] for slug in wanted]
        base = idempotency_key or str(uuid.uuid4())
        role = await self.create_role(
            name,
            description=description,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=_step_key(base, 1),
        )
        if scope_ids:
            await self.add_role_scopes(
                role["id"], scope_ids, timeout=timeout, max_retries=max_retries, idempotency_key=_step_key(base, 2)
            )
        return role

    async def mint_jwt(
        self,
        user_id: str,
        expires_in: int = 900,
        scopes: Sequence[str] | None = None,
        tenant_id: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> MintedToken:
        """Mint a user session token for an application (spec 5.7); the caller must be an admin client.

        ``POST {gateway}/jwt/mint`` with the PSK. ``scopes`` narrows the token (a slug the user does not hold
        gets ``AuthorizationError`` with ``details.missing``); ``expires_in`` is 60 to 3600 seconds;
        ``tenant_id`` (UUID or slug) picks the active tenant. A session that ends with the token is opened.
        """
        if isinstance(scopes, str):
            scopes = scopes.split()
        params = compact(
            user_id=_uuid("user_id", user_id),
            scope=list(scopes) if scopes is not None else None,
            system="user",
            expires_in=expires_in,
            tenant_id=tenant_id,
        )
        data = await self._client.request(
            "POST",
            "/jwt/mint",
            body={"method": "auth.mint", "params": params},
            auth="psk",
            host="gateway",
            safe=False,
            replay=False,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(MintedToken, data)

    async def get_jwks(
        self,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Jwks:
        """The key set (``GET /api/warden/jwks``), kept on this client object for an hour.

        Any service token may read it; it is not a Guardian endpoint.
        """
        now = self._clock()
        if self._jwks is not None and now - self._jwks_at < JWKS_TTL_SECONDS:
            return self._jwks
        data = await self._client.request(
            "GET", "/api/warden/jwks", safe=True, timeout=timeout, max_retries=max_retries
        )
        keys = data if isinstance(data, dict) and "keys" in data else {"keys": []}
        self._jwks = cast(Jwks, keys)
        self._jwks_at = now
        return self._jwks

    async def validate_jwt(
        self,
        token: str,
        *,
        audience: str | Sequence[str] | None = None,
        leeway: float = 0,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> dict[str, Any]:
        """Check a token locally against the gateway's cached key set and return its claims (spec 5.10).

        The same check as the client's root ``validate_jwt``: RS256 only, ``exp``/``nbf`` enforced with
        ``leeway`` seconds, ``aud`` checked only when ``audience`` is given, no server round trip beyond the
        cached key-set fetch. A local check cannot see a revoked session. Raises ``AuthenticationError``
        (``invalid_token`` or ``token_expired``). ``timeout`` and ``max_retries`` are accepted for uniformity,
        as on the root method.
        """
        validator = cast(_LocalValidator, self._client)
        return await validator.validate_jwt(
            token, audience=audience, leeway=leeway, timeout=timeout, max_retries=max_retries
        )

    # --- Guardian endpoints (spec 7.6) -------------------------------------------------------------------

    async def create_user(
        self,
        username: str,
        email: str | None,
        password: str | None = None,
        status: str = "active",
        inviter_name: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> UserCreated:
        """Create a user.

        ``POST /api/guardian/users``, admin only.

        ``password`` is required unless ``status`` is ``"invited"``; an invited user needs an ``email``
        and is sent the ``invitation`` e-mail (``invitation_sent`` in the answer).
        """
        data = await self._client.request(
            "POST",
            "/api/guardian/users",
            body=compact(username=username, email=email, password=password, status=status, inviter_name=inviter_name),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(UserCreated, data)

    async def get_user(
        self,
        user_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> User:
        """Read one user.

        ``GET /api/guardian/users/{user_id}``, admin only.
        """
        user_id_ = _uuid("user_id", user_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/users/{user_id_}",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(User, data)

    async def list_users(
        self,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str = "created_at",
        order_desc: bool = True,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> UserList:
        """One page of users (``{items, total}``).

        ``GET /api/guardian/users``, admin only.

        Ordered by ``order_by`` (``created_at``, ``updated_at``, ``username``, ``email``), newest first
        unless ``order_desc=False``; ties broken by id.
        """
        data = await self._client.request(
            "GET",
            "/api/guardian/users",
            params=compact(status=status, limit=limit, offset=offset, order_by=order_by, order_desc=order_desc),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(UserList, data)

    async def update_user(
        self,
        user_id: str,
        username: str | Unset | None = UNSET,
        email: str | Unset | None = UNSET,
        status: str | Unset | None = UNSET,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> User:
        """Change a user: only the arguments passed are sent; an explicit ``None`` clears the attribute.

        ``PUT /api/guardian/users/{user_id}``, admin only.

        Moving ``status`` away from ``active`` revokes the user's sessions.
        """
        user_id_ = _uuid("user_id", user_id)
        data = await self._client.request(
            "PUT",
            f"/api/guardian/users/{user_id_}",
            body=update_fields(username=username, email=email, status=status),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(User, data)

    async def delete_user(
        self,
        user_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Deleted:
        """Delete a user and its links.

        ``DELETE /api/guardian/users/{user_id}``, admin only.

        The user's sessions are revoked.
        """
        user_id_ = _uuid("user_id", user_id)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/users/{user_id_}",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Deleted, data)

    async def update_password(
        self,
        user_id: str,
        password: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> PasswordUpdated:
        """Set a user's password (8 to 72 UTF-8 bytes); every session of the user is revoked.

        ``PUT /api/guardian/users/{user_id}/password``, admin only.
        """
        user_id_ = _uuid("user_id", user_id)
        data = await self._client.request(
            "PUT",
            f"/api/guardian/users/{user_id_}/password",
            body=compact(password=password),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(PasswordUpdated, data)

    async def verify_password(
        self,
        user_id: str,
        password: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Validity:
        """Whether ``password`` is the user's password (``{valid}``); changes nothing.

        ``POST /api/guardian/users/{user_id}/verify-password``, admin only.
        """
        user_id_ = _uuid("user_id", user_id)
        data = await self._client.request(
            "POST",
            f"/api/guardian/users/{user_id_}/verify-password",
            body=compact(password=password),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Validity, data)

    async def get_user_roles(
        self,
        user_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> RoleList:
        """List the linked roles of a user.

        ``GET /api/guardian/users/{user_id}/roles``, admin only.
        """
        user_id_ = _uuid("user_id", user_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/users/{user_id_}/roles",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(RoleList, data)

    async def add_user_roles(
        self,
        user_id: str,
        role_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> RoleList:
        """Link roles to a user (ids already linked are ignored).

        ``POST /api/guardian/users/{user_id}/roles``, admin only.
        """
        user_id_ = _uuid("user_id", user_id)
        role_ids_ = _uuid_list("role_ids", role_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/users/{user_id_}/roles",
            body=compact(role_ids=role_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(RoleList, data)

    async def remove_user_roles(
        self,
        user_id: str,
        role_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> RoleList:
        """Unlink roles from a user (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/users/{user_id}/roles``, admin only.
        """
        user_id_ = _uuid("user_id", user_id)
        role_ids_ = _uuid_list("role_ids", role_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/users/{user_id_}/roles",
            body=compact(role_ids=role_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(RoleList, data)

    async def get_user_scopes(
        self,
        user_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ScopeList:
        """List the linked scopes of a user.

        ``GET /api/guardian/users/{user_id}/scopes``, admin only.
        """
        user_id_ = _uuid("user_id", user_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/users/{user_id_}/scopes",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ScopeList, data)

    async def add_user_scopes(
        self,
        user_id: str,
        scope_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> ScopeList:
        """Link scopes to a user (ids already linked are ignored).

        ``POST /api/guardian/users/{user_id}/scopes``, admin only.
        """
        user_id_ = _uuid("user_id", user_id)
        scope_ids_ = _uuid_list("scope_ids", scope_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/users/{user_id_}/scopes",
            body=compact(scope_ids=scope_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(ScopeList, data)

    async def remove_user_scopes(
        self,
        user_id: str,
        scope_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ScopeList:
        """Unlink scopes from a user (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/users/{user_id}/scopes``, admin only.
        """
        user_id_ = _uuid("user_id", user_id)
        scope_ids_ = _uuid_list("scope_ids", scope_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/users/{user_id_}/scopes",
            body=compact(scope_ids=scope_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ScopeList, data)

    async def get_user_tenants(
        self,
        user_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantList:
        """List the linked tenants of a user.

        ``GET /api/guardian/users/{user_id}/tenants``, admin only.
        """
        user_id_ = _uuid("user_id", user_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/users/{user_id_}/tenants",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantList, data)

    async def add_user_tenants(
        self,
        user_id: str,
        tenant_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> TenantList:
        """Link tenants to a user (ids already linked are ignored).

        ``POST /api/guardian/users/{user_id}/tenants``, admin only.
        """
        user_id_ = _uuid("user_id", user_id)
        tenant_ids_ = _uuid_list("tenant_ids", tenant_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/users/{user_id_}/tenants",
            body=compact(tenant_ids=tenant_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(TenantList, data)

    async def remove_user_tenants(
        self,
        user_id: str,
        tenant_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantList:
        """Unlink tenants from a user (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/users/{user_id}/tenants``, admin only.
        """
        user_id_ = _uuid("user_id", user_id)
        tenant_ids_ = _uuid_list("tenant_ids", tenant_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/users/{user_id_}/tenants",
            body=compact(tenant_ids=tenant_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantList, data)

    async def get_user_subtypes(
        self,
        user_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> SubtypeList:
        """List the linked subtypes of a user.

        ``GET /api/guardian/users/{user_id}/subtypes``, admin only.
        """
        user_id_ = _uuid("user_id", user_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/users/{user_id_}/subtypes",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(SubtypeList, data)

    async def add_user_subtypes(
        self,
        user_id: str,
        subtype_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> SubtypeList:
        """Link subtypes to a user (ids already linked are ignored).

        ``POST /api/guardian/users/{user_id}/subtypes``, admin only.
        """
        user_id_ = _uuid("user_id", user_id)
        subtype_ids_ = _uuid_list("subtype_ids", subtype_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/users/{user_id_}/subtypes",
            body=compact(subtype_ids=subtype_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(SubtypeList, data)

    async def remove_user_subtypes(
        self,
        user_id: str,
        subtype_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> SubtypeList:
        """Unlink subtypes from a user (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/users/{user_id}/subtypes``, admin only.
        """
        user_id_ = _uuid("user_id", user_id)
        subtype_ids_ = _uuid_list("subtype_ids", subtype_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/users/{user_id_}/subtypes",
            body=compact(subtype_ids=subtype_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(SubtypeList, data)

    async def create_role(
        self,
        name: str,
        description: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> Role:
        """Create a role.

        ``POST /api/guardian/roles``, admin only.
        """
        data = await self._client.request(
            "POST",
            "/api/guardian/roles",
            body=compact(name=name, description=description),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(Role, data)

    async def get_role(
        self,
        role_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Role:
        """Read one role.

        ``GET /api/guardian/roles/{role_id}``, admin only.
        """
        role_id_ = _uuid("role_id", role_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/roles/{role_id_}",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Role, data)

    async def list_roles(
        self,
        limit: int = 100,
        offset: int = 0,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> RoleList:
        """One page of roles (``{items, total}``).

        ``GET /api/guardian/roles``, admin only.
        """
        data = await self._client.request(
            "GET",
            "/api/guardian/roles",
            params=compact(limit=limit, offset=offset),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(RoleList, data)

    async def update_role(
        self,
        role_id: str,
        name: str | Unset | None = UNSET,
        description: str | Unset | None = UNSET,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Role:
        """Change a role: only the arguments passed are sent; an explicit ``None`` clears the attribute.

        ``PUT /api/guardian/roles/{role_id}``, admin only.
        """
        role_id_ = _uuid("role_id", role_id)
        data = await self._client.request(
            "PUT",
            f"/api/guardian/roles/{role_id_}",
            body=update_fields(name=name, description=description),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Role, data)

    async def delete_role(
        self,
        role_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Deleted:
        """Delete a role and its links.

        ``DELETE /api/guardian/roles/{role_id}``, admin only.
        """
        role_id_ = _uuid("role_id", role_id)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/roles/{role_id_}",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Deleted, data)

    async def get_role_scopes(
        self,
        role_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ScopeList:
        """List the linked scopes of a role.

        ``GET /api/guardian/roles/{role_id}/scopes``, admin only.
        """
        role_id_ = _uuid("role_id", role_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/roles/{role_id_}/scopes",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ScopeList, data)

    async def add_role_scopes(
        self,
        role_id: str,
        scope_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> ScopeList:
        """Link scopes to a role (ids already linked are ignored).

        ``POST /api/guardian/roles/{role_id}/scopes``, admin only.
        """
        role_id_ = _uuid("role_id", role_id)
        scope_ids_ = _uuid_list("scope_ids", scope_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/roles/{role_id_}/scopes",
            body=compact(scope_ids=scope_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(ScopeList, data)

    async def remove_role_scopes(
        self,
        role_id: str,
        scope_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ScopeList:
        """Unlink scopes from a role (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/roles/{role_id}/scopes``, admin only.
        """
        role_id_ = _uuid("role_id", role_id)
        scope_ids_ = _uuid_list("scope_ids", scope_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/roles/{role_id_}/scopes",
            body=compact(scope_ids=scope_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ScopeList, data)

    async def get_role_tenants(
        self,
        role_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantList:
        """List the linked tenants of a role.

        ``GET /api/guardian/roles/{role_id}/tenants``, admin only.
        """
        role_id_ = _uuid("role_id", role_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/roles/{role_id_}/tenants",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantList, data)

    async def add_role_tenants(
        self,
        role_id: str,
        tenant_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> TenantList:
        """Link tenants to a role (ids already linked are ignored).

        ``POST /api/guardian/roles/{role_id}/tenants``, admin only.
        """
        role_id_ = _uuid("role_id", role_id)
        tenant_ids_ = _uuid_list("tenant_ids", tenant_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/roles/{role_id_}/tenants",
            body=compact(tenant_ids=tenant_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(TenantList, data)

    async def remove_role_tenants(
        self,
        role_id: str,
        tenant_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantList:
        """Unlink tenants from a role (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/roles/{role_id}/tenants``, admin only.
        """
        role_id_ = _uuid("role_id", role_id)
        tenant_ids_ = _uuid_list("tenant_ids", tenant_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/roles/{role_id_}/tenants",
            body=compact(tenant_ids=tenant_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantList, data)

    async def get_role_categories(
        self,
        role_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantCategoryList:
        """List the linked categories of a role.

        ``GET /api/guardian/roles/{role_id}/categories``, admin only.
        """
        role_id_ = _uuid("role_id", role_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/roles/{role_id_}/categories",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantCategoryList, data)

    async def add_role_categories(
        self,
        role_id: str,
        category_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> TenantCategoryList:
        """Link categories to a role (ids already linked are ignored).

        ``POST /api/guardian/roles/{role_id}/categories``, admin only.
        """
        role_id_ = _uuid("role_id", role_id)
        category_ids_ = _uuid_list("category_ids", category_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/roles/{role_id_}/categories",
            body=compact(category_ids=category_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(TenantCategoryList, data)

    async def remove_role_categories(
        self,
        role_id: str,
        category_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantCategoryList:
        """Unlink categories from a role (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/roles/{role_id}/categories``, admin only.
        """
        role_id_ = _uuid("role_id", role_id)
        category_ids_ = _uuid_list("category_ids", category_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/roles/{role_id_}/categories",
            body=compact(category_ids=category_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantCategoryList, data)

    async def get_role_subtypes(
        self,
        role_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> SubtypeList:
        """List the linked subtypes of a role.

        ``GET /api/guardian/roles/{role_id}/subtypes``, admin only.
        """
        role_id_ = _uuid("role_id", role_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/roles/{role_id_}/subtypes",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(SubtypeList, data)

    async def add_role_subtypes(
        self,
        role_id: str,
        subtype_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> SubtypeList:
        """Link subtypes to a role (ids already linked are ignored).

        ``POST /api/guardian/roles/{role_id}/subtypes``, admin only.
        """
        role_id_ = _uuid("role_id", role_id)
        subtype_ids_ = _uuid_list("subtype_ids", subtype_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/roles/{role_id_}/subtypes",
            body=compact(subtype_ids=subtype_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(SubtypeList, data)

    async def remove_role_subtypes(
        self,
        role_id: str,
        subtype_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> SubtypeList:
        """Unlink subtypes from a role (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/roles/{role_id}/subtypes``, admin only.
        """
        role_id_ = _uuid("role_id", role_id)
        subtype_ids_ = _uuid_list("subtype_ids", subtype_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/roles/{role_id_}/subtypes",
            body=compact(subtype_ids=subtype_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(SubtypeList, data)

    async def create_scope(
        self,
        slug: str,
        display_name: str,
        description: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> Scope:
        """Create a scope.

        ``POST /api/guardian/scopes``, admin only.
        """
        data = await self._client.request(
            "POST",
            "/api/guardian/scopes",
            body=compact(slug=slug, display_name=display_name, description=description),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(Scope, data)

    async def get_scope(
        self,
        scope_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Scope:
        """Read one scope.

        ``GET /api/guardian/scopes/{scope_id}``, admin only.
        """
        scope_id_ = _uuid("scope_id", scope_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/scopes/{scope_id_}",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Scope, data)

    async def list_scopes(
        self,
        limit: int = 100,
        offset: int = 0,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ScopeList:
        """One page of scopes (``{items, total}``).

        ``GET /api/guardian/scopes``, admin only.
        """
        data = await self._client.request(
            "GET",
            "/api/guardian/scopes",
            params=compact(limit=limit, offset=offset),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ScopeList, data)

    async def update_scope(
        self,
        scope_id: str,
        slug: str | Unset | None = UNSET,
        display_name: str | Unset | None = UNSET,
        description: str | Unset | None = UNSET,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Scope:
        """Change a scope: only the arguments passed are sent; an explicit ``None`` clears the attribute.

        ``PUT /api/guardian/scopes/{scope_id}``, admin only.
        """
        scope_id_ = _uuid("scope_id", scope_id)
        data = await self._client.request(
            "PUT",
            f"/api/guardian/scopes/{scope_id_}",
            body=update_fields(slug=slug, display_name=display_name, description=description),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Scope, data)

    async def delete_scope(
        self,
        scope_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Deleted:
        """Delete a scope and its links.

        ``DELETE /api/guardian/scopes/{scope_id}``, admin only.
        """
        scope_id_ = _uuid("scope_id", scope_id)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/scopes/{scope_id_}",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Deleted, data)

    async def get_scope_tenants(
        self,
        scope_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantList:
        """List the linked tenants of a scope.

        ``GET /api/guardian/scopes/{scope_id}/tenants``, admin only.
        """
        scope_id_ = _uuid("scope_id", scope_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/scopes/{scope_id_}/tenants",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantList, data)

    async def add_scope_tenants(
        self,
        scope_id: str,
        tenant_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> TenantList:
        """Link tenants to a scope (ids already linked are ignored).

        ``POST /api/guardian/scopes/{scope_id}/tenants``, admin only.
        """
        scope_id_ = _uuid("scope_id", scope_id)
        tenant_ids_ = _uuid_list("tenant_ids", tenant_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/scopes/{scope_id_}/tenants",
            body=compact(tenant_ids=tenant_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(TenantList, data)

    async def remove_scope_tenants(
        self,
        scope_id: str,
        tenant_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantList:
        """Unlink tenants from a scope (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/scopes/{scope_id}/tenants``, admin only.
        """
        scope_id_ = _uuid("scope_id", scope_id)
        tenant_ids_ = _uuid_list("tenant_ids", tenant_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/scopes/{scope_id_}/tenants",
            body=compact(tenant_ids=tenant_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantList, data)

    async def get_scope_categories(
        self,
        scope_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantCategoryList:
        """List the linked categories of a scope.

        ``GET /api/guardian/scopes/{scope_id}/categories``, admin only.
        """
        scope_id_ = _uuid("scope_id", scope_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/scopes/{scope_id_}/categories",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantCategoryList, data)

    async def add_scope_categories(
        self,
        scope_id: str,
        category_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> TenantCategoryList:
        """Link categories to a scope (ids already linked are ignored).

        ``POST /api/guardian/scopes/{scope_id}/categories``, admin only.
        """
        scope_id_ = _uuid("scope_id", scope_id)
        category_ids_ = _uuid_list("category_ids", category_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/scopes/{scope_id_}/categories",
            body=compact(category_ids=category_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(TenantCategoryList, data)

    async def remove_scope_categories(
        self,
        scope_id: str,
        category_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantCategoryList:
        """Unlink categories from a scope (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/scopes/{scope_id}/categories``, admin only.
        """
        scope_id_ = _uuid("scope_id", scope_id)
        category_ids_ = _uuid_list("category_ids", category_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/scopes/{scope_id_}/categories",
            body=compact(category_ids=category_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantCategoryList, data)

    async def create_client(
        self,
        label: str,
        description: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ClientWithPsk:
        """Create a client.

        ``POST /api/guardian/clients``, admin only.

        The answer carries the new ``psk``, shown only this once: store it now.
        """
        data = await self._client.request(
            "POST",
            "/api/guardian/clients",
            body=compact(label=label, description=description),
            safe=False,
            replay=False,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ClientWithPsk, data)

    async def get_client(
        self,
        client_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Client:
        """Read one client.

        ``GET /api/guardian/clients/{client_id}``, admin only.
        """
        client_id_ = _uuid("client_id", client_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/clients/{client_id_}",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Client, data)

    async def list_clients(
        self,
        limit: int = 100,
        offset: int = 0,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ClientList:
        """One page of clients (``{items, total}``).

        ``GET /api/guardian/clients``, admin only.
        """
        data = await self._client.request(
            "GET",
            "/api/guardian/clients",
            params=compact(limit=limit, offset=offset),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ClientList, data)

    async def update_client(
        self,
        client_id: str,
        label: str | Unset | None = UNSET,
        description: str | Unset | None = UNSET,
        status: str | Unset | None = UNSET,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Client:
        """Change a client: only the arguments passed are sent; an explicit ``None`` clears the attribute.

        ``PUT /api/guardian/clients/{client_id}``, admin only.
        """
        client_id_ = _uuid("client_id", client_id)
        data = await self._client.request(
            "PUT",
            f"/api/guardian/clients/{client_id_}",
            body=update_fields(label=label, description=description, status=status),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Client, data)

    async def delete_client(
        self,
        client_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Deleted:
        """Delete a client and its links.

        ``DELETE /api/guardian/clients/{client_id}``, admin only.
        """
        client_id_ = _uuid("client_id", client_id)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/clients/{client_id_}",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Deleted, data)

    async def regenerate_psk(
        self,
        client_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ClientWithPsk:
        """Give a client a new PSK, returned only in this answer; the old PSK stops working at once.

        ``POST /api/guardian/clients/{client_id}/regenerate-psk``, admin only.
        """
        client_id_ = _uuid("client_id", client_id)
        data = await self._client.request(
            "POST",
            f"/api/guardian/clients/{client_id_}/regenerate-psk",
            safe=False,
            replay=False,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ClientWithPsk, data)

    async def verify_psk(
        self,
        client_id: str,
        psk: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Validity:
        """Whether ``psk`` is the client's current PSK (``{valid}``); changes nothing.

        ``POST /api/guardian/clients/{client_id}/verify-psk``, admin only.
        """
        client_id_ = _uuid("client_id", client_id)
        data = await self._client.request(
            "POST",
            f"/api/guardian/clients/{client_id_}/verify-psk",
            body=compact(psk=psk),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Validity, data)

    async def get_client_tenants(
        self,
        client_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantList:
        """List the linked tenants of a client.

        ``GET /api/guardian/clients/{client_id}/tenants``, admin only.
        """
        client_id_ = _uuid("client_id", client_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/clients/{client_id_}/tenants",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantList, data)

    async def add_client_tenants(
        self,
        client_id: str,
        tenant_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> TenantList:
        """Link tenants to a client (ids already linked are ignored).

        ``POST /api/guardian/clients/{client_id}/tenants``, admin only.
        """
        client_id_ = _uuid("client_id", client_id)
        tenant_ids_ = _uuid_list("tenant_ids", tenant_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/clients/{client_id_}/tenants",
            body=compact(tenant_ids=tenant_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(TenantList, data)

    async def remove_client_tenants(
        self,
        client_id: str,
        tenant_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantList:
        """Unlink tenants from a client (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/clients/{client_id}/tenants``, admin only.
        """
        client_id_ = _uuid("client_id", client_id)
        tenant_ids_ = _uuid_list("tenant_ids", tenant_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/clients/{client_id_}/tenants",
            body=compact(tenant_ids=tenant_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantList, data)

    async def get_client_roles(
        self,
        client_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> RoleList:
        """List the linked roles of a client.

        ``GET /api/guardian/clients/{client_id}/roles``, admin only.
        """
        client_id_ = _uuid("client_id", client_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/clients/{client_id_}/roles",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(RoleList, data)

    async def add_client_roles(
        self,
        client_id: str,
        role_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> RoleList:
        """Link roles to a client (ids already linked are ignored).

        ``POST /api/guardian/clients/{client_id}/roles``, admin only.
        """
        client_id_ = _uuid("client_id", client_id)
        role_ids_ = _uuid_list("role_ids", role_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/clients/{client_id_}/roles",
            body=compact(role_ids=role_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(RoleList, data)

    async def remove_client_roles(
        self,
        client_id: str,
        role_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> RoleList:
        """Unlink roles from a client (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/clients/{client_id}/roles``, admin only.
        """
        client_id_ = _uuid("client_id", client_id)
        role_ids_ = _uuid_list("role_ids", role_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/clients/{client_id_}/roles",
            body=compact(role_ids=role_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(RoleList, data)

    async def get_client_scopes(
        self,
        client_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ScopeList:
        """List the linked scopes of a client.

        ``GET /api/guardian/clients/{client_id}/scopes``, admin only.
        """
        client_id_ = _uuid("client_id", client_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/clients/{client_id_}/scopes",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ScopeList, data)

    async def add_client_scopes(
        self,
        client_id: str,
        scope_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> ScopeList:
        """Link scopes to a client (ids already linked are ignored).

        ``POST /api/guardian/clients/{client_id}/scopes``, admin only.
        """
        client_id_ = _uuid("client_id", client_id)
        scope_ids_ = _uuid_list("scope_ids", scope_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/clients/{client_id_}/scopes",
            body=compact(scope_ids=scope_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(ScopeList, data)

    async def remove_client_scopes(
        self,
        client_id: str,
        scope_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ScopeList:
        """Unlink scopes from a client (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/clients/{client_id}/scopes``, admin only.
        """
        client_id_ = _uuid("client_id", client_id)
        scope_ids_ = _uuid_list("scope_ids", scope_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/clients/{client_id_}/scopes",
            body=compact(scope_ids=scope_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ScopeList, data)

    async def get_client_subtypes(
        self,
        client_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> SubtypeList:
        """List the linked subtypes of a client.

        ``GET /api/guardian/clients/{client_id}/subtypes``, admin only.
        """
        client_id_ = _uuid("client_id", client_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/clients/{client_id_}/subtypes",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(SubtypeList, data)

    async def add_client_subtypes(
        self,
        client_id: str,
        subtype_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> SubtypeList:
        """Link subtypes to a client (ids already linked are ignored).

        ``POST /api/guardian/clients/{client_id}/subtypes``, admin only.
        """
        client_id_ = _uuid("client_id", client_id)
        subtype_ids_ = _uuid_list("subtype_ids", subtype_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/clients/{client_id_}/subtypes",
            body=compact(subtype_ids=subtype_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(SubtypeList, data)

    async def remove_client_subtypes(
        self,
        client_id: str,
        subtype_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> SubtypeList:
        """Unlink subtypes from a client (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/clients/{client_id}/subtypes``, admin only.
        """
        client_id_ = _uuid("client_id", client_id)
        subtype_ids_ = _uuid_list("subtype_ids", subtype_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/clients/{client_id_}/subtypes",
            body=compact(subtype_ids=subtype_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(SubtypeList, data)

    async def create_tenant(
        self,
        name: str,
        slug: str,
        category_id: str | None = None,
        display_name: str | None = None,
        description: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> Tenant:
        """Create a tenant.

        ``POST /api/guardian/tenants``, admin only.
        """
        _optional_uuid("category_id", category_id)
        data = await self._client.request(
            "POST",
            "/api/guardian/tenants",
            body=compact(
                name=name, slug=slug, category_id=category_id, display_name=display_name, description=description
            ),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(Tenant, data)

    async def get_tenant(
        self,
        tenant_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Tenant:
        """Read one tenant.

        ``GET /api/guardian/tenants/{tenant_id}``, admin only.
        """
        tenant_id_ = _uuid("tenant_id", tenant_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/tenants/{tenant_id_}",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Tenant, data)

    async def list_tenants(
        self,
        status: str | None = None,
        category_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantList:
        """One page of tenants (``{items, total}``).

        ``GET /api/guardian/tenants``, admin only.
        """
        _optional_uuid("category_id", category_id)
        data = await self._client.request(
            "GET",
            "/api/guardian/tenants",
            params=compact(status=status, category_id=category_id, limit=limit, offset=offset),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantList, data)

    async def update_tenant(
        self,
        tenant_id: str,
        name: str | Unset | None = UNSET,
        display_name: str | Unset | None = UNSET,
        status: str | Unset | None = UNSET,
        description: str | Unset | None = UNSET,
        category_id: str | Unset | None = UNSET,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Tenant:
        """Change a tenant: only the arguments passed are sent; an explicit ``None`` clears the attribute.

        ``PUT /api/guardian/tenants/{tenant_id}``, admin only.
        """
        tenant_id_ = _uuid("tenant_id", tenant_id)
        _optional_uuid("category_id", category_id)
        data = await self._client.request(
            "PUT",
            f"/api/guardian/tenants/{tenant_id_}",
            body=update_fields(
                name=name, display_name=display_name, status=status, description=description, category_id=category_id
            ),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Tenant, data)

    async def delete_tenant(
        self,
        tenant_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Deleted:
        """Delete a tenant and its links.

        ``DELETE /api/guardian/tenants/{tenant_id}``, admin only.

        Sessions in which the tenant is active are revoked.
        """
        tenant_id_ = _uuid("tenant_id", tenant_id)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/tenants/{tenant_id_}",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Deleted, data)

    async def create_tenant_category(
        self,
        name: str,
        slug: str,
        description: str | None = None,
        color: str = "#3B82F6",
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> TenantCategory:
        """Create a tenant category.

        ``POST /api/guardian/tenant-categories``, admin only.
        """
        data = await self._client.request(
            "POST",
            "/api/guardian/tenant-categories",
            body=compact(name=name, slug=slug, description=description, color=color),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(TenantCategory, data)

    async def get_tenant_category(
        self,
        category_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantCategory:
        """Read one tenant category.

        ``GET /api/guardian/tenant-categories/{category_id}``, admin only.
        """
        category_id_ = _uuid("category_id", category_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/tenant-categories/{category_id_}",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantCategory, data)

    async def list_tenant_categories(
        self,
        limit: int = 100,
        offset: int = 0,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantCategoryList:
        """One page of tenant categories (``{items, total}``).

        ``GET /api/guardian/tenant-categories``, admin only.
        """
        data = await self._client.request(
            "GET",
            "/api/guardian/tenant-categories",
            params=compact(limit=limit, offset=offset),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantCategoryList, data)

    async def update_tenant_category(
        self,
        category_id: str,
        name: str | Unset | None = UNSET,
        description: str | Unset | None = UNSET,
        color: str | Unset | None = UNSET,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantCategory:
        """Change a tenant category: only the arguments passed are sent; an explicit ``None`` clears the attribute.

        ``PUT /api/guardian/tenant-categories/{category_id}``, admin only.
        """
        category_id_ = _uuid("category_id", category_id)
        data = await self._client.request(
            "PUT",
            f"/api/guardian/tenant-categories/{category_id_}",
            body=update_fields(name=name, description=description, color=color),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantCategory, data)

    async def delete_tenant_category(
        self,
        category_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Deleted:
        """Delete a tenant category and its links.

        ``DELETE /api/guardian/tenant-categories/{category_id}``, admin only.

        A category that still has tenants cannot be deleted (``ConflictError``).
        """
        category_id_ = _uuid("category_id", category_id)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/tenant-categories/{category_id_}",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Deleted, data)

    async def create_subtype(
        self,
        name: str,
        slug: str,
        description: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> Subtype:
        """Create a subtype.

        ``POST /api/guardian/subtypes``, admin only.
        """
        data = await self._client.request(
            "POST",
            "/api/guardian/subtypes",
            body=compact(name=name, slug=slug, description=description),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(Subtype, data)

    async def get_subtype(
        self,
        subtype_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Subtype:
        """Read one subtype.

        ``GET /api/guardian/subtypes/{subtype_id}``, admin only.
        """
        subtype_id_ = _uuid("subtype_id", subtype_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/subtypes/{subtype_id_}",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Subtype, data)

    async def list_subtypes(
        self,
        limit: int = 100,
        offset: int = 0,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> SubtypeList:
        """One page of subtypes (``{items, total}``).

        ``GET /api/guardian/subtypes``, admin only.
        """
        data = await self._client.request(
            "GET",
            "/api/guardian/subtypes",
            params=compact(limit=limit, offset=offset),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(SubtypeList, data)

    async def update_subtype(
        self,
        subtype_id: str,
        name: str | Unset | None = UNSET,
        description: str | Unset | None = UNSET,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Subtype:
        """Change a subtype: only the arguments passed are sent; an explicit ``None`` clears the attribute.

        ``PUT /api/guardian/subtypes/{subtype_id}``, admin only.
        """
        subtype_id_ = _uuid("subtype_id", subtype_id)
        data = await self._client.request(
            "PUT",
            f"/api/guardian/subtypes/{subtype_id_}",
            body=update_fields(name=name, description=description),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Subtype, data)

    async def delete_subtype(
        self,
        subtype_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Deleted:
        """Delete a subtype and its links.

        ``DELETE /api/guardian/subtypes/{subtype_id}``, admin only.
        """
        subtype_id_ = _uuid("subtype_id", subtype_id)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/subtypes/{subtype_id_}",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Deleted, data)

    async def get_subtype_tenants(
        self,
        subtype_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantList:
        """List the linked tenants of a subtype.

        ``GET /api/guardian/subtypes/{subtype_id}/tenants``, admin only.
        """
        subtype_id_ = _uuid("subtype_id", subtype_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/subtypes/{subtype_id_}/tenants",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantList, data)

    async def add_subtype_tenants(
        self,
        subtype_id: str,
        tenant_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> TenantList:
        """Link tenants to a subtype (ids already linked are ignored).

        ``POST /api/guardian/subtypes/{subtype_id}/tenants``, admin only.
        """
        subtype_id_ = _uuid("subtype_id", subtype_id)
        tenant_ids_ = _uuid_list("tenant_ids", tenant_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/subtypes/{subtype_id_}/tenants",
            body=compact(tenant_ids=tenant_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(TenantList, data)

    async def remove_subtype_tenants(
        self,
        subtype_id: str,
        tenant_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantList:
        """Unlink tenants from a subtype (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/subtypes/{subtype_id}/tenants``, admin only.
        """
        subtype_id_ = _uuid("subtype_id", subtype_id)
        tenant_ids_ = _uuid_list("tenant_ids", tenant_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/subtypes/{subtype_id_}/tenants",
            body=compact(tenant_ids=tenant_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantList, data)

    async def get_subtype_categories(
        self,
        subtype_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantCategoryList:
        """List the linked categories of a subtype.

        ``GET /api/guardian/subtypes/{subtype_id}/categories``, admin only.
        """
        subtype_id_ = _uuid("subtype_id", subtype_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/subtypes/{subtype_id_}/categories",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantCategoryList, data)

    async def add_subtype_categories(
        self,
        subtype_id: str,
        category_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> TenantCategoryList:
        """Link categories to a subtype (ids already linked are ignored).

        ``POST /api/guardian/subtypes/{subtype_id}/categories``, admin only.
        """
        subtype_id_ = _uuid("subtype_id", subtype_id)
        category_ids_ = _uuid_list("category_ids", category_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/subtypes/{subtype_id_}/categories",
            body=compact(category_ids=category_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(TenantCategoryList, data)

    async def remove_subtype_categories(
        self,
        subtype_id: str,
        category_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantCategoryList:
        """Unlink categories from a subtype (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/subtypes/{subtype_id}/categories``, admin only.
        """
        subtype_id_ = _uuid("subtype_id", subtype_id)
        category_ids_ = _uuid_list("category_ids", category_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/subtypes/{subtype_id_}/categories",
            body=compact(category_ids=category_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantCategoryList, data)

    async def get_subtype_scopes(
        self,
        subtype_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ScopeList:
        """List the linked scopes of a subtype.

        ``GET /api/guardian/subtypes/{subtype_id}/scopes``, admin only.
        """
        subtype_id_ = _uuid("subtype_id", subtype_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/subtypes/{subtype_id_}/scopes",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ScopeList, data)

    async def add_subtype_scopes(
        self,
        subtype_id: str,
        scope_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> ScopeList:
        """Link scopes to a subtype (ids already linked are ignored).

        ``POST /api/guardian/subtypes/{subtype_id}/scopes``, admin only.
        """
        subtype_id_ = _uuid("subtype_id", subtype_id)
        scope_ids_ = _uuid_list("scope_ids", scope_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/subtypes/{subtype_id_}/scopes",
            body=compact(scope_ids=scope_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(ScopeList, data)

    async def remove_subtype_scopes(
        self,
        subtype_id: str,
        scope_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ScopeList:
        """Unlink scopes from a subtype (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/subtypes/{subtype_id}/scopes``, admin only.
        """
        subtype_id_ = _uuid("subtype_id", subtype_id)
        scope_ids_ = _uuid_list("scope_ids", scope_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/subtypes/{subtype_id_}/scopes",
            body=compact(scope_ids=scope_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ScopeList, data)

    async def create_page(
        self,
        path: str,
        name: str,
        description: str | None = None,
        is_active: bool = True,
        show_in_nav: bool = True,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> Page:
        """Create a page.

        ``POST /api/guardian/pages``, admin only.
        """
        data = await self._client.request(
            "POST",
            "/api/guardian/pages",
            body=compact(path=path, name=name, description=description, is_active=is_active, show_in_nav=show_in_nav),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(Page, data)

    async def get_page(
        self,
        page_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Page:
        """Read one page.

        ``GET /api/guardian/pages/{page_id}``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/pages/{page_id_}",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Page, data)

    async def list_pages(
        self,
        is_active: bool | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> PageList:
        """One page of pages (``{items, total}``).

        ``GET /api/guardian/pages``, admin only.
        """
        data = await self._client.request(
            "GET",
            "/api/guardian/pages",
            params=compact(is_active=is_active, limit=limit, offset=offset),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(PageList, data)

    async def update_page(
        self,
        page_id: str,
        path: str | Unset | None = UNSET,
        name: str | Unset | None = UNSET,
        description: str | Unset | None = UNSET,
        is_active: bool | Unset | None = UNSET,
        show_in_nav: bool | Unset | None = UNSET,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Page:
        """Change a page: only the arguments passed are sent; an explicit ``None`` clears the attribute.

        ``PUT /api/guardian/pages/{page_id}``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        data = await self._client.request(
            "PUT",
            f"/api/guardian/pages/{page_id_}",
            body=update_fields(
                path=path, name=name, description=description, is_active=is_active, show_in_nav=show_in_nav
            ),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Page, data)

    async def delete_page(
        self,
        page_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Deleted:
        """Delete a page and its links.

        ``DELETE /api/guardian/pages/{page_id}``, admin only.

        A page that navigation items still point at cannot be deleted (``ConflictError``).
        """
        page_id_ = _uuid("page_id", page_id)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/pages/{page_id_}",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Deleted, data)

    async def get_page_tenants(
        self,
        page_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantList:
        """List the linked tenants of a page.

        ``GET /api/guardian/pages/{page_id}/tenants``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/pages/{page_id_}/tenants",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantList, data)

    async def add_page_tenants(
        self,
        page_id: str,
        tenant_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> TenantList:
        """Link tenants to a page (ids already linked are ignored).

        ``POST /api/guardian/pages/{page_id}/tenants``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        tenant_ids_ = _uuid_list("tenant_ids", tenant_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/pages/{page_id_}/tenants",
            body=compact(tenant_ids=tenant_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(TenantList, data)

    async def remove_page_tenants(
        self,
        page_id: str,
        tenant_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantList:
        """Unlink tenants from a page (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/pages/{page_id}/tenants``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        tenant_ids_ = _uuid_list("tenant_ids", tenant_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/pages/{page_id_}/tenants",
            body=compact(tenant_ids=tenant_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantList, data)

    async def set_page_tenants(
        self,
        page_id: str,
        tenant_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantList:
        """Replace the set of linked tenants of a page (an empty list clears it).

        ``PUT /api/guardian/pages/{page_id}/tenants``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        tenant_ids_ = _uuid_list("tenant_ids", tenant_ids)
        data = await self._client.request(
            "PUT",
            f"/api/guardian/pages/{page_id_}/tenants",
            body=compact(tenant_ids=tenant_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantList, data)

    async def get_page_scopes(
        self,
        page_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ScopeList:
        """List the linked scopes of a page.

        ``GET /api/guardian/pages/{page_id}/scopes``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/pages/{page_id_}/scopes",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ScopeList, data)

    async def add_page_scopes(
        self,
        page_id: str,
        scope_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> ScopeList:
        """Link scopes to a page (ids already linked are ignored).

        ``POST /api/guardian/pages/{page_id}/scopes``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        scope_ids_ = _uuid_list("scope_ids", scope_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/pages/{page_id_}/scopes",
            body=compact(scope_ids=scope_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(ScopeList, data)

    async def remove_page_scopes(
        self,
        page_id: str,
        scope_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ScopeList:
        """Unlink scopes from a page (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/pages/{page_id}/scopes``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        scope_ids_ = _uuid_list("scope_ids", scope_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/pages/{page_id_}/scopes",
            body=compact(scope_ids=scope_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ScopeList, data)

    async def set_page_scopes(
        self,
        page_id: str,
        scope_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ScopeList:
        """Replace the set of linked scopes of a page (an empty list clears it).

        ``PUT /api/guardian/pages/{page_id}/scopes``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        scope_ids_ = _uuid_list("scope_ids", scope_ids)
        data = await self._client.request(
            "PUT",
            f"/api/guardian/pages/{page_id_}/scopes",
            body=compact(scope_ids=scope_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ScopeList, data)

    async def get_page_categories(
        self,
        page_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantCategoryList:
        """List the linked categories of a page.

        ``GET /api/guardian/pages/{page_id}/categories``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/pages/{page_id_}/categories",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantCategoryList, data)

    async def add_page_categories(
        self,
        page_id: str,
        category_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> TenantCategoryList:
        """Link categories to a page (ids already linked are ignored).

        ``POST /api/guardian/pages/{page_id}/categories``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        category_ids_ = _uuid_list("category_ids", category_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/pages/{page_id_}/categories",
            body=compact(category_ids=category_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(TenantCategoryList, data)

    async def remove_page_categories(
        self,
        page_id: str,
        category_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantCategoryList:
        """Unlink categories from a page (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/pages/{page_id}/categories``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        category_ids_ = _uuid_list("category_ids", category_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/pages/{page_id_}/categories",
            body=compact(category_ids=category_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantCategoryList, data)

    async def set_page_categories(
        self,
        page_id: str,
        category_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantCategoryList:
        """Replace the set of linked categories of a page (an empty list clears it).

        ``PUT /api/guardian/pages/{page_id}/categories``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        category_ids_ = _uuid_list("category_ids", category_ids)
        data = await self._client.request(
            "PUT",
            f"/api/guardian/pages/{page_id_}/categories",
            body=compact(category_ids=category_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantCategoryList, data)

    async def get_page_excluded_scopes(
        self,
        page_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ScopeList:
        """List the linked excluded scopes of a page.

        ``GET /api/guardian/pages/{page_id}/excluded-scopes``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/pages/{page_id_}/excluded-scopes",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ScopeList, data)

    async def add_page_excluded_scopes(
        self,
        page_id: str,
        scope_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> ScopeList:
        """Link excluded scopes to a page (ids already linked are ignored).

        ``POST /api/guardian/pages/{page_id}/excluded-scopes``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        scope_ids_ = _uuid_list("scope_ids", scope_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/pages/{page_id_}/excluded-scopes",
            body=compact(scope_ids=scope_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(ScopeList, data)

    async def remove_page_excluded_scopes(
        self,
        page_id: str,
        scope_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ScopeList:
        """Unlink excluded scopes from a page (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/pages/{page_id}/excluded-scopes``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        scope_ids_ = _uuid_list("scope_ids", scope_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/pages/{page_id_}/excluded-scopes",
            body=compact(scope_ids=scope_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ScopeList, data)

    async def set_page_excluded_scopes(
        self,
        page_id: str,
        scope_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ScopeList:
        """Replace the set of linked excluded scopes of a page (an empty list clears it).

        ``PUT /api/guardian/pages/{page_id}/excluded-scopes``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        scope_ids_ = _uuid_list("scope_ids", scope_ids)
        data = await self._client.request(
            "PUT",
            f"/api/guardian/pages/{page_id_}/excluded-scopes",
            body=compact(scope_ids=scope_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ScopeList, data)

    async def get_page_excluded_roles(
        self,
        page_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> RoleList:
        """List the linked excluded roles of a page.

        ``GET /api/guardian/pages/{page_id}/excluded-roles``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/pages/{page_id_}/excluded-roles",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(RoleList, data)

    async def add_page_excluded_roles(
        self,
        page_id: str,
        role_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> RoleList:
        """Link excluded roles to a page (ids already linked are ignored).

        ``POST /api/guardian/pages/{page_id}/excluded-roles``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        role_ids_ = _uuid_list("role_ids", role_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/pages/{page_id_}/excluded-roles",
            body=compact(role_ids=role_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(RoleList, data)

    async def remove_page_excluded_roles(
        self,
        page_id: str,
        role_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> RoleList:
        """Unlink excluded roles from a page (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/pages/{page_id}/excluded-roles``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        role_ids_ = _uuid_list("role_ids", role_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/pages/{page_id_}/excluded-roles",
            body=compact(role_ids=role_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(RoleList, data)

    async def set_page_excluded_roles(
        self,
        page_id: str,
        role_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> RoleList:
        """Replace the set of linked excluded roles of a page (an empty list clears it).

        ``PUT /api/guardian/pages/{page_id}/excluded-roles``, admin only.
        """
        page_id_ = _uuid("page_id", page_id)
        role_ids_ = _uuid_list("role_ids", role_ids)
        data = await self._client.request(
            "PUT",
            f"/api/guardian/pages/{page_id_}/excluded-roles",
            body=compact(role_ids=role_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(RoleList, data)

    async def create_nav_item(
        self,
        title: str,
        icon: str | None = None,
        description: str | None = None,
        page_id: str | None = None,
        parent_id: str | None = None,
        item_type: str = "link",
        is_active: bool = True,
        sort_order: int = 0,
        is_expanded_default: bool = False,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> NavItem:
        """Create a navigation item.

        ``POST /api/guardian/nav-items``, admin only.
        """
        _optional_uuid("page_id", page_id)
        _optional_uuid("parent_id", parent_id)
        data = await self._client.request(
            "POST",
            "/api/guardian/nav-items",
            body=compact(
                title=title,
                icon=icon,
                description=description,
                page_id=page_id,
                parent_id=parent_id,
                item_type=item_type,
                is_active=is_active,
                sort_order=sort_order,
                is_expanded_default=is_expanded_default,
            ),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(NavItem, data)

    async def get_nav_item(
        self,
        nav_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> NavItem:
        """Read one navigation item.

        ``GET /api/guardian/nav-items/{nav_id}``, admin only.
        """
        nav_id_ = _uuid("nav_id", nav_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/nav-items/{nav_id_}",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(NavItem, data)

    async def list_nav_items(
        self,
        tenant_id: str | None = None,
        parent_id: str | None = None,
        is_active: bool | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str | None = None,
        order_desc: bool | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> NavItemList:
        """One page of navigation items (``{items, total}``).

        ``GET /api/guardian/nav-items``, admin only.

        Ordered by ``order_by`` (``sort_order`` by default, ``title``, ``created_at``), ascending unless
        ``order_desc=True``. ``tenant_id`` keeps the items linked to that tenant.
        """
        _optional_uuid("tenant_id", tenant_id)
        _optional_uuid("parent_id", parent_id)
        data = await self._client.request(
            "GET",
            "/api/guardian/nav-items",
            params=compact(
                tenant_id=tenant_id,
                parent_id=parent_id,
                is_active=is_active,
                limit=limit,
                offset=offset,
                order_by=order_by,
                order_desc=order_desc,
            ),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(NavItemList, data)

    async def update_nav_item(
        self,
        nav_id: str,
        title: str | Unset | None = UNSET,
        icon: str | Unset | None = UNSET,
        description: str | Unset | None = UNSET,
        page_id: str | Unset | None = UNSET,
        parent_id: str | Unset | None = UNSET,
        item_type: str | Unset | None = UNSET,
        is_active: bool | Unset | None = UNSET,
        sort_order: int | Unset | None = UNSET,
        is_expanded_default: bool | Unset | None = UNSET,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> NavItem:
        """Change a navigation item: only the arguments passed are sent; an explicit ``None`` clears the attribute.

        ``PUT /api/guardian/nav-items/{nav_id}``, admin only.
        """
        nav_id_ = _uuid("nav_id", nav_id)
        _optional_uuid("page_id", page_id)
        _optional_uuid("parent_id", parent_id)
        data = await self._client.request(
            "PUT",
            f"/api/guardian/nav-items/{nav_id_}",
            body=update_fields(
                title=title,
                icon=icon,
                description=description,
                page_id=page_id,
                parent_id=parent_id,
                item_type=item_type,
                is_active=is_active,
                sort_order=sort_order,
                is_expanded_default=is_expanded_default,
            ),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(NavItem, data)

    async def delete_nav_item(
        self,
        nav_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Deleted:
        """Delete a navigation item and its links.

        ``DELETE /api/guardian/nav-items/{nav_id}``, admin only.

        An item that still has children cannot be deleted (``ConflictError``).
        """
        nav_id_ = _uuid("nav_id", nav_id)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/nav-items/{nav_id_}",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Deleted, data)

    async def get_nav_tenants(
        self,
        nav_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantList:
        """List the linked tenants of a navigation item.

        ``GET /api/guardian/nav-items/{nav_id}/tenants``, admin only.
        """
        nav_id_ = _uuid("nav_id", nav_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/nav-items/{nav_id_}/tenants",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantList, data)

    async def add_nav_tenants(
        self,
        nav_id: str,
        tenant_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> TenantList:
        """Link tenants to a navigation item (ids already linked are ignored).

        ``POST /api/guardian/nav-items/{nav_id}/tenants``, admin only.
        """
        nav_id_ = _uuid("nav_id", nav_id)
        tenant_ids_ = _uuid_list("tenant_ids", tenant_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/nav-items/{nav_id_}/tenants",
            body=compact(tenant_ids=tenant_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(TenantList, data)

    async def remove_nav_tenants(
        self,
        nav_id: str,
        tenant_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantList:
        """Unlink tenants from a navigation item (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/nav-items/{nav_id}/tenants``, admin only.
        """
        nav_id_ = _uuid("nav_id", nav_id)
        tenant_ids_ = _uuid_list("tenant_ids", tenant_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/nav-items/{nav_id_}/tenants",
            body=compact(tenant_ids=tenant_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantList, data)

    async def get_nav_scopes(
        self,
        nav_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ScopeList:
        """List the linked scopes of a navigation item.

        ``GET /api/guardian/nav-items/{nav_id}/scopes``, admin only.
        """
        nav_id_ = _uuid("nav_id", nav_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/nav-items/{nav_id_}/scopes",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ScopeList, data)

    async def add_nav_scopes(
        self,
        nav_id: str,
        scope_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> ScopeList:
        """Link scopes to a navigation item (ids already linked are ignored).

        ``POST /api/guardian/nav-items/{nav_id}/scopes``, admin only.
        """
        nav_id_ = _uuid("nav_id", nav_id)
        scope_ids_ = _uuid_list("scope_ids", scope_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/nav-items/{nav_id_}/scopes",
            body=compact(scope_ids=scope_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(ScopeList, data)

    async def remove_nav_scopes(
        self,
        nav_id: str,
        scope_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ScopeList:
        """Unlink scopes from a navigation item (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/nav-items/{nav_id}/scopes``, admin only.
        """
        nav_id_ = _uuid("nav_id", nav_id)
        scope_ids_ = _uuid_list("scope_ids", scope_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/nav-items/{nav_id_}/scopes",
            body=compact(scope_ids=scope_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ScopeList, data)

    async def get_nav_roles(
        self,
        nav_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> RoleList:
        """List the linked roles of a navigation item.

        ``GET /api/guardian/nav-items/{nav_id}/roles``, admin only.
        """
        nav_id_ = _uuid("nav_id", nav_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/nav-items/{nav_id_}/roles",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(RoleList, data)

    async def add_nav_roles(
        self,
        nav_id: str,
        role_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> RoleList:
        """Link roles to a navigation item (ids already linked are ignored).

        ``POST /api/guardian/nav-items/{nav_id}/roles``, admin only.
        """
        nav_id_ = _uuid("nav_id", nav_id)
        role_ids_ = _uuid_list("role_ids", role_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/nav-items/{nav_id_}/roles",
            body=compact(role_ids=role_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(RoleList, data)

    async def remove_nav_roles(
        self,
        nav_id: str,
        role_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> RoleList:
        """Unlink roles from a navigation item (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/nav-items/{nav_id}/roles``, admin only.
        """
        nav_id_ = _uuid("nav_id", nav_id)
        role_ids_ = _uuid_list("role_ids", role_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/nav-items/{nav_id_}/roles",
            body=compact(role_ids=role_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(RoleList, data)

    async def get_nav_subtypes(
        self,
        nav_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> SubtypeList:
        """List the linked subtypes of a navigation item.

        ``GET /api/guardian/nav-items/{nav_id}/subtypes``, admin only.
        """
        nav_id_ = _uuid("nav_id", nav_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/nav-items/{nav_id_}/subtypes",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(SubtypeList, data)

    async def add_nav_subtypes(
        self,
        nav_id: str,
        subtype_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> SubtypeList:
        """Link subtypes to a navigation item (ids already linked are ignored).

        ``POST /api/guardian/nav-items/{nav_id}/subtypes``, admin only.
        """
        nav_id_ = _uuid("nav_id", nav_id)
        subtype_ids_ = _uuid_list("subtype_ids", subtype_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/nav-items/{nav_id_}/subtypes",
            body=compact(subtype_ids=subtype_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(SubtypeList, data)

    async def remove_nav_subtypes(
        self,
        nav_id: str,
        subtype_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> SubtypeList:
        """Unlink subtypes from a navigation item (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/nav-items/{nav_id}/subtypes``, admin only.
        """
        nav_id_ = _uuid("nav_id", nav_id)
        subtype_ids_ = _uuid_list("subtype_ids", subtype_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/nav-items/{nav_id_}/subtypes",
            body=compact(subtype_ids=subtype_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(SubtypeList, data)

    async def get_nav_categories(
        self,
        nav_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantCategoryList:
        """List the linked categories of a navigation item.

        ``GET /api/guardian/nav-items/{nav_id}/categories``, admin only.
        """
        nav_id_ = _uuid("nav_id", nav_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/nav-items/{nav_id_}/categories",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantCategoryList, data)

    async def add_nav_categories(
        self,
        nav_id: str,
        category_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> TenantCategoryList:
        """Link categories to a navigation item (ids already linked are ignored).

        ``POST /api/guardian/nav-items/{nav_id}/categories``, admin only.
        """
        nav_id_ = _uuid("nav_id", nav_id)
        category_ids_ = _uuid_list("category_ids", category_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/nav-items/{nav_id_}/categories",
            body=compact(category_ids=category_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(TenantCategoryList, data)

    async def remove_nav_categories(
        self,
        nav_id: str,
        category_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantCategoryList:
        """Unlink categories from a navigation item (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/nav-items/{nav_id}/categories``, admin only.
        """
        nav_id_ = _uuid("nav_id", nav_id)
        category_ids_ = _uuid_list("category_ids", category_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/nav-items/{nav_id_}/categories",
            body=compact(category_ids=category_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(TenantCategoryList, data)

    async def create_secure_table(
        self,
        table_name: str,
        schema_name: str = "public",
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> SecureTable:
        """Create a secure-table registration.

        ``POST /api/guardian/secure-tables``, admin only.

        Registering ``(schema_name, table_name)`` makes that Scribe table secure; the table need not
        exist yet.
        """
        data = await self._client.request(
            "POST",
            "/api/guardian/secure-tables",
            body=compact(table_name=table_name, schema_name=schema_name),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(SecureTable, data)

    async def get_secure_table(
        self,
        secure_table_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> SecureTable:
        """Read one secure-table registration.

        ``GET /api/guardian/secure-tables/{secure_table_id}``, admin only.
        """
        secure_table_id_ = _uuid("secure_table_id", secure_table_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/secure-tables/{secure_table_id_}",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(SecureTable, data)

    async def list_secure_tables(
        self,
        limit: int = 100,
        offset: int = 0,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> SecureTableList:
        """One page of secure-table registrations (``{items, total}``).

        ``GET /api/guardian/secure-tables``, admin only.
        """
        data = await self._client.request(
            "GET",
            "/api/guardian/secure-tables",
            params=compact(limit=limit, offset=offset),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(SecureTableList, data)

    async def delete_secure_table(
        self,
        secure_table_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Deleted:
        """Delete a secure-table registration and its links.

        ``DELETE /api/guardian/secure-tables/{secure_table_id}``, admin only.
        """
        secure_table_id_ = _uuid("secure_table_id", secure_table_id)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/secure-tables/{secure_table_id_}",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Deleted, data)

    async def get_secure_table_scopes(
        self,
        secure_table_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ScopeList:
        """List the linked scopes of a secure-table registration.

        ``GET /api/guardian/secure-tables/{secure_table_id}/scopes``, admin only.
        """
        secure_table_id_ = _uuid("secure_table_id", secure_table_id)
        data = await self._client.request(
            "GET",
            f"/api/guardian/secure-tables/{secure_table_id_}/scopes",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ScopeList, data)

    async def add_secure_table_scopes(
        self,
        secure_table_id: str,
        scope_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> ScopeList:
        """Link scopes to a secure-table registration (ids already linked are ignored).

        ``POST /api/guardian/secure-tables/{secure_table_id}/scopes``, admin only.
        """
        secure_table_id_ = _uuid("secure_table_id", secure_table_id)
        scope_ids_ = _uuid_list("scope_ids", scope_ids)
        data = await self._client.request(
            "POST",
            f"/api/guardian/secure-tables/{secure_table_id_}/scopes",
            body=compact(scope_ids=scope_ids_),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(ScopeList, data)

    async def remove_secure_table_scopes(
        self,
        secure_table_id: str,
        scope_ids: Sequence[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ScopeList:
        """Unlink scopes from a secure-table registration (ids not linked are ignored; an empty list is refused).

        ``DELETE /api/guardian/secure-tables/{secure_table_id}/scopes``, admin only.
        """
        secure_table_id_ = _uuid("secure_table_id", secure_table_id)
        scope_ids_ = _uuid_list("scope_ids", scope_ids)
        data = await self._client.request(
            "DELETE",
            f"/api/guardian/secure-tables/{secure_table_id_}/scopes",
            body=compact(scope_ids=scope_ids_),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ScopeList, data)

    # --- lookups by unique key and idempotent setup (spec 8.7) -------------------------------------------

    async def _find(
        self,
        lister: Callable[..., Any],
        key: str,
        value: str,
        label: str,
        timeout: float | None,
        max_retries: int | None,
    ) -> dict[str, Any]:
        """The record whose ``key`` is ``value``, paging through ``lister``; ``NotFoundError`` when none is."""
        offset = 0
        while True:
            page = await lister(limit=_SCOPE_PAGE, offset=offset, timeout=timeout, max_retries=max_retries)
            for item in page["items"]:
                if item.get(key) == value:
                    return cast(dict[str, Any], item)
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                raise NotFoundError(f"{label} with {key} {value!r} not found", details={"field": key, key: value})

    async def get_role_by_name(
        self, name: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> Role:
        """The role named ``name`` (a role's name is unique, spec 8.7).

        Pages through ``list_roles``, admin only.

        Args:
            name: The role's name, exactly (letter case counts).

        Returns:
            The role record.

        Raises:
            NotFoundError: no role has that name.
        """
        return cast(Role, await self._find(self.list_roles, "name", name, "Role", timeout, max_retries))

    async def get_scope_by_slug(
        self, slug: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> Scope:
        """The scope whose slug is ``slug`` (unique, spec 8.7).

        Pages through ``list_scopes``, admin only.

        Args:
            slug: The scope's slug.

        Returns:
            The scope record.

        Raises:
            NotFoundError: no scope has that slug.
        """
        return cast(Scope, await self._find(self.list_scopes, "slug", slug, "Scope", timeout, max_retries))

    async def get_tenant_by_slug(
        self, slug: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> Tenant:
        """The tenant whose slug is ``slug`` (unique, spec 8.7).

        Pages through ``list_tenants``, admin only.

        Args:
            slug: The tenant's slug.

        Returns:
            The tenant record.

        Raises:
            NotFoundError: no tenant has that slug.
        """
        return cast(Tenant, await self._find(self.list_tenants, "slug", slug, "Tenant", timeout, max_retries))

    async def get_tenant_category_by_slug(
        self, slug: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> TenantCategory:
        """The tenant category whose slug is ``slug`` (unique, spec 8.7).

        Pages through ``list_tenant_categories``, admin only.

        Args:
            slug: The category's slug.

        Returns:
            The tenant-category record.

        Raises:
            NotFoundError: no tenant category has that slug.
        """
        found = await self._find(self.list_tenant_categories, "slug", slug, "Tenant category", timeout, max_retries)
        return cast(TenantCategory, found)

    async def get_page_by_path(
        self, path: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> Page:
        """The page whose path is ``path`` (unique, spec 8.7), active or not.

        Pages through ``list_pages``, admin only. A trailing ``/`` (except on the root) is removed first, as
        ``check-access`` does (spec 8.8).

        Args:
            path: The page's path, such as ``/reports``.

        Returns:
            The page record.

        Raises:
            NotFoundError: no page has that path.
        """
        wanted = path.rstrip("/") or "/" if isinstance(path, str) else path
        return cast(Page, await self._find(self.list_pages, "path", wanted, "Page", timeout, max_retries))

    async def _scope_ids(
        self, scope_slugs: Sequence[str] | None, timeout: float | None, max_retries: int | None
    ) -> list[str]:
        """The ids of ``scope_slugs``, resolved before anything is written; ``NotFoundError`` lists unknowns."""
        if isinstance(scope_slugs, str):
            raise ValidationError(
                "'scope_slugs' must be a list of scope slugs, not a string",
                details={"field": "scope_slugs", "reason": "must be a list"},
            )
        wanted = list(dict.fromkeys(scope_slugs or ()))
        if not wanted:
            return []
        by_slug: dict[str, str] = {}
        offset = 0
        while True:
            page = await self.list_scopes(limit=_SCOPE_PAGE, offset=offset, timeout=timeout, max_retries=max_retries)
            by_slug.update((scope["slug"], scope["id"]) for scope in page["items"])
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                break
        missing = [slug for slug in wanted if slug not in by_slug]
        if missing:
            raise NotFoundError(
                f"Unknown scope slug(s): {', '.join(missing)}", details={"field": "scope_slugs", "missing": missing}
            )
        return [by_slug[slug] for slug in wanted]

    async def _ensure(
        self,
        create: Callable[[], Any],
        find: Callable[[], Any],
        field: str,
    ) -> dict[str, Any]:
        """``create()``; on a 409 for ``field`` the existing record from ``find()``. A 409 on a built-in entity
        of the admin category (``details.builtin``) is raised: an application must not adopt those."""
        try:
            return cast(dict[str, Any], await create())
        except ConflictError as exc:
            if exc.details.get("field") != field or exc.details.get("builtin"):
                raise
            try:
                return cast(dict[str, Any], await find())
            except NotFoundError:
                raise exc from None

    async def ensure_scope(
        self,
        slug: str,
        display_name: str,
        description: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Scope:
        """The scope ``slug``: created when missing, else the existing one as it is.

        Safe to run on every start: an existing scope keeps its display name and description (they are not
        compared or updated; use ``update_scope`` for that). Creating first and reading on 409 keeps
        concurrent starts correct.

        Args:
            slug: The scope's unique slug.
            display_name: Its display name, used only when it is created.
            description: Its description, used only when it is created.

        Returns:
            The scope record (created or existing).

        Raises:
            ConflictError: ``slug`` is a built-in scope of the admin category (``admin``).
            ValidationError: the slug or the name is invalid.
        """

        async def create() -> Scope:
            return await self.create_scope(slug, display_name, description, timeout=timeout, max_retries=max_retries)

        async def find() -> Scope:
            return await self.get_scope_by_slug(slug, timeout=timeout, max_retries=max_retries)

        return cast(Scope, await self._ensure(create, find, "slug"))

    async def ensure_role(
        self,
        name: str,
        description: str | None = None,
        scope_slugs: Sequence[str] | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Role:
        """The role ``name``, holding at least the scopes ``scope_slugs``: created when missing, else the
        existing one.

        Safe to run on every start. Scopes in ``scope_slugs`` that the role lacks are linked (links are only
        added, never removed); an existing role's description is left as it is. Every slug is resolved before
        anything is written.

        Args:
            name: The role's unique name.
            description: Its description, used only when it is created.
            scope_slugs: Slugs of scopes the role must hold.

        Returns:
            The role record (created or existing).

        Raises:
            NotFoundError: a slug in ``scope_slugs`` names no scope (nothing is written).
            ConflictError: ``name`` is the built-in ``admin`` role.
            ValidationError: the name is invalid, or ``scope_slugs`` is a string.
        """
        scope_ids = await self._scope_ids(scope_slugs, timeout, max_retries)

        async def create() -> Role:
            return await self.create_role(name, description, timeout=timeout, max_retries=max_retries)

        async def find() -> Role:
            return await self.get_role_by_name(name, timeout=timeout, max_retries=max_retries)

        role = cast(Role, await self._ensure(create, find, "name"))
        if scope_ids:
            await self.add_role_scopes(role["id"], scope_ids, timeout=timeout, max_retries=max_retries)
        return role

    async def ensure_tenant_category(
        self,
        name: str,
        slug: str,
        description: str | None = None,
        color: str = "#3B82F6",
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantCategory:
        """The tenant category ``slug``: created when missing, else the existing one as it is.

        Safe to run on every start: an existing category keeps its name, description and colour.

        Args:
            name: Its name, used only when it is created.
            slug: The category's unique slug.
            description: Its description, used only when it is created.
            color: Its colour, used only when it is created.

        Returns:
            The tenant-category record (created or existing).

        Raises:
            ConflictError: ``slug`` is the built-in ``admin`` category.
            ValidationError: the slug or the name is invalid.
        """

        async def create() -> TenantCategory:
            return await self.create_tenant_category(
                name, slug, description, color, timeout=timeout, max_retries=max_retries
            )

        async def find() -> TenantCategory:
            return await self.get_tenant_category_by_slug(slug, timeout=timeout, max_retries=max_retries)

        return cast(TenantCategory, await self._ensure(create, find, "slug"))

    async def ensure_tenant(
        self,
        name: str,
        slug: str,
        category_id: str | None = None,
        display_name: str | None = None,
        description: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Tenant:
        """The tenant ``slug``: created when missing, else the existing one as it is.

        Safe to run on every start: an existing tenant keeps its name, category, display name, description
        and status (use ``update_tenant`` to change them). It does not provision the tenant's schema
        (``ddl.provision_tenant``).

        Args:
            name: Its name, used only when it is created.
            slug: The tenant's unique slug.
            category_id: Its tenant category, used only when it is created.
            display_name: Its display name, used only when it is created.
            description: Its description, used only when it is created.

        Returns:
            The tenant record (created or existing).

        Raises:
            ConflictError: ``slug`` is the built-in ``admin`` tenant.
            ValidationError: the slug, the name or ``category_id`` is invalid.
        """

        async def create() -> Tenant:
            return await self.create_tenant(
                name, slug, category_id, display_name, description, timeout=timeout, max_retries=max_retries
            )

        async def find() -> Tenant:
            return await self.get_tenant_by_slug(slug, timeout=timeout, max_retries=max_retries)

        return cast(Tenant, await self._ensure(create, find, "slug"))

    async def ensure_page(
        self,
        path: str,
        name: str,
        description: str | None = None,
        is_active: bool = True,
        show_in_nav: bool = True,
        scope_slugs: Sequence[str] | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Page:
        """The Guardian page ``path``, needing at least the scopes ``scope_slugs``: created when missing, else
        the existing one.

        Safe to run on every start. Scopes in ``scope_slugs`` that the page lacks are linked (links are only
        added, never removed); an existing page keeps its name, description, ``is_active`` and
        ``show_in_nav``. Every slug is resolved before anything is written.

        Args:
            path: The page's unique path, such as ``/reports``.
            name: Its name, used only when it is created.
            description: Its description, used only when it is created.
            is_active: Whether it is active, used only when it is created.
            show_in_nav: Whether it shows in navigation, used only when it is created.
            scope_slugs: Slugs of scopes of which a visitor must hold one (spec 8.8).

        Returns:
            The page record (created or existing).

        Raises:
            NotFoundError: a slug in ``scope_slugs`` names no scope (nothing is written).
            ConflictError: ``path`` is the built-in ``/admin`` page.
            ValidationError: the path or the name is invalid, or ``scope_slugs`` is a string.
        """
        scope_ids = await self._scope_ids(scope_slugs, timeout, max_retries)

        async def create() -> Page:
            return await self.create_page(
                path, name, description, is_active, show_in_nav, timeout=timeout, max_retries=max_retries
            )

        async def find() -> Page:
            return await self.get_page_by_path(path, timeout=timeout, max_retries=max_retries)

        page = cast(Page, await self._ensure(create, find, "path"))
        if scope_ids:
            await self.add_page_scopes(page["id"], scope_ids, timeout=timeout, max_retries=max_retries)
        return page
