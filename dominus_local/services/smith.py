"""Smith: DDL, migrations and tenant-schema provisioning (spec 7.7, 8.6).

Every schema change goes through :meth:`Engine.apply`, which validates it, applies it through the
user-data layer (:mod:`dominus_local.stores.userdata`), keeps Smith's catalogue of table definitions in step
and returns the structured inverse. The change is then recorded in its stream (a schema's, or a tenant
category's) with ``up``/``down`` SQL in PostgreSQL form. Rollback and category replay run the stored
structured operations again, never the recorded text. Each request runs in one transaction, so a failing
change leaves the schema, the catalogue and the migration history as they were.

Tenant schemas provisioned from a category follow that category's stream: their ``version`` in the
provisioning answers is the category version applied to them. Direct changes to a tenant schema go to the
schema's own stream (``migrations/list/{schema}``) and do not change that version.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, Boolean, Column, DateTime, Integer, RowMapping, String, Table, Text, UniqueConstraint
from sqlalchemy.ext.asyncio import AsyncConnection

from dominus_local import identity
from dominus_local.errors import ApiError, conflict, invalid, not_found, unprocessable
from dominus_local.routing import RequestContext, ServiceRouter
from dominus_local.state import LocalState
from dominus_local.stores.database import metadata
from dominus_local.stores.limits import limited_transaction
from dominus_local.stores.userdata import (
    EXPR_NOW,
    EXPR_UUID,
    ColumnDef,
    IndexDef,
    PostgresUserData,
    TableDef,
    UserData,
    check_default,
    database_errors,
    parse_columns,
    parse_constraint,
    require_type,
    userdata_for,
)
from dominus_local.validate import IDENTIFIER, format_timestamp, utcnow

router = ServiceRouter("smith")

schemas_table = Table(
    "smith_schemas",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("tenant_slug", String(55), nullable=True, unique=True),
    Column("category_slug", String(55), nullable=True),
    Column("category_version", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

tables_table = Table(
    "smith_tables",
    metadata,
    Column("schema_name", String(80), primary_key=True),
    Column("table_name", String(63), primary_key=True),
    Column("definition", JSON, nullable=False),
)

migrations_table = Table(
    "smith_migrations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("stream_kind", String(16), nullable=False),
    Column("stream", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    Column("name", String(255), nullable=False),
    Column("operation", String(32), nullable=False),
    Column("up", Text, nullable=False),
    Column("down", Text, nullable=True),
    Column("reversible", Boolean, nullable=False),
    Column("op", JSON, nullable=False),
    Column("inverse", JSON, nullable=True),
    Column("applied_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(255), nullable=False),
    UniqueConstraint("stream_kind", "stream", "version", name="uq_smith_migrations_stream_version"),
)

history_table = Table(
    "smith_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("stream_kind", String(16), nullable=False),
    Column("stream", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    Column("action", String(16), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(255), nullable=False),
)

SCHEMA = "schema"
SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,54}")
CATEGORY = "category"
RESERVED_SCHEMA_PREFIXES = ("pg_", "sqlite_")
RESERVED_SCHEMAS = ("information_schema", "userdata", "main", "temp")


def _category_key(slug: str) -> str:
    """Catalogue key of a category template: not a schema name (``@`` can never start an identifier)."""
    return f"@{slug}"


# --- the operation engine -------------------------------------------------------------------------------


class Engine:
    """Applies structured schema operations to a real schema, or to a category template (catalogue only)."""

    def __init__(self, ud: UserData, conn: AsyncConnection) -> None:
        self.ud = ud
        self.conn = conn
        self.pg = PostgresUserData(None)  # renders the recorded up/down SQL; runs nothing

    # catalogue
    async def definition(self, key: str, table: str) -> TableDef | None:
        row = (
            await self.conn.execute(
                sa.select(tables_table.c.definition).where(
                    tables_table.c.schema_name == key, tables_table.c.table_name == table
                )
            )
        ).first()
        return None if row is None else TableDef.from_wire(row[0])

    async def save(self, key: str, table: str, definition: TableDef | None) -> None:
        await self.conn.execute(
            sa.delete(tables_table).where(tables_table.c.schema_name == key, tables_table.c.table_name == table)
        )
        if definition is not None:
            await self.conn.execute(
                sa.insert(tables_table).values(schema_name=key, table_name=table, definition=definition.to_wire())
            )

    async def table_names(self, key: str, virtual: bool) -> list[str]:
        if virtual:
            rows = await self.conn.execute(
                sa.select(tables_table.c.table_name).where(tables_table.c.schema_name == key)
            )
            return sorted(str(r[0]) for r in rows)
        return await self.ud.list_tables(self.conn, key)

    async def column_names(self, key: str, table: str, virtual: bool) -> list[str] | None:
        """Columns of an existing table, or ``None`` when the table does not exist."""
        if virtual:
            definition = await self.definition(key, table)
            return None if definition is None else [c.name for c in definition.columns]
        if table not in await self.ud.list_tables(self.conn, key):
            return None
        return [c.name for c in await self.ud.columns(self.conn, key, table)]

    async def require_table(self, key: str, table: str, virtual: bool) -> list[str]:
        names = await self.column_names(key, table, virtual)
        if names is None:
            raise not_found(f"Table '{table}'")
        return names

    async def index_owner(self, key: str, index: str, virtual: bool) -> str | None:
        if not virtual:
            return await self.ud.index_table(self.conn, key, index)
        for table in await self.table_names(key, True):
            definition = await self.definition(key, table)
            if definition is not None and any(i.name == index for i in definition.indexes):
                return table
        return None

    async def name_taken(self, key: str, name: str, virtual: bool) -> bool:
        if virtual:
            return name in await self.table_names(key, True) or await self.index_owner(key, name, True) is not None
        return await self.ud.relation_exists(self.conn, key, name)

    # apply
    async def apply(self, key: str, op: Mapping[str, Any], *, virtual: bool = False) -> dict[str, Any]:
        """Apply ``op`` to schema ``key`` (or, ``virtual``, to the category template ``key``).

        Returns ``{"up": sql, "down": sql | None, "inverse": op | None}``.
        """
        kind = op["op"]
        if not virtual:
            # Also for SQL that does not start with a DDL word (a comment first): forget now and at the end.
            self.ud.changing_catalog(self.conn.sync_connection)
        handler = getattr(self, f"_op_{kind}", None)
        if handler is None:  # pragma: no cover - operations come from this module
            raise unprocessable(f"Unknown operation {kind}")
        with database_errors():
            result: dict[str, Any] = await handler(key, op, virtual)
        return result

    def _q(self, schema: str, name: str) -> str:
        return self.pg.qualified(schema, name)

    async def _op_create_table(self, key: str, op: Mapping[str, Any], virtual: bool) -> dict[str, Any]:
        table = op["table"]
        columns = [ColumnDef.from_wire(c) for c in op["columns"]]
        if await self.name_taken(key, table, virtual):
            raise conflict(f"Table '{table}' already exists", field="table")
        if not virtual and isinstance(self.ud, PostgresUserData) and key == "public" and table in metadata.tables:
            raise conflict(f"Table name '{table}' is reserved in the public schema", field="table")
        definition = TableDef(columns)
        if not virtual:
            await self.ud.create_table(self.conn, key, table, definition)
        await self.save(key, table, definition)
        return {
            "up": self.pg.create_table_sql(_display(key), table, definition),
            "down": f"DROP TABLE {self._q(_display(key), table)}",
            "inverse": {"op": "drop_table", "table": table},
        }

    async def _op_drop_table(self, key: str, op: Mapping[str, Any], virtual: bool) -> dict[str, Any]:
        table = op["table"]
        await self.require_table(key, table, virtual)
        if not virtual:
            await self.ud.drop_table(self.conn, key, table)
        await self.save(key, table, None)
        return {"up": f"DROP TABLE {self._q(_display(key), table)}", "down": None, "inverse": None}

    async def _op_add_column(self, key: str, op: Mapping[str, Any], virtual: bool) -> dict[str, Any]:
        table = op["table"]
        column = ColumnDef.from_wire(op["column"])
        names = await self.require_table(key, table, virtual)
        if column.name in names:
            raise conflict(f"Column '{column.name}' already exists", field="column")
        definition = await self.definition(key, table)
        after = None
        if definition is not None:
            after = TableDef([*definition.columns, column], definition.constraints, definition.indexes)
        if not virtual:
            await self.ud.add_column(self.conn, key, table, column, after)
        if after is not None:
            await self.save(key, table, after)
        sql = self.pg.column_sql(column, single_pk=True)
        qualified = self._q(_display(key), table)
        return {
            "up": f"ALTER TABLE {qualified} ADD COLUMN {sql}",
            "down": f"ALTER TABLE {qualified} DROP COLUMN {self.pg.quote(column.name)}",
            "inverse": {"op": "drop_column", "table": table, "column": column.name},
        }

    async def _op_drop_column(self, key: str, op: Mapping[str, Any], virtual: bool) -> dict[str, Any]:
        table, name = op["table"], op["column"]
        names = await self.require_table(key, table, virtual)
        if name not in names:
            raise not_found(f"Column '{name}'")
        if len(names) == 1:
            raise unprocessable("A table must keep at least one column; drop the table instead")
        definition = await self.definition(key, table)
        after = None
        if definition is not None:
            # Like PostgreSQL, dropping a column drops the indexes and constraints that use it.
            after = TableDef(
                [c for c in definition.columns if c.name != name],
                [c for c in definition.constraints if name not in c.columns and ("ident", name) not in c.check],
                [i for i in definition.indexes if name not in i.columns],
            )
        if not virtual:
            await self.ud.drop_column(self.conn, key, table, name, after)
        if after is not None:
            await self.save(key, table, after)
        qualified = self._q(_display(key), table)
        return {"up": f"ALTER TABLE {qualified} DROP COLUMN {self.pg.quote(name)}", "down": None, "inverse": None}

    async def _op_alter_column(self, key: str, op: Mapping[str, Any], virtual: bool) -> dict[str, Any]:
        table, name = op["table"], op["column"]
        names = await self.require_table(key, table, virtual)
        if name not in names:
            raise not_found(f"Column '{name}'")
        definition = await self.definition(key, table)
        if definition is None:
            raise unprocessable(f"Table '{table}' was not created through Smith; alter it with raw DDL")
        before = definition.column(name)
        assert before is not None
        changed = ColumnDef(
            before.name, before.type, before.primary_key, before.nullable, before.unique, before.default
        )
        if "type" in op:
            changed.type = require_type(op["type"], "type")
            if changed.default is not None and changed.default not in (EXPR_NOW, EXPR_UUID):
                changed.default = check_default(changed.type, changed.default)
        if "nullable" in op:
            if op["nullable"] and before.primary_key:
                raise invalid("nullable", "a primary-key column cannot be nullable")
            changed.nullable = bool(op["nullable"])
        if "default" in op:
            changed.default = None if op["default"] is None else check_default(changed.type, op["default"])
        after = TableDef(
            [changed if c.name == name else c for c in definition.columns], definition.constraints, definition.indexes
        )
        if not virtual:
            await self.ud.alter_column(self.conn, key, table, before, changed, after)
        await self.save(key, table, after)
        inverse: dict[str, Any] = {"op": "alter_column", "table": table, "column": name}
        if changed.type != before.type:
            inverse["type"] = before.type.name
        if changed.nullable != before.nullable:
            inverse["nullable"] = before.nullable
        if changed.default != before.default:
            inverse["default"] = before.default
        up = self.pg.alter_statements(_display(key), table, before, changed)
        down = self.pg.alter_statements(_display(key), table, changed, before)
        return {
            "up": ";\n".join(up) or "-- no change",
            "down": ";\n".join(down) or "-- no change",
            "inverse": inverse,
        }

    async def _op_rename_column(self, key: str, op: Mapping[str, Any], virtual: bool) -> dict[str, Any]:
        table, old, new = op["table"], op["old_name"], op["new_name"]
        names = await self.require_table(key, table, virtual)
        if old not in names:
            raise not_found(f"Column '{old}'")
        if new in names:
            raise conflict(f"Column '{new}' already exists", field="new_name")
        if not virtual:
            await self.ud.rename_column(self.conn, key, table, old, new)
        definition = await self.definition(key, table)
        if definition is not None:
            for column in definition.columns:
                if column.name == old:
                    column.name = new
            for constraint in definition.constraints:
                constraint.columns = [new if c == old else c for c in constraint.columns]
                constraint.check = [("ident", new) if t == ("ident", old) else t for t in constraint.check]
            for index in definition.indexes:
                index.columns = [new if c == old else c for c in index.columns]
            await self.save(key, table, definition)
        qualified = self._q(_display(key), table)
        quote = self.pg.quote
        return {
            "up": f"ALTER TABLE {qualified} RENAME COLUMN {quote(old)} TO {quote(new)}",
            "down": f"ALTER TABLE {qualified} RENAME COLUMN {quote(new)} TO {quote(old)}",
            "inverse": {"op": "rename_column", "table": table, "old_name": new, "new_name": old},
        }

    async def _op_create_index(self, key: str, op: Mapping[str, Any], virtual: bool) -> dict[str, Any]:
        table, index = op["table"], IndexDef(op["index_name"], list(op["columns"]), bool(op.get("unique")))
        names = await self.require_table(key, table, virtual)
        for column in index.columns:
            if column not in names:
                raise ApiError(
                    "unprocessable",
                    f"Column '{column}' does not exist",
                    details={"field": "columns", "reason": "unknown column"},
                )
        if await self.name_taken(key, index.name, virtual):
            raise conflict(f"Index '{index.name}' already exists", field="index_name")
        if not virtual:
            await self.ud.create_index(self.conn, key, table, index)
        definition = await self.definition(key, table)
        if definition is not None:
            definition.indexes.append(index)
            await self.save(key, table, definition)
        cols = ", ".join(self.pg.quote(c) for c in index.columns)
        unique = "UNIQUE " if index.unique else ""
        return {
            "up": f"CREATE {unique}INDEX {self.pg.quote(index.name)} ON {self._q(_display(key), table)} ({cols})",
            "down": f"DROP INDEX {self._q(_display(key), index.name)}",
            "inverse": {"op": "drop_index", "index_name": index.name},
        }

    async def _op_drop_index(self, key: str, op: Mapping[str, Any], virtual: bool) -> dict[str, Any]:
        name = op["index_name"]
        table = await self.index_owner(key, name, virtual)
        if table is None:
            raise not_found(f"Index '{name}'")
        if not virtual:
            await self.ud.drop_index(self.conn, key, name)
        definition = await self.definition(key, table)
        if definition is not None:
            definition.indexes = [i for i in definition.indexes if i.name != name]
            await self.save(key, table, definition)
        return {"up": f"DROP INDEX {self._q(_display(key), name)}", "down": None, "inverse": None}

    async def _op_add_constraint(self, key: str, op: Mapping[str, Any], virtual: bool) -> dict[str, Any]:
        table, name = op["table"], op["constraint_name"]
        names = await self.require_table(key, table, virtual)
        definition = await self.definition(key, table)
        if definition is None:
            raise unprocessable(f"Table '{table}' was not created through Smith; add constraints with raw DDL")
        if any(c.name == name for c in definition.constraints):
            raise conflict(f"Constraint '{name}' already exists", field="constraint_name")
        constraint = parse_constraint(name, op["constraint_type"], op["definition"], _display(key), names)
        if constraint.kind == "primary_key" and (
            any(c.primary_key for c in definition.columns)
            or any(c.kind == "primary_key" for c in definition.constraints)
        ):
            raise conflict("The table already has a primary key", field="constraint_type")
        after = TableDef(definition.columns, [*definition.constraints, constraint], definition.indexes)
        if not virtual:
            await self.ud.add_constraint(self.conn, key, table, constraint, after)
        await self.save(key, table, after)
        qualified = self._q(_display(key), table)
        return {
            "up": f"ALTER TABLE {qualified} ADD {self.pg.constraint_sql(_display(key), constraint)}",
            "down": f"ALTER TABLE {qualified} DROP CONSTRAINT {self.pg.quote(name)}",
            "inverse": {"op": "drop_constraint", "table": table, "constraint_name": name},
        }

    async def _op_drop_constraint(self, key: str, op: Mapping[str, Any], virtual: bool) -> dict[str, Any]:
        table, name = op["table"], op["constraint_name"]
        await self.require_table(key, table, virtual)
        definition = await self.definition(key, table)
        if definition is None or not any(c.name == name for c in definition.constraints):
            raise not_found(f"Constraint '{name}'")
        after = TableDef(definition.columns, [c for c in definition.constraints if c.name != name], definition.indexes)
        if not virtual:
            await self.ud.drop_constraint(self.conn, key, table, name, after)
        await self.save(key, table, after)
        qualified = self._q(_display(key), table)
        return {"up": f"ALTER TABLE {qualified} DROP CONSTRAINT {self.pg.quote(name)}", "down": None, "inverse": None}

    async def _op_raw(self, key: str, op: Mapping[str, Any], virtual: bool) -> dict[str, Any]:
        if virtual:  # pragma: no cover - raw DDL has no category form
            raise unprocessable("Raw DDL cannot target a category")
        await self.ud.execute_raw(self.conn, key, op["sql"])
        return {"up": op["sql"], "down": None, "inverse": None}


def _display(key: str) -> str:
    """The schema name shown in recorded SQL (a category template shows as its slug)."""
    return key[1:] if key.startswith("@") else key


# --- streams --------------------------------------------------------------------------------------------


async def head_version(conn: AsyncConnection, stream_kind: str, stream: str) -> int:
    value = (
        await conn.execute(
            sa.select(sa.func.max(migrations_table.c.version)).where(
                migrations_table.c.stream_kind == stream_kind, migrations_table.c.stream == stream
            )
        )
    ).scalar()
    return int(value or 0)


def _migration_name(version: int, op: Mapping[str, Any]) -> str:
    parts = [f"{version:04d}", op["op"]]
    for key in ("table", "column", "index_name", "constraint_name", "old_name", "new_name"):
        value = op.get(key)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, dict) and isinstance(value.get("name"), str):
            parts.append(value["name"])
    return "_".join(parts)[:255]


async def record(
    conn: AsyncConnection,
    stream_kind: str,
    stream: str,
    op: Mapping[str, Any],
    applied: Mapping[str, Any],
    actor: str,
) -> int:
    """Append a migration to its stream and an ``apply`` event to the history; returns the version."""
    version = await head_version(conn, stream_kind, stream) + 1
    now = utcnow()
    await conn.execute(
        sa.insert(migrations_table).values(
            stream_kind=stream_kind,
            stream=stream,
            version=version,
            name=_migration_name(version, op),
            operation=op["op"],
            up=applied["up"],
            down=applied["down"],
            reversible=applied["inverse"] is not None,
            op=dict(op),
            inverse=applied["inverse"],
            applied_at=now,
            actor=actor,
        )
    )
    await conn.execute(
        sa.insert(history_table).values(
            stream_kind=stream_kind, stream=stream, version=version, action="apply", at=now, actor=actor
        )
    )
    return version


def _migration_wire(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "version": row["version"],
        "name": row["name"],
        "operation": row["operation"],
        "up": row["up"],
        "down": row["down"],
        "reversible": bool(row["reversible"]),
        "applied_at": format_timestamp(row["applied_at"]),
        "actor": row["actor"],
    }


async def list_stream(conn: AsyncConnection, stream_kind: str, stream: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        sa.select(migrations_table)
        .where(migrations_table.c.stream_kind == stream_kind, migrations_table.c.stream == stream)
        .order_by(migrations_table.c.version)
    )
    return [_migration_wire(r) for r in rows.mappings()]


async def stream_file(conn: AsyncConnection, stream_kind: str, stream: str, version: int) -> RowMapping:
    row = (
        (
            await conn.execute(
                sa.select(migrations_table).where(
                    migrations_table.c.stream_kind == stream_kind,
                    migrations_table.c.stream == stream,
                    migrations_table.c.version == version,
                )
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise not_found(f"Migration version {version}")
    return row


# --- schemas --------------------------------------------------------------------------------------------


async def schema_row(conn: AsyncConnection, name: str) -> RowMapping | None:
    return (await conn.execute(sa.select(schemas_table).where(schemas_table.c.name == name))).mappings().first()


async def require_schema(conn: AsyncConnection, name: str) -> RowMapping:
    row = await schema_row(conn, name)
    if row is None:
        raise not_found(f"Schema '{name}'")
    return row


async def ensure_schema(conn: AsyncConnection, ud: UserData, name: str) -> None:
    """Create (and register) a schema that create-table names, if it is missing (spec 7.7)."""
    if await schema_row(conn, name) is None:
        await ud.create_schema(conn, name)
        await conn.execute(
            sa.insert(schemas_table).values(name=name, kind="custom", category_version=0, created_at=utcnow())
        )


async def schema_names(conn: AsyncConnection) -> list[str]:
    """Every user schema: ``public``, tenant schemas and schemas created through Smith (spec 7.3)."""
    rows = await conn.execute(sa.select(schemas_table.c.name).order_by(schemas_table.c.name))
    return [str(r[0]) for r in rows]


def tenant_schema(slug: str) -> str:
    """``tenant_`` + the slug with ``-`` replaced by ``_`` (spec 8.1)."""
    return "tenant_" + slug.replace("-", "_")


def _schema_field(value: str, field_name: str = "schema") -> str:
    lowered = value.lower()
    if lowered in RESERVED_SCHEMAS or lowered.startswith(RESERVED_SCHEMA_PREFIXES):
        raise invalid(field_name, "is a reserved schema name")
    return value


def _identifier(ctx: RequestContext, name: str) -> str:
    value: str = ctx.fields.identifier(name)
    return value


def _path_identifier(ctx: RequestContext, name: str) -> str:
    value = ctx.path(name)
    if not IDENTIFIER.match(value):
        raise invalid(name, f"must match {IDENTIFIER.pattern}")
    return value


@router.on_startup
async def _startup(state: LocalState) -> None:
    ud = userdata_for(state)
    await ud.start()
    async with state.db.begin() as conn:
        await ud.prepare(conn)
        if await schema_row(conn, "public") is None:
            await ud.create_schema(conn, "public")
            await conn.execute(
                sa.insert(schemas_table).values(name="public", kind="public", category_version=0, created_at=utcnow())
            )


# --- schema DDL endpoints -------------------------------------------------------------------------------


async def _schema_change(
    ctx: RequestContext, schema: str, op: dict[str, Any], *, create_schema: bool = False, limited: bool = False
) -> int:
    """Apply one change to a schema and record it in the schema's stream; returns the new version.

    ``limited``: the caller wrote the statement, so it runs under the statement time limit and is stopped
    when the client disconnects (:mod:`dominus_local.stores.limits`).
    """
    ud = userdata_for(ctx.state)
    begin = limited_transaction(ctx, ctx.state.db) if limited else ctx.state.db.begin()
    async with begin as conn:
        await ud.prepare(conn)
        if create_schema:
            await ensure_schema(conn, ud, schema)
        else:
            await require_schema(conn, schema)
        applied = await Engine(ud, conn).apply(schema, op)
        return await record(conn, SCHEMA, schema, op, applied, ctx.subject.sub)


@router.post("/api/smith/schema/create-table")
async def create_table(ctx: RequestContext) -> dict[str, Any]:
    """Create a table from column definitions; creates the schema when it is missing (spec 7.7)."""
    schema = _schema_field(_identifier(ctx, "schema"))
    table = _identifier(ctx, "table")
    columns = parse_columns(ctx.fields.raw("columns"))
    op = {"op": "create_table", "table": table, "columns": [c.to_wire() for c in columns]}
    version = await _schema_change(ctx, schema, op, create_schema=True)
    return {"schema": schema, "table": table, "created": True, "version": version}


@router.delete("/api/smith/schema/drop-table")
async def drop_table(ctx: RequestContext) -> dict[str, Any]:
    schema, table = _identifier(ctx, "schema"), _identifier(ctx, "table")
    version = await _schema_change(ctx, schema, {"op": "drop_table", "table": table})
    return {"schema": schema, "table": table, "dropped": True, "version": version}


@router.post("/api/smith/schema/truncate-table")
async def truncate_table(ctx: RequestContext) -> dict[str, Any]:
    """Delete every row of a table; a data change, so no migration is recorded (spec 8.6)."""
    schema, table = _identifier(ctx, "schema"), _identifier(ctx, "table")
    ud = userdata_for(ctx.state)
    async with ctx.state.db.begin() as conn:
        await ud.prepare(conn)
        await require_schema(conn, schema)
        await Engine(ud, conn).require_table(schema, table, False)
        with database_errors():
            await ud.truncate_table(conn, schema, table)
    return {"schema": schema, "table": table, "truncated": True}


def _column_from_fields(ctx: RequestContext, name_field: str = "column") -> ColumnDef:
    name = _identifier(ctx, name_field)
    ctype = require_type(ctx.fields.raw("type"), "type")
    nullable = ctx.fields.bool("nullable", default=True)
    default = check_default(ctype, ctx.fields.raw("default"))
    return ColumnDef(name, ctype, False, bool(nullable), False, default)


@router.post("/api/smith/schema/add-column")
async def add_column(ctx: RequestContext) -> dict[str, Any]:
    schema, table = _identifier(ctx, "schema"), _identifier(ctx, "table")
    column = _column_from_fields(ctx)
    op = {"op": "add_column", "table": table, "column": column.to_wire()}
    version = await _schema_change(ctx, schema, op)
    return {"schema": schema, "table": table, "column": column.name, "added": True, "version": version}


@router.delete("/api/smith/schema/drop-column")
async def drop_column(ctx: RequestContext) -> dict[str, Any]:
    schema, table, column = _identifier(ctx, "schema"), _identifier(ctx, "table"), _identifier(ctx, "column")
    version = await _schema_change(ctx, schema, {"op": "drop_column", "table": table, "column": column})
    return {"schema": schema, "table": table, "column": column, "dropped": True, "version": version}


@router.put("/api/smith/schema/alter-column")
async def alter_column(ctx: RequestContext) -> dict[str, Any]:
    """Change a column's type, nullability or default; ``default: "DROP"`` removes the default (spec 7.7)."""
    schema, table, column = _identifier(ctx, "schema"), _identifier(ctx, "table"), _identifier(ctx, "column")
    op: dict[str, Any] = {"op": "alter_column", "table": table, "column": column}
    fields = ctx.fields
    if fields.raw("type") is not None:
        op["type"] = require_type(fields.raw("type"), "type").name
    if fields.raw("nullable") is not None:
        op["nullable"] = fields.bool("nullable")
    if fields.raw("default") is not None:
        default = fields.raw("default")
        op["default"] = None if isinstance(default, str) and default.strip().upper() == "DROP" else default
    if len(op) == 3:
        raise invalid("type", "give at least one of type, nullable and default")
    version = await _schema_change(ctx, schema, op)
    return {"schema": schema, "table": table, "column": column, "altered": True, "version": version}


