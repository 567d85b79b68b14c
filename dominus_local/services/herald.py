"""Herald (spec 7.8): structured logs and the audit trail.

``log`` stores one entry, ``batch`` up to 100 (each checked and stored on its own: partial by design), and
``query`` reads them back newest first with every filter of the spec (``search`` folds case with the
database's ``lower()``, which on SQLite covers ASCII letters only). The server stamps each entry with its
id, the time it was received and the caller's project, environment, subject and tenant. Categories that start
with ``audit`` are reserved: other services write them through :func:`write_audit`, callers get 403.

Where the spec is silent: a ``context`` over 64 KiB gets 413 ``payload_too_large`` (like Warden values), and
``file`` and ``function`` are limited to 1024 and 256 characters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Integer, String, Table, Text, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dominus_local.errors import ApiError, forbidden, invalid
from dominus_local.routing import Principal, RequestContext, ServiceRouter
from dominus_local.state import LocalState
from dominus_local.stores.database import metadata
from dominus_local.validate import Fields, format_timestamp, new_id, utcnow

__all__ = ["LEVELS", "logs_table", "router", "write_audit"]

router = ServiceRouter("herald")

LEVELS = ("debug", "info", "notice", "warn", "error", "critical")
"""Least to most severe."""
_SEVERITY = {name: index for index, name in enumerate(LEVELS)}
MAX_MESSAGE_CHARS = 32768
MAX_CONTEXT_BYTES = 64 * 1024
MAX_CATEGORY_CHARS = 64
MAX_FILE_CHARS = 1024
MAX_FUNCTION_CHARS = 256
MAX_BATCH = 100
RESERVED_CATEGORY_PREFIX = "audit"

logs_table = Table(
    "herald_logs",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    # Reception time in microseconds since the epoch: exact ordering and range filters on any database.
    Column("dt_us", BigInteger, nullable=False, index=True),
    Column("level", String(16), nullable=False),
    Column("severity", Integer, nullable=False),
    Column("message", Text, nullable=False),
    Column("context", JSON, nullable=True),
    Column("category", String(64), nullable=True, index=True),
    Column("file", String(MAX_FILE_CHARS), nullable=True),
    Column("function", String(MAX_FUNCTION_CHARS), nullable=True),
    Column("project", String(128), nullable=False),
    Column("environment", String(128), nullable=False),
    Column("subject", String(64), nullable=True),
    Column("subject_type", String(16), nullable=True),
    Column("tenant_id", String(36), nullable=True),
)


def _micros(moment: datetime) -> int:
    delta = moment.astimezone(timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros(value: int) -> datetime:
    return datetime.fromtimestamp(value // 1_000_000, tz=timezone.utc).replace(microsecond=value % 1_000_000)


def _entry(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "dt": format_timestamp(_from_micros(row.dt_us)),
        "level": row.level,
        "message": row.message,
        "context": row.context,
        "category": row.category,
        "file": row.file,
        "function": row.function,
        "project": row.project,
        "environment": row.environment,
        "subject": row.subject,
        "subject_type": row.subject_type,
        "tenant_id": row.tenant_id,
    }


def _check_context(context: Any, field: str) -> dict[str, Any] | None:
    if context is None:
        return None
    if not isinstance(context, dict):
        raise invalid(field, "must be an object")
    size = len(json.dumps(context, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
    if size > MAX_CONTEXT_BYTES:
        raise ApiError(
            "payload_too_large",
            f"Field '{field}' is larger than {MAX_CONTEXT_BYTES} bytes once serialised",
            details={"field": field, "limit": MAX_CONTEXT_BYTES},
        )
    return context


def _event_values(fields: Fields, principal: Principal, prefix: str = "") -> dict[str, Any]:
    """Check one event and return its row (without id and time); 400/403/413 name the field."""

    def name(field: str) -> str:
        return f"{prefix}{field}"

    try:
        level = fields.str("level", choices=LEVELS)
        message = fields.str("message", min_len=1, max_len=MAX_MESSAGE_CHARS)
        category = fields.str("category", required=False, max_len=MAX_CATEGORY_CHARS)
        file = fields.str("file", required=False, max_len=MAX_FILE_CHARS)
        function = fields.str("function", required=False, max_len=MAX_FUNCTION_CHARS)
        context = _check_context(fields.raw("context"), "context")
    except ApiError as error:
        if prefix and "field" in error.details:
            field = str(error.details["field"])
            error.details["field"] = name(field)
            error.message = error.message.replace(f"'{field}'", f"'{name(field)}'")
        raise
    if category is not None and category.lower().startswith(RESERVED_CATEGORY_PREFIX):
        raise forbidden(
            f"Log categories starting with '{RESERVED_CATEGORY_PREFIX}' are reserved to the server",
            field=name("category"),
        )
    return {
        "level": level,
        "severity": _SEVERITY[level],
        "message": message,
        "context": context,
        "category": category,
        "file": file,
        "function": function,
        "project": principal.project,
        "environment": principal.environment,
        "subject": principal.sub,
        "subject_type": principal.subject_type,
        "tenant_id": principal.tenant_id,
    }


def _now_us(state: LocalState | None) -> int:
    # The app's injectable wall clock, when there is one, so tests control reception times.
    clock = getattr(state.extras.get("app"), "wall_clock", None) if state is not None else None
    return int(clock() * 1_000_000) if clock is not None else _micros(utcnow())


async def _insert(conn: AsyncConnection, values: Mapping[str, Any], state: LocalState | None = None) -> str:
    entry_id = new_id()
    await conn.execute(insert(logs_table).values(id=entry_id, dt_us=_now_us(state), **values))
    return entry_id


async def write_audit(
    conn: AsyncConnection,
    principal: Principal,
    message: str,
    context: Mapping[str, Any],
    category: str = "audit",
    *,
    state: LocalState | None = None,
) -> str:
    """Write an audit entry in the caller's transaction and return its id (for other services).

    The entry has level ``notice`` (spec 8.3) and a ``category`` that starts with ``audit``. It is stamped
    with the principal like any log entry; ``state`` (optional) lets its time follow the app's clock.
    """
    if not category.startswith(RESERVED_CATEGORY_PREFIX):
        raise ValueError(f"audit categories start with {RESERVED_CATEGORY_PREFIX!r}")
    return await _insert(
        conn,
        {
            "level": "notice",  # spec 8.3: audit records are notices
            "severity": _SEVERITY["notice"],
            "message": message,
            "context": dict(context),
            "category": category,
            "file": None,
            "function": None,
            "project": principal.project,
            "environment": principal.environment,
            "subject": principal.sub,
            "subject_type": principal.subject_type,
            "tenant_id": principal.tenant_id,
        },
        state,
    )


@router.post("/api/herald/log")
async def log(ctx: RequestContext) -> dict[str, Any]:
    values = _event_values(ctx.fields, ctx.subject)
    async with ctx.state.db.begin() as conn:
        entry_id = await _insert(conn, values, ctx.state)
    return {"stored": True, "id": entry_id}


@router.post("/api/herald/batch")
async def batch(ctx: RequestContext) -> dict[str, Any]:
    """Store 1 to 100 events, each on its own; failures are listed in ``errors`` with a 200 answer."""
    events = ctx.fields.list("events", min_items=1, max_items=MAX_BATCH, comma_split=False)
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            errors.append({"index": index, "code": "validation_failed", "error": "The event must be an object"})
            continue
        try:
            rows.append(_event_values(Fields(event), ctx.subject))
        except ApiError as error:
            errors.append({"index": index, "code": error.code, "error": error.message})
    if rows:
        async with ctx.state.db.begin() as conn:
            for values in rows:
                await _insert(conn, values, ctx.state)
    return {"total": len(events), "stored": len(rows), "failed": len(errors), "errors": errors}


@router.post("/api/herald/query", safe=True)
async def query(ctx: RequestContext) -> dict[str, Any]:
    """Entries of the caller's project and environment (others: admin only), newest first."""
    fields = ctx.fields
    principal = ctx.subject
    limit = fields.int("limit", default=100, min_value=1, max_value=1000)
    level = fields.str("level", required=False, choices=LEVELS)
    category = fields.str("category", required=False)
    file = fields.str("file", required=False)
    function = fields.str("function", required=False)
    search = fields.str("search", required=False)
    start = fields.timestamp("start_time")
    end = fields.timestamp("end_time")
    project = fields.str("project", required=False) or principal.project
    environment = fields.str("environment", required=False) or principal.environment
    if (project != principal.project or environment != principal.environment) and not principal.is_admin:
        raise forbidden(
            "Reading another project's or environment's logs is for administrators only",
            field="project" if project != principal.project else "environment",
        )
    t = logs_table
    statement = select(t).where(t.c.project == project, t.c.environment == environment)
    if level is not None:
        statement = statement.where(t.c.severity >= _SEVERITY[level])
    if category is not None:
        statement = statement.where(t.c.category == category)
    if file is not None:
        statement = statement.where(t.c.file == file)
    if function is not None:
        statement = statement.where(t.c.function == function)
    if search:
        statement = statement.where(func.lower(t.c.message).contains(search.lower(), autoescape=True))
    if start is not None:
        statement = statement.where(t.c.dt_us >= _micros(start))
    if end is not None:
        statement = statement.where(t.c.dt_us < _micros(end))
    statement = statement.order_by(t.c.dt_us.desc(), t.c.seq.desc()).limit(limit)
    async with ctx.state.db.begin() as conn:
        rows = (await conn.execute(statement)).all()
    logs = [_entry(row) for row in rows]
    return {"logs": logs, "count": len(logs)}
