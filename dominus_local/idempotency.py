"""The idempotency-key store (spec 6.3), kept in the database so that it survives restarts and is shared by
every process on one PostgreSQL database.

A key is scoped to the subject ``(subject_type, sub)``. :meth:`IdempotencyStore.claim` records an unknown key
as in progress, replays a finished one, and refuses a running one (409 ``idempotency_in_progress``) or one
first used for another request (422 ``idempotency_key_reused``). :meth:`IdempotencyStore.finish` keeps an
answer below 500 for 24 hours; :meth:`IdempotencyStore.forget` drops the key after a 5xx or a crash so that a
retry runs afresh.

Endpoints that write to one store record their key WITH the write instead (``records_key`` on the route, spec
6.3 left the mechanism open): the dispatcher hands the handler a :class:`KeyUse`, and the handler stores its
answer in the same database transaction as its write (:func:`record_in`) or in the same Redis script, so a key
costs no transaction of its own and a crash can never separate a write from its record. Such a record is only
ever written finished; a second request with the key finds it there (:class:`KeyTaken`) and its own write is
rolled back. A failure (4xx) of such an endpoint is recorded after it, where :attr:`KeyUse.recorder` says
(the database unless the handler names its store). Where the spec is silent: a key's record lives in the store
of the write it guards, so one key used first for a Whisperer write on Redis and then for a database write is
not recognised as reused (keys are one UUID per call).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

import dominus_fastapi.core.wire as wire
from dominus_local.errors import ApiError, invalid
from dominus_local.stores.database import Database, metadata

__all__ = [
    "HEADER",
    "IN_PROGRESS_LEASE_SECONDS",
    "RETENTION_SECONDS",
    "IdempotencyStore",
    "KeyRecorder",
    "KeyTaken",
    "KeyUse",
    "Replay",
    "StoredAnswer",
    "check_key",
    "keys_table",
    "record_in",
    "record_in_sqlite",
    "record_with",
]

HEADER = "idempotency-key"
RETENTION_SECONDS = 24 * 3600
"""How long a finished answer is kept."""
IN_PROGRESS_LEASE_SECONDS = 300
"""A key still marked in progress after this long belongs to a process that died; a retry may take it over."""


def _key_columns() -> list[Column[Any]]:
    return [
        Column("subject_type", String(16), primary_key=True),
        Column("subject", String(64), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("status", Integer, nullable=True),  # NULL while the request runs
        Column("body", Text, nullable=True),
        Column("started_ms", BigInteger, nullable=False),
        Column("expires_ms", BigInteger, nullable=False, index=True),
    ]


idempotency_keys = Table("dispatch_idempotency_keys", metadata, *_key_columns())


def check_key(value: str) -> str:
    """The key if it is 1 to 255 printable ASCII characters, else 400 ``validation_failed``."""
    if not 1 <= len(value) <= 255 or any(not 0x20 <= ord(ch) <= 0x7E for ch in value):
        raise invalid("Idempotency-Key", "must be 1 to 255 printable ASCII characters")
    return value


@dataclass(frozen=True)
class Replay:
    """A finished answer to send again."""

    status: int
    body: bytes


@dataclass(frozen=True)
class StoredAnswer:
    """A key's record as another request left it: ``status`` is ``None`` while that request runs."""

    fingerprint: str
    status: int | None
    body: bytes


class KeyTaken(Exception):
    """Raised inside a write's transaction when its key is already recorded, so that the write rolls back."""

    def __init__(self, stored: StoredAnswer) -> None:
        super().__init__("idempotency key already recorded")
        self.stored = stored


class KeyRecorder(Protocol):
    """A store that keeps the records of the keys of its own writes (the database, Redis, the memory KV)."""

    async def record_failure(self, use: KeyUse, status: int, body: bytes) -> StoredAnswer | None:
        """Keep a failure answer for the key; the answer already recorded, if another request was first."""


@dataclass
class KeyUse:
    """The idempotency key of one request to a ``records_key`` endpoint (see the module docstring)."""

    subject_type: str
    subject: str
    key: str
    fingerprint: str
    recorder: KeyRecorder
    answer: bytes | None = None
    """The framed success answer the handler recorded with its write (the dispatcher sends it as is)."""

    @property
    def id(self) -> str:
        """One string naming the key within its subject, for key-value stores."""
        return f"{self.subject_type}:{self.subject}:{self.key}"

    def success(self, data: Any) -> bytes:
        """Frame ``data`` as the success answer, remember it, and return it (for the record)."""
        self.answer = wire.encode_json(wire.success_envelope(data))
        return self.answer


_RECORD: dict[str, Any] = {}
"""The upsert of :func:`record_in` per dialect, built once: its compiled form is then found in SQLAlchemy's
cache without working out a cache key for a new statement on every request."""


def keys_table(target_metadata: MetaData, schema: str | None = None) -> Table:
    """A table of the shape of :data:`idempotency_keys` on ``target_metadata`` (in ``schema``): where a store
    keeps the keys of its writes in a database of its own (Scribe's user data on SQLite)."""
    return Table(
        idempotency_keys.name,
        target_metadata,
        *_key_columns(),
        schema=schema,
    )


