"""The change feed: every process sharing a PostgreSQL database hears at once when a subject or a session stops
being active, so each can answer the token checks of spec 5.5 steps 4-5 from memory
(:class:`~dominus_local.identity.ActiveCache`) instead of asking the database on every request.

Two transports, chosen by :func:`feed_for`:

* **Redis** (when ``DOMINUS_LOCAL_CACHE_URL`` is set): after a process commits a write that may end access
  (:func:`~dominus_local.identity.may_end_access`), and before its request answers, it publishes ``*`` on the
  channel ``<key_prefix>identity``; every process subscribed there empties its memo.
* **PostgreSQL LISTEN/NOTIFY** (otherwise): triggers on the users, clients and sessions tables
  (:func:`install_triggers`) send ``user:<id>``, ``client:<id>`` or ``session:<id>`` on the channel
  ``dominus_identity`` whenever a status changes, a session is revoked or shortened, or a row is deleted. The
  notification is part of the writing transaction: it is sent exactly when the change commits, and it covers
  writes made with plain SQL too. Each process forgets just that subject or session.

**The bound.** A process trusts its memo only while its feed answers a heartbeat (every
:data:`HEARTBEAT_SECONDS`); each answer extends the trust to :data:`STALE_SECONDS` after the heartbeat was sent.
So a revocation made through any process is refused

* by that process at once (its own writes empty its memo synchronously, see ``ActiveCache``);
* by every other process as soon as the announcement arrives (a round trip to Redis or PostgreSQL: typically
  a millisecond or less), and in any case within :data:`STALE_SECONDS` (1 s): a feed that breaks, even without
  the connection closing, stops being trusted by then, and every check goes to the database until the feed is
  back; reconnecting empties the memo, since announcements may have been missed meanwhile.

Two cases fall back to the memo's max age,
:data:`~dominus_local.identity.SHARED_ACTIVE_CACHE_SECONDS` (5 s): a write made with plain SQL (outside
``dominus_local``) while the feed is Redis, and a publication that fails while the other processes' feed
stays healthy (it is retried in the background for that long, after which no answer from before it is left).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dominus_local.identity import SHARED_ACTIVE_CACHE_SECONDS, ActiveCache, clients, sessions, users
from dominus_local.stores.database import Database

__all__ = [
    "FEED_APPLICATION_NAME",
    "HEARTBEAT_SECONDS", "PG_CHANNEL", "STALE_SECONDS", "ChangeFeed", "feed_for", "install_triggers"]

logger = logging.getLogger("dominus_local.revocation")

HEARTBEAT_SECONDS = 0.25
"""How often a feed checks its connection with a round trip."""
STALE_SECONDS = 1.0
"""How long after a heartbeat was sent its answer lets the memo be used: the documented bound on how late
another process may still accept a revoked session or an inactive subject."""
CONNECT_TIMEOUT_SECONDS = 5.0
RECONNECT_MAX_SECONDS = 2.0
PUBLISH_TIMEOUT_SECONDS = 1.0
STOP_SECONDS = 2.0
"""How long stopping waits for the listening task (it ends within one wait step once told to stop)."""
WAIT_STEP_SECONDS = 0.1
"""Longest single wait for a Redis message, so that a stop is noticed even if a cancellation is swallowed."""
PG_CHANNEL = "dominus_identity"
FEED_APPLICATION_NAME = "dominus-local change feed"

_TRIGGER = "dominus_identity_changed_v1"
_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NOT (
    to_jsonb(NEW) -> TG_ARGV[1] IS DISTINCT FROM to_jsonb(OLD) -> TG_ARGV[1]
    OR (TG_ARGV[2] <> '' AND (to_jsonb(NEW) ->> TG_ARGV[2])::timestamptz < (to_jsonb(OLD) ->> TG_ARGV[2])::timestamptz)
  ) THEN
    RETURN NULL;
  END IF;
  PERFORM pg_notify('{PG_CHANNEL}', TG_ARGV[0] || ':' || OLD.id);
  RETURN NULL;
END
$$
"""
# (table, payload kind, column whose change ends access, column whose decrease ends access)
_WATCHED: tuple[tuple[str, str, str, str], ...] = (
    (users.name, "user", "status", ""),
    (clients.name, "client", "status", ""),
    (sessions.name, "session", "revoked_at", "expires_at"),
)


