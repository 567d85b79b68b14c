"""Whisperer's key-value store on Redis (``DOMINUS_LOCAL_CACHE_URL=redis://host:port/db``).

Each logical key is two Redis keys that live and die together:

* ``<prefix>d/<space>/<key>``: the data, a Redis string holding the JSON value (so a counter is a plain
  integer that ``INCRBY`` works on natively) or a Redis hash of field -> JSON value;
* ``<prefix>m/<space>/<key>``: ``"<ttl_seconds>:<expires_at_ms>"``, the TTL the key was last written with
  (for ``nudge``) and its expiry by the store's clock.

Spaces (project/environment/category) are key prefixes, and ``category`` never contains ``/``, so spaces
never overlap. Every operation that reads and then writes runs as one Lua script, so ``setnx``, ``incr``,
``hset`` and the rest are atomic across every process sharing the Redis server. Redis expires both keys by
itself (``PEXPIRE``); the scripts also treat a key whose recorded expiry has passed by the store's clock as
absent and drop it, which keeps expiry exact and lets tests drive it with an injected clock.

Listing reads a per-space index, the sorted set ``<prefix>i/<space>`` whose members are the space's logical
keys (all with score 0, so ``ZRANGE ... BYLEX`` walks them in UTF-8 byte order, which is code-point order).
The same Lua scripts maintain it: a script that writes a key adds it, ``delete``, ``hdel`` of the last field
and a script that finds the key expired remove it. A key that Redis expires by itself leaves its member
behind; ``scan`` checks every member against its meta key (one ``MGET`` per batch) and removes the dead ones
it meets, and :meth:`RedisKVStore.purge_expired` sweeps every index of the prefix. The store runs that sweep
in the background after ``PURGE_EVERY`` writes of its own, or after as many writes as the last sweep visited
members when that is more, so the sweeping costs at most about one member check per write and stale members
never outnumber the live ones by much. A member is only removed by a script that checks, atomically, that
its key is still dead, so a key written meanwhile keeps its member. ``scan`` pages with an exclusive lower
bound (the last member seen), never with an offset: paging never skips or repeats a key that lives
throughout, whatever is written or removed meanwhile, and a page costs in proportion to the members it
reads, not to the size of the space or of the Redis database.

Data written before the index existed is indexed once: the first ``scan`` of a store (or
:meth:`RedisKVStore.ensure_index`) finds the marker ``<prefix>index:v1`` absent, walks ``<prefix>d/*`` once
with ``SCAN``, adds every key to its space's index (``ZADD`` is idempotent, so processes building at the same
time do no harm) and sets the marker. Such a key's space is told from its name by Whisperer's shape
``project/environment/category`` (the first three ``/``-separated parts); with a project slug or an
environment that contains ``/``, a key written before the upgrade is listed only once it is written again.
Every process sharing the prefix should run this version before the marker is set: an older one writes keys
without indexing them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dominus_fastapi.core.wire as wire
from dominus_local.idempotency import RETENTION_SECONDS, KeyTaken, KeyUse, StoredAnswer
from dominus_local.stores.kv import (
    INT64_MAX,
    INT64_MIN,
    Clock,
    Keep,
    Kind,
    KVEntry,
    KVStore,
    NotIntegerError,
    WrongTypeError,
)

__all__ = ["RedisKVStore", "redact_redis_url"]

logger = logging.getLogger("dominus_local.whisperer")

DEFAULT_PREFIX = "dominus:"
SCAN_COUNT = 1000
INDEX_MARKER = "index:v1"
"""Key (after the prefix) whose presence says every data key of the prefix is in its space's index."""
LEGACY_SPACE_PARTS = 3
"""``/``-separated parts of a space when indexing keys written before the index existed (Whisperer's
``project/environment/category``)."""
LIST_BATCH_MIN = 32
"""Fewest index members ``scan`` reads per round trip (a page of 5 still reads 32, in case some are dead)."""

