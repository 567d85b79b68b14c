"""The user-data layer: where the tables that projects create through Smith live, and how SQL is built for them.

User data never mixes with the service tables:

- **PostgreSQL**: every schema (``public``, ``tenant_<slug>``, any schema created through Smith) is a real
  PostgreSQL schema. The service tables stay in the database's default schema, and their names are reserved
  in ``public``.
- **SQLite**: all user schemas live in one separate database file, attached to every connection as
  ``userdata`` (``<data_dir>/userdata.db``, or an in-memory database for ephemeral instances). SQLite limits a
  connection to ten attached databases, so a schema is not a file of its own: schema ``s``'s table ``t`` is the
  table ``"s.t"`` and its index ``i`` the index ``"s.i"`` inside ``userdata``. An identifier can never contain
  a dot (spec 8.1), so the mapping is one-to-one, and one transaction covers every schema.

Identifiers are validated by the spec's pattern and always quoted by the dialect; values are always bound.
The only literals that become SQL text are column defaults and the parts of a constraint definition, which
DDL cannot bind: they are rendered by :func:`render_literal` from validated, typed values, and check
expressions are re-rendered token by token from a closed grammar (:func:`parse_check`).

Everything dialect-specific is in :class:`SqliteUserData` and :class:`PostgresUserData`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import re
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import quoted_name

from dominus_local.errors import ApiError, invalid, unprocessable
from dominus_local.idempotency import idempotency_keys, keys_table
from dominus_local.stores.database import Database, metadata
from dominus_local.stores.limits import StatementTimeout, is_statement_timeout
from dominus_local.validate import IDENTIFIER, format_timestamp, is_uuid, parse_timestamp

if TYPE_CHECKING:
    from dominus_local.state import LocalState

USERDATA = "userdata"
"""Name under which the SQLite user-data database is attached."""

EXPR_NOW = "CURRENT_TIMESTAMP"
EXPR_UUID = "gen_random_uuid()"

# --- types (spec 7.7) ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SqlType:
    """A column type of spec 7.7, normalised: ``kind`` plus its length, precision or scale."""

    kind: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None

    @property
    def name(self) -> str:
        """The canonical (PostgreSQL) spelling, e.g. ``varchar(50)`` or ``numeric(10,2)``."""
        if self.kind in ("varchar", "char"):
            return f"{self.kind}({self.length})" if self.length is not None else self.kind
        if self.kind == "numeric":
            if self.precision is None:
                return "numeric"
            return f"numeric({self.precision},{self.scale or 0})"
        if self.kind == "double":
            return "double precision"
        return self.kind

    @property
    def is_integer(self) -> bool:
        return self.kind in ("integer", "bigint", "smallint", "serial", "bigserial")

    @property
    def is_text(self) -> bool:
        return self.kind in ("text", "varchar", "char")

    @property
    def is_timestamp(self) -> bool:
        return self.kind in ("timestamp", "timestamptz")


_TYPE_ALIASES = {
    "integer": "integer",
    "int": "integer",
    "int4": "integer",
    "bigint": "bigint",
    "int8": "bigint",
    "smallint": "smallint",
    "int2": "smallint",
    "serial": "serial",
    "serial4": "serial",
    "bigserial": "bigserial",
    "serial8": "bigserial",
    "text": "text",
    "boolean": "boolean",
    "bool": "boolean",
    "real": "real",
    "float4": "real",
    "double precision": "double",
    "float8": "double",
    "float": "double",
    "date": "date",
    "time": "time",
    "time without time zone": "time",
    "timestamp": "timestamp",
    "timestamp without time zone": "timestamp",
    "timestamptz": "timestamptz",
    "timestamp with time zone": "timestamptz",
    "uuid": "uuid",
    "json": "json",
    "jsonb": "json",
    "bytea": "bytea",
    "varchar": "varchar",
    "character varying": "varchar",
    "numeric": "numeric",
    "decimal": "numeric",
}
_SIZED = re.compile(r"^(varchar|character varying|char|character|numeric|decimal)\((\d{1,5})(?:,(\d{1,5}))?\)$")
_INT_RANGES = {"smallint": 2**15, "integer": 2**31, "serial": 2**31, "bigint": 2**63, "bigserial": 2**63}


def parse_type(text: str) -> SqlType | None:
    """Parse a type name (case-insensitive, spaces inside parentheses ignored); ``None`` if not accepted."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    lowered = " ".join(text.strip().lower().split())
    lowered = re.sub(r"\s*\(\s*", "(", lowered)
    lowered = re.sub(r"\s*,\s*", ",", lowered)
    lowered = re.sub(r"\s*\)", ")", lowered)
    kind = _TYPE_ALIASES.get(lowered)
    if kind is not None:
        return SqlType(kind)
    match = _SIZED.match(lowered)
    if match is None:
        return None
    base, first, second = match.group(1), int(match.group(2)), match.group(3)
    if base in ("varchar", "character varying", "char", "character"):
        if second is not None or not 1 <= first <= 10485760:
            return None
        return SqlType("char" if base in ("char", "character") else "varchar", length=first)
    scale = int(second) if second is not None else 0
    if not 1 <= first <= 1000 or scale > first:
        return None
    return SqlType("numeric", precision=first, scale=scale)


def require_type(value: Any, field_name: str) -> SqlType:
    """The parsed type of a request field; a type this server does not accept is 422 (spec 7.7)."""
    if not isinstance(value, str) or not value.strip():
        raise invalid(field_name, "must be a type name")
    parsed = parse_type(value)
    if parsed is None:
        raise ApiError(
            "unprocessable",
            f"Type '{value[:64]}' is not supported",
            details={"field": field_name, "reason": "unsupported type"},
        )
    return parsed


# --- values: JSON <-> database (spec 8.2) ----------------------------------------------------------------


def _mismatch(column: str, expected: str) -> ApiError:
    return ApiError(
        "unprocessable",
        f"Value for column '{column}' must be {expected}",
        details={"field": column, "reason": f"must be {expected}"},
    )


def parse_value(ctype: SqlType, value: Any, column: str) -> Any:
    """Check a JSON value against a column type and return its normalised Python form.

    Integers and floats come back as ``int``/``float``, decimals as :class:`Decimal`, timestamps as aware UTC
    ``datetime``, dates and times as ``date``/``time``, UUIDs as lower-case text, JSON as the value itself,
    binary as ``bytes``. A value the type cannot hold is 422 ``unprocessable`` (spec 8.2).
    """
    if value is None:
        return None
    kind = ctype.kind
    if ctype.is_integer:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _mismatch(column, "an integer")
        bound = _INT_RANGES[kind]
        if not -bound <= value < bound:
            raise _mismatch(column, f"a {kind} in range")
        return value
    if ctype.is_text:
        if not isinstance(value, str):
            raise _mismatch(column, "a string")
        if "\x00" in value:
            raise _mismatch(column, "a string without NUL characters")
        if ctype.length is not None and len(value) > ctype.length:
            raise _mismatch(column, f"at most {ctype.length} characters")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _mismatch(column, "a boolean")
        return value
    if kind in ("real", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise _mismatch(column, "a number")
        return float(value)
    if kind == "numeric":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise _mismatch(column, "a number or a decimal string")
        text = str(value).strip()
        try:
            number = Decimal(text) if len(text) <= 1100 else _raise()
            if not number.is_finite():
                raise ValueError
            if ctype.precision is not None:
                scale = ctype.scale or 0
                number = number.quantize(Decimal(1).scaleb(-scale))
                if number != 0 and number.adjusted() + 1 > ctype.precision - scale:
                    raise ValueError
        except (InvalidOperation, ValueError):
            raise _mismatch(column, f"a finite {ctype.name} value") from None
        return number
    if kind in ("timestamp", "timestamptz"):
        parsed = parse_timestamp(value) if isinstance(value, str) and len(value) <= 64 else None
        if parsed is None:
            raise _mismatch(column, "an RFC 3339 timestamp")
        return parsed
    if kind == "date":
        try:
            return date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else _raise()
        except ValueError:
            raise _mismatch(column, "a date (YYYY-MM-DD)") from None
    if kind == "time":
        try:
            return time.fromisoformat(value) if isinstance(value, str) and len(value) <= 32 else _raise()
        except ValueError:
            raise _mismatch(column, "a time of day (HH:MM:SS)") from None
    if kind == "uuid":
        if not isinstance(value, str) or not is_uuid(value):
            raise _mismatch(column, "a UUID")
        return value.lower()
    if kind == "json":
        return value
    if kind == "bytea":
        if not isinstance(value, str):
            raise _mismatch(column, "base64 text")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _mismatch(column, "base64 text") from None
    raise _mismatch(column, "a supported value")  # pragma: no cover - every kind is handled above


def _raise() -> Any:
    raise ValueError


def _decimal_text(value: Any, ctype: SqlType) -> str:
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if ctype.scale is not None and ctype.precision is not None:
        number = number.quantize(Decimal(1).scaleb(-ctype.scale))
    return format(number, "f")


def render_literal(ctype: SqlType, value: Any) -> str:
    """A validated default value as a SQL literal (DDL cannot bind values; spec 7.7 defaults).

    ``value`` must come from :func:`parse_value`: numbers are rendered from Python numbers, and text is
    single-quoted with quotes doubled, so no input can end the literal.
    """
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float | Decimal):
        return format(value, "f") if isinstance(value, Decimal) else repr(value)
    if isinstance(value, datetime):
        text = format_timestamp(value)
    elif isinstance(value, date | time):
        text = value.isoformat()
    elif isinstance(value, bytes):
        return "X'" + value.hex() + "'"
    elif ctype.kind == "json":
        text = json.dumps(value, separators=(",", ":"))
    else:
        text = str(value)
    return "'" + text.replace("'", "''") + "'"


