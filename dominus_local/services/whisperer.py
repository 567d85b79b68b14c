"""Whisperer: cache, locks, counters and hashes with a TTL on every key (spec 7.4, 8.4).

Keys belong to the token's project and environment; inside that, each category (``default`` when absent) is
a separate key space. The entries live in a :class:`~dominus_local.stores.kv.KVStore`, built at start and
kept in ``state.extras["whisperer"]``: Redis when a cache URL is configured, else the database's table, or a
dictionary of the process when the instance keeps nothing on disk (no data directory, no database URL).

Where the spec is silent: ``value: null`` is refused like an absent value (spec 1.4), so a stored value is
never null; ``set`` and ``setnx`` on a hash, and ``mget`` naming a hash, are 422 like every other plain
operation, while ``delete`` removes a key of either kind; counters hold JSON integers within the signed
64-bit range (422 beyond it); a nudge with ``ttl_seconds`` sets the expiry only, so a later nudge without it
goes back to the TTL the key was last written with.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any

from dominus_local.errors import ApiError, invalid, too_large, unprocessable
from dominus_local.routing import Principal, RequestContext, ServiceRouter
from dominus_local.services import health
from dominus_local.state import LocalState
from dominus_local.stores.kv import (
    INT64_MAX,
    INT64_MIN,
    Keep,
    KVEntry,
    KVStore,
    MemoryKVStore,
    NotIntegerError,
    SqlKVStore,
    WrongTypeError,
)
from dominus_local.validate import Fields

router = ServiceRouter("whisperer")

CATEGORY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
DEFAULT_CATEGORY = "default"
TTL_MIN, TTL_MAX = 60, 86400
MAX_PATH = 512
MAX_FIELD = 256
MAX_VALUE_BYTES = 1024 * 1024
MAX_LIST_LIMIT = 500
MAX_MGET_KEYS = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def kv_store(state: LocalState) -> KVStore:
    """The running instance's key-value store."""
    store: KVStore = state.extras["whisperer"]
    return store


@router.on_startup
async def _start(state: LocalState) -> None:
    # The app's injectable Unix clock, when there is one, so tests drive expiry with one fake clock.
    clock = getattr(state.extras.get("app"), "wall_clock", None)
    store: KVStore
    if state.settings.cache_url:
        from dominus_local.stores.kv_redis import RedisKVStore

        store = RedisKVStore(state.settings.cache_url, clock=clock)
        try:
            await store.ping()
        except BaseException:
            await store.close()
            raise
    elif state.settings.data_dir is None and not state.settings.database_url:
        # Nothing is kept on disk (in-memory SQLite): a dictionary of the process holds the same entries
        # without a database transaction per operation.
        store = MemoryKVStore(clock=clock)
    else:
        store = SqlKVStore(state.db, clock=clock)
        await store.purge_expired()
    state.extras["whisperer"] = store


async def probe(state: LocalState) -> str:
    """Whisperer's health entry: its store answers (Redis, or the database)."""
    store = state.extras.get("whisperer")
    if store is None:
        return "down"
    await store.ping()
    return "up"


health.register_probe("whisperer", probe)


@router.on_shutdown
async def _stop(state: LocalState) -> None:
    store = state.extras.pop("whisperer", None)
    if store is not None:
        await store.close()


# -- field readers --------------------------------------------------------------------------------------------


def _path_value(value: Any, name: str) -> str:
    if value is None:
        raise invalid(name, "is required")
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_PATH:
        raise invalid(name, f"must be a string of 1 to {MAX_PATH} characters")
    if _CONTROL.search(value):
        raise invalid(name, "must not contain control characters")
    return value


def _category_value(value: Any, name: str) -> str:
    if value is None:
        return DEFAULT_CATEGORY
    if not isinstance(value, str) or not CATEGORY.match(value):
        raise invalid(name, f"must match {CATEGORY.pattern}")
    return value


def _logical_path(fields: Fields) -> str:
    return _path_value(fields.raw("logical_path"), "logical_path")


def _category(fields: Fields) -> str:
    return _category_value(fields.raw("category"), "category")


def _ttl(fields: Fields, default: int) -> int:
    value: int = fields.int("ttl_seconds", required=False, default=default, min_value=TTL_MIN, max_value=TTL_MAX)
    return value


def _optional_ttl(fields: Fields) -> int | None:
    value: int | None = fields.int("ttl_seconds", required=False, min_value=TTL_MIN, max_value=TTL_MAX)
    return value


def _value(ctx: RequestContext, name: str = "value") -> Any:
    value = ctx.body.get(name)
    if value is None:
        raise invalid(name, "is required")
    if len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()) > MAX_VALUE_BYTES:
        raise too_large(name, MAX_VALUE_BYTES)
    return value


def _field(fields: Fields) -> str:
    value: str = fields.str("field", min_len=1, max_len=MAX_FIELD)
    return value


def _space(principal: Principal, category: str) -> str:
    # Categories cannot contain "/", so the three parts never run into each other.
    return f"{principal.project}/{principal.environment}/{category}"


