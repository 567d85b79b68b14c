"""The HTML pages: server-rendered Jinja2 templates and plain HTML forms (the tenant switcher alone uses a few
lines of JavaScript, to call the portal router's JSON route).

Every signed-in page reads the user, the active tenant, the navigation tree and the theme from the backend
with the session's own token (:class:`Page`), so a session that was ended elsewhere (a password reset, a
sign-out on another device) is noticed on the next page: the error handlers send the browser to the sign-in
page. Forms post back to the page; bad input re-renders the form with the field and the reason, and nothing
is written.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from pydantic import ValidationError as PydanticValidationError
from starlette.responses import HTMLResponse, RedirectResponse, Response

from dominus_fastapi import (
    AuthenticationError,
    ConflictError,
    Dominus,
    DominusError,
    NotFoundError,
    ValidationError,
    end_user_of,
    require_page_access,
    require_scopes,
)
from dominus_fastapi.deps import (
    AuthDep,
    CourierDep,
    CurrentUser,
    DbDep,
    DominusDep,
    FilesDep,
    LogsDep,
    PortalDep,
    RedisDep,
    SessionDep,
    get_dominus,
    get_portal,
    get_session,
)
from example_app import backend
from example_app.backend import LOG_CATEGORY, MAX_UPLOAD_BYTES, REPORTS_TABLE, ReportIn, ReportTablesDep
from example_app.errors import AppError
from example_app.security import is_loopback_address, is_loopback_host
from example_app.text import plain_field_errors

__all__ = ["Page", "error_context", "router"]

LOGIN: Final = "/login"
ADMIN_HOME: Final = "/admin"
"""The page the backend's navigation links in the Administration tenant (Guardian's built-in admin page)."""
ADMIN_PAGE: Final = "/dashboard/admin/users"
REPORTS_PAGE: Final = "/dashboard/reports"
FILES_PAGE: Final = "/dashboard/files"
THEMES: Final = ("system", "light", "dark")
FLASH_COOKIE: Final = "example_flash"
LOGIN_ERRORS: Final = {
    "invalid_credentials": "Wrong username or password.",
    "account_inactive": "This account is not active.",
    "validation_failed": "Enter a username and a password.",
    "email_not_verified": "This account's e-mail address is not verified yet: open the link in the verification mail.",
    "rate_limited": "Too many attempts. Wait a minute, then try again.",
    "account_locked": "Too many failed attempts: this account is locked for a while. Try again later.",
}
DEFAULT_INVITE_ROLE: Final = "member"
"""The role the invitation form proposes: the demo data's everyday role (dashboard and files)."""
ACCESS_REASONS: Final = {
    "tenant_not_allowed": "is not offered in this tenant",
    "page_inactive": "is switched off at the moment",
    "excluded_scope": "is closed to one of your permissions",
    "excluded_role": "is closed to one of your roles",
}

ACCESS_DENIED: Final = re.compile(r"^Access to (?P<path>/\S*) denied: (?P<reason>\w+)$")
"""The ``detail`` of ``require_page_access``'s refusal (``dominus_fastapi.guards``)."""

router = APIRouter(include_in_schema=False)


@dataclass
class Page:
    """What every signed-in page shows: the user, the tenant, the navigation and the theme."""

    request: Request
    user: CurrentUser
    me: Mapping[str, Any]
    navigation: list[dict[str, Any]]
    preferences: Mapping[str, Any]
    flash: dict[str, str] = field(default_factory=dict)

    @property
    def tenant(self) -> Mapping[str, Any] | None:
        tenant: Mapping[str, Any] | None = self.me.get("tenant")
        return tenant

    @property
    def username(self) -> str:
        person = self.me.get("user") or {}
        return str(person.get("username") or self.user.id)

    @property
    def is_admin(self) -> bool:
        """An administrator holds the ``admin`` role (spec 5.9): the outbox and the logs are theirs."""
        return self.user.is_admin

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        """Render ``template`` inside the signed-in layout."""
        response = render(
            self.request,
            template,
            status_code,
            page=self,
            theme=self.preferences.get("theme", "system"),
            **context,
        )
        if FLASH_COOKIE in self.request.cookies:
            response.delete_cookie(FLASH_COOKIE, path="/", httponly=True, samesite="lax")
        return response


