"""The SQLite file's one-hop transactions (``dominus_local.stores.sqlite_direct``): concurrent writes share a
commit, a failing write is rolled back alone, and no acknowledged write is lost to a SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from dominus_local.stores.database import Database


class Refused(Exception):
    pass


def _count(raw: sqlite3.Connection) -> int:
    return int(raw.execute("SELECT count(*) FROM items").fetchone()[0])


@pytest.fixture
async def group_db(tmp_path: Path) -> AsyncIterator[Database]:
    """A database on a SQLite file with an ``items`` table; closed after the test."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'group.db'}")
    assert db.direct is not None
    try:
        async with db.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, note TEXT NOT NULL)")
        yield db
    finally:
        await db.dispose()


async def test_concurrent_writes_share_one_commit_and_a_failure_is_rolled_back_alone(
    group_db: Database, tmp_path: Path
) -> None:
    direct = group_db.direct
    assert direct is not None
    assert await direct.read(_count) == 0
    before = direct.commits

    def insert(number: int) -> Callable[[sqlite3.Connection], int]:
        def work(raw: sqlite3.Connection) -> int:
            raw.execute("INSERT INTO items (id, note) VALUES (?, ?)", (number, f"n{number}"))
            if number == 7:
                raise Refused  # after its own insert: the savepoint takes it back
            return number

        return work

    outcomes = await asyncio.gather(*(direct.write(insert(n)) for n in range(50)), return_exceptions=True)
    assert direct.commits == before + 1
    assert isinstance(outcomes[7], Refused)
    assert [o for i, o in enumerate(outcomes) if i != 7] == [n for n in range(50) if n != 7]
    # Answered only after the commit: a separate reader of the file sees every acknowledged row.
    with contextlib.closing(sqlite3.connect(tmp_path / "group.db")) as other:
        stored = [row[0] for row in other.execute("SELECT id FROM items ORDER BY id")]
    assert stored == [n for n in range(50) if n != 7]
    # The writers' lock is shared with Database.begin(): both kinds of write keep working side by side.
    async with group_db.begin() as conn:
        await conn.exec_driver_sql("INSERT INTO items (id, note) VALUES (100, 'through begin')")
    await direct.write(lambda raw: raw.execute("INSERT INTO items (id, note) VALUES (101, 'direct')"))
    assert await direct.read(_count) == 51


async def test_a_write_that_breaks_the_transaction_fails_alone_and_its_batch_still_commits(
    group_db: Database, tmp_path: Path
) -> None:
    """A statement SQLite answers by rolling back the whole transaction (here ``ROLLBACK`` itself) loses the
    earlier writes of the batch: they run again in a new transaction, and only the culprit fails."""
    direct = group_db.direct
    assert direct is not None
    await direct.read(lambda raw: None)

    def add(number: int) -> Callable[[sqlite3.Connection], int]:
        def work(raw: sqlite3.Connection) -> int:
            raw.execute("INSERT INTO items (id, note) VALUES (?, 'x')", (number,))
            return number

        return work

    def breaks(raw: sqlite3.Connection) -> None:
        raw.execute("ROLLBACK")
        raise Refused

    outcomes = await asyncio.gather(
        direct.write(add(1)), direct.write(breaks), direct.write(add(2)), return_exceptions=True
    )
    assert outcomes[0] == 1 and isinstance(outcomes[1], Refused) and outcomes[2] == 2
    with contextlib.closing(sqlite3.connect(tmp_path / "group.db")) as other:
        assert [row[0] for row in other.execute("SELECT id FROM items ORDER BY id")] == [1, 2]


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from dominus_local.stores.database import Database

    async def main(path):
        db = Database(f"sqlite+aiosqlite:///{path}")
        async with db.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, note TEXT)")
        direct = db.direct

        async def writer(worker):
            for n in range(100000):
                number = worker * 1000000 + n
                await direct.write(lambda raw, number=number: raw.execute(
                    "INSERT INTO items (id, note) VALUES (?, 'acked')", (number,)))
                sys.stdout.write(f"{number}\\n")
                sys.stdout.flush()

        await asyncio.gather(*(writer(w) for w in range(8)))

    asyncio.run(main(sys.argv[1]))
    """
)


def test_no_acknowledged_write_is_lost_to_a_sigkill(tmp_path: Path) -> None:
    """Eight writers acknowledge their writes (print the id) only when ``write`` returns; a SIGKILL cuts them.
    Every acknowledged id is in the file afterwards, exactly once."""
    path = tmp_path / "crash.db"
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, cwd=Path(__file__).parents[2]
    )
    acknowledged: list[int] = []
    try:
        assert process.stdout is not None
        while len(acknowledged) < 300:
            line = process.stdout.readline()
            if not line:
                break
            acknowledged.append(int(line))
        os.kill(process.pid, signal.SIGKILL)
        acknowledged += [int(line) for line in process.stdout.read().split()]
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
    assert len(acknowledged) >= 300, "the writer stopped before it was killed"
    with contextlib.closing(sqlite3.connect(path)) as db:
        stored = [row[0] for row in db.execute("SELECT id FROM items")]
    assert len(stored) == len(set(stored))
    assert set(acknowledged) <= set(stored)
