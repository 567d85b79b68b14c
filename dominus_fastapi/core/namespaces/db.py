"""Scribe: table data (``db``), audited secure access (``secure``) and open SQL (``open``) (spec 7.3).

The SDK checks identifiers (schema, table, ``sort_by`` and filter columns) and ``limit`` (1 to 1000) before
sending, and raises :class:`ValidationError`; everything else (filter values, ``sort_order``, ``offset``) is
the server's to judge. ``query`` returns ``{"rows": [...], "total": n}``, so the usual paging loop works::

    offset = 0
    while True:
        page = await dominus.db.query("orders", limit=100, offset=offset)
        handle(page["rows"])
        offset += 100
        if offset >= page["total"]:
            break
"""

from __future__ import annotations

import base64
import builtins
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload
from urllib.parse import quote

from typing_extensions import TypedDict

from dominus_fastapi.core.errors import SecureTableError, ValidationError
from dominus_fastapi.core.namespaces.base import Namespace
from dominus_fastapi.core.secure import SecureAccessContext

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["DbNamespace", "ModelQueryResult", "OpenNamespace", "QueryResult", "SecureNamespace", "check_identifier"]

M = TypeVar("M", bound="BaseModel")

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
MAX_LIMIT = 1000


class QueryResult(TypedDict):
    """What ``db.query`` and ``secure.query`` return."""

    rows: list[dict[str, Any]]
    total: int


class ModelQueryResult(TypedDict, Generic[M]):
    """``db.query(..., model=M)``: the rows validated as instances of the Pydantic model ``M``."""

    rows: list[M]
    total: int


def _validated(result: QueryResult, model: type[M], endpoint: str) -> ModelQueryResult[M]:
    """``result`` with each row validated by ``model``; a row that does not fit raises ``ValidationError``
    naming the row and the field (the row's values stay out of the message)."""
    from pydantic import ValidationError as PydanticValidationError

    rows: list[M] = []
    for index, row in enumerate(result["rows"]):
        try:
            rows.append(model.model_validate(row))
        except PydanticValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "(row)"
            field = f"rows[{index}].{where}"
            raise ValidationError(
                f"Row {index} does not fit {model.__name__}: '{where}' {first['msg'].lower()}",
                details={"field": field, "reason": first["msg"], "model": model.__name__},
                endpoint=endpoint,
            ) from None
    return {"rows": rows, "total": result["total"]}



def check_identifier(value: Any, field: str, endpoint: str | None = None) -> str:
    """``value`` if it is a SQL identifier (spec 8.1), else :class:`ValidationError` naming ``field``."""
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise ValidationError(
            f"{field} must be an identifier matching {IDENTIFIER.pattern}",
            details={"field": field, "reason": f"must match {IDENTIFIER.pattern}"},
            endpoint=endpoint,
        )
    return value


def _check_limit(limit: Any, endpoint: str) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(
            f"limit must be an integer from 1 to {MAX_LIMIT}",
            details={"field": "limit", "reason": f"must be between 1 and {MAX_LIMIT}"},
            endpoint=endpoint,
        )


def _check_filters(filters: Any, endpoint: str) -> None:
    if isinstance(filters, Mapping):
        for key in filters:
            check_identifier(key, f"filters.{str(key)[:64]}", endpoint)


def _data_path(schema: str, table: str, action: str) -> str:
    return f"/api/scribe/data/{schema}/{table}/{action}"


def _rows_of(data: Any) -> QueryResult:
    """``{"rows", "total"}`` from the server's ``items`` (or ``rows``, from older servers)."""
    if isinstance(data, list):
        return {"rows": data, "total": len(data)}
    rows = data.get("items")
    if rows is None:
        rows = data.get("rows") or []
    total = data.get("total")
    return {"rows": list(rows), "total": int(total) if total is not None else len(rows)}


def _listing(data: Any, key: str) -> builtins.list[Any]:
    if isinstance(data, list):
        return data
    if isinstance(data, Mapping):
        return list(data.get(key) or [])
    return []