# Shared head of every script: KEYS[1] data key, KEYS[2] meta key, KEYS[3] the space's index; ARGV[1] now
# in ms, ARGV[2] the logical key (the index member).
# live() answers the kind ("string" / "hash") and the meta fields, or nil after dropping an expired key.
_LIVE = """
local now = tonumber(ARGV[1])
local function drop()
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[2])
end
local function live()
  local meta = redis.call('GET', KEYS[2])
  if not meta then
    drop()
    return nil
  end
  local sep = string.find(meta, ':', 1, true)
  local ttl = tonumber(string.sub(meta, 1, sep - 1))
  local exp = tonumber(string.sub(meta, sep + 1))
  if exp <= now then
    drop()
    return nil
  end
  local kind = redis.call('TYPE', KEYS[1])['ok']
  if kind ~= 'string' and kind ~= 'hash' then
    drop()
    return nil
  end
  return kind, ttl, exp
end
local function stamp(ttl, exp)
  local ms = exp - now
  redis.call('SET', KEYS[2], ttl .. ':' .. exp, 'PX', ms)
  redis.call('PEXPIRE', KEYS[1], ms)
  redis.call('ZADD', KEYS[3], 0, ARGV[2])
end
"""

# Shared by the write scripts: with KEYS[4], the write's idempotency record (see RedisKVStore._keep_args), the
# last six ARGV are the record's head ("<fingerprint>\n200\n"), its lifetime in ms, then for outcome 0 and for
# outcome 1 the answer's JSON text before and after the write's own value. recorded() answers a record already
# there (the script then writes nothing); keep(outcome, raw) records the answer of that outcome around ``raw``.
_KEEP = """
local function recorded()
  if KEYS[4] then return redis.call('GET', KEYS[4]) end
  return false
end
local function keep(outcome, raw)
  if not KEYS[4] then return end
  local r = #ARGV - 5
  local answer = ARGV[r + 2 + 2 * outcome] .. (raw or '') .. ARGV[r + 3 + 2 * outcome]
  redis.call('SET', KEYS[4], ARGV[r] .. answer, 'PX', ARGV[r + 1])
end
"""

# ARGV[3] expected kind ('' for any), ARGV[4] '1' to nudge, ARGV[5] nudge TTL ('' for the written one).
_GET = (
    _LIVE
    + """
local kind, ttl, exp = live()
if not kind then return nil end
if ARGV[3] ~= '' and ARGV[3] ~= kind then return {'wrongtype', kind} end
if ARGV[4] == '1' then
  local seconds = ttl
  if ARGV[5] ~= '' then seconds = tonumber(ARGV[5]) end
  exp = now + 1000 * seconds
  stamp(ttl, exp)
end
local value
if kind == 'string' then value = redis.call('GET', KEYS[1]) else value = redis.call('HGETALL', KEYS[1]) end
return {kind, value, tostring(ttl), tostring(exp)}
"""
)

# ARGV[3] JSON value, ARGV[4] TTL seconds, ARGV[5] '1' for setnx. Outcome 0: written; 1: setnx found the
# key (its value in the answer).
_SET = (
    _LIVE
    + _KEEP
    + """
local record = recorded()
if record then return {'taken', record} end
local kind = live()
if kind == 'hash' then return {'wrongtype', kind} end
if kind and ARGV[5] == '1' then
  local existing = redis.call('GET', KEYS[1])
  keep(1, existing)
  return {'exists', existing}
end
local ttl = tonumber(ARGV[4])
redis.call('SET', KEYS[1], ARGV[3])
stamp(ttl, now + 1000 * ttl)
keep(0)
return {'ok'}
"""
)

# ARGV[3] delta, ARGV[4] TTL seconds for a new key. INCRBY keeps an existing key's expiry.
_INCR = (
    _LIVE
    + _KEEP
    + """
local record = recorded()
if record then return {'taken', record} end
local kind = live()
if kind == 'hash' then return {'wrongtype', kind} end
if not kind then
  local ttl = tonumber(ARGV[4])
  redis.call('SET', KEYS[1], ARGV[3])
  stamp(ttl, now + 1000 * ttl)
  keep(0, ARGV[3])
  return {'ok', ARGV[3]}
end
local result = redis.pcall('INCRBY', KEYS[1], ARGV[3])
if type(result) == 'table' and result['err'] then
  if string.find(result['err'], 'overflow', 1, true) then return {'range'} end
  return {'notint'}
end
local value = redis.call('GET', KEYS[1])
keep(0, value)
return {'ok', value}
"""
)

# Outcome 0: nothing to delete; 1: deleted.
_DELETE = (
    _LIVE
    + _KEEP
    + """
local record = recorded()
if record then return {'taken', record} end
local kind = live()
if not kind then
  keep(0)
  return {'ok', 0}
end
drop()
keep(1)
return {'ok', 1}
"""
)