# --- column definitions ----------------------------------------------------------------------------------


@dataclass
class ColumnDef:
    """One column of a table definition (spec 7.7): the wire form, validated."""

    name: str
    type: SqlType
    primary_key: bool = False
    nullable: bool = True
    unique: bool = False
    default: Any = None
    """A literal already checked against ``type`` (wire form), an expression name, or ``None``."""

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type.name,
            "primary_key": self.primary_key,
            "nullable": self.nullable,
            "unique": self.unique,
            "default": self.default,
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ColumnDef:
        parsed = parse_type(str(data["type"]))
        assert parsed is not None
        return cls(
            str(data["name"]),
            parsed,
            bool(data.get("primary_key")),
            bool(data.get("nullable", True)),
            bool(data.get("unique")),
            data.get("default"),
        )


def check_default(ctype: SqlType, default: Any, field_name: str = "default") -> Any:
    """Validate a wire default (spec 7.7) and return it in normalised wire form (400 on a bad literal)."""
    if default is None:
        return None
    if isinstance(default, str) and default.strip().upper() in (EXPR_NOW, "NOW()"):
        if not (ctype.is_timestamp or ctype.kind in ("date", "time")):
            raise invalid(field_name, f"CURRENT_TIMESTAMP does not fit type {ctype.name}")
        return EXPR_NOW
    if isinstance(default, str) and default.strip().lower() == EXPR_UUID:
        if ctype.kind != "uuid" and not ctype.is_text:
            raise invalid(field_name, f"gen_random_uuid() does not fit type {ctype.name}")
        return EXPR_UUID
    if isinstance(default, dict | list) and ctype.kind != "json":
        raise invalid(field_name, f"must be a literal of type {ctype.name}")
    try:
        value = parse_value(ctype, default, field_name)
    except ApiError as error:
        raise invalid(field_name, f"is not a literal of type {ctype.name}") from error
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date | time):
        return value.isoformat()
    return default


def parse_columns(raw: Any, field_name: str = "columns") -> list[ColumnDef]:
    """Validate ``columns`` of create-table: a non-empty list of column definitions (spec 7.7)."""
    if not isinstance(raw, list) or not raw:
        raise invalid(field_name, "must be a non-empty list of column definitions")
    if len(raw) > 1600:
        raise invalid(field_name, "must have at most 1600 columns")
    columns: list[ColumnDef] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        where = f"{field_name}[{index}]"
        if not isinstance(item, dict):
            raise invalid(where, "must be an object")
        name = item.get("name")
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            raise invalid(f"{where}.name", f"must match {IDENTIFIER.pattern}")
        if name.lower() in seen:
            raise invalid(f"{where}.name", "is repeated")
        seen.add(name.lower())
        ctype = require_type(item.get("type"), f"{where}.type")
        flags = {}
        for flag, fallback in (("primary_key", False), ("nullable", True), ("unique", False)):
            value = item.get(flag, fallback)
            if value is None:
                value = fallback
            if not isinstance(value, bool):
                raise invalid(f"{where}.{flag}", "must be a boolean")
            flags[flag] = value
        default = check_default(ctype, item.get("default"), f"{where}.default")
        nullable = flags["nullable"] and not flags["primary_key"]
        columns.append(ColumnDef(name, ctype, flags["primary_key"], nullable, flags["unique"], default))
    return columns


# --- table definitions (the Smith catalogue) -------------------------------------------------------------


@dataclass
class ConstraintDef:
    """A named table constraint: ``kind`` is primary_key, unique, check or foreign_key."""

    name: str
    kind: str
    columns: list[str] = field(default_factory=list)
    check: list[tuple[str, str]] = field(default_factory=list)
    """The check expression as (kind, text) tokens, re-rendered with identifiers quoted."""
    ref_schema: str | None = None
    ref_table: str | None = None
    ref_columns: list[str] = field(default_factory=list)
    on_delete: str | None = None
    on_update: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "columns": self.columns,
            "check": [list(t) for t in self.check],
            "ref_schema": self.ref_schema,
            "ref_table": self.ref_table,
            "ref_columns": self.ref_columns,
            "on_delete": self.on_delete,
            "on_update": self.on_update,
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ConstraintDef:
        return cls(
            data["name"],
            data["kind"],
            list(data.get("columns") or []),
            [(str(k), str(t)) for k, t in data.get("check") or []],
            data.get("ref_schema"),
            data.get("ref_table"),
            list(data.get("ref_columns") or []),
            data.get("on_delete"),
            data.get("on_update"),
        )

    def definition(self, quote: Any) -> str:
        """The text after the keyword, with identifiers quoted by ``quote``."""
        cols = ", ".join(quote(c) for c in self.columns)
        if self.kind == "check":
            return "(" + render_check(self.check, quote) + ")"
        if self.kind == "foreign_key":
            text = f"({cols}) REFERENCES {quote(self.ref_schema or '')}.{quote(self.ref_table or '')}"
            text += "(" + ", ".join(quote(c) for c in self.ref_columns) + ")"
            if self.on_delete:
                text += f" ON DELETE {self.on_delete}"
            if self.on_update:
                text += f" ON UPDATE {self.on_update}"
            return text
        return f"({cols})"


@dataclass
class IndexDef:
    name: str
    columns: list[str]
    unique: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {"name": self.name, "columns": self.columns, "unique": self.unique}


