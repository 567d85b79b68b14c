"""Guardian identities and access control (spec 7.6)."""

from __future__ import annotations

from dominus_fastapi.core.namespaces.base import Namespace


class AuthNamespace(Namespace):
    """Guardian identities and access control (spec 7.6)."""
