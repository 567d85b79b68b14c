"""The key-value store behind Whisperer: plain values and hashes with a TTL on every key (spec 8.4).

:class:`KVStore` is the interface Whisperer talks to; a Redis implementation can sit behind it unchanged.
:class:`SqlKVStore` keeps the entries in a table of the shared relational database (across restarts when it is on
disk); :class:`MemoryKVStore` keeps them in a dictionary of the process, for an instance that keeps nothing on
disk (an expired key is never returned, whether it was purged yet or not).

Keys live in *spaces* (the service builds one per project, environment and category). Each key is either a
plain JSON value or a hash of field -> JSON value, and carries the TTL it was last written with (for
``nudge``) and its expiry. Time comes from an injectable clock (epoch seconds) so TTLs are testable without
sleeping.
"""

from __future__ import annotations

import abc
import functools
import json
import math
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from sqlalchemy import BigInteger, Column, Integer, String, Table, Text, and_, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dominus_local.idempotency import (
    RETENTION_SECONDS,
    KeyTaken,
    KeyUse,
    StoredAnswer,
    record_in,
    record_in_sqlite,
)
from dominus_local.stores.database import Database, metadata

RETENTION_MS = RETENTION_SECONDS * 1000

Clock = Callable[[], float]
"""Returns the current time in seconds since the epoch."""

Kind = Literal["value", "hash"]
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_T = TypeVar("_T")


@dataclass(frozen=True)
class Keep:
    """An idempotency key to record with a write, atomically, and how the write's result becomes its answer.

    Each write method of a store takes one as ``keep``: when the key is recorded already, nothing is written
    and :class:`~dominus_local.idempotency.KeyTaken` is raised; else the write and the key's record (the
    success answer ``answer(result)``) are kept together or not at all."""

    use: KeyUse
    answer: Callable[[Any], Any]
    """The write's result (as the method returns it) -> the data of the success answer."""

    def record(self, result: Any) -> bytes:
        """The framed answer for ``result``, also left in :attr:`KeyUse.answer` for the dispatcher to send."""
        return self.use.success(self.answer(result))


class KVError(Exception):
    """Base of the errors a store raises for a request it cannot apply."""


class WrongTypeError(KVError):
    """A hash operation on a plain value, or a plain operation on a hash."""

    def __init__(self, key: str, kind: Kind) -> None:
        super().__init__(f"key holds a {'hash' if kind == 'hash' else 'plain value'}")
        self.key = key
        self.kind = kind


class NotIntegerError(KVError):
    """``incr`` on a value that is not an integer, or a result outside the 64-bit range."""


@dataclass(frozen=True)
class KVEntry:
    """A live key: its kind, its value (a dict of fields for a hash), the TTL it was written with and when
    it expires (epoch seconds)."""

    kind: Kind
    value: Any
    ttl_seconds: int
    expires_at: float

    def ttl_remaining(self, now: float) -> int:
        """Whole seconds left, rounded up, never negative."""
        return max(0, math.ceil(self.expires_at - now - 1e-9))


