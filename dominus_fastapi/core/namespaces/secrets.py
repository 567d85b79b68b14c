"""Warden secrets (spec 7.2)."""

from __future__ import annotations

from dominus_fastapi.core.namespaces.base import Namespace


class SecretsNamespace(Namespace):
    """Warden secrets (spec 7.2)."""
