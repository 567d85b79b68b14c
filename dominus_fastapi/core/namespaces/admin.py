"""Administration data and fault injection (spec 7.12)."""

from __future__ import annotations

from dominus_fastapi.core.namespaces.base import Namespace


class AdminNamespace(Namespace):
    """Administration data and fault injection (spec 7.12)."""
