"""dominus_local: an open implementation of the Dominus orchestrator and gateway."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dominus_local.settings import LocalSettings

if TYPE_CHECKING:
    from dominus_local.app import create_app

__all__ = ["LocalSettings", "create_app"]


def __getattr__(name: str) -> Any:
    # The app pulls in every service; import it only when it is asked for.
    if name == "create_app":
        from dominus_local.app import create_app

        return create_app
    raise AttributeError(f"module 'dominus_local' has no attribute {name!r}")