def _wrong_type(error: WrongTypeError) -> ApiError:
    if error.kind == "hash":
        return unprocessable(
            "The key holds a hash; use hget, hgetall, hset or hdel", field="logical_path", kind="hash"
        )
    return unprocessable(
        "The key holds a plain value; use get, set, setnx or incr", field="logical_path", kind="value"
    )


def _plain(entry: KVEntry | None, key: str) -> KVEntry | None:
    if entry is not None and entry.kind != "value":
        raise _wrong_type(WrongTypeError(key, entry.kind))
    return entry


async def _get_hash(ctx: RequestContext, category: str, key: str) -> KVEntry | None:
    try:
        return await kv_store(ctx.state).get(_space(ctx.subject, category), key, expect="hash")
    except WrongTypeError as error:
        raise _wrong_type(error) from None


def _encode_cursor(category: str, prefix: str, last: str) -> str:
    raw = json.dumps([category, prefix, last], ensure_ascii=False, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, category: str, prefix: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError):
        raise invalid("cursor", "is not a cursor this server returned") from None
    if not (isinstance(decoded, list) and len(decoded) == 3 and all(isinstance(p, str) for p in decoded)):
        raise invalid("cursor", "is not a cursor this server returned")
    if decoded[0] != category or decoded[1] != prefix:
        raise invalid("cursor", "belongs to a listing with another category or prefix")
    last: str = decoded[2]
    return last


def _keep(ctx: RequestContext, store: KVStore, answer: Callable[[Any], dict[str, Any]]) -> Keep | None:
    """The request's idempotency key, to be recorded by ``store`` with the write (in the same Redis script or
    database transaction: no round trip of its own); ``answer`` makes the write's result the answer. A failure's
    record then goes to the same store."""
    use = ctx.idempotency
    if use is None:
        return None
    use.recorder = store
    return Keep(use, answer)


# -- endpoints --------------------------------------------------------------------------------------------------


@router.post("/api/whisperer/set", records_key=True)
async def set_value(ctx: RequestContext) -> dict[str, Any]:
    """Write a plain value with its TTL (3600 s by default).

    Round trips: one to the store (Redis: one script call, which also checks and writes the idempotency key's
    record; SQLite/PostgreSQL: one upsert and, with a key, its record, in one transaction; on a SQLite file that
    transaction is one hop, committed with the other writes waiting at that moment: see
    :mod:`~dominus_local.stores.sqlite_direct`). Every Whisperer write keeps its key so (see :func:`_keep`)."""
    store = kv_store(ctx.state)
    f = ctx.fields
    key, category, ttl = _logical_path(f), _category(f), _ttl(f, 3600)
    value = _value(ctx)
    answer = {"key": key, "stored": True, "ttl_seconds": ttl}
    try:
        await store.set(_space(ctx.subject, category), key, value, ttl, keep=_keep(ctx, store, lambda _: answer))
    except WrongTypeError as error:
        raise _wrong_type(error) from None
    return answer


@router.post("/api/whisperer/get", safe=True)
async def get_value(ctx: RequestContext) -> dict[str, Any]:
    """Read a plain value; with ``nudge``, reset its expiry (to ``ttl_seconds`` when given).

    Round trips: one to the store (Redis: one script call; SQLite/PostgreSQL: one SELECT, outside the writers'
    lock on SQLite (one hop to a read connection on a SQLite file), or a locked read-and-update transaction with
    ``nudge``)."""
    f = ctx.fields
    key, category = _logical_path(f), _category(f)
    nudge: bool = f.bool("nudge", default=False)
    ttl = _optional_ttl(f)
    store = kv_store(ctx.state)
    try:
        entry = await store.get(_space(ctx.subject, category), key, expect="value", nudge=nudge, nudge_ttl=ttl)
    except WrongTypeError as error:
        raise _wrong_type(error) from None
    if entry is None:
        return {"found": False, "value": None, "ttl_remaining": None}
    return {"found": True, "value": entry.value, "ttl_remaining": entry.ttl_remaining(store.clock())}


@router.post("/api/whisperer/delete", records_key=True)
async def delete_value(ctx: RequestContext) -> dict[str, Any]:
    """Remove a key, plain or hash."""
    f = ctx.fields
    key, category = _logical_path(f), _category(f)
    store = kv_store(ctx.state)
    deleted = await store.delete(_space(ctx.subject, category), key, keep=_keep(ctx, store, _deleted))
    return _deleted(deleted)


def _deleted(deleted: bool) -> dict[str, Any]:
    return {"deleted": deleted}


@router.post("/api/whisperer/list", safe=True)
async def list_keys(ctx: RequestContext) -> dict[str, Any]:
    """Logical paths of one category in code-point order, paged by an opaque cursor."""
    f = ctx.fields
    limit: int = f.int("limit", required=False, default=100, min_value=1, max_value=MAX_LIST_LIMIT)
    prefix: str = f.str("logical_prefix", required=False, default="", max_len=MAX_PATH)
    category = _category(f)
    cursor: str | None = f.str("cursor", required=False, max_len=4096)
    after = _decode_cursor(cursor, category, prefix) if cursor else None
    keys = await kv_store(ctx.state).scan(_space(ctx.subject, category), prefix=prefix, after=after, limit=limit + 1)
    page = keys[:limit]
    next_cursor = _encode_cursor(category, prefix, page[-1]) if len(keys) > limit else None
    return {"keys": page, "cursor": next_cursor, "count": len(page)}


