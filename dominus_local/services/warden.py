"""Warden (spec 7.2): secrets of the calling token's project and environment, and the key set.

Every secret operation shares ``POST /api/warden/secrets``; the body's ``action`` picks it. Values are any
JSON value up to 64 KiB once serialised and are encrypted at rest with Fernet; the Fernet key is kept in
``<data_dir>/warden.key`` (mode 0600), or in memory for an ephemeral instance. ``list`` never returns values.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dominus_local.errors import ApiError, conflict, invalid, not_found
from dominus_local.routing import RequestContext, ServiceRouter
from dominus_local.security import signer, write_private_file
from dominus_local.state import LocalState
from dominus_local.stores.database import metadata
from dominus_local.validate import format_timestamp, utcnow

__all__ = ["KEY_PATTERN", "MAX_COMMENT_CHARS", "MAX_VALUE_BYTES", "router", "secrets_table"]

router = ServiceRouter("warden")

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.:/-]{1,256}$")
MAX_VALUE_BYTES = 64 * 1024
MAX_COMMENT_CHARS = 1000
KEY_FILE = "warden.key"
ACTIONS = ("get", "list", "update", "create", "delete")

secrets_table = Table(
    "warden_secrets",
    metadata,
    Column("project", String(128), primary_key=True),
    Column("environment", String(128), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value_encrypted", LargeBinary, nullable=False),
    Column("comment", Text, nullable=True),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


@dataclass
class WardenKeys:
    """The Fernet key that encrypts secret values at rest."""

    fernet: Fernet = field(repr=False)


@router.on_startup
async def _load_key(state: LocalState) -> None:
    data_dir = state.settings.data_dir
    if data_dir is None:
        key = Fernet.generate_key()
    else:
        path = data_dir / KEY_FILE
        if not path.exists():
            write_private_file(path, Fernet.generate_key())
        key = path.read_bytes().strip()
    state.extras["warden"] = WardenKeys(Fernet(key))


def _fernet(ctx: RequestContext) -> Fernet:
    keys = ctx.state.extras["warden"]
    assert isinstance(keys, WardenKeys)
    return keys.fernet


def _record(row: Any, value: Any = None, *, with_value: bool) -> dict[str, Any]:
    record: dict[str, Any] = {"key": row.key}
    if with_value:
        record["value"] = value
    record.update(
        comment=row.comment,
        version=row.version,
        created_at=format_timestamp(row.created_at),
        updated_at=format_timestamp(row.updated_at),
    )
    return record


def _encoded_value(ctx: RequestContext) -> bytes:
    if ctx.body.get("value") is None:
        raise invalid("value", "is required")
    try:
        encoded = json.dumps(ctx.body["value"], separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except ValueError:
        raise invalid("value", "must be a JSON value") from None
    if len(encoded) > MAX_VALUE_BYTES:
        raise ApiError(
            "payload_too_large",
            f"Field 'value' is larger than {MAX_VALUE_BYTES} bytes once serialised",
            details={"field": "value", "limit": MAX_VALUE_BYTES},
        )
    return encoded


async def _select(conn: AsyncConnection, project: str, environment: str, key: str) -> Any:
    t = secrets_table
    return (
        await conn.execute(select(t).where(t.c.project == project, t.c.environment == environment, t.c.key == key))
    ).first()


@router.post("/api/warden/secrets", safe=False)
async def secrets_endpoint(ctx: RequestContext) -> dict[str, Any]:
    """Dispatch on ``action``; secrets belong to the token's project and environment."""
    fields = ctx.fields
    action = fields.str("action", choices=ACTIONS)
    principal = ctx.subject
    project, environment = principal.project, principal.environment
    t = secrets_table
    scope = (t.c.project == project, t.c.environment == environment)

    if action == "list":
        prefix = fields.str("prefix", required=False, max_len=256)
        query = select(t.c.key, t.c.comment, t.c.version, t.c.created_at, t.c.updated_at).where(*scope)
        if prefix:
            query = query.where(func.substr(t.c.key, 1, len(prefix)) == prefix)
        async with ctx.state.db.begin() as conn:
            rows = (await conn.execute(query)).all()
        # Sorted here, not in SQL: database collations would disagree about the order.
        return {"secrets": [_record(row, with_value=False) for row in sorted(rows, key=lambda r: r.key)]}

    key = fields.str("key", pattern=KEY_PATTERN)
    fernet = _fernet(ctx)

    if action == "get":
        async with ctx.state.db.begin() as conn:
            row = await _select(conn, project, environment, key)
        if row is None:
            raise not_found("Secret", key)
        value = json.loads(fernet.decrypt(row.value_encrypted))
        return {"secret": _record(row, value, with_value=True)}

    if action == "delete":
        async with ctx.state.db.begin() as conn:
            result = await conn.execute(delete(t).where(*scope, t.c.key == key))
        if result.rowcount == 0:
            raise not_found("Secret", key)
        return {"deleted": True, "key": key}

    encrypted = fernet.encrypt(_encoded_value(ctx))
    comment = fields.str("comment", required=False, max_len=MAX_COMMENT_CHARS)
    now = utcnow()

    if action == "create":
        try:
            async with ctx.state.db.begin() as conn:
                if await _select(conn, project, environment, key) is not None:
                    raise conflict("A secret with this key already exists", field="key", key=key)
                await conn.execute(
                    insert(t).values(
                        project=project,
                        environment=environment,
                        key=key,
                        value_encrypted=encrypted,
                        comment=comment,
                        version=1,
                        created_at=now,
                        updated_at=now,
                    )
                )
                row = await _select(conn, project, environment, key)
        except IntegrityError:
            # A concurrent create won the race on PostgreSQL.
            raise conflict("A secret with this key already exists", field="key", key=key) from None
        return {"secret": _record(row, with_value=False)}

    # update: replace the value (and the comment when one is given), bump the version.
    values: dict[str, Any] = {"value_encrypted": encrypted, "version": t.c.version + 1, "updated_at": now}
    if comment is not None:
        values["comment"] = comment
    async with ctx.state.db.begin() as conn:
        result = await conn.execute(update(t).where(*scope, t.c.key == key).values(**values))
        if result.rowcount == 0:
            raise not_found("Secret", key)
        row = await _select(conn, project, environment, key)
    return {"secret": _record(row, with_value=False)}


@router.get("/api/warden/jwks")
async def warden_jwks(ctx: RequestContext) -> dict[str, Any]:
    """The same key set as ``GET /jwt/jwks``, for service tokens (spec 5.4)."""
    return signer(ctx.state).jwks()
