"""The state of one running ``dominus_local`` instance, shared by every request it serves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dominus_local.settings import LocalSettings
    from dominus_local.stores.database import Database


@dataclass
class LocalState:
    """Settings and stores, plus a slot per service for what it builds at start (``extras``).

    Services keep their own objects (a key-value store, a blob store, a mailer) in ``extras`` under their
    service name, and reach other services only through those services' public functions.
    """

    settings: LocalSettings
    db: Database
    extras: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
