"""The idempotency-key store (spec 6.3), kept in the database so that it survives restarts and is shared by
every process on one PostgreSQL database.

A key is scoped to the subject ``(subject_type, sub)``. :meth:`IdempotencyStore.claim` records an unknown key
as in progress, replays a finished one, and refuses a running one (409 ``idempotency_in_progress``) or one
first used for another request (422 ``idempotency_key_reused``). :meth:`IdempotencyStore.finish` keeps an
answer below 500 for 24 hours; :meth:`IdempotencyStore.forget` drops the key after a 5xx or a crash so that a
retry runs afresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Integer, String, Table, Text, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from dominus_local.errors import ApiError, invalid
from dominus_local.stores.database import Database, metadata

__all__ = ["HEADER", "IN_PROGRESS_LEASE_SECONDS", "RETENTION_SECONDS", "IdempotencyStore", "Replay", "check_key"]

HEADER = "idempotency-key"
RETENTION_SECONDS = 24 * 3600
"""How long a finished answer is kept."""
IN_PROGRESS_LEASE_SECONDS = 300
"""A key still marked in progress after this long belongs to a process that died; a retry may take it over."""

idempotency_keys = Table(
    "dispatch_idempotency_keys",
    metadata,
    Column("subject_type", String(16), primary_key=True),
    Column("subject", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status", Integer, nullable=True),  # NULL while the request runs
    Column("body", Text, nullable=True),
    Column("started_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False, index=True),
)


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
