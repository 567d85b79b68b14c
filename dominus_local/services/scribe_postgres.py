"""Scribe's PostgreSQL fast path: the data statements of ``query`` and ``insert`` as SQL text on asyncpg itself.

On PostgreSQL, SQLAlchemy Core costs more Python per request than the database spends on the statement: building
the construct, working out its cache key, processing parameters and result rows. The two calls that carry most
traffic skip it. Their SQL text is built from the resolved table (every identifier quoted by the user-data layer,
every value a ``$n`` parameter), memoised on the resolved table per statement shape (the filtered columns, how
each is compared, the sort, whether there is an offset), and run on the pooled connection's asyncpg connection,
which prepares each text once per connection (asyncpg's statement cache is keyed by the text). The connection, its
transaction, the statement time limit and the disconnect cancel stay those of
:func:`~dominus_local.stores.limits.limited_transaction`.

Where this path would not bind exactly what SQLAlchemy binds, it is not taken: a table with a column whose type
needs SQLAlchemy's own conversion (``json``, ``bytea``, types Scribe does not know) goes through SQLAlchemy, as do
secure tables, a query past the last page and the SQLite default.

Staying correct after DDL: a table changed by this process is resolved again at once (``UserData.catalog_changed``),
by another process within ``scribe.RESOLVED_SECONDS`` or on the first statement its change makes fail; a new
column list is new text, so a new prepared statement. A statement whose prepared plan another process's DDL made
stale is prepared again by asyncpg outside a transaction; inside one (the insert) it fails once, and Scribe runs
the insert again through SQLAlchemy. Errors are raised as the SQLAlchemy exceptions the SQLAlchemy path raises, so
:func:`~dominus_local.stores.userdata.database_errors`, the statement time limit and Scribe's retries apply
unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dominus_local import identity
from dominus_local.stores.userdata import ColumnInfo, SqlType, UserData

__all__ = ["FAST_KINDS", "Driver", "TablePlan", "plan_for"]

FAST_KINDS = {
    "integer": "INTEGER",
    "serial": "INTEGER",
    "smallint": "SMALLINT",
    "bigint": "BIGINT",
    "bigserial": "BIGINT",
    "text": "VARCHAR",
    "varchar": "VARCHAR",
    "char": "VARCHAR",
    "boolean": "BOOLEAN",
    "real": "FLOAT",
    "double": "FLOAT",
    "numeric": "NUMERIC",
    "date": "DATE",
    "time": "TIME WITHOUT TIME ZONE",
    "timestamp": "TIMESTAMP WITHOUT TIME ZONE",
    "timestamptz": "TIMESTAMP WITH TIME ZONE",
    "uuid": "UUID",
}
"""Column types whose parsed values (``userdata.parse_value``) asyncpg binds as SQLAlchemy does, each with the cast
that SQLAlchemy's asyncpg dialect puts on a parameter of the column's bind type (``PostgresUserData.bind_type``):
the same text compares the same way (a ``real`` column against a ``FLOAT`` value, a ``char`` one as text)."""

TOTAL = "dominus total"
SECURE = "dominus secure"
"""Labels of the window count and the secure-table flag (the same as the SQLAlchemy path's; a space: no column
can be named so)."""

Filter = tuple[str, str, int]
"""One condition's shape: column name, ``"="``, ``"in"`` (with its number of values) or ``"null"``."""


