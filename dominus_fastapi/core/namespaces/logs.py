"""Herald structured logs (spec 7.8)."""

from __future__ import annotations

from dominus_fastapi.core.namespaces.base import Namespace


class LogsNamespace(Namespace):
    """Herald structured logs (spec 7.8)."""