async def get_page(request: Request, user: CurrentUser, portal: PortalDep) -> Page:
    """The :class:`Page` of a signed-in request: three backend reads with the user's token, in parallel."""
    me, navigation, preferences = await asyncio.gather(
        portal.me(), portal.get_navigation(), portal.get_preferences()
    )
    return Page(request, user, dict(me), list(navigation.get("items") or []), dict(preferences), read_flash(request))


PageDep = Annotated[Page, Depends(get_page)]


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a template with the app's templates and the flags every layout needs."""
    templates = request.app.state.templates
    context.setdefault("theme", "system")
    context.setdefault("page", None)
    context["dev_outbox"] = bool(request.app.state.dev_outbox)
    context["on_loopback"] = is_loopback_host(request.app.state.host)
    response: HTMLResponse = templates.TemplateResponse(request, template, context, status_code=status_code)
    return response


def back(path: str, **flash: str) -> RedirectResponse:
    """A 303 back to ``path`` with a message for the next page (``ok=`` or ``error=``).

    The message travels in a short-lived cookie, not in the URL, so that nobody can put words on the app's
    pages with a crafted link; the next page shows it once and deletes the cookie.
    """
    response = RedirectResponse(path, status_code=303)
    if flash:
        value = base64.urlsafe_b64encode(json.dumps(flash).encode()).decode()
        response.set_cookie(FLASH_COOKIE, value, max_age=60, path="/", httponly=True, samesite="lax")
    return response


def read_flash(request: Request) -> dict[str, str]:
    """The message :func:`back` left for this page (``ok`` and/or ``error``), if any."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return {}
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {key: str(data[key])[:500] for key in ("ok", "error") if data.get(key)}


def backend_message(exc: DominusError) -> str:
    """The backend's sentence, with the field it names (it never carries secrets, spec 4.2)."""
    field_name = exc.details.get("field") if isinstance(exc.details, Mapping) else None
    return f"{field_name}: {exc.message}" if field_name and str(field_name) not in exc.message else exc.message


def token_trouble(exc: DominusError) -> bool:
    """Whether a link's token was refused (unknown, used or expired), so the page should offer a new link."""
    field_name = exc.details.get("field") if isinstance(exc.details, Mapping) else None
    return field_name == "token" or exc.message.startswith("token")


def link_message(exc: DominusError, what: str) -> str:
    """A refused link's token in plain words: ``what`` (``This reset link``) was used, expired or is not valid."""
    message = exc.message
    if "already been used" in message:
        return f"{what} has already been used: each link works once."
    if "expired" in message:
        return f"{what} has expired."
    return f"{what} is not valid (it may have been replaced by a newer one, or copied incompletely)."


# --- anonymous pages -----------------------------------------------------------------------------------------


@router.get("/")
async def home(session: SessionDep) -> RedirectResponse:
    """Signed-in visitors go to their dashboard, anonymous ones to the sign-in page."""
    return RedirectResponse("/dashboard" if session is not None else LOGIN, status_code=303)


@router.get("/login", response_class=HTMLResponse, response_model=None)
async def login_page(
    request: Request,
    session: SessionDep,
    error: str | None = None,
    next: str = "/dashboard",
    notice: str | None = None,
) -> Response:
    """The sign-in form; it posts to the portal router's form sign-in (``POST /auth/login``).

    A visitor who is already signed in goes to the dashboard instead. After a failed sign-in the form comes
    back with the username filled in again by ``app.js`` (it never travels in the URL).
    """
    if session is not None:
        return RedirectResponse("/dashboard", status_code=303)
    message = LOGIN_ERRORS.get(error or "", "Sign-in failed.") if error else None
    status = 401 if error in ("invalid_credentials", "account_inactive") else 200
    return render(request, "login.html", status, error=message, next=next, notice=notice)


