"""Retry policy (spec 6.2), circuit breaker (spec 6.4) and cold-start budget (spec 6.5).

Everything time-related takes an injectable clock or sleep so that tests run without waiting.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from dominus_fastapi.core.errors import CircuitOpenError
from dominus_fastapi.core.settings import (
    BACKOFF_BASE,
    BACKOFF_JITTER,
    BACKOFF_MAX,
    BREAKER_FAILURE_THRESHOLD,
    BREAKER_RECOVERY_SECONDS,
    RETRY_AFTER_CAP,
)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

RETRYABLE_STATUSES = frozenset({408, 429, 502, 503, 504})
"""Statuses retried for safe requests, and for unsafe ones carrying an honoured idempotency key."""

BREAKER_FAILURE_STATUSES = frozenset({502, 503, 504})


def backoff_delay(retry: int, *, uniform: Callable[[float, float], float] = random.uniform) -> float:
    """Wait before retry ``retry`` (from 0): ``min(0.5 * 2**retry, 8) * uniform(0.5, 1.5)``."""
    return min(BACKOFF_BASE * 2.0**retry, BACKOFF_MAX) * uniform(*BACKOFF_JITTER)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date); ``None`` when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def retry_wait(
    retry: int,
    retry_after: float | None,
    *,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float | None:
    """The wait before a retry, or ``None`` when the server asked for more than the cap (do not retry).

    ``Retry-After`` replaces the computed backoff when it is longer.
    """
    if retry_after is not None and retry_after > RETRY_AFTER_CAP:
        return None
    wait = backoff_delay(retry, uniform=uniform)
    if retry_after is not None and retry_after > wait:
        wait = retry_after
    return wait


@dataclass
class RetryPolicy:
    """How a client waits between attempts. Tests replace ``sleep`` (and ``uniform``) to run instantly."""

    sleep: Sleep = asyncio.sleep
    uniform: Callable[[float, float], float] = random.uniform
    clock: Clock = time.monotonic
    """Monotonic clock of the cold-start budget."""


BreakerState = Literal["closed", "open", "half_open"]


@dataclass
class CircuitBreaker:
    """Per-host breaker: ``threshold`` consecutive failures open it for ``recovery`` seconds; then exactly one
    probe is let through; its success closes the breaker and its failure opens it again."""

    name: str
    clock: Clock = time.monotonic
    threshold: int = BREAKER_FAILURE_THRESHOLD
    recovery: float = BREAKER_RECOVERY_SECONDS
    failures: int = 0
    state: BreakerState = "closed"
    opened_at: float = 0.0
    where: str = ""
    """The host's description for messages (``ResolvedHosts.describe``), appended when given."""
    _probe_in_flight: bool = field(default=False, repr=False)

    def before_request(self, endpoint: str | None = None) -> bool:
        """Admit a request or raise :class:`CircuitOpenError`. Returns ``True`` when it is the probe."""
        if self.state == "closed":
            return False
        if self.state == "open":
            left = self.opened_at + self.recovery - self.clock()
            if left > 0:
                raise CircuitOpenError(
                    f"Circuit open for the {self.name} host after {self.failures} consecutive failures"
                    + (f" ({self.where})" if self.where else ""),
                    endpoint=endpoint,
                    retry_after=left,
                )
            self.state = "half_open"
        if self._probe_in_flight:
            raise CircuitOpenError(
                f"Circuit half-open for the {self.name} host; a probe is in flight"
                + (f" ({self.where})" if self.where else ""),
                endpoint=endpoint,
                retry_after=0.0,
            )
        self._probe_in_flight = True
        return True

    def record(self, outcome: Literal["success", "failure", "neutral"]) -> None:
        """The result of an admitted attempt. ``neutral`` (not counted, e.g. inside the cold-start window)
        changes nothing except freeing the probe slot."""
        probe = self._probe_in_flight
        self._probe_in_flight = False
        if outcome == "success":
            self.failures = 0
            self.state = "closed"
        elif outcome == "failure":
            self.failures += 1
            if probe or self.failures >= self.threshold:
                self.state = "open"
                self.opened_at = self.clock()


@dataclass
class ColdStartWindow:
    """The budget of a host's first request (spec 6.5): open until that host answered once."""

    budget: float
    clock: Clock
    deadline: float | None = None
    done: bool = False

    def active(self) -> bool:
        """Whether failures now fall inside the window (and so are retried within the budget)."""
        if self.done:
            return False
        if self.deadline is None:
            self.deadline = self.clock() + self.budget
        return self.clock() < self.deadline

    def left(self) -> float:
        if self.done or self.deadline is None:
            return 0.0
        return max(0.0, self.deadline - self.clock())

    def close(self) -> None:
        self.done = True
