"""Health and warm-up (spec 7.11)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dominus_fastapi.core.errors import DominusConnectionError, DominusError, DominusTimeoutError
from dominus_fastapi.core.namespaces.base import Namespace

HEALTH_PATH = "/api/health"


class HealthNamespace(Namespace):
    """Health and warm-up (spec 7.11): ``client.health``.

    ``check`` waits 15 s by default rather than the client's ``timeout``.

    Every method also takes, keyword only, ``timeout`` (seconds one attempt may take; default: the client's
    ``timeout``, ``DOMINUS_TIMEOUT``) and ``max_retries`` (how many more attempts a failure that is safe to
    repeat gets; default: the client's ``max_retries``, ``0`` for none). The calls that would not be harmless
    to repeat take ``idempotency_key`` too: the server carries out a key once (spec 3.5); when it is left out,
    the client makes one for the call, so that its own retries never repeat the change. Any call may also raise
    the transport errors (``DominusConnectionError``, ``DominusTimeoutError``, ``ServiceError``,
    ``RateLimitError``) once its retries are spent.
    """

    async def check(self, *, timeout: float | None = None, max_retries: int | None = None) -> dict[str, Any]:
        """The health document (no auth needed); never raises for HTTP statuses.

        The document comes from ``data``, or from the error's ``details`` (503 ``cold_start`` or
        ``service_unavailable``). A transport failure gives ``{"status": "unreachable", "error": ...}``;
        an error answer without a document gives ``{"status": "unhealthy", "error": ..., "status_code": n}``.
        """
        try:
            data = await self._client.request(
                "GET", HEALTH_PATH, auth="none", safe=True, timeout=timeout, max_retries=max_retries
            )
        except (DominusConnectionError, DominusTimeoutError) as exc:
            if exc.status_code is None:
                return {"status": "unreachable", "error": exc.message}
            return {"status": "unhealthy", "error": exc.message, "status_code": exc.status_code}
        except DominusError as exc:
            if isinstance(exc.details.get("status"), str):
                return dict(exc.details)
            return {"status": "unhealthy", "error": exc.message, "status_code": exc.status_code}
        if isinstance(data, Mapping):
            return dict(data)
        return {"status": "unhealthy", "error": "the health answer is not an object"}

    async def ping(self, *, timeout: float | None = None, max_retries: int | None = None) -> dict[str, Any]:
        """``{"status": "ok"}`` when the service token is accepted."""
        data: dict[str, Any] = await self._client.request(
            "GET", f"{HEALTH_PATH}/ping", safe=True, timeout=timeout, max_retries=max_retries
        )
        return data

    async def warmup(self, *, timeout: float | None = None, max_retries: int | None = None) -> dict[str, Any]:
        """Initialise every service: ``{"status": "warm", "services", "duration_ms"}``."""
        data: dict[str, Any] = await self._client.request(
            "GET", f"{HEALTH_PATH}/warmup", safe=True, timeout=timeout, max_retries=max_retries
        )
        return data
