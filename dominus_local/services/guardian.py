"""Guardian: identities and access control (spec 7.6, 8.7).

Every endpoint is admin only and takes service tokens only (spec 5.9). The 142 endpoints come from one
generic implementation configured per entity: an :class:`Entity` lists its fields (validation, uniqueness,
references), its record columns, list filters and junctions; :func:`_install` registers CRUD and junction
routes for each. Entity-specific rules (passwords, PSKs, session revocation, delete guards, nav-item cycles)
are small hooks on the entity.

Every write runs in one transaction and adds an audit record through Herald. Audit contexts carry ids and
field names only, never passwords, PSKs or their digests.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from sqlalchemy import Index, Table, and_, asc, delete, desc, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from dominus_local import identity as idm
from dominus_local import security
from dominus_local.errors import ApiError, conflict, forbidden, invalid, not_found, unprocessable
from dominus_local.metrics import record_token_minted
from dominus_local.routing import Principal, RequestContext, ServiceRouter
from dominus_local.services import gateway
from dominus_local.services.herald import write_audit
from dominus_local.validate import Fields, format_timestamp, new_id, utcnow

router = ServiceRouter("guardian")

PREFIX = "/api/guardian"
MAX_LIMIT = 1000
MAX_DESCRIPTION = 4000
USERNAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
TENANT_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,54}$")
SCOPE_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

USER_STATUSES = ("active", "inactive", "suspended", "pending", "invited")
CLIENT_STATUSES = ("active", "inactive")
TENANT_STATUSES = ("active", "inactive")
NAV_ITEM_TYPES = ("link", "header", "group_label")

Kind = Literal["name", "text", "bool", "int", "ref", "choice", "pattern", "email", "page_path", "identifier"]


# --- value checks ----------------------------------------------------------------------------------------


def _check_name(name: str, value: Any) -> str:
    """Role names, labels, display names, titles: 1 to 128 characters, no control characters (spec 8.1)."""
    if not isinstance(value, str):
        raise invalid(name, "must be a string")
    if not 1 <= len(value) <= 128:
        raise invalid(name, "must be 1 to 128 characters")
    if _CONTROL.search(value):
        raise invalid(name, "must not contain control characters")
    return value


def _check_email(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise invalid(name, "must be a string")
    if len(value) > 254 or value.count("@") != 1 or value.startswith("@") or value.endswith("@"):
        raise invalid(name, "must be an e-mail address of at most 254 characters with exactly one '@'")
    if _CONTROL.search(value) or any(ch.isspace() for ch in value):
        raise invalid(name, "must not contain spaces or control characters")
    return value


def _check_page_path(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise invalid(name, "must be a string")
    if not value.startswith("/") or len(value) > 512:
        raise invalid(name, "must start with '/' and be at most 512 characters")
    if "?" in value or "#" in value:
        raise invalid(name, "must not contain a query or a fragment")
    if value != "/" and value.endswith("/"):
        raise invalid(name, "must not end with '/' (except the root '/')")
    if _CONTROL.search(value) or any(ch.isspace() for ch in value):
        raise invalid(name, "must not contain spaces or control characters")
    return value


@dataclass(frozen=True)
class FieldSpec:
    """One writable attribute of an entity.

    ``create``/``update`` say where it is accepted; ``required`` applies to create; ``nullable`` says whether
    an update may clear it with ``null``; ``unique`` is checked case-insensitively when ``ci``; ``ref`` names
    the table a UUID must exist in (else 422).
    """

    name: str
    kind: Kind
    required: bool = False
    default: Any = None
    nullable: bool = True
    create: bool = True
    update: bool = True
    unique: bool = False
    ci: bool = False
    ref: Table | None = None
    choices: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    stored: bool = True

    def read(self, fields: Fields) -> Any:
        """The validated value (``None`` for null), assuming the field is present."""
        value = fields.raw(self.name)
        if value is None:
            return None
        name = self.name
        if self.kind == "name":
            return _check_name(name, value)
        if self.kind == "text":
            return fields.str(name, max_len=MAX_DESCRIPTION)
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise invalid(name, "must be a boolean")
            return value
        if self.kind == "int":
            return fields.int(name, min_value=-(2**31), max_value=2**31 - 1)
        if self.kind == "ref":
            return fields.uuid(name)
        if self.kind == "choice":
            return fields.str(name, choices=self.choices)
        if self.kind == "pattern":
            return fields.str(name, pattern=self.pattern)
        if self.kind == "identifier":
            return fields.identifier(name)
        if self.kind == "email":
            return _check_email(name, value)
        return _check_page_path(name, value)


@dataclass(frozen=True)
class Relation:
    """A junction endpoint group: ``/{entity}/{id}/{segment}`` with body key ``key``."""

    segment: str
    key: str
    with_set: bool = False


Hook = Callable[["Op"], Awaitable[None]]


@dataclass(frozen=True)
class Entity:
    """Configuration of one Guardian entity: table, fields, record columns, lists and junctions."""

    segment: str
    table: Table
    label: str
    param: str
    fields: tuple[FieldSpec, ...]
    columns: tuple[str, ...]
    relations: tuple[Relation, ...] = ()
    list_filters: tuple[FieldSpec, ...] = ()
    order_by: tuple[str, ...] = ()
    default_order: str = "created_at"
    default_desc: bool = False
    updatable: bool = True
    before_create: Hook | None = None
    after_create: Hook | None = None
    before_update: Hook | None = None
    after_update: Hook | None = None
    before_delete: Hook | None = None
    extra_record: Callable[[Op], dict[str, Any]] | None = None


@dataclass
class Op:
    """One write in progress, handed to an entity's hooks."""

    ctx: RequestContext
    conn: AsyncConnection
    entity: Entity
    values: dict[str, Any]
    ident: str
    before: Mapping[Any, Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)


