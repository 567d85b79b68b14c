"""Whole transactions in one thread hop on a SQLite file: a group-committing writer and a few readers.

Through SQLAlchemy's async engine every statement of a transaction is several hops to aiosqlite's thread (a
cursor, the execute, the fetch, the close), and every commit one fsync. The hot calls (Whisperer, Scribe's
row calls, their idempotency records) instead hand a plain function of a ``sqlite3.Connection`` to
:class:`SqliteDirect`, which runs it on a connection's own thread in ONE hop:

- :meth:`SqliteDirect.write`: the function joins the writer's queue. The writer takes every function waiting,
  runs each one inside a ``SAVEPOINT`` of one ``BEGIN IMMEDIATE`` transaction (a function that raises is rolled
  back to its savepoint and gets its exception; the others are untouched), commits once, and only then answers
  each caller: several requests' writes share one fsync (group commit) and none is answered before its commit
  is durable (``synchronous=FULL``). The writer holds the database's writers' lock
  (:attr:`~dominus_local.stores.database.Database.begin` takes the same one) while it runs a batch, so the
  process still has one writer at a time.
- :meth:`SqliteDirect.read`: the function runs on one of :data:`READERS` read connections, outside the
  writers' lock (WAL readers never block the writer nor each other), each statement seeing the latest commit.
  The readers are threads that take the next function from one shared queue as soon as they finish one, so
  they never sit idle while the event loop hands a connection from one caller to the next.

A function runs on another thread: it must only use the connection it is given and its own arguments, and
must not write identity tables (the identity memo hears writes through SQLAlchemy's events only). A caller
cancelled while its write is queued or running does not stop it: the write commits with its batch (its
idempotency record with it, so a retry is answered from the record).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import aiosqlite

logger = logging.getLogger("dominus_local.database")

__all__ = ["BATCH_LIMIT", "READERS", "SqliteDirect"]

READERS = 2
"""Read connections (each a thread of aiosqlite's). Each runs its statement with the GIL released but takes
it back to hand the result over, so every extra thread contends with the event loop: at 64 concurrent reads
four readers cost each request more server CPU than at one (the extra wake-ups and GIL hand-offs), two do
not. On a two-core machine two also keep both cores busy."""
BATCH_LIMIT = 256
"""The most writes one commit carries."""

_T = TypeVar("_T")
SqliteWork = Callable[[sqlite3.Connection], _T]
"""A function run on a connection's thread, with that connection."""


@dataclass
class _Job(Generic[_T]):
    work: SqliteWork[_T]
    future: asyncio.Future[_T]
    ok: bool = False
    result: Any = None
    error: BaseException | None = None


@dataclass
class _Opened:
    connection: aiosqlite.Connection
    attached: set[str] = field(default_factory=set)


class _ReadJob:
    """One function for the readers. ``interrupt`` stops it while it runs (and only then: the connection it
    ran on may already be running another job), or keeps it from starting."""

    __slots__ = ("attach", "finished", "future", "lock", "raw", "skip", "work")

    def __init__(self, work: SqliteWork[Any], attach: dict[str, str], future: asyncio.Future[Any]) -> None:
        self.work = work
        self.attach = attach
        self.future = future
        self.lock = threading.Lock()
        self.raw: sqlite3.Connection | None = None
        self.skip = False
        self.finished = False

    def interrupt(self) -> None:
        with self.lock:
            # A reader sets and clears ``raw`` under this lock, so the connection is still this job's here (an
            # interrupt when none of its statements is running is a no-op: SQLite's own rule).
            if self.raw is not None:
                self.raw.interrupt()
            elif not self.finished:
                self.skip = True


class SqliteDirect:
    """The writer and readers of one SQLite file (see the module docstring). ``lock`` is the database's
    writers' lock."""

    def __init__(self, path: str, lock: asyncio.Lock) -> None:
        self.path = path
        self._lock = lock
        self._attach: dict[str, str] = {}
        self._writer: _Opened | None = None
        self._jobs: queue.SimpleQueue[_ReadJob | None] = queue.SimpleQueue()
        self._readers: list[threading.Thread] = []
        self._opened: list[_Opened] = []
        self._opening = asyncio.Lock()
        self._pending: list[_Job[Any]] = []
        self._drain: asyncio.Task[None] | None = None
        self.commits = 0
        """Batches committed so far (each one fsync, whatever the number of writes it carried)."""

    def attach(self, name: str, path: str) -> None:
        """Attach database ``path`` as ``name`` on every connection (before its next function runs)."""
        self._attach[name] = path

    async def _open(self) -> _Opened:
        connection = await aiosqlite.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        await _call(connection, _pragmas, connection._conn)
        opened = _Opened(connection)
        self._opened.append(opened)
        return opened

    async def _ensure(self) -> None:
        if self._writer is not None:
            return
        async with self._opening:
            if self._writer is not None:
                return
            for _ in range(READERS):
                raw = await asyncio.to_thread(_open_reader, self.path)
                reader = threading.Thread(
                    target=_read_loop, args=(raw, self._jobs), name="dominus-sqlite-reader", daemon=True
                )
                reader.start()
                self._readers.append(reader)
            self._writer = await self._open()

    # --- reads ------------------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[_Reader]:
        """A handle for the block's reads: ``await r.run(work)``; ``r.interrupt()`` stops the one running."""
        await self._ensure()
        yield _Reader(self)

    async def read(self, work: SqliteWork[_T]) -> _T:
        """``work(connection)`` on a read connection, in one hop."""
        await self._ensure()
        return await _Reader(self).run(work)

    def _submit(self, work: SqliteWork[_T]) -> _ReadJob:
        job = _ReadJob(work, dict(self._attach), asyncio.get_running_loop().create_future())
        self._jobs.put(job)
        return job

    # --- writes -----------------------------------------------------------------------------------------------

    async def write(self, work: SqliteWork[_T]) -> _T:
        """``work(connection)`` inside the writer's next transaction; answered once that transaction has
        committed (its exception, if it raised, after its savepoint was rolled back)."""
        await self._ensure()
        job: _Job[_T] = _Job(work, asyncio.get_running_loop().create_future())
        self._pending.append(job)
        if self._drain is None or self._drain.done():
            self._drain = asyncio.get_running_loop().create_task(self._run_batches())
        return await job.future

    async def _run_batches(self) -> None:
        writer = self._writer
        assert writer is not None
        while self._pending:
            batch, self._pending = self._pending[:BATCH_LIMIT], self._pending[BATCH_LIMIT:]
            try:
                async with self._lock:
                    await _call(writer.connection, _run_batch, writer.connection._conn, batch, self._attach, writer)
            except BaseException as error:  # the commit failed: nothing of the batch is kept
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(_copy(error))
                if not isinstance(error, Exception):
                    raise
                continue
            self.commits += 1
            for job in batch:
                if job.future.done():
                    continue
                if job.ok:
                    job.future.set_result(job.result)
                else:
                    assert job.error is not None
                    job.future.set_exception(job.error)

    async def close(self) -> None:
        """Finish the queued writes and reads, then close every connection."""
        if self._drain is not None:
            with contextlib.suppress(BaseException):
                await self._drain
        for _ in self._readers:
            self._jobs.put(None)
        for reader in self._readers:
            await asyncio.to_thread(reader.join, 10)
        self._readers.clear()
        for opened in self._opened:
            with contextlib.suppress(Exception):
                await opened.connection.close()
        self._opened.clear()
        self._writer = None


class _Reader:
    def __init__(self, direct: SqliteDirect) -> None:
        self._direct = direct
        self._job: _ReadJob | None = None

    async def run(self, work: SqliteWork[_T]) -> _T:
        job = self._job = self._direct._submit(work)
        try:
            result: _T = await job.future
            return result
        except asyncio.CancelledError:
            # The caller has gone (a timeout, a shutdown): its statement stops too instead of running on.
            job.interrupt()
            raise
        finally:
            self._job = None

    def interrupt(self) -> None:
        """Stop the function this handle is running, if any."""
        if self._job is not None:
            self._job.interrupt()


def _open_reader(path: str) -> sqlite3.Connection:
    raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    _pragmas(raw)
    return raw


def _read_loop(raw: sqlite3.Connection, jobs: queue.SimpleQueue[_ReadJob | None]) -> None:
    """A reader thread: run the queue's functions on ``raw`` one after another until ``None`` comes."""
    attached: set[str] = set()
    try:
        while (job := jobs.get()) is not None:
            ok, result = False, None
            error: BaseException | None = None
            with job.lock:
                skipped = job.skip
                job.raw = None if skipped else raw
            if skipped:
                # Interrupted while it waited: answered as an interrupted statement is, without running.
                error = sqlite3.OperationalError("interrupted")
            else:
                try:
                    _attach_missing(raw, job.attach, attached)
                    result = job.work(raw)
                    ok = True
                except BaseException as exc:  # handed to the caller, as aiosqlite's own thread does
                    error = exc
                finally:
                    if raw.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            raw.rollback()
            with job.lock:
                job.raw = None
                job.finished = True
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
                job.future.get_loop().call_soon_threadsafe(_settle, job.future, ok, result, error)
    finally:
        raw.close()


def _settle(future: asyncio.Future[Any], ok: bool, result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if ok:
        future.set_result(result)
    else:
        assert error is not None
        future.set_exception(error)


async def _call(connection: aiosqlite.Connection, function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` on ``connection``'s thread: one hop (aiosqlite's own queue)."""
    return await connection._execute(function, *args)  # type: ignore[no-untyped-call]


def _pragmas(raw: sqlite3.Connection) -> None:
    raw.execute("PRAGMA foreign_keys=ON")
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA busy_timeout=30000")
    # Every commit reaches the disk before the write is answered.
    raw.execute("PRAGMA synchronous=FULL")


def _attach_missing(raw: sqlite3.Connection, attach: dict[str, str], attached: set[str]) -> None:
    for name, path in attach.items():
        if name not in attached:
            raw.execute(f"ATTACH DATABASE ? AS {name}", (path,))
            if path != ":memory:":
                raw.execute(f"PRAGMA {name}.journal_mode=WAL")
                raw.execute(f"PRAGMA {name}.synchronous=FULL")
            attached.add(name)


def _run_batch(raw: sqlite3.Connection, batch: list[_Job[Any]], attach: dict[str, str], opened: _Opened) -> None:
    """One transaction for the whole batch, a savepoint per job, one commit (on the writer's thread)."""
    _attach_missing(raw, attach, opened.attached)
    todo = list(batch)
    while todo:
        done: list[_Job[Any]] = []
        raw.execute("BEGIN IMMEDIATE")
        try:
            while todo:
                job = todo.pop(0)
                raw.execute("SAVEPOINT job")
                try:
                    job.result = job.work(raw)
                except BaseException as error:
                    job.error = error
                    if not raw.in_transaction:
                        # SQLite rolled the whole transaction back (an I/O error, an interrupt): the jobs
                        # before this one lost their writes too; run them again in a new transaction.
                        todo[:0] = done
                        for earlier in done:
                            earlier.ok, earlier.result, earlier.error = False, None, None
                        done = []
                        break
                    raw.execute("ROLLBACK TO job")
                    raw.execute("RELEASE job")
                    continue
                raw.execute("RELEASE job")
                job.ok = True
                done.append(job)
            if raw.in_transaction:
                raw.execute("COMMIT")
        except BaseException:
            for job in done:
                job.ok, job.result = False, None
            if raw.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    raw.execute("ROLLBACK")
            raise


def _copy(error: BaseException) -> BaseException:
    """The batch's failure for one caller (an exception object raised in several tasks gets mixed tracebacks)."""
    if isinstance(error, sqlite3.Error):
        return sqlite3.OperationalError(*error.args)
    return error
