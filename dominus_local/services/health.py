"""Health (spec 7.11): ``GET /api/health``, ``/api/health/ping`` and ``/api/health/warmup``.

The health document names the nine services. Each one's status comes from its probe: a service registers one
with :func:`register_probe`; without one, the service is as healthy as the database that holds its data.
``GET /metrics`` is served by the app itself (it is not framed).
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from dominus_fastapi.core.wire import PROTOCOL
from dominus_local.errors import ApiError
from dominus_local.routing import RequestContext, ServiceRouter

if TYPE_CHECKING:
    from dominus_local.state import LocalState

__all__ = [
    "PROBE_TIMEOUT_SECONDS",
    "SERVICES",
    "Probe",
    "health_document",
    "register_probe",
    "router",
    "server_version",
    "starting_document",
]

router = ServiceRouter("health")

SERVICES = ("warden", "scribe", "whisperer", "archivist", "guardian", "smith", "herald", "portal", "courier")
PROBE_TIMEOUT_SECONDS = 5.0
STATUSES = ("up", "degraded", "down", "starting")

Probe = Callable[["LocalState"], Awaitable["str | Mapping[str, Any]"]]
"""``probe(state)`` returns ``"up"``, ``"degraded"`` or ``"down"``, or an entry dict with ``status`` and more
members; raising, or taking longer than :data:`PROBE_TIMEOUT_SECONDS`, means ``down``."""

PROBES: dict[str, Probe] = {}


def register_probe(service: str, probe: Probe) -> None:
    """Use ``probe`` for ``service``'s entry in the health document (replaces the database check)."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")
    PROBES[service] = probe


def server_version() -> str:
    try:
        return importlib.metadata.version("dominus-fastapi")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


async def _timed(probe: Callable[[], Awaitable[str | Mapping[str, Any]]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with anyio.fail_after(PROBE_TIMEOUT_SECONDS):
            outcome = await probe()
    except Exception as exc:
        entry: dict[str, Any] = {"status": "down", "error": type(exc).__name__}
    else:
        entry = {"status": outcome} if isinstance(outcome, str) else dict(outcome)
        if entry.get("status") not in STATUSES:
            entry["status"] = "down"
    entry["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
    return entry


async def _database_probe(state: LocalState) -> str:
    await state.db.ping()
    return "up"


def _overall(entries: Mapping[str, Mapping[str, Any]]) -> str:
    statuses = {entry["status"] for entry in entries.values()}
    if "down" in statuses:
        return "unhealthy"
    if statuses - {"up"}:
        return "degraded"
    return "healthy"


async def health_document(state: LocalState) -> dict[str, Any]:
    """The health document (spec 7.11): overall status, version, protocol and one entry per service."""
    database = await _timed(lambda: _database_probe(state))
    services: dict[str, Any] = {}
    for name in SERVICES:
        probe = PROBES.get(name)
        services[name] = dict(database) if probe is None else await _timed(lambda p=probe: p(state))  # type: ignore[misc]
    if "security" not in state.extras:
        # No signing key means no token can be checked: every service is unusable.
        for entry in services.values():
            entry["status"] = "down"
    return {"status": _overall(services), "version": server_version(), "protocol": PROTOCOL, "services": services}


def starting_document(state: LocalState) -> dict[str, Any]:
    """The document sent (in ``details``) with 503 ``cold_start`` while the server starts."""
    return {
        "status": "starting",
        "version": server_version(),
        "protocol": PROTOCOL,
        "services": {name: {"status": "starting"} for name in SERVICES},
    }


@router.get("/api/health", auth="none")
async def check(ctx: RequestContext) -> dict[str, Any]:
    document = await health_document(ctx.state)
    if document["status"] == "unhealthy":
        raise ApiError(
            "service_unavailable",
            "An essential part of the server is unavailable",
            details=document,
            headers={"Retry-After": "5"},
        )
    return document


@router.get("/api/health/ping")
async def ping(ctx: RequestContext) -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/api/health/warmup")
async def warmup(ctx: RequestContext) -> dict[str, Any]:
    """Touch every store (the probes open the database pool and check the keys) and report how long it took."""
    started = time.perf_counter()
    document = await health_document(ctx.state)
    if document["status"] == "unhealthy":
        raise ApiError(
            "service_unavailable",
            "An essential part of the server is unavailable",
            details=document,
            headers={"Retry-After": "5"},
        )
    return {
        "status": "warm",
        "services": document["services"],
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
    }
