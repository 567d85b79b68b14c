"""Throttling of Portal's anonymous endpoints, and the bounded pool that runs bcrypt.

Portal's endpoints for someone without a session (sign-in, client sign-in, password reset, registration,
e-mail verification, invitations) are what an attacker floods. Three limits apply, each configurable in
:class:`~dominus_local.settings.LocalSettings` (a limit of ``0`` switches it off):

- **Per address** (``rate_limit_address_requests`` per ``rate_limit_address_window`` seconds, default 120 per
  60 s): every such request from one end-user address counts, in fixed windows aligned on the clock. Over
  the limit: 429 ``rate_limited`` with ``Retry-After`` (the rest of the window). The address is the
  ``end_user_ip`` that the service token's holder forwards for the visitor it acts for (the SDK's
  ``portal.login(..., end_user_ip=...)``; the FastAPI portal router sends the browser's address), else the
  peer address of the connection. IPv6 addresses count per /64 network. ``trust_end_user_ip=False`` ignores
  forwarded addresses.
- **Per account** (``login_failure_limit`` failed sign-ins per ``login_failure_window`` seconds, default 10
  per 15 minutes): the account is then locked for ``login_lockout_seconds`` (default 60 s), doubled at each
  further lockout within a day, up to ``login_lockout_max_seconds`` (default 15 minutes). While locked, every
  sign-in of the account is 429 ``rate_limited`` with ``Retry-After`` before any password is checked. A
  successful sign-in forgets the failures and the lockouts. An unknown name is counted like an account, so
  the answers say nothing about which accounts exist. So an attacker can keep an account locked only while
  it keeps failing, and never for longer than ``login_lockout_max_seconds`` after its last failure.
- **Per mail address** (``mail_per_address_limit`` mails per ``mail_per_address_window`` seconds and purpose,
  default 3 per hour): password-reset and verification-resend requests beyond it send nothing and still
  answer ``{requested: true}`` / ``{sent: true}``, as spec 7.9 wants, so the limit reveals nothing either.

The counters live in a :class:`~dominus_local.stores.kv.KVStore`: Whisperer's Redis store when a ``redis://``
cache URL is configured (shared by every process, each operation one atomic script), else a store in the
process's memory. Their clock is the app's wall clock, so tests move time instead of sleeping.

bcrypt runs in :class:`BcryptPool`: ``bcrypt_workers`` threads (default: the number of CPUs) and at most
``bcrypt_max_waiting`` hashes waiting for one; a hash beyond that is refused at once with 429
``rate_limited`` (``Retry-After: 1``) instead of queueing, so a flood of sign-ins can neither queue
unboundedly nor take the threads that the rest of the server (health checks included) needs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from dominus_local import security
from dominus_local.errors import ApiError, invalid
from dominus_local.stores.kv import KVStore, MemoryKVStore

if TYPE_CHECKING:
    from dominus_local.routing import RequestContext
    from dominus_local.settings import LocalSettings
    from dominus_local.state import LocalState

__all__ = [
    "BcryptPool",
    "Throttle",
    "address_of",
    "close",
    "end_user_agent",
    "runtime",
]

SPACE: Final = "~throttle"
"""The key space of the counters (Whisperer's spaces are ``project/environment/category``: no clash)."""
STRIKE_MEMORY_SECONDS: Final = 86400
"""How long a lockout counts towards the doubling of the next one."""
MAX_AGENT: Final = 512

_T = TypeVar("_T")


def rate_limited(message: str, retry_after: float) -> ApiError:
    """429 ``rate_limited`` with a whole-second ``Retry-After`` (at least 1)."""
    seconds = max(1, math.ceil(retry_after))
    return ApiError("rate_limited", message, details={"retry_after": seconds}, headers={"Retry-After": str(seconds)})


# --- the end user's address -----------------------------------------------------------------------------------


def _bucket(address: str) -> str:
    """The counting key of an address: IPv4 as is, IPv6 by its /64 network, anything else as given."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


def forwarded_ip(ctx: RequestContext) -> str | None:
    """The ``end_user_ip`` body field, checked (400 ``validation_failed`` when it is not an IP address)."""
    raw = ctx.body.get("end_user_ip")
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > 64:
        raise invalid("end_user_ip", "must be an IPv4 or IPv6 address")
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        raise invalid("end_user_ip", "must be an IPv4 or IPv6 address") from None


def end_user_agent(ctx: RequestContext) -> str | None:
    """The ``end_user_agent`` body field (at most 512 characters, no control characters), else ``None``."""
    raw = ctx.body.get("end_user_agent")
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > MAX_AGENT:
        raise invalid("end_user_agent", f"must be a string of at most {MAX_AGENT} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in raw):
        raise invalid("end_user_agent", "must not contain control characters")
    return raw


def address_of(ctx: RequestContext) -> str | None:
    """The end user's address: the forwarded ``end_user_ip`` of a service-token caller (when trusted), else
    the connection's peer address. Every caller of these endpoints holds the service token (spec 5.1), so a
    forwarded address comes from an app server acting for its visitors."""
    forwarded = forwarded_ip(ctx)
    principal = ctx.principal
    trusted = principal is not None and principal.sid is None and ctx.state.settings.trust_end_user_ip
    if forwarded is not None and trusted:
        return forwarded
    client = ctx.request.client
    return client.host if client is not None and client.host else None


# --- bcrypt ------------------------------------------------------------------------------------------------


class BcryptPool:
    """A fixed set of threads for bcrypt, with a bounded number of hashes waiting for one."""

    def __init__(self, workers: int, max_waiting: int) -> None:
        self.workers = workers
        self.capacity = workers + max_waiting
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dominus-bcrypt")
        self._lock = threading.Lock()
        self._pending = 0

    @property
    def pending(self) -> int:
        """Hashes running or waiting now."""
        return self._pending

    def _release(self, _: Any) -> None:
        with self._lock:
            self._pending -= 1

    async def run(self, function: Callable[..., _T], *args: Any) -> _T:
        """``function(*args)`` on a pool thread; 429 at once when the pool is full."""
        with self._lock:
            if self._pending >= self.capacity:
                raise rate_limited("Too many passwords are being checked right now; retry shortly", 1)
            self._pending += 1
        try:
            future = self._executor.submit(function, *args)
        except BaseException:
            self._release(None)
            raise
        # Released when the hash ends, not when the request does: a cancelled request's hash still runs.
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    async def hash_password(self, password: str, rounds: int) -> str:
        return await self.run(security.hash_password, password, rounds)

    async def verify_password(self, password: str, hashed: str | None) -> bool:
        return await self.run(security.verify_password, password, hashed)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


# --- the counters -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """The limits of :mod:`dominus_local.throttle`, read from the settings (``0``: no limit)."""

    address_requests: int
    address_window: int
    failure_limit: int
    failure_window: int
    lockout_seconds: int
    lockout_max_seconds: int
    mail_limit: int
    mail_window: int

    @classmethod
    def from_settings(cls, settings: LocalSettings) -> Limits:
        return cls(
            address_requests=settings.rate_limit_address_requests,
            address_window=settings.rate_limit_address_window,
            failure_limit=settings.login_failure_limit,
            failure_window=settings.login_failure_window,
            lockout_seconds=settings.login_lockout_seconds,
            lockout_max_seconds=settings.login_lockout_max_seconds,
            mail_limit=settings.mail_per_address_limit,
            mail_window=settings.mail_per_address_window,
        )


@dataclass(frozen=True)
class AccountState:
    """What the counters hold for one account before its password is checked."""

    failures: bool
    strikes: bool


class Throttle:
    """The counters of one server instance (shared through Redis with the other processes, if configured)."""

    def __init__(self, limits: Limits, store: KVStore, clock: Callable[[], float]) -> None:
        self.limits = limits
        self.store = store
        self.clock = clock

    async def hit_address(self, address: str | None) -> None:
        """Count one request from ``address``; 429 when its window is full. No address: not counted."""
        limit, window = self.limits.address_requests, self.limits.address_window
        if not limit or address is None:
            return
        now = self.clock()
        slot = int(now // window)
        count = await self.store.incr(SPACE, f"a:{_bucket(address)}:{slot}", 1, window + 1)
        if count > limit:
            raise rate_limited(
                "Too many requests from this address; retry after the time in Retry-After",
                (slot + 1) * window - now,
            )

    async def check_account(self, account: str) -> AccountState:
        """429 when ``account`` is locked; else what is recorded for it (one round trip to the store)."""
        if not self.limits.failure_limit:
            return AccountState(False, False)
        lock, failures, strikes = await self.store.get_many(
            [(SPACE, f"l:{account}"), (SPACE, f"f:{account}"), (SPACE, f"s:{account}")]
        )
        if lock is not None:
            until = float(lock.value) if isinstance(lock.value, (int, float)) else lock.expires_at
            now = self.clock()
            if until > now:
                raise rate_limited(
                    "Too many failed sign-ins for this account; retry after the time in Retry-After", until - now
                )
        return AccountState(failures is not None, strikes is not None)

    async def login_failed(self, account: str) -> None:
        """Count a failed sign-in; the one that reaches the limit locks the account (doubling each time)."""
        limits = self.limits
        if not limits.failure_limit:
            return
        count = await self.store.incr(SPACE, f"f:{account}", 1, limits.failure_window)
        if count != limits.failure_limit:
            return
        strikes = await self.store.incr(SPACE, f"s:{account}", 1, STRIKE_MEMORY_SECONDS)
        seconds = min(limits.lockout_max_seconds, limits.lockout_seconds * 2 ** min(strikes - 1, 30))
        await self.store.set(SPACE, f"l:{account}", self.clock() + seconds, max(1, seconds))
        await self.store.delete(SPACE, f"f:{account}")

    async def login_succeeded(self, account: str, before: AccountState) -> None:
        """Forget the account's failures and lockouts (nothing to do, and no round trip, when there were none)."""
        if before.failures:
            await self.store.delete(SPACE, f"f:{account}")
        if before.strikes:
            await self.store.delete(SPACE, f"s:{account}")

    async def allow_mail(self, purpose: str, address: str) -> bool:
        """Whether one more ``purpose`` mail may go to ``address`` in its window (counts this one)."""
        limit, window = self.limits.mail_limit, self.limits.mail_window
        if not limit:
            return True
        count = await self.store.incr(SPACE, f"m:{purpose}:{address.lower()}", 1, window)
        return count <= limit


# --- per-instance runtime ---------------------------------------------------------------------------------


@dataclass
class ThrottleRuntime:
    pool: BcryptPool
    throttle: Throttle
    own_store: KVStore | None


def runtime(state: LocalState) -> ThrottleRuntime:
    """This instance's pool and counters, created on first use (``state.extras["throttle"]``)."""
    found = state.extras.get("throttle")
    if isinstance(found, ThrottleRuntime):
        return found
    settings = state.settings
    wall_clock = getattr(state.extras.get("app"), "wall_clock", None)
    clock: Callable[[], float] = wall_clock if callable(wall_clock) else time.time
    shared = state.extras.get("whisperer")
    own: KVStore | None = None
    store: KVStore
    if settings.cache_url and isinstance(shared, KVStore):
        store = shared  # Whisperer's Redis store: every process sees the same counters
    else:
        store = own = MemoryKVStore(clock=clock)
    workers = settings.bcrypt_workers or max(1, os.cpu_count() or 1)
    found = ThrottleRuntime(
        BcryptPool(workers, settings.bcrypt_max_waiting), Throttle(Limits.from_settings(settings), store, clock), own
    )
    state.extras["throttle"] = found
    return found


async def close(state: LocalState) -> None:
    """Stop the pool's threads (hashes still waiting are dropped) and forget the counters of this process."""
    found = state.extras.pop("throttle", None)
    if isinstance(found, ThrottleRuntime):
        found.pool.close()
        if found.own_store is not None:
            await found.own_store.close()
