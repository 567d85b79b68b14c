"""An in-memory TTL cache whose values are encrypted with a key derived from the PSK.

The service token is a bearer credential: keeping it encrypted means a heap dump, a debugger's ``repr`` or an
accidental log of the cache's internals shows ciphertext only.

Internal: this is the service-token cache's storage, not a public API (it is not exported from
``dominus_fastapi`` and may change). The reference SDK exposed its cache utilities (``dominus_cache``,
``DominusCache``, ``CircuitBreaker``, ...); this SDK does not: a cache shared between processes is ``redis``,
and the breaker and token cache work inside each client (docs/migration.md).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

Clock = Callable[[], float]

_HKDF_INFO = b"dominus-fastapi encrypted cache v1"


def derive_fernet_key(secret: str, *, salt: bytes | None = None) -> bytes:
    """A Fernet key from ``secret`` via HKDF/SHA-256."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_HKDF_INFO).derive(secret.encode())
    return base64.urlsafe_b64encode(raw)


class EncryptedTTLCache:
    """JSON values kept encrypted (Fernet) with a per-entry expiry read from an injectable clock."""

    __slots__ = ("_clock", "_entries", "_fernet")

    def __init__(self, secret: str, *, clock: Clock = time.time) -> None:
        self._fernet = Fernet(derive_fernet_key(secret))
        self._clock = clock
        self._entries: dict[str, tuple[float, bytes]] = {}

    def set(self, key: str, value: Any, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds (a TTL <= 0 stores nothing)."""
        if ttl <= 0:
            self._entries.pop(key, None)
            return
        token = self._fernet.encrypt(json.dumps(value).encode())
        self._entries[key] = (self._clock() + ttl, token)

    def get(self, key: str) -> Any | None:
        """The value, or ``None`` when absent or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, token = entry
        if self._clock() >= expires_at:
            del self._entries[key]
            return None
        try:
            return json.loads(self._fernet.decrypt(token))
        except InvalidToken:
            del self._entries[key]
            return None

    def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"EncryptedTTLCache(entries={len(self._entries)})"
