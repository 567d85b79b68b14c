"""Tenant scoping: the signed-in user's current tenant, and data views bound to it.

``CurrentTenant`` gives the active tenant of the request's session (:class:`DominusTenant`: ``id``, ``slug``,
``name``) and ``TenantData`` gives a :class:`TenantView` whose ``db``, ``files`` and ``redis`` only reach that
tenant's data, so an endpoint cannot forget the filter::

    @app.get("/notes")
    async def notes(data: TenantData) -> list[dict[str, Any]]:
        return (await data.db.query("notes"))["rows"]

Where each service keeps a tenant's data (the spec leaves the choice to the application, section 5.9
"Tenant isolation"; these are this package's choices):

==============  ==================================================  =================================
Service         Tenant's place                                      Example (slug ``acme-eu``)
==============  ==================================================  =================================
Scribe (db)     the tenant schema of spec 8.1/8.6                   schema ``tenant_acme_eu``
Archivist       the category ``tenant-<slug>``                      category ``tenant-acme-eu``
Whisperer       the category ``tenant-<slug>``                      category ``tenant-acme-eu``
==============  ==================================================  =================================

The views take no ``schema=``/``category=`` argument and address files by path, never by id: an Archivist id
names an object in any category, so a view that accepted ids would let an id from another tenant through.

The tenant comes from the access token's claims, with no call to the server: ``tenant_id`` (spec 5.3) and
the ``tenant_slug`` and ``tenant_name`` claims that ``dominus_local`` adds (servers may add claims). A token
keeps the name it was issued with, so a renamed tenant shows its new name from the next token on (15 minutes
at most); a slug never changes. With a server whose tokens lack ``tenant_slug``, the first request of each
tenant asks the Portal once (``portal.me`` with the user's token) and the answer is kept in memory.
"""

from __future__ import annotations

import builtins
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, TypeVar, overload

from fastapi import Depends
from pydantic import BaseModel
from starlette.requests import HTTPConnection

from dominus_fastapi.caching import ResponseCache
from dominus_fastapi.core.client import Dominus
from dominus_fastapi.core.namespaces.db import ModelQueryResult, QueryResult
from dominus_fastapi.core.namespaces.files import FetchedFile, FileObject, FileStream, ObjectPage, Readable
from dominus_fastapi.core.namespaces.redis import CacheEntry, CacheKeys, CacheStored, SetnxResult
from dominus_fastapi.deps import get_dominus
from dominus_fastapi.handlers import DominusHTTPException
from dominus_fastapi.middleware import SESSION_SCOPE_KEY, PortalSession

__all__ = [
    "CurrentTenant",
    "DominusTenant",
    "TenantData",
    "TenantDb",
    "TenantFiles",
    "TenantRedis",
    "TenantView",
    "get_current_tenant",
    "get_tenant_data",
    "tenant_category",
    "tenant_schema",
]

M = TypeVar("M", bound=BaseModel)

_NAME_CACHE_LIMIT: Final = 10_000
"""Tenants remembered from ``portal.me`` for servers whose tokens carry no ``tenant_slug`` claim."""
_looked_up: OrderedDict[str, tuple[str, str]] = OrderedDict()


def tenant_schema(slug: str) -> str:
    """The Scribe schema of the tenant ``slug``: ``tenant_`` + the slug with ``-`` replaced by ``_`` (spec 8.1).

    Args:
        slug: the tenant's slug.

    Returns:
        The schema name (``tenant_acme_eu`` for ``acme-eu``).
    """
    return "tenant_" + slug.replace("-", "_")


def tenant_category(slug: str) -> str:
    """The Archivist and Whisperer category of the tenant ``slug``: ``tenant-`` + the slug, unchanged.

    Tenant slugs (``^[a-z0-9][a-z0-9_-]{0,54}$``) fit both category rules, so two slugs never share a
    category (unlike schemas, where ``a-b`` and ``a_b`` meet).

    Args:
        slug: the tenant's slug.

    Returns:
        The category name (``tenant-acme-eu`` for ``acme-eu``).
    """
    return "tenant-" + slug


