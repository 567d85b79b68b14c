"""Warden secrets (spec 7.2)."""

from __future__ import annotations

import builtins
import re
from typing import Any

from dominus_fastapi.core.errors import ConflictError, NotFoundError, ServiceError, ValidationError
from dominus_fastapi.core.namespaces.base import Namespace

SECRETS_PATH = "/api/warden/secrets"
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.:/-]{1,256}$")
COMMENT_MAX = 1000


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise ValidationError(
            "key must be 1 to 256 characters from A-Z a-z 0-9 _ . : / -",
            details={"field": "key", "reason": "must match ^[A-Za-z0-9_.:/-]{1,256}$"},
            endpoint=SECRETS_PATH,
        )


def _check_comment(comment: str | None) -> None:
    if comment is not None and (not isinstance(comment, str) or len(comment) > COMMENT_MAX):
        raise ValidationError(
            f"comment must be a string of at most {COMMENT_MAX} characters",
            details={"field": "comment", "reason": f"at most {COMMENT_MAX} characters"},
            endpoint=SECRETS_PATH,
        )


def derived_key(idempotency_key: str | None, n: int) -> str | None:
    """The key of the ``n``-th unsafe request of a multi-request call (spec 3.5): ``<key>:<n>``."""
    return None if idempotency_key is None else f"{idempotency_key}:{n}"


class SecretsNamespace(Namespace):
    """Warden secrets (spec 7.2): ``client.secrets``, values scoped to the token's project and environment.

    A ``key`` is 1 to 256 characters from ``A-Z a-z 0-9 _ . : / -`` and a ``comment`` at most 1000 characters;
    both are checked before sending (``ValidationError`` naming the field). Values are any JSON value and never
    appear in listings.

    Every method also takes, keyword only, ``timeout`` (seconds one attempt may take; default: the client's
    ``timeout``, ``DOMINUS_TIMEOUT``) and ``max_retries`` (how many more attempts a failure that is safe to
    repeat gets; default: the client's ``max_retries``, ``0`` for none). The calls that would not be harmless
    to repeat take ``idempotency_key`` too: the server carries out a key once (spec 3.5); when it is left out,
    the client makes one for the call, so that its own retries never repeat the change. Any call may also raise
    the transport errors (``DominusConnectionError``, ``DominusTimeoutError``, ``ServiceError``,
    ``RateLimitError``) once its retries are spent.
    """

    async def get(self, key: str, *, timeout: float | None = None, max_retries: int | None = None) -> Any:
        """The value of ``key``; :class:`NotFoundError` when it is missing."""
        _check_key(key)
        data = await self._client.request(
            "POST",
            SECRETS_PATH,
            body={"action": "get", "key": key},
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return data["secret"]["value"]

    async def list(
        self, prefix: str | None = None, *, timeout: float | None = None, max_retries: int | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Secret records without their values, sorted by key.

        Args:
            prefix: Only keys starting with this plain string (no wildcards); ``None``: every key.
        """
        body: dict[str, Any] = {"action": "list"}
        if prefix is not None:
            body["prefix"] = prefix
        data = await self._client.request(
            "POST", SECRETS_PATH, body=body, safe=True, timeout=timeout, max_retries=max_retries
        )
        secrets: builtins.list[dict[str, Any]] = data["secrets"]
        return secrets

    async def upsert(
        self,
        key: str,
        value: Any,
        comment: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Update ``key``, or create it when missing; the record plus ``"operation"``.

        Sends ``update``; on :class:`NotFoundError` (or a status-500 :class:`ServiceError`, which older
        servers used for a missing key) sends ``create``; on :class:`ConflictError` from ``create`` (a
        concurrent writer) sends ``update`` once more. With ``idempotency_key=K`` the requests carry
        ``K:1``, ``K:2``, ``K:3``.
        """
        _check_key(key)
        _check_comment(comment)
        fields: dict[str, Any] = {"key": key, "value": value}
        if comment is not None:
            fields["comment"] = comment
        step = 0

        async def send(action: str) -> dict[str, Any]:
            nonlocal step
            step += 1
            data = await self._client.request(
                "POST",
                SECRETS_PATH,
                body={"action": action, **fields},
                timeout=timeout,
                max_retries=max_retries,
                idempotency_key=derived_key(idempotency_key, step),
            )
            record: dict[str, Any] = dict(data["secret"])
            return record

        try:
            return {**await send("update"), "operation": "updated"}
        except (NotFoundError, ServiceError) as exc:
            if isinstance(exc, ServiceError) and exc.status_code != 500:
                raise
        try:
            return {**await send("create"), "operation": "created"}
        except ConflictError:
            return {**await send("update"), "operation": "updated"}

    async def delete(
        self,
        key: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Delete ``key``: ``{"deleted": true, "key": ...}``; :class:`NotFoundError` when it is missing."""
        _check_key(key)
        data: dict[str, Any] = await self._client.request(
            "POST",
            SECRETS_PATH,
            body={"action": "delete", "key": key},
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return data