@router.post("/api/smith/schema/rename-column")
async def rename_column(ctx: RequestContext) -> dict[str, Any]:
    schema, table = _identifier(ctx, "schema"), _identifier(ctx, "table")
    old, new = _identifier(ctx, "old_name"), _identifier(ctx, "new_name")
    op = {"op": "rename_column", "table": table, "old_name": old, "new_name": new}
    version = await _schema_change(ctx, schema, op)
    return {"schema": schema, "table": table, "old_name": old, "new_name": new, "renamed": True, "version": version}


def _index_columns(ctx: RequestContext) -> list[str]:
    columns = ctx.fields.str_list("columns", min_items=1, max_items=32)
    for index, column in enumerate(columns):
        if not IDENTIFIER.match(column):
            raise invalid(f"columns[{index}]", f"must match {IDENTIFIER.pattern}")
    if len({c.lower() for c in columns}) != len(columns):
        raise invalid("columns", "must not repeat a column")
    return list(columns)


@router.post("/api/smith/schema/create-index")
async def create_index(ctx: RequestContext) -> dict[str, Any]:
    schema, table, name = _identifier(ctx, "schema"), _identifier(ctx, "table"), _identifier(ctx, "index_name")
    columns = _index_columns(ctx)
    unique = bool(ctx.fields.bool("unique", default=False))
    op = {"op": "create_index", "table": table, "index_name": name, "columns": columns, "unique": unique}
    version = await _schema_change(ctx, schema, op)
    return {"schema": schema, "table": table, "index_name": name, "created": True, "version": version}