@router.get("/forgot-password", response_class=HTMLResponse)
async def forgot_password_form(request: Request) -> HTMLResponse:
    return render(request, "forgot_password.html")


@router.post("/forgot-password", response_class=HTMLResponse)
async def forgot_password(request: Request, portal: PortalDep, logs: LogsDep, email: str = Form("")) -> HTMLResponse:
    """Ask Portal for a reset mail; the answer is the same whether or not the address is known."""
    email = email.strip()
    if "@" not in email or len(email) > 320:
        return render(request, "forgot_password.html", 400, error="email: enter an e-mail address", email=email)
    try:
        await portal.request_password_reset(email, **end_user_of(request))
    except ValidationError as exc:
        return render(request, "forgot_password.html", 400, error=backend_message(exc), email=email)
    await logs.info("Password reset requested", {"event": "password_reset_requested"}, LOG_CATEGORY)
    return render(request, "forgot_password.html", sent=True, email=email)


@router.get("/reset-password", response_class=HTMLResponse)
async def reset_password_form(request: Request, token: str = "") -> HTMLResponse:
    return render(request, "reset_password.html", token=token)


@router.post("/reset-password", response_model=None)
async def reset_password(
    request: Request,
    portal: PortalDep,
    logs: LogsDep,
    token: str = Form(""),
    new_password: str = Form(""),
    confirm_password: str = Form(""),
) -> Response:
    """Set a new password with the mailed token; Portal ends every session of the user."""
    error = None
    if not token:
        error = "token: the link has no token; open the link from the e-mail"
    elif len(new_password) < 8:
        error = "new_password: must be at least 8 characters"
    elif new_password != confirm_password:
        error = "confirm_password: does not match the new password"
    if error is None:
        try:
            await portal.confirm_password_reset(token, new_password, **end_user_of(request))
        except ValidationError as exc:
            if token_trouble(exc):
                return render(request, "reset_password.html", 400, spent=link_message(exc, "This reset link"))
            error = backend_message(exc)
    if error is not None:
        return render(request, "reset_password.html", 400, token=token, error=error)
    await logs.info("Password reset completed", {"event": "password_reset"}, LOG_CATEGORY)
    return RedirectResponse(f"{LOGIN}?notice=password_reset", status_code=303)


@router.get("/accept-invitation", response_class=HTMLResponse)
async def accept_invitation_form(request: Request, token: str = "") -> HTMLResponse:
    return render(request, "accept_invitation.html", token=token)


@router.post("/accept-invitation", response_model=None)
async def accept_invitation(
    request: Request,
    portal: PortalDep,
    logs: LogsDep,
    token: str = Form(""),
    password: str = Form(""),
    confirm_password: str = Form(""),
) -> Response:
    """Set the invited user's password. Portal signs them in; this page ends that session at once and sends
    them to the sign-in form, so that the browser's session always starts there."""
    error = None
    if not token:
        error = "token: the link has no token; open the link from the e-mail"
    elif len(password) < 8:
        error = "password: must be at least 8 characters"
    elif password != confirm_password:
        error = "confirm_password: does not match the password"
    if error is None:
        try:
            login = await portal.accept_invitation(token, password, **end_user_of(request))
        except (ValidationError, AuthenticationError) as exc:
            if isinstance(exc, ValidationError) and token_trouble(exc):
                return render(request, "accept_invitation.html", 400,
                              spent=link_message(exc, "This invitation link"))
            error = backend_message(exc)
        else:
            await portal.logout(user_token=login["access_token"])
            await logs.info("Invitation accepted", {"event": "invitation_accepted", "user": login["user"]["id"]},
                            LOG_CATEGORY)
            return RedirectResponse(f"{LOGIN}?notice=invitation_accepted", status_code=303)
    return render(request, "accept_invitation.html", 400, token=token, error=error)


