"""Smith DDL, migrations and tenant provisioning (spec 7.7)."""

from __future__ import annotations

from dominus_fastapi.core.namespaces.base import Namespace


class DdlNamespace(Namespace):
    """Smith DDL, migrations and tenant provisioning (spec 7.7)."""