class _Tables(Namespace):
    """The listings shared by ``db`` and ``secure`` (no reason needed, spec 8.3)."""

    async def tables(
        self, schema: str = "public", *, timeout: float | None = None, max_retries: int | None = None
    ) -> builtins.list[dict[str, Any]]:
        """The tables of ``schema``: a list of ``{name, schema, secure}`` (no ``reason`` needed, even when secure).

        Raises:
            ValidationError: ``schema`` is not an identifier.
        """
        path = f"/api/scribe/data/{schema}/tables"
        check_identifier(schema, "schema", path)
        data = await self._client.request("GET", path, safe=True, timeout=timeout, max_retries=max_retries)
        return _listing(data, "tables")

    async def columns(
        self,
        table: str,
        schema: str = "public",
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """The columns of a table: a list of ``{name, type, nullable, default, primary_key}``; no ``reason`` needed.

        Raises:
            ValidationError: ``schema`` or ``table`` is not an identifier.
            NotFoundError: There is no such table.
        """
        path = _data_path(schema, table, "columns")
        check_identifier(schema, "schema", path)
        check_identifier(table, "table", path)
        data = await self._client.request("GET", path, safe=True, timeout=timeout, max_retries=max_retries)
        return _listing(data, "columns")

    async def _query(
        self,
        table: str,
        schema: str,
        filters: Mapping[str, Any] | None,
        sort_by: str | None,
        sort_order: str,
        limit: int,
        offset: int,
        audit: Mapping[str, str],
        timeout: float | None,
        max_retries: int | None,
    ) -> QueryResult:
        path = _data_path(schema, table, "query")
        check_identifier(schema, "schema", path)
        check_identifier(table, "table", path)
        if sort_by is not None:
            check_identifier(sort_by, "sort_by", path)
        _check_limit(limit, path)
        _check_filters(filters, path)
        body: dict[str, Any] = {"sort_order": sort_order, "limit": limit, "offset": offset, **audit}
        if filters is not None:
            body["filters"] = dict(filters)
        if sort_by is not None:
            body["sort_by"] = sort_by
        data = await self._client.request("POST", path, body=body, safe=True, timeout=timeout, max_retries=max_retries)
        return _rows_of(data)

    async def _write(
        self,
        action: str,
        table: str,
        schema: str,
        body: dict[str, Any],
        audit: Mapping[str, str],
        timeout: float | None,
        max_retries: int | None,
        idempotency_key: str | None,
    ) -> Any:
        path = _data_path(schema, table, action)
        check_identifier(schema, "schema", path)
        check_identifier(table, "table", path)
        _check_filters(body.get("filters"), path)
        return await self._client.request(
            "POST",
            path,
            body={**body, **audit},
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )


def _optional_audit(reason: str | None, actor: str | None) -> dict[str, str]:
    audit = {}
    if reason is not None:
        audit["reason"] = reason
    if actor is not None:
        audit["actor"] = actor
    return audit


class DbNamespace(_Tables):
    """Scribe table data (spec 7.3): ``client.db``.

    On a secure table (one registered with ``auth.create_secure_table``), pass ``reason`` and ``actor``: the server
    writes an audit record of each access, and without them answers 403 (``SecureTableError``). On other tables
    they are ignored. ``client.secure`` is the same with a required :class:`SecureAccessContext` instead.

    Identifiers (``schema``, ``table``, ``sort_by``, filter columns) and ``limit`` are checked before sending
    (``ValidationError`` naming the field); a column the table lacks is the server's 422 (``ValidationError``),
    a broken unique constraint its 409 (``ConflictError``).

    Every method also takes, keyword only, ``timeout`` (seconds one attempt may take; default: the client's
    ``timeout``, ``DOMINUS_TIMEOUT``) and ``max_retries`` (how many more attempts a failure that is safe to
    repeat gets; default: the client's ``max_retries``, ``0`` for none). The calls that would not be harmless
    to repeat take ``idempotency_key`` too: the server carries out a key once (spec 3.5); when it is left out,
    the client makes one for the call, so that its own retries never repeat the change. Any call may also raise
    the transport errors (``DominusConnectionError``, ``DominusTimeoutError``, ``ServiceError``,
    ``RateLimitError``) once its retries are spent.
    """

    async def schemas(self, *, timeout: float | None = None, max_retries: int | None = None) -> builtins.list[str]:
        """The user schemas: ``public``, tenant schemas and schemas created through Smith."""
        data = await self._client.request(
            "GET", "/api/scribe/schema/list", safe=True, timeout=timeout, max_retries=max_retries
        )
        return _listing(data, "schemas")

    @overload
    async def query(
        self,
        table: str,
        schema: str = ...,
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
        schema: str = ...,
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
        schema: str = "public",
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
        """Rows of ``table`` matching ``filters``, sorted and paged.

        Args:
            table: The table's name.
            schema: Its schema (``public``, a tenant schema, ...).
            filters: Column name -> condition, all of which must hold: a value means ``=``, a list ``IN``
                (an empty list matches nothing), ``None`` ``IS NULL`` (spec 8.2). Column names are checked to be
                identifiers before sending.
                ``None`` matches every row.
            sort_by: The column to sort by; without it rows come in primary-key order, so paging is stable.
            sort_order: ``"ASC"`` or ``"DESC"`` (any letter case).
            limit: At most this many rows, 1 to 1000.
            offset: Rows skipped before the first one returned.
            reason: Why the data is accessed (at most 1000 characters), written to the audit record. Needed
                with ``actor`` on a secure table; ignored on other tables.
            actor: Who accesses it (at most 256 characters): by convention a user id, or ``"machine"``.
            model: A Pydantic model class: each row comes back validated as an instance of it
                (``ModelQueryResult``); without it (the default) the rows are plain dicts.

        Returns:
            ``{"rows": [...], "total": n}``, where ``total`` counts every matching row, not only this page.

        Raises:
            ValidationError: A bad identifier or ``limit`` (before sending), an unknown column, or (with
                ``model``) a row that does not fit the model, naming the row and the field.
            SecureTableError: The table is secure and ``reason`` or ``actor`` is missing.
        """
        result = await self._query(
            table,
            schema,
            filters,
            sort_by,
            sort_order,
            limit,
            offset,
            _optional_audit(reason, actor),
            timeout,
            max_retries,
        )
        if model is None:
            return result
        return _validated(result, model, _data_path(schema, table, "query"))

    async def insert(
        self,
        table: str,
        data: Mapping[str, Any],
        schema: str = "public",
        reason: str | None = None,
        actor: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Insert one row (column -> value); returns the stored row, generated values included.

        Args:
            reason: Why the data is accessed (at most 1000 characters), written to the audit record. Needed
                with ``actor`` on a secure table; ignored on other tables.
            actor: Who accesses it (at most 256 characters): by convention a user id, or ``"machine"``.

        Raises:
            ConflictError: A unique constraint is broken.
            ValidationError: A value does not fit its column, or a column is unknown.
        """
        row: dict[str, Any] = await self._write(
            "insert",
            table,
            schema,
            {"data": dict(data)},
            _optional_audit(reason, actor),
            timeout,
            max_retries,
            idempotency_key,
        )
        return row

    async def update(
        self,
        table: str,
        data: Mapping[str, Any],
        filters: Mapping[str, Any],
        schema: str = "public",
        reason: str | None = None,
        actor: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Set ``data`` (column -> value) on the rows matching ``filters``; returns ``{"affected_rows": n}``.

        Args:
            filters: Column name -> condition, all of which must hold: a value means ``=``, a list ``IN``
                (an empty list matches nothing), ``None`` ``IS NULL`` (spec 8.2). Column names are checked to be
                identifiers before sending.
                Must not be empty (a whole table is emptied with ``ddl.truncate_table``).
            reason: Why the data is accessed (at most 1000 characters), written to the audit record. Needed
                with ``actor`` on a secure table; ignored on other tables.
            actor: Who accesses it (at most 256 characters): by convention a user id, or ``"machine"``.
        """
        result: dict[str, Any] = await self._write(
            "update",
            table,
            schema,
            {"data": dict(data), "filters": dict(filters)},
            _optional_audit(reason, actor),
            timeout,
            max_retries,
            idempotency_key,
        )
        return result

    async def delete(
        self,
        table: str,
        filters: Mapping[str, Any],
        schema: str = "public",
        reason: str | None = None,
        actor: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Delete the rows matching ``filters``; returns ``{"affected_rows": n}``.

        Args:
            filters: Column name -> condition, all of which must hold: a value means ``=``, a list ``IN``
                (an empty list matches nothing), ``None`` ``IS NULL`` (spec 8.2). Column names are checked to be
                identifiers before sending.
                Must not be empty.
            reason: Why the data is accessed (at most 1000 characters), written to the audit record. Needed
                with ``actor`` on a secure table; ignored on other tables.
            actor: Who accesses it (at most 256 characters): by convention a user id, or ``"machine"``.
        """
        result: dict[str, Any] = await self._write(
            "delete",
            table,
            schema,
            {"filters": dict(filters)},
            _optional_audit(reason, actor),
            timeout,
            max_retries,
            idempotency_key,
        )
        return result

    async def bulk_insert(
        self,
        table: str,
        rows: Sequence[Mapping[str, Any]],
        schema: str = "public",
        reason: str | None = None,
        actor: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Insert 1 to 1000 rows, all or nothing; returns ``{"inserted_count": n, "rows": [...]}``.

        Args:
            reason: Why the data is accessed (at most 1000 characters), written to the audit record. Needed
                with ``actor`` on a secure table; ignored on other tables.
            actor: Who accesses it (at most 256 characters): by convention a user id, or ``"machine"``.

        Raises:
            ConflictError: A row breaks a unique constraint (no row is inserted).
        """
        result: dict[str, Any] = await self._write(
            "bulk-insert",
            table,
            schema,
            {"rows": [dict(r) for r in rows]},
            _optional_audit(reason, actor),
            timeout,
            max_retries,
            idempotency_key,
        )
        return result


def _context(context: Any, endpoint: str) -> dict[str, str]:
    """The reason and actor of a secure call; blank ones raise :class:`SecureTableError` before sending."""
    if not isinstance(context, SecureAccessContext) or not context.complete:
        raise SecureTableError(
            "Secure table access needs a SecureAccessContext with a non-empty reason and actor",
            details={"field": "context", "reason": "reason and actor must be non-empty"},
            endpoint=endpoint,
        )
    return {"reason": context.reason, "actor": context.actor}


class SecureNamespace(_Tables):
    """Audited access to secure tables (spec 7.3, 8.3): ``client.secure`` (alias ``client.db_secure``).

    Each data method takes a :class:`SecureAccessContext` (``reason``, ``actor``); a blank one raises
    ``SecureTableError`` before anything is sent. The server writes an audit record (a Herald entry of category
    ``audit``) for each access. The listings (``tables``, ``columns``) need no context. The other parameters are
    those of ``client.db``.

    Every method also takes, keyword only, ``timeout`` (seconds one attempt may take; default: the client's
    ``timeout``, ``DOMINUS_TIMEOUT``) and ``max_retries`` (how many more attempts a failure that is safe to
    repeat gets; default: the client's ``max_retries``, ``0`` for none). The calls that would not be harmless
    to repeat take ``idempotency_key`` too: the server carries out a key once (spec 3.5); when it is left out,
    the client makes one for the call, so that its own retries never repeat the change. Any call may also raise
    the transport errors (``DominusConnectionError``, ``DominusTimeoutError``, ``ServiceError``,
    ``RateLimitError``) once its retries are spent.
    """

    async def query(
        self,
        table: str,
        context: SecureAccessContext,
        schema: str = "public",
        filters: Mapping[str, Any] | None = None,
        sort_by: str | None = None,
        sort_order: str = "ASC",
        limit: int = 100,
        offset: int = 0,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> QueryResult:
        """Like ``db.query``, audited; returns ``{"rows": [...], "total": n}``.

        Args:
            context: Why and by whom: both non-empty (``SecureTableError`` otherwise).
            filters: As in ``db.query``: value ``=``, list ``IN``, ``None`` ``IS NULL``; ``None`` matches every row.
            limit: At most this many rows, 1 to 1000.
            offset: Rows skipped before the first one returned.
        """
        audit = _context(context, _data_path(schema, table, "query"))
        return await self._query(
            table, schema, filters, sort_by, sort_order, limit, offset, audit, timeout, max_retries
        )

    async def insert(
        self,
        table: str,
        data: Mapping[str, Any],
        context: SecureAccessContext,
        schema: str = "public",
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Like ``db.insert``, audited."""
        audit = _context(context, _data_path(schema, table, "insert"))
        row: dict[str, Any] = await self._write(
            "insert", table, schema, {"data": dict(data)}, audit, timeout, max_retries, idempotency_key
        )
        return row

    async def update(
        self,
        table: str,
        data: Mapping[str, Any],
        filters: Mapping[str, Any],
        context: SecureAccessContext,
        schema: str = "public",
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Like ``db.update``, audited."""
        audit = _context(context, _data_path(schema, table, "update"))
        body = {"data": dict(data), "filters": dict(filters)}
        result: dict[str, Any] = await self._write(
            "update", table, schema, body, audit, timeout, max_retries, idempotency_key
        )
        return result

    async def delete(
        self,
        table: str,
        filters: Mapping[str, Any],
        context: SecureAccessContext,
        schema: str = "public",
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Like ``db.delete``, audited."""
        audit = _context(context, _data_path(schema, table, "delete"))
        result: dict[str, Any] = await self._write(
            "delete", table, schema, {"filters": dict(filters)}, audit, timeout, max_retries, idempotency_key
        )
        return result

    async def bulk_insert(
        self,
        table: str,
        rows: Sequence[Mapping[str, Any]],
        context: SecureAccessContext,
        schema: str = "public",
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Like ``db.bulk_insert``, audited."""
        audit = _context(context, _data_path(schema, table, "bulk-insert"))
        body = {"rows": [dict(r) for r in rows]}
        result: dict[str, Any] = await self._write(
            "bulk-insert", table, schema, body, audit, timeout, max_retries, idempotency_key
        )
        return result


class OpenNamespace(Namespace):
    """The open SQL area (spec 7.3): ``client.open``, a separate database the project may use freely, without audit.

    Every method also takes, keyword only, ``timeout`` (seconds one attempt may take; default: the client's
    ``timeout``, ``DOMINUS_TIMEOUT``) and ``max_retries`` (how many more attempts a failure that is safe to
    repeat gets; default: the client's ``max_retries``, ``0`` for none). The calls that would not be harmless
    to repeat take ``idempotency_key`` too: the server carries out a key once (spec 3.5); when it is left out,
    the client makes one for the call, so that its own retries never repeat the change. Any call may also raise
    the transport errors (``DominusConnectionError``, ``DominusTimeoutError``, ``ServiceError``,
    ``RateLimitError``) once its retries are spent.
    """

    async def dsn(self, *, timeout: float | None = None, max_retries: int | None = None) -> str:
        """The open database's connection string (accepts ``dsn``, ``connection_string`` or a bare string)."""
        data = await self._client.request(
            "GET", "/api/scribe/open/dsn", safe=True, timeout=timeout, max_retries=max_retries
        )
        if isinstance(data, str):
            return data
        value = data.get("dsn") or data.get("connection_string")
        return str(value)

    async def execute(
        self,
        sql: str,
        params: Sequence[Any] | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Run one SQL statement in the open database.

        Args:
            sql: The statement (non-empty; sent base64-encoded).
            params: Values bound to ``$1``, ``$2``, ... (never pasted into the SQL text).

        Returns:
            ``{columns, rows, row_count}``.

        Raises:
            ValidationError: ``sql`` is empty (before sending).
        """
        if not isinstance(sql, str) or not sql.strip():
            raise ValidationError(
                "sql must be a non-empty string",
                details={"field": "sql", "reason": "must not be empty"},
                endpoint="/api/scribe/open/execute",
            )
        body: dict[str, Any] = {"sql": base64.b64encode(sql.encode("utf-8")).decode("ascii")}
        if params is not None:
            body["params"] = list(params)
        result: dict[str, Any] = await self._client.request(
            "POST",
            "/api/scribe/open/execute",
            body=body,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return result


def path_segment(value: str) -> str:
    """A value placed in a URL path, percent-encoded so it stays one segment."""
    return quote(value, safe="")