@router.get("/verify-email", response_class=HTMLResponse)
async def verify_email(request: Request, portal: PortalDep, logs: LogsDep, token: str = "") -> HTMLResponse:
    """The link of a verification mail: confirm the address with the token it carries, then say so.

    A GET does it, so that the link works in one click; the token is single-use, so a second visit (or a
    mail scanner's) finds it spent and the page says so.
    """
    if not token:
        error = "token: the link has no token; open the link from the e-mail"
        return render(request, "verify_email.html", 400, error=error)
    try:
        result = await portal.verify_email(token, **end_user_of(request))
    except ValidationError as exc:
        message = link_message(exc, "This verification link") if token_trouble(exc) else backend_message(exc)
        return render(request, "verify_email.html", 400, error=message, resend=token_trouble(exc))
    user = result.get("user") or {}
    await logs.info("E-mail address verified", {"event": "email_verified", "user": user.get("id")}, LOG_CATEGORY)
    return render(request, "verify_email.html", verified=True)


@router.post("/verify-email/resend", response_class=HTMLResponse)
async def resend_verification(request: Request, portal: PortalDep, email: str = Form("")) -> HTMLResponse:
    """Send a new verification link; the answer is the same whether or not the address awaits one."""
    email = email.strip()
    if "@" not in email or len(email) > 320:
        return render(request, "verify_email.html", 400, error="E-mail address: enter an e-mail address",
                      resend=True, email=email)
    try:
        await portal.resend_verification(email, **end_user_of(request))
    except ValidationError as exc:
        return render(request, "verify_email.html", 400, error=backend_message(exc), resend=True, email=email)
    return render(request, "verify_email.html", resent=True, email=email)


async def outbox_enabled(request: Request) -> None:
    """404 unless the outbox is on (loopback bind, local backend) and the connection comes from loopback."""
    client = request.client
    if not request.app.state.dev_outbox or not is_loopback_address(client.host if client else None):
        raise AppError(404, "The outbox is only shown on a loopback address with a local backend", "not_found")


def require_admin(page: Page) -> None:
    """403 unless the signed-in user is an administrator."""
    if not page.is_admin:
        raise AppError(403, "Only administrators may open this page", "admin_only")


@router.get("/outbox", response_class=HTMLResponse, dependencies=[Depends(outbox_enabled)])
async def outbox(page: PageDep, courier: CourierDep) -> HTMLResponse:
    """The dev outbox: the mails the backend sent, reset links included, so administrators only (and only
    where :func:`outbox_enabled` lets it be on at all)."""
    require_admin(page)
    mails = await courier.outbox(limit=50)
    return page.render("outbox.html", mails=mails["items"], total=mails["total"])


# --- signed-in pages -----------------------------------------------------------------------------------------


@router.get("/dashboard", response_class=HTMLResponse)
@require_page_access("/dashboard", redirect_to=LOGIN)
async def dashboard(page: PageDep, redis: RedisDep) -> HTMLResponse:
    """The signed-in user, the active tenant (with the switcher), the navigation and a view counter."""
    tenant = page.tenant
    views = None
    if tenant is not None:
        counter = await redis.incr(f"views:dashboard:{tenant['id']}", ttl=backend.VIEW_COUNTER_TTL)
        views = int(counter["value"])
    return page.render("dashboard.html", views=views)


@router.get(ADMIN_HOME, response_class=HTMLResponse)
@require_page_access(ADMIN_HOME, redirect_to=LOGIN)
async def admin_home(page: PageDep, auth: AuthDep) -> HTMLResponse:
    """The Administration tenant's start page (its navigation links here): counts and the admin pages."""
    users, tenants, roles = await asyncio.gather(
        auth.list_users(limit=1), auth.list_tenants(limit=1), auth.list_roles(limit=1)
    )
    counts = {"users": users["total"], "tenants": tenants["total"], "roles": roles["total"]}
    return page.render("admin_home.html", counts=counts)


