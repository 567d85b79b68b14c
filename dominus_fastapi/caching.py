"""Cached endpoints on Whisperer (``dominus.redis``): ``@cached(ttl=..., tags=[...])`` and invalidation.

::

    @app.get("/notes")
    @cached(ttl=300, tags=["notes"])
    async def list_notes(data: TenantData) -> list[dict[str, Any]]:
        return (await data.db.query("notes"))["rows"]

    @app.post("/notes")
    async def add_note(note: NoteIn, data: TenantData) -> dict[str, Any]:
        row = await data.db.insert("notes", note.model_dump())
        await data.cache.invalidate("notes")  # every cached "notes" answer of this tenant
        return row

**Where entries live.** With ``per="tenant"`` (the default) and ``per="user"``, entries sit in the signed-in
subject's tenant category (``tenant-<slug>``, see :mod:`dominus_fastapi.tenancy`), a key space of its own,
so two tenants never share an entry whatever their paths; ``per="user"`` adds the user id to the key.
``per="app"`` entries are shared by everyone (anonymous callers included) in the category
:data:`APP_CACHE_CATEGORY`. The key is ``cache:`` + the path + the query (parameters sorted, so ``?a=1&b=2``
and ``?b=2&a=1`` meet) + ``@<user id>`` for ``per="user"``; a long query is replaced by its SHA-256.

**Tags.** Each tag has a generation: a random token under ``tag:<name>`` in the same category. An entry
records the generations of its tags when it is written, and counts only while they are unchanged.
``invalidate("notes")`` writes a new generation, one call whatever the number of entries. A hit is one round
trip (one ``mget`` reads the entry and its tags' generations); a miss adds one write (two when a tag has no
generation yet). Because generations are random, never counters, a generation key that expires (after 24 h)
can never come back with an old value and revive a stale entry.

**Prefixes.** ``invalidate_prefix("/notes")`` deletes the entries whose path starts with ``/notes``: one
``list`` per 500 keys, then one ``delete`` per entry, so tags are the cheaper tool for wide invalidation.

**TTL.** Whisperer keeps every key for 60 s to 24 h (spec 8.4): every key expires, so a forgotten key never
stays, and nothing cached can be older than a day; below a minute a cache round trip buys little. ``ttl``
outside those bounds is refused when the decorator is applied (at import), with a
:class:`~dominus_fastapi.ValidationError` naming ``ttl``, rather than silently raised or lowered.

**Failures.** A cache that cannot be read or written (Whisperer down, a value over 1 MiB) does not fail the
request: the endpoint runs and answers, and the failure is logged. Invalidation failures are raised, since a
silent one would serve stale data.

Answers carry ``X-Dominus-Cache: hit`` or ``miss``. Only what the endpoint returns is cached (as JSON); an
endpoint that returns a ``Response`` of its own is not cached.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import secrets
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, TypeVar
from urllib.parse import urlencode

from fastapi.encoders import jsonable_encoder
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from dominus_fastapi.core.client import Dominus
from dominus_fastapi.core.errors import DominusError, ValidationError
from dominus_fastapi.core.namespaces.redis import MAX_LIST_LIMIT, TTL_MAX, TTL_MIN, RedisNamespace
from dominus_fastapi.deps import get_dominus

__all__ = ["APP_CACHE_CATEGORY", "CACHE_HEADER", "ResponseCache", "cached"]

logger = logging.getLogger("dominus_fastapi")

F = TypeVar("F", bound=Callable[..., Any])

APP_CACHE_CATEGORY: Final = "dominus-cache"
"""The Whisperer category of ``per="app"`` entries."""
CACHE_HEADER: Final = "X-Dominus-Cache"
"""The answer header that says ``hit`` or ``miss``."""
ENTRY_PREFIX: Final = "cache:"
TAG_PREFIX: Final = "tag:"
_MAX_READABLE_KEY: Final = 400
"""Longer path-and-query keys have their query replaced by its SHA-256 (Whisperer keys: 512 characters)."""
_HIDDEN_REQUEST: Final = "_dominus_cache_request"
_HIDDEN_RESPONSE: Final = "_dominus_cache_response"


def _check_tag(tag: Any) -> str:
    if not isinstance(tag, str) or not 1 <= len(tag) <= 128 or any(ord(ch) < 32 or ord(ch) == 127 for ch in tag):
        raise ValidationError(
            "Invalid argument 'tags': each tag must be a string of 1 to 128 characters without control characters",
            details={"field": "tags", "reason": "1 to 128 characters, no control characters"},
        )
    return tag


def _check_ttl(ttl: Any) -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not TTL_MIN <= ttl <= TTL_MAX:
        raise ValidationError(
            f"Invalid argument 'ttl': must be an integer number of seconds from {TTL_MIN} to {TTL_MAX} "
            "(Whisperer's bounds, spec 8.4)",
            details={"field": "ttl", "reason": f"from {TTL_MIN} to {TTL_MAX} seconds"},
        )
    return ttl


class ResponseCache:
    """The cached answers of one Whisperer category (a tenant's, or the app's): read, write, invalidate.

    ``TenantView.cache`` is the one of the request's tenant; :meth:`for_app` gives the ``per="app"`` one.
    """

    def __init__(self, redis: RedisNamespace, category: str) -> None:
        """Bind to ``category`` of ``redis``.

        Args:
            redis: the client's Whisperer namespace.
            category: the Whisperer category that holds the entries.
        """
        self.redis = redis
        self.category = category

    def __repr__(self) -> str:
        return f"ResponseCache(category={self.category!r})"

    @classmethod
    def for_app(cls, client: Dominus) -> ResponseCache:
        """The cache of ``per="app"`` entries (category :data:`APP_CACHE_CATEGORY`).

        Args:
            client: the app's client.

        Returns:
            The cache.
        """
        return cls(client.redis, APP_CACHE_CATEGORY)

    @staticmethod
    def entry_key(path: str, query: Sequence[tuple[str, str]] = (), user_id: str | None = None) -> str:
        """The key of the entry for ``path`` with ``query`` (and ``user_id`` for ``per="user"``).

        Args:
            path: the request path.
            query: the query parameters (any order).
            user_id: the user of a ``per="user"`` entry.

        Returns:
            The Whisperer key.
        """
        encoded = urlencode(sorted(query))
        key = f"{ENTRY_PREFIX}{path}?{encoded}" if encoded else f"{ENTRY_PREFIX}{path}"
        if len(key) > _MAX_READABLE_KEY:
            digest = hashlib.sha256(encoded.encode("utf-8")).hexdigest()
            key = f"{ENTRY_PREFIX}{path[:_MAX_READABLE_KEY - 80]}?sha256={digest}"
        return f"{key}@{user_id}" if user_id is not None else key

    async def read(
        self, key: str, tags: Sequence[str], *, timeout: float | None = None, max_retries: int | None = None
    ) -> tuple[bool, Any, dict[str, str | None]]:
        """One round trip: the entry under ``key`` if its tags are unchanged, and the tags' generations.

        Args:
            key: the entry's key.
            tags: the entry's tags.
            timeout: seconds per attempt (default: the client's).
            max_retries: retries of this call (default: the client's).

        Returns:
            ``(found, value, generations)``; ``generations`` maps each tag to its token (``None`` if unset).
        """
        wanted = [{"logical_path": key, "category": self.category}]
        wanted += [{"logical_path": TAG_PREFIX + tag, "category": self.category} for tag in tags]
        results = (await self.redis.mget(wanted, timeout=timeout, max_retries=max_retries))["results"]
        generations = {
            tag: (str(item["value"]) if item.get("found") else None)
            for tag, item in zip(tags, results[1:], strict=True)
        }
        entry = results[0]
        if not entry.get("found") or not isinstance(entry.get("value"), Mapping):
            return False, None, generations
        stored = entry["value"]
        fresh = all(gen is not None for gen in generations.values()) and stored.get("tags") == generations
        return (True, stored.get("body"), generations) if fresh else (False, None, generations)

    async def write(
        self,
        key: str,
        value: Any,
        ttl: int,
        generations: Mapping[str, str | None],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, with the generations it was computed under.

        A tag without a generation gets one first (``setnx``: concurrent writers agree on one).

        Args:
            key: the entry's key.
            value: a JSON value.
            ttl: seconds (60 to 86400).
            generations: from :meth:`read`, taken before the value was computed.
            timeout: seconds per attempt (default: the client's).
            max_retries: retries of each call (default: the client's).
        """
        settled: dict[str, str] = {}
        for tag, gen in generations.items():
            if gen is None:
                fresh = secrets.token_hex(8)
                answer = await self.redis.setnx(
                    TAG_PREFIX + tag, fresh, TTL_MAX, self.category, timeout=timeout, max_retries=max_retries
                )
                gen = fresh if answer.acquired else str(answer.existing)
            settled[tag] = gen
        await self.redis.set(
            key, {"tags": settled, "body": value}, ttl, self.category, timeout=timeout, max_retries=max_retries
        )

    async def invalidate(self, *tags: str, timeout: float | None = None, max_retries: int | None = None) -> None:
        """Make every entry carrying one of ``tags`` stale (one call per tag, whatever the number of entries).

        Args:
            tags: the tags to invalidate.
            timeout: seconds per attempt (default: the client's).
            max_retries: retries of each call (default: the client's).

        Raises:
            ValidationError: a bad tag.
            DominusError: Whisperer could not be written (the entries may still be served).
        """
        for tag in tags:
            await self.redis.set(
                TAG_PREFIX + _check_tag(tag),
                secrets.token_hex(8),
                TTL_MAX,
                self.category,
                timeout=timeout,
                max_retries=max_retries,
            )

    async def invalidate_prefix(
        self, path_prefix: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> int:
        """Delete the entries whose request path starts with ``path_prefix`` (one ``delete`` per entry).

        Args:
            path_prefix: the start of the paths (``"/notes"`` covers ``/notes``, ``/notes/1``, ``/notes?x=1``).
            timeout: seconds per attempt (default: the client's).
            max_retries: retries of each call (default: the client's).

        Returns:
            How many entries were deleted.

        Raises:
            ValidationError: ``path_prefix`` does not start with ``/``.
            DominusError: Whisperer could not be read or written.
        """
        if not isinstance(path_prefix, str) or not path_prefix.startswith("/"):
            raise ValidationError(
                "Invalid argument 'path_prefix': must be a path starting with '/'",
                details={"field": "path_prefix", "reason": "must start with '/'"},
            )
        keys: list[str] = []
        cursor: str | None = None
        while True:
            page = await self.redis.list(
                ENTRY_PREFIX + path_prefix,
                self.category,
                MAX_LIST_LIMIT,
                cursor,
                timeout=timeout,
                max_retries=max_retries,
            )
            keys.extend(page["keys"])
            cursor = page["cursor"]
            if not cursor:
                break
        deleted = 0
        for key in keys:
            answer = await self.redis.delete(key, self.category, timeout=timeout, max_retries=max_retries)
            deleted += bool(answer.get("deleted"))
        return deleted


async def _cache_for(request: Request, per: str) -> tuple[ResponseCache, str | None]:
    """The cache and the user id of the request for ``per``; 401/403 as ``CurrentTenant`` for tenant entries."""
    from dominus_fastapi.tenancy import get_current_tenant

    client = await get_dominus(request)
    if per == "app":
        return ResponseCache.for_app(client), None
    tenant = await get_current_tenant(request)
    user_id = request.user.id if per == "user" else None
    return ResponseCache(client.redis, tenant.category), user_id


def cached(
    ttl: int = 300, *, tags: Sequence[str] = (), per: Literal["tenant", "user", "app"] = "tenant"
) -> Callable[[F], F]:
    """Cache an endpoint's answer in Whisperer for ``ttl`` seconds (see the module docstring).

    Place it below the route decorator. The endpoint keeps its signature; hidden ``Request`` and ``Response``
    parameters are added for the key and the ``X-Dominus-Cache`` header.

    Args:
        ttl: seconds an entry lives, 60 to 86400 (Whisperer's bounds).
        tags: names that :meth:`ResponseCache.invalidate` can make stale at once (``"notes"``).
        per: ``"tenant"`` (default): one entry per tenant; ``"user"``: per user within the tenant;
            ``"app"``: shared by every caller, signed in or not.

    Returns:
        The decorator.

    Raises:
        ValidationError: ``ttl`` outside 60 to 86400, or a bad tag (at decoration time).
        ValueError: an unknown ``per``.
    """
    ttl = _check_ttl(ttl)
    tag_list = sorted({_check_tag(tag) for tag in tags})
    if per not in ("tenant", "user", "app"):
        raise ValueError(f"per must be 'tenant', 'user' or 'app', not {per!r}")

    def decorate(endpoint: F) -> F:
        signature = inspect.signature(endpoint)
        try:
            hints = typing.get_type_hints(endpoint, include_extras=True)
        except Exception:  # unresolvable forward references: keep the annotations as written
            hints = {}
        params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()]
        # FastAPI fills one Request and one Response parameter per endpoint: reuse the endpoint's own.
        own_request = next((p.name for p in params if p.annotation is Request), None)
        own_response = next((p.name for p in params if p.annotation is Response), None)
        variadic = [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
        params = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
        if own_request is None:
            params.append(inspect.Parameter(_HIDDEN_REQUEST, inspect.Parameter.KEYWORD_ONLY, annotation=Request))
        if own_response is None:
            params.append(inspect.Parameter(_HIDDEN_RESPONSE, inspect.Parameter.KEYWORD_ONLY, annotation=Response))
        params += variadic
        is_async = inspect.iscoroutinefunction(endpoint)

        @functools.wraps(endpoint)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            request: Request = kwargs.pop(_HIDDEN_REQUEST) if own_request is None else kwargs[own_request]
            response: Response = kwargs.pop(_HIDDEN_RESPONSE) if own_response is None else kwargs[own_response]
            cache, user_id = await _cache_for(request, per)
            key = cache.entry_key(request.url.path, request.query_params.multi_items(), user_id)
            generations: dict[str, str | None] = {tag: None for tag in tag_list}
            readable = True
            try:
                found, value, generations = await cache.read(key, tag_list)
            except DominusError as exc:
                readable = False
                found, value = False, None
                logger.warning("Cache read failed, answering uncached: %s (key %s)", type(exc).__name__, key)
            if found:
                response.headers[CACHE_HEADER] = "hit"
                return value
            result = await endpoint(*args, **kwargs) if is_async else await run_in_threadpool(endpoint, *args, **kwargs)
            response.headers[CACHE_HEADER] = "miss"
            if isinstance(result, Response) or not readable:
                return result
            encoded = jsonable_encoder(result)
            try:
                await cache.write(key, encoded, ttl, generations)
            except DominusError as exc:
                logger.warning("Cache write failed: %s (key %s)", type(exc).__name__, key)
            return encoded

        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=params, return_annotation=hints.get("return", signature.return_annotation)
        )
        return typing.cast(F, wrapper)

    return decorate
