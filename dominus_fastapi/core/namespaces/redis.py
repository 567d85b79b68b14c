"""Whisperer cache, locks, counters and hashes (spec 7.4)."""

from __future__ import annotations

from dominus_fastapi.core.namespaces.base import Namespace


class RedisNamespace(Namespace):
    """Whisperer cache, locks, counters and hashes (spec 7.4)."""