async def _admin_users_view(
    page: Page, client: Dominus, offset: int = 0, status: int = 200, **context: Any
) -> HTMLResponse:
    users, (tenants, roles) = await asyncio.gather(
        client.auth.list_users(limit=50, offset=offset), backend.invite_choices(client)
    )
    context.setdefault("form", {
        "tenant_id": page.tenant["id"] if page.tenant else "",
        "role_id": next((r["id"] for r in roles if r["name"] == DEFAULT_INVITE_ROLE), ""),
    })
    return page.render("admin_users.html", status, users=users["items"], total=users["total"], offset=offset,
                       tenants=tenants, roles=roles, **context)


@router.get(ADMIN_PAGE, response_class=HTMLResponse)
@require_page_access(ADMIN_PAGE, redirect_to=LOGIN)
async def admin_users(
    page: PageDep, client: DominusDep, offset: Annotated[int, Query(ge=0)] = 0
) -> HTMLResponse:
    """Every user (50 a page), newest first, and the invitation form."""
    return await _admin_users_view(page, client, offset)


@router.post(f"{ADMIN_PAGE}/invite", response_model=None)
@require_page_access(ADMIN_PAGE, redirect_to=LOGIN, recheck=True)
async def invite_user(
    page: PageDep,
    client: DominusDep,
    logs: LogsDep,
    username: str = Form(""),
    email: str = Form(""),
    tenant_id: str = Form(""),
    role_id: str = Form(""),
) -> Response:
    """Create an invited user in a tenant with a role; the backend mails the invitation (see the outbox).

    The tenant and the role are checked against Guardian's lists first, so bad input creates nobody (then
    :func:`example_app.backend.invite`).
    """
    username, email = username.strip(), email.strip()
    form = {"username": username, "email": email, "tenant_id": tenant_id, "role_id": role_id}
    tenants, roles = await backend.invite_choices(client)
    tenant = next((t for t in tenants if t["id"] == tenant_id), None)
    role = next((r for r in roles if r["id"] == role_id), None)
    error = None
    if not username:
        error = "Username: is required"
    elif "@" not in email:
        error = "E-mail: enter an e-mail address"
    elif tenant is None:
        error = "Tenant: choose the tenant the new user joins"
    elif role is None:
        error = "Role: choose the role the new user gets"
    else:
        try:
            created = await backend.invite(client, username, email, tenant, role, page.username)
        except (ValidationError, ConflictError) as exc:
            error = backend_message(exc)
        else:
            await logs.info(
                "User invited",
                {"event": "user_invited", "user": created["id"], "by": page.username, "tenant": tenant["slug"],
                 "role": role["name"]},
                LOG_CATEGORY,
            )
            name = tenant.get("display_name") or tenant["name"]
            return back(ADMIN_PAGE, ok=f"Invitation sent to {email}: {role['name']} in {name}.")
    return await _admin_users_view(page, client, 0, 400, error=error, form=form)


async def _reports_view(
    page: Page, client: Dominus, tables: backend.ReportTables, status: int = 200, **context: Any
) -> HTMLResponse:
    tenant = backend.tenant_of(page.me)
    await tables.ensure(client, tenant.schema)
    db, logs = client.db, client.logs
    rows = await db.query(
        REPORTS_TABLE, tenant.schema, sort_by="created_at", sort_order="DESC", limit=50,
        reason="Show the reports page", actor=page.user.id,
    )
    audit = await logs.query(category="audit", search=f"{tenant.schema}.{REPORTS_TABLE}", limit=10)
    actors = await _names_of(client, {str((e.get("context") or {}).get("actor") or "") for e in audit})
    return page.render("reports.html", status, rows=rows["rows"], total=rows["total"], audit=audit,
                       actors=actors, schema=tenant.schema, **context)


