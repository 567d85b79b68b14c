"""The relational store: SQLAlchemy async Core on SQLite (default) or PostgreSQL.

Every service declares its tables on the shared :data:`metadata`; the app creates them at start. All access
goes through :meth:`Database.begin`, one transaction per call. SQLite allows one writer at a time, so on
SQLite the transactions of this process are serialised by a lock instead of failing with "database is
locked"; on PostgreSQL the pool runs them concurrently. On a SQLite file, the hot calls (Whisperer, Scribe's row
calls) bypass the engine: :attr:`Database.direct` runs each of their transactions in one thread hop and commits
concurrent writes together (:mod:`~dominus_local.stores.sqlite_direct`), under the same writers' lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from sqlalchemy import Connection, MetaData, event, exc
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from dominus_local.stores.sqlite_direct import SqliteDirect

logger = logging.getLogger("dominus_local.database")

metadata = MetaData()
"""Tables of every service; each service module adds its own, prefixed with the service name."""

_CREATE_LOCK = 0x646F6D696E7573
"""PostgreSQL advisory-lock key held while the tables are created ("dominus" in ASCII)."""
_STARTUP_LOCK = _CREATE_LOCK + 1
"""PostgreSQL advisory-lock key held while a server prepares the database at start."""


class TransactionObserver(Protocol):
    """Told how each transaction of :meth:`Database.begin` ended (the identity memo uses it)."""

    async def committed(self, conn: Connection) -> None:
        """The transaction of ``conn`` has committed."""

    def aborted(self, conn: Connection) -> None:
        """The transaction of ``conn`` was rolled back or failed to commit."""


class Database:
    """One async engine and its transaction helper.

    ``observer`` (optional) hears the end of every transaction :meth:`begin` runs, after the commit itself has
    finished: SQLAlchemy's ``commit`` event comes just before it.
    """

    def __init__(self, url: str, *, pool_size: int = 10, statement_timeout: float | None = None) -> None:
        """``pool_size`` (PostgreSQL): connections kept open in steady use; up to twice as many under load."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._shared_connection = False
        """One connection for every caller (in-memory SQLite): reads take the lock too."""
        self.statement_timeout = statement_timeout if statement_timeout and not self.is_sqlite else None
        """PostgreSQL: the ``statement_timeout`` (seconds) every connection of this engine starts with."""
        options: dict[str, Any] = {}
        if self.is_sqlite:
            if ":memory:" in url or url.rstrip("/").endswith("sqlite+aiosqlite:"):
                options["poolclass"] = StaticPool
                self._shared_connection = True
            else:
                # A fixed set of connections: each one is a thread of aiosqlite's and a file handle, and an
                # overflow connection opened under load and closed on return costs more than the request.
                options["pool_size"] = pool_size
                options["max_overflow"] = 0
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            # Up to twice ``pool_size`` connections, each opened when first needed and then kept: with a pool of
            # ``pool_size`` plus as many overflow connections, every overflow connection was closed when it came
            # back, so a load just above ``pool_size`` opened a connection (a PostgreSQL backend) per request.
            options["pool_size"] = 2 * pool_size
            options["max_overflow"] = 0
            if self.statement_timeout is not None:
                milliseconds = str(max(1, round(self.statement_timeout * 1000)))
                options["connect_args"] = {"server_settings": {"statement_timeout": milliseconds}}
        # Bound values (password hashes, PSK digests, secret values) never reach exception texts or logs.
        self.engine: AsyncEngine = create_async_engine(url, hide_parameters=True, **options)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            # SQLAlchemy's pool_pre_ping costs a round trip on every checkout, that is on every request; a
            # connection in steady use is known to be alive, so only one that sat idle is pinged first.
            event.listen(self.engine.sync_engine.pool, "checkin", _idle_from)
            event.listen(self.engine.sync_engine.pool, "checkout", self._ping_if_idle)
        self._lock = asyncio.Lock() if self.is_sqlite else None
        self.direct: SqliteDirect | None = None
        """On a SQLite file: whole transactions in one thread hop, writes committed in groups (see
        :mod:`~dominus_local.stores.sqlite_direct`); ``None`` elsewhere."""
        if self._lock is not None and not self._shared_connection and self.engine.url.database:
            self.direct = SqliteDirect(self.engine.url.database, self._lock)
        self.observer: TransactionObserver | None = None
        self._cancels: set[asyncio.Task[None]] = set()
        event.listen(self.engine.sync_engine, "handle_error", self._stop_cancelled_statement)

    def _ping_if_idle(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_from = record.info.get("idle_from")
        if idle_from is None or time.monotonic() - idle_from <= PING_AFTER_IDLE_SECONDS:
            return
        try:
            self.engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool drops this connection and checks out (or opens) another one.
            raise exc.DisconnectionError("the pooled connection did not answer a ping") from error

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def create_all(self) -> None:
        """Create the missing tables. On PostgreSQL an advisory lock serialises this across processes, so
        several servers starting at once on one database do not race to create the same table."""
        async with self.begin() as conn:
            if self.dialect == "postgresql":
                # Waiting for another server's start is not a runaway statement: no statement_timeout here.
                await conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
                await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_CREATE_LOCK})")
            await conn.run_sync(metadata.create_all)

    @contextlib.asynccontextmanager
    async def startup_lock(self) -> AsyncIterator[None]:
        """Held while a server prepares the database (tables, bootstrap rows, seeds). On PostgreSQL it is a
        session advisory lock on a connection of its own, so servers starting at once on one database
        prepare it one after the other; elsewhere there is nothing to share and it is a no-op."""
        if self.dialect != "postgresql":
            yield
            return
        async with self.engine.connect() as conn:
            # Waiting for another server's start is not a runaway statement: no statement_timeout here.
            await conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
            await conn.exec_driver_sql(f"SELECT pg_advisory_lock({_STARTUP_LOCK})")
            await conn.commit()
            try:
                yield
            finally:
                await conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_STARTUP_LOCK})")
                await conn.commit()

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one transaction: committed on success, rolled back on any exception."""
        if self._lock is None:
            async with self._observed() as conn:
                yield conn
            return
        async with self._lock, self._observed() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _observed(self) -> AsyncIterator[AsyncConnection]:
        observer = self.observer
        if observer is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        sync: Connection | None = None
        try:
            async with self.engine.begin() as conn:
                sync = conn.sync_connection
                yield conn
        except BaseException:
            if sync is not None:
                observer.aborted(sync)
            raise
        if sync is not None:
            await observer.committed(sync)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads only: on a SQLite file it does not wait for the writers' lock (WAL readers
        never block a writer nor each other); on PostgreSQL it runs outside a transaction. Never write through
        it: a SQLite transaction that starts reading and then writes may find the database locked."""
        if self._lock is None:
            # PostgreSQL: no transaction at all (no BEGIN and COMMIT round trips); each statement sees the
            # latest committed data, so a read that needs one snapshot across statements uses begin().
            async with self.engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                yield conn
            return
        if self._shared_connection:
            async with self.begin() as conn:
                yield conn
            return
        async with self.engine.begin() as conn:
            yield conn

    def _stop_cancelled_statement(self, context: ExceptionContext) -> None:
        """A task cancelled while its statement runs (an in-process caller's timeout, a shutdown) stops the
        statement too, instead of leaving it running in the database.

        SQLAlchemy treats the cancellation as a lost connection and closes it. On SQLite that close waits behind
        the statement still running in aiosqlite's thread (for ever, for a runaway one), and an in-memory
        database would lose its data: the statement is interrupted (``sqlite3_interrupt`` may be called from
        any thread) and the connection kept, its transaction then rolled back as after any error. On PostgreSQL
        the closed connection's backend would compute on, unaware, so a cancel request for it is sent over
        another pooled connection.
        """
        if not isinstance(context.original_exception, asyncio.CancelledError) or context.connection is None:
            return
        with contextlib.suppress(Exception):
            driver = context.connection.connection.driver_connection
            if self.is_sqlite:
                driver._conn.interrupt()  # type: ignore[union-attr] # aiosqlite's sqlite3 connection
                context.is_disconnect = False
            else:
                pid = int(driver.get_server_pid())  # type: ignore[union-attr] # asyncpg
                task = asyncio.get_running_loop().create_task(self._cancel_backend(pid))
                self._cancels.add(task)
                task.add_done_callback(self._cancels.discard)

    async def _cancel_backend(self, pid: int) -> None:
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql(f"SELECT pg_cancel_backend({pid})")
        except Exception:  # the backend may be gone already; nothing else depends on this
            logger.debug("Could not cancel the statement of PostgreSQL backend %d", pid, exc_info=True)

    async def ping(self) -> None:
        async with self.begin() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        if self.direct is not None:
            await self.direct.close()
        await self.engine.dispose()


PING_AFTER_IDLE_SECONDS = 1.0
"""A pooled PostgreSQL connection idle for longer than this is pinged before use (a dead one is replaced)."""


def _idle_from(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_from"] = time.monotonic()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