@router.delete("/api/smith/schema/drop-index")
async def drop_index(ctx: RequestContext) -> dict[str, Any]:
    schema, name = _identifier(ctx, "schema"), _identifier(ctx, "index_name")
    version = await _schema_change(ctx, schema, {"op": "drop_index", "index_name": name})
    return {"schema": schema, "index_name": name, "dropped": True, "version": version}


@router.post("/api/smith/schema/add-constraint")
async def add_constraint(ctx: RequestContext) -> dict[str, Any]:
    """Add a named constraint; ``definition`` is parsed by a closed grammar and re-rendered (spec 7.7)."""
    schema, table, name = _identifier(ctx, "schema"), _identifier(ctx, "table"), _identifier(ctx, "constraint_name")
    kind = ctx.fields.str("constraint_type", choices=("primary_key", "unique", "check", "foreign_key"))
    definition = ctx.fields.str("definition", min_len=1, max_len=4000)
    op = {
        "op": "add_constraint",
        "table": table,
        "constraint_name": name,
        "constraint_type": kind,
        "definition": definition,
    }
    version = await _schema_change(ctx, schema, op)
    return {"schema": schema, "table": table, "constraint_name": name, "added": True, "version": version}


@router.delete("/api/smith/schema/drop-constraint")
async def drop_constraint(ctx: RequestContext) -> dict[str, Any]:
    schema, table, name = _identifier(ctx, "schema"), _identifier(ctx, "table"), _identifier(ctx, "constraint_name")
    version = await _schema_change(ctx, schema, {"op": "drop_constraint", "table": table, "constraint_name": name})
    return {"schema": schema, "table": table, "constraint_name": name, "dropped": True, "version": version}


