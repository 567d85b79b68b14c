"""Health and warm-up (spec 7.11)."""

from __future__ import annotations

from dominus_fastapi.core.namespaces.base import Namespace


class HealthNamespace(Namespace):
    """Health and warm-up (spec 7.11)."""
