"""A test-only service whose endpoints expose what the dispatcher gives handlers, one per auth kind and
behaviour (counting, failing, waiting), so that the dispatcher's rules can be checked one by one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from dominus_local.errors import ApiError
from dominus_local.routing import RequestContext, ServiceRouter


@dataclass
class ProbeState:
    runs: dict[str, int] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    failures_left: int = 0

    def count(self, name: str) -> int:
        self.runs[name] = self.runs.get(name, 0) + 1
        return self.runs[name]


def build() -> tuple[ServiceRouter, ProbeState]:
    router = ServiceRouter("probe")
    probe = ProbeState()

    def who(ctx: RequestContext) -> dict[str, Any]:
        p = ctx.principal
        if p is None:
            return {"principal": None, "psk_given": ctx.psk is not None}
        return {"subject_type": p.subject_type, "sub": p.sub, "sid": p.sid, "admin": p.is_admin}

    @router.get("/api/probe/none", auth="none")
    async def none(ctx: RequestContext) -> dict[str, Any]:
        return who(ctx)

    @router.get("/api/probe/psk", auth="psk")
    async def psk(ctx: RequestContext) -> dict[str, Any]:
        return who(ctx)

    @router.get("/api/probe/service")
    async def service(ctx: RequestContext) -> dict[str, Any]:
        return who(ctx)

    @router.get("/api/probe/user", auth="user")
    async def user(ctx: RequestContext) -> dict[str, Any]:
        return who(ctx)

    @router.get("/api/probe/either", auth="service_or_user")
    async def either(ctx: RequestContext) -> dict[str, Any]:
        return who(ctx)

    @router.get("/api/probe/admin", admin=True)
    async def admin(ctx: RequestContext) -> dict[str, Any]:
        return who(ctx)

    @router.post("/api/probe/count")
    async def count(ctx: RequestContext) -> dict[str, Any]:
        return {"run": probe.count("count"), "body": ctx.body}

    @router.post("/api/probe/credential", replay=False)
    async def credential(ctx: RequestContext) -> dict[str, Any]:
        return {"run": probe.count("credential")}

    @router.post("/api/probe/reject")
    async def reject(ctx: RequestContext) -> dict[str, Any]:
        probe.count("reject")
        raise ApiError("conflict", "Already there")

    @router.post("/api/probe/flaky")
    async def flaky(ctx: RequestContext) -> dict[str, Any]:
        run = probe.count("flaky")
        if probe.failures_left > 0:
            probe.failures_left -= 1
            raise ApiError("service_unavailable", "Backend away", headers={"Retry-After": "1"})
        return {"run": run}

    @router.post("/api/probe/crash")
    async def crash(ctx: RequestContext) -> dict[str, Any]:
        run = probe.count("crash")
        if run == 1:
            raise RuntimeError("database password hunter2 leaked into an exception")
        return {"run": run}

    @router.post("/api/probe/db-crash")
    async def db_crash(ctx: RequestContext) -> dict[str, Any]:
        from sqlalchemy import text

        secret = "-".join(("hunter3", "value"))  # built at run time, so tracebacks' source lines never show it
        async with ctx.state.db.begin() as conn:
            await conn.execute(text("SELECT * FROM no_such_table WHERE a = :secret"), {"secret": secret})
        return {}

    @router.post("/api/probe/slow")
    async def slow(ctx: RequestContext) -> dict[str, Any]:
        run = probe.count("slow")
        probe.entered.set()
        await probe.release.wait()
        return {"run": run}

    @router.put("/api/probe/items/{item_id}")
    async def put_item(ctx: RequestContext) -> dict[str, Any]:
        return {"id": ctx.path_uuid("item_id"), "body": ctx.body}

    @router.delete("/api/probe/items/{item_id}")
    async def delete_item(ctx: RequestContext) -> dict[str, Any]:
        return {"id": ctx.path_uuid("item_id"), "ids": ctx.fields.str_list("ids", required=False)}

    return router, probe