def decode_sql(value: Any, field_name: str = "sql") -> str:
    """SQL text sent as base64 of UTF-8 (spec 7.3, 7.7)."""
    if not isinstance(value, str) or not value.strip():
        raise invalid(field_name, "must be base64 of the SQL text")
    try:
        text = base64.b64decode("".join(value.split()), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise invalid(field_name, "must be base64 of UTF-8 SQL text") from None
    if not text.strip():
        raise invalid(field_name, "must not be empty")
    if len(text) > 1_000_000:
        raise invalid(field_name, "must be at most 1,000,000 characters")
    return text


@router.post("/api/smith/schema/execute-raw-ddl", admin=True, cancel_on_disconnect=True)
async def execute_raw_ddl(ctx: RequestContext) -> dict[str, Any]:
    """Run one DDL statement in a schema (admin only, irreversible; spec 7.7).

    On PostgreSQL the statement runs with the schema as its search path. On SQLite, object names are
    rewritten into the schema (CREATE/ALTER/DROP of tables, indexes and views).
    It runs under the statement time limit (504 ``upstream_timeout`` past it, nothing recorded) and is stopped
    when the client disconnects.
    """
    schema = _identifier(ctx, "schema")
    sql = decode_sql(ctx.fields.raw("sql"))
    version = await _schema_change(ctx, schema, {"op": "raw", "sql": sql}, limited=True)
    return {"schema": schema, "executed": True, "version": version}


# --- migrations -----------------------------------------------------------------------------------------


@router.post("/api/smith/migrations/rollback/{schema}")
async def rollback(ctx: RequestContext) -> dict[str, Any]:
    """Reverse every migration above ``version``, newest first, in one transaction (spec 8.6).

    ``rolled_back`` lists the versions that were reversed.
    """
    schema = _path_identifier(ctx, "schema")
    target = ctx.fields.int("version", min_value=0)
    ud = userdata_for(ctx.state)
    async with ctx.state.db.begin() as conn:
        await ud.prepare(conn)
        await require_schema(conn, schema)
        current = await head_version(conn, SCHEMA, schema)
        if target >= current:
            raise invalid("version", f"must be lower than the current version {current}")
        rows = (
            (
                await conn.execute(
                    sa.select(migrations_table)
                    .where(
                        migrations_table.c.stream_kind == SCHEMA,
                        migrations_table.c.stream == schema,
                        migrations_table.c.version > target,
                    )
                    .order_by(migrations_table.c.version.desc())
                )
            )
            .mappings()
            .all()
        )
        blocked = [r["version"] for r in rows if not r["reversible"]]
        if blocked:
            raise ApiError(
                "unprocessable",
                f"Migration {blocked[0]} cannot be reversed",
                details={"irreversible": blocked},
            )
        engine = Engine(ud, conn)
        now = utcnow()
        for row in rows:
            await engine.apply(schema, row["inverse"])
            await conn.execute(sa.delete(migrations_table).where(migrations_table.c.id == row["id"]))
            await conn.execute(
                sa.insert(history_table).values(
                    stream_kind=SCHEMA,
                    stream=schema,
                    version=row["version"],
                    action="rollback",
                    at=now,
                    actor=ctx.subject.sub,
                )
            )
    return {
        "schema": schema,
        "from_version": current,
        "to_version": target,
        "rolled_back": [r["version"] for r in rows],
    }


@router.get("/api/smith/migrations/list/{schema}")
async def list_migrations(ctx: RequestContext) -> list[dict[str, Any]]:
    schema = _path_identifier(ctx, "schema")
    async with ctx.state.db.begin() as conn:
        await require_schema(conn, schema)
        return await list_stream(conn, SCHEMA, schema)


@router.get("/api/smith/migrations/current/{schema}")
async def current_version(ctx: RequestContext) -> dict[str, Any]:
    schema = _path_identifier(ctx, "schema")
    async with ctx.state.db.begin() as conn:
        await require_schema(conn, schema)
        return {"schema": schema, "version": await head_version(conn, SCHEMA, schema)}


def _path_version(ctx: RequestContext) -> int:
    text = ctx.path("version")
    if not text.isdigit() or len(text) > 9:
        raise not_found("Migration", text)
    return int(text)


@router.get("/api/smith/migrations/file/{schema}/{version}")
async def migration_file(ctx: RequestContext) -> dict[str, Any]:
    schema = _path_identifier(ctx, "schema")
    version = _path_version(ctx)
    async with ctx.state.db.begin() as conn:
        await require_schema(conn, schema)
        row = await stream_file(conn, SCHEMA, schema, version)
    return {"schema": schema, "version": version, "name": row["name"], "up": row["up"], "down": row["down"]}


@router.get("/api/smith/migrations/history/{schema}")
async def migration_history(ctx: RequestContext) -> dict[str, Any]:
    """Every apply and rollback event of a schema's stream, oldest first (spec 7.7)."""
    schema = _path_identifier(ctx, "schema")
    async with ctx.state.db.begin() as conn:
        await require_schema(conn, schema)
        rows = await conn.execute(
            sa.select(history_table)
            .where(history_table.c.stream_kind == SCHEMA, history_table.c.stream == schema)
            .order_by(history_table.c.id)
        )
        events = [
            {"version": r["version"], "action": r["action"], "at": format_timestamp(r["at"]), "actor": r["actor"]}
            for r in rows.mappings()
        ]
    return {"schema": schema, "events": events}


@router.get("/api/smith/migrations/compare")
async def compare_versions(ctx: RequestContext) -> dict[str, Any]:
    names = ctx.query.str_list("schemas", min_items=1, max_items=1000)
    for index, name in enumerate(names):
        if not IDENTIFIER.match(name):
            raise invalid(f"schemas[{index}]", f"must match {IDENTIFIER.pattern}")
    async with ctx.state.db.begin() as conn:
        versions = {}
        for name in names:
            await require_schema(conn, name)
            versions[name] = await head_version(conn, SCHEMA, name)
    return {"versions": versions, "in_sync": len(set(versions.values())) <= 1}


@router.get("/api/smith/migrations/public/list")
async def list_public_migrations(ctx: RequestContext) -> list[dict[str, Any]]:
    async with ctx.state.db.begin() as conn:
        return await list_stream(conn, SCHEMA, "public")


def _path_slug(ctx: RequestContext, name: str = "slug") -> str:
    value = ctx.path(name)
    if not identity_slug(value):
        raise not_found("Tenant category", value)
    return value


def identity_slug(value: str) -> bool:
    """Whether ``value`` is a tenant or tenant-category slug (spec 8.1)."""
    return SLUG.fullmatch(value) is not None


async def require_category(conn: AsyncConnection, slug: str) -> dict[str, Any]:
    category = await identity.tenant_category_by_slug(conn, slug)
    if category is None:
        raise not_found(f"Tenant category '{slug}'")
    return category


@router.get("/api/smith/migrations/category/{slug}/list")
async def list_category_migrations(ctx: RequestContext) -> list[dict[str, Any]]:
    slug = _path_slug(ctx)
    async with ctx.state.db.begin() as conn:
        await require_category(conn, slug)
        return await list_stream(conn, CATEGORY, slug)


@router.get("/api/smith/migrations/category/{slug}/file/{version}")
async def category_migration_file(ctx: RequestContext) -> dict[str, Any]:
    slug = _path_slug(ctx)
    version = _path_version(ctx)
    async with ctx.state.db.begin() as conn:
        await require_category(conn, slug)
        row = await stream_file(conn, CATEGORY, slug, version)
    return {"category_slug": slug, "version": version, "name": row["name"], "up": row["up"], "down": row["down"]}


async def _category_tenants(conn: AsyncConnection, slug: str) -> list[RowMapping]:
    rows = await conn.execute(
        sa.select(schemas_table)
        .where(schemas_table.c.kind == "tenant", schemas_table.c.category_slug == slug)
        .order_by(schemas_table.c.tenant_slug)
    )
    return list(rows.mappings())


@router.get("/api/smith/migrations/category/{slug}/sync-status")
async def category_sync_status(ctx: RequestContext) -> dict[str, Any]:
    slug = _path_slug(ctx)
    async with ctx.state.db.begin() as conn:
        await require_category(conn, slug)
        head = await head_version(conn, CATEGORY, slug)
        tenants = [
            {
                "tenant_slug": r["tenant_slug"],
                "schema": r["name"],
                "version": r["category_version"],
                "in_sync": r["category_version"] == head,
            }
            for r in await _category_tenants(conn, slug)
        ]
    return {"category_slug": slug, "head_version": head, "tenants": tenants}


# --- category DDL ---------------------------------------------------------------------------------------


async def _category_change(ctx: RequestContext, op: dict[str, Any]) -> dict[str, Any]:
    """Apply a category DDL call: to the template and every tenant of the category, or to ``public``."""
    target = ctx.fields.str("target", default="category", choices=("category", "public"))
    slug = ctx.fields.str("category_slug")
    if not identity_slug(slug):
        raise invalid("category_slug", "must be a tenant-category slug")
    ud = userdata_for(ctx.state)
    async with ctx.state.db.begin() as conn:
        await ud.prepare(conn)
        await require_category(conn, slug)
        engine = Engine(ud, conn)
        if target == "public":
            applied = await engine.apply("public", op)
            version = await record(conn, SCHEMA, "public", op, applied, ctx.subject.sub)
            return {"category_slug": slug, "target": target, "version": version, "applied_schemas": ["public"]}
        applied = await engine.apply(_category_key(slug), op, virtual=True)
        version = await record(conn, CATEGORY, slug, op, applied, ctx.subject.sub)
        schemas = []
        for row in await _category_tenants(conn, slug):
            # A tenant behind the head catches up first, so the stream applies in order.
            await _replay(conn, engine, row["name"], slug, int(row["category_version"]), version)
            schemas.append(row["name"])
    return {"category_slug": slug, "target": target, "version": version, "applied_schemas": schemas}


async def _replay(conn: AsyncConnection, engine: Engine, schema: str, slug: str, since: int, until: int) -> list[int]:
    """Apply the category's migrations ``since < version <= until`` to a tenant schema."""
    rows = await conn.execute(
        sa.select(migrations_table.c.version, migrations_table.c.op)
        .where(
            migrations_table.c.stream_kind == CATEGORY,
            migrations_table.c.stream == slug,
            migrations_table.c.version > since,
            migrations_table.c.version <= until,
        )
        .order_by(migrations_table.c.version)
    )
    applied = []
    for version, op in rows.all():
        await engine.apply(schema, op)
        applied.append(int(version))
    await conn.execute(
        sa.update(schemas_table)
        .where(schemas_table.c.name == schema)
        .values(category_version=until, category_slug=slug)
    )
    return applied


@router.post("/api/smith/category/create-table")
async def category_create_table(ctx: RequestContext) -> dict[str, Any]:
    table = _identifier(ctx, "table")
    columns = parse_columns(ctx.fields.raw("columns"))
    result = await _category_change(
        ctx, {"op": "create_table", "table": table, "columns": [c.to_wire() for c in columns]}
    )
    return {**result, "table": table}


@router.post("/api/smith/category/add-column")
async def category_add_column(ctx: RequestContext) -> dict[str, Any]:
    table = _identifier(ctx, "table")
    column = _column_from_fields(ctx)
    result = await _category_change(ctx, {"op": "add_column", "table": table, "column": column.to_wire()})
    return {**result, "table": table, "column": column.name}


@router.delete("/api/smith/category/drop-table")
async def category_drop_table(ctx: RequestContext) -> dict[str, Any]:
    table = _identifier(ctx, "table")
    result = await _category_change(ctx, {"op": "drop_table", "table": table})
    return {**result, "table": table}


@router.delete("/api/smith/category/drop-column")
async def category_drop_column(ctx: RequestContext) -> dict[str, Any]:
    table, column = _identifier(ctx, "table"), _identifier(ctx, "column")
    result = await _category_change(ctx, {"op": "drop_column", "table": table, "column": column})
    return {**result, "table": table, "column": column}


@router.post("/api/smith/category/create-index")
async def category_create_index(ctx: RequestContext) -> dict[str, Any]:
    table, name = _identifier(ctx, "table"), _identifier(ctx, "index_name")
    columns = _index_columns(ctx)
    unique = bool(ctx.fields.bool("unique", default=False))
    op = {"op": "create_index", "table": table, "index_name": name, "columns": columns, "unique": unique}
    result = await _category_change(ctx, op)
    return {**result, "table": table, "index_name": name}


# --- provisioning ---------------------------------------------------------------------------------------


def _tenant_slug(ctx: RequestContext) -> str:
    slug: str = ctx.fields.str("tenant_slug")
    if not identity_slug(slug):
        raise invalid("tenant_slug", "must match ^[a-z0-9][a-z0-9_-]{0,54}$")
    return slug


async def _require_tenant(conn: AsyncConnection, slug: str) -> dict[str, Any]:
    tenant = await identity.tenant_by_slug(conn, slug)
    if tenant is None:
        raise not_found(f"Tenant '{slug}'")
    return tenant


def _foreign_schema(schema: str, row: RowMapping, slug: str) -> ApiError | None:
    """409 when ``schema`` exists but is not this tenant's: another slug maps to the same name (``red-team``
    and ``red_team`` share ``tenant_red_team``), or a schema of another kind has that name."""
    if row["kind"] == "tenant" and row["tenant_slug"] == slug:
        return None
    owner = row["tenant_slug"] if row["kind"] == "tenant" else None
    if owner is not None:
        return conflict(
            f"Schema '{schema}' belongs to the tenant '{owner}', whose slug maps to the same schema name",
            field="tenant_slug",
            tenant_slug=owner,
            schema=schema,
        )
    return conflict(f"Schema '{schema}' already exists and is not a tenant schema", field="tenant_slug", schema=schema)


@router.post("/api/smith/provision/tenant-schema")
async def provision_tenant_schema(ctx: RequestContext) -> dict[str, Any]:
    """Create the empty schema ``tenant_<slug>`` for an existing tenant; 409 if it exists (spec 8.6)."""
    slug = _tenant_slug(ctx)
    schema = tenant_schema(slug)
    ud = userdata_for(ctx.state)
    async with ctx.state.db.begin() as conn:
        await ud.prepare(conn)
        await _require_tenant(conn, slug)
        existing = await schema_row(conn, schema)
        if existing is not None:
            raise _foreign_schema(schema, existing, slug) or conflict(
                f"Schema '{schema}' already exists", field="tenant_slug"
            )
        await ud.create_schema(conn, schema)
        await conn.execute(
            sa.insert(schemas_table).values(
                name=schema, kind="tenant", tenant_slug=slug, category_version=0, created_at=utcnow()
            )
        )
    return {"tenant_slug": slug, "schema": schema, "created": True}


@router.post("/api/smith/provision/tenant-from-category")
async def provision_from_category(ctx: RequestContext) -> dict[str, Any]:
    """Create ``tenant_<slug>`` and replay the category's stream into it (spec 8.6).

    Called again for a tenant already provisioned from the same category, it brings the schema up to the
    category's head (``created: false``, ``applied_versions`` the versions it was missing). A tenant schema
    provisioned without a category, and still empty, is linked to the category the same way; one linked to
    another category is 409.
    """
    slug = _tenant_slug(ctx)
    category_slug = ctx.fields.str("category_slug")
    if not identity_slug(category_slug):
        raise invalid("category_slug", "must be a tenant-category slug")
    schema = tenant_schema(slug)
    ud = userdata_for(ctx.state)
    async with ctx.state.db.begin() as conn:
        await ud.prepare(conn)
        await _require_tenant(conn, slug)
        await require_category(conn, category_slug)
        head = await head_version(conn, CATEGORY, category_slug)
        existing = await schema_row(conn, schema)
        created = existing is None
        since = 0
        if existing is None:
            await ud.create_schema(conn, schema)
            await conn.execute(
                sa.insert(schemas_table).values(
                    name=schema,
                    kind="tenant",
                    tenant_slug=slug,
                    category_slug=category_slug,
                    category_version=0,
                    created_at=utcnow(),
                )
            )
        elif (foreign := _foreign_schema(schema, existing, slug)) is not None:
            raise foreign
        elif existing["category_slug"] == category_slug:
            since = int(existing["category_version"])
        elif existing["category_slug"] is not None:
            raise conflict(f"Tenant '{slug}' is provisioned from another category", field="category_slug")
        elif await ud.list_tables(conn, schema):
            raise conflict(f"Schema '{schema}' already holds tables", field="tenant_slug")
        applied = await _replay(conn, Engine(ud, conn), schema, category_slug, since, head)
    return {
        "tenant_slug": slug,
        "category_slug": category_slug,
        "schema": schema,
        "created": created,
        "version": head,
        "applied_versions": applied,
    }


@router.delete("/api/smith/provision/tenant-schema")
async def deprovision_tenant(ctx: RequestContext) -> dict[str, Any]:
    """Drop a tenant's schema; 409 if it holds tables and ``cascade`` is false (spec 8.6)."""
    slug = _tenant_slug(ctx)
    cascade = bool(ctx.fields.bool("cascade", default=False))
    schema = tenant_schema(slug)
    ud = userdata_for(ctx.state)
    async with ctx.state.db.begin() as conn:
        await ud.prepare(conn)
        row = await schema_row(conn, schema)
        if row is None or row["kind"] != "tenant":
            raise not_found(f"Tenant schema '{schema}'")
        if (foreign := _foreign_schema(schema, row, slug)) is not None:
            raise foreign  # never drop another tenant's schema through a look-alike slug
        if await ud.list_tables(conn, schema) and not cascade:
            raise conflict(f"Schema '{schema}' still holds tables; pass cascade=true", field="cascade")
        with database_errors():
            await ud.drop_schema(conn, schema)
        await conn.execute(sa.delete(schemas_table).where(schemas_table.c.name == schema))
        await conn.execute(sa.delete(tables_table).where(tables_table.c.schema_name == schema))
        for table in (migrations_table, history_table):
            await conn.execute(sa.delete(table).where(table.c.stream_kind == SCHEMA, table.c.stream == schema))
    return {"tenant_slug": slug, "schema": schema, "dropped": True}


def _provision_wire(row: Mapping[Any, Any], heads: Mapping[str, int]) -> dict[str, Any]:
    category = row["category_slug"]
    head = heads.get(category, 0) if category else 0
    return {
        "tenant_slug": row["tenant_slug"],
        "schema": row["name"],
        "category_slug": category,
        "version": row["category_version"],
        "in_sync": row["category_version"] == head,
        "created_at": format_timestamp(row["created_at"]),
    }


async def _category_heads(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(
        sa.select(migrations_table.c.stream, sa.func.max(migrations_table.c.version))
        .where(migrations_table.c.stream_kind == CATEGORY)
        .group_by(migrations_table.c.stream)
    )
    return {str(stream): int(version) for stream, version in rows.all()}


@router.get("/api/smith/provision/status/{slug}")
async def provision_status(ctx: RequestContext) -> dict[str, Any]:
    """Whether a tenant's schema exists, its category and version, and whether it is in sync (spec 7.7)."""
    slug = ctx.path("slug")
    if not identity_slug(slug):
        raise not_found("Tenant", slug)
    schema = tenant_schema(slug)
    async with ctx.state.db.begin() as conn:
        row = await schema_row(conn, schema)
        if row is None:
            await _require_tenant(conn, slug)
            return {
                "tenant_slug": slug,
                "schema": schema,
                "provisioned": False,
                "category_slug": None,
                "version": 0,
                "head_version": 0,
                "in_sync": False,
            }
        if (foreign := _foreign_schema(schema, row, slug)) is not None:
            raise foreign
        category = row["category_slug"]
        head = await head_version(conn, CATEGORY, category) if category else 0
    return {
        "tenant_slug": slug,
        "schema": schema,
        "provisioned": True,
        "category_slug": category,
        "version": row["category_version"],
        "head_version": head,
        "in_sync": row["category_version"] == head,
    }


@router.get("/api/smith/provision/list")
async def list_provisions(ctx: RequestContext) -> list[dict[str, Any]]:
    async with ctx.state.db.begin() as conn:
        heads = await _category_heads(conn)
        rows = await conn.execute(
            sa.select(schemas_table).where(schemas_table.c.kind == "tenant").order_by(schemas_table.c.tenant_slug)
        )
        return [_provision_wire(r, heads) for r in rows.mappings()]


@router.get("/api/smith/provision/categories")
async def list_categories(ctx: RequestContext) -> list[dict[str, Any]]:
    """Every tenant category with its template's head version and number of provisioned tenants."""
    async with ctx.state.db.begin() as conn:
        heads = await _category_heads(conn)
        counts: dict[Any, Any] = dict(
            (
                await conn.execute(
                    sa.select(schemas_table.c.category_slug, sa.func.count())
                    .where(schemas_table.c.kind == "tenant", schemas_table.c.category_slug.is_not(None))
                    .group_by(schemas_table.c.category_slug)
                )
            ).all()
        )
        categories = identity.categories
        rows = await conn.execute(sa.select(categories.c.slug, categories.c.name).order_by(categories.c.slug))
        return [
            {
                "category_slug": slug,
                "name": name,
                "head_version": heads.get(slug, 0),
                "tenant_count": int(counts.get(slug, 0)),
            }
            for slug, name in rows.all()
        ]


@router.get("/api/smith/provision/category-status/{slug}")
async def category_status(ctx: RequestContext) -> dict[str, Any]:
    """A category's head version, its number of tenants, and the tenant slugs not at the head (``out_of_sync``)."""
    slug = _path_slug(ctx)
    async with ctx.state.db.begin() as conn:
        await require_category(conn, slug)
        head = await head_version(conn, CATEGORY, slug)
        tenants = await _category_tenants(conn, slug)
    return {
        "category_slug": slug,
        "head_version": head,
        "tenant_count": len(tenants),
        "out_of_sync": [t["tenant_slug"] for t in tenants if t["category_version"] != head],
    }


@router.get("/api/smith/provision/tenants-by-category/{slug}")
async def tenants_by_category(ctx: RequestContext) -> list[dict[str, Any]]:
    slug = _path_slug(ctx)
    async with ctx.state.db.begin() as conn:
        await require_category(conn, slug)
        heads = await _category_heads(conn)
        return [_provision_wire(r, heads) for r in await _category_tenants(conn, slug)]


__all__ = [
    "Engine",
    "decode_sql",
    "head_version",
    "router",
    "schema_names",
    "schema_row",
    "schemas_table",
    "tables_table",
    "tenant_schema",
]