@dataclass(frozen=True)
class DominusTenant:
    """The active tenant of a session: ``id`` (UUID), ``slug`` and ``name``.

    ``schema`` and ``category`` are where :class:`TenantView` keeps the tenant's data.
    """

    id: str
    slug: str
    name: str

    @property
    def schema(self) -> str:
        """The tenant's Scribe schema (see :func:`tenant_schema`)."""
        return tenant_schema(self.slug)

    @property
    def category(self) -> str:
        """The tenant's Archivist and Whisperer category (see :func:`tenant_category`)."""
        return tenant_category(self.slug)


async def _from_portal(connection: HTTPConnection, session: PortalSession, tenant_id: str) -> tuple[str, str]:
    """Slug and name of ``tenant_id`` from one ``portal.me`` call (servers without the tenant claims)."""
    found = _looked_up.get(tenant_id)
    if found is not None:
        return found
    client = await get_dominus(connection)
    me = await client.as_user(session.access_token).portal.me()
    tenant: Mapping[str, Any] = me.get("tenant") or {}
    if tenant.get("id") != tenant_id or not tenant.get("slug"):
        raise DominusHTTPException(403, "The session has no active tenant", "no_tenant")
    found = (str(tenant["slug"]), str(tenant.get("name") or tenant["slug"]))
    _looked_up[tenant_id] = found
    while len(_looked_up) > _NAME_CACHE_LIMIT:
        _looked_up.popitem(last=False)
    return found


async def get_current_tenant(connection: HTTPConnection) -> DominusTenant:
    """The signed-in subject's active tenant, from the verified token claims (no server call with
    ``dominus_local``; see the module docstring for other servers).

    Args:
        connection: the request or websocket.

    Returns:
        The active :class:`DominusTenant`.

    Raises:
        DominusHTTPException: 401 ``not_authenticated`` when nobody is signed in, 403 ``no_tenant`` when the
            session has no active tenant (a user with no tenants, or a service token of a client with none).
    """
    session: PortalSession | None = connection.scope.get(SESSION_SCOPE_KEY)
    if session is None:
        raise DominusHTTPException(401, "Not signed in", "not_authenticated", headers={"WWW-Authenticate": "Bearer"})
    tenant_id = session.tenant_id
    if not tenant_id:
        raise DominusHTTPException(403, "The session has no active tenant", "no_tenant")
    slug = session.claims.get("tenant_slug")
    if isinstance(slug, str) and slug:
        name = session.claims.get("tenant_name")
        return DominusTenant(tenant_id, slug, name if isinstance(name, str) and name else slug)
    slug, name = await _from_portal(connection, session, tenant_id)
    return DominusTenant(tenant_id, slug, name)


CurrentTenant = Annotated[DominusTenant, Depends(get_current_tenant)]
"""The signed-in subject's active tenant (401 anonymous, 403 ``no_tenant`` without one)."""