async def _names_of(client: Dominus, user_ids: set[str]) -> dict[str, str]:
    """Usernames (with the e-mail address) of the audit trail's actors, read from Guardian; unknown ids stay."""
    ids = sorted(i for i in user_ids if i)

    async def name(user_id: str) -> str:
        try:
            user = await client.auth.get_user(user_id)
        except DominusError:
            return user_id
        email = user.get("email")
        return f"{user['username']} ({email})" if email else str(user["username"])

    return dict(zip(ids, await asyncio.gather(*(name(i) for i in ids)), strict=True))


@router.get(REPORTS_PAGE, response_class=HTMLResponse)
@require_page_access(REPORTS_PAGE, redirect_to=LOGIN)
async def reports(page: PageDep, client: DominusDep, tables: ReportTablesDep) -> HTMLResponse:
    """The active tenant's report rows (an audited read) and the last audit entries of the table."""
    return await _reports_view(page, client, tables)


@router.post(REPORTS_PAGE, response_model=None)
@require_page_access(REPORTS_PAGE, redirect_to=LOGIN, recheck=True)
async def add_report(
    page: PageDep,
    client: DominusDep,
    db: DbDep,
    logs: LogsDep,
    tables: ReportTablesDep,
    title: str = Form(""),
    amount: str = Form(""),
    note: str = Form(""),
    reason: str = Form(""),
) -> Response:
    """Write one row with the reason given in the form; bad input writes nothing."""
    form = {"title": title, "amount": amount, "note": note, "reason": reason}
    try:
        row = ReportIn.model_validate(form)
    except PydanticValidationError as exc:
        return await _reports_view(page, client, tables, 400, errors=plain_field_errors(exc), form=form)
    tenant = backend.tenant_of(page.me)
    await tables.ensure(client, tenant.schema)
    stored = await db.insert(
        REPORTS_TABLE,
        {"title": row.title, "amount": str(row.amount), "note": row.note, "author": page.username},
        tenant.schema,
        reason=row.reason,
        actor=page.user.id,
    )
    await logs.info("Report row added", {"event": "report_added", "row": stored.get("id"), "tenant": tenant.slug},
                    LOG_CATEGORY)
    return back(REPORTS_PAGE, ok="Row added.")


@router.get(FILES_PAGE, response_class=HTMLResponse)
@require_page_access(FILES_PAGE, redirect_to=LOGIN)
async def files_page(page: PageDep, files: FilesDep) -> HTMLResponse:
    """The active tenant's files; the upload form for users who hold ``files.write``."""
    tenant = backend.tenant_of(page.me)
    listing = await files.list(category=tenant.files_category, limit=200)
    return page.render(
        "files.html", objects=listing["objects"], can_write="files.write" in page.user.scopes,
        max_bytes=MAX_UPLOAD_BYTES,
    )


@router.post(FILES_PAGE, response_model=None)
@require_page_access(FILES_PAGE, redirect_to=LOGIN, recheck=True)
@require_scopes("files.write", recheck=True)
async def upload_file(page: PageDep, files: FilesDep, logs: LogsDep, upload: UploadFile = File(...)) -> Response:
    """Store the uploaded file in the tenant's category (``files.write`` needed)."""
    if "files.write" not in page.user.scopes:
        raise AppError(403, "Uploading needs the files.write scope", "missing_scope")
    tenant = backend.tenant_of(page.me)
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    error = None
    if not upload.filename:
        error = "upload: choose a file"
    elif len(data) > MAX_UPLOAD_BYTES:
        error = f"upload: larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB"
    if error is None:
        try:
            stored = await files.upload(
                data, str(upload.filename), upload.content_type or "application/octet-stream",
                category=tenant.files_category,
            )
        except ValidationError as exc:
            error = backend_message(exc)
        else:
            await logs.info("File uploaded", {"event": "file_uploaded", "file": stored["id"], "size": stored["size"],
                                              "tenant": tenant.slug}, LOG_CATEGORY)
            return back(FILES_PAGE, ok=f"Uploaded {stored['filename']}.")
    listing = await files.list(category=tenant.files_category, limit=200)
    return page.render("files.html", 400, objects=listing["objects"], can_write=True, max_bytes=MAX_UPLOAD_BYTES,
                       error=error)


