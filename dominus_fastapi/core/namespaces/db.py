"""Scribe: table data (``db``), audited secure access (``secure``) and open SQL (``open``) (spec 7.3)."""

from __future__ import annotations

from dominus_fastapi.core.namespaces.base import Namespace


class DbNamespace(Namespace):
    """Scribe table data (spec 7.3)."""


class SecureNamespace(Namespace):
    """Scribe audited access to secure tables (spec 7.3, 8.3)."""


class OpenNamespace(Namespace):
    """Scribe open SQL area (spec 7.3)."""
