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

Listing uses ``SCAN`` over the space's data keys with a ``MATCH`` on the prefix, then keeps the live keys that
sort after the cursor's last key in code-point order: paging never skips or repeats a key that lives
throughout, whatever is written meanwhile. Its cost grows with the size of the space, like ``SCAN`` itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from dominus_local.stores.kv import INT64_MAX, INT64_MIN, Clock, Kind, KVEntry, KVStore, NotIntegerError, WrongTypeError

__all__ = ["RedisKVStore", "redact_redis_url"]

DEFAULT_PREFIX = "dominus:"
SCAN_COUNT = 1000

# Shared head of every script: KEYS[1] data key, KEYS[2] meta key, ARGV[1] now in ms.
# live() answers the kind ("string" / "hash") and the meta fields, or nil after dropping an expired key.
_LIVE = """
local now = tonumber(ARGV[1])
local function live()
  local meta = redis.call('GET', KEYS[2])
  if not meta then
    redis.call('DEL', KEYS[1])
    return nil
  end
  local sep = string.find(meta, ':', 1, true)
  local ttl = tonumber(string.sub(meta, 1, sep - 1))
  local exp = tonumber(string.sub(meta, sep + 1))
  if exp <= now then
    redis.call('DEL', KEYS[1], KEYS[2])
    return nil
  end
  local kind = redis.call('TYPE', KEYS[1])['ok']
  if kind ~= 'string' and kind ~= 'hash' then
    redis.call('DEL', KEYS[1], KEYS[2])
    return nil
  end
  return kind, ttl, exp
end
local function stamp(ttl, exp)
  local ms = exp - now
  redis.call('SET', KEYS[2], ttl .. ':' .. exp, 'PX', ms)
  redis.call('PEXPIRE', KEYS[1], ms)
end
"""

# ARGV[2] expected kind ('' for any), ARGV[3] '1' to nudge, ARGV[4] nudge TTL ('' for the written one).
_GET = (
    _LIVE
    + """
local kind, ttl, exp = live()
if not kind then return nil end
if ARGV[2] ~= '' and ARGV[2] ~= kind then return {'wrongtype', kind} end
if ARGV[3] == '1' then
  local seconds = ttl
  if ARGV[4] ~= '' then seconds = tonumber(ARGV[4]) end
  exp = now + 1000 * seconds
  stamp(ttl, exp)
end
local value
if kind == 'string' then value = redis.call('GET', KEYS[1]) else value = redis.call('HGETALL', KEYS[1]) end
return {kind, value, tostring(ttl), tostring(exp)}
"""
)

# ARGV[2] JSON value, ARGV[3] TTL seconds, ARGV[4] '1' for setnx.
_SET = (
    _LIVE
    + """
local kind = live()
if kind == 'hash' then return {'wrongtype', kind} end
if kind and ARGV[4] == '1' then return {'exists', redis.call('GET', KEYS[1])} end
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[2])
stamp(ttl, now + 1000 * ttl)
return {'ok'}
"""
)

# ARGV[2] delta, ARGV[3] TTL seconds for a new key. INCRBY keeps an existing key's expiry.
_INCR = (
    _LIVE
    + """
local kind = live()
if kind == 'hash' then return {'wrongtype', kind} end
if not kind then
  local ttl = tonumber(ARGV[3])
  redis.call('SET', KEYS[1], ARGV[2])
  stamp(ttl, now + 1000 * ttl)
  return {'ok', ARGV[2]}
end
local result = redis.pcall('INCRBY', KEYS[1], ARGV[2])
if type(result) == 'table' and result['err'] then
  if string.find(result['err'], 'overflow', 1, true) then return {'range'} end
  return {'notint'}
end
return {'ok', redis.call('GET', KEYS[1])}
"""
)

