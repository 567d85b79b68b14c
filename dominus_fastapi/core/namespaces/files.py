"""Archivist file storage (spec 7.5)."""

from __future__ import annotations

from dominus_fastapi.core.namespaces.base import Namespace


class FilesNamespace(Namespace):
    """Archivist file storage (spec 7.5)."""