@router.get(f"{FILES_PAGE}/download", response_model=None)
@require_page_access(FILES_PAGE, redirect_to=LOGIN)
async def download_file(page: PageDep, files: FilesDep, path: str) -> Response:
    """The bytes of one of the tenant's files, as an attachment."""
    tenant = backend.tenant_of(page.me)
    try:
        found = await files.fetch(category=tenant.files_category, path=path)
    except NotFoundError:
        raise AppError(404, f"No file {path!r} in this tenant", "not_found") from None
    return backend.attachment(found)


@router.get("/dashboard/logs", response_class=HTMLResponse)
async def logs_page(
    page: PageDep,
    logs: LogsDep,
    level: str | None = None,
    search: str | None = None,
) -> HTMLResponse:
    """The app's own log entries, newest first, filtered by minimum level and text (administrators)."""
    require_admin(page)
    level = level if level in ("debug", "info", "notice", "warn", "error", "critical") else None
    entries = await logs.query(level=level, category=LOG_CATEGORY, search=search or None, limit=100)
    return page.render("logs.html", entries=entries, level=level or "", search=search or "")


@router.get("/dashboard/account", response_class=HTMLResponse)
async def account(page: PageDep, portal: PortalDep) -> HTMLResponse:
    """Profile, preferences, password and the user's sessions."""
    profile, sessions = await asyncio.gather(portal.get_profile(), portal.list_sessions())
    return page.render("account.html", profile=profile, sessions=sessions["items"], themes=THEMES)


@router.post("/dashboard/account/sessions/{session_id}/end", response_model=None)
async def end_session(page: PageDep, portal: PortalDep, session_id: str) -> Response:
    """End one of the user's sessions (another device's; ending this one is signing out)."""
    if session_id == page.user.session_id:
        return back("/dashboard/account", error="This is the session you are using: use Sign out to end it.")
    try:
        await portal.revoke_session(session_id)
    except (NotFoundError, ValidationError):
        return back("/dashboard/account", error="That session had already ended.")
    return back("/dashboard/account", ok="The session was ended: that browser is signed out.")


@router.post("/dashboard/account/profile", response_model=None)
async def save_profile(
    page: PageDep, portal: PortalDep, display_name: str = Form(""), bio: str = Form("")
) -> Response:
    try:
        await portal.update_profile(display_name=display_name.strip() or None, bio=bio.strip() or None)
    except ValidationError as exc:
        return back("/dashboard/account", error=backend_message(exc))
    return back("/dashboard/account", ok="Profile saved.")


@router.post("/dashboard/account/preferences", response_model=None)
async def save_preferences(page: PageDep, portal: PortalDep, theme: str = Form("system")) -> Response:
    if theme not in THEMES:
        return back("/dashboard/account", error=f"theme: must be one of {', '.join(THEMES)}")
    await portal.update_preferences(theme=theme)
    return back("/dashboard/account", ok="Preferences saved.")