class TablePlan:
    """The SQL pieces of one resolved table, and its statements' text memoised per shape."""

    def __init__(self, ud: UserData, schema: str, table: str, columns: Sequence[ColumnInfo]) -> None:
        quote = ud.quote
        self.schema = schema
        self.table = table
        self.qualified = ud.qualified(schema, table)
        self.names = tuple(c.name for c in columns)
        self.converters = tuple(_converter(ud, c.type) for c in columns)
        self.casts = {c.name: FAST_KINDS[c.type.kind] for c in columns if c.type is not None}
        self.select_list = ", ".join(quote(c.name) for c in columns)
        keys = sorted((c for c in columns if c.primary_key), key=lambda c: c.primary_key)
        self.order = ", ".join(quote(c.name) for c in keys) if keys else f"{self.qualified}.ctid"
        self.quote = quote
        self._statements: dict[Any, str] = {}

    def select(self, filters: Sequence[Filter], sort: tuple[str, bool] | None, offset: bool) -> str:
        """``SELECT`` of a page with the window count and the secure flag. Parameters: the filter values in order,
        then the limit, the offset (when ``offset``), and the schema and table names for the flag."""
        key = ("select", tuple(filters), sort, offset)
        found = self._statements.get(key)
        if found is not None:
            return found
        quote = self.quote
        conditions: list[str] = []
        number = 0
        for name, op, count in filters:
            column = quote(name)
            if op == "null":
                conditions.append(f"{column} IS NULL")
            elif op == "in":
                if count == 0:
                    conditions.append("false")
                else:
                    cast = self.casts[name]
                    marks = ", ".join(f"${number + i + 1}::{cast}" for i in range(count))
                    conditions.append(f"{column} IN ({marks})")
                    number += count
            else:
                number += 1
                conditions.append(f"{column} = ${number}::{self.casts[name]}")
        order = self.order
        if sort is not None:
            order = f"{quote(sort[0])} {'DESC' if sort[1] else 'ASC'}, {order}"
        number += 1
        paging = f" LIMIT ${number}::INTEGER"
        if offset:
            number += 1
            paging += f" OFFSET ${number}::INTEGER"
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        text = (
            f"SELECT {self.select_list}, count(*) OVER () AS {quote(TOTAL)}, {self._secure(number)} "  # noqa: S608 - quoted identifiers only
            f"FROM {self.qualified}{where} ORDER BY {order}{paging}"
        )
        self._statements[key] = text
        return text

    def insert(self, columns: tuple[str, ...]) -> str:
        """``INSERT ... RETURNING`` every column and the secure flag. Parameters: the values of ``columns`` in order,
        then the schema and table names for the flag."""
        key = ("insert", columns)
        found = self._statements.get(key)
        if found is not None:
            return found
        quote = self.quote
        if columns:
            marks = ", ".join(f"${i + 1}::{self.casts[name]}" for i, name in enumerate(columns))
            values = f"({', '.join(quote(c) for c in columns)}) VALUES ({marks})"
        else:
            values = "DEFAULT VALUES"
        text = f"INSERT INTO {self.qualified} {values} RETURNING {self.select_list}, {self._secure(len(columns))}"
        self._statements[key] = text
        return text

    def _secure(self, after: int) -> str:
        registered = self.quote(identity.secure_tables.name)
        return (
            f"EXISTS (SELECT 1 FROM {registered} WHERE {registered}.schema_name = ${after + 1}::VARCHAR "  # noqa: S608 - quoted identifiers only
            f"AND {registered}.table_name = ${after + 2}::VARCHAR) AS {self.quote(SECURE)}"
        )

    def to_json(self, record: Sequence[Any]) -> dict[str, Any]:
        """A returned row (its table columns first, in order) in the JSON form of spec 8.2."""
        return {name: convert(value) for name, convert, value in zip(self.names, self.converters, record, strict=False)}


def plan_for(ud: UserData, schema: str, table: str, columns: Sequence[ColumnInfo]) -> TablePlan | None:
    """The table's plan on PostgreSQL when every column has a type of :data:`FAST_KINDS`, else ``None``."""
    if ud.dialect != "postgresql":
        return None
    if any(c.type is None or c.type.kind not in FAST_KINDS for c in columns):
        return None
    return TablePlan(ud, schema, table, columns)