@dataclass
class TableDef:
    """What Smith knows of a table it created: columns, named constraints and indexes."""

    columns: list[ColumnDef]
    constraints: list[ConstraintDef] = field(default_factory=list)
    indexes: list[IndexDef] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        return {
            "columns": [c.to_wire() for c in self.columns],
            "constraints": [c.to_wire() for c in self.constraints],
            "indexes": [i.to_wire() for i in self.indexes],
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> TableDef:
        return cls(
            [ColumnDef.from_wire(c) for c in data.get("columns") or []],
            [ConstraintDef.from_wire(c) for c in data.get("constraints") or []],
            [IndexDef(i["name"], list(i["columns"]), bool(i.get("unique"))) for i in data.get("indexes") or []],
        )

    def column(self, name: str) -> ColumnDef | None:
        return next((c for c in self.columns if c.name == name), None)


# --- constraint definitions: a closed grammar ------------------------------------------------------------

_CHECK_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>\d+(?:\.\d+)?)
      | (?P<string>'(?:[^']|'')*')
      | (?P<qident>"[A-Za-z_][A-Za-z0-9_]{0,62}")
      | (?P<word>[A-Za-z_][A-Za-z0-9_]{0,62})
      | (?P<op><>|!=|<=|>=|\|\||[=<>+\-*/%(),])
    )""",
    re.VERBOSE,
)
_CHECK_KEYWORDS = {"and", "or", "not", "is", "null", "in", "between", "like", "true", "false"}
_FK = re.compile(
    r"""^\(\s*(?P<cols>[^()]*)\)\s+REFERENCES\s+(?P<ref>[A-Za-z0-9_."]+)\s*\(\s*(?P<refcols>[^()]*)\)
        (?P<actions>(?:\s+ON\s+(?:DELETE|UPDATE)\s+(?:CASCADE|RESTRICT|SET\s+NULL|SET\s+DEFAULT|NO\s+ACTION))*)\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_FK_ACTION = re.compile(
    r"ON\s+(DELETE|UPDATE)\s+(CASCADE|RESTRICT|SET\s+NULL|SET\s+DEFAULT|NO\s+ACTION)", re.IGNORECASE
)


def _ident_list(text: str, field_name: str) -> list[str]:
    names = [part.strip().strip('"') for part in text.split(",")]
    if not names or any(not IDENTIFIER.match(n) for n in names):
        raise invalid(field_name, "must be a parenthesised list of column names")
    return names


def parse_check(text: str, columns: Sequence[str]) -> list[tuple[str, str]]:
    """Tokenise a check expression: columns, numbers, quoted strings, operators and a few keywords only."""
    if len(text) > 4000:
        raise invalid("definition", "must be at most 4000 characters")
    tokens: list[tuple[str, str]] = []
    position = 0
    stripped = text.rstrip()
    depth = 0
    while position < len(stripped):
        match = _CHECK_TOKEN.match(stripped, position)
        if match is None or match.end() == position:
            raise invalid("definition", "is not a supported check expression")
        position = match.end()
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "qident":
            kind, value = "word", value[1:-1]
        if kind == "word":
            if value.lower() in _CHECK_KEYWORDS:
                tokens.append(("kw", value.upper()))
                continue
            if value not in columns:
                raise ApiError(
                    "unprocessable",
                    f"Column '{value}' does not exist",
                    details={"field": "definition", "reason": "unknown column"},
                )
            tokens.append(("ident", value))
            continue
        if value == "(":
            depth += 1
        elif value == ")":
            depth -= 1
            if depth < 0:
                raise invalid("definition", "has unbalanced parentheses")
        tokens.append((kind, value))
    if depth != 0 or not tokens:
        raise invalid("definition", "is not a supported check expression")
    return tokens


def render_check(tokens: Sequence[tuple[str, str]], quote: Any) -> str:
    return " ".join(quote(text) if kind == "ident" else text for kind, text in tokens)


def parse_constraint(name: str, kind: str, definition: str, schema: str, table_columns: Sequence[str]) -> ConstraintDef:
    """Validate add-constraint's ``constraint_type`` and ``definition`` (spec 7.7)."""
    if not isinstance(definition, str) or not definition.strip():
        raise invalid("definition", "must not be empty")
    text = definition.strip()
    if kind in ("primary_key", "unique"):
        match = re.fullmatch(r"\(([^()]*)\)", text)
        if match is None:
            raise invalid("definition", "must be a parenthesised list of column names")
        cols = _ident_list(match.group(1), "definition")
        _known(cols, table_columns)
        return ConstraintDef(name, kind, cols)
    if kind == "check":
        return ConstraintDef(name, kind, check=parse_check(text, table_columns))
    if kind == "foreign_key":
        match = _FK.match(text)
        if match is None:
            raise invalid("definition", "must look like (col) REFERENCES schema.table(col) [ON DELETE ...]")
        cols = _ident_list(match.group("cols"), "definition")
        _known(cols, table_columns)
        ref_parts = [p.strip('"') for p in match.group("ref").split(".")]
        if len(ref_parts) == 1:
            ref_parts = [schema, ref_parts[0]]
        if len(ref_parts) != 2 or not all(IDENTIFIER.match(p) for p in ref_parts):
            raise invalid("definition", "must name the referenced table as schema.table")
        ref_cols = _ident_list(match.group("refcols"), "definition")
        if len(ref_cols) != len(cols):
            raise invalid("definition", "must reference as many columns as it names")
        actions = {a.upper(): " ".join(b.upper().split()) for a, b in _FK_ACTION.findall(match.group("actions"))}
        return ConstraintDef(
            name,
            kind,
            cols,
            ref_schema=ref_parts[0],
            ref_table=ref_parts[1],
            ref_columns=ref_cols,
            on_delete=actions.get("DELETE"),
            on_update=actions.get("UPDATE"),
        )
    raise invalid("constraint_type", "must be one of primary_key, unique, check, foreign_key")


def _known(cols: Sequence[str], table_columns: Sequence[str]) -> None:
    for col in cols:
        if col not in table_columns:
            raise ApiError(
                "unprocessable",
                f"Column '{col}' does not exist",
                details={"field": "definition", "reason": "unknown column"},
            )


# --- introspected columns --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnInfo:
    """A column as the database reports it, with its parsed type (``None``: a type Scribe passes through)."""

    name: str
    type_name: str
    type: SqlType | None
    nullable: bool
    default: Any
    primary_key: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type.name if self.type is not None else self.type_name.lower(),
            "nullable": self.nullable,
            "default": self.default,
            "primary_key": self.primary_key > 0,
        }


# --- dialects --------------------------------------------------------------------------------------------


_DDL_WORDS = frozenset({"CREATE", "ALTER", "DROP", "RENAME", "COMMENT"})
"""First words of the statements that may change a table's shape or existence."""


def _q(name: str) -> quoted_name:
    return quoted_name(name, quote=True)


class UserData:
    """Dialect-neutral operations on user schemas; subclasses hold every dialect-specific statement."""

    dialect = "generic"
    keys_table: sa.Table = idempotency_keys
    """Where Scribe records the idempotency keys of its writes, in the writes' own transactions."""

    def __init__(self, database: Database | None) -> None:
        self.database = database
        self.catalog_generation = 0
        """Moves on every DDL statement this process runs (and when such a transaction ends): Scribe keeps
        resolved tables only while it stays the same (see ``scribe.resolved``)."""
        self.resolved: dict[tuple[str, str], tuple[Any, float]] = {}
        self._changing: weakref.WeakSet[Any] = weakref.WeakSet()
        """Scribe's resolved tables: (schema, table) -> (target, monotonic time it may be used until)."""
        if database is not None:
            sync = database.engine.sync_engine
            sa.event.listen(sync, "after_cursor_execute", self._after_execute)
            sa.event.listen(sync, "commit", self._transaction_ended)
            sa.event.listen(sync, "rollback", self._transaction_ended)

    def catalog_changed(self) -> None:
        """Forget every resolved table (a DDL statement ran, or is about to be committed)."""
        self.catalog_generation += 1
        self.resolved.clear()

    def changing_catalog(self, conn: Any) -> None:
        """``conn`` (a sync connection) changes the catalogue: forget now, and again when its transaction ends."""
        self._changing.add(conn)
        self.catalog_changed()

    def _after_execute(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        head = statement[:16].split(None, 1)
        if head and head[0].upper() in _DDL_WORDS:
            self.changing_catalog(conn)

    def _transaction_ended(self, conn: Any) -> None:
        # Again when the DDL's transaction ends: a table resolved meanwhile by another connection saw the
        # catalogue before this commit (PostgreSQL), and must not be kept. (Never touch the connection here:
        # it may be invalidated, and this runs inside its rollback.)
        if conn in self._changing:
            self._changing.discard(conn)
            self.catalog_changed()

    # names
    def quote(self, name: str) -> str:
        """Always-quoted identifier (spec 8.1)."""
        return '"' + name.replace('"', '""') + '"'

    def table(self, schema: str, name: str, columns: Sequence[str | ColumnInfo]) -> sa.TableClause:
        """A lightweight table construct for Core statements; every name is quoted."""
        raise NotImplementedError

    def order_of_insertion(self, schema: str, name: str) -> sa.ColumnElement[Any]:
        """The ordering that follows insertion, for tables without a primary key (spec 8.2)."""
        raise NotImplementedError

    def qualified(self, schema: str, name: str) -> str:
        raise NotImplementedError

    # lifecycle
    async def start(self) -> None:
        """Prepare the store when the app starts."""

    async def prepare(self, conn: AsyncConnection) -> None:
        """Make a fresh transaction ready for user data (SQLite: attach, then begin DDL-safe)."""

    # values
    def to_db(self, info: ColumnInfo, value: Any) -> Any:
        raise NotImplementedError

    def from_db(self, ctype: SqlType | None, value: Any) -> Any:
        """A stored value in the JSON form of spec 8.2."""
        if value is None:
            return None
        if ctype is None:
            if isinstance(value, bytes | bytearray | memoryview):
                return base64.b64encode(bytes(value)).decode()
            if isinstance(value, datetime):
                return format_timestamp(value)
            if isinstance(value, Decimal):
                return format(value, "f")
            if isinstance(value, date | time):
                return value.isoformat()
            return value if isinstance(value, str | int | float | bool | list | dict) else str(value)
        kind = ctype.kind
        if ctype.is_integer:
            return int(value)
        if kind in ("real", "double"):
            return float(value)
        if kind == "numeric":
            return _decimal_text(value, ctype)
        if kind == "boolean":
            return bool(value)
        if ctype.is_timestamp:
            if isinstance(value, datetime):
                return format_timestamp(value)
            parsed = parse_timestamp(str(value))
            return format_timestamp(parsed) if parsed is not None else str(value)
        if kind in ("date", "time"):
            return value.isoformat() if isinstance(value, date | time) else str(value)
        if kind == "uuid":
            return str(value).lower()
        if kind == "json":
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                with contextlib.suppress(ValueError):
                    return json.loads(str(value)) if isinstance(value, str) else value
            return value
        if kind == "bytea":
            return base64.b64encode(bytes(value)).decode() if not isinstance(value, str) else value
        return value if isinstance(value, str) else str(value)

    # catalogue reads
    async def list_tables(self, conn: AsyncConnection, schema: str) -> list[str]:
        raise NotImplementedError

    async def columns(self, conn: AsyncConnection, schema: str, table: str) -> list[ColumnInfo]:
        raise NotImplementedError

    async def index_table(self, conn: AsyncConnection, schema: str, index: str) -> str | None:
        """The table an index belongs to, or ``None`` when the schema has no such index."""
        raise NotImplementedError

    async def relation_exists(self, conn: AsyncConnection, schema: str, name: str) -> bool:
        """Whether a table, view or index of that name exists in the schema (they share one namespace)."""
        raise NotImplementedError

    # DDL
    def column_sql(self, column: ColumnDef, *, single_pk: bool) -> str:
        raise NotImplementedError

    def default_sql(self, column: ColumnDef) -> str | None:
        raise NotImplementedError

    def create_table_sql(self, schema: str, table: str, definition: TableDef, *, physical: str | None = None) -> str:
        pks = [c.name for c in definition.columns if c.primary_key]
        single = len(pks) == 1
        parts = [self.column_sql(c, single_pk=single) for c in definition.columns]
        if len(pks) > 1:
            parts.append("PRIMARY KEY (" + ", ".join(self.quote(p) for p in pks) + ")")
        for constraint in definition.constraints:
            parts.append(self.constraint_sql(schema, constraint))
        target = physical if physical is not None else self.qualified(schema, table)
        return f"CREATE TABLE {target} (" + ", ".join(parts) + ")"

    def constraint_sql(self, schema: str, constraint: ConstraintDef) -> str:
        keyword = {"primary_key": "PRIMARY KEY", "unique": "UNIQUE", "check": "CHECK", "foreign_key": "FOREIGN KEY"}
        return f"CONSTRAINT {self.quote(constraint.name)} {keyword[constraint.kind]} " + constraint.definition(
            self.quote
        )

    async def create_schema(self, conn: AsyncConnection, schema: str) -> None:
        raise NotImplementedError

    async def drop_schema(self, conn: AsyncConnection, schema: str) -> None:
        raise NotImplementedError

    async def create_table(self, conn: AsyncConnection, schema: str, table: str, definition: TableDef) -> None:
        await conn.exec_driver_sql(self.create_table_sql(schema, table, definition))
        for index in definition.indexes:
            await self.create_index(conn, schema, table, index)

    async def drop_table(self, conn: AsyncConnection, schema: str, table: str) -> None:
        await conn.exec_driver_sql(f"DROP TABLE {self.qualified(schema, table)}")

    async def truncate_table(self, conn: AsyncConnection, schema: str, table: str) -> None:
        raise NotImplementedError

    async def add_column(
        self, conn: AsyncConnection, schema: str, table: str, column: ColumnDef, after: TableDef | None
    ) -> None:
        raise NotImplementedError

    async def drop_column(
        self, conn: AsyncConnection, schema: str, table: str, column: str, after: TableDef | None
    ) -> None:
        raise NotImplementedError

    async def rename_column(self, conn: AsyncConnection, schema: str, table: str, old: str, new: str) -> None:
        await conn.exec_driver_sql(
            f"ALTER TABLE {self.qualified(schema, table)} RENAME COLUMN {self.quote(old)} TO {self.quote(new)}"
        )

    async def alter_column(
        self,
        conn: AsyncConnection,
        schema: str,
        table: str,
        before: ColumnDef,
        after_column: ColumnDef,
        after: TableDef,
    ) -> None:
        raise NotImplementedError

    async def create_index(self, conn: AsyncConnection, schema: str, table: str, index: IndexDef) -> None:
        raise NotImplementedError

    async def drop_index(self, conn: AsyncConnection, schema: str, index: str) -> None:
        raise NotImplementedError

    async def add_constraint(
        self, conn: AsyncConnection, schema: str, table: str, constraint: ConstraintDef, after: TableDef
    ) -> None:
        raise NotImplementedError

    async def drop_constraint(self, conn: AsyncConnection, schema: str, table: str, name: str, after: TableDef) -> None:
        raise NotImplementedError

    async def execute_raw(self, conn: AsyncConnection, schema: str, sql: str) -> None:
        raise NotImplementedError

    # checksums (tests compare a whole database before and after hostile input)
    async def checksum(self, conn: AsyncConnection, schemas: Sequence[str]) -> str:
        import hashlib

        digest = hashlib.sha256()
        for schema in sorted(schemas):
            for table in sorted(await self.list_tables(conn, schema)):
                cols = await self.columns(conn, schema, table)
                digest.update(f"{schema}.{table}:{','.join(c.name for c in cols)}".encode())
                construct = self.table(schema, table, cols)
                rows = await conn.execute(sa.select(construct).order_by(*construct.c))
                for row in rows:
                    digest.update(repr(tuple(row)).encode())
        return digest.hexdigest()


class SqliteUserData(UserData):
    """SQLite: every user schema inside one attached database, objects named ``"<schema>.<name>"``."""

    dialect = "sqlite"

    def __init__(self, database: Database, data_dir: Path | None) -> None:
        super().__init__(database)
        self.path = ":memory:" if data_dir is None else str(data_dir / "userdata.db")
        self.keys_table = keys_table(sa.MetaData(), USERDATA)
        """The idempotency keys of Scribe's writes, beside the rows: a write and its key's record commit in one
        database file (two attached WAL databases do not commit atomically together). Its name has no dot, so it
        is no table of any user schema."""

    def physical(self, schema: str, name: str) -> str:
        return f"{schema}.{name}"

    def qualified(self, schema: str, name: str) -> str:
        return f"{USERDATA}.{self.quote(self.physical(schema, name))}"

    def table(self, schema: str, name: str, columns: Sequence[str | ColumnInfo]) -> sa.TableClause:
        names = [c if isinstance(c, str) else c.name for c in columns]
        return sa.table(_q(self.physical(schema, name)), *(sa.column(_q(c)) for c in names), schema=USERDATA)

    def order_of_insertion(self, schema: str, name: str) -> sa.ColumnElement[Any]:
        return sa.literal_column(f"{self.qualified(schema, name)}.rowid")

    async def prepare(self, conn: AsyncConnection) -> None:
        # ATTACH is refused inside a transaction, and the sqlite3 driver only begins one implicitly before
        # DML, so a fresh connection is still outside one here. The explicit BEGIN then makes DDL part of the
        # request's transaction too, which the driver would otherwise run in autocommit mode.
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        if not conn.info.get("userdata_attached"):
            attached = [str(tuple(r)[1]) for r in (await conn.exec_driver_sql("PRAGMA database_list")).all()]
            if USERDATA not in attached:
                await conn.exec_driver_sql(f"ATTACH DATABASE ? AS {USERDATA}", (self.path,))
                if self.path != ":memory:":
                    await conn.exec_driver_sql(f"PRAGMA {USERDATA}.journal_mode=WAL")
            conn.info["userdata_attached"] = True
        if driver is not None and not getattr(driver, "in_transaction", True):
            await conn.exec_driver_sql("BEGIN")

    def to_db(self, info: ColumnInfo, value: Any) -> Any:
        ctype = info.type
        if value is None or ctype is None:
            return value
        parsed = parse_value(ctype, value, info.name)
        if isinstance(parsed, datetime):
            return format_timestamp(parsed)
        if isinstance(parsed, date | time):
            return parsed.isoformat()
        if isinstance(parsed, Decimal):
            return format(parsed, "f")
        if isinstance(parsed, bool):
            return 1 if parsed else 0
        if ctype.kind == "json":
            return json.dumps(parsed, separators=(",", ":"))
        return parsed

    async def list_tables(self, conn: AsyncConnection, schema: str) -> list[str]:
        prefix = schema + "."
        rows = await conn.exec_driver_sql(
            f"SELECT name FROM {USERDATA}.sqlite_master WHERE type = 'table' AND substr(name, 1, ?) = ?",  # noqa: S608 - quoted identifiers only
            (len(prefix), prefix),
        )
        return sorted(str(r[0])[len(prefix) :] for r in rows)

    async def columns(self, conn: AsyncConnection, schema: str, table: str) -> list[ColumnInfo]:
        rows = await conn.exec_driver_sql(
            'SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?, ?)',
            (self.physical(schema, table), USERDATA),
        )
        out = []
        for row in rows:
            name, type_name, notnull, default, pk = tuple(row)
            ctype = parse_type(type_name or "")
            out.append(ColumnInfo(str(name), str(type_name or ""), ctype, not notnull and not pk, default, int(pk)))
        return out

    async def index_table(self, conn: AsyncConnection, schema: str, index: str) -> str | None:
        row = (
            await conn.exec_driver_sql(
                f"SELECT tbl_name FROM {USERDATA}.sqlite_master WHERE type = 'index' AND name = ?",  # noqa: S608 - quoted identifiers only
                (self.physical(schema, index),),
            )
        ).first()
        return None if row is None else str(row[0]).split(".", 1)[1]

    async def relation_exists(self, conn: AsyncConnection, schema: str, name: str) -> bool:
        row = (
            await conn.exec_driver_sql(
                f"SELECT 1 FROM {USERDATA}.sqlite_master WHERE lower(name) = lower(?)",  # noqa: S608 - quoted identifiers only
                (self.physical(schema, name),),
            )
        ).first()
        return row is not None

    def default_sql(self, column: ColumnDef) -> str | None:
        default = column.default
        if default is None:
            return None
        if default == EXPR_NOW:
            if column.type.kind == "date":
                return "(date('now'))"
            if column.type.kind == "time":
                return "(time('now'))"
            return "(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
        if default == EXPR_UUID:
            return (
                "(lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || "
                "substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || "
                "substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))))"
            )
        info = ColumnInfo(column.name, column.type.name, column.type, True, None, 0)
        stored = self.to_db(info, default)
        if isinstance(stored, str):
            return "'" + stored.replace("'", "''") + "'"
        return render_literal(column.type, stored)

    def type_sql(self, ctype: SqlType) -> str:
        if ctype.kind in ("serial", "bigserial"):
            return "INTEGER"
        return ctype.name.upper()

    def column_sql(self, column: ColumnDef, *, single_pk: bool) -> str:
        sql = f"{self.quote(column.name)} {self.type_sql(column.type)}"
        if column.primary_key and single_pk:
            sql += " PRIMARY KEY"
        if not column.nullable and not (column.primary_key and single_pk):
            sql += " NOT NULL"
        if column.unique and not column.primary_key:
            sql += " UNIQUE"
        default = self.default_sql(column)
        if default is not None:
            sql += f" DEFAULT {default}"
        return sql

    async def create_schema(self, conn: AsyncConnection, schema: str) -> None:
        """Nothing to create: a schema is a name prefix inside the user-data database."""

    async def drop_schema(self, conn: AsyncConnection, schema: str) -> None:
        for table in await self.list_tables(conn, schema):
            await conn.exec_driver_sql(f"DROP TABLE {self.qualified(schema, table)}")
        prefix = schema + "."
        rows = await conn.exec_driver_sql(
            f"SELECT name FROM {USERDATA}.sqlite_master WHERE type = 'view' AND substr(name, 1, ?) = ?",  # noqa: S608 - quoted identifiers only
            (len(prefix), prefix),
        )
        for (name,) in rows.all():
            await conn.exec_driver_sql(f"DROP VIEW {USERDATA}.{self.quote(str(name))}")

    async def truncate_table(self, conn: AsyncConnection, schema: str, table: str) -> None:
        await conn.exec_driver_sql(f"DELETE FROM {self.qualified(schema, table)}")  # noqa: S608 - quoted identifiers only

    async def add_column(
        self, conn: AsyncConnection, schema: str, table: str, column: ColumnDef, after: TableDef | None
    ) -> None:
        # SQLite's ADD COLUMN takes neither keys nor non-constant defaults; those need the table rebuilt.
        simple = not column.primary_key and not column.unique and column.default not in (EXPR_NOW, EXPR_UUID)
        if simple and (column.nullable or column.default is not None):
            sql = self.column_sql(column, single_pk=False)
            await conn.exec_driver_sql(f"ALTER TABLE {self.qualified(schema, table)} ADD COLUMN {sql}")
            return
        if after is None:
            raise unprocessable("This column can only be added to tables created through Smith on SQLite")
        await self._rebuild(conn, schema, table, after, {c.name: c.name for c in after.columns if c is not column})

    async def drop_column(
        self, conn: AsyncConnection, schema: str, table: str, column: str, after: TableDef | None
    ) -> None:
        if after is None:
            await conn.exec_driver_sql(f"ALTER TABLE {self.qualified(schema, table)} DROP COLUMN {self.quote(column)}")
            return
        await self._rebuild(conn, schema, table, after, {c.name: c.name for c in after.columns})

    async def alter_column(
        self,
        conn: AsyncConnection,
        schema: str,
        table: str,
        before: ColumnDef,
        after_column: ColumnDef,
        after: TableDef,
    ) -> None:
        convert = None if before.type == after_column.type else (before.type, after_column)
        await self._rebuild(conn, schema, table, after, {c.name: c.name for c in after.columns}, convert=convert)

    async def create_index(self, conn: AsyncConnection, schema: str, table: str, index: IndexDef) -> None:
        unique = "UNIQUE " if index.unique else ""
        cols = ", ".join(self.quote(c) for c in index.columns)
        await conn.exec_driver_sql(
            f"CREATE {unique}INDEX {USERDATA}.{self.quote(self.physical(schema, index.name))} "
            f"ON {self.quote(self.physical(schema, table))} ({cols})"
        )

    async def drop_index(self, conn: AsyncConnection, schema: str, index: str) -> None:
        await conn.exec_driver_sql(f"DROP INDEX {USERDATA}.{self.quote(self.physical(schema, index))}")

    async def add_constraint(
        self, conn: AsyncConnection, schema: str, table: str, constraint: ConstraintDef, after: TableDef
    ) -> None:
        await self._rebuild(conn, schema, table, after, {c.name: c.name for c in after.columns})

    async def drop_constraint(self, conn: AsyncConnection, schema: str, table: str, name: str, after: TableDef) -> None:
        await self._rebuild(conn, schema, table, after, {c.name: c.name for c in after.columns})

    def constraint_sql(self, schema: str, constraint: ConstraintDef) -> str:
        if constraint.kind != "foreign_key":
            return super().constraint_sql(schema, constraint)
        # SQLite resolves a reference inside the same database: the referenced schema is part of the name.
        cols = ", ".join(self.quote(c) for c in constraint.columns)
        ref = self.quote(self.physical(constraint.ref_schema or schema, constraint.ref_table or ""))
        text = f"CONSTRAINT {self.quote(constraint.name)} FOREIGN KEY ({cols}) REFERENCES {ref}"
        text += "(" + ", ".join(self.quote(c) for c in constraint.ref_columns) + ")"
        if constraint.on_delete:
            text += f" ON DELETE {constraint.on_delete}"
        if constraint.on_update:
            text += f" ON UPDATE {constraint.on_update}"
        return text

    async def _rebuild(
        self,
        conn: AsyncConnection,
        schema: str,
        table: str,
        definition: TableDef,
        mapping: Mapping[str, str],
        *,
        convert: tuple[SqlType, ColumnDef] | None = None,
    ) -> None:
        """SQLite's way to alter a table: create the new shape, copy the rows, swap the names."""
        physical = self.physical(schema, table)
        referenced = (
            await conn.exec_driver_sql(
                f"SELECT m.name FROM {USERDATA}.sqlite_master AS m, pragma_foreign_key_list(m.name, ?) AS f "  # noqa: S608 - quoted identifiers only
                "WHERE m.type = 'table' AND f.\"table\" = ? AND m.name <> ?",
                (USERDATA, physical, physical),
            )
        ).first()
        if referenced is not None:
            raise unprocessable(
                f"Table '{schema}.{table}' is referenced by a foreign key; SQLite cannot rebuild it in place"
            )
        temp = f"{schema}.__rebuild_{table}"
        await conn.exec_driver_sql(
            self.create_table_sql(schema, table, definition, physical=f"{USERDATA}.{self.quote(temp)}")
        )
        old_columns = {c.name for c in await self.columns(conn, schema, table)}
        pairs = [(new, old) for new, old in mapping.items() if old in old_columns]
        targets = ", ".join(self.quote(new) for new, _ in pairs)
        if convert is None:
            sources = ", ".join(self.quote(old) for _, old in pairs)
            await conn.exec_driver_sql(
                f"INSERT INTO {USERDATA}.{self.quote(temp)} ({targets}) "  # noqa: S608 - quoted identifiers only
                f"SELECT {sources} FROM {self.qualified(schema, table)}"
            )
        else:
            await self._copy_converting(conn, schema, table, temp, pairs, convert)
        await conn.exec_driver_sql(f"DROP TABLE {self.qualified(schema, table)}")
        await conn.exec_driver_sql(f"ALTER TABLE {USERDATA}.{self.quote(temp)} RENAME TO {self.quote(physical)}")
        for index in definition.indexes:
            await self.create_index(conn, schema, table, index)

    async def _copy_converting(
        self,
        conn: AsyncConnection,
        schema: str,
        table: str,
        temp: str,
        pairs: Sequence[tuple[str, str]],
        convert: tuple[SqlType, ColumnDef],
    ) -> None:
        old_type, new_column = convert
        source = self.table(schema, table, [old for _, old in pairs])
        target = sa.table(_q(temp), *(sa.column(_q(new)) for new, _ in pairs), schema=USERDATA)
        info = ColumnInfo(new_column.name, new_column.type.name, new_column.type, True, None, 0)
        batch: list[dict[str, Any]] = []
        result = await conn.stream(sa.select(source))
        async for row in result:
            values = dict(zip([new for new, _ in pairs], row, strict=True))
            current = values.get(new_column.name)
            if current is not None:
                as_json = self.from_db(old_type, current)
                if new_column.type.is_text and not isinstance(as_json, str):
                    as_json = (
                        json.dumps(as_json)
                        if isinstance(as_json, dict | list)
                        else str(as_json).lower()
                        if isinstance(as_json, bool)
                        else str(as_json)
                    )
                elif new_column.type.is_integer and isinstance(as_json, str):
                    with contextlib.suppress(ValueError):
                        as_json = int(as_json)
                elif new_column.type.kind in ("real", "double", "numeric") and isinstance(as_json, str):
                    with contextlib.suppress(ValueError):
                        as_json = float(as_json) if new_column.type.kind != "numeric" else as_json
                values[new_column.name] = self.to_db(info, as_json)
            batch.append(values)
            if len(batch) >= 1000:
                await conn.execute(sa.insert(target), batch)
                batch = []
        if batch:
            await conn.execute(sa.insert(target), batch)

    async def execute_raw(self, conn: AsyncConnection, schema: str, sql: str) -> None:
        await conn.exec_driver_sql(qualify_sqlite_ddl(sql, schema))


class PostgresUserData(UserData):
    """PostgreSQL: user schemas are real schemas; the service tables' names are reserved in ``public``."""

    dialect = "postgresql"

    def qualified(self, schema: str, name: str) -> str:
        return f"{self.quote(schema)}.{self.quote(name)}"

    def table(self, schema: str, name: str, columns: Sequence[str | ColumnInfo]) -> sa.TableClause:
        built = [sa.column(_q(c)) if isinstance(c, str) else sa.column(_q(c.name), self.bind_type(c)) for c in columns]
        return sa.table(_q(name), *built, schema=_q(schema))

    def order_of_insertion(self, schema: str, name: str) -> sa.ColumnElement[Any]:
        return sa.literal_column(f"{self.qualified(schema, name)}.ctid")

    def to_db(self, info: ColumnInfo, value: Any) -> Any:
        ctype = info.type
        if value is None or ctype is None:
            return value
        parsed = parse_value(ctype, value, info.name)
        if ctype.kind == "timestamp" and isinstance(parsed, datetime):
            return parsed.replace(tzinfo=None)
        return parsed

    def bind_type(self, info: ColumnInfo) -> sa.types.TypeEngine[Any] | None:
        """The SQLAlchemy type a bound value needs on PostgreSQL (``None``: let the driver infer it)."""
        if info.type is None:
            return None
        kind = info.type.kind
        mapping: dict[str, sa.types.TypeEngine[Any]] = {
            "integer": sa.Integer(),
            "serial": sa.Integer(),
            "smallint": sa.SmallInteger(),
            "bigint": sa.BigInteger(),
            "bigserial": sa.BigInteger(),
            "boolean": sa.Boolean(),
            "real": sa.Float(),
            "double": sa.Float(),
            "numeric": sa.Numeric(),
            "date": sa.Date(),
            "time": sa.Time(),
            "timestamp": sa.DateTime(),
            "timestamptz": sa.DateTime(timezone=True),
            "uuid": sa.Uuid(as_uuid=False),
            "bytea": sa.LargeBinary(),
            "json": postgresql.JSONB(),
        }
        return mapping.get(kind, sa.Text())

    async def list_tables(self, conn: AsyncConnection, schema: str) -> list[str]:
        rows = await conn.execute(
            sa.text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = :s AND table_type = 'BASE TABLE'"
            ),
            {"s": schema},
        )
        names = [str(r[0]) for r in rows]
        if schema == "public":
            names = [n for n in names if n not in metadata.tables]
        return sorted(names)

    async def columns(self, conn: AsyncConnection, schema: str, table: str) -> list[ColumnInfo]:
        rows = await conn.execute(
            sa.text(
                "SELECT c.column_name, c.data_type, c.character_maximum_length, c.numeric_precision, "
                "c.numeric_scale, c.is_nullable, c.column_default, "
                "(SELECT k.ordinal_position FROM information_schema.table_constraints t "
                " JOIN information_schema.key_column_usage k ON k.constraint_name = t.constraint_name "
                " AND k.table_schema = t.table_schema AND k.table_name = t.table_name "
                " WHERE t.constraint_type = 'PRIMARY KEY' AND t.table_schema = c.table_schema "
                " AND t.table_name = c.table_name AND k.column_name = c.column_name) AS pk "
                "FROM information_schema.columns c WHERE c.table_schema = :s AND c.table_name = :t "
                "ORDER BY c.ordinal_position"
            ),
            {"s": schema, "t": table},
        )
        out = []
        for name, data_type, length, precision, scale, nullable, default, pk in rows:
            text = str(data_type)
            if text == "character varying" and length:
                text = f"varchar({length})"
            elif text == "character" and length:
                text = f"char({length})"
            elif text == "numeric" and precision:
                text = f"numeric({precision},{scale or 0})"
            elif text == "timestamp with time zone":
                text = "timestamptz"
            ctype = parse_type(text)
            out.append(ColumnInfo(str(name), text, ctype, nullable == "YES", default, int(pk or 0)))
        return out

    async def index_table(self, conn: AsyncConnection, schema: str, index: str) -> str | None:
        row = (
            await conn.execute(
                sa.text("SELECT tablename FROM pg_indexes WHERE schemaname = :s AND indexname = :i"),
                {"s": schema, "i": index},
            )
        ).first()
        return None if row is None else str(row[0])

    async def relation_exists(self, conn: AsyncConnection, schema: str, name: str) -> bool:
        row = (
            await conn.execute(
                sa.text(
                    "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = :s AND c.relname = :n"
                ),
                {"s": schema, "n": name},
            )
        ).first()
        return row is not None

    def default_sql(self, column: ColumnDef) -> str | None:
        default = column.default
        if default is None:
            return None
        if default == EXPR_NOW:
            return "CURRENT_TIMESTAMP"
        if default == EXPR_UUID:
            return "gen_random_uuid()"
        parsed = parse_value(column.type, default, column.name)
        return render_literal(column.type, parsed)

    def column_sql(self, column: ColumnDef, *, single_pk: bool) -> str:
        type_sql = "jsonb" if column.type.kind == "json" else column.type.name
        sql = f"{self.quote(column.name)} {type_sql}"
        if column.primary_key and single_pk:
            sql += " PRIMARY KEY"
        if not column.nullable and not column.primary_key:
            sql += " NOT NULL"
        if column.unique and not column.primary_key:
            sql += " UNIQUE"
        default = self.default_sql(column)
        if default is not None:
            sql += f" DEFAULT {default}"
        return sql

    async def create_schema(self, conn: AsyncConnection, schema: str) -> None:
        await conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {self.quote(schema)}")

    async def drop_schema(self, conn: AsyncConnection, schema: str) -> None:
        if schema == "public":
            for table in await self.list_tables(conn, schema):
                await self.drop_table(conn, schema, table)
            return
        await conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {self.quote(schema)} CASCADE")

    async def truncate_table(self, conn: AsyncConnection, schema: str, table: str) -> None:
        await conn.exec_driver_sql(f"TRUNCATE TABLE {self.qualified(schema, table)}")

    async def add_column(
        self, conn: AsyncConnection, schema: str, table: str, column: ColumnDef, after: TableDef | None
    ) -> None:
        await conn.exec_driver_sql(
            f"ALTER TABLE {self.qualified(schema, table)} ADD COLUMN {self.column_sql(column, single_pk=True)}"
        )

    async def drop_column(
        self, conn: AsyncConnection, schema: str, table: str, column: str, after: TableDef | None
    ) -> None:
        await conn.exec_driver_sql(f"ALTER TABLE {self.qualified(schema, table)} DROP COLUMN {self.quote(column)}")

    async def alter_column(
        self,
        conn: AsyncConnection,
        schema: str,
        table: str,
        before: ColumnDef,
        after_column: ColumnDef,
        after: TableDef,
    ) -> None:
        for statement in self.alter_statements(schema, table, before, after_column):
            await conn.exec_driver_sql(statement)

    def alter_statements(self, schema: str, table: str, before: ColumnDef, after: ColumnDef) -> list[str]:
        base = f"ALTER TABLE {self.qualified(schema, table)} ALTER COLUMN {self.quote(after.name)}"
        out = []
        if before.type != after.type:
            type_sql = "jsonb" if after.type.kind == "json" else after.type.name
            out.append(f"{base} TYPE {type_sql} USING {self.quote(after.name)}::{type_sql}")
        if before.nullable != after.nullable:
            out.append(f"{base} {'DROP' if after.nullable else 'SET'} NOT NULL")
        if before.default != after.default:
            default = self.default_sql(after)
            out.append(f"{base} DROP DEFAULT" if default is None else f"{base} SET DEFAULT {default}")
        return out

    async def create_index(self, conn: AsyncConnection, schema: str, table: str, index: IndexDef) -> None:
        unique = "UNIQUE " if index.unique else ""
        cols = ", ".join(self.quote(c) for c in index.columns)
        await conn.exec_driver_sql(
            f"CREATE {unique}INDEX {self.quote(index.name)} ON {self.qualified(schema, table)} ({cols})"
        )

    async def drop_index(self, conn: AsyncConnection, schema: str, index: str) -> None:
        await conn.exec_driver_sql(f"DROP INDEX {self.qualified(schema, index)}")

    async def add_constraint(
        self, conn: AsyncConnection, schema: str, table: str, constraint: ConstraintDef, after: TableDef
    ) -> None:
        await conn.exec_driver_sql(
            f"ALTER TABLE {self.qualified(schema, table)} ADD {self.constraint_sql(schema, constraint)}"
        )

    async def drop_constraint(self, conn: AsyncConnection, schema: str, table: str, name: str, after: TableDef) -> None:
        await conn.exec_driver_sql(f"ALTER TABLE {self.qualified(schema, table)} DROP CONSTRAINT {self.quote(name)}")

    async def execute_raw(self, conn: AsyncConnection, schema: str, sql: str) -> None:
        """Run one checked DDL statement (:func:`check_postgres_ddl`) with ``schema`` as the search path."""
        check_postgres_ddl(sql)
        await conn.exec_driver_sql(f"SET LOCAL search_path TO {self.quote(schema)}")
        await conn.exec_driver_sql(sql)


# --- raw DDL on SQLite -----------------------------------------------------------------------------------

_SQL_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<comment>--[^\n]*|/\*.*?\*/)
      | (?P<string>'(?:[^']|'')*')
      | (?P<qident>"(?:[^"]|"")*")
      | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
      | (?P<number>\d+(?:\.\d+)?)
      | (?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)