async def install_triggers(db: Database) -> None:
    """Create the PostgreSQL triggers that announce identity changes, when missing (hold the startup lock)."""
    async with db.begin() as conn:
        await conn.exec_driver_sql(_FUNCTION)
        for table, kind, column, shortened in _WATCHED:
            found = await conn.execute(
                text("SELECT 1 FROM pg_trigger WHERE tgname = :name AND tgrelid = CAST(:table AS regclass)"),
                {"name": _TRIGGER, "table": table},
            )
            if found.first() is not None:
                continue
            columns = ", ".join(c for c in (column, shortened) if c)
            await conn.exec_driver_sql(
                f"CREATE TRIGGER {_TRIGGER} AFTER UPDATE OF {columns} OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {_TRIGGER}('{kind}', '{column}', '{shortened}')"
            )


class ChangeFeed(abc.ABC):
    """Keeps an :class:`~dominus_local.identity.ActiveCache` in step with the other processes (see the module
    docstring): a background task connects, listens, heartbeats and reconnects with backoff."""

    def __init__(self, cache: ActiveCache, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.cache = cache
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._down_logged = False
        self._stopping = False

    async def start(self) -> None:
        """Start listening in the background; the memo stays off until the first heartbeat answers."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"dominus-{type(self).__name__}")

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            task.cancel()
            # A client library may swallow the cancellation while it waits for an answer; the loops also watch
            # ``_stopping`` and wait in short steps, so the task ends soon either way.
            await asyncio.wait({task}, timeout=STOP_SECONDS)
            if task.done() and not task.cancelled():
                with contextlib.suppress(Exception):
                    task.result()
        self.cache.distrust()

    async def _run(self) -> None:
        delay = 0.05
        while not self._stopping:
            try:
                await self._connect()
                # Whatever was announced before the subscription is unknown: start from an empty memo.
                self.cache.invalidate()
                delay = 0.05
                await self._serve()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.cache.distrust()
                if not self._down_logged:
                    # Until it is back, every token check asks the database: slower, never wrong.
                    logger.warning("identity change feed (%s) is down: %s", self.describe(), type(exc).__name__)
                    self._down_logged = True
            finally:
                self.cache.distrust()
                with contextlib.suppress(Exception):
                    await self._disconnect()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    def _answered(self, sent: float) -> None:
        """A heartbeat sent at ``sent`` was answered: the memo may be used until ``sent + STALE_SECONDS``."""
        self.cache.trust(sent + STALE_SECONDS)
        if self._down_logged:
            logger.warning("identity change feed (%s) is back", self.describe())
            self._down_logged = False

    @abc.abstractmethod
    def describe(self) -> str:
        """The transport, for logs (no password)."""

    @abc.abstractmethod
    async def _connect(self) -> None:
        """Open the connection and subscribe; announcements heard from now on reach the memo."""

    @abc.abstractmethod
    async def _serve(self) -> None:
        """Hear announcements and send a heartbeat every :data:`HEARTBEAT_SECONDS` (calling :meth:`_answered`
        for each answer) until the connection breaks: then raise."""

    @abc.abstractmethod
    async def _disconnect(self) -> None:
        """Close the connection (also after a failure)."""


class PostgresChangeFeed(ChangeFeed):
    """LISTEN on :data:`PG_CHANNEL` over a connection of its own (not one of the pool's), fed by the triggers of
    :func:`install_triggers`."""

    def __init__(self, engine: AsyncEngine, cache: ActiveCache, *, clock: Callable[[], float] = time.monotonic):
        super().__init__(cache, clock=clock)
        # The same connection arguments as the engine's own connections (host, TLS, credentials).
        _, self._connect_args = engine.dialect.create_connect_args(engine.url)
        self._conn: Any = None

    def describe(self) -> str:
        return f"PostgreSQL LISTEN {PG_CHANNEL}"

    async def _connect(self) -> None:
        import asyncpg  # type: ignore[import-untyped,unused-ignore]

        args = dict(self._connect_args)
        # Named, so that an operator (or a test) can tell the listening connection apart in pg_stat_activity.
        args["server_settings"] = {**args.get("server_settings", {}), "application_name": FEED_APPLICATION_NAME}
        self._conn = await asyncpg.connect(**args, timeout=CONNECT_TIMEOUT_SECONDS)
        self._conn.add_termination_listener(self._terminated)
        await self._conn.add_listener(PG_CHANNEL, self._notified)

    async def _serve(self) -> None:
        # asyncpg hands notifications to _notified as they arrive, between heartbeats too.
        while True:
            sent = self.clock()
            await self._conn.fetchval("SELECT 1", timeout=STALE_SECONDS)
            self._answered(sent)
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    def _terminated(self, conn: Any) -> None:
        if conn is self._conn:
            self.cache.distrust()

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        kind, _, ident = payload.partition(":")
        if kind in ("user", "client") and ident:
            self.cache.forget_subject(kind, ident)
        elif kind == "session" and ident:
            self.cache.forget_session(ident)
        else:
            self.cache.invalidate()


def _split_redis_url(url: str) -> tuple[str, str]:
    """``(url without key_prefix, key prefix)``, as the Redis key-value store reads them."""
    from dominus_local.stores.kv_redis import DEFAULT_PREFIX

    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = dict(query).get("key_prefix", DEFAULT_PREFIX)
    rest = urlencode([(k, v) for k, v in query if k != "key_prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


class RedisChangeFeed(ChangeFeed):
    """SUBSCRIBE to ``<key_prefix>identity``; this process publishes there after each write that may end
    access (``ActiveCache.announce``)."""

    def __init__(self, url: str, cache: ActiveCache, *, clock: Callable[[], float] = time.monotonic) -> None:
        import redis.asyncio as aioredis

        from dominus_local.stores.kv_redis import redact_redis_url

        super().__init__(cache, clock=clock)
        plain, prefix = _split_redis_url(url)
        self.channel = f"{prefix}identity"
        self._display = redact_redis_url(url)
        self._client = aioredis.Redis.from_url(plain, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS)
        self._pubsub: Any = None
        self._retry: asyncio.Task[None] | None = None
        cache.announce = self.announce

    def describe(self) -> str:
        return f"Redis SUBSCRIBE {self.channel} at {self._display}"

    async def _connect(self) -> None:
        self._pubsub = self._client.pubsub()
        await self._pubsub.subscribe(**{self.channel: self._heard})
        # Announcements published before the subscription is confirmed are not heard: wait for it.
        await self._read_until("subscribe", self.clock() + CONNECT_TIMEOUT_SECONDS)

    async def _serve(self) -> None:
        # One reader: channel messages go to _heard as they are read, pongs come back here.
        while True:
            sent = self.clock()
            await self._pubsub.ping()
            await self._read_until("pong", sent + STALE_SECONDS)
            self._answered(sent)
            while not self._stopping and (left := sent + HEARTBEAT_SECONDS - self.clock()) > 0:
                await self._pubsub.get_message(timeout=min(left, WAIT_STEP_SECONDS))

    async def _read_until(self, kind: str, deadline: float) -> None:
        while not self._stopping and (left := deadline - self.clock()) > 0:
            message = await self._pubsub.get_message(timeout=min(left, WAIT_STEP_SECONDS))
            if message is not None and message.get("type") == kind:
                return
        raise TimeoutError(f"no {kind} from Redis")

    async def _disconnect(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            await pubsub.aclose()

    def _heard(self, message: Any) -> None:
        self.cache.invalidate()

    async def announce(self) -> None:
        """Tell every process that a write that may end access has committed (before the request answers)."""
        try:
            await asyncio.wait_for(self._client.publish(self.channel, "*"), PUBLISH_TIMEOUT_SECONDS)
        except Exception as exc:
            logger.warning("could not announce an identity change on %s: %s", self._display, type(exc).__name__)
            if self._retry is None or self._retry.done():
                self._retry = asyncio.get_running_loop().create_task(self._republish())

    async def _republish(self) -> None:
        # After the memo's max age no process holds an answer from before the change: no need to go on.
        deadline = self.clock() + SHARED_ACTIVE_CACHE_SECONDS
        while self.clock() < deadline:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.publish(self.channel, "*"), PUBLISH_TIMEOUT_SECONDS)
                return

    async def stop(self) -> None:
        await super().stop()
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
        await self._client.aclose()


def feed_for(db: Database, cache_url: str | None, cache: ActiveCache) -> ChangeFeed:
    """The feed of a server on PostgreSQL: Redis when a cache URL is configured, else LISTEN/NOTIFY."""
    if cache_url:
        return RedisChangeFeed(cache_url, cache)
    return PostgresChangeFeed(db.engine, cache)