def _converter(ud: UserData, ctype: SqlType | None) -> Callable[[Any], Any]:
    """``ud.from_db`` for one column type, with the common types' conversions inlined (the same results)."""
    if ctype is not None and ctype.is_integer:
        return lambda value: None if value is None else int(value)
    if ctype is not None and ctype.is_text:
        return lambda value: value if value is None or isinstance(value, str) else str(value)
    if ctype is not None and ctype.kind == "numeric":
        step = Decimal(1).scaleb(-ctype.scale) if ctype.scale is not None and ctype.precision is not None else None

        def decimal_text(value: Any) -> Any:
            if value is None:
                return None
            number = value if isinstance(value, Decimal) else Decimal(str(value))
            return format(number if step is None else number.quantize(step), "f")

        return decimal_text
    return lambda value: ud.from_db(ctype, value)


class Driver:
    """The asyncpg connection under a SQLAlchemy connection, taken once per request (each look-up of SQLAlchemy's
    raw connection is a greenlet switch)."""

    def __init__(self, conn: AsyncConnection, raw: Any) -> None:
        self.conn = conn
        self.raw = raw
        self.asyncpg: Any = raw.driver_connection

    @classmethod
    async def of(cls, conn: AsyncConnection) -> Driver:
        return cls(conn, await conn.get_raw_connection())

    async def fetch(self, statement: str, args: Sequence[Any]) -> list[Any]:
        """Run ``statement``; its rows (asyncpg records).

        A database error is raised as SQLAlchemy raises it (a :class:`sqlalchemy.exc.DBAPIError` whose ``orig``
        has the SQLSTATE). A cancelled task leaves the connection to be discarded: asyncpg has asked the server
        to cancel the statement, and the connection is not reused while that may still be in flight.
        """
        try:
            return list(await self.asyncpg.fetch(statement, *args))
        except Exception as error:
            raise self.translated(error) from error
        except asyncio.CancelledError:
            self.raw.invalidate()
            raise

    def transaction(self) -> _Transaction:
        """A transaction of its own on the asyncpg connection, for a SQLAlchemy transaction that has not started
        one in the database yet (the asyncpg adapter starts one with its first statement): ``async with``."""
        return _Transaction(self)

    def translated(self, error: Exception) -> Exception:
        """``error`` (from asyncpg) as the :class:`sqlalchemy.exc.DBAPIError` SQLAlchemy would raise for it."""
        return _translated(self.conn, self.raw.dbapi_connection, error)


class _Transaction:
    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self._transaction: Any = None

    async def __aenter__(self) -> None:
        self._transaction = self.driver.asyncpg.transaction()
        try:
            await self._transaction.start()
        except Exception as error:
            raise self.driver.translated(error) from error

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, _tb: Any) -> None:
        try:
            if kind is None:
                await self._transaction.commit()
            elif isinstance(error, Exception):
                await self._transaction.rollback()
            else:
                self.driver.raw.invalidate()  # cancelled: the server ends the transaction with the connection
        except Exception as failure:
            if kind is None:
                raise self.driver.translated(failure) from failure
            self.driver.raw.invalidate()  # the rollback failed: never reuse a connection in an unknown state


def _translated(conn: AsyncConnection, adapted: Any, error: Exception) -> Exception:
    """``error`` (from asyncpg) as the :class:`sqlalchemy.exc.DBAPIError` that SQLAlchemy would raise for it."""
    if isinstance(error, sa.exc.DBAPIError):
        return error
    dbapi = conn.dialect.loaded_dbapi
    try:
        adapted._handle_exception(error)  # raises the adapter's DB-API exception for the asyncpg one
    except dbapi.Error as dbapi_error:
        translated = sa.exc.DBAPIError.instance(
            None, None, dbapi_error, dbapi.Error, hide_parameters=True, dialect=conn.dialect
        )
        return translated if isinstance(translated, Exception) else error
    except Exception as other:
        return other
    return error  # pragma: no cover - _handle_exception always raises
