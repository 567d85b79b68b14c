"""Administration data and fault injection (spec 7.12). Every method needs an administrator token."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

from dominus_fastapi.core.namespaces.base import Namespace

__all__ = ["AdminNamespace", "FaultSettings", "ReseedResult", "ResetResult"]

PREFIX = "/api/admin"


class ReseedResult(TypedDict):
    success: bool
    message: str
    seeded_entities: dict[str, int]


class ResetResult(TypedDict):
    success: bool
    message: str
    operations: list[str]


class FaultSettings(TypedDict):
    cold_start_seconds: float
    latency_ms: int
    error_rate: float
    error_status: int
    paths: list[str] | None
    drop_after_read: bool


class AdminNamespace(Namespace):
    """Administration data and fault injection (spec 7.12): ``client.admin``, administrators only.

    Fault injection lets tests drive the client's resilience (retries, breakers, cold starts) against a real
    server; ``dominus_local`` implements it, other servers may answer 501.

    Every method also takes, keyword only, ``timeout`` (seconds one attempt may take; default: the client's
    ``timeout``, ``DOMINUS_TIMEOUT``) and ``max_retries`` (how many more attempts a failure that is safe to
    repeat gets; default: the client's ``max_retries``, ``0`` for none). The calls that would not be harmless
    to repeat take ``idempotency_key`` too: the server carries out a key once (spec 3.5); when it is left out,
    the client makes one for the call, so that its own retries never repeat the change. Any call may also raise
    the transport errors (``DominusConnectionError``, ``DominusTimeoutError``, ``ServiceError``,
    ``RateLimitError``) once its retries are spent.
    """

    async def reseed_admin_category(
        self,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> ReseedResult:
        """Create whatever is missing of the built-in admin entities (tenant category, tenant, role, scope,
        page, nav item), leaving existing ones alone: ``{success, message, seeded_entities}``."""
        data: ReseedResult = await self._client.request(
            "POST",
            f"{PREFIX}/reseed",
            body={},
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return data

    async def reset_admin_category(
        self,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> ResetResult:
        """Delete the built-in admin entities and their links, seed them again and relink the bootstrap
        client (destructive, no confirmation): ``{success, message, operations}``."""
        data: ResetResult = await self._client.request(
            "POST",
            f"{PREFIX}/reset",
            body={},
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return data

    async def set_faults(
        self,
        cold_start_seconds: float | None = None,
        latency_ms: int | None = None,
        error_rate: float | None = None,
        error_status: int | None = None,
        paths: Sequence[str] | None = None,
        drop_after_read: bool | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> FaultSettings:
        """Replace the server's injected faults as a whole; returns the active settings.

        An argument left out takes its neutral value, so ``set_faults()`` turns every fault off. Faults never apply
        to the fault endpoints themselves, and end when the server stops.

        Args:
            cold_start_seconds: For this many seconds from now, answer 503 ``cold_start`` as while starting.
            latency_ms: Hold every answer back by this many milliseconds (0 to 60000).
            error_rate: The fraction of requests (0 to 1, drawn at random) answered with ``error_status`` unrun.
            error_status: The status of those failures: 429, 500, 502, 503 (the neutral value) or 504.
            paths: Path prefixes the faults apply to; ``None``: every path.
            drop_after_read: The requests ``error_rate`` picks run to completion, then the connection is closed
                without an answer (an unknown outcome for the client).

        Raises:
            ValidationError: A value out of range.
        """
        body: dict[str, Any] = {}
        if cold_start_seconds is not None:
            body["cold_start_seconds"] = cold_start_seconds
        if latency_ms is not None:
            body["latency_ms"] = latency_ms
        if error_rate is not None:
            body["error_rate"] = error_rate
        if error_status is not None:
            body["error_status"] = error_status
        if paths is not None:
            body["paths"] = list(paths)
        if drop_after_read is not None:
            body["drop_after_read"] = drop_after_read
        data: FaultSettings = await self._client.request(
            "POST",
            f"{PREFIX}/faults",
            body=body,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return data

    async def get_faults(self, *, timeout: float | None = None, max_retries: int | None = None) -> FaultSettings:
        """The active fault settings, every field present."""
        data: FaultSettings = await self._client.request(
            "GET", f"{PREFIX}/faults", safe=True, timeout=timeout, max_retries=max_retries
        )
        return data
