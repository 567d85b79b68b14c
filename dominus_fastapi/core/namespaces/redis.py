"""Whisperer cache, locks, counters and hashes (spec 7.4).

The SDK's ``key`` becomes ``logical_path`` and ``ttl`` becomes ``ttl_seconds``. TTL bounds (60 to 86400
seconds), key names, categories and the ``mget`` key count are checked before anything is sent, so a bad
argument raises :class:`~dominus_fastapi.core.errors.ValidationError` without a round trip.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from dominus_fastapi.core.errors import ValidationError
from dominus_fastapi.core.namespaces.base import Namespace

__all__ = [
    "MAX_LIST_LIMIT",
    "MAX_MGET_KEYS",
    "TTL_MAX",
    "TTL_MIN",
    "CacheEntry",
    "CacheHash",
    "CacheKeys",
    "CacheStored",
    "RedisNamespace",
    "SetnxResult",
]

PREFIX = "/api/whisperer"
TTL_MIN, TTL_MAX = 60, 86400
MAX_KEY = 512
MAX_FIELD = 256
MAX_LIST_LIMIT = 500
MAX_MGET_KEYS = 100
CATEGORY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class CacheStored(TypedDict):
    key: str
    stored: bool
    ttl_seconds: int


class CacheEntry(TypedDict):
    found: bool
    value: Any
    ttl_remaining: int | None


class CacheKeys(TypedDict):
    keys: list[str]
    cursor: str | None
    count: int


class CacheHash(TypedDict):
    found: bool
    fields: dict[str, Any]


class SetnxResult(dict[str, Any]):
    """The answer of ``setnx``: a plain dict with ``acquired`` and ``existing`` whose truth value is
    ``acquired``, so ``if await dominus.redis.setnx(...):`` reads as "if I got the lock"."""

    @property
    def acquired(self) -> bool:
        """Whether this call stored the value (got the lock)."""
        return bool(self.get("acquired"))

    @property
    def existing(self) -> Any:
        """The value already stored under the key when this call did not acquire it, else ``None``."""
        return self.get("existing")

    def __bool__(self) -> bool:
        return self.acquired


def _fail(path: str, field: str, reason: str) -> ValidationError:
    return ValidationError(
        f"Invalid argument '{field}': {reason}", details={"field": field, "reason": reason}, endpoint=path
    )


def _check_key(path: str, key: Any, field: str = "key") -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY:
        raise _fail(path, field, f"must be a string of 1 to {MAX_KEY} characters")
    if _CONTROL.search(key):
        raise _fail(path, field, "must not contain control characters")
    return key


def _check_ttl(path: str, ttl: Any, field: str = "ttl") -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not TTL_MIN <= ttl <= TTL_MAX:
        raise _fail(path, field, f"must be an integer number of seconds from {TTL_MIN} to {TTL_MAX}")
    return ttl


def _check_category(path: str, category: Any, field: str = "category") -> None:
    if category is not None and (not isinstance(category, str) or not CATEGORY.match(category)):
        raise _fail(path, field, "must be 1 to 64 characters from A-Z a-z 0-9 _ . : -")


def _check_field(path: str, field: Any) -> str:
    if not isinstance(field, str) or not 1 <= len(field) <= MAX_FIELD:
        raise _fail(path, "field", f"must be a string of 1 to {MAX_FIELD} characters")
    return field


def _with_category(body: dict[str, Any], category: str | None) -> dict[str, Any]:
    if category is not None:
        body["category"] = category
    return body


class RedisNamespace(Namespace):
    """Whisperer cache, locks, counters and hashes (spec 7.4): ``client.redis``.

    The parameters shared by its methods:

    - ``key``: the key's name, 1 to 512 characters without control characters (the wire's ``logical_path``).
    - ``category``: a separate key space, 1 to 64 characters from ``A-Z a-z 0-9 _ . : -``; ``None`` is the
      ``default`` category.
    - ``ttl``: seconds until the key expires, 60 to 86400; every key has one.

    They are checked before sending: a bad one raises ``ValidationError`` naming it, without a round trip. A
    value larger than 1 MiB once serialised is refused by the server (413, ``ValidationError``).

    Every method also takes, keyword only, ``timeout`` (seconds one attempt may take; default: the client's
    ``timeout``, ``DOMINUS_TIMEOUT``) and ``max_retries`` (how many more attempts a failure that is safe to
    repeat gets; default: the client's ``max_retries``, ``0`` for none). The calls that would not be harmless
    to repeat take ``idempotency_key`` too: the server carries out a key once (spec 3.5); when it is left out,
    the client makes one for the call, so that its own retries never repeat the change. Any call may also raise
    the transport errors (``DominusConnectionError``, ``DominusTimeoutError``, ``ServiceError``,
    ``RateLimitError``) once its retries are spent.
    """

    async def _call(
        self,
        op: str,
        body: dict[str, Any],
        *,
        safe: bool,
        timeout: float | None,
        max_retries: int | None,
        idempotency_key: str | None = None,
    ) -> Any:
        return await self._client.request(
            "POST",
            f"{PREFIX}/{op}",
            body=body,
            safe=safe,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )

    async def set(
        self,
        key: str,
        value: Any,
        ttl: int = 3600,
        category: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> CacheStored:
        """Store any JSON ``value`` (at most 1 MiB serialised) under ``key`` for ``ttl`` seconds."""
        path = f"{PREFIX}/set"
        _check_key(path, key)
        _check_ttl(path, ttl)
        _check_category(path, category)
        body = _with_category({"logical_path": key, "value": value, "ttl_seconds": ttl}, category)
        data: CacheStored = await self._call(
            "set", body, safe=False, timeout=timeout, max_retries=max_retries, idempotency_key=idempotency_key
        )
        return data

    async def get(
        self,
        key: str,
        category: str | None = None,
        nudge: bool = False,
        ttl: int | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> CacheEntry:
        """``{found, value, ttl_remaining}``. With ``nudge=True`` a found key's expiry is reset, to ``ttl``
        seconds when given, else to the TTL it was written with; ``ttl`` is sent only with ``nudge``."""
        path = f"{PREFIX}/get"
        _check_key(path, key)
        _check_category(path, category)
        body: dict[str, Any] = {"logical_path": key, "nudge": bool(nudge)}
        if nudge and ttl is not None:
            body["ttl_seconds"] = _check_ttl(path, ttl)
        data: CacheEntry = await self._call(
            "get", _with_category(body, category), safe=True, timeout=timeout, max_retries=max_retries
        )
        return data

    async def delete(
        self,
        key: str,
        category: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Remove a key (plain or hash): ``{deleted}``, false when it did not exist."""
        path = f"{PREFIX}/delete"
        _check_key(path, key)
        _check_category(path, category)
        data: dict[str, Any] = await self._call(
            "delete",
            _with_category({"logical_path": key}, category),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return data

    async def list(
        self,
        prefix: str | None = None,
        category: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> CacheKeys:
        """One page of keys in lexicographic order: ``{keys, cursor, count}``.

        Args:
            prefix: Only keys starting with this plain string; ``None``: every key.
            category: The key space to list; ``None``: the ``default`` category.
            limit: At most this many keys; a ``limit`` above 500 is lowered to 500.
            cursor: The ``cursor`` of the previous page, for the next one (``None`` in the answer: no more pages).
        """
        path = f"{PREFIX}/list"
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise _fail(path, "limit", "must be a positive integer")
        _check_category(path, category)
        body: dict[str, Any] = {"limit": min(limit, MAX_LIST_LIMIT)}
        if prefix is not None:
            body["logical_prefix"] = prefix
        if cursor is not None:
            body["cursor"] = cursor
        data: CacheKeys = await self._call(
            "list", _with_category(body, category), safe=True, timeout=timeout, max_retries=max_retries
        )
        return data

    async def mget(
        self,
        keys: Sequence[str | Mapping[str, Any]],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> dict[str, Any]:
        """Up to 100 plain values at once: ``{results: [{logical_path, category, found, value}, ...]}`` in the
        order asked. Each key is a ``{"logical_path", "category"?}`` mapping, or a bare key string for the
        ``default`` category. More than 100 keys raise ``ValidationError`` (nothing is truncated); an empty
        list answers ``{"results": []}`` without a request."""
        path = f"{PREFIX}/mget"
        if isinstance(keys, (str, bytes)) or not isinstance(keys, Sequence):
            raise _fail(path, "keys", "must be a list of keys")
        if len(keys) > MAX_MGET_KEYS:
            raise _fail(path, "keys", f"must have at most {MAX_MGET_KEYS} items, got {len(keys)}")
        if not keys:
            return {"results": []}
        items: builtins.list[dict[str, Any]] = []
        for index, item in enumerate(keys):
            if isinstance(item, str):
                items.append({"logical_path": _check_key(path, item, f"keys[{index}]")})
                continue
            if not isinstance(item, Mapping):
                raise _fail(path, f"keys[{index}]", "must be a key string or a {logical_path, category} mapping")
            entry = {"logical_path": _check_key(path, item.get("logical_path"), f"keys[{index}].logical_path")}
            if item.get("category") is not None:
                _check_category(path, item["category"], f"keys[{index}].category")
                entry["category"] = item["category"]
            items.append(entry)
        data: dict[str, Any] = await self._call(
            "mget", {"keys": items}, safe=True, timeout=timeout, max_retries=max_retries
        )
        return data

    async def setnx(
        self,
        key: str,
        value: Any,
        ttl: int = 60,
        category: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> SetnxResult:
        """Store ``value`` only if ``key`` is absent (atomic; the lock primitive). The result is truthy
        exactly when this call acquired the key; ``existing`` holds the current value otherwise."""
        path = f"{PREFIX}/setnx"
        _check_key(path, key)
        _check_ttl(path, ttl)
        _check_category(path, category)
        body = _with_category({"logical_path": key, "value": value, "ttl_seconds": ttl}, category)
        data = await self._call(
            "setnx", body, safe=False, timeout=timeout, max_retries=max_retries, idempotency_key=idempotency_key
        )
        return SetnxResult(data)

    async def incr(
        self,
        key: str,
        delta: int = 1,
        ttl: int = 3600,
        category: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Add the integer ``delta`` (may be negative) to a counter: ``{value}``. A missing key starts at 0 and
        gets ``ttl``; an existing one keeps its expiry."""
        path = f"{PREFIX}/incr"
        _check_key(path, key)
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise _fail(path, "delta", "must be an integer")
        _check_ttl(path, ttl)
        _check_category(path, category)
        body = _with_category({"logical_path": key, "delta": delta, "ttl_seconds": ttl}, category)
        data: dict[str, Any] = await self._call(
            "incr", body, safe=False, timeout=timeout, max_retries=max_retries, idempotency_key=idempotency_key
        )
        return data

    async def hset(
        self,
        key: str,
        field: str,
        value: Any,
        ttl: int = 3600,
        category: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Set one field of a hash: ``{set}``, true when the field is new. The whole hash's expiry is reset
        to ``ttl``."""
        path = f"{PREFIX}/hset"
        _check_key(path, key)
        _check_field(path, field)
        _check_ttl(path, ttl)
        _check_category(path, category)
        body = _with_category(
            {"logical_path": key, "field": field, "value": value, "ttl_seconds": ttl}, category
        )
        data: dict[str, Any] = await self._call(
            "hset", body, safe=False, timeout=timeout, max_retries=max_retries, idempotency_key=idempotency_key
        )
        return data

    async def hget(
        self,
        key: str,
        field: str,
        category: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> dict[str, Any]:
        """One field of a hash: ``{found, value}``."""
        path = f"{PREFIX}/hget"
        _check_key(path, key)
        _check_field(path, field)
        _check_category(path, category)
        data: dict[str, Any] = await self._call(
            "hget",
            _with_category({"logical_path": key, "field": field}, category),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return data

    async def hgetall(
        self,
        key: str,
        category: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> CacheHash:
        """Every field of a hash: ``{found, fields}``."""
        path = f"{PREFIX}/hgetall"
        _check_key(path, key)
        _check_category(path, category)
        data: CacheHash = await self._call(
            "hgetall",
            _with_category({"logical_path": key}, category),
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return data

    async def hdel(
        self,
        key: str,
        field: str,
        category: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Remove one field of a hash: ``{deleted}``. Removing the last field removes the key."""
        path = f"{PREFIX}/hdel"
        _check_key(path, key)
        _check_field(path, field)
        _check_category(path, category)
        data: dict[str, Any] = await self._call(
            "hdel",
            _with_category({"logical_path": key, "field": field}, category),
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return data