def sql_tokens(sql: str) -> Iterator[tuple[str, str]]:
    """Split SQL text into (kind, text) tokens: spaces, comments, strings, identifiers, words, others."""
    position = 0
    while position < len(sql):
        match = _SQL_TOKEN.match(sql, position)
        if match is None:  # pragma: no cover - the last alternative matches any character
            raise invalid("sql", "cannot be tokenised")
        kind = match.lastgroup or "other"
        yield kind, match.group(kind)
        position = match.end()


def single_statement(sql: str, field_name: str = "sql") -> list[tuple[str, str]]:
    """Tokens of exactly one statement (a trailing ``;`` allowed); more than one is 400 (spec 7.3)."""
    tokens = [t for t in sql_tokens(sql) if t[0] not in ("space", "comment")]
    while tokens and tokens[-1] == ("other", ";"):
        tokens.pop()
    if not tokens:
        raise invalid(field_name, "must hold one SQL statement")
    if ("other", ";") in tokens:
        raise invalid(field_name, "must hold exactly one statement")
    return tokens


def qualify_sqlite_ddl(sql: str, schema: str) -> str:
    """Rewrite one DDL statement so that its object names land in ``schema`` of the user-data database.

    Supported: CREATE TABLE / INDEX / VIEW, ALTER TABLE, DROP TABLE / INDEX / VIEW. Names may be written
    ``name`` or ``schema.name``; other statements are 422.
    """
    tokens = single_statement(sql)
    words = [text.upper() if kind == "word" else text for kind, text in tokens]
    head = words[0]
    kinds = {"TABLE", "INDEX", "VIEW"}
    if head not in ("CREATE", "ALTER", "DROP") or not any(w in kinds for w in words[1:4]):
        raise unprocessable("Raw DDL on this server supports CREATE, ALTER and DROP of tables, indexes and views")
    if any(w in ("TEMP", "TEMPORARY", "TRIGGER", "ATTACH", "DETACH", "PRAGMA", "VIRTUAL") for w in words):
        raise unprocessable("Raw DDL may not create temporary, virtual or trigger objects")
    out: list[str] = []
    index = 0
    qualify_next: str | None = None  # "db": userdata."s.x"; "bare": "s.x" (SQLite wants no database there)
    while index < len(tokens):
        kind, text = tokens[index]
        upper = text.upper() if kind == "word" else text
        if qualify_next is not None and kind in ("word", "qident") and upper not in ("IF", "NOT", "EXISTS"):
            name = text[1:-1].replace('""', '"') if kind == "qident" else text
            target_schema = schema
            if index + 2 < len(tokens) and tokens[index + 1] == ("other", "."):
                target_schema = name
                nxt_kind, nxt = tokens[index + 2]
                name = nxt[1:-1].replace('""', '"') if nxt_kind == "qident" else nxt
                index += 2
            if not IDENTIFIER.match(name) or not IDENTIFIER.match(target_schema):
                raise invalid("sql", f"names must match {IDENTIFIER.pattern}")
            physical = '"' + f"{target_schema}.{name}" + '"'
            out.append(f"{USERDATA}.{physical}" if qualify_next == "db" else physical)
            qualify_next = None
            index += 1
            continue
        out.append(text)
        previous = words[index - 1] if index else ""
        if upper in ("TABLE", "VIEW", "INDEX") and previous in ("CREATE", "UNIQUE", "ALTER", "DROP"):
            qualify_next = "db"
        elif (upper in ("ON", "REFERENCES") and head == "CREATE") or (upper == "TO" and previous == "RENAME"):
            qualify_next = "bare"
        elif upper in ("FROM", "JOIN") and "VIEW" in words[1:3]:
            qualify_next = "bare"  # a view may only name objects of its own database, unqualified
        index += 1
    return " ".join(out)