def _record_statement(dialect: str, table: Table = idempotency_keys) -> Any:
    statement = _RECORD.get(f"{dialect} {table.fullname}")
    if statement is None:
        c = table.c
        make = pg_insert if dialect == "postgresql" else sqlite_insert
        names = ("subject_type", "subject", "key", "fingerprint", "status", "body", "started_ms", "expires_ms")
        new = make(table).values({name: bindparam(name) for name in names})
        statement = new.on_conflict_do_update(
            index_elements=[c.subject_type, c.subject, c.key],
            set_={name: new.excluded[name] for name in names[3:]},
            where=(c.expires_ms <= bindparam("now_ms", type_=BigInteger()))
            | (c.status.is_(None) & (c.started_ms < bindparam("lease_cutoff", type_=BigInteger()))),
        ).returning(c.started_ms)
        _RECORD[f"{dialect} {table.fullname}"] = statement
    return statement


def _record_values(use: KeyUse, status: int, body: bytes, now_ms: int) -> dict[str, Any]:
    return {
        "subject_type": use.subject_type,
        "subject": use.subject,
        "key": use.key,
        "fingerprint": use.fingerprint,
        "status": status,
        "body": body.decode("ascii"),
        "started_ms": now_ms,
        "expires_ms": now_ms + RETENTION_SECONDS * 1000,
        "now_ms": now_ms,
        "lease_cutoff": now_ms - IN_PROGRESS_LEASE_SECONDS * 1000,
    }


def _recorded_statement(table: Table = idempotency_keys) -> Any:
    c = table.c
    return select(c.fingerprint, c.status, c.body).where(
        c.subject_type == bindparam("subject_type"), c.subject == bindparam("subject"), c.key == bindparam("key")
    )


async def record_in(
    conn: AsyncConnection, use: KeyUse, status: int, body: bytes, now_ms: int, *, table: Table = idempotency_keys
) -> None:
    """Record ``use``'s finished answer in the transaction of ``conn`` (one statement when the key is new), in
    ``table`` (the database's own table unless a store keeps its keys elsewhere: :func:`keys_table`).

    A record that expired or was abandoned in progress is taken over; a live one raises :class:`KeyTaken`
    (read in the same transaction) so that the caller's transaction, and its write, roll back. On PostgreSQL a
    concurrent request with the same key waits here until the first one commits, then finds its record.
    """
    values = _record_values(use, status, body, now_ms)
    statement = _record_statement(conn.dialect.name, table)
    if (await conn.execute(statement, values)).first() is not None:
        return
    raise _taken((await conn.execute(_recorded_statement(table), values)).first())


RunSql = Callable[[str, Sequence[Any]], Awaitable[Sequence[Any]]]
"""``run(sql_text, positional_args) -> rows``: a caller's own way of running SQL text in its transaction."""

_COMPILED: dict[tuple[str, str, str], tuple[str, tuple[str, ...]]] = {}
_SQLITE = sqlite_dialect()


def _compiled(dialect: Dialect, name: str, table: Table = idempotency_keys) -> tuple[str, tuple[str, ...]]:
    """A statement of :func:`record_in` compiled once for ``dialect`` and ``table``: its text and its parameters'
    order."""
    cache_key = (dialect.name, name, table.fullname)
    found = _COMPILED.get(cache_key)
    if found is None:
        statement = _record_statement(dialect.name, table) if name == "record" else _recorded_statement(table)
        compiled = statement.compile(dialect=dialect)
        if compiled.positiontup is None or any(compiled._bind_processors.values()):  # pragma: no cover
            raise RuntimeError(f"the idempotency statement {name!r} needs SQLAlchemy's parameter processing")
        found = (str(compiled), tuple(compiled.positiontup))
        _COMPILED[cache_key] = found
    return found


def _taken(row: Sequence[Any] | None) -> KeyTaken:
    """The :class:`KeyTaken` of the stored record ``(fingerprint, status, body)`` that kept a key from being
    recorded."""
    if row is None:  # pragma: no cover - the conflicting row cannot vanish inside this transaction
        raise _in_progress()
    fingerprint, status, body = row[0], row[1], row[2]
    return KeyTaken(StoredAnswer(fingerprint, None if status is None else int(status), (body or "").encode("ascii")))


def record_in_sqlite(
    raw: sqlite3.Connection, use: KeyUse, status: int, body: bytes, now_ms: int, *, table: Table = idempotency_keys
) -> None:
    """:func:`record_in` on a plain ``sqlite3`` connection, inside the transaction it is running (a function of
    :class:`~dominus_local.stores.sqlite_direct.SqliteDirect`): the same statements, compiled once, in ``table``
    (the database's own unless a store keeps its keys elsewhere: :func:`keys_table`)."""
    values = _record_values(use, status, body, now_ms)
    text, names = _compiled(_SQLITE, "record", table)
    if raw.execute(text, [values[name] for name in names]).fetchone() is not None:
        return
    text, names = _compiled(_SQLITE, "recorded", table)
    raise _taken(raw.execute(text, [values[name] for name in names]).fetchone())


