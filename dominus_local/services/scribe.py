"""Scribe: table data, audited access to secure tables, and the open SQL area (spec 7.3, 8.2, 8.3).

Statements are SQLAlchemy Core constructs over the user-data layer's quoted tables: identifiers are checked
against the spec's pattern and against the table's real columns, and every value is a bound parameter.
A request runs in one transaction, the audit record of a secure table included: if the record cannot be
written, the operation's writes are rolled back (spec 8.3). On PostgreSQL, ``query`` and ``insert`` run the same
statements as SQL text on asyncpg itself, where the table allows (:mod:`.scribe_postgres`).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from time import monotonic as _monotonic
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util.concurrency import await_

from dominus_local import identity
from dominus_local.errors import ApiError, ClientDisconnected, forbidden, invalid, not_found
from dominus_local.idempotency import (
    IdempotencyStore,
    KeyTaken,
    KeyUse,
    StoredAnswer,
    record_in,
    record_in_sqlite,
    record_with,
)
from dominus_local.routing import Handler, RequestContext, ServiceRouter
from dominus_local.services import scribe_postgres, smith
from dominus_local.services.herald import write_audit
from dominus_local.state import LocalState
from dominus_local.stores.database import Database
from dominus_local.stores.limits import SqliteStop, StatementTimeout, is_statement_timeout, limited_transaction
from dominus_local.stores.userdata import (
    USERDATA,
    ColumnInfo,
    SqliteUserData,
    UserData,
    database_errors,
    prepare_open_sql,
    userdata_for,
)
from dominus_local.validate import IDENTIFIER, format_timestamp

router = ServiceRouter("scribe")
logger = logging.getLogger("dominus_local.scribe")

RESOLVED_SECONDS = 5.0
"""How long a resolved table (its columns) is used without reading the catalogue again (see _resolve)."""
MAX_LIMIT = 1000
MAX_BULK_ROWS = 1000
MAX_REASON = 1000
MAX_ACTOR = 256
OPEN_MAX_ROWS = 10000
"""Rows an open-area statement may return in one answer (more is 413)."""


# --- helpers --------------------------------------------------------------------------------------------


def _path_identifier(ctx: RequestContext, name: str) -> str:
    value = ctx.path(name)
    if not IDENTIFIER.match(value):
        raise invalid(name, f"must match {IDENTIFIER.pattern}")
    return value


def _short(name: str) -> str:
    """A request-supplied name, shortened for messages (hostile keys can be very long)."""
    return name if len(name) <= 64 else name[:61] + "..."


class Target:
    """A resolved table: its schema, name, columns and whether it is secure."""

    def __init__(self, schema: str, table: str, columns: list[ColumnInfo], ud: UserData) -> None:
        self.schema = schema
        self.table = table
        self.columns = {c.name: c for c in columns}
        self.ud = ud
        self.construct = ud.table(schema, table, columns)
        self.postgres = scribe_postgres.plan_for(ud, schema, table, columns)
        """The PostgreSQL fast path's statements, when the table can take it (see :mod:`.scribe_postgres`)."""

    def column(self, name: Any, field_name: str) -> ColumnInfo:
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            raise invalid(field_name, f"column names must match {IDENTIFIER.pattern}")
        info = self.columns.get(name)
        if info is None:
            raise ApiError(
                "unprocessable",
                f"Column '{_short(name)}' does not exist in {self.schema}.{self.table}",
                details={"field": field_name, "reason": "unknown column"},
            )
        return info

    def row_values(self, data: Any, field_name: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise invalid(field_name, "must be an object of column values")
        values: dict[str, Any] = {}
        for name, value in data.items():
            info = self.column(name, f"{field_name}.{_short(str(name))}")
            if isinstance(value, dict | list) and (info.type is None or info.type.kind != "json"):
                raise ApiError(
                    "unprocessable",
                    f"Value for column '{name}' must be a scalar",
                    details={"field": f"{field_name}.{name}", "reason": "must be a scalar"},
                )
            values[name] = self.ud.to_db(info, value)
        return values

    def conditions(self, filters: Any, field_name: str = "filters") -> list[tuple[str, str, Any]]:
        """The checked filters of spec 8.2, each ``(column, "=", value)``, ``(column, "in", [values])`` or
        ``(column, "null", None)``, values in their database form."""
        if filters is None:
            return []
        if not isinstance(filters, dict):
            raise invalid(field_name, "must be an object mapping columns to values")
        conditions: list[tuple[str, str, Any]] = []
        for name, condition in filters.items():
            where = f"{field_name}.{_short(str(name))}"
            if not isinstance(name, str) or not IDENTIFIER.match(name):
                raise invalid(where, f"column names must match {IDENTIFIER.pattern}")
            if isinstance(condition, dict):
                raise invalid(where, "must be a value, a list of values or null (operators are not supported)")
            info = self.column(name, where)
            if condition is None:
                conditions.append((name, "null", None))
            elif isinstance(condition, list):
                if len(condition) > 10000:
                    raise invalid(where, "must list at most 10000 values")
                values = []
                for index, item in enumerate(condition):
                    if item is None or isinstance(item, dict | list):
                        raise invalid(f"{where}[{index}]", "must be a scalar value")
                    values.append(self.ud.to_db(info, item))
                conditions.append((name, "in", values))
            elif isinstance(condition, str | int | float | bool):
                conditions.append((name, "=", self.ud.to_db(info, condition)))
            else:  # pragma: no cover - JSON has no other value kinds
                raise invalid(where, "must be a value, a list of values or null")
        return conditions

    def where(self, filters: Any, field_name: str = "filters") -> list[sa.ColumnElement[bool]]:
        """Filter conditions of spec 8.2: scalar -> ``=``, list -> ``IN``, null -> ``IS NULL``."""
        built: list[sa.ColumnElement[bool]] = []
        for name, op, value in self.conditions(filters, field_name):
            column = self.construct.c[name]
            if op == "null":
                built.append(column.is_(None))
            elif op == "in":
                built.append(column.in_(value) if value else sa.false())
            else:
                built.append(column == value)
        return built

    def to_json(self, row: Mapping[Any, Any]) -> dict[str, Any]:
        return {str(name): self.ud.from_db(self.columns[str(name)].type, value) for name, value in row.items()}

    def order(self) -> list[sa.ColumnElement[Any]]:
        keys = sorted((c for c in self.columns.values() if c.primary_key), key=lambda c: c.primary_key)
        if keys:
            return [self.construct.c[c.name] for c in keys]
        return [self.ud.order_of_insertion(self.schema, self.table)]


async def _resolve(ctx: RequestContext, conn: AsyncConnection, ud: UserData) -> Target:
    """The request's table, from ``ud.resolved`` while it is fresh (no catalogue query), else read.

    The catalogue reads (schema row, table list, columns; on PostgreSQL from ``information_schema``) cost
    more than the data statement itself, so a resolved table is kept for :data:`RESOLVED_SECONDS`, and
    forgotten at once when this process runs DDL. Another process's DDL is seen when the entry expires, or
    at once when the stale entry makes a statement fail: :func:`_fresh_on_failure` then reads again.
    """
    schema, table = _path_identifier(ctx, "schema"), _path_identifier(ctx, "table")
    fresh = _fresh(ud, schema, table)
    if fresh is not None:
        return fresh
    if ud.dialect != "postgresql":
        return await _read_catalogue(conn, ud, schema, table)
    # On PostgreSQL the catalogue reads are slow (information_schema) and every busy request would make them at
    # once when the entry expires: one request reads, the others of this process wait for its answer (and read
    # for themselves only when it has none, e.g. it failed or DDL ran meanwhile).
    target = await _read_once(ctx, ud, schema, table, functools.partial(_read_catalogue, conn, ud, schema, table))
    return target if target is not None else await _read_catalogue(conn, ud, schema, table)


async def _read_once(
    ctx: RequestContext, ud: UserData, schema: str, table: str, read: Callable[[], Awaitable[Target]]
) -> Target | None:
    """One catalogue read of a table at a time in this process: the first caller runs ``read`` and gets its
    table; the callers that come meanwhile wait for it and get the table it kept, or ``None`` when it kept
    none (it failed, or DDL ran meanwhile)."""
    resolving: dict[tuple[str, str], asyncio.Event] = ctx.state.extras.setdefault("scribe_resolving", {})
    running = resolving.get((schema, table))
    if running is None:
        done = resolving[schema, table] = asyncio.Event()
        try:
            return await read()
        finally:
            del resolving[schema, table]
            done.set()
    await running.wait()
    return _fresh(ud, schema, table)


def _fresh(ud: UserData, schema: str, table: str) -> Target | None:
    """The table as resolved in memory, while that is fresh."""
    found = ud.resolved.get((schema, table))
    if found is None or found[1] <= _monotonic():
        return None
    target: Target = found[0]
    return target


async def _read_catalogue(conn: AsyncConnection, ud: UserData, schema: str, table: str) -> Target:
    """:func:`_resolve`'s catalogue reads; the table is kept in ``ud.resolved`` unless DDL ran meanwhile."""
    now = _monotonic()
    generation = ud.catalog_generation
    if await smith.schema_row(conn, schema) is None:
        raise not_found(f"Schema '{schema}'")
    if table not in await ud.list_tables(conn, schema):
        raise not_found(f"Table '{schema}.{table}'")
    target = Target(schema, table, await ud.columns(conn, schema, table), ud)
    if generation == ud.catalog_generation:
        ud.resolved[schema, table] = (target, now + RESOLVED_SECONDS)
    return target


_RETRIED_CODES = frozenset({"unprocessable", "validation_failed", "not_found", "conflict"})
"""Failures that a stale resolved table can cause: they are checked again against the catalogue."""


def _fresh_on_failure(handler: Handler) -> Handler:
    """Run ``handler``; when it fails in a way a stale resolved table could explain and the table was
    resolved from memory, forget it and run the handler once more against the catalogue."""

    @functools.wraps(handler)
    async def run(ctx: RequestContext) -> Any:
        ud = userdata_for(ctx.state)
        name = (ctx.path_params.get("schema", ""), ctx.path_params.get("table", ""))
        if name not in ud.resolved:
            return await handler(ctx)
        try:
            return await handler(ctx)
        except (ApiError, sa.exc.DBAPIError) as error:
            if isinstance(error, ApiError) and error.code not in _RETRIED_CODES:
                raise
            ud.resolved.pop(name, None)
            return await handler(ctx)

    return run


async def _secure_check(ctx: RequestContext, conn: AsyncConnection) -> tuple[str, str] | None:
    """Spec 8.3 steps 1-2 for a secure table; returns (reason, actor), or ``None`` for other tables.

    Never from memory: a table made secure by any process is treated as secure by the next request. One
    query: the registration and its scopes."""
    schema, table = _path_identifier(ctx, "schema"), _path_identifier(ctx, "table")
    scopes = await _secure_scopes(conn, schema, table)
    if scopes is None:
        return None
    reason, actor = ctx.body.get("reason"), ctx.body.get("actor")
    if not isinstance(reason, str) or not reason.strip() or not isinstance(actor, str) or not actor.strip():
        raise ApiError(
            "secure_table_reason_required",
            f"Table {schema}.{table} is secure: give a non-empty reason and actor",
            details={"missing": [n for n, v in (("reason", reason), ("actor", actor)) if not _filled(v)]},
        )
    reason, actor = reason.strip(), actor.strip()
    if len(reason) > MAX_REASON:
        raise invalid("reason", f"must be at most {MAX_REASON} characters")
    if len(actor) > MAX_ACTOR:
        raise invalid("actor", f"must be at most {MAX_ACTOR} characters")
    if scopes and not set(scopes) & set(ctx.subject.scopes):
        raise forbidden(f"Table {schema}.{table} needs one of the scopes linked to it", missing=scopes)
    return reason, actor


@functools.cache
def _secure_scopes_statement() -> sa.Select[tuple[Any]]:
    """Built once (bound parameters), so that its compiled form is found in SQLAlchemy's cache at once."""
    registered = identity.secure_tables
    link = identity.JUNCTIONS[("secure-tables", "scopes")].table
    return (
        sa.select(identity.scopes.c.slug)
        .select_from(
            registered.outerjoin(link, link.c.secure_table_id == registered.c.id).outerjoin(
                identity.scopes, identity.scopes.c.id == link.c.scope_id
            )
        )
        .where(registered.c.schema_name == sa.bindparam("schema"), registered.c.table_name == sa.bindparam("table"))
        .order_by(identity.scopes.c.slug)
    )


async def _secure_scopes(conn: AsyncConnection, schema: str, table: str) -> list[str] | None:
    """:func:`identity.secure_table_scopes` in one statement: scope slugs of a secure table, ``None`` if none."""
    rows = (await conn.execute(_secure_scopes_statement(), {"schema": schema, "table": table})).all()
    if not rows:
        return None
    return [str(row[0]) for row in rows if row[0] is not None]


class _NeedsWriter(Exception):
    """A read found a secure table: its audit record is a write."""


def _filled(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


async def _audit(
    ctx: RequestContext,
    conn: AsyncConnection,
    secure: tuple[str, str] | None,
    operation: str,
    target: Target,
    filters: Any,
    counts: Mapping[str, int],
) -> None:
    """Write the audit record of spec 8.3: who, what, which table and filters, row counts; no row values."""
    if secure is None:
        return
    principal = ctx.subject
    context = {
        "service": "scribe",
        "operation": operation,
        "schema": target.schema,
        "table": target.table,
        "reason": secure[0],
        "actor": secure[1],
        "subject": principal.sub,
        "subject_type": principal.subject_type,
        "tenant_id": principal.tenant_id,
        "filters": filters,
        **counts,
        "request_id": ctx.request_id,
    }
    await write_audit(conn, principal, f"scribe.{operation} {target.schema}.{target.table}", context)


async def _keep_answer(ctx: RequestContext, conn: AsyncConnection, data: Any) -> None:
    """Record the request's idempotency key (if any) with its answer in the write's own transaction."""
    use = ctx.idempotency
    if use is not None:
        store: IdempotencyStore = ctx.state.extras["idempotency"]
        table = userdata_for(ctx.state).keys_table
        await record_in(conn, use, 200, use.success(data), store.now_ms(), table=table)


class _UserDataKeys:
    """The :class:`~dominus_local.idempotency.KeyRecorder` of Scribe's writes on SQLite: a failure's record goes
    where the writes record their keys, the user-data database (``SqliteUserData.keys_table``)."""

    def __init__(self, state: LocalState) -> None:
        self.state = state

    async def record_failure(self, use: KeyUse, status: int, body: bytes) -> StoredAnswer | None:
        ud = userdata_for(self.state)
        store: IdempotencyStore = self.state.extras["idempotency"]
        try:
            async with self.state.db.begin() as conn:
                await ud.prepare(conn)
                await record_in(conn, use, status, body, store.now_ms(), table=ud.keys_table)
        except KeyTaken as taken:
            return taken.stored
        return None


def _keys_with_rows(ctx: RequestContext) -> None:
    """A ``records_key`` write records a failure where it records a success (on SQLite: in the user data)."""
    if ctx.idempotency is not None and isinstance(userdata_for(ctx.state), SqliteUserData):
        ctx.idempotency.recorder = _UserDataKeys(ctx.state)


@router.on_startup
async def _start(state: LocalState) -> None:
    """On SQLite: the user data's idempotency-key table, its expired records dropped."""
    ud = userdata_for(state)
    if not isinstance(ud, SqliteUserData):
        return
    store: IdempotencyStore = state.extras["idempotency"]
    async with state.db.begin() as conn:
        await ud.prepare(conn)
        await conn.run_sync(ud.keys_table.create, checkfirst=True)
        await conn.execute(sa.delete(ud.keys_table).where(ud.keys_table.c.expires_ms <= store.now_ms()))


# --- listings -------------------------------------------------------------------------------------------


@router.get("/api/scribe/schema/list")
async def list_schemas(ctx: RequestContext) -> dict[str, Any]:
    """``public``, the provisioned tenant schemas and the schemas created through Smith (spec 7.3)."""
    async with ctx.state.db.begin() as conn:
        return {"schemas": await smith.schema_names(conn)}


@router.get("/api/scribe/data/{schema}/tables")
async def list_tables(ctx: RequestContext) -> dict[str, Any]:
    schema = _path_identifier(ctx, "schema")
    ud = userdata_for(ctx.state)
    async with ctx.state.db.begin() as conn:
        await ud.prepare(conn)
        if await smith.schema_row(conn, schema) is None:
            raise not_found(f"Schema '{schema}'")
        tables = []
        for name in await ud.list_tables(conn, schema):
            secure = await identity.secure_table_scopes(conn, schema, name) is not None
            tables.append({"name": name, "schema": schema, "secure": secure})
    return {"tables": tables}


@router.get("/api/scribe/data/{schema}/{table}/columns")
async def list_columns(ctx: RequestContext) -> dict[str, Any]:
    """Columns of a table; defaults are shown in their wire form when Smith created the table."""
    ud = userdata_for(ctx.state)
    async with ctx.state.db.begin() as conn:
        await ud.prepare(conn)
        target = await _resolve(ctx, conn, ud)
        definition = await smith.Engine(ud, conn).definition(target.schema, target.table)
    columns = []
    for info in target.columns.values():
        wire = info.to_wire()
        known = definition.column(info.name) if definition is not None else None
        if known is not None:
            wire["type"] = known.type.name
            wire["default"] = known.default
        columns.append(wire)
    return {"columns": columns}


# --- data -----------------------------------------------------------------------------------------------


@router.post("/api/scribe/data/{schema}/{table}/query", safe=True, cancel_on_disconnect=True)
@_fresh_on_failure
async def query(ctx: RequestContext) -> dict[str, Any]:
    """Rows matching ``filters``, sorted and paged; ``total`` counts every match (spec 8.2).

    Round trips (resolved table in memory): one SELECT carrying the page, the total as a window count and
    whether the table is secure (a ``count(*)`` and the secure-table check only for a page past the last row);
    on PostgreSQL outside a transaction (no BEGIN/COMMIT), on SQLite outside the writers' lock. A secure table's
    query is then run again as a write transaction, checked first and writing its audit record. On a SQLite file
    the SELECT is one hop to a read connection (:func:`_query_direct`); on PostgreSQL it is SQL text prepared
    once per pooled connection (:mod:`.scribe_postgres`).
    """
    fields = ctx.fields
    limit = fields.int("limit", default=100, min_value=1, max_value=MAX_LIMIT)
    offset = fields.int("offset", default=0, min_value=0, max_value=2**62)
    sort_order = fields.str("sort_order", default="ASC", max_len=4).upper()
    if sort_order not in ("ASC", "DESC"):
        raise invalid("sort_order", "must be ASC or DESC")
    sort_by = fields.raw("sort_by")
    filters = fields.raw("filters")
    direct = await _direct_target(ctx)
    if direct is not None:
        found = await _query_direct(ctx, direct, limit, offset, sort_order, sort_by, filters)
        if found is not None:
            return found
    try:
        return await _query(ctx, limit, offset, sort_order, sort_by, filters, writer=False)
    except _NeedsWriter:
        return await _query(ctx, limit, offset, sort_order, sort_by, filters, writer=True)


_TOTAL = "dominus total"
"""Label of the window count in a query's SELECT (a space: no column can be named so)."""
_SECURE = "dominus secure"
"""Label of a read's secure-table flag in its SELECT."""
_EXTRA = frozenset((_TOTAL, _SECURE))


def _is_secure(target: Target) -> sa.Label[bool]:
    """Whether the table is registered as secure (spec 8.3), as a column of a data statement."""
    return _is_secure_column(target.schema, target.table)


@functools.lru_cache(maxsize=1024)
def _is_secure_column(schema: str, table: str) -> sa.Label[bool]:
    # Built once per table: making the construct costs more than the round trip it saves.
    registered = identity.secure_tables
    flag = sa.exists().where(registered.c.schema_name == schema, registered.c.table_name == table)
    return flag.label(_SECURE)


async def _query(
    ctx: RequestContext, limit: int, offset: int, sort_order: str, sort_by: Any, filters: Any, *, writer: bool
) -> dict[str, Any]:
    ud = userdata_for(ctx.state)
    async with limited_transaction(ctx, ctx.state.db, read=not writer) as conn:
        await ud.prepare(conn)
        # A read checks the table's registration in its data SELECT (one round trip for both) and starts over
        # as a writer when the table is secure. A refusal of the request itself then comes after a secure
        # table's own refusal, as when the check runs first.
        secure = await _secure_check(ctx, conn) if writer else None
        try:
            target = await _resolve(ctx, conn, ud)
            plan = None if writer else target.postgres
            if plan is not None:
                checked = target.conditions(filters)
                sort = None if sort_by is None else (target.column(sort_by, "sort_by").name, sort_order == "DESC")
            else:
                conditions = target.where(filters)
                order: list[sa.ColumnElement[Any]] = []
                if sort_by is not None:
                    column = target.construct.c[target.column(sort_by, "sort_by").name]
                    order.append(column.desc() if sort_order == "DESC" else column.asc())
                order.extend(target.order())
        except ApiError:
            if not writer and await _secure_check(ctx, conn) is not None:
                raise _NeedsWriter from None
            raise
        if plan is not None:
            return await _read_postgres(ctx, conn, target, plan, checked, sort, limit, offset, filters)
        columns: list[Any] = [target.construct, sa.func.count().over().label(_TOTAL)]
        if not writer:
            columns.append(_is_secure(target))
        with database_errors():
            rows = (
                (
                    await conn.execute(
                        sa.select(*columns).where(*conditions).order_by(*order).limit(limit).offset(offset)
                    )
                )
                .mappings()
                .all()
            )
            if not writer and (rows[0][_SECURE] if rows else await _secure_check(ctx, conn) is not None):
                raise _NeedsWriter
            if rows:
                total = rows[0][_TOTAL]
            elif offset == 0:
                total = 0
            else:
                total = (
                    await conn.execute(sa.select(sa.func.count()).select_from(target.construct).where(*conditions))
                ).scalar_one()
            items = [target.to_json({k: v for k, v in r.items() if k not in _EXTRA}) for r in rows]
        await _audit(ctx, conn, secure, "query", target, filters, {"row_count": len(items)})
    return {"items": items, "total": int(total), "limit": limit, "offset": offset}


async def _read_postgres(
    ctx: RequestContext,
    conn: AsyncConnection,
    target: Target,
    plan: scribe_postgres.TablePlan,
    conditions: list[tuple[str, str, Any]],
    sort: tuple[str, bool] | None,
    limit: int,
    offset: int,
    filters: Any,
) -> dict[str, Any]:
    """:func:`_query`'s read on PostgreSQL's fast path: the same SELECT as SQL text on asyncpg (one round trip)."""
    shape: list[scribe_postgres.Filter] = []
    args: list[Any] = []
    for name, op, value in conditions:
        if op == "in":
            shape.append((name, op, len(value)))
            args.extend(value)
        elif op == "null":
            shape.append((name, op, 0))
        else:
            shape.append((name, op, 1))
            args.append(value)
    args.append(limit)
    if offset:
        args.append(offset)
    args += (target.schema, target.table)
    with database_errors():
        records = await (await scribe_postgres.Driver.of(conn)).fetch(plan.select(shape, sort, offset > 0), args)
        if records[0][-1] if records else await _secure_check(ctx, conn) is not None:
            raise _NeedsWriter
        if records:
            total = records[0][-2]
        elif offset == 0:
            total = 0
        else:
            count = sa.select(sa.func.count()).select_from(target.construct).where(*target.where(filters))
            total = (await conn.execute(count)).scalar_one()
        items = [plan.to_json(record) for record in records]
    return {"items": items, "total": int(total), "limit": limit, "offset": offset}


@router.post("/api/scribe/data/{schema}/{table}/insert", records_key=True, cancel_on_disconnect=True)
@_fresh_on_failure
async def insert(ctx: RequestContext) -> dict[str, Any]:
    """Insert one row and answer with the stored row, generated values included (spec 7.3).

    Round trips (resolved table in memory): BEGIN, the INSERT ... RETURNING (which also answers whether the
    table is secure), the idempotency key's record (with a key), COMMIT: one transaction. When the table is
    secure, or the insert is refused, that transaction is rolled back (on PostgreSQL a sequence value may be
    spent) and the insert runs again with the secure-table check first, so that a secure table's refusal comes
    before any other and nothing is written without its reason, actor, scopes and audit record. On a SQLite
    file the INSERT and the key's record are one function of the writer's next group commit
    (:func:`_insert_direct`): one hop, and one fsync shared with the writes committed with it. On PostgreSQL the
    first attempt runs as SQL text on asyncpg (:func:`_insert_postgres`), with the same round trips.
    """
    _keys_with_rows(ctx)
    direct = await _direct_target(ctx)
    if direct is not None:
        found = await _insert_direct(ctx, direct)
        if found is not None:
            return found
    try:
        return await _insert(ctx, checked=False)
    except _NeedsCheck:
        return await _insert(ctx, checked=True)


class _NeedsCheck(Exception):
    """A write that checked the secure-table registration in its own statement found it needed the full check
    first (a secure table, or a refusal that must not come before a secure table's own)."""


async def _insert(ctx: RequestContext, *, checked: bool) -> dict[str, Any]:
    ud = userdata_for(ctx.state)
    async with limited_transaction(ctx, ctx.state.db) as conn:
        await ud.prepare(conn)
        secure = await _secure_check(ctx, conn) if checked else None
        try:
            target = await _resolve(ctx, conn, ud)
            values = target.row_values(ctx.body.get("data"), "data")
            plan = None if checked else target.postgres
            if plan is not None:
                return await _insert_postgres(ctx, conn, target, plan, values)
            columns: list[Any] = list(target.construct.c)
            if not checked:
                columns.append(_is_secure(target))
            with database_errors():
                result = await conn.execute(sa.insert(target.construct).values(values).returning(*columns))
                stored = result.mappings().one()
        except ApiError as error:
            if checked or isinstance(error, StatementTimeout):
                raise
            raise _NeedsCheck from None
        if not checked and stored[_SECURE]:
            raise _NeedsCheck
        row = target.to_json({k: v for k, v in stored.items() if k not in _EXTRA})
        await _audit(ctx, conn, secure, "insert", target, None, {"affected_rows": 1})
        await _keep_answer(ctx, conn, row)
    return row


async def _insert_postgres(
    ctx: RequestContext, conn: AsyncConnection, target: Target, plan: scribe_postgres.TablePlan, values: dict[str, Any]
) -> dict[str, Any]:
    """:func:`_insert` on PostgreSQL's fast path: BEGIN, the INSERT ... RETURNING (with the secure flag), the
    idempotency key's record (with a key), COMMIT, as SQL text on asyncpg. A secure table, or a refusal, raises
    :class:`_NeedsCheck` (through ``_insert``'s handler) after the transaction has rolled back."""
    args = [*values.values(), target.schema, target.table]
    driver = await scribe_postgres.Driver.of(conn)
    async with driver.transaction():
        with database_errors():
            record = (await driver.fetch(plan.insert(tuple(values)), args))[0]
        if record[-1]:
            raise _NeedsCheck
        row = plan.to_json(record)
        use = ctx.idempotency
        if use is not None:
            store: IdempotencyStore = ctx.state.extras["idempotency"]
            await record_with(driver.fetch, conn.dialect, use, 200, use.success(row), store.now_ms())
    return row


# --- SQLite file: the row calls in one thread hop -------------------------------------------------------------
#
# On a SQLite file (``Database.direct``), a query or an insert of a table resolved in memory runs as one plain
# function of a sqlite3 connection (see dominus_local.stores.sqlite_direct): a read on a read connection, an
# insert and its idempotency record in the writer's next group commit. Whatever needs more (a secure table, a
# refusal to word, an empty page, a table not resolved yet) returns None, having changed nothing, and the
# request runs again on the general path above, which answers it as before.


class _Fallback(Exception):
    """The direct path cannot answer this request; nothing was written."""


async def _direct_target(ctx: RequestContext) -> Target | None:
    """The request's table, when it was resolved in memory and the database runs whole transactions in one hop.

    An entry that has expired is read again by one request (:func:`_reresolved`) while the others of this
    process wait for it, instead of every request in flight taking the general path: that path runs under the
    writers' lock, so on a busy table each expiry queued every request behind all the others for a moment."""
    if ctx.state.db.direct is None or ctx.disconnected:
        return None
    ud = userdata_for(ctx.state)
    if not isinstance(ud, SqliteUserData) or ud.path == ":memory:":
        return None
    name = (ctx.path_params.get("schema", ""), ctx.path_params.get("table", ""))
    found = ud.resolved.get(name)
    if found is None:
        return None  # never resolved (or DDL ran): the general path resolves it, and words any refusal
    target: Target | None = found[0] if found[1] > _monotonic() else await _reresolved(ctx, ud, *name)
    if target is not None:
        ctx.state.db.direct.attach(USERDATA, ud.path)
    return target


async def _reresolved(ctx: RequestContext, ud: UserData, schema: str, table: str) -> Target | None:
    """The table read again from the catalogue, on a read connection, once per expiry in this process (the
    requests that arrive meanwhile wait for that read); ``None`` when the general path must answer (the table
    or its schema is gone, the read failed, DDL ran meanwhile)."""

    async def read() -> Target:
        async with ctx.state.db.read() as conn:
            await ud.prepare(conn)
            return await _read_catalogue(conn, ud, schema, table)

    try:
        await _read_once(ctx, ud, schema, table, read)
    except (ApiError, sa.exc.SQLAlchemyError):
        return None
    return _fresh(ud, schema, table)


def _labelled(cursor: sqlite3.Cursor) -> list[str]:
    return [str(d[0]) for d in cursor.description]


async def _query_direct(
    ctx: RequestContext, target: Target, limit: int, offset: int, sort_order: str, sort_by: Any, filters: Any
) -> dict[str, Any] | None:
    """:func:`_query` of a plain table in one hop; ``None`` when the general path must answer."""
    ud = target.ud
    try:
        target.where(filters)  # every refusal as the general path words it
        sort = target.column(sort_by, "sort_by").name if sort_by is not None else None
    except ApiError:
        return None  # a secure table's refusal would come first: the general path words it
    # The statement of _query, written out: compiling the Core construct costs more than running it.
    table = ud.qualified(target.schema, target.table)
    conditions: list[str] = []
    args: list[Any] = [target.schema, target.table]
    for name, condition in (filters or {}).items():
        column, info = ud.quote(name), target.columns[name]
        if condition is None:
            conditions.append(f"{column} IS NULL")
        elif isinstance(condition, list):
            if not condition:
                conditions.append("0 = 1")
                continue
            conditions.append(f"{column} IN ({', '.join('?' for _ in condition)})")
            args.extend(ud.to_db(info, item) for item in condition)
        else:
            conditions.append(f"{column} = ?")
            args.append(ud.to_db(info, condition))
    order = [f"{ud.quote(sort)} {sort_order}"] if sort is not None else []
    keys = sorted((c for c in target.columns.values() if c.primary_key), key=lambda c: c.primary_key)
    order += [f"{table}.{ud.quote(c.name)}" for c in keys] if keys else [f"{table}.rowid"]
    registered = identity.secure_tables.name
    sql = (
        f"SELECT {', '.join(f'{table}.{ud.quote(name)}' for name in target.columns)},"  # noqa: S608
        f' count(*) OVER () AS "{_TOTAL}",'
        f' EXISTS (SELECT 1 FROM {registered} WHERE schema_name = ? AND table_name = ?) AS "{_SECURE}"'
        f" FROM {table}{' WHERE ' + ' AND '.join(conditions) if conditions else ''}"
        f" ORDER BY {', '.join(order)} LIMIT ? OFFSET ?"
    )
    args += [limit, offset]

    def work(raw: sqlite3.Connection) -> dict[str, Any]:
        cursor = raw.execute(sql, args)
        names = _labelled(cursor)
        rows = cursor.fetchall()
        if not rows or rows[0][names.index(_SECURE)]:
            raise _Fallback
        total = rows[0][names.index(_TOTAL)]
        items = [target.to_json({k: v for k, v in zip(names, r, strict=True) if k not in _EXTRA}) for r in rows]
        return {"items": items, "total": int(total), "limit": limit, "offset": offset}

    direct = ctx.state.db.direct
    assert direct is not None
    seconds = ctx.state.settings.statement_timeout
    async with direct.reader() as reader:
        stop = SqliteStop(reader, seconds)
        remove = ctx.on_disconnect(stop.cancel)
        try:
            return await reader.run(work)
        except _Fallback:
            return None
        except sqlite3.Error:
            if stop.cancelled or ctx.disconnected:
                raise ClientDisconnected from None
            if stop.expired:
                raise StatementTimeout(seconds) from None
            return None
        finally:
            remove()
            await stop.close()


async def _insert_direct(ctx: RequestContext, target: Target) -> dict[str, Any] | None:
    """:func:`_insert` into a plain table in one hop of the writer's group commit, the idempotency record in
    the same transaction; ``None`` when the general path must answer (nothing was written)."""
    try:
        values = target.row_values(ctx.body.get("data"), "data")
    except ApiError:
        return None
    ud = target.ud
    table = ud.qualified(target.schema, target.table)
    returning = ", ".join(ud.quote(name) for name in target.columns)
    registered = identity.secure_tables.name
    secure = f"EXISTS (SELECT 1 FROM {registered} WHERE schema_name = ? AND table_name = ?)"  # noqa: S608
    if values:
        names = ", ".join(ud.quote(name) for name in values)
        into = f"({names}) VALUES ({', '.join('?' for _ in values)})"
    else:
        into = "DEFAULT VALUES"
    sql = f"INSERT INTO {table} {into} RETURNING {returning}, {secure}"
    args = [*values.values(), target.schema, target.table]
    use = ctx.idempotency
    store: IdempotencyStore = ctx.state.extras["idempotency"]
    now_ms = store.now_ms()
    keys = ud.keys_table

    def work(raw: sqlite3.Connection) -> dict[str, Any]:
        try:
            found = raw.execute(sql, args).fetchone()
        except sqlite3.Error:
            raise _Fallback from None  # a refusal: the general path runs it again and words it
        if found is None or found[-1]:
            raise _Fallback
        row = target.to_json(dict(zip(target.columns, found[:-1], strict=True)))
        if use is not None:
            record_in_sqlite(raw, use, 200, use.success(row), now_ms, table=keys)
        return row

    direct = ctx.state.db.direct
    assert direct is not None
    try:
        return await direct.write(work)
    except _Fallback:
        if use is not None:
            use.answer = None
        return None


@router.post("/api/scribe/data/{schema}/{table}/bulk-insert", records_key=True, cancel_on_disconnect=True)
@_fresh_on_failure
async def bulk_insert(ctx: RequestContext) -> dict[str, Any]:
    """Insert 1 to 1000 rows, all or nothing; answers ``inserted_count`` and the stored ``rows``."""
    _keys_with_rows(ctx)
    raw_rows = ctx.fields.list("rows", min_items=1, max_items=MAX_BULK_ROWS, comma_split=False)
    ud = userdata_for(ctx.state)
    async with limited_transaction(ctx, ctx.state.db) as conn:
        await ud.prepare(conn)
        secure = await _secure_check(ctx, conn)
        target = await _resolve(ctx, conn, ud)
        prepared = [target.row_values(row, f"rows[{index}]") for index, row in enumerate(raw_rows)]
        stored: list[dict[str, Any]] = []
        with database_errors():
            # Rows naming the same columns go in one multi-row VALUES statement (in chunks that stay under
            # the drivers' bound-parameter limits); a row that leaves a column out must get that column's
            # default, so rows with other keys start a new statement. RETURNING follows the VALUES order on
            # SQLite and PostgreSQL.
            start = 0
            while start < len(prepared):
                keys = list(prepared[start])
                end = start + 1
                per_statement = max(1, 30000 // max(1, len(keys)))
                while end < len(prepared) and end - start < per_statement and list(prepared[end]) == keys:
                    end += 1
                if keys:
                    statement = sa.insert(target.construct).values(prepared[start:end])
                    result = await conn.execute(statement.returning(*target.construct.c))
                    stored.extend(target.to_json(r) for r in result.mappings())
                else:
                    for _ in range(start, end):
                        result = await conn.execute(sa.insert(target.construct).returning(*target.construct.c))
                        stored.append(target.to_json(result.mappings().one()))
                start = end
        await _audit(ctx, conn, secure, "bulk_insert", target, None, {"affected_rows": len(stored)})
        answer = {"inserted_count": len(stored), "rows": stored}
        await _keep_answer(ctx, conn, answer)
    return answer


def _required_filters(ctx: RequestContext) -> dict[str, Any]:
    filters = ctx.body.get("filters")
    if not isinstance(filters, dict) or not filters:
        raise invalid("filters", "must be a non-empty object (empty a whole table with Smith's truncate-table)")
    return filters


@router.post("/api/scribe/data/{schema}/{table}/update", records_key=True, cancel_on_disconnect=True)
@_fresh_on_failure
async def update(ctx: RequestContext) -> dict[str, Any]:
    """Set ``data`` on the rows matching ``filters`` (both non-empty); answers ``affected_rows``."""
    _keys_with_rows(ctx)
    filters = _required_filters(ctx)
    data = ctx.body.get("data")
    if not isinstance(data, dict) or not data:
        raise invalid("data", "must be a non-empty object of column values")
    ud = userdata_for(ctx.state)
    async with limited_transaction(ctx, ctx.state.db) as conn:
        await ud.prepare(conn)
        secure = await _secure_check(ctx, conn)
        target = await _resolve(ctx, conn, ud)
        values = target.row_values(data, "data")
        conditions = target.where(filters)
        with database_errors():
            result = await conn.execute(sa.update(target.construct).where(*conditions).values(values))
        affected = int(result.rowcount or 0)
        await _audit(ctx, conn, secure, "update", target, filters, {"affected_rows": affected})
        await _keep_answer(ctx, conn, {"affected_rows": affected})
    return {"affected_rows": affected}


@router.post("/api/scribe/data/{schema}/{table}/delete", records_key=True, cancel_on_disconnect=True)
@_fresh_on_failure
async def delete(ctx: RequestContext) -> dict[str, Any]:
    """Delete the rows matching ``filters`` (non-empty); answers ``affected_rows``."""
    _keys_with_rows(ctx)
    filters = _required_filters(ctx)
    ud = userdata_for(ctx.state)
    async with limited_transaction(ctx, ctx.state.db) as conn:
        await ud.prepare(conn)
        secure = await _secure_check(ctx, conn)
        target = await _resolve(ctx, conn, ud)
        conditions = target.where(filters)
        with database_errors():
            result = await conn.execute(sa.delete(target.construct).where(*conditions))
        affected = int(result.rowcount or 0)
        await _audit(ctx, conn, secure, "delete", target, filters, {"affected_rows": affected})
        await _keep_answer(ctx, conn, {"affected_rows": affected})
    return {"affected_rows": affected}


# --- open SQL -------------------------------------------------------------------------------------------


class OpenArea:
    """The open database: a separate database the project may use freely (spec 7.3)."""

    def __init__(self, url: str, dsn: str | None, *, statement_timeout: float | None = None) -> None:
        self.database = Database(url, statement_timeout=statement_timeout)
        self.dsn = dsn
        if self.database.is_sqlite:
            event.listen(self.database.engine.sync_engine, "connect", _deny_attach)

    @classmethod
    def from_state(cls, state: LocalState) -> OpenArea:
        settings = state.settings
        limit = settings.statement_timeout
        configured = settings.open_database_url
        if configured:
            return cls(configured, _plain_dsn(configured), statement_timeout=limit)
        if settings.data_dir is None:
            return cls("sqlite+aiosqlite://", None)
        path = settings.data_dir / "open.db"
        return cls(f"sqlite+aiosqlite:///{path}", f"sqlite:///{path}")


def _plain_dsn(url: str) -> str:
    """A SQLAlchemy URL as a DSN that standard drivers accept (the ``+driver`` part removed)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}://{rest}"


def _deny_attach(dbapi_connection: Any, _record: Any) -> None:
    """Keep the open area from reaching other database files (ATTACH, VACUUM INTO, extensions)."""

    def authorizer(action: int, *_args: Any) -> int:
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and hasattr(driver, "set_authorizer"):
        await_(driver.set_authorizer(authorizer))


def _open(state: LocalState) -> OpenArea:
    area = state.extras.get("scribe_open")
    if not isinstance(area, OpenArea):
        area = OpenArea.from_state(state)
        state.extras["scribe_open"] = area
    return area


@router.on_shutdown
async def _close_open_area(state: LocalState) -> None:
    area = state.extras.pop("scribe_open", None)
    if isinstance(area, OpenArea):
        await area.database.dispose()


@router.get("/api/scribe/open/dsn")
async def open_dsn(ctx: RequestContext) -> dict[str, Any]:
    """The open database's DSN; an ephemeral instance has none that another process could use (501)."""
    area = _open(ctx.state)
    if area.dsn is None:
        raise ApiError("not_implemented", "An in-memory instance has no open database that others can reach")
    return {"dsn": area.dsn}


def _open_param(value: Any, index: int) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise invalid(f"params[{index}]", "must be a string, number, boolean or null")


def _open_value(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date | time):
        return value.isoformat()
    return value if value is None or isinstance(value, str | int | float | bool | list | dict) else str(value)


@router.post("/api/scribe/open/execute", cancel_on_disconnect=True)
async def open_execute(ctx: RequestContext) -> dict[str, Any]:
    """Run one statement in the open area; ``sql`` is base64 text, ``params`` bind to ``$1``, ``$2``, ...

    The statement runs under the statement time limit (504 ``upstream_timeout`` past it) and is stopped when
    the client disconnects (:mod:`dominus_local.stores.limits`).
    """
    sql = smith.decode_sql(ctx.fields.raw("sql"))
    raw_params = ctx.fields.list("params", required=False, max_items=10000, comma_split=False) or []
    params = [_open_param(value, index) for index, value in enumerate(raw_params)]
    area = _open(ctx.state)
    statement = prepare_open_sql(sql, len(params), sqlite=area.database.is_sqlite)
    async with limited_transaction(ctx, area.database) as conn:
        try:
            result = await conn.exec_driver_sql(statement, tuple(params))
            if result.returns_rows:
                columns = list(result.keys())
                fetched = result.fetchmany(OPEN_MAX_ROWS + 1)
                if len(fetched) > OPEN_MAX_ROWS:
                    raise ApiError(
                        "payload_too_large",
                        f"The statement returned more than {OPEN_MAX_ROWS} rows; add a LIMIT",
                        details={"limit": OPEN_MAX_ROWS},
                    )
                rows = [{c: _open_value(v) for c, v in zip(columns, row, strict=True)} for row in fetched]
                return {"columns": columns, "rows": rows, "row_count": len(rows)}
            return {"columns": [], "rows": [], "row_count": max(int(result.rowcount or 0), 0)}
        except sa.exc.DBAPIError as error:
            if is_statement_timeout(error):
                raise StatementTimeout from None
            first_line = str(error.orig).splitlines()[0][:200] if str(error.orig) else "error"
            raise ApiError("unprocessable", f"The open database refused the statement: {first_line}") from None


__all__ = ["OpenArea", "router"]
