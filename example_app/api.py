"""The JSON routes beside the pages, under ``/api`` and in ``/docs``: the same features for scripts and
front ends, each built on the ``Depends`` providers of ``dominus_fastapi.deps`` and the same guards.

Errors keep the library's body ``{detail, code, request_id}``; invalid input is FastAPI's 422 naming the
field, and nothing is written.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, File, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from dominus_fastapi import NotFoundError, require_page_access, require_scopes
from dominus_fastapi.deps import (
    AuthDep,
    CurrentUser,
    DbDep,
    DominusDep,
    FilesDep,
    LogsDep,
    PortalDep,
    RedisDep,
)
from example_app import backend
from example_app.backend import (
    LOG_CATEGORY,
    MAX_UPLOAD_BYTES,
    REPORTS_TABLE,
    ReportIn,
    ReportTablesDep,
    TenantDep,
)
from example_app.errors import AppError

__all__ = ["router"]

ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: {"description": "Not signed in, or the session has ended"},
    403: {"description": "Signed in but not allowed"},
}

router = APIRouter(prefix="/api", tags=["example"], responses=ERRORS)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Tenant(_Open):
    id: str
    slug: str
    name: str


class MeOut(BaseModel):
    id: str
    username: str | None
    email: str | None
    tenant: Tenant | None
    tenants: list[Tenant]
    roles: list[str]
    scopes: list[str]


class NavigationOut(_Open):
    items: list[dict[str, Any]]


class ViewsOut(BaseModel):
    value: int = Field(description="Dashboard views in the active tenant (a cache counter kept for a day)")


class ReportRow(_Open):
    id: str
    title: str
    amount: Any
    note: str | None
    author: str
    created_at: Any


class ReportPage(BaseModel):
    rows: list[ReportRow]
    total: int


class FileOut(_Open):
    id: str
    path: str
    filename: str
    content_type: str
    size: int
    sha256: str


class FileList(BaseModel):
    files: list[FileOut]


class UserOut(_Open):
    id: str
    username: str
    email: str | None
    status: str


class UserPage(BaseModel):
    items: list[UserOut]
    total: int


class InviteIn(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    email: str = Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    tenant: str = Field(min_length=1, max_length=100, description="The tenant the user joins: its id or slug")
    role: str = Field(min_length=1, max_length=100, description="The role the user gets: its id or name")


class LogEntry(_Open):
    message: str
    level: str


class LogList(BaseModel):
    entries: list[LogEntry]


@router.get("/me", response_model=MeOut, summary="The signed-in user and the active tenant")
async def me(user: CurrentUser, portal: PortalDep) -> dict[str, Any]:
    data = await portal.me()
    person: dict[str, Any] = dict(data.get("user") or {})
    return {
        "id": user.id,
        "username": person.get("username"),
        "email": person.get("email"),
        "tenant": data.get("tenant"),
        "tenants": data.get("tenants") or [],
        "roles": list(data.get("roles") or []),
        "scopes": list(data.get("scopes") or []),
    }


@router.get("/navigation", response_model=NavigationOut, summary="The user's navigation tree")
async def navigation(user: CurrentUser, portal: PortalDep) -> Any:
    return await portal.get_navigation()


@router.post("/views", response_model=ViewsOut, summary="Count one dashboard view in the active tenant")
async def count_view(tenant: TenantDep, redis: RedisDep) -> dict[str, int]:
    counter = await redis.incr(f"views:dashboard:{tenant.id}", ttl=backend.VIEW_COUNTER_TTL)
    return {"value": int(counter["value"])}


@router.get(
    "/reports",
    response_model=ReportPage,
    summary="The active tenant's report rows (an audited read)",
    dependencies=[Depends(require_page_access("/dashboard/reports"))],
)
async def list_reports(
    tenant: TenantDep,
    user: CurrentUser,
    client: DominusDep,
    db: DbDep,
    tables: ReportTablesDep,
    reason: Annotated[str, Query(min_length=3, max_length=200, description="Why the rows are read")],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    await tables.ensure(client, tenant.schema)
    return await db.query(
        REPORTS_TABLE, tenant.schema, sort_by="created_at", sort_order="DESC", limit=limit, offset=offset,
        reason=reason, actor=user.id,
    )


@router.post(
    "/reports",
    response_model=ReportRow,
    status_code=201,
    summary="Add a report row with the reason recorded in the audit trail",
    dependencies=[Depends(require_page_access("/dashboard/reports", recheck=True))],
)
async def add_report(
    body: ReportIn,
    tenant: TenantDep,
    user: CurrentUser,
    client: DominusDep,
    db: DbDep,
    logs: LogsDep,
    tables: ReportTablesDep,
) -> Any:
    await tables.ensure(client, tenant.schema)
    row = await db.insert(
        REPORTS_TABLE,
        {"title": body.title, "amount": str(body.amount), "note": body.note, "author": tenant.username},
        tenant.schema,
        reason=body.reason,
        actor=user.id,
    )
    await logs.info("Report row added", {"event": "report_added", "row": row.get("id"), "tenant": tenant.slug},
                    LOG_CATEGORY)
    return row


@router.get(
    "/files",
    response_model=FileList,
    summary="The active tenant's files",
    dependencies=[Depends(require_page_access("/dashboard/files"))],
)
async def list_files(tenant: TenantDep, files: FilesDep) -> dict[str, Any]:
    listing = await files.list(category=tenant.files_category, limit=1000)
    return {"files": listing["objects"]}


@router.post(
    "/files",
    response_model=FileOut,
    status_code=201,
    summary="Upload a file to the active tenant (needs files.write)",
    dependencies=[
        Depends(require_page_access("/dashboard/files", recheck=True)),
        Depends(require_scopes("files.write", recheck=True)),
    ],
)
async def upload_file(
    tenant: TenantDep, user: CurrentUser, files: FilesDep, logs: LogsDep, upload: UploadFile = File(...)
) -> Any:
    if "files.write" not in user.scopes:
        raise AppError(403, "Uploading needs the files.write scope", "missing_scope")
    if not upload.filename:
        raise AppError(400, "upload: the part has no file name", "validation_failed")
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise AppError(413, f"upload: larger than {MAX_UPLOAD_BYTES} bytes", "payload_too_large")
    stored = await files.upload(
        data, upload.filename, upload.content_type or "application/octet-stream", category=tenant.files_category
    )
    await logs.info("File uploaded", {"event": "file_uploaded", "file": stored["id"], "size": stored["size"],
                                      "tenant": tenant.slug}, LOG_CATEGORY)
    return stored


@router.get(
    "/files/content",
    summary="Download one of the active tenant's files",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, 404: {"description": "No such file"}},
    dependencies=[Depends(require_page_access("/dashboard/files"))],
)
async def download_file(tenant: TenantDep, files: FilesDep, path: Annotated[str, Query(min_length=1)]) -> Any:
    try:
        found = await files.fetch(category=tenant.files_category, path=path)
    except NotFoundError:
        raise AppError(404, f"No file {path!r} in this tenant", "not_found") from None
    return backend.attachment(found)


@router.get(
    "/users",
    response_model=UserPage,
    summary="Every user, newest first (administrators)",
    dependencies=[Depends(require_page_access("/dashboard/admin/users"))],
)
async def list_users(
    auth: AuthDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    return await auth.list_users(limit=limit, offset=offset)


@router.post(
    "/users/invitations",
    response_model=UserOut,
    status_code=201,
    summary="Invite a user by e-mail (administrators)",
    dependencies=[Depends(require_page_access("/dashboard/admin/users", recheck=True))],
)
async def invite_user(body: InviteIn, user: CurrentUser, client: DominusDep, logs: LogsDep) -> Any:
    """Create an invited user in a tenant with a role; 422 ``invalid_choice`` names an unknown tenant or role."""
    tenants, roles = await backend.invite_choices(client)
    tenant = next((t for t in tenants if body.tenant in (t["id"], t["slug"])), None)
    role = next((r for r in roles if body.role in (r["id"], r["name"])), None)
    if tenant is None:
        raise AppError(422, f"tenant: no tenant {body.tenant!r}", "invalid_choice")
    if role is None:
        raise AppError(422, f"role: no role {body.role!r}", "invalid_choice")
    created = await backend.invite(client, body.username, body.email, tenant, role)
    await logs.info("User invited", {"event": "user_invited", "user": created["id"], "by": user.id,
                                     "tenant": tenant["slug"], "role": role["name"]}, LOG_CATEGORY)
    return created


@router.get("/logs", response_model=LogList, summary="The app's log entries, newest first (administrators)")
async def query_logs(
    user: CurrentUser,
    logs: LogsDep,
    level: Literal["debug", "info", "notice", "warn", "error", "critical"] | None = None,
    search: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    if not user.is_admin:
        raise AppError(403, "Only administrators may read the app's logs", "admin_only")
    return {"entries": await logs.query(level=level, category=LOG_CATEGORY, search=search, limit=limit)}