class KVStore(abc.ABC):
    """The operations Whisperer needs. Every method is atomic on its own."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or time.time

    @abc.abstractmethod
    async def get(
        self, space: str, key: str, *, expect: Kind | None = None, nudge: bool = False, nudge_ttl: int | None = None
    ) -> KVEntry | None:
        """The live entry, or ``None``. A live entry of another kind than ``expect`` raises
        :class:`WrongTypeError` (and is not nudged). With ``nudge``, its expiry is reset first to ``nudge_ttl``
        seconds from now, or to the TTL it was last written with."""

    @abc.abstractmethod
    async def get_many(self, keys: Sequence[tuple[str, str]]) -> list[KVEntry | None]:
        """The live entries of ``(space, key)`` pairs, in order; expiries are not touched."""

    @abc.abstractmethod
    async def set(self, space: str, key: str, value: Any, ttl: int, *, keep: Keep | None = None) -> None:
        """Write a plain value with a new TTL. Raises :class:`WrongTypeError` when the key holds a hash.

        Every write method takes ``keep``: an idempotency key recorded with the write, atomically (see
        :class:`Keep`)."""

    @abc.abstractmethod
    async def record_failure(self, use: KeyUse, status: int, body: bytes) -> StoredAnswer | None:
        """Keep a failure answer for ``use`` where this store keeps the keys of its writes (see
        :class:`~dominus_local.idempotency.KeyRecorder`)."""

    @abc.abstractmethod
    async def setnx(self, space: str, key: str, value: Any, ttl: int, *, keep: Keep | None = None) -> tuple[bool, Any]:
        """Write only if the key is absent: ``(True, None)``, or ``(False, current value)``."""

    @abc.abstractmethod
    async def incr(self, space: str, key: str, delta: int, ttl: int, *, keep: Keep | None = None) -> int:
        """Add ``delta`` to an integer value; a missing key counts as 0 and is created with ``ttl``, an
        existing one keeps its expiry."""

    @abc.abstractmethod
    async def delete(self, space: str, key: str, *, keep: Keep | None = None) -> bool:
        """Remove a key of either kind; ``True`` when a live key was removed."""

    @abc.abstractmethod
    async def hset(self, space: str, key: str, field: str, value: Any, ttl: int, *, keep: Keep | None = None) -> bool:
        """Set one field of a hash and reset the whole hash's expiry; ``True`` when the field is new."""

    @abc.abstractmethod
    async def hdel(self, space: str, key: str, field: str, *, keep: Keep | None = None) -> bool:
        """Remove one field; removing the last one removes the key. ``True`` when the field existed."""

    @abc.abstractmethod
    async def scan(self, space: str, *, prefix: str = "", after: str | None = None, limit: int = 100) -> list[str]:
        """Up to ``limit`` live keys of the space that start with ``prefix`` and sort after ``after``, in
        code-point order. Paging by the last key returned never skips or repeats a key that lives
        throughout, whatever is added meanwhile."""

    @abc.abstractmethod
    async def purge_expired(self) -> int:
        """Drop expired entries for good; returns how many were dropped."""

    async def ping(self) -> None:
        """Raise when the store cannot be reached (health checks); nothing to check by default."""
        return None

    async def close(self) -> None:
        """Release what the store holds (nothing by default)."""
        return None