@router.post("/api/whisperer/mget", safe=True)
async def mget(ctx: RequestContext) -> dict[str, Any]:
    """Several plain values at once, in the order asked (at most 100 keys)."""
    items: list[Any] = ctx.fields.list("keys", min_items=1, max_items=MAX_MGET_KEYS, comma_split=False)
    wanted: list[tuple[str, str]] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise invalid(f"keys[{index}]", "must be an object with logical_path and optional category")
        wanted.append(
            (
                _category_value(item.get("category"), f"keys[{index}].category"),
                _path_value(item.get("logical_path"), f"keys[{index}].logical_path"),
            )
        )
    entries = await kv_store(ctx.state).get_many([(_space(ctx.subject, c), k) for c, k in wanted])
    results = []
    for (category, key), entry in zip(wanted, entries, strict=True):
        _plain(entry, key)
        results.append(
            {
                "logical_path": key,
                "category": category,
                "found": entry is not None,
                "value": entry.value if entry is not None else None,
            }
        )
    return {"results": results}


@router.post("/api/whisperer/setnx", records_key=True)
async def setnx(ctx: RequestContext) -> dict[str, Any]:
    """Write only when the key is absent (atomic): the lock primitive. TTL 60 s by default."""
    f = ctx.fields
    key, category, ttl = _logical_path(f), _category(f), _ttl(f, 60)
    value = _value(ctx)
    store = kv_store(ctx.state)
    try:
        result = await store.setnx(_space(ctx.subject, category), key, value, ttl, keep=_keep(ctx, store, _acquired))
    except WrongTypeError as error:
        raise _wrong_type(error) from None
    return _acquired(result)


def _acquired(result: tuple[bool, Any]) -> dict[str, Any]:
    return {"acquired": result[0], "existing": result[1]}


@router.post("/api/whisperer/incr", records_key=True)
async def incr(ctx: RequestContext) -> dict[str, Any]:
    """Add ``delta`` to an integer counter; a missing key starts at 0 with ``ttl_seconds``."""
    f = ctx.fields
    key, category, ttl = _logical_path(f), _category(f), _ttl(f, 3600)
    delta: int = f.int("delta", required=False, default=1, min_value=INT64_MIN, max_value=INT64_MAX)
    store = kv_store(ctx.state)
    try:
        value = await store.incr(_space(ctx.subject, category), key, delta, ttl, keep=_keep(ctx, store, _counted))
    except WrongTypeError as error:
        raise _wrong_type(error) from None
    except NotIntegerError as error:
        raise unprocessable(f"Cannot increment: {error}", field="logical_path") from None
    return _counted(value)


def _counted(value: int) -> dict[str, Any]:
    return {"value": value}


@router.post("/api/whisperer/hset", records_key=True)
async def hset(ctx: RequestContext) -> dict[str, Any]:
    """Set one hash field; the whole hash's expiry is reset to ``ttl_seconds``."""
    f = ctx.fields
    key, category, field, ttl = _logical_path(f), _category(f), _field(f), _ttl(f, 3600)
    value = _value(ctx)
    store = kv_store(ctx.state)
    try:
        is_new = await store.hset(
            _space(ctx.subject, category), key, field, value, ttl, keep=_keep(ctx, store, _field_set)
        )
    except WrongTypeError as error:
        raise _wrong_type(error) from None
    return _field_set(is_new)


def _field_set(is_new: bool) -> dict[str, Any]:
    return {"set": is_new}


@router.post("/api/whisperer/hget", safe=True)
async def hget(ctx: RequestContext) -> dict[str, Any]:
    """One field of a hash."""
    f = ctx.fields
    key, category, field = _logical_path(f), _category(f), _field(f)
    entry = await _get_hash(ctx, category, key)
    if entry is None or field not in entry.value:
        return {"found": False, "value": None}
    return {"found": True, "value": entry.value[field]}


@router.post("/api/whisperer/hgetall", safe=True)
async def hgetall(ctx: RequestContext) -> dict[str, Any]:
    """Every field of a hash, as an object (empty when the key is absent)."""
    f = ctx.fields
    key, category = _logical_path(f), _category(f)
    entry = await _get_hash(ctx, category, key)
    if entry is None:
        return {"found": False, "fields": {}}
    return {"found": True, "fields": dict(entry.value)}


@router.post("/api/whisperer/hdel", records_key=True)
async def hdel(ctx: RequestContext) -> dict[str, Any]:
    """Remove one hash field; removing the last one removes the key."""
    f = ctx.fields
    key, category, field = _logical_path(f), _category(f), _field(f)
    store = kv_store(ctx.state)
    try:
        deleted = await store.hdel(_space(ctx.subject, category), key, field, keep=_keep(ctx, store, _deleted))
    except WrongTypeError as error:
        raise _wrong_type(error) from None
    return _deleted(deleted)
