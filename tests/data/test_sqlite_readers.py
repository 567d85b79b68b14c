"""The read side of :class:`~dominus_local.stores.sqlite_direct.SqliteDirect`: reader threads that take the
next function from one shared queue, and interrupts that stop only the statement they were meant for."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dominus_local.stores.sqlite_direct import READERS, SqliteDirect

RUNAWAY = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"
"""A statement that never ends on its own."""


@pytest.fixture
async def direct(tmp_path: Path) -> AsyncIterator[SqliteDirect]:
    path = str(tmp_path / "readers.db")
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (n INTEGER)")
        db.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(100)])
    store = SqliteDirect(path, asyncio.Lock())
    try:
        yield store
    finally:
        await store.close()


def _count(raw: sqlite3.Connection) -> int:
    return int(raw.execute("SELECT count(*) FROM t").fetchone()[0])


def _runaway(raw: sqlite3.Connection) -> int:
    return int(raw.execute(RUNAWAY).fetchone()[0])


async def test_reads_run_on_the_readers_and_see_the_latest_commit(direct: SqliteDirect) -> None:
    assert await asyncio.gather(*(direct.read(_count) for _ in range(50))) == [100] * 50

    def add(raw: sqlite3.Connection) -> None:
        raw.execute("INSERT INTO t VALUES (100)")

    await direct.write(add)
    assert await direct.read(_count) == 101


async def test_an_interrupt_stops_its_own_statement_and_the_reader_goes_on(direct: SqliteDirect) -> None:
    async with direct.reader() as reader:
        running = asyncio.ensure_future(reader.run(_runaway))
        await asyncio.sleep(0.2)
        reader.interrupt()
        with pytest.raises(sqlite3.OperationalError, match="interrupted"):
            await asyncio.wait_for(running, 5)
    assert await direct.read(_count) == 100


async def test_a_cancelled_caller_stops_its_statement(direct: SqliteDirect) -> None:
    callers = [asyncio.ensure_future(direct.read(_runaway)) for _ in range(READERS)]
    await asyncio.sleep(0.2)
    for caller in callers:
        caller.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    # Every reader was busy with a runaway: a read answering now shows they were all stopped.
    started = time.monotonic()
    assert await asyncio.wait_for(direct.read(_count), 5) == 100
    assert time.monotonic() - started < 5


async def test_a_read_interrupted_before_it_starts_never_runs_and_others_are_untouched(
    direct: SqliteDirect,
) -> None:
    ran: list[str] = []

    def noted(raw: sqlite3.Connection) -> int:
        ran.append("late")
        return _count(raw)

    busy = [direct.reader() for _ in range(READERS)]
    handles = [await b.__aenter__() for b in busy]
    runaways = [asyncio.ensure_future(h.run(_runaway)) for h in handles]
    await asyncio.sleep(0.2)
    async with direct.reader() as waiting:
        late = asyncio.ensure_future(waiting.run(noted))
        await asyncio.sleep(0.05)
        waiting.interrupt()  # still queued behind the runaways: answered as interrupted, never run
        fine = asyncio.ensure_future(direct.read(_count))
        for handle in handles:
            handle.interrupt()
        for runaway in runaways:
            with pytest.raises(sqlite3.OperationalError):
                await asyncio.wait_for(runaway, 5)
        assert await asyncio.wait_for(fine, 5) == 100
        with pytest.raises(sqlite3.OperationalError, match="interrupted"):
            await asyncio.wait_for(late, 5)
    for b in busy:
        await b.__aexit__(None, None, None)
    assert ran == []