_PG_RAW_KINDS = {"TABLE", "INDEX", "VIEW", "SEQUENCE", "TYPE"}


def check_postgres_ddl(sql: str) -> None:
    """Raw DDL on PostgreSQL: one CREATE, ALTER or DROP of a table, index, view, sequence or type.

    The service tables share the database, so a statement may not name one of them, and schemas, roles
    and databases are out of reach (422).
    """
    tokens = single_statement(sql)
    words = [text.upper() for kind, text in tokens if kind == "word"]
    head = words[0] if words else ""
    kinds = [w for w in words[1:5] if w in _PG_RAW_KINDS]
    if head not in ("CREATE", "ALTER", "DROP") or not kinds:
        raise unprocessable("Raw DDL supports CREATE, ALTER and DROP of tables, indexes, views, sequences and types")
    names = {text.lower() if kind == "word" else text[1:-1].replace('""', '"') for kind, text in tokens}
    if names & set(metadata.tables):
        raise unprocessable("Raw DDL may not name the server's own tables")


# --- open SQL --------------------------------------------------------------------------------------------

_OPEN_ALLOWED = {"SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "WITH", "REPLACE", "VALUES"}


def prepare_open_sql(sql: str, param_count: int, *, sqlite: bool) -> str:
    """Check one open-area statement (spec 7.3) and return the text to run.

    One statement of an allowed kind; parameters are written ``$1``, ``$2``, ... (other placeholder styles
    are 400), and none may point past ``params``. SQLite gets them as its numbered ``?n``.
    """
    tokens = list(sql_tokens(sql))
    meaningful = single_statement(sql)
    first = meaningful[0][1].upper()
    if first not in _OPEN_ALLOWED:
        raise invalid("sql", f"statement {first[:20]} is not allowed in the open area")
    out: list[str] = []
    highest = 0
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else ("", "")
        previous = tokens[index - 1] if index else ("", "")
        if kind == "other" and text == "$" and following[0] == "number":
            if not following[1].isdigit() or int(following[1]) < 1:
                raise invalid("sql", "parameters are $1, $2, ...")
            highest = max(highest, int(following[1]))
            out.append(f"?{int(following[1])}" if sqlite else f"${int(following[1])}")
            index += 2
            continue
        if kind == "other" and (
            text == "?" or (text in (":", "@") and following[0] == "word" and previous != ("other", ":"))
        ):
            raise invalid("sql", "use $1, $2, ... for parameters")
        out.append(text)
        index += 1
    if highest > param_count:
        raise invalid("params", f"the statement uses ${highest} but only {param_count} parameters were given")
    return "".join(out)


def make_userdata(database: Database, data_dir: Path | None) -> UserData:
    """The user-data layer for the service database's dialect."""
    if database.is_sqlite:
        return SqliteUserData(database, data_dir)
    return PostgresUserData(database)


def userdata_for(state: LocalState) -> UserData:
    """The instance's user-data layer (created on first use and kept in ``state.extras``)."""
    found = state.extras.get("userdata")
    if isinstance(found, UserData):
        return found
    created = make_userdata(state.db, state.settings.data_dir)
    state.extras["userdata"] = created
    return created


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    """Turn the database's refusals into protocol errors (spec 8.2): unique -> 409, other constraints -> 422.

    A statement stopped by the time limit is 504 (:mod:`dominus_local.stores.limits`). Messages never carry
    the SQL text or bound values.
    """
    try:
        yield
    except sa.exc.IntegrityError as error:
        text = str(error.orig).lower()
        if "unique" in text or "duplicate key" in text or getattr(error.orig, "sqlstate", "") == "23505":
            raise ApiError("conflict", "A row with the same unique value already exists") from None
        if "not null" in text or "notnull" in text:
            raise unprocessable("A required column is missing a value (not-null constraint)") from None
        if "foreign key" in text:
            raise unprocessable("A value breaks a foreign key constraint") from None
        raise unprocessable("A value breaks a check constraint") from None
    except sa.exc.DBAPIError as error:
        if is_statement_timeout(error):
            raise StatementTimeout from None
        text = str(error.orig).lower()
        if "no such column" in text or ("does not exist" in text and "column" in text):
            raise unprocessable("A column named in the request does not exist") from None
        if "already exists" in text:
            raise ApiError("conflict", "An object with that name already exists") from None
        raise unprocessable("The database refused the statement") from None