whisperer_kv = Table(
    "whisperer_kv",
    metadata,
    Column("space", String(320), primary_key=True),
    Column("key", String(512), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("value", Text, nullable=False),
    Column("ttl_seconds", Integer, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False, index=True),
)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# The rules of the read-modify-write operations, from the live entry (or None) to what is written, shared by
# every store that does not run them in a script of its own (SQL through SQLAlchemy, SQLite in one hop, memory).


def _held(entry: KVEntry | None, key: str) -> tuple[bool, Any] | None:
    """``setnx``'s answer when the key is taken (``None``: it is free to write)."""
    if entry is None:
        return None
    if entry.kind != "value":
        raise WrongTypeError(key, entry.kind)
    return False, entry.value


def _counted(entry: KVEntry | None, key: str, delta: int) -> int:
    """``incr``'s new value (a missing key counts as 0)."""
    current = 0
    if entry is not None:
        if entry.kind != "value":
            raise WrongTypeError(key, entry.kind)
        if isinstance(entry.value, bool) or not isinstance(entry.value, int):
            raise NotIntegerError("the key does not hold an integer")
        current = entry.value
    result = current + delta
    if not INT64_MIN <= result <= INT64_MAX:
        raise NotIntegerError("the result is outside the 64-bit integer range")
    return result


def _with_field(entry: KVEntry | None, key: str, field: str, value: Any) -> tuple[dict[str, Any], bool]:
    """``hset``'s fields, and whether the field is new."""
    if entry is None:
        return {field: value}, True
    if entry.kind != "hash":
        raise WrongTypeError(key, entry.kind)
    fields = dict(entry.value)
    is_new = field not in fields
    fields[field] = value
    return fields, is_new


def _without_field(entry: KVEntry | None, key: str, field: str) -> dict[str, Any] | None:
    """``hdel``'s remaining fields (``{}``: the key goes), or ``None`` when there was no such field."""
    if entry is None:
        return None
    if entry.kind != "hash":
        raise WrongTypeError(key, entry.kind)
    if field not in entry.value:
        return None
    return {name: value for name, value in entry.value.items() if name != field}


class SqlKVStore(KVStore):
    """Entries in the ``whisperer_kv`` table of the shared database, one transaction per operation.

    On SQLite the database serialises transactions; on PostgreSQL rows are locked ``FOR UPDATE`` and a
    unique-key race on insert is retried, so ``setnx`` and ``incr`` stay atomic either way.

    On a SQLite file the single-key operations are plain functions of a ``sqlite3`` connection run by
    :class:`~dominus_local.stores.sqlite_direct.SqliteDirect`: a read is one hop to a read connection, a write
    one function of the writer's next group commit (its idempotency record in the same transaction).
    """

    _RETRIES = 5
    PURGE_EVERY = 1000
    """Expired rows are dropped for good after this many writes (reads ignore them meanwhile)."""

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        super().__init__(clock)
        self._db = db
        self._direct = db.direct
        self._writes = 0

    async def _wrote(self) -> None:
        self._writes += 1
        if self._writes % self.PURGE_EVERY == 0:
            await self.purge_expired()

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def ping(self) -> None:
        await self._db.ping()

    async def _run(self, op: Callable[[AsyncConnection, int], Awaitable[_T]], keep: Keep | None = None) -> _T:
        for attempt in range(self._RETRIES):
            try:
                async with self._db.begin() as conn:
                    now_ms = self._now_ms()
                    result = await op(conn, now_ms)
                    if keep is not None:
                        await record_in(conn, keep.use, 200, keep.record(result), now_ms)
                    return result
            except IntegrityError:
                # Another transaction inserted the same key first (PostgreSQL): run again and see it.
                if attempt == self._RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _write(self, work: Callable[[sqlite3.Connection], _T], keep: Keep | None, now_ms: int) -> _T:
        """``work`` as a function of the writer's next group commit, its key's record in the same savepoint."""
        assert self._direct is not None
        if keep is None:
            return await self._direct.write(work)
        return await self._direct.write(functools.partial(_recorded, work, keep, now_ms))

    def _key_column(self) -> Any:
        # Code-point order on every backend: SQLite compares bytes; PostgreSQL needs the C collation.
        return whisperer_kv.c.key.collate("C") if self._db.dialect == "postgresql" else whisperer_kv.c.key

    async def _load(self, conn: AsyncConnection, space: str, key: str, now_ms: int) -> KVEntry | None:
        """The row of a key (locked on PostgreSQL); an expired one is deleted and counts as absent."""
        t = whisperer_kv.c
        row = (
            await conn.execute(
                select(t.kind, t.value, t.ttl_seconds, t.expires_at_ms)
                .where(t.space == space, t.key == key)
                .with_for_update()
            )
        ).first()
        if row is None:
            return None
        if row.expires_at_ms <= now_ms:
            await conn.execute(delete(whisperer_kv).where(t.space == space, t.key == key))
            return None
        return KVEntry(row.kind, json.loads(row.value), row.ttl_seconds, row.expires_at_ms / 1000)

    async def _insert(
        self, conn: AsyncConnection, space: str, key: str, kind: Kind, value: Any, ttl: int, expires_ms: int
    ) -> None:
        await conn.execute(
            insert(whisperer_kv).values(
                space=space, key=key, kind=kind, value=_dumps(value), ttl_seconds=ttl, expires_at_ms=expires_ms
            )
        )

    async def _update(self, conn: AsyncConnection, space: str, key: str, **values: Any) -> None:
        t = whisperer_kv.c
        await conn.execute(update(whisperer_kv).where(t.space == space, t.key == key).values(**values))

    async def get(
        self, space: str, key: str, *, expect: Kind | None = None, nudge: bool = False, nudge_ttl: int | None = None
    ) -> KVEntry | None:
        direct = self._direct
        if direct is not None:
            now_ms = self._now_ms()
            if not nudge:
                found = await direct.read(functools.partial(_sqlite_get, space=space, key=key, now_ms=now_ms))
            else:
                found = await direct.write(
                    functools.partial(_sqlite_nudge, space=space, key=key, now_ms=now_ms, ttl=nudge_ttl, expect=expect)
                )
            if found is not None and expect is not None and found.kind != expect:
                raise WrongTypeError(key, found.kind)
            return found
        if not nudge:
            # A plain read: no write lock (an expired row is left for the purge and counts as absent).
            t = whisperer_kv.c
            now_ms = self._now_ms()
            async with self._db.read() as conn:
                row = (
                    await conn.execute(
                        select(t.kind, t.value, t.ttl_seconds, t.expires_at_ms).where(t.space == space, t.key == key)
                    )
                ).first()
            if row is None or row.expires_at_ms <= now_ms:
                return None
            if expect is not None and row.kind != expect:
                raise WrongTypeError(key, row.kind)
            return KVEntry(row.kind, json.loads(row.value), row.ttl_seconds, row.expires_at_ms / 1000)

        async def op(conn: AsyncConnection, now_ms: int) -> KVEntry | None:
            entry = await self._load(conn, space, key, now_ms)
            if entry is not None and expect is not None and entry.kind != expect:
                raise WrongTypeError(key, entry.kind)
            if entry is None or not nudge:
                return entry
            expires_ms = now_ms + 1000 * (nudge_ttl if nudge_ttl is not None else entry.ttl_seconds)
            await self._update(conn, space, key, expires_at_ms=expires_ms)
            return KVEntry(entry.kind, entry.value, entry.ttl_seconds, expires_ms / 1000)

        return await self._run(op)

    async def get_many(self, keys: Sequence[tuple[str, str]]) -> list[KVEntry | None]:
        async def op(conn: AsyncConnection, now_ms: int) -> list[KVEntry | None]:
            t = whisperer_kv.c
            out: list[KVEntry | None] = []
            for space, key in keys:
                row = (
                    await conn.execute(
                        select(t.kind, t.value, t.ttl_seconds, t.expires_at_ms).where(t.space == space, t.key == key)
                    )
                ).first()
                if row is None or row.expires_at_ms <= now_ms:
                    out.append(None)
                else:
                    out.append(KVEntry(row.kind, json.loads(row.value), row.ttl_seconds, row.expires_at_ms / 1000))
            return out

        return await self._run(op)

    async def set(self, space: str, key: str, value: Any, ttl: int, *, keep: Keep | None = None) -> None:
        """One upsert (and, with ``keep``, the key's record) in one transaction: a live hash is left alone."""
        direct = self._direct
        if direct is not None:
            now_ms = self._now_ms()
            text = _dumps(value)
            await self._write(
                functools.partial(_sqlite_set, space=space, key=key, text=text, ttl=ttl, now_ms=now_ms), keep, now_ms
            )
            await self._wrote()
            return

        async def op(conn: AsyncConnection, now_ms: int) -> None:
            t = whisperer_kv.c
            make = pg_insert if self._db.dialect == "postgresql" else sqlite_insert
            expires_ms = now_ms + 1000 * ttl
            new = make(whisperer_kv).values(
                space=space, key=key, kind="value", value=_dumps(value), ttl_seconds=ttl, expires_at_ms=expires_ms
            )
            statement = new.on_conflict_do_update(
                index_elements=[t.space, t.key],
                set_={n: new.excluded[n] for n in ("kind", "value", "ttl_seconds", "expires_at_ms")},
                where=(t.kind == "value") | (t.expires_at_ms <= now_ms),
            ).returning(t.kind)
            if (await conn.execute(statement)).first() is None:
                raise WrongTypeError(key, "hash")

        await self._run(op, keep)
        await self._wrote()

    async def record_failure(self, use: KeyUse, status: int, body: bytes) -> StoredAnswer | None:
        """In the database's idempotency table, where :meth:`set` records its keys."""
        try:
            async with self._db.begin() as conn:
                await record_in(conn, use, status, body, self._now_ms())
        except KeyTaken as taken:
            return taken.stored
        return None

    async def setnx(self, space: str, key: str, value: Any, ttl: int, *, keep: Keep | None = None) -> tuple[bool, Any]:
        if self._direct is not None:
            now_ms = self._now_ms()
            done = await self._write(
                functools.partial(_sqlite_setnx, space=space, key=key, text=_dumps(value), ttl=ttl, now_ms=now_ms),
                keep,
                now_ms,
            )
            await self._wrote()
            return done

        async def op(conn: AsyncConnection, now_ms: int) -> tuple[bool, Any]:
            held = _held(await self._load(conn, space, key, now_ms), key)
            if held is not None:
                return held
            await self._insert(conn, space, key, "value", value, ttl, now_ms + 1000 * ttl)
            return True, None

        result = await self._run(op, keep)
        await self._wrote()
        return result

    async def incr(self, space: str, key: str, delta: int, ttl: int, *, keep: Keep | None = None) -> int:
        if self._direct is not None:
            now_ms = self._now_ms()
            value = await self._write(
                functools.partial(_sqlite_incr, space=space, key=key, delta=delta, ttl=ttl, now_ms=now_ms), keep, now_ms
            )
            await self._wrote()
            return value

        async def op(conn: AsyncConnection, now_ms: int) -> int:
            entry = await self._load(conn, space, key, now_ms)
            result = _counted(entry, key, delta)
            if entry is None:
                await self._insert(conn, space, key, "value", result, ttl, now_ms + 1000 * ttl)
            else:
                await self._update(conn, space, key, value=_dumps(result))
            return result

        result = await self._run(op, keep)
        await self._wrote()
        return result

    async def delete(self, space: str, key: str, *, keep: Keep | None = None) -> bool:
        if self._direct is not None:
            now_ms = self._now_ms()
            work = functools.partial(_sqlite_delete, space=space, key=key, now_ms=now_ms)
            return await self._write(work, keep, now_ms)

        async def op(conn: AsyncConnection, now_ms: int) -> bool:
            t = whisperer_kv.c
            result = await conn.execute(
                delete(whisperer_kv).where(t.space == space, t.key == key).returning(t.expires_at_ms)
            )
            return any(row.expires_at_ms > now_ms for row in result)

        return await self._run(op, keep)

    async def hset(self, space: str, key: str, field: str, value: Any, ttl: int, *, keep: Keep | None = None) -> bool:
        if self._direct is not None:
            now_ms = self._now_ms()
            is_new = await self._write(
                functools.partial(_sqlite_hset, space=space, key=key, field=field, value=value, ttl=ttl, now_ms=now_ms),
                keep,
                now_ms,
            )
            await self._wrote()
            return is_new

        async def op(conn: AsyncConnection, now_ms: int) -> bool:
            entry = await self._load(conn, space, key, now_ms)
            fields, is_new = _with_field(entry, key, field, value)
            expires_ms = now_ms + 1000 * ttl
            if entry is None:
                await self._insert(conn, space, key, "hash", fields, ttl, expires_ms)
            else:
                await self._update(conn, space, key, value=_dumps(fields), ttl_seconds=ttl, expires_at_ms=expires_ms)
            return is_new

        result = await self._run(op, keep)
        await self._wrote()
        return result

    async def hdel(self, space: str, key: str, field: str, *, keep: Keep | None = None) -> bool:
        if self._direct is not None:
            now_ms = self._now_ms()
            return await self._write(
                functools.partial(_sqlite_hdel, space=space, key=key, field=field, now_ms=now_ms), keep, now_ms
            )

        async def op(conn: AsyncConnection, now_ms: int) -> bool:
            fields = _without_field(await self._load(conn, space, key, now_ms), key, field)
            if fields is None:
                return False
            if fields:
                await self._update(conn, space, key, value=_dumps(fields))
            else:
                t = whisperer_kv.c
                await conn.execute(delete(whisperer_kv).where(t.space == space, t.key == key))
            return True

        return await self._run(op, keep)

    async def scan(self, space: str, *, prefix: str = "", after: str | None = None, limit: int = 100) -> list[str]:
        async def op(conn: AsyncConnection, now_ms: int) -> list[str]:
            t = whisperer_kv.c
            key_col = self._key_column()
            conditions = [t.space == space, t.expires_at_ms > now_ms]
            if prefix:
                conditions.append(func.substr(t.key, 1, len(prefix)) == prefix)
            if after is not None:
                conditions.append(key_col > after)
            rows = await conn.execute(select(t.key).where(and_(*conditions)).order_by(key_col).limit(limit))
            return [row.key for row in rows]

        return await self._run(op)

    async def purge_expired(self) -> int:
        async def op(conn: AsyncConnection, now_ms: int) -> int:
            result = await conn.execute(
                delete(whisperer_kv).where(whisperer_kv.c.expires_at_ms <= now_ms).returning(whisperer_kv.c.key)
            )
            return len(result.all())

        return await self._run(op)


# --- SQLite file: the operations as functions of a sqlite3 connection (run by SqliteDirect) ---------------------

_SELECT = 'SELECT kind, value, ttl_seconds, expires_at_ms FROM whisperer_kv WHERE space = ? AND "key" = ?'
_DELETE = 'DELETE FROM whisperer_kv WHERE space = ? AND "key" = ?'
_INSERT = 'INSERT INTO whisperer_kv (space, "key", kind, value, ttl_seconds, expires_at_ms) VALUES (?, ?, ?, ?, ?, ?)'
_UPSERT = (
    "INSERT INTO whisperer_kv (space, \"key\", kind, value, ttl_seconds, expires_at_ms) VALUES (?, ?, 'value', ?, ?, ?)"
    ' ON CONFLICT (space, "key") DO UPDATE SET kind = excluded.kind, value = excluded.value,'
    " ttl_seconds = excluded.ttl_seconds, expires_at_ms = excluded.expires_at_ms"
    " WHERE whisperer_kv.kind = 'value' OR whisperer_kv.expires_at_ms <= ? RETURNING kind"
)


def _sqlite_row(raw: sqlite3.Connection, space: str, key: str) -> tuple[Any, ...] | None:
    row: tuple[Any, ...] | None = raw.execute(_SELECT, (space, key)).fetchone()
    return row


def _sqlite_entry(row: tuple[Any, ...]) -> KVEntry:
    return KVEntry(row[0], json.loads(row[1]), row[2], row[3] / 1000)


def _sqlite_get(raw: sqlite3.Connection, *, space: str, key: str, now_ms: int) -> KVEntry | None:
    row = _sqlite_row(raw, space, key)
    return None if row is None or row[3] <= now_ms else _sqlite_entry(row)


def _sqlite_load(raw: sqlite3.Connection, space: str, key: str, now_ms: int) -> KVEntry | None:
    """As :meth:`SqlKVStore._load`: an expired row is deleted and counts as absent."""
    row = _sqlite_row(raw, space, key)
    if row is None:
        return None
    if row[3] <= now_ms:
        raw.execute(_DELETE, (space, key))
        return None
    return _sqlite_entry(row)


def _sqlite_nudge(
    raw: sqlite3.Connection, *, space: str, key: str, now_ms: int, ttl: int | None, expect: Kind | None
) -> KVEntry | None:
    entry = _sqlite_load(raw, space, key, now_ms)
    if entry is None or (expect is not None and entry.kind != expect):
        return entry
    expires_ms = now_ms + 1000 * (ttl if ttl is not None else entry.ttl_seconds)
    raw.execute('UPDATE whisperer_kv SET expires_at_ms = ? WHERE space = ? AND "key" = ?', (expires_ms, space, key))
    return KVEntry(entry.kind, entry.value, entry.ttl_seconds, expires_ms / 1000)


def _sqlite_set(
    raw: sqlite3.Connection,
    *,
    space: str,
    key: str,
    text: str,
    ttl: int,
    now_ms: int,
) -> None:
    if raw.execute(_UPSERT, (space, key, text, ttl, now_ms + 1000 * ttl, now_ms)).fetchone() is None:
        raise WrongTypeError(key, "hash")


def _recorded(work: Callable[[sqlite3.Connection], _T], keep: Keep, now_ms: int, raw: sqlite3.Connection) -> _T:
    result = work(raw)
    record_in_sqlite(raw, keep.use, 200, keep.record(result), now_ms)
    return result


def _sqlite_setnx(
    raw: sqlite3.Connection, *, space: str, key: str, text: str, ttl: int, now_ms: int
) -> tuple[bool, Any]:
    held = _held(_sqlite_load(raw, space, key, now_ms), key)
    if held is not None:
        return held
    raw.execute(_INSERT, (space, key, "value", text, ttl, now_ms + 1000 * ttl))
    return True, None


def _sqlite_incr(raw: sqlite3.Connection, *, space: str, key: str, delta: int, ttl: int, now_ms: int) -> int:
    entry = _sqlite_load(raw, space, key, now_ms)
    result = _counted(entry, key, delta)
    if entry is None:
        raw.execute(_INSERT, (space, key, "value", _dumps(result), ttl, now_ms + 1000 * ttl))
    else:
        raw.execute('UPDATE whisperer_kv SET value = ? WHERE space = ? AND "key" = ?', (_dumps(result), space, key))
    return result


def _sqlite_delete(raw: sqlite3.Connection, *, space: str, key: str, now_ms: int) -> bool:
    rows = raw.execute(_DELETE + " RETURNING expires_at_ms", (space, key)).fetchall()
    return any(row[0] > now_ms for row in rows)


def _sqlite_hset(
    raw: sqlite3.Connection, *, space: str, key: str, field: str, value: Any, ttl: int, now_ms: int
) -> bool:
    entry = _sqlite_load(raw, space, key, now_ms)
    fields, is_new = _with_field(entry, key, field, value)
    expires_ms = now_ms + 1000 * ttl
    if entry is None:
        raw.execute(_INSERT, (space, key, "hash", _dumps(fields), ttl, expires_ms))
    else:
        raw.execute(
            'UPDATE whisperer_kv SET value = ?, ttl_seconds = ?, expires_at_ms = ? WHERE space = ? AND "key" = ?',
            (_dumps(fields), ttl, expires_ms, space, key),
        )
    return is_new


def _sqlite_hdel(raw: sqlite3.Connection, *, space: str, key: str, field: str, now_ms: int) -> bool:
    fields = _without_field(_sqlite_load(raw, space, key, now_ms), key, field)
    if fields is None:
        return False
    if fields:
        raw.execute('UPDATE whisperer_kv SET value = ? WHERE space = ? AND "key" = ?', (_dumps(fields), space, key))
    else:
        raw.execute(_DELETE, (space, key))
    return True


@dataclass
class _MemoryRow:
    kind: Kind
    text: str  # the value as JSON text, so every read returns a fresh copy, as from the SQL store
    ttl_seconds: int
    expires_at_ms: int


class MemoryKVStore(KVStore):
    """Entries in a dictionary of the process: the store of an instance that keeps nothing on disk.

    Same semantics as :class:`SqlKVStore` (expiry to the millisecond, values stored as JSON text so a read
    never aliases what was written, code-point key order), without a database round trip. Every method runs
    without yielding to the event loop, so each one is atomic on its own; the store is meant for one event
    loop (an in-process or single-process instance) and its contents end with the process.
    """

    PURGE_EVERY = 1000
    """Expired entries are dropped for good after this many writes (reads ignore them meanwhile)."""

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__(clock)
        self._spaces: dict[str, dict[str, _MemoryRow]] = {}
        self._answers: dict[str, tuple[StoredAnswer, int]] = {}
        """Idempotency records of :meth:`set`: key id -> (answer, expiry in ms)."""
        self._writes = 0

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _wrote(self) -> None:
        self._writes += 1
        if self._writes % self.PURGE_EVERY == 0:
            self._purge(self._now_ms())

    def _load(self, space: str, key: str, now_ms: int) -> _MemoryRow | None:
        keys = self._spaces.get(space)
        if keys is None:
            return None
        row = keys.get(key)
        if row is None:
            return None
        if row.expires_at_ms <= now_ms:
            self._remove(space, key)
            return None
        return row

    def _remove(self, space: str, key: str) -> _MemoryRow | None:
        keys = self._spaces.get(space)
        if keys is None:
            return None
        row = keys.pop(key, None)
        if not keys:
            del self._spaces[space]
        return row

    def _put(self, space: str, key: str, row: _MemoryRow) -> None:
        self._spaces.setdefault(space, {})[key] = row

    @staticmethod
    def _entry(row: _MemoryRow) -> KVEntry:
        return KVEntry(row.kind, json.loads(row.text), row.ttl_seconds, row.expires_at_ms / 1000)

    def _live(self, space: str, key: str, now_ms: int) -> KVEntry | None:
        row = self._load(space, key, now_ms)
        return None if row is None else self._entry(row)

    async def get(
        self, space: str, key: str, *, expect: Kind | None = None, nudge: bool = False, nudge_ttl: int | None = None
    ) -> KVEntry | None:
        now_ms = self._now_ms()
        row = self._load(space, key, now_ms)
        if row is None:
            return None
        if expect is not None and row.kind != expect:
            raise WrongTypeError(key, row.kind)
        if nudge:
            row.expires_at_ms = now_ms + 1000 * (nudge_ttl if nudge_ttl is not None else row.ttl_seconds)
        return self._entry(row)

    async def get_many(self, keys: Sequence[tuple[str, str]]) -> list[KVEntry | None]:
        now_ms = self._now_ms()
        out: list[KVEntry | None] = []
        for space, key in keys:
            row = self._spaces.get(space, {}).get(key)
            out.append(None if row is None or row.expires_at_ms <= now_ms else self._entry(row))
        return out

    def _kept(self, keep: Keep | None, write: Callable[[int], _T]) -> _T:
        """``write(now_ms)`` with its key's record: refused first when the key is recorded (the write is plain
        code of this loop, so nothing runs between the check and the record)."""
        now_ms = self._now_ms()
        if keep is None:
            return write(now_ms)
        self._check_key(keep.use, now_ms)
        result = write(now_ms)
        answer = StoredAnswer(keep.use.fingerprint, 200, keep.record(result))
        self._answers[keep.use.id] = (answer, now_ms + RETENTION_MS)
        return result

    async def set(self, space: str, key: str, value: Any, ttl: int, *, keep: Keep | None = None) -> None:
        def write(now_ms: int) -> None:
            row = self._load(space, key, now_ms)
            if row is not None and row.kind != "value":
                raise WrongTypeError(key, row.kind)
            self._put(space, key, _MemoryRow("value", _dumps(value), ttl, now_ms + 1000 * ttl))
            self._wrote()

        self._kept(keep, write)

    def _check_key(self, use: KeyUse, now_ms: int) -> None:
        found = self._answers.get(use.id)
        if found is not None:
            if found[1] > now_ms:
                raise KeyTaken(found[0])
            del self._answers[use.id]

    async def record_failure(self, use: KeyUse, status: int, body: bytes) -> StoredAnswer | None:
        """In this process's memory, with the records of :meth:`set` (they end with the process, as the data)."""
        now_ms = self._now_ms()
        try:
            self._check_key(use, now_ms)
        except KeyTaken as taken:
            return taken.stored
        self._answers[use.id] = (StoredAnswer(use.fingerprint, status, body), now_ms + RETENTION_MS)
        return None

    async def setnx(self, space: str, key: str, value: Any, ttl: int, *, keep: Keep | None = None) -> tuple[bool, Any]:
        return self._kept(keep, functools.partial(self._setnx, space, key, value, ttl))

    def _setnx(self, space: str, key: str, value: Any, ttl: int, now_ms: int) -> tuple[bool, Any]:
        held = _held(self._live(space, key, now_ms), key)
        if held is not None:
            return held
        self._put(space, key, _MemoryRow("value", _dumps(value), ttl, now_ms + 1000 * ttl))
        self._wrote()
        return True, None

    async def incr(self, space: str, key: str, delta: int, ttl: int, *, keep: Keep | None = None) -> int:
        return self._kept(keep, functools.partial(self._incr, space, key, delta, ttl))

    def _incr(self, space: str, key: str, delta: int, ttl: int, now_ms: int) -> int:
        row = self._load(space, key, now_ms)
        result = _counted(None if row is None else self._entry(row), key, delta)
        if row is None:
            self._put(space, key, _MemoryRow("value", _dumps(result), ttl, now_ms + 1000 * ttl))
        else:
            row.text = _dumps(result)
        self._wrote()
        return result

    async def delete(self, space: str, key: str, *, keep: Keep | None = None) -> bool:
        return self._kept(keep, functools.partial(self._delete, space, key))

    def _delete(self, space: str, key: str, now_ms: int) -> bool:
        row = self._remove(space, key)
        return row is not None and row.expires_at_ms > now_ms

    async def hset(self, space: str, key: str, field: str, value: Any, ttl: int, *, keep: Keep | None = None) -> bool:
        return self._kept(keep, functools.partial(self._hset, space, key, field, value, ttl))

    def _hset(self, space: str, key: str, field: str, value: Any, ttl: int, now_ms: int) -> bool:
        row = self._load(space, key, now_ms)
        fields, is_new = _with_field(None if row is None else self._entry(row), key, field, value)
        expires_ms = now_ms + 1000 * ttl
        if row is None:
            self._put(space, key, _MemoryRow("hash", _dumps(fields), ttl, expires_ms))
        else:
            row.text, row.ttl_seconds, row.expires_at_ms = _dumps(fields), ttl, expires_ms
        self._wrote()
        return is_new

    async def hdel(self, space: str, key: str, field: str, *, keep: Keep | None = None) -> bool:
        return self._kept(keep, functools.partial(self._hdel, space, key, field))

    def _hdel(self, space: str, key: str, field: str, now_ms: int) -> bool:
        fields = _without_field(self._live(space, key, now_ms), key, field)
        if fields is None:
            return False
        row = self._spaces[space][key]
        if fields:
            row.text = _dumps(fields)
        else:
            self._remove(space, key)
        return True

    async def scan(self, space: str, *, prefix: str = "", after: str | None = None, limit: int = 100) -> list[str]:
        now_ms = self._now_ms()
        live = sorted(
            key
            for key, row in self._spaces.get(space, {}).items()
            if row.expires_at_ms > now_ms and key.startswith(prefix) and (after is None or key > after)
        )
        return live[:limit]

    def _purge(self, now_ms: int) -> int:
        dropped = 0
        for space in list(self._spaces):
            for key in [k for k, row in self._spaces[space].items() if row.expires_at_ms <= now_ms]:
                self._remove(space, key)
                dropped += 1
        for name in [n for n, (_, expires_ms) in self._answers.items() if expires_ms <= now_ms]:
            del self._answers[name]
        return dropped

    async def purge_expired(self) -> int:
        return self._purge(self._now_ms())