@router.post("/dashboard/account/password", response_model=None)
async def change_password(
    page: PageDep,
    portal: PortalDep,
    logs: LogsDep,
    current_password: str = Form(""),
    new_password: str = Form(""),
    confirm_password: str = Form(""),
) -> Response:
    """Change the password; Portal ends the user's other sessions, this one stays."""
    if len(new_password) < 8:
        return back("/dashboard/account", error="new_password: must be at least 8 characters")
    if new_password != confirm_password:
        return back("/dashboard/account", error="confirm_password: does not match the new password")
    try:
        result = await portal.change_password(current_password, new_password)
    except AuthenticationError as exc:
        if exc.code != "invalid_credentials":
            raise  # the session itself has ended
        return back("/dashboard/account", error="current_password: is wrong")
    except ValidationError as exc:
        return back("/dashboard/account", error=backend_message(exc))
    await logs.info("Password changed", {"event": "password_changed", "user": page.user.id}, LOG_CATEGORY)
    ended = int(result.get("revoked_sessions") or 0)
    return back("/dashboard/account", ok=f"Password changed; {ended} other session(s) ended.")


# --- error pages ---------------------------------------------------------------------------------------------


async def signed_in_page(request: Request) -> Page | None:
    """The signed-in layout's :class:`Page` for an error answer, or ``None`` for an anonymous visitor.

    An error page keeps the menu, the tenant and Sign out. When the backend cannot answer the three reads
    (the error may be that very failure), the page shows the user's name and Sign out from the session alone.
    """
    session = await get_session(request)
    if session is None:
        return None
    client = await get_dominus(request)
    try:
        return await get_page(request, session.user, await get_portal(client, session))
    except DominusError:
        return None


async def _refusal(request: Request, page: Page, path: str, reason: str) -> dict[str, Any]:
    """A page refusal (``page_access_denied``) in plain words, with the tenants where the page opens."""
    tenants = list(page.me.get("tenants") or [])
    if not tenants:
        return {
            "title": "Your account has no access yet",
            "message": "Your account is not a member of any tenant, so no page is open to it. Ask the "
            "administrator who invited you to add you to a tenant with a role, then sign in again.",
            "no_access": True,
        }
    offer = None
    if reason == "missing_scope":
        with contextlib.suppress(DominusError):
            offer = await backend.where_page_opens(await get_dominus(request), page.user.id, path, tenants)
    current = page.tenant or {}
    here = str(current.get("display_name") or current.get("name") or "this tenant")
    name = offer.name if offer and offer.name else path
    others = [t for t in offer.tenants if t["id"] != current.get("id")] if offer else []
    if others:
        names = " and ".join(str(t.get("display_name") or t["name"]) for t in others)
        return {
            "title": f"{name} is not open to you in {here}",
            "message": f"{name} exists in {names}, where your roles give you access. Switch there to open it.",
            "switch_to": others,
            "next": path,
        }
    why = ACCESS_REASONS.get(reason, "needs a permission that your roles do not give you")
    denied: dict[str, Any] = {
        "title": f"{name} is not open to you",
        "message": f"{name} {why} in {here}, nor in your other tenants. An administrator can give you a role "
        "that opens it.",
    }
    if path == "/dashboard":
        denied["no_access"] = True
    return denied


async def error_context(request: Request, status: int, code: str | None, detail: str) -> dict[str, Any]:
    """What an HTML error page shows: the signed-in layout (:func:`signed_in_page`) and the reason in plain
    words. A refused page says where it would open (see :func:`example_app.backend.where_page_opens`)."""
    page = await signed_in_page(request)
    context: dict[str, Any] = {
        "status": status, "detail": detail, "page": page, "signed_in": None, "theme": "system",
        "dev_outbox": bool(request.app.state.dev_outbox), "on_loopback": is_loopback_host(request.app.state.host),
    }
    if page is not None:
        context["theme"] = page.preferences.get("theme", "system")
    else:
        session = await get_session(request)
        if session is not None:
            claims = session.claims
            context["signed_in"] = str(claims.get("username") or claims.get("preferred_username") or "Signed in")
    match = ACCESS_DENIED.match(detail)
    if status == 403 and code == "page_access_denied" and match and page is not None:
        context.update(await _refusal(request, page, match["path"], match["reason"]))
    elif status == 404:
        context["title"] = "This page does not exist"
        context["message"] = f"There is no page at {request.url.path}." if code != "not_found" else detail
    return context
