"""Router factories: ready-made route sets that an application includes with ``app.include_router``."""

from __future__ import annotations

from dominus_fastapi.routers.portal import EndUser, end_user_of, get_portal_router

__all__ = ["EndUser", "end_user_of", "get_portal_router"]
