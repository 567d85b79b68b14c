"""Smith DDL, migrations and tenant provisioning (spec 7.7).

Column definitions are accepted in the spec form ``{name, type, primary_key, nullable, unique, default}``
and in the README form ``{"name", "type", "constraints": ["PRIMARY KEY", "NOT NULL", ...], "default":
"NOW()"}``; the SDK sends the spec form (:func:`normalize_column`). SQL defaults such as ``NOW()`` or
``'pending'`` are translated by :func:`translate_default`. Identifiers are checked before sending.
"""

from __future__ import annotations

import base64
import builtins
import re
from collections.abc import Mapping, Sequence
from typing import Any

from dominus_fastapi.core.errors import ConflictError, NotFoundError, ValidationError
from dominus_fastapi.core.namespaces.base import Namespace
from dominus_fastapi.core.namespaces.db import check_identifier, path_segment

__all__ = ["DdlNamespace", "normalize_column", "translate_default"]

_NO_DEFAULT = object()
_QUOTED = re.compile(r"^'((?:[^']|'')*)'$", re.DOTALL)
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_CONSTRAINTS = {
    "PRIMARY KEY": ("primary_key", True),
    "NOT NULL": ("nullable", False),
    "NULL": ("nullable", True),
    "UNIQUE": ("unique", True),
}


def _default_value(value: Any) -> Any:
    """A default translated by spec 7.7's table, or ``_NO_DEFAULT`` when no default is to be sent."""
    if value is None:
        return _NO_DEFAULT
    if not isinstance(value, str):
        return value
    text = value.strip()
    upper = text.upper()
    if upper in ("NOW()", "CURRENT_TIMESTAMP"):
        return "CURRENT_TIMESTAMP"
    if text.lower() == "gen_random_uuid()":
        return "gen_random_uuid()"
    quoted = _QUOTED.match(text)
    if quoted is not None:
        return quoted.group(1).replace("''", "'")
    if _NUMBER.match(text):
        number = float(text)
        return int(text) if re.fullmatch(r"[+-]?\d+", text) else number
    if upper in ("TRUE", "FALSE"):
        return upper == "TRUE"
    if upper == "NULL":
        return _NO_DEFAULT
    return value


def translate_default(value: Any) -> Any:
    """The wire form of a column default (spec 7.7): ``NOW()`` -> ``CURRENT_TIMESTAMP``, ``'x'`` -> ``x``,
    ``42`` -> 42, ``TRUE`` -> true; ``NULL`` and ``None`` give ``None`` (no default); other text is unchanged."""
    translated = _default_value(value)
    return None if translated is _NO_DEFAULT else translated


def normalize_column(column: Mapping[str, Any], index: int = 0) -> dict[str, Any]:
    """One column definition in the spec form, from the spec form or the README form (spec 7.7)."""
    if not isinstance(column, Mapping):
        raise ValidationError(
            f"columns[{index}] must be a column definition object",
            details={"field": f"columns[{index}]", "reason": "must be an object"},
        )
    check_identifier(column.get("name"), f"columns[{index}].name")
    out: dict[str, Any] = {"name": column["name"], "type": column.get("type")}
    for flag in ("primary_key", "nullable", "unique"):
        if column.get(flag) is not None:
            out[flag] = column[flag]
    constraints = column.get("constraints") or []
    if isinstance(constraints, str):
        constraints = [constraints]
    for entry in constraints:
        key = " ".join(str(entry).upper().split())
        if key not in _CONSTRAINTS:
            raise ValidationError(
                f"Constraint {str(entry)[:40]!r} is not supported in a column definition; "
                "use ddl.add_constraint for checks and foreign keys",
                details={"field": f"columns[{index}].constraints", "reason": "unsupported constraint"},
            )
        flag, value = _CONSTRAINTS[key]
        out[flag] = value
    default = _default_value(column.get("default"))
    if default is not _NO_DEFAULT:
        out["default"] = default
    return out