async def record_with(run: RunSql, dialect: Dialect, use: KeyUse, status: int, body: bytes, now_ms: int) -> None:
    """:func:`record_in` for a caller that runs SQL text itself in its write's transaction (Scribe's PostgreSQL
    fast path): the same statements, compiled once for ``dialect`` (a positional paramstyle), the same outcomes."""
    values = _record_values(use, status, body, now_ms)
    text, names = _compiled(dialect, "record")
    if await run(text, [values[name] for name in names]):
        return
    text, names = _compiled(dialect, "recorded")
    rows = await run(text, [values[name] for name in names])
    raise _taken(rows[0] if rows else None)


class IdempotencyStore:
    """Claims, finishes and forgets idempotency keys. ``clock`` returns Unix seconds."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def claim(self, subject_type: str, subject: str, key: str, fingerprint: str) -> Replay | None:
        """Record ``key`` as in progress and return ``None`` (run the request), or a :class:`Replay`.

        Raises :class:`ApiError` 409 ``idempotency_in_progress`` or 422 ``idempotency_key_reused``.
        """
        pk = and_(
            idempotency_keys.c.subject_type == subject_type,
            idempotency_keys.c.subject == subject,
            idempotency_keys.c.key == key,
        )
        # Two attempts: on PostgreSQL a concurrent first use of the key can win the insert race.
        for _ in range(2):
            now = self._now_ms()
            try:
                async with self.db.begin() as conn:
                    row = (await conn.execute(select(idempotency_keys).where(pk))).first()
                    if row is None:
                        await conn.execute(
                            insert(idempotency_keys).values(
                                subject_type=subject_type,
                                subject=subject,
                                key=key,
                                fingerprint=fingerprint,
                                status=None,
                                body=None,
                                started_ms=now,
                                expires_ms=now + RETENTION_SECONDS * 1000,
                            )
                        )
                        return None
                    abandoned = row.status is None and row.started_ms + IN_PROGRESS_LEASE_SECONDS * 1000 < now
                    if row.expires_ms <= now or abandoned:
                        taken = await conn.execute(
                            update(idempotency_keys)
                            .where(pk, idempotency_keys.c.started_ms == row.started_ms)
                            .values(
                                fingerprint=fingerprint,
                                status=None,
                                body=None,
                                started_ms=now,
                                expires_ms=now + RETENTION_SECONDS * 1000,
                            )
                        )
                        if taken.rowcount == 1:
                            return None
                        raise _in_progress()
                    if row.fingerprint != fingerprint:
                        raise ApiError(
                            "idempotency_key_reused",
                            "This Idempotency-Key was already used for a different request",
                        )
                    if row.status is None:
                        raise _in_progress()
                    return Replay(int(row.status), (row.body or "").encode("ascii"))
            except IntegrityError:
                continue
        raise _in_progress()

    async def finish(self, subject_type: str, subject: str, key: str, status: int, body: bytes) -> None:
        """Keep the answer (status below 500) for 24 hours, or forget the key (5xx)."""
        if status >= 500:
            await self.forget(subject_type, subject, key)
            return
        now = self._now_ms()
        async with self.db.begin() as conn:
            await conn.execute(
                update(idempotency_keys)
                .where(
                    idempotency_keys.c.subject_type == subject_type,
                    idempotency_keys.c.subject == subject,
                    idempotency_keys.c.key == key,
                )
                .values(status=status, body=body.decode("ascii"), expires_ms=now + RETENTION_SECONDS * 1000)
            )

    async def forget(self, subject_type: str, subject: str, key: str) -> None:
        """Drop the key so that a retry runs afresh."""
        async with self.db.begin() as conn:
            await conn.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.subject_type == subject_type,
                    idempotency_keys.c.subject == subject,
                    idempotency_keys.c.key == key,
                )
            )

    async def record_failure(self, use: KeyUse, status: int, body: bytes) -> StoredAnswer | None:
        """Keep a failure answer of a ``records_key`` endpoint, in a transaction of its own."""
        try:
            async with self.db.begin() as conn:
                await record_in(conn, use, status, body, self._now_ms())
        except KeyTaken as taken:
            return taken.stored
        return None

    def now_ms(self) -> int:
        """The store's clock in Unix milliseconds (what :func:`record_in` takes)."""
        return self._now_ms()

    async def purge_expired(self) -> int:
        """Delete every expired key; returns how many."""
        async with self.db.begin() as conn:
            result = await conn.execute(delete(idempotency_keys).where(idempotency_keys.c.expires_ms <= self._now_ms()))
        return int(result.rowcount or 0)


def _in_progress() -> ApiError:
    return ApiError(
        "idempotency_in_progress",
        "A request with this Idempotency-Key is still running; retry shortly",
        headers={"Retry-After": "1"},
    )
