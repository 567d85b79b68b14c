"""Fault injection (spec 7.12): cold start, added latency, injected errors and dropped connections.

The dispatcher asks :class:`FaultInjector` what to do with each request. Settings come from
:class:`~dominus_local.settings.LocalSettings` at start and are replaced as a whole by
``POST /api/admin/faults``. They live in memory and end with the instance. Faults never apply to
``/api/admin/faults`` itself (so they can always be switched off) nor to ``/metrics``.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dominus_local.settings import FAULT_ERROR_STATUSES

if TYPE_CHECKING:
    from dominus_local.settings import LocalSettings

__all__ = ["EXEMPT_PATHS", "ConnectionDropped", "FaultDecision", "FaultInjector", "FaultSettings"]

EXEMPT_PATHS = ("/api/admin/faults", "/metrics")
"""Paths that faults never touch."""


class ConnectionDropped(Exception):
    """Raised out of the ASGI app after a request ran, to close the connection without an answer.

    In embedded mode the SDK's transport turns it into a broken connection; under uvicorn the response was
    started with a ``Content-Length`` and never finished, so the client sees the connection break.
    """


@dataclass(frozen=True)
class FaultSettings:
    """The active fault settings; every field at its neutral value means "no faults"."""

    cold_start_until: float | None = None
    """Monotonic time until which the server behaves as starting (``None``: no injected cold start)."""
    latency_ms: int = 0
    error_rate: float = 0.0
    error_status: int = 503
    paths: tuple[str, ...] | None = None
    drop_after_read: bool = False

    def __post_init__(self) -> None:
        if self.error_status not in FAULT_ERROR_STATUSES:
            raise ValueError(f"error_status must be one of {FAULT_ERROR_STATUSES}")


@dataclass(frozen=True)
class FaultDecision:
    """What to do with one request."""

    latency_ms: int = 0
    error_status: int | None = None
    """Answer with this status without running the request."""
    drop: bool = False
    """Run the request, then drop the connection instead of answering."""


@dataclass
class FaultInjector:
    """Holds the fault settings of one instance and decides per request.

    ``clock`` (monotonic seconds), ``rng`` and ``sleep`` are injectable so tests need neither real time nor
    luck.
    """

    settings: FaultSettings = field(default_factory=FaultSettings)
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep

    @classmethod
    def from_settings(cls, settings: LocalSettings, **options: Any) -> FaultInjector:
        injector = cls(**options)
        injector.replace(
            latency_ms=settings.fault_latency_ms,
            error_rate=settings.fault_error_rate,
            error_status=settings.fault_error_status,
            paths=settings.fault_paths,
            drop_after_read=settings.fault_drop_after_read,
        )
        return injector

    def replace(
        self,
        *,
        cold_start_seconds: float = 0,
        latency_ms: int = 0,
        error_rate: float = 0.0,
        error_status: int = 503,
        paths: Sequence[str] | None = None,
        drop_after_read: bool = False,
    ) -> None:
        """Replace every setting at once (spec 7.12: a field left out takes its neutral value)."""
        until = self.clock() + cold_start_seconds if cold_start_seconds > 0 else None
        self.settings = FaultSettings(
            cold_start_until=until,
            latency_ms=latency_ms,
            error_rate=error_rate,
            error_status=error_status,
            paths=tuple(paths) if paths is not None else None,
            drop_after_read=drop_after_read,
        )

    def cold_start_remaining(self) -> float:
        """Seconds of injected cold start left (0 when none)."""
        until = self.settings.cold_start_until
        return max(0.0, until - self.clock()) if until is not None else 0.0

    def describe(self) -> dict[str, Any]:
        """The active settings in the shape of the admin endpoints (every field present)."""
        s = self.settings
        return {
            "cold_start_seconds": math.ceil(self.cold_start_remaining()),
            "latency_ms": s.latency_ms,
            "error_rate": s.error_rate,
            "error_status": s.error_status,
            "paths": list(s.paths) if s.paths is not None else None,
            "drop_after_read": s.drop_after_read,
        }

    def applies_to(self, path: str) -> bool:
        if path in EXEMPT_PATHS:
            return False
        prefixes = self.settings.paths
        return prefixes is None or any(path.startswith(prefix) for prefix in prefixes)

    def decide(self, path: str) -> FaultDecision:
        """Latency, injected failure or drop for a request to ``path`` (cold start is checked separately)."""
        s = self.settings
        if (s.latency_ms <= 0 and s.error_rate <= 0) or not self.applies_to(path):
            return FaultDecision()
        picked = s.error_rate > 0 and self.rng.random() < s.error_rate
        if not picked:
            return FaultDecision(latency_ms=s.latency_ms)
        if s.drop_after_read:
            return FaultDecision(latency_ms=s.latency_ms, drop=True)
        return FaultDecision(latency_ms=s.latency_ms, error_status=s.error_status)