# ARGV[3] field, ARGV[4] JSON value, ARGV[5] TTL seconds. Outcome 0: the field was there; 1: it is new.
_HSET = (
    _LIVE
    + _KEEP
    + """
local record = recorded()
if record then return {'taken', record} end
local kind = live()
if kind == 'string' then return {'wrongtype', kind} end
local added = redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
local ttl = tonumber(ARGV[5])
stamp(ttl, now + 1000 * ttl)
keep(added)
return {'ok', added}
"""
)

# ARGV[3] field. Outcome 0: no such field; 1: removed.
_HDEL = (
    _LIVE
    + _KEEP
    + """
local record = recorded()
if record then return {'taken', record} end
local kind = live()
if not kind then
  keep(0)
  return {'ok', 0}
end
if kind == 'string' then return {'wrongtype', kind} end
local removed = redis.call('HDEL', KEYS[1], ARGV[3])
if redis.call('EXISTS', KEYS[1]) == 0 then drop() end
keep(removed)
return {'ok', removed}
"""
)

# Removes index members whose key is dead, checked again here so that a key written since the caller looked
# keeps its member. KEYS[1] the index, then a data key and a meta key per member; ARGV[1] now in ms, then
# the members. A key still present but expired by the store's clock is dropped as live() would. Returns how
# many members went.
_PRUNE = """
local now = tonumber(ARGV[1])
local removed = 0
for i = 2, #ARGV do
  local data, meta_key = KEYS[2 * i - 2], KEYS[2 * i - 1]
  local meta = redis.call('GET', meta_key)
  local dead = not meta
  if meta then
    local sep = string.find(meta, ':', 1, true)
    dead = tonumber(string.sub(meta, sep + 1)) <= now
  end
  if dead then
    redis.call('DEL', data, meta_key)
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return removed
"""

_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _kind(redis_type: Any) -> Kind:
    return "hash" if _text(redis_type) == "hash" else "value"


def _glob(literal: str) -> str:
    return _GLOB_SPECIAL.sub(r"\\\1", literal)


def _record_text(fingerprint: str, status: int, body: bytes) -> str:
    """An idempotency record as one Redis string: fingerprint, status and the framed (ASCII) body."""
    return f"{fingerprint}\n{status}\n{body.decode('ascii')}"


def _stored(record: Any) -> StoredAnswer:
    fingerprint, status, body = _text(record).split("\n", 2)
    if body.startswith("{"):
        # Written by a script as JSON text (the answer around a value only the script knew): framed here.
        return StoredAnswer(fingerprint, int(status), base64.b64encode(body.encode("utf-8")))
    return StoredAnswer(fingerprint, int(status), body.encode("ascii"))


_RAW = "dominus-local:raw-value:8d2c"
"""Stands for the value a script finds (a setnx's current value, a counter's new value) in an answer's
template: the JSON text around it is what the script writes around the value it knows."""


def _keep_args(keep: Keep, outcomes: Sequence[Any]) -> list[str | int]:
    """The last six ARGV of a write script with a record (see ``_KEEP``): the record's head, its lifetime,
    then the JSON text of the answer to each of the (at most two) ``outcomes`` of the write, split around
    :data:`_RAW` where the answer carries the script's value."""
    texts = [_around_raw(keep, result) for result in outcomes]
    # The script reads two outcomes' texts; a write with one outcome (set, incr) repeats it.
    return [f"{keep.use.fingerprint}\n200\n", RETENTION_SECONDS * 1000, *texts[0], *texts[-1]]


_QUOTED_RAW = json.dumps(_RAW)


def _around_raw(keep: Keep, result: Any) -> tuple[str, str]:
    text = wire.dumps(wire.success_envelope(keep.answer(result)))
    before, found, after = text.partition(_QUOTED_RAW)
    return (before, after) if found else (text, "")


def _alive(meta: Any, now_ms: int) -> bool:
    return meta is not None and int(_text(meta).split(":", 1)[1]) > now_ms


def redact_redis_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and ``dominus-local info``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


