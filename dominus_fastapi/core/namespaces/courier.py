"""Courier transactional e-mail (spec 7.10)."""

from __future__ import annotations

from dominus_fastapi.core.namespaces.base import Namespace


class CourierNamespace(Namespace):
    """Courier transactional e-mail (spec 7.10)."""