def _columns(columns: Sequence[Mapping[str, Any]]) -> builtins.list[dict[str, Any]]:
    if isinstance(columns, Mapping | str) or not columns:
        raise ValidationError(
            "columns must be a non-empty list of column definitions",
            details={"field": "columns", "reason": "must be a non-empty list"},
        )
    return [normalize_column(c, i) for i, c in enumerate(columns)]


def _ids(**names: Any) -> None:
    for field, value in names.items():
        check_identifier(value, field)


def _taken(exc: ConflictError, field: str) -> bool:
    """Whether a 409 says that the name in ``field`` is taken (and not another conflict, spec 8.7)."""
    return exc.details.get("field") == field


def _array(data: Any) -> builtins.list[dict[str, Any]]:
    """Smith's array answers: the list as is, or ``[]`` when ``data`` is empty (spec 3.6)."""
    return list(data) if isinstance(data, list) else []


class DdlNamespace(Namespace):
    """Smith DDL, migrations and tenant provisioning (spec 7.7)."""

    async def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None,
        max_retries: int | None,
        idempotency_key: str | None = None,
    ) -> Any:
        return await self._client.request(
            method,
            path,
            body=body if method != "GET" else None,
            params=params,
            safe=method in ("GET", "PUT", "DELETE"),
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key if method == "POST" else None,
        )

    # --- schema DDL ---------------------------------------------------------------------------------------

    async def create_table(
        self,
        schema: str,
        table: str,
        columns: Sequence[Mapping[str, Any]],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
        if_not_exists: bool = False,
    ) -> dict[str, Any]:
        """Create ``schema.table`` (the schema too, when missing); ``{schema, table, created, version}``.

        With ``if_not_exists=True`` an existing table of that name is accepted when it has every column named
        in ``columns`` (extra columns, added later, are fine; types and constraints are not compared): the
        answer is then ``{schema, table, created: False, version}``. An existing table that lacks some of the
        columns raises ``ConflictError`` with ``details.missing`` (add them with ``add_column(...,
        if_not_exists=True)``). The protocol has no such flag: the SDK reads the table's columns after the 409.

        Raises:
            ConflictError: the table exists (without ``if_not_exists``, or without all the columns).
            ValidationError: an identifier or a column definition is invalid (nothing is sent).
        """
        _ids(schema=schema, table=table)
        normalized = _columns(columns)
        body = {"schema": schema, "table": table, "columns": normalized}
        try:
            result: dict[str, Any] = await self._send(
                "POST",
                "/api/smith/schema/create-table",
                body,
                timeout=timeout,
                max_retries=max_retries,
                idempotency_key=idempotency_key,
            )
        except ConflictError as exc:
            if not if_not_exists or not _taken(exc, "table"):
                raise
            return await self._existing_table(schema, table, normalized, exc, timeout, max_retries)
        return result

    async def _existing_table(
        self,
        schema: str,
        table: str,
        columns: builtins.list[dict[str, Any]],
        conflict: ConflictError,
        timeout: float | None,
        max_retries: int | None,
    ) -> dict[str, Any]:
        """The answer of ``create_table(if_not_exists=True)`` when ``schema.table`` is taken."""
        try:
            data = await self._send(
                "GET", f"/api/scribe/data/{schema}/{table}/columns", timeout=timeout, max_retries=max_retries
            )
        except NotFoundError:
            raise conflict from None  # the name is taken by something that is not a readable table
        listed = data.get("columns") if isinstance(data, Mapping) else data
        present = {c.get("name") for c in listed or () if isinstance(c, Mapping)}
        missing = [c["name"] for c in columns if c["name"] not in present]
        if missing:
            raise ConflictError(
                f"Table '{schema}.{table}' already exists without the column(s) {', '.join(missing)}; "
                "add them with ddl.add_column(..., if_not_exists=True)",
                status_code=conflict.status_code,
                details={"field": "columns", "reason": "existing table lacks columns", "missing": missing},
                endpoint=conflict.endpoint,
                code=conflict.code,
                request_id=conflict.request_id,
            )
        return {
            "schema": schema,
            "table": table,
            "created": False,
            "version": await self._version(schema, timeout, max_retries),
        }

    async def _version(self, schema: str, timeout: float | None, max_retries: int | None) -> int:
        data = await self._send(
            "GET", f"/api/smith/migrations/current/{schema}", timeout=timeout, max_retries=max_retries
        )
        return int(data.get("version") or 0) if isinstance(data, Mapping) else 0

    async def add_table(
        self,
        table: str,
        columns: Sequence[Mapping[str, Any]],
        schema: str = "public",
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
        if_not_exists: bool = False,
    ) -> dict[str, Any]:
        """The README form of :meth:`create_table`: ``add_table("orders", [columns])`` in ``public``.

        ``if_not_exists=True`` accepts an existing table that has every named column (see :meth:`create_table`).
        """
        return await self.create_table(
            schema,
            table,
            columns,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
            if_not_exists=if_not_exists,
        )

    async def drop_table(
        self, schema: str, table: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> dict[str, Any]:
        """Drop a table (irreversible); ``{schema, table, dropped, version}``."""
        _ids(schema=schema, table=table)
        result: dict[str, Any] = await self._send(
            "DELETE",
            "/api/smith/schema/drop-table",
            {"schema": schema, "table": table},
            timeout=timeout,
            max_retries=max_retries,
        )
        return result

    async def truncate_table(
        self,
        schema: str,
        table: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Delete every row of a table (not a migration); ``{schema, table, truncated}``."""
        _ids(schema=schema, table=table)
        result: dict[str, Any] = await self._send(
            "POST",
            "/api/smith/schema/truncate-table",
            {"schema": schema, "table": table},
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return result

    async def add_column(
        self,
        *args: str,
        column_type: str | None = None,
        type: str | None = None,
        nullable: bool = True,
        default: Any = None,
        schema: str | None = None,
        table: str | None = None,
        column: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
        if_not_exists: bool = False,
    ) -> dict[str, Any]:
        """Add a column, in either form of spec 7.7.

        README form: ``add_column(table, column, type, default=None, nullable=True, schema="public")`` -- three
        positional arguments and neither ``column_type=`` nor ``type=``. Every other call is the v2 form
        ``add_column(schema, table, column, column_type, nullable=True, default=None)``; ``column_type`` and
        ``type`` are synonyms. ``default`` is SQL text translated like column definitions' defaults.

        With ``if_not_exists=True`` an existing column of that name is accepted as it is (its type, nullability
        and default are not compared or changed): the answer is ``{schema, table, column, added: False,
        version}``. The protocol has no such flag: the SDK accepts the server's 409 for that column.

        Raises:
            ConflictError: the column exists (without ``if_not_exists``).
            NotFoundError: the table does not exist.
            ValidationError: an identifier or the type is missing or invalid (nothing is sent).
        """
        if column_type is not None and type is not None and column_type != type:
            raise ValidationError(
                "give the column type once (column_type= and type= are synonyms)",
                details={"field": "type", "reason": "given twice"},
            )
        given_type = column_type if column_type is not None else type
        if len(args) > 4:
            raise TypeError("add_column() takes at most 4 positional arguments")
        the_schema: str | None
        the_table: str | None
        the_column: str | None
        if len(args) == 3 and given_type is None:
            the_table, the_column, given_type = args
            the_schema = schema if schema is not None else "public"
        else:
            values = dict(zip(("schema", "table", "column", "column_type"), args, strict=False))
            for name, keyword in (("schema", schema), ("table", table), ("column", column)):
                if name in values and keyword is not None:
                    raise TypeError(f"add_column() got multiple values for argument {name!r}")
            the_schema = values.get("schema", schema if schema is not None else "public")
            the_table = values.get("table", table)
            the_column = values.get("column", column)
            if "column_type" in values:
                if given_type is not None:
                    raise TypeError("add_column() got the column type both by position and by keyword")
                given_type = values["column_type"]
        _ids(schema=the_schema, table=the_table, column=the_column)
        if not isinstance(given_type, str) or not given_type.strip():
            raise ValidationError("the column type is required", details={"field": "type", "reason": "is required"})
        body: dict[str, Any] = {
            "schema": the_schema,
            "table": the_table,
            "column": the_column,
            "type": given_type,
            "nullable": nullable,
        }
        translated = _default_value(default)
        if translated is not _NO_DEFAULT:
            body["default"] = translated
        try:
            result: dict[str, Any] = await self._send(
                "POST",
                "/api/smith/schema/add-column",
                body,
                timeout=timeout,
                max_retries=max_retries,
                idempotency_key=idempotency_key,
            )
        except ConflictError as exc:
            if not if_not_exists or not _taken(exc, "column"):
                raise
            version = await self._version(str(the_schema), timeout, max_retries)
            return {"schema": the_schema, "table": the_table, "column": the_column, "added": False, "version": version}
        return result

    async def drop_column(
        self,
        schema: str,
        table: str,
        column: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> dict[str, Any]:
        """Drop a column (irreversible); ``{schema, table, column, dropped, version}``."""
        _ids(schema=schema, table=table, column=column)
        result: dict[str, Any] = await self._send(
            "DELETE",
            "/api/smith/schema/drop-column",
            {"schema": schema, "table": table, "column": column},
            timeout=timeout,
            max_retries=max_retries,
        )
        return result

    async def alter_column(
        self,
        schema: str,
        table: str,
        column: str,
        new_type: str | None = None,
        nullable: bool | None = None,
        default: Any = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> dict[str, Any]:
        """Change a column's type, nullability or default (``default="DROP"`` removes it)."""
        _ids(schema=schema, table=table, column=column)
        body: dict[str, Any] = {"schema": schema, "table": table, "column": column}
        if new_type is not None:
            body["type"] = new_type
        if nullable is not None:
            body["nullable"] = nullable
        translated = _default_value(default)
        if translated is not _NO_DEFAULT:
            body["default"] = translated
        result: dict[str, Any] = await self._send(
            "PUT", "/api/smith/schema/alter-column", body, timeout=timeout, max_retries=max_retries
        )
        return result

    async def rename_column(
        self,
        schema: str,
        table: str,
        old_name: str,
        new_name: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Rename a column; ``{schema, table, old_name, new_name, renamed, version}``."""
        _ids(schema=schema, table=table, old_name=old_name, new_name=new_name)
        body = {"schema": schema, "table": table, "old_name": old_name, "new_name": new_name}
        result: dict[str, Any] = await self._send(
            "POST",
            "/api/smith/schema/rename-column",
            body,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return result

    async def create_index(
        self,
        schema: str,
        table: str,
        index_name: str,
        columns: Sequence[str],
        unique: bool = False,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
        if_not_exists: bool = False,
    ) -> dict[str, Any]:
        """Create an index on ``columns``; ``{schema, table, index_name, created, version}``.

        With ``if_not_exists=True`` an existing index of that name in ``schema`` is accepted: the answer is
        ``{schema, table, index_name, created: False, version}``. The protocol cannot read an index back, so its
        table, columns and uniqueness are not compared; a *table* of that name still raises the 409.

        Raises:
            ConflictError: the name is taken (without ``if_not_exists``, or by a table).
            NotFoundError: the table does not exist.
            ValidationError: an identifier is invalid (nothing is sent).
        """
        _ids(schema=schema, table=table, index_name=index_name)
        for i, name in enumerate(columns):
            check_identifier(name, f"columns[{i}]")
        body = {"schema": schema, "table": table, "index_name": index_name, "columns": list(columns), "unique": unique}
        try:
            result: dict[str, Any] = await self._send(
                "POST",
                "/api/smith/schema/create-index",
                body,
                timeout=timeout,
                max_retries=max_retries,
                idempotency_key=idempotency_key,
            )
        except ConflictError as exc:
            if not if_not_exists or not _taken(exc, "index_name"):
                raise
            tables = await self._send(
                "GET", f"/api/scribe/data/{schema}/tables", timeout=timeout, max_retries=max_retries
            )
            listed = tables.get("tables") if isinstance(tables, Mapping) else tables
            if index_name in {t if isinstance(t, str) else t.get("name") for t in listed or ()}:
                raise
            version = await self._version(schema, timeout, max_retries)
            return {"schema": schema, "table": table, "index_name": index_name, "created": False, "version": version}
        return result

    async def drop_index(
        self, schema: str, index_name: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> dict[str, Any]:
        """Drop an index (irreversible); ``{schema, index_name, dropped, version}``."""
        _ids(schema=schema, index_name=index_name)
        result: dict[str, Any] = await self._send(
            "DELETE",
            "/api/smith/schema/drop-index",
            {"schema": schema, "index_name": index_name},
            timeout=timeout,
            max_retries=max_retries,
        )
        return result

    async def add_constraint(
        self,
        schema: str,
        table: str,
        constraint_name: str,
        constraint_type: str,
        definition: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Add a ``primary_key``, ``unique``, ``check`` or ``foreign_key`` constraint.

        ``definition`` is the text after the keyword: ``(email)``, ``(age >= 0)`` or
        ``(user_id) REFERENCES public.users(id) ON DELETE CASCADE``.
        """
        _ids(schema=schema, table=table, constraint_name=constraint_name)
        body = {
            "schema": schema,
            "table": table,
            "constraint_name": constraint_name,
            "constraint_type": constraint_type,
            "definition": definition,
        }
        result: dict[str, Any] = await self._send(
            "POST",
            "/api/smith/schema/add-constraint",
            body,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return result

    async def drop_constraint(
        self,
        schema: str,
        table: str,
        constraint_name: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> dict[str, Any]:
        """Drop a named constraint (irreversible)."""
        _ids(schema=schema, table=table, constraint_name=constraint_name)
        result: dict[str, Any] = await self._send(
            "DELETE",
            "/api/smith/schema/drop-constraint",
            {"schema": schema, "table": table, "constraint_name": constraint_name},
            timeout=timeout,
            max_retries=max_retries,
        )
        return result

    async def execute_raw(
        self,
        schema: str,
        sql: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Run one raw DDL statement in ``schema`` (admin only, irreversible); ``{schema, executed, version}``."""
        _ids(schema=schema)
        if not isinstance(sql, str) or not sql.strip():
            raise ValidationError("sql must not be empty", details={"field": "sql", "reason": "must not be empty"})
        body = {"schema": schema, "sql": base64.b64encode(sql.encode("utf-8")).decode("ascii")}
        result: dict[str, Any] = await self._send(
            "POST",
            "/api/smith/schema/execute-raw-ddl",
            body,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return result

    # --- migrations ---------------------------------------------------------------------------------------

    async def rollback_migration(
        self,
        schema: str,
        version: int,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Reverse every migration above ``version``; ``{schema, from_version, to_version, rolled_back}``."""
        _ids(schema=schema)
        result: dict[str, Any] = await self._send(
            "POST",
            f"/api/smith/migrations/rollback/{schema}",
            {"version": version},
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return result

    async def list_migrations(
        self, schema: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> builtins.list[dict[str, Any]]:
        """The schema's migration stream, oldest first."""
        _ids(schema=schema)
        return _array(
            await self._send("GET", f"/api/smith/migrations/list/{schema}", timeout=timeout, max_retries=max_retries)
        )

    async def get_current_version(
        self, schema: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> dict[str, Any]:
        """``{schema, version}``: the schema's head version (0 before any change)."""
        _ids(schema=schema)
        result: dict[str, Any] = await self._send(
            "GET", f"/api/smith/migrations/current/{schema}", timeout=timeout, max_retries=max_retries
        )
        return result

    async def get_migration_file(
        self, schema: str, version: int, *, timeout: float | None = None, max_retries: int | None = None
    ) -> dict[str, Any]:
        """``{schema, version, name, up, down}`` of one migration."""
        _ids(schema=schema)
        result: dict[str, Any] = await self._send(
            "GET",
            f"/api/smith/migrations/file/{schema}/{int(version)}",
            timeout=timeout,
            max_retries=max_retries,
        )
        return result

    async def migration_history(
        self, schema: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> dict[str, Any]:
        """``{schema, events}``: every apply and rollback, oldest first."""
        _ids(schema=schema)
        result: dict[str, Any] = await self._send(
            "GET", f"/api/smith/migrations/history/{schema}", timeout=timeout, max_retries=max_retries
        )
        return result

    async def compare_versions(
        self, schemas: Sequence[str], *, timeout: float | None = None, max_retries: int | None = None
    ) -> dict[str, Any]:
        """``{versions: {schema: version}, in_sync}`` for the given schemas."""
        if isinstance(schemas, str):
            schemas = [s for s in schemas.split(",") if s]
        for i, name in enumerate(schemas):
            check_identifier(name, f"schemas[{i}]")
        result: dict[str, Any] = await self._send(
            "GET",
            "/api/smith/migrations/compare",
            params={"schemas": list(schemas)},
            timeout=timeout,
            max_retries=max_retries,
        )
        return result

    async def list_category_migrations(
        self, slug: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> builtins.list[dict[str, Any]]:
        """A tenant category's migration stream, oldest first."""
        return _array(
            await self._send(
                "GET",
                f"/api/smith/migrations/category/{path_segment(slug)}/list",
                timeout=timeout,
                max_retries=max_retries,
            )
        )

    async def get_category_migration_file(
        self, slug: str, version: int, *, timeout: float | None = None, max_retries: int | None = None
    ) -> dict[str, Any]:
        """``{category_slug, version, name, up, down}`` of one category migration."""
        result: dict[str, Any] = await self._send(
            "GET",
            f"/api/smith/migrations/category/{path_segment(slug)}/file/{int(version)}",
            timeout=timeout,
            max_retries=max_retries,
        )
        return result

    async def category_sync_status(
        self, slug: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> dict[str, Any]:
        """``{category_slug, head_version, tenants: [{tenant_slug, schema, version, in_sync}]}``."""
        result: dict[str, Any] = await self._send(
            "GET",
            f"/api/smith/migrations/category/{path_segment(slug)}/sync-status",
            timeout=timeout,
            max_retries=max_retries,
        )
        return result

    async def list_public_migrations(
        self, *, timeout: float | None = None, max_retries: int | None = None
    ) -> builtins.list[dict[str, Any]]:
        """The ``public`` schema's migration stream."""
        return _array(
            await self._send("GET", "/api/smith/migrations/public/list", timeout=timeout, max_retries=max_retries)
        )

    # --- category DDL -------------------------------------------------------------------------------------

    async def _category(
        self,
        method: str,
        action: str,
        body: dict[str, Any],
        timeout: float | None,
        max_retries: int | None,
        idempotency_key: str | None,
        if_exists: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send a category DDL call; ``if_exists=(field, flag)`` turns a 409 on ``field`` into an answer with
        ``flag: False``, the category's (or ``public``'s) head version and no ``applied_schemas``."""
        try:
            result: dict[str, Any] = await self._send(
                method,
                f"/api/smith/category/{action}",
                body,
                timeout=timeout,
                max_retries=max_retries,
                idempotency_key=idempotency_key,
            )
        except ConflictError as exc:
            if if_exists is None or not _taken(exc, if_exists[0]):
                raise
            if body["target"] == "public":
                version = await self._version("public", timeout, max_retries)
            else:
                status = await self.category_status(body["category_slug"], timeout=timeout, max_retries=max_retries)
                version = int(status.get("head_version") or 0)
            answer: dict[str, Any] = {
                k: body[k] for k in ("category_slug", "target", "table", "column", "index_name") if k in body
            }
            return {**answer, if_exists[1]: False, "version": version, "applied_schemas": []}
        return result

    async def category_create_table(
        self,
        category_slug: str,
        table: str,
        columns: Sequence[Mapping[str, Any]],
        target: str = "category",
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
        if_not_exists: bool = False,
    ) -> dict[str, Any]:
        """Add a table to a category's template and to every tenant schema provisioned from it.

        With ``if_not_exists=True`` an existing table of that name in the category's template (or in ``public``
        for ``target="public"``) is accepted as it is, unchanged and not compared: the answer has ``created:
        False``, the head version and ``applied_schemas: []``. The protocol has no such flag: the SDK accepts
        the server's 409 for that name.

        Raises:
            ConflictError: the name is taken (without ``if_not_exists``).
            NotFoundError: the category does not exist.
        """
        _ids(table=table)
        body = {"target": target, "category_slug": category_slug, "table": table, "columns": _columns(columns)}
        flag = ("table", "created") if if_not_exists else None
        return await self._category("POST", "create-table", body, timeout, max_retries, idempotency_key, flag)

    async def category_add_column(
        self,
        category_slug: str,
        table: str,
        column: str,
        column_type: str,
        nullable: bool = True,
        target: str = "category",
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
        if_not_exists: bool = False,
    ) -> dict[str, Any]:
        """Add a column to a category template's table and to every tenant schema of the category.

        With ``if_not_exists=True`` an existing column of that name in the category's template (or in ``public``
        for ``target="public"``) is accepted as it is, unchanged and not compared: the answer has ``added:
        False``, the head version and ``applied_schemas: []``. The protocol has no such flag: the SDK accepts
        the server's 409 for that name.

        Raises:
            ConflictError: the name is taken (without ``if_not_exists``).
            NotFoundError: the category does not exist.
        """
        _ids(table=table, column=column)
        body = {
            "target": target,
            "category_slug": category_slug,
            "table": table,
            "column": column,
            "type": column_type,
            "nullable": nullable,
        }
        flag = ("column", "added") if if_not_exists else None
        return await self._category("POST", "add-column", body, timeout, max_retries, idempotency_key, flag)

    async def category_drop_table(
        self,
        category_slug: str,
        table: str,
        target: str = "category",
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> dict[str, Any]:
        """Drop a table from a category template and from its tenant schemas."""
        _ids(table=table)
        body = {"target": target, "category_slug": category_slug, "table": table}
        return await self._category("DELETE", "drop-table", body, timeout, max_retries, None)

    async def category_drop_column(
        self,
        category_slug: str,
        table: str,
        column: str,
        target: str = "category",
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> dict[str, Any]:
        """Drop a column from a category template's table and from its tenant schemas."""
        _ids(table=table, column=column)
        body = {"target": target, "category_slug": category_slug, "table": table, "column": column}
        return await self._category("DELETE", "drop-column", body, timeout, max_retries, None)

    async def category_create_index(
        self,
        category_slug: str,
        table: str,
        index_name: str,
        columns: Sequence[str],
        unique: bool = False,
        target: str = "category",
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
        if_not_exists: bool = False,
    ) -> dict[str, Any]:
        """Create an index in a category template and in its tenant schemas.

        With ``if_not_exists=True`` an existing index of that name in the category's template (or in ``public``
        for ``target="public"``) is accepted as it is, unchanged and not compared: the answer has ``created:
        False``, the head version and ``applied_schemas: []``. The protocol has no such flag: the SDK accepts
        the server's 409 for that name.

        Raises:
            ConflictError: the name is taken (without ``if_not_exists``).
            NotFoundError: the category does not exist.
        """
        _ids(table=table, index_name=index_name)
        for i, name in enumerate(columns):
            check_identifier(name, f"columns[{i}]")
        body = {
            "target": target,
            "category_slug": category_slug,
            "table": table,
            "index_name": index_name,
            "columns": list(columns),
            "unique": unique,
        }
        flag = ("index_name", "created") if if_not_exists else None
        return await self._category("POST", "create-index", body, timeout, max_retries, idempotency_key, flag)

    # --- provisioning -------------------------------------------------------------------------------------

    async def provision_tenant(
        self,
        tenant_slug: str,
        category_slug: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
        if_not_exists: bool = False,
    ) -> dict[str, Any]:
        """Create ``tenant_<slug>``: empty, or from ``category_slug``'s template (then like
        :meth:`provision_from_category`, which brings an existing schema up to date anyway).

        With ``if_not_exists=True`` an existing schema of this tenant is accepted: the answer is ``{tenant_slug,
        schema, created: False}``. A schema of that name that belongs to another tenant (``red-team`` and
        ``red_team`` share ``tenant_red_team``) or to no tenant still raises the 409.

        Raises:
            ConflictError: the schema exists (without ``if_not_exists``, or not this tenant's).
            NotFoundError: the tenant does not exist.
        """
        if category_slug is not None:
            return await self.provision_from_category(
                tenant_slug, category_slug, timeout=timeout, max_retries=max_retries, idempotency_key=idempotency_key
            )
        try:
            result: dict[str, Any] = await self._send(
                "POST",
                "/api/smith/provision/tenant-schema",
                {"tenant_slug": tenant_slug},
                timeout=timeout,
                max_retries=max_retries,
                idempotency_key=idempotency_key,
            )
        except ConflictError as exc:
            # The server names the schema (``details.schema``) only when it is not this tenant's.
            if not if_not_exists or not _taken(exc, "tenant_slug") or "schema" in exc.details:
                raise
            status = await self.provision_status(tenant_slug, timeout=timeout, max_retries=max_retries)
            return {"tenant_slug": tenant_slug, "schema": status.get("schema"), "created": False}
        return result

    async def provision_from_category(
        self,
        tenant_slug: str,
        category_slug: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Create (or bring up to date) ``tenant_<slug>`` from a category's template.

        Returns ``{tenant_slug, category_slug, schema, created, version, applied_versions}``.
        """
        result: dict[str, Any] = await self._send(
            "POST",
            "/api/smith/provision/tenant-from-category",
            {"tenant_slug": tenant_slug, "category_slug": category_slug},
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return result

    async def deprovision_tenant(
        self,
        tenant_slug: str,
        cascade: bool = False,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> dict[str, Any]:
        """Drop a tenant's schema (``cascade=True`` when it still holds tables)."""
        result: dict[str, Any] = await self._send(
            "DELETE",
            "/api/smith/provision/tenant-schema",
            {"tenant_slug": tenant_slug, "cascade": cascade},
            timeout=timeout,
            max_retries=max_retries,
        )
        return result

    async def provision_status(
        self, tenant_slug: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> dict[str, Any]:
        """``{tenant_slug, schema, provisioned, category_slug, version, head_version, in_sync}``."""
        result: dict[str, Any] = await self._send(
            "GET",
            f"/api/smith/provision/status/{path_segment(tenant_slug)}",
            timeout=timeout,
            max_retries=max_retries,
        )
        return result

    async def list_provisions(
        self, *, timeout: float | None = None, max_retries: int | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Every provisioned tenant schema."""
        return _array(await self._send("GET", "/api/smith/provision/list", timeout=timeout, max_retries=max_retries))

    async def list_categories(
        self, *, timeout: float | None = None, max_retries: int | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Every tenant category with its template's head version and tenant count."""
        return _array(
            await self._send("GET", "/api/smith/provision/categories", timeout=timeout, max_retries=max_retries)
        )

    async def category_status(
        self, slug: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> dict[str, Any]:
        """``{category_slug, head_version, tenant_count, out_of_sync}`` (``out_of_sync``: tenant slugs)."""
        result: dict[str, Any] = await self._send(
            "GET",
            f"/api/smith/provision/category-status/{path_segment(slug)}",
            timeout=timeout,
            max_retries=max_retries,
        )
        return result

    async def tenants_by_category(
        self, slug: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> builtins.list[dict[str, Any]]:
        """The tenant schemas provisioned from a category."""
        return _array(
            await self._send(
                "GET",
                f"/api/smith/provision/tenants-by-category/{path_segment(slug)}",
                timeout=timeout,
                max_retries=max_retries,
            )
        )