class RedisKVStore(KVStore):
    """Whisperer's entries on a Redis server, shared by every process that uses the same URL.

    ``url`` is a redis-py URL (``redis://[[user]:password@]host:port/db`` or ``rediss://`` for TLS); the
    optional query parameter ``key_prefix`` (default ``dominus:``) lets several deployments share one Redis
    database. ``clock`` gives the current Unix time; it decides expiry together with Redis's own timers.
    """

    PURGE_EVERY = 1000
    """Writes of this store between background sweeps of the indexes (at least; see the module docstring)."""

    def __init__(self, url: str, clock: Clock | None = None) -> None:
        super().__init__(clock)
        import redis.asyncio as aioredis

        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        self.prefix = dict(query).get("key_prefix", DEFAULT_PREFIX)
        rest = urlencode([(k, v) for k, v in query if k != "key_prefix"])
        self._client = aioredis.Redis.from_url(urlunsplit(parts._replace(query=rest)))
        self._get = self._client.register_script(_GET)
        self._set = self._client.register_script(_SET)
        self._incr = self._client.register_script(_INCR)
        self._delete = self._client.register_script(_DELETE)
        self._hset = self._client.register_script(_HSET)
        self._hdel = self._client.register_script(_HDEL)
        self._prune_script = self._client.register_script(_PRUNE)
        self._display_url = redact_redis_url(url)
        self._indexed = False
        self._index_lock = asyncio.Lock()
        self._writes = 0
        self._last_sweep = 0
        self._purging: asyncio.Task[int] | None = None

    def __repr__(self) -> str:
        return f"RedisKVStore({self._display_url!r})"

    def _keys(self, space: str, key: str) -> list[str]:
        return [f"{self.prefix}d/{space}/{key}", f"{self.prefix}m/{space}/{key}", self._index(space)]

    def _index(self, space: str) -> str:
        return f"{self.prefix}i/{space}"

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    @staticmethod
    def _dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    @staticmethod
    def _entry(reply: Sequence[Any]) -> KVEntry:
        kind = _kind(reply[0])
        if kind == "hash":
            flat = list(reply[1])
            value: Any = {_text(flat[i]): json.loads(flat[i + 1]) for i in range(0, len(flat), 2)}
        else:
            value = json.loads(reply[1])
        return KVEntry(kind, value, int(_text(reply[2])), int(_text(reply[3])) / 1000)

    @staticmethod
    def _raise_wrong(reply: Any, key: str) -> None:
        if isinstance(reply, list) and reply and _text(reply[0]) == "wrongtype":
            raise WrongTypeError(key, _kind(reply[1]))

    def _wrote(self) -> None:
        """Count a write; after enough of them, sweep the indexes in the background (one sweep at a time)."""
        self._writes += 1
        if self._writes < max(self.PURGE_EVERY, self._last_sweep):
            return
        if self._purging is not None and not self._purging.done():
            return
        self._writes = 0
        self._purging = asyncio.get_running_loop().create_task(self.purge_expired())
        self._purging.add_done_callback(self._purged)

    @staticmethod
    def _purged(task: asyncio.Task[int]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.warning("sweeping Whisperer's Redis indexes failed: %r", task.exception())

    async def ping(self) -> None:
        """Raise when the Redis server does not answer."""
        await self._client.ping()

    async def get(
        self, space: str, key: str, *, expect: Kind | None = None, nudge: bool = False, nudge_ttl: int | None = None
    ) -> KVEntry | None:
        expected = {"value": "string", "hash": "hash", None: ""}[expect]
        ttl: str | int = "" if nudge_ttl is None else nudge_ttl
        args: list[str | int] = [self._now_ms(), key, expected, "1" if nudge else "0", ttl]
        reply = await self._get(keys=self._keys(space, key), args=args)
        if reply is None:
            return None
        self._raise_wrong(reply, key)
        return self._entry(reply)

    async def get_many(self, keys: Sequence[tuple[str, str]]) -> list[KVEntry | None]:
        now = self._now_ms()
        async with self._client.pipeline(transaction=False) as pipe:
            for space, key in keys:
                await self._get(keys=self._keys(space, key), args=[now, key, "", "0", ""], client=pipe)
            replies = await pipe.execute()
        return [None if reply is None else self._entry(reply) for reply in replies]

    def _call_args(
        self, space: str, key: str, args: list[str | int], keep: Keep | None, outcomes: Sequence[Any]
    ) -> tuple[list[str], list[str | int]]:
        keys = self._keys(space, key)
        if keep is None:
            return keys, args
        return [*keys, self._record_key(keep.use)], [*args, *_keep_args(keep, outcomes)]

    @staticmethod
    def _answered(reply: Any, key: str) -> None:
        """Raise for a reply that is not the write's own: a recorded key, or a key of the other kind."""
        if isinstance(reply, list) and reply and _text(reply[0]) == "taken":
            raise KeyTaken(_stored(reply[1]))
        if isinstance(reply, list) and reply and _text(reply[0]) == "wrongtype":
            raise WrongTypeError(key, _kind(reply[1]))

    async def set(self, space: str, key: str, value: Any, ttl: int, *, keep: Keep | None = None) -> None:
        """One script call; with ``keep``, the key's record is checked and written by the same script."""
        keys, args = self._call_args(space, key, [self._now_ms(), key, self._dumps(value), ttl, "0"], keep, [None])
        reply = await self._set(keys=keys, args=args)
        self._answered(reply, key)
        if keep is not None:
            keep.record(None)
        self._wrote()

    def _record_key(self, use: KeyUse) -> str:
        return f"{self.prefix}k/{use.id}"

    async def record_failure(self, use: KeyUse, status: int, body: bytes) -> StoredAnswer | None:
        """Next to the records the write scripts keep: ``SET NX`` (and the record found, when another was
        first)."""
        name = self._record_key(use)
        text = _record_text(use.fingerprint, status, body)
        if await self._client.set(name, text, px=RETENTION_SECONDS * 1000, nx=True):
            return None
        found = await self._client.get(name)
        return None if found is None else _stored(found)

    async def setnx(self, space: str, key: str, value: Any, ttl: int, *, keep: Keep | None = None) -> tuple[bool, Any]:
        args: list[str | int] = [self._now_ms(), key, self._dumps(value), ttl, "1"]
        keys, args = self._call_args(space, key, args, keep, [(True, None), (False, _RAW)])
        reply = await self._set(keys=keys, args=args)
        self._answered(reply, key)
        result: tuple[bool, Any] = (False, json.loads(reply[1])) if _text(reply[0]) == "exists" else (True, None)
        if keep is not None:
            keep.record(result)
        if result[0]:
            self._wrote()
        return result

    async def incr(self, space: str, key: str, delta: int, ttl: int, *, keep: Keep | None = None) -> int:
        if not INT64_MIN <= delta <= INT64_MAX:
            raise NotIntegerError("the result is outside the 64-bit integer range")
        keys, args = self._call_args(space, key, [self._now_ms(), key, delta, ttl], keep, [_RAW])
        reply = await self._incr(keys=keys, args=args)
        self._answered(reply, key)
        status = _text(reply[0])
        if status == "range":
            raise NotIntegerError("the result is outside the 64-bit integer range")
        if status == "notint":
            raise NotIntegerError("the key does not hold an integer")
        value = int(_text(reply[1]))
        if keep is not None:
            keep.record(value)
        self._wrote()
        return value

    async def delete(self, space: str, key: str, *, keep: Keep | None = None) -> bool:
        keys, args = self._call_args(space, key, [self._now_ms(), key], keep, [False, True])
        reply = await self._delete(keys=keys, args=args)
        self._answered(reply, key)
        deleted = bool(int(reply[1]))
        if keep is not None:
            keep.record(deleted)
        self._wrote()
        return deleted

    async def hset(self, space: str, key: str, field: str, value: Any, ttl: int, *, keep: Keep | None = None) -> bool:
        args: list[str | int] = [self._now_ms(), key, field, self._dumps(value), ttl]
        keys, args = self._call_args(space, key, args, keep, [False, True])
        reply = await self._hset(keys=keys, args=args)
        self._answered(reply, key)
        added = bool(int(reply[1]))
        if keep is not None:
            keep.record(added)
        self._wrote()
        return added

    async def hdel(self, space: str, key: str, field: str, *, keep: Keep | None = None) -> bool:
        keys, args = self._call_args(space, key, [self._now_ms(), key, field], keep, [False, True])
        reply = await self._hdel(keys=keys, args=args)
        self._answered(reply, key)
        removed = bool(int(reply[1]))
        if keep is not None:
            keep.record(removed)
        self._wrote()
        return removed

    async def ensure_index(self) -> int:
        """Index the keys written before the per-space indexes existed, once per prefix (the marker
        ``<prefix>index:v1`` records it); returns how many members this call added (0 when already done)."""
        if self._indexed:
            return 0
        async with self._index_lock:
            if self._indexed:
                return 0
            marker = self.prefix + INDEX_MARKER
            added = 0
            if not await self._client.exists(marker):
                added = await self._build_index()
                await self._client.set(marker, "1")
            self._indexed = True
            return added

    async def _build_index(self) -> int:
        data_head = f"{self.prefix}d/"
        added = 0
        batch: list[tuple[str, str]] = []

        async def flush_batch() -> int:
            async with self._client.pipeline(transaction=False) as pipe:
                for space, member in batch:
                    pipe.zadd(self._index(space), {member: 0})
                replies = await pipe.execute()
            batch.clear()
            return sum(int(reply) for reply in replies)

        async for raw in self._client.scan_iter(match=_glob(data_head) + "*", count=SCAN_COUNT):
            parts = _text(raw)[len(data_head) :].split("/", LEGACY_SPACE_PARTS)
            if len(parts) <= LEGACY_SPACE_PARTS or not parts[-1]:
                continue  # not in Whisperer's shape: its space cannot be told from the name
            batch.append(("/".join(parts[:LEGACY_SPACE_PARTS]), parts[-1]))
            if len(batch) >= SCAN_COUNT:
                added += await flush_batch()
        if batch:
            added += await flush_batch()
        return added

    async def _prune(self, space: str, members: Sequence[str], now_ms: int) -> int:
        """Remove the members of ``space``'s index whose key is dead (checked again atomically)."""
        if not members:
            return 0
        keys = [self._index(space)]
        for member in members:
            keys += self._keys(space, member)[:2]
        return int(await self._prune_script(keys=keys, args=[now_ms, *members]))

    async def _live(self, space: str, members: Sequence[str], now_ms: int) -> list[bool]:
        metas = await self._client.mget([f"{self.prefix}m/{space}/{member}" for member in members])
        return [_alive(meta, now_ms) for meta in metas]

    async def scan(self, space: str, *, prefix: str = "", after: str | None = None, limit: int = 100) -> list[str]:
        if limit <= 0:
            return []
        await self.ensure_index()
        index = self._index(space)
        if after is not None and after >= prefix:
            start = b"(" + after.encode("utf-8")
        else:
            start = b"[" + prefix.encode("utf-8") if prefix else b"-"
        # UTF-8 never contains the byte 0xff, so every key that starts with the prefix sorts before this bound.
        end = b"[" + prefix.encode("utf-8") + b"\xff" if prefix else b"+"
        batch_size = min(max(limit, LIST_BATCH_MIN), SCAN_COUNT)
        now = self._now_ms()
        out: list[str] = []
        while True:
            raw = await self._client.zrange(index, start, end, bylex=True, offset=0, num=batch_size)
            members = [_text(member) for member in raw]
            if not members:
                return out
            dead: list[str] = []
            for member, alive in zip(members, await self._live(space, members, now), strict=True):
                if not alive:
                    dead.append(member)
                elif len(out) < limit:
                    out.append(member)
            await self._prune(space, dead, now)
            if len(out) >= limit or len(members) < batch_size:
                return out
            # The next batch starts after the last member read: a bound, not an offset, so members added or
            # removed meanwhile shift nothing.
            start = b"(" + members[-1].encode("utf-8")

    async def purge_expired(self) -> int:
        """Sweep every index of the prefix: remove the members whose key Redis expired or that are expired by
        the store's clock (dropping such keys too). Returns how many members went."""
        head = f"{self.prefix}i/"
        removed = visited = 0
        async for raw_index in self._client.scan_iter(match=_glob(head) + "*", count=SCAN_COUNT):
            index = _text(raw_index)
            space = index[len(head) :]
            members: list[str] = []
            async for raw_member, _score in self._client.zscan_iter(index, count=SCAN_COUNT):
                members.append(_text(raw_member))
                if len(members) >= SCAN_COUNT:
                    removed += await self._sweep(space, members)
                    visited += len(members)
                    members = []
            if members:
                removed += await self._sweep(space, members)
                visited += len(members)
        self._last_sweep = visited - removed
        return removed

    async def _sweep(self, space: str, members: Sequence[str]) -> int:
        now = self._now_ms()
        alive = await self._live(space, members, now)
        return await self._prune(space, [m for m, ok in zip(members, alive, strict=True) if not ok], now)

    async def flush(self) -> int:
        """Remove every key under this store's prefix, indexes and marker included (tests and resets);
        returns how many Redis keys went."""
        removed = 0
        batch: list[Any] = []
        async for raw in self._client.scan_iter(match=_glob(self.prefix) + "*", count=SCAN_COUNT):
            batch.append(raw)
            if len(batch) >= SCAN_COUNT:
                removed += int(await self._client.delete(*batch))
                batch = []
        if batch:
            removed += int(await self._client.delete(*batch))
        self._indexed = False
        return removed

    async def close(self) -> None:
        """Stop a background sweep (each of its steps is atomic, so nothing is left half done) and close
        the connections."""
        if self._purging is not None and not self._purging.done():
            self._purging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purging
        await self._client.aclose()