# --- shared helpers --------------------------------------------------------------------------------------


def _reject_hash_fields(ctx: RequestContext) -> None:
    """Spec 5.8: a body field named ``*_hash`` must never be stored as if it were a secret."""
    for name in ctx.body:
        if isinstance(name, str) and name.endswith("_hash"):
            raise invalid(name, "fields ending in '_hash' are not accepted; send the secret itself")


def _record(entity: Entity, row: Mapping[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in entity.columns:
        value = row[column]
        if hasattr(value, "isoformat"):
            value = format_timestamp(value)
        out[column] = value
    return out


async def _fetch(conn: AsyncConnection, entity: Entity, ident: str) -> Mapping[Any, Any]:
    row = (await conn.execute(select(entity.table).where(entity.table.c.id == ident))).mappings().first()
    if row is None:
        raise not_found(entity.label, ident)
    return row


BUILTIN_NAMES: dict[tuple[str, str], tuple[str, str]] = {
    ("tenant-categories", "slug"): (idm.ADMIN_SLUG, "tenant category"),
    ("tenants", "slug"): (idm.ADMIN_SLUG, "tenant"),
    ("roles", "name"): (idm.ADMIN_SLUG, "role"),
    ("scopes", "slug"): (idm.ADMIN_SLUG, "scope"),
    ("pages", "path"): ("/admin", "page"),
}
"""``(entity segment, unique field) -> (value, noun)`` of the admin category's entities (spec 7.12)."""


def _taken(entity: Entity, spec: FieldSpec, value: Any) -> ApiError:
    """The 409 for a unique value that is taken; it says so when the value is a built-in entity's, since an
    application that reuses ``admin`` or ``/admin`` would otherwise share (and change) the admin category.
    ``details.builtin`` is then true."""
    builtin = BUILTIN_NAMES.get((entity.segment, spec.name))
    if (
        builtin is not None
        and isinstance(value, str)
        and (value == builtin[0] or (spec.ci and value.lower() == builtin[0]))
    ):
        return conflict(
            f"'{builtin[0]}' is a built-in {builtin[1]} of Dominus; choose another {spec.name}",
            field=spec.name,
            builtin=True,
        )
    return conflict(f"A {entity.label.lower()} with this {spec.name} already exists", field=spec.name)


async def _check_unique(conn: AsyncConnection, entity: Entity, spec: FieldSpec, value: Any, ident: str | None) -> None:
    if value is None:
        return
    column = entity.table.c[spec.name]
    condition = func.lower(column) == value.lower() if spec.ci else column == value
    if ident is not None:
        condition = and_(condition, entity.table.c.id != ident)
    if (await conn.execute(select(entity.table.c.id).where(condition).limit(1))).first() is not None:
        raise _taken(entity, spec, value)


async def _check_refs(conn: AsyncConnection, field_name: str, table: Table, ids: Sequence[str]) -> None:
    """422 ``unprocessable`` naming the field and the ids that do not exist (spec 7.6)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return
    found = {str(i) for i in (await conn.execute(select(table.c.id).where(table.c.id.in_(wanted)))).scalars()}
    missing = [i for i in wanted if i not in found]
    if missing:
        raise unprocessable(f"Unknown id(s) in '{field_name}'", field=field_name, missing=missing)


async def _audit(op: Op, message: str, context: dict[str, Any]) -> None:
    await write_audit(op.conn, op.ctx.subject, message, context, category="audit")


def _write_error(entity: Entity, exc: IntegrityError) -> ApiError:
    """A constraint that raced past the pre-checks: report it as the conflict it is."""
    text = str(exc.orig).lower() if exc.orig is not None else ""
    for spec in entity.fields:
        if spec.unique and spec.name in text:
            return conflict(f"A {entity.label.lower()} with this {spec.name} already exists", field=spec.name)
    return conflict(f"The {entity.label.lower()} conflicts with existing data")


# --- generic CRUD ----------------------------------------------------------------------------------------


async def _validate_writes(
    conn: AsyncConnection, entity: Entity, fields: Fields, *, creating: bool, ident: str | None
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for spec in entity.fields:
        allowed = spec.create if creating else spec.update
        if not allowed or not fields.present(spec.name):
            if creating and spec.create:
                if spec.required and fields.raw(spec.name) is None:
                    raise invalid(spec.name, "is required")
                values[spec.name] = spec.default
            continue
        value = spec.read(fields)
        if value is None:
            if creating:
                if spec.required:
                    raise invalid(spec.name, "is required")
                value = spec.default
            elif not spec.nullable:
                raise invalid(spec.name, "must not be null")
        values[spec.name] = value
    for spec in entity.fields:
        if spec.name not in values:
            continue
        value = values[spec.name]
        if spec.unique:
            await _check_unique(conn, entity, spec, value, ident)
        if spec.ref is not None and value is not None:
            await _check_refs(conn, spec.name, spec.ref, [value])
    return values


def _stored(entity: Entity, values: Mapping[str, Any]) -> dict[str, Any]:
    names = {spec.name for spec in entity.fields if spec.stored}
    return {k: v for k, v in values.items() if k in names}


def _make_create(entity: Entity) -> Callable[[RequestContext], Awaitable[dict[str, Any]]]:
    async def create(ctx: RequestContext) -> dict[str, Any]:
        _reject_hash_fields(ctx)
        fields = ctx.fields
        async with ctx.state.db.begin() as conn:
            values = await _validate_writes(conn, entity, fields, creating=True, ident=None)
            op = Op(ctx, conn, entity, values, new_id())
            if entity.before_create is not None:
                await entity.before_create(op)
            now = utcnow()
            row = {"id": op.ident, **_stored(entity, op.values), "created_at": now}
            if "updated_at" in entity.table.c:
                row["updated_at"] = now
            try:
                await conn.execute(insert(entity.table).values(**row))
            except IntegrityError as exc:
                raise _write_error(entity, exc) from None
            if entity.after_create is not None:
                await entity.after_create(op)
            record = _record(entity, await _fetch(conn, entity, op.ident))
            if entity.extra_record is not None:
                record.update(entity.extra_record(op))
            await _audit(
                op,
                f"guardian: created {entity.label.lower()} {op.ident}",
                {"entity": entity.segment, "id": op.ident, "fields": sorted(_stored(entity, op.values))},
            )
            return record

    create.__name__ = f"create_{entity.segment}"
    return create


def _make_get(entity: Entity) -> Callable[[RequestContext], Awaitable[dict[str, Any]]]:
    async def get(ctx: RequestContext) -> dict[str, Any]:
        ident = ctx.path_uuid(entity.param)
        async with ctx.state.db.begin() as conn:
            return _record(entity, await _fetch(conn, entity, ident))

    get.__name__ = f"get_{entity.segment}"
    return get


def _paging(query: Fields) -> tuple[int, int]:
    limit = query.int("limit", default=100, min_value=1, max_value=MAX_LIMIT)
    offset = query.int("offset", default=0, min_value=0)
    return int(limit), int(offset)


def _make_list(entity: Entity) -> Callable[[RequestContext], Awaitable[dict[str, Any]]]:
    async def list_(ctx: RequestContext) -> dict[str, Any]:
        query = ctx.query
        limit, offset = _paging(query)
        table = entity.table
        conditions: list[ColumnElement[bool]] = []
        for spec in entity.list_filters:
            if query.raw(spec.name) is None:
                continue
            if spec.kind == "bool":
                value = query.bool(spec.name)
            elif spec.kind == "ref":
                value = query.uuid(spec.name)
            else:
                value = spec.read(query)
            if spec.name == "tenant_id" and entity.segment == "nav-items":
                junction = idm.JUNCTIONS[("nav-items", "tenants")].table
                conditions.append(exists().where(junction.c.nav_id == table.c.id, junction.c.tenant_id == value))
            else:
                conditions.append(table.c[spec.name] == value)
        order_column = entity.default_order
        descending = entity.default_desc
        if entity.order_by:
            order_column = query.str("order_by", required=False, default=entity.default_order, choices=entity.order_by)
            chosen = query.bool("order_desc")
            if chosen is not None:
                descending = bool(chosen)
        direction = desc if descending else asc
        ordering = [direction(table.c[order_column]), direction(table.c.id)]
        async with ctx.state.db.begin() as conn:
            total = (await conn.execute(select(func.count()).select_from(table).where(*conditions))).scalar_one()
            rows = (
                await conn.execute(select(table).where(*conditions).order_by(*ordering).limit(limit).offset(offset))
            ).mappings()
            return {"items": [_record(entity, row) for row in rows], "total": int(total)}

    list_.__name__ = f"list_{entity.segment}"
    return list_


def _make_update(entity: Entity) -> Callable[[RequestContext], Awaitable[dict[str, Any]]]:
    async def update_(ctx: RequestContext) -> dict[str, Any]:
        _reject_hash_fields(ctx)
        ident = ctx.path_uuid(entity.param)
        fields = ctx.fields
        async with ctx.state.db.begin() as conn:
            before = await _fetch(conn, entity, ident)
            values = await _validate_writes(conn, entity, fields, creating=False, ident=ident)
            op = Op(ctx, conn, entity, values, ident, before=before)
            if entity.before_update is not None:
                await entity.before_update(op)
            stored = _stored(entity, op.values)
            if stored:
                try:
                    await conn.execute(
                        update(entity.table).where(entity.table.c.id == ident).values(**stored, updated_at=utcnow())
                    )
                except IntegrityError as exc:
                    raise _write_error(entity, exc) from None
            if entity.after_update is not None:
                await entity.after_update(op)
            await _audit(
                op,
                f"guardian: updated {entity.label.lower()} {ident}",
                {"entity": entity.segment, "id": ident, "fields": sorted(stored)},
            )
            return _record(entity, await _fetch(conn, entity, ident))

    update_.__name__ = f"update_{entity.segment}"
    return update_


def _make_delete(entity: Entity) -> Callable[[RequestContext], Awaitable[dict[str, Any]]]:
    async def delete_(ctx: RequestContext) -> dict[str, Any]:
        _reject_hash_fields(ctx)
        ident = ctx.path_uuid(entity.param)
        async with ctx.state.db.begin() as conn:
            before = await _fetch(conn, entity, ident)
            op = Op(ctx, conn, entity, {}, ident, before=before)
            if entity.before_delete is not None:
                await entity.before_delete(op)
            await idm.delete_with_links(conn, entity.table, [ident])
            await _audit(
                op, f"guardian: deleted {entity.label.lower()} {ident}", {"entity": entity.segment, "id": ident}
            )
            return {"deleted": True, "id": ident}

    delete_.__name__ = f"delete_{entity.segment}"
    return delete_


# --- junctions -------------------------------------------------------------------------------------------


async def _linked(conn: AsyncConnection, junction: idm.Junction, owner_id: str) -> dict[str, Any]:
    target = junction.target
    target_entity = ENTITY_BY_TABLE[target.name]
    rows = (
        await conn.execute(
            select(target)
            .join(junction.table, junction.table.c[junction.target_col] == target.c.id)
            .where(junction.table.c[junction.owner_col] == owner_id)
            .order_by(target.c.created_at, target.c.id)
        )
    ).mappings()
    items = [_record(target_entity, row) for row in rows]
    return {"items": items, "total": len(items)}


def _make_junction(
    entity: Entity, relation: Relation, action: Literal["get", "add", "remove", "set"]
) -> Callable[[RequestContext], Awaitable[dict[str, Any]]]:
    junction = idm.JUNCTIONS[(entity.segment, relation.segment)]

    async def handler(ctx: RequestContext) -> dict[str, Any]:
        if action != "get":
            _reject_hash_fields(ctx)
        ident = ctx.path_uuid(entity.param)
        ids: list[str] = []
        if action != "get":
            ids = list(dict.fromkeys(ctx.fields.uuid_list(relation.key, min_items=0 if action == "set" else 1)))
        async with ctx.state.db.begin() as conn:
            await _fetch(conn, entity, ident)
            if action == "get":
                return await _linked(conn, junction, ident)
            table = junction.table
            owner = table.c[junction.owner_col]
            target = table.c[junction.target_col]
            if action in ("add", "set"):
                await _check_refs(conn, relation.key, junction.target, ids)
            if action == "add":
                await idm.link(conn, junction, ident, ids)
            elif action == "remove":
                await conn.execute(delete(table).where(owner == ident, target.in_(ids)))
            else:
                await conn.execute(delete(table).where(owner == ident))
                await idm.link(conn, junction, ident, ids)
            op = Op(ctx, conn, entity, {}, ident)
            await _audit(
                op,
                f"guardian: {action} {entity.label.lower()} {relation.segment} {ident}",
                {"entity": entity.segment, "id": ident, "relation": relation.segment, relation.key: ids},
            )
            return await _linked(conn, junction, ident)

    handler.__name__ = f"{action}_{entity.segment}_{relation.segment}"
    return handler


# --- entity-specific rules -------------------------------------------------------------------------------


async def _user_before_create(op: Op) -> None:
    password = op.ctx.fields.raw("password")
    status = op.values.get("status") or "active"
    if status == "invited":
        if not op.values.get("email"):
            raise invalid("email", "is required for an invited user")
        if password is not None:
            op.values["password_hash"] = await _hash(op, idm.validate_password(password))
    else:
        if password is None:
            raise invalid("password", "is required unless status is 'invited'")
        op.values["password_hash"] = await _hash(op, idm.validate_password(password))
    op.values.pop("password", None)
    op.extras["inviter_name"] = op.values.pop("inviter_name", None)


async def _user_after_create(op: Op) -> None:
    op.extras["invitation_sent"] = False
    if op.values.get("status") == "invited":
        op.extras["invitation_sent"] = await _send_invitation(op)


async def _send_invitation(op: Op) -> bool:
    """Ask Portal to issue the invitation token and send the ``invitation`` e-mail (spec 8.10)."""
    # Imported here: Portal builds on Guardian's tables, so the dependency must not run the other way at import.
    from dominus_local.services.portal import issue_invitation

    return await issue_invitation(op.conn, op.ctx.state, op.ident, inviter_name=op.extras.get("inviter_name"))


async def _hash(op: Op, password: str) -> str:
    rounds = int(getattr(op.ctx.state.settings, "bcrypt_rounds", 12))
    # bcrypt is deliberately slow: keep it off the event loop.
    return await asyncio.to_thread(idm.hash_password, password, rounds)


async def _user_after_update(op: Op) -> None:
    status = op.values.get("status")
    if status is not None and status != "active":
        await idm.revoke_sessions(op.conn, subject_type="user", subject_id=op.ident, reason="status_changed")


async def _user_before_delete(op: Op) -> None:
    await idm.revoke_sessions(op.conn, subject_type="user", subject_id=op.ident, reason="user_deleted")


async def _client_before_create(op: Op) -> None:
    psk = idm.new_psk()
    op.extras["psk"] = psk
    op.values["psk_digest"] = idm.psk_digest(psk)
    op.values["status"] = "active"
    op.values["is_bootstrap"] = False


async def _client_before_update(op: Op) -> None:
    assert op.before is not None
    if op.before["is_bootstrap"] and op.values.get("status") not in (None, "active"):
        raise conflict("The bootstrap client cannot be deactivated", field="status")


async def _client_after_update(op: Op) -> None:
    assert op.before is not None
    if op.values.get("status") not in (None, "active"):
        await idm.revoke_sessions(op.conn, subject_type="client", subject_id=op.ident, reason="client_inactive")


async def _client_before_delete(op: Op) -> None:
    assert op.before is not None
    if op.before["is_bootstrap"]:
        raise conflict("The bootstrap client cannot be deleted", field="id")
    await idm.revoke_sessions(op.conn, subject_type="client", subject_id=op.ident, reason="client_deleted")


def tenant_schema_key(slug: str) -> str:
    """What a tenant's slug becomes in names derived from it: Smith's schema ``tenant_<slug>`` maps ``-`` to
    ``_`` (spec 8.1), so two slugs that differ only there would share one schema."""
    return slug.replace("-", "_")


async def _tenant_before_create(op: Op) -> None:
    """409 when another tenant's slug maps to the same schema name (``red-team`` and ``red_team``).

    Sharing ``tenant_red_team`` would let each tenant's users read the other's rows, so the second tenant is
    refused, naming the first one and the schema. The unique index below closes the race of two creates.
    """
    slug = op.values.get("slug")
    if not isinstance(slug, str):
        return
    key = tenant_schema_key(slug)
    tenants = idm.tenants
    other = (
        await op.conn.execute(
            select(tenants.c.slug).where(func.replace(tenants.c.slug, "-", "_") == key, tenants.c.id != op.ident)
        )
    ).scalar()
    if other is not None:
        schema = f"tenant_{key}"
        raise conflict(
            f"The slug '{slug}' maps to the schema '{schema}' of the tenant '{other}'; slugs that differ only "
            "by '-' and '_' cannot both be used",
            field="slug",
            tenant_slug=str(other),
            schema=schema,
        )


# Race-proof twin of _tenant_before_create on databases created from now on (an existing database keeps the
# check above only: an index cannot be added where colliding slugs may already exist).
Index("uq_guardian_tenants_schema", func.replace(idm.tenants.c.slug, "-", "_"), unique=True)


async def _tenant_before_delete(op: Op) -> None:
    await idm.revoke_sessions(op.conn, tenant_id=op.ident, reason="tenant_deleted")


async def _category_before_delete(op: Op) -> None:
    used = (await op.conn.execute(select(func.count()).where(idm.tenants.c.category_id == op.ident))).scalar_one()
    if used:
        raise conflict("The tenant category still has tenants", field="id", tenants=int(used))


async def _page_before_delete(op: Op) -> None:
    used = (await op.conn.execute(select(func.count()).where(idm.nav_items.c.page_id == op.ident))).scalar_one()
    if used:
        raise conflict("Navigation items still point at this page", field="id", nav_items=int(used))


async def _nav_before_delete(op: Op) -> None:
    used = (await op.conn.execute(select(func.count()).where(idm.nav_items.c.parent_id == op.ident))).scalar_one()
    if used:
        raise conflict("The navigation item still has children", field="id", children=int(used))


async def _nav_check_parent(op: Op) -> None:
    """``parent_id`` must not be the item itself or one of its descendants (spec 8.7: a cycle is 422)."""
    parent = op.values.get("parent_id")
    if parent is None:
        return
    seen: set[str] = set()
    current: str | None = parent
    while current is not None and current not in seen:
        if current == op.ident:
            raise unprocessable("parent_id would make a cycle", field="parent_id", reason="cycle")
        seen.add(current)
        found = (await op.conn.execute(select(idm.nav_items.c.parent_id).where(idm.nav_items.c.id == current))).scalar()
        current = None if found is None else str(found)


async def _secure_table_before_create(op: Op) -> None:
    op.values["schema_name"] = op.values.get("schema_name") or "public"
    found = (
        await op.conn.execute(
            select(idm.secure_tables.c.id).where(
                idm.secure_tables.c.schema_name == op.values["schema_name"],
                idm.secure_tables.c.table_name == op.values["table_name"],
            )
        )
    ).first()
    if found is not None:
        raise conflict("This table is already registered as secure", field="table_name")


# --- the entities ----------------------------------------------------------------------------------------


def _name(name: str, **options: Any) -> FieldSpec:
    return FieldSpec(name, "name", nullable=False, **options)


def _text(name: str = "description") -> FieldSpec:
    return FieldSpec(name, "text")


def _rel(segment: str, key: str, with_set: bool = False) -> Relation:
    return Relation(segment, key, with_set)


USERS = Entity(
    "users",
    idm.users,
    "User",
    "user_id",
    (
        FieldSpec("username", "pattern", required=True, nullable=False, unique=True, ci=True, pattern=USERNAME),
        FieldSpec("email", "email", unique=True, ci=True),
        FieldSpec("password", "text", update=False, stored=False),
        FieldSpec("status", "choice", default="active", nullable=False, choices=USER_STATUSES),
        FieldSpec("inviter_name", "name", update=False, stored=False),
        FieldSpec("password_hash", "text", create=False, update=False),
    ),
    ("id", "username", "email", "status", "created_at", "updated_at", "last_login_at"),
    relations=(
        _rel("roles", "role_ids"),
        _rel("scopes", "scope_ids"),
        _rel("tenants", "tenant_ids"),
        _rel("subtypes", "subtype_ids"),
    ),
    list_filters=(FieldSpec("status", "choice", choices=USER_STATUSES),),
    order_by=("created_at", "updated_at", "username", "email"),
    default_desc=True,
    before_create=_user_before_create,
    after_create=_user_after_create,
    after_update=_user_after_update,
    before_delete=_user_before_delete,
    extra_record=lambda op: {"invitation_sent": bool(op.extras.get("invitation_sent"))},
)

ROLES = Entity(
    "roles",
    idm.roles,
    "Role",
    "role_id",
    (_name("name", required=True, unique=True), _text()),
    ("id", "name", "description", "created_at", "updated_at"),
    relations=(
        _rel("scopes", "scope_ids"),
        _rel("tenants", "tenant_ids"),
        _rel("categories", "category_ids"),
        _rel("subtypes", "subtype_ids"),
    ),
)

SCOPES = Entity(
    "scopes",
    idm.scopes,
    "Scope",
    "scope_id",
    (
        FieldSpec("slug", "pattern", required=True, nullable=False, unique=True, pattern=SCOPE_SLUG),
        _name("display_name", required=True),
        _text(),
    ),
    ("id", "slug", "display_name", "description", "created_at", "updated_at"),
    relations=(_rel("tenants", "tenant_ids"), _rel("categories", "category_ids")),
)

CLIENTS = Entity(
    "clients",
    idm.clients,
    "Client",
    "client_id",
    (
        _name("label", required=True),
        _text(),
        FieldSpec("status", "choice", create=False, nullable=False, choices=CLIENT_STATUSES),
        FieldSpec("psk_digest", "text", create=False, update=False),
        FieldSpec("is_bootstrap", "bool", create=False, update=False),
    ),
    ("id", "label", "description", "status", "is_bootstrap", "created_at", "updated_at", "last_used_at"),
    relations=(
        _rel("tenants", "tenant_ids"),
        _rel("roles", "role_ids"),
        _rel("scopes", "scope_ids"),
        _rel("subtypes", "subtype_ids"),
    ),
    before_create=_client_before_create,
    before_update=_client_before_update,
    after_update=_client_after_update,
    before_delete=_client_before_delete,
    extra_record=lambda op: {"psk": op.extras["psk"]},
)

TENANTS = Entity(
    "tenants",
    idm.tenants,
    "Tenant",
    "tenant_id",
    (
        _name("name", required=True),
        FieldSpec("slug", "pattern", required=True, nullable=False, update=False, unique=True, pattern=TENANT_SLUG),
        FieldSpec("display_name", "name"),
        _text(),
        FieldSpec("category_id", "ref", ref=idm.categories),
        FieldSpec("status", "choice", create=False, default="active", nullable=False, choices=TENANT_STATUSES),
    ),
    ("id", "name", "slug", "display_name", "description", "category_id", "status", "created_at", "updated_at"),
    list_filters=(FieldSpec("status", "choice", choices=TENANT_STATUSES), FieldSpec("category_id", "ref")),
    before_create=_tenant_before_create,
    before_delete=_tenant_before_delete,
)

CATEGORIES = Entity(
    "tenant-categories",
    idm.categories,
    "Tenant category",
    "category_id",
    (
        _name("name", required=True),
        FieldSpec("slug", "pattern", required=True, nullable=False, update=False, unique=True, pattern=TENANT_SLUG),
        _text(),
        FieldSpec("color", "pattern", default="#3B82F6", nullable=False, pattern=COLOR),
    ),
    ("id", "name", "slug", "description", "color", "created_at", "updated_at"),
    before_delete=_category_before_delete,
)

SUBTYPES = Entity(
    "subtypes",
    idm.subtypes,
    "Subtype",
    "subtype_id",
    (
        _name("name", required=True),
        FieldSpec("slug", "pattern", required=True, nullable=False, update=False, unique=True, pattern=TENANT_SLUG),
        _text(),
    ),
    ("id", "name", "slug", "description", "created_at", "updated_at"),
    relations=(_rel("tenants", "tenant_ids"), _rel("categories", "category_ids"), _rel("scopes", "scope_ids")),
)

PAGES = Entity(
    "pages",
    idm.pages,
    "Page",
    "page_id",
    (
        FieldSpec("path", "page_path", required=True, nullable=False, unique=True),
        _name("name", required=True),
        _text(),
        FieldSpec("is_active", "bool", default=True, nullable=False),
        FieldSpec("show_in_nav", "bool", default=True, nullable=False),
    ),
    ("id", "path", "name", "description", "is_active", "show_in_nav", "created_at", "updated_at"),
    relations=(
        _rel("tenants", "tenant_ids", True),
        _rel("scopes", "scope_ids", True),
        _rel("categories", "category_ids", True),
        _rel("excluded-scopes", "scope_ids", True),
        _rel("excluded-roles", "role_ids", True),
    ),
    list_filters=(FieldSpec("is_active", "bool"),),
    before_delete=_page_before_delete,
)

NAV_ITEMS = Entity(
    "nav-items",
    idm.nav_items,
    "Navigation item",
    "nav_id",
    (
        _name("title", required=True),
        FieldSpec("icon", "name"),
        _text(),
        FieldSpec("page_id", "ref", ref=idm.pages),
        FieldSpec("parent_id", "ref", ref=idm.nav_items),
        FieldSpec("item_type", "choice", default="link", nullable=False, choices=NAV_ITEM_TYPES),
        FieldSpec("is_active", "bool", default=True, nullable=False),
        FieldSpec("sort_order", "int", default=0, nullable=False),
        FieldSpec("is_expanded_default", "bool", default=False, nullable=False),
    ),
    (
        "id",
        "title",
        "icon",
        "description",
        "page_id",
        "parent_id",
        "item_type",
        "is_active",
        "sort_order",
        "is_expanded_default",
        "created_at",
        "updated_at",
    ),
    relations=(
        _rel("tenants", "tenant_ids"),
        _rel("scopes", "scope_ids"),
        _rel("roles", "role_ids"),
        _rel("subtypes", "subtype_ids"),
        _rel("categories", "category_ids"),
    ),
    list_filters=(FieldSpec("tenant_id", "ref"), FieldSpec("parent_id", "ref"), FieldSpec("is_active", "bool")),
    order_by=("sort_order", "title", "created_at"),
    default_order="sort_order",
    before_update=_nav_check_parent,
    before_delete=_nav_before_delete,
)

SECURE_TABLES = Entity(
    "secure-tables",
    idm.secure_tables,
    "Secure table",
    "secure_table_id",
    (
        FieldSpec("table_name", "identifier", required=True, nullable=False),
        FieldSpec("schema_name", "identifier", default="public", nullable=False),
    ),
    ("id", "schema_name", "table_name", "created_at"),
    relations=(_rel("scopes", "scope_ids"),),
    updatable=False,
    before_create=_secure_table_before_create,
)

ENTITIES: tuple[Entity, ...] = (
    USERS,
    ROLES,
    SCOPES,
    CLIENTS,
    TENANTS,
    CATEGORIES,
    SUBTYPES,
    PAGES,
    NAV_ITEMS,
    SECURE_TABLES,
)
ENTITY_BY_TABLE: dict[str, Entity] = {entity.table.name: entity for entity in ENTITIES}


# --- entity extras: passwords and PSKs -------------------------------------------------------------------


@router.put(f"{PREFIX}/users/{{user_id}}/password", admin=True)
async def update_password(ctx: RequestContext) -> dict[str, Any]:
    """Set a user's password and revoke every session of the user (spec 5.7)."""
    _reject_hash_fields(ctx)
    ident = ctx.path_uuid("user_id")
    password = idm.validate_password(ctx.fields.raw("password") if ctx.fields.present("password") else None)
    rounds = int(getattr(ctx.state.settings, "bcrypt_rounds", 12))
    hashed = await asyncio.to_thread(idm.hash_password, password, rounds)
    async with ctx.state.db.begin() as conn:
        await _fetch(conn, USERS, ident)
        await conn.execute(
            update(idm.users).where(idm.users.c.id == ident).values(password_hash=hashed, updated_at=utcnow())
        )
        revoked = await idm.revoke_sessions(conn, subject_type="user", subject_id=ident, reason="password_changed")
        op = Op(ctx, conn, USERS, {}, ident)
        await _audit(op, f"guardian: password set for user {ident}", {"id": ident, "revoked_sessions": revoked})
    return {"updated": True, "user_id": ident}


@router.post(f"{PREFIX}/users/{{user_id}}/verify-password", admin=True, safe=True)
async def verify_password(ctx: RequestContext) -> dict[str, Any]:
    """Whether ``password`` is the user's password; changes nothing."""
    _reject_hash_fields(ctx)
    ident = ctx.path_uuid("user_id")
    password = ctx.fields.str("password")
    async with ctx.state.db.begin() as conn:
        row = await _fetch(conn, USERS, ident)
    valid = await asyncio.to_thread(idm.check_password, password, row["password_hash"])
    return {"valid": valid}


@router.post(f"{PREFIX}/clients/{{client_id}}/regenerate-psk", admin=True, replay=False)
async def regenerate_psk(ctx: RequestContext) -> dict[str, Any]:
    """Give the client a new PSK, shown only in this answer; the old one stops working at once."""
    _reject_hash_fields(ctx)
    ident = ctx.path_uuid("client_id")
    psk = idm.new_psk()
    async with ctx.state.db.begin() as conn:
        await _fetch(conn, CLIENTS, ident)
        await conn.execute(
            update(idm.clients)
            .where(idm.clients.c.id == ident)
            .values(psk_digest=idm.psk_digest(psk), updated_at=utcnow())
        )
        op = Op(ctx, conn, CLIENTS, {}, ident)
        await _audit(op, f"guardian: regenerated PSK of client {ident}", {"id": ident})
        record = _record(CLIENTS, await _fetch(conn, CLIENTS, ident))
    record["psk"] = psk
    return record


@router.post(f"{PREFIX}/clients/{{client_id}}/verify-psk", admin=True, safe=True)
async def verify_psk(ctx: RequestContext) -> dict[str, Any]:
    """Whether ``psk`` is the client's current PSK; changes nothing."""
    _reject_hash_fields(ctx)
    ident = ctx.path_uuid("client_id")
    psk = ctx.fields.str("psk")
    async with ctx.state.db.begin() as conn:
        row = await _fetch(conn, CLIENTS, ident)
    stored = row["psk_digest"] or ""
    return {"valid": bool(stored) and hmac.compare_digest(stored, idm.psk_digest(psk))}


# --- registration ----------------------------------------------------------------------------------------


def _install() -> None:
    for entity in ENTITIES:
        base = f"{PREFIX}/{entity.segment}"
        item = f"{base}/{{{entity.param}}}"
        router.post(base, admin=True, replay=entity is not CLIENTS)(_make_create(entity))
        router.get(item, admin=True)(_make_get(entity))
        router.get(base, admin=True)(_make_list(entity))
        if entity.updatable:
            router.put(item, admin=True)(_make_update(entity))
        router.delete(item, admin=True)(_make_delete(entity))
        for relation in entity.relations:
            path = f"{item}/{relation.segment}"
            router.get(path, admin=True)(_make_junction(entity, relation, "get"))
            router.post(path, admin=True)(_make_junction(entity, relation, "add"))
            router.delete(path, admin=True)(_make_junction(entity, relation, "remove"))
            if relation.with_set:
                router.put(path, admin=True)(_make_junction(entity, relation, "set"))


_install()

__all__ = ["ENTITIES", "Entity", "FieldSpec", "router"]


# --- application-minted user tokens (spec 5.7, 7.1) ------------------------------------------------------

MINT_MIN_SECONDS = 60
MINT_MAX_SECONDS = 3600


async def mint_user_token(ctx: RequestContext, client_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``auth.mint`` at ``POST {gateway}/jwt/mint``: a user session token minted by an administrator client.

    The caller's admin status is worked out as for its service token (its tenant when it has exactly one).
    ``scope`` (a list, or a space-separated string) narrows the token's scopes to those the user holds; a
    slug the user lacks gets 403 with ``details.missing``. A session is opened that expires with the token.
    """
    fields = Fields(params)
    user_id = fields.uuid("user_id")
    system = fields.str("system", required=False, default="user")
    if system != "user":
        raise invalid("system", "must be 'user'")
    expires_in = int(fields.int("expires_in", default=900, min_value=MINT_MIN_SECONDS, max_value=MINT_MAX_SECONDS))
    raw_scope = fields.raw("scope")
    requested: list[str] | None = None
    if isinstance(raw_scope, str):
        requested = raw_scope.split()
    elif raw_scope is not None:
        requested = list(fields.str_list("scope"))
    tenant = fields.raw("tenant_id")
    state = ctx.state
    token_signer = security.signer(state)
    async with state.db.begin() as conn:
        caller_tenant = await idm.default_tenant(conn, "client", client_id, exactly_one=True)
        caller = await idm.access_for(conn, "client", client_id, caller_tenant)
        if "admin" not in caller.roles:
            raise forbidden("Only administrator clients may mint user tokens")
        user = (await conn.execute(select(idm.users.c.status).where(idm.users.c.id == user_id))).first()
        if user is None:
            raise not_found("User", user_id)
        if user.status != "active":
            raise ApiError("account_inactive", "The user's account is not active")
        if tenant is not None:
            if not isinstance(tenant, str):
                raise invalid("tenant_id", "must be a tenant UUID or slug")
            tenant_id: str | None = await idm.resolve_tenant(conn, "user", user_id, tenant)
        else:
            tenant_id = await idm.default_tenant(conn, "user", user_id)
        access = await idm.access_for(conn, "user", user_id, tenant_id)
        token_scopes = list(access.scopes)
        if requested is not None:
            wanted = list(dict.fromkeys(requested))
            missing = [slug for slug in wanted if slug not in access.scopes]
            if missing:
                raise forbidden("The user does not hold every requested scope", field="scope", missing=missing)
            token_scopes = wanted
        issued = token_signer.clock()
        sid = new_id()
        await conn.execute(
            insert(idm.sessions).values(
                id=sid,
                kind="user",
                subject_type="user",
                subject_id=user_id,
                tenant_id=tenant_id,
                created_at=datetime.fromtimestamp(issued, timezone.utc),
                last_seen_at=None,
                expires_at=datetime.fromtimestamp(issued + expires_in, timezone.utc),
                extra={"minted_by": client_id},
            )
        )
        claims = {
            "sub": user_id,
            "subject_type": "user",
            "tenant_id": tenant_id,
            **access.tenant_claims(),
            "roles": list(access.roles),
            "scopes": token_scopes,
            "sid": sid,
            "project_slug": state.settings.project_slug,
            "environment": state.settings.environment,
        }
        token = token_signer.issue_token(claims, ttl=expires_in)
        principal = Principal(
            "client",
            client_id,
            caller_tenant,
            caller.roles,
            caller.scopes,
            None,
            state.settings.project_slug,
            state.settings.environment,
        )
        await write_audit(
            conn,
            principal,
            f"guardian: minted a user token for user {user_id}",
            {"user_id": user_id, "session_id": sid, "expires_in": expires_in, "tenant_id": tenant_id},
        )
    record_token_minted(state)
    return {"access_token": token, "token_type": "bearer", "expires_in": expires_in, "session_id": sid}


gateway.register_mint_method("auth.mint", mint_user_token)
