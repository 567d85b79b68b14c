"""Admin (spec 7.12): fault injection at ``/api/admin/faults``, and reseed/reset of the built-in admin
entities (all admin only)."""

from __future__ import annotations

from typing import Any

from dominus_local import identity
from dominus_local.errors import invalid
from dominus_local.faults import FaultInjector
from dominus_local.routing import RequestContext, ServiceRouter
from dominus_local.settings import FAULT_ERROR_STATUSES

__all__ = ["router"]

router = ServiceRouter("admin")

MAX_COLD_START_SECONDS = 3600
MAX_LATENCY_MS = 60000
MAX_PATHS = 100


def _faults(ctx: RequestContext) -> FaultInjector:
    injector = ctx.state.extras["faults"]
    assert isinstance(injector, FaultInjector)
    return injector


@router.get("/api/admin/faults", admin=True)
async def get_faults(ctx: RequestContext) -> dict[str, Any]:
    return _faults(ctx).describe()


@router.post("/api/admin/faults", admin=True)
async def set_faults(ctx: RequestContext) -> dict[str, Any]:
    """Replace the fault settings as a whole; a field left out takes its neutral value (``{}``: no faults).

    Ranges (400 outside them): ``cold_start_seconds`` 0 to 3600, ``latency_ms`` 0 to 60000, ``error_rate`` 0
    to 1, ``error_status`` one of 429/500/502/503/504, ``paths`` up to 100 prefixes that start with ``/``.
    The answer reports ``cold_start_seconds`` left, rounded up to whole seconds.
    """
    fields = ctx.fields
    cold_start = fields.number("cold_start_seconds", default=0, min_value=0, max_value=MAX_COLD_START_SECONDS)
    latency = fields.int("latency_ms", default=0, min_value=0, max_value=MAX_LATENCY_MS)
    rate = fields.number("error_rate", default=0, min_value=0, max_value=1)
    status = fields.int("error_status", default=503)
    if status not in FAULT_ERROR_STATUSES:
        raise invalid("error_status", f"must be one of {', '.join(map(str, FAULT_ERROR_STATUSES))}")
    paths = fields.str_list("paths", required=False, max_items=MAX_PATHS)
    for index, prefix in enumerate(paths or []):
        if not prefix.startswith("/"):
            raise invalid(f"paths[{index}]", "must start with '/'")
    drop = fields.bool("drop_after_read", default=False)
    injector = _faults(ctx)
    injector.replace(
        cold_start_seconds=float(cold_start),
        latency_ms=latency,
        error_rate=float(rate),
        error_status=status,
        paths=paths,
        drop_after_read=drop,
    )
    return injector.describe()


@router.post("/api/admin/reseed", admin=True)
async def reseed_admin_category(ctx: RequestContext) -> dict[str, Any]:
    """Create whatever is missing of the built-in admin entities; existing ones are left alone."""
    async with ctx.state.db.begin() as conn:
        seeded = await identity.reseed_admin_category(conn)
    created = sum(seeded.values())
    message = f"Created {created} missing admin entities" if created else "The admin entities were all present"
    return {"success": True, "message": message, "seeded_entities": seeded}


@router.post("/api/admin/reset", admin=True)
async def reset_admin_category(ctx: RequestContext) -> dict[str, Any]:
    """Delete the built-in admin entities and their links, seed them again, relink the bootstrap client."""
    async with ctx.state.db.begin() as conn:
        operations = await identity.reset_admin_category(conn)
    return {"success": True, "message": "The admin entities were reset", "operations": operations}