class TenantDb:
    """Scribe table data in one tenant's schema: ``client.db`` without a ``schema`` argument.

    Every method is the same-named method of :class:`~dominus_fastapi.core.namespaces.db.DbNamespace` with
    ``schema`` fixed to the tenant's schema (provision it first: ``ddl.provision_tenant(slug)``).
    """

    def __init__(self, client: Dominus, tenant: DominusTenant) -> None:
        """Bind to ``tenant``'s place in ``client``'s service.

        Args:
            client: the app's client.
            tenant: the tenant whose data this view reaches.
        """
        self._db = client.db
        self.schema = tenant.schema

    def __repr__(self) -> str:
        return f"TenantDb(schema={self.schema!r})"

    async def tables(self, *, timeout: float | None = None, max_retries: int | None = None) -> builtins.list[Any]:
        """The tables of the tenant's schema (``db.tables``).

        Args:
            timeout: seconds per attempt (default: the client's).
            max_retries: retries of this call (default: the client's).

        Returns:
            The table records.
        """
        return await self._db.tables(self.schema, timeout=timeout, max_retries=max_retries)

    @overload
    async def query(
        self,
        table: str,
        filters: Mapping[str, Any] | None = ...,
        sort_by: str | None = ...,
        sort_order: str = ...,
        limit: int = ...,
        offset: int = ...,
        reason: str | None = ...,
        actor: str | None = ...,
        *,
        model: None = None,
        timeout: float | None = ...,
        max_retries: int | None = ...,
    ) -> QueryResult: ...

    @overload
    async def query(
        self,
        table: str,
        filters: Mapping[str, Any] | None = ...,
        sort_by: str | None = ...,
        sort_order: str = ...,
        limit: int = ...,
        offset: int = ...,
        reason: str | None = ...,
        actor: str | None = ...,
        *,
        model: type[M],
        timeout: float | None = ...,
        max_retries: int | None = ...,
    ) -> ModelQueryResult[M]: ...

    async def query(
        self,
        table: str,
        filters: Mapping[str, Any] | None = None,
        sort_by: str | None = None,
        sort_order: str = "ASC",
        limit: int = 100,
        offset: int = 0,
        reason: str | None = None,
        actor: str | None = None,
        *,
        model: type[M] | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> QueryResult | ModelQueryResult[M]:
        """Rows of ``table`` in the tenant's schema (``db.query``): ``{"rows": [...], "total": n}``.

        Args:
            table: the table name.
            filters: column conditions (value ``=``, list ``IN``, ``None`` ``IS NULL``).
            sort_by: a column to sort by.
            sort_order: ``ASC`` or ``DESC``.
            limit: at most this many rows (1 to 1000).
            offset: rows to skip.
            reason: audit reason (secure tables).
            actor: audit actor (secure tables).
            model: a Pydantic model: the rows come back validated as instances of it.
            timeout: seconds per attempt (default: the client's).
            max_retries: retries of this call (default: the client's).

        Returns:
            ``{"rows", "total"}``; with ``model``, ``rows`` holds model instances.

        Raises:
            ValidationError: a bad argument, or (with ``model``) a row that does not fit the model.
        """
        if model is None:
            return await self._db.query(
                table,
                self.schema,
                filters,
                sort_by,
                sort_order,
                limit,
                offset,
                reason,
                actor,
                timeout=timeout,
                max_retries=max_retries,
            )
        return await self._db.query(
            table,
            self.schema,
            filters,
            sort_by,
            sort_order,
            limit,
            offset,
            reason,
            actor,
            model=model,
            timeout=timeout,
            max_retries=max_retries,
        )

    async def insert(
        self,
        table: str,
        data: Mapping[str, Any],
        reason: str | None = None,
        actor: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Insert one row into ``table`` of the tenant's schema (``db.insert``).

        Args:
            table: the table name.
            data: column values.
            reason: audit reason (secure tables).
            actor: audit actor (secure tables).
            timeout: seconds per attempt (default: the client's).
            max_retries: retries of this call (default: the client's).
            idempotency_key: a key that makes a retry of the same insert safe.

        Returns:
            The server's answer (the inserted row).
        """
        return await self._db.insert(
            table,
            data,
            self.schema,
            reason,
            actor,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )

    async def update(
        self,
        table: str,
        data: Mapping[str, Any],
        filters: Mapping[str, Any],
        reason: str | None = None,
        actor: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Update the rows of ``table`` matching ``filters`` in the tenant's schema (``db.update``).

        Args:
            table: the table name.
            data: new column values.
            filters: which rows (required, as for ``db.update``).
            reason: audit reason (secure tables).
            actor: audit actor (secure tables).
            timeout: seconds per attempt (default: the client's).
            max_retries: retries of this call (default: the client's).
            idempotency_key: a key that makes a retry safe.

        Returns:
            The server's answer.
        """
        return await self._db.update(
            table,
            data,
            filters,
            self.schema,
            reason,
            actor,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )

    async def delete(
        self,
        table: str,
        filters: Mapping[str, Any],
        reason: str | None = None,
        actor: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Delete the rows of ``table`` matching ``filters`` in the tenant's schema (``db.delete``).

        Args:
            table: the table name.
            filters: which rows.
            reason: audit reason (secure tables).
            actor: audit actor (secure tables).
            timeout: seconds per attempt (default: the client's).
            max_retries: retries of this call (default: the client's).
            idempotency_key: a key that makes a retry safe.

        Returns:
            The server's answer.
        """
        return await self._db.delete(
            table,
            filters,
            self.schema,
            reason,
            actor,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )


class TenantFiles:
    """Archivist files in one tenant's category, addressed by path (never by id: see the module docstring)."""

    def __init__(self, client: Dominus, tenant: DominusTenant) -> None:
        """Bind to ``tenant``'s place in ``client``'s service.

        Args:
            client: the app's client.
            tenant: the tenant whose data this view reaches.
        """
        self._files = client.files
        self.category = tenant.category

    def __repr__(self) -> str:
        return f"TenantFiles(category={self.category!r})"

    async def upload(
        self,
        data: bytes | bytearray | memoryview | Readable,
        filename: str,
        content_type: str | None = None,
        path: str | None = None,
        tags: Sequence[str] | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> FileObject:
        """Store a file in the tenant's category (``files.upload``); ``path`` defaults to ``filename``.

        Args:
            data: the bytes, or a file-like object read to the end.
            filename: the name a download offers (no ``/``, ``\\`` or control characters).
            content_type: the media type (default: guessed by the server).
            path: the logical path inside the tenant's category.
            tags: up to 50 tags.
            timeout: seconds per attempt (default: the transfer timeout).
            max_retries: retries of this call (default: the client's).
            idempotency_key: a key that makes a retry safe.

        Returns:
            The object record.
        """
        return await self._files.upload(
            data,
            filename,
            content_type,
            self.category,
            path,
            tags,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )

    async def fetch(self, path: str, *, timeout: float | None = None, max_retries: int | None = None) -> FetchedFile:
        """The file at ``path`` of the tenant's category, bytes and all (``files.fetch``).

        Args:
            path: the logical path.
            timeout: seconds per attempt (default: the transfer timeout).
            max_retries: retries of this call (default: the client's).

        Returns:
            ``{data, filename, content_type, size, id, path}``.

        Raises:
            NotFoundError: no such file in this tenant's category.
        """
        return await self._files.fetch(category=self.category, path=path, timeout=timeout, max_retries=max_retries)

    async def stream(
        self, path: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> FileStream:
        """The file at ``path`` of the tenant's category as a stream (``files.stream``).

        Args:
            path: the logical path.
            timeout: seconds per attempt (default: the transfer timeout).
            max_retries: retries of this call (default: the client's).

        Returns:
            An open :class:`~dominus_fastapi.core.namespaces.files.FileStream`.

        Raises:
            NotFoundError: no such file in this tenant's category.
        """
        return await self._files.stream(category=self.category, path=path, timeout=timeout, max_retries=max_retries)

    async def list(
        self,
        prefix: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ObjectPage:
        """One page of the tenant's files (``files.list``): ``{objects, cursor, count}``.

        Args:
            prefix: the start of the logical paths to list.
            limit: at most this many (1 to 1000).
            cursor: the ``cursor`` of the previous page.
            timeout: seconds per attempt (default: the client's).
            max_retries: retries of this call (default: the client's).

        Returns:
            The page.
        """
        return await self._files.list(
            self.category, prefix, limit, cursor, timeout=timeout, max_retries=max_retries
        )

    async def delete(
        self,
        path: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Delete the file at ``path`` of the tenant's category (``files.delete``): ``{deleted, id}``.

        Args:
            path: the logical path.
            timeout: seconds per attempt (default: the client's).
            max_retries: retries of this call (default: the client's).
            idempotency_key: a key that makes a retry safe.

        Returns:
            The server's answer.

        Raises:
            NotFoundError: no such file in this tenant's category.
        """
        return await self._files.delete(
            category=self.category,
            path=path,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )


class TenantRedis:
    """Whisperer keys in one tenant's category: ``client.redis`` without a ``category`` argument."""

    def __init__(self, client: Dominus, tenant: DominusTenant) -> None:
        """Bind to ``tenant``'s place in ``client``'s service.

        Args:
            client: the app's client.
            tenant: the tenant whose data this view reaches.
        """
        self._redis = client.redis
        self.category = tenant.category

    def __repr__(self) -> str:
        return f"TenantRedis(category={self.category!r})"

    async def set(
        self,
        key: str,
        value: Any,
        ttl: int = 3600,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> CacheStored:
        """Store a JSON ``value`` under ``key`` for ``ttl`` seconds (60 to 86400) (``redis.set``).

        Args:
            key: the key (1 to 512 characters, no control characters).
            value: any JSON value up to 1 MiB.
            ttl: seconds to keep it.
            timeout: seconds per attempt (default: the client's).
            max_retries: retries of this call (default: the client's).
            idempotency_key: a key that makes a retry safe.

        Returns:
            ``{key, stored, ttl_seconds}``.

        Raises:
            ValidationError: a bad key or a TTL outside 60 to 86400.
        """
        return await self._redis.set(
            key,
            value,
            ttl,
            self.category,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )

    async def get(
        self,
        key: str,
        nudge: bool = False,
        ttl: int | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> CacheEntry:
        """``{found, value, ttl_remaining}`` of ``key`` (``redis.get``).

        Args:
            key: the key.
            nudge: reset a found key's expiry.
            ttl: the new TTL with ``nudge``.
            timeout: seconds per attempt (default: the client's).
            max_retries: retries of this call (default: the client's).

        Returns:
            The entry.
        """
        return await self._redis.get(key, self.category, nudge, ttl, timeout=timeout, max_retries=max_retries)

    async def delete(
        self,
        key: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Remove ``key`` (``redis.delete``): ``{deleted}``.

        Args:
            key: the key.
            timeout: seconds per attempt (default: the client's).
            max_retries: retries of this call (default: the client's).
            idempotency_key: a key that makes a retry safe.

        Returns:
            The server's answer.
        """
        return await self._redis.delete(
            key, self.category, timeout=timeout, max_retries=max_retries, idempotency_key=idempotency_key
        )

    async def list(
        self,
        prefix: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> CacheKeys:
        """One page of the tenant's keys (``redis.list``): ``{keys, cursor, count}``.

        Args:
            prefix: the start of the keys to list.
            limit: at most this many (above 500 is lowered to 500).
            cursor: the ``cursor`` of the previous page.
            timeout: seconds per attempt (default: the client's).
            max_retries: retries of this call (default: the client's).

        Returns:
            The page.
        """
        return await self._redis.list(prefix, self.category, limit, cursor, timeout=timeout, max_retries=max_retries)

    async def setnx(
        self,
        key: str,
        value: Any,
        ttl: int = 3600,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> SetnxResult:
        """Store ``value`` only if ``key`` is free (``redis.setnx``); true when this call got it.

        Args:
            key: the key.
            value: any JSON value.
            ttl: seconds to keep it (60 to 86400).
            timeout: seconds per attempt (default: the client's).
            max_retries: retries of this call (default: the client's).
            idempotency_key: a key that makes a retry safe.

        Returns:
            ``{acquired, existing}``.
        """
        return await self._redis.setnx(
            key,
            value,
            ttl,
            self.category,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )

    async def incr(
        self,
        key: str,
        delta: int = 1,
        ttl: int = 3600,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Add ``delta`` to the counter ``key`` (``redis.incr``).

        Args:
            key: the key.
            delta: the amount to add.
            ttl: seconds to keep it (60 to 86400).
            timeout: seconds per attempt (default: the client's).
            max_retries: retries of this call (default: the client's).
            idempotency_key: a key that makes a retry safe.

        Returns:
            The server's answer (the new value).
        """
        return await self._redis.incr(
            key,
            delta,
            ttl,
            self.category,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )


class TenantView:
    """One tenant's data: ``db`` (its schema), ``files`` and ``redis`` (its category), and ``cache`` (its
    cached answers, see :mod:`dominus_fastapi.caching`), sharing ``client``'s connection pool.

    ``TenantData`` gives one per request; build one yourself for background jobs."""

    def __init__(self, client: Dominus, tenant: DominusTenant) -> None:
        """Bind the views to ``tenant``.

        Args:
            client: the app's client (its service credential makes the calls).
            tenant: the tenant whose data the views reach.
        """
        self.client = client
        self.tenant = tenant
        self.db = TenantDb(client, tenant)
        self.files = TenantFiles(client, tenant)
        self.redis = TenantRedis(client, tenant)
        self.cache = ResponseCache(client.redis, tenant.category)

    def __repr__(self) -> str:
        return f"TenantView(tenant={self.tenant.slug!r})"


async def get_tenant_data(tenant: CurrentTenant, client: Annotated[Dominus, Depends(get_dominus)]) -> TenantView:
    """A :class:`TenantView` of the signed-in subject's active tenant (no server call).

    Args:
        tenant: the request's active tenant.
        client: the app's client.

    Returns:
        The view.

    Raises:
        DominusHTTPException: as :func:`get_current_tenant`.
    """
    return TenantView(client, tenant)


TenantData = Annotated[TenantView, Depends(get_tenant_data)]
"""A :class:`TenantView` of the signed-in subject's active tenant."""