_DELETE = (
    _LIVE
    + """
local kind = live()
if not kind then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""
)

# ARGV[2] field, ARGV[3] JSON value, ARGV[4] TTL seconds.
_HSET = (
    _LIVE
    + """
local kind = live()
if kind == 'string' then return {'wrongtype', kind} end
local added = redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
local ttl = tonumber(ARGV[4])
stamp(ttl, now + 1000 * ttl)
return {'ok', added}
"""
)

# ARGV[2] field.
_HDEL = (
    _LIVE
    + """
local kind = live()
if not kind then return {'ok', 0} end
if kind == 'string' then return {'wrongtype', kind} end
local removed = redis.call('HDEL', KEYS[1], ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('DEL', KEYS[2]) end
return {'ok', removed}
"""
)

_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _kind(redis_type: Any) -> Kind:
    return "hash" if _text(redis_type) == "hash" else "value"


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
        self._display_url = redact_redis_url(url)

    def __repr__(self) -> str:
        return f"RedisKVStore({self._display_url!r})"

    def _keys(self, space: str, key: str) -> list[str]:
        return [f"{self.prefix}d/{space}/{key}", f"{self.prefix}m/{space}/{key}"]

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

    async def ping(self) -> None:
        """Raise when the Redis server does not answer."""
        await self._client.ping()

    async def get(
        self, space: str, key: str, *, expect: Kind | None = None, nudge: bool = False, nudge_ttl: int | None = None
    ) -> KVEntry | None:
        expected = {"value": "string", "hash": "hash", None: ""}[expect]
        ttl: str | int = "" if nudge_ttl is None else nudge_ttl
        args: list[str | int] = [self._now_ms(), expected, "1" if nudge else "0", ttl]
        reply = await self._get(keys=self._keys(space, key), args=args)
        if reply is None:
            return None
        self._raise_wrong(reply, key)
        return self._entry(reply)

    async def get_many(self, keys: Sequence[tuple[str, str]]) -> list[KVEntry | None]:
        now = self._now_ms()
        async with self._client.pipeline(transaction=False) as pipe:
            for space, key in keys:
                await self._get(keys=self._keys(space, key), args=[now, "", "0", ""], client=pipe)
            replies = await pipe.execute()
        return [None if reply is None else self._entry(reply) for reply in replies]

    async def set(self, space: str, key: str, value: Any, ttl: int) -> None:
        reply = await self._set(keys=self._keys(space, key), args=[self._now_ms(), self._dumps(value), ttl, "0"])
        self._raise_wrong(reply, key)

    async def setnx(self, space: str, key: str, value: Any, ttl: int) -> tuple[bool, Any]:
        reply = await self._set(keys=self._keys(space, key), args=[self._now_ms(), self._dumps(value), ttl, "1"])
        self._raise_wrong(reply, key)
        if _text(reply[0]) == "exists":
            return False, json.loads(reply[1])
        return True, None

    async def incr(self, space: str, key: str, delta: int, ttl: int) -> int:
        if not INT64_MIN <= delta <= INT64_MAX:
            raise NotIntegerError("the result is outside the 64-bit integer range")
        reply = await self._incr(keys=self._keys(space, key), args=[self._now_ms(), delta, ttl])
        self._raise_wrong(reply, key)
        status = _text(reply[0])
        if status == "range":
            raise NotIntegerError("the result is outside the 64-bit integer range")
        if status == "notint":
            raise NotIntegerError("the key does not hold an integer")
        return int(_text(reply[1]))

    async def delete(self, space: str, key: str) -> bool:
        return bool(await self._delete(keys=self._keys(space, key), args=[self._now_ms()]))

    async def hset(self, space: str, key: str, field: str, value: Any, ttl: int) -> bool:
        reply = await self._hset(keys=self._keys(space, key), args=[self._now_ms(), field, self._dumps(value), ttl])
        self._raise_wrong(reply, key)
        return bool(int(reply[1]))

    async def hdel(self, space: str, key: str, field: str) -> bool:
        reply = await self._hdel(keys=self._keys(space, key), args=[self._now_ms(), field])
        self._raise_wrong(reply, key)
        return bool(int(reply[1]))

    async def scan(self, space: str, *, prefix: str = "", after: str | None = None, limit: int = 100) -> list[str]:
        data_head = f"{self.prefix}d/{space}/"
        pattern = _GLOB_SPECIAL.sub(r"\\\1", data_head + prefix) + "*"
        candidates: set[str] = set()
        async for raw in self._client.scan_iter(match=pattern, count=SCAN_COUNT):
            key = _text(raw)[len(data_head) :]
            if key.startswith(prefix) and (after is None or key > after):
                candidates.add(key)
        if not candidates:
            return []
        ordered = sorted(candidates)
        now = self._now_ms()
        out: list[str] = []
        # Check expiry in batches, in order, until the page is full.
        for start in range(0, len(ordered), max(limit, 1)):
            batch = ordered[start : start + max(limit, 1)]
            metas = await self._client.mget([f"{self.prefix}m/{space}/{key}" for key in batch])
            for key, meta in zip(batch, metas, strict=True):
                if meta is not None and int(_text(meta).split(":", 1)[1]) > now:
                    out.append(key)
                    if len(out) == limit:
                        return out
        return out

    async def purge_expired(self) -> int:
        """Redis drops expired keys by itself; reads drop any whose recorded expiry has passed. Returns 0."""
        return 0

    async def flush(self) -> int:
        """Remove every key under this store's prefix (tests and resets); returns how many Redis keys went."""
        removed = 0
        pattern = _GLOB_SPECIAL.sub(r"\\\1", self.prefix) + "*"
        batch: list[Any] = []
        async for raw in self._client.scan_iter(match=pattern, count=SCAN_COUNT):
            batch.append(raw)
            if len(batch) >= SCAN_COUNT:
                removed += int(await self._client.delete(*batch))
                batch = []
        if batch:
            removed += int(await self._client.delete(*batch))
        return removed

    async def close(self) -> None:
        await self._client.aclose()
