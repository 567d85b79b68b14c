"""Portal end-user sessions (spec 7.9)."""

from __future__ import annotations

from dominus_fastapi.core.namespaces.base import Namespace


class PortalNamespace(Namespace):
    """Portal end-user sessions (spec 7.9)."""
