"""A time limit on the statements that callers write or shape: open SQL, Scribe's data calls, Smith's raw DDL.

A runaway statement (an endless ``WITH RECURSIVE``, a cross join of big tables) must not keep a core, a pooled
connection or, on SQLite, the process's one writer busy for ever, nor outlive the client that sent it.
``LocalSettings.statement_timeout`` (``DOMINUS_LOCAL_STATEMENT_TIMEOUT``, seconds, 0 for none) bounds it:

- **PostgreSQL**: ``statement_timeout``, a connection option of the open area's engine and of the service
  engine (no round trip per call; ``SET LOCAL`` only on an engine made without it). The server's own waits at
  start (the advisory locks of ``Database.startup_lock`` and ``create_all``) lift it with
  ``SET LOCAL statement_timeout = 0``. It bounds each statement.
- **SQLite**: a timer interrupts the connection (``sqlite3_interrupt``, which may be called from any thread)
  once the request's statements have run for the limit together, counted from when the transaction began.

A statement past the limit fails; the answer is 504 ``upstream_timeout`` with ``details.reason =
"statement_timeout"`` and ``details.limit`` (seconds). Spec 4.1 has no code of its own for this, and the database
is the backing service that did not answer in time. Nothing of the request is kept: its transaction is rolled
back.

When the client disconnects while a statement runs (endpoints declared with ``cancel_on_disconnect``), the
statement is stopped the same way: the SQLite connection is interrupted, and PostgreSQL is asked to cancel the
backend's statement (``pg_cancel_backend`` over a second pooled connection). The request then ends with
:class:`~dominus_local.errors.ClientDisconnected` and no answer. The asyncio task is deliberately not cancelled:
SQLAlchemy would invalidate the connection, and an in-memory SQLite database would lose its data with it. (When
a request's task is cancelled anyway, by an in-process caller's timeout, the database layer stops its statement
all the same: see ``Database._stop_cancelled_statement``.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dominus_local.errors import ApiError, ClientDisconnected
from dominus_local.routing import RequestContext
from dominus_local.stores.database import Database

__all__ = ["StatementTimeout", "is_statement_timeout", "limited_transaction"]

QUERY_CANCELED = "57014"
"""PostgreSQL's SQLSTATE for a statement stopped by ``statement_timeout`` or a cancel request."""
SQLITE_INTERRUPTED = "interrupted"
"""The message of the error a statement stopped by ``sqlite3_interrupt`` fails with."""


class StatementTimeout(ApiError):
    """504 ``upstream_timeout``: a statement ran past ``LocalSettings.statement_timeout``."""

    def __init__(self, limit: float | None = None) -> None:
        details: dict[str, Any] = {"reason": "statement_timeout"}
        message = "The statement ran past the server's time limit and was stopped; make it cheaper or add a LIMIT"
        if limit:
            details["limit"] = limit
            message = (
                f"The statement ran past the server's time limit of {limit:g} s and was stopped; "
                "make it cheaper or add a LIMIT"
            )
        super().__init__("upstream_timeout", message, details=details)


def is_statement_timeout(error: sa.exc.DBAPIError) -> bool:
    """True when the database stopped the statement: its time limit passed or its client went away."""
    orig = error.orig
    if getattr(orig, "sqlstate", None) == QUERY_CANCELED or getattr(orig, "pgcode", None) == QUERY_CANCELED:
        return True
    return isinstance(error, sa.exc.OperationalError) and str(orig).strip().lower() == SQLITE_INTERRUPTED


class _SqliteStop:
    """Interrupts one SQLite connection at the deadline, or at once when the client disconnects."""

    def __init__(self, raw: Any, seconds: float) -> None:
        self.raw = raw
        self.expired = False
        self.cancelled = False
        self.timer = asyncio.get_running_loop().call_later(seconds, self._expire) if seconds > 0 else None

    def _expire(self) -> None:
        self.expired = True
        self.raw.interrupt()

    async def cancel(self) -> None:
        self.cancelled = True
        self.raw.interrupt()

    async def close(self) -> None:
        # Runs before the transaction ends and on the event loop, as the timer does: once the timer is
        # cancelled here, no interrupt can reach a later user of the connection.
        if self.timer is not None:
            self.timer.cancel()


SqliteStop = _SqliteStop
"""For callers of Scribe's one-hop reads: ``SqliteStop(reader, seconds)`` (anything with ``interrupt()``: a SQLite
connection, or a :class:`~dominus_local.stores.sqlite_direct.SqliteDirect` reader that interrupts only its own
statement), ``await stop.cancel()`` on disconnect, ``await stop.close()`` before the reader is used again."""


class _PostgresStop:
    """Asks PostgreSQL to cancel one backend's statement when the client disconnects."""

    def __init__(self, database: Database, pid: int) -> None:
        self.database = database
        self.pid = pid
        self.expired = False
        self.cancelled = False
        self._closed = False
        self._lock = asyncio.Lock()

    async def cancel(self) -> None:
        self.cancelled = True
        async with self._lock:
            # Checked under the lock that close() takes: the backend is never cancelled once the request has
            # moved on, so a statement of another request on the same pooled connection is never hit.
            if self._closed:
                return
            async with self.database.engine.connect() as other:
                await other.exec_driver_sql(f"SELECT pg_cancel_backend({int(self.pid)})")

    async def close(self) -> None:
        async with self._lock:
            self._closed = True


@contextlib.asynccontextmanager
async def limited_transaction(
    ctx: RequestContext, database: Database, *, read: bool = False
) -> AsyncIterator[AsyncConnection]:
    """``database.begin()`` (``database.read()`` with ``read``) whose statements are bounded by the statement
    time limit and stopped when the client disconnects (see the module docstring). A stopped statement surfaces
    as :class:`StatementTimeout` (504) or, when the client has gone, :class:`ClientDisconnected`."""
    seconds = ctx.state.settings.statement_timeout
    if ctx.disconnected:
        raise ClientDisconnected
    stop: _SqliteStop | _PostgresStop
    if read and not database.is_sqlite and seconds > 0 and database.statement_timeout is None:
        read = False  # the limit is then a SET LOCAL, which needs a transaction
    async with database.read() if read else database.begin() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        if database.is_sqlite:
            stop = _SqliteStop(getattr(driver, "_conn"), seconds)  # noqa: B009 - aiosqlite's sqlite3 connection
        else:
            if seconds > 0 and database.statement_timeout is None:
                await conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, round(seconds * 1000))}")
            stop = _PostgresStop(database, int(getattr(driver, "get_server_pid")()))  # noqa: B009 - asyncpg
        remove = ctx.on_disconnect(stop.cancel)
        try:
            yield conn
        except (ApiError, sa.exc.DBAPIError) as error:
            timed_out = isinstance(error, StatementTimeout) or (
                isinstance(error, sa.exc.DBAPIError) and is_statement_timeout(error)
            )
            if stop.cancelled or ctx.disconnected:
                raise ClientDisconnected from None
            if timed_out or stop.expired:
                raise StatementTimeout(seconds) from None
            raise
        finally:
            remove()
            await stop.close()
