"""``get_portal_router()``: sign-in, sessions, profile and registration routes for an application.

Every route is named (``request.url_for("dominus_login")``), has a response model and documents its error
statuses, so the OpenAPI page is complete. Routes that act for a user need a session (401 otherwise) and
call Portal with the session's own token.

Sign-in comes in three forms:

- ``POST /login`` with JSON ``{username, password, tenant_id?}`` -> 200 ``{user, tenant, tenants,
  expires_in}`` and the session cookies; with an HTML form (``username``, ``password``, ``tenant_id``,
  ``next``) -> 303 to ``next`` when it is a same-origin path (else to ``default_next``). A failed form
  sign-in goes back to ``login_page?error=<code>&next=...`` when ``login_page`` is set;
- ``POST /token``: the OAuth2 password flow (form fields as ``OAuth2PasswordRequestForm``) -> ``{access_token,
  token_type, expires_in, refresh_token}`` for Bearer clients (and the ``/docs`` "Authorize" button);
- ``POST /login/client`` with ``{psk, tenant_id?}``: a machine client's session token.

Cookie callers that sign in from a page must send an ``Origin`` naming this site when they send one at all;
cookie-authenticated writes are checked by :class:`~dominus_fastapi.middleware.PortalSessionMiddleware`.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Annotated, Any, Literal, TypedDict
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from starlette.responses import RedirectResponse

from dominus_fastapi.core.client import Dominus
from dominus_fastapi.core.errors import AuthenticationError, DominusError
from dominus_fastapi.deps import get_dominus, get_session
from dominus_fastapi.handlers import ERROR_RESPONSES, DominusHTTPException
from dominus_fastapi.middleware import (
    CONFIG_SCOPE_KEY,
    MIDDLEWARE_SCOPE_KEY,
    PortalSession,
    PortalSessionMiddleware,
    SessionConfig,
    same_origin,
)

__all__ = [
    "EndUser",
    "LoginRequest",
    "LoginResponse",
    "MeResponse",
    "TokenResponse",
    "end_user_of",
    "get_portal_router",
]


# --- models -------------------------------------------------------------------------------------------------


class _Open(BaseModel):
    # Servers may add fields (spec 3.4); they are passed on rather than dropped.
    model_config = ConfigDict(extra="allow")


class UserRecord(_Open):
    id: str
    username: str
    email: str | None = None
    status: str
    created_at: str | None = None
    updated_at: str | None = None
    last_login_at: str | None = None


class TenantShort(_Open):
    id: str
    slug: str
    name: str
    display_name: str | None = None
    category_id: str | None = None


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, description="Username or e-mail address")
    password: str = Field(min_length=1)
    tenant_id: str | None = Field(default=None, description="Tenant UUID or slug; default: the first by slug")


class LoginResponse(BaseModel):
    user: UserRecord | None
    tenant: TenantShort | None
    tenants: list[TenantShort]
    expires_in: int


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str | None = None


class ClientLoginRequest(BaseModel):
    psk: str = Field(min_length=1)
    tenant_id: str | None = None


class RefreshRequest(BaseModel):
    refresh_token: str | None = Field(default=None, description="Bearer clients; cookie clients send nothing")


class RefreshResponse(LoginResponse):
    access_token: str | None = Field(default=None, description="Only for a refresh token sent in the body")
    token_type: str | None = None
    refresh_token: str | None = None


class MeResponse(_Open):
    subject_type: str
    user: dict[str, Any] | None = None
    client: dict[str, Any] | None = None
    tenant: TenantShort | None = None
    tenants: list[TenantShort] = []
    scopes: list[str] = []
    roles: list[str] = []
    subtypes: list[str] = []
    session_id: str | None = None


class SwitchTenantRequest(BaseModel):
    tenant_id: str = Field(min_length=1, description="Tenant UUID or slug")


class SwitchTenantResponse(BaseModel):
    tenant: TenantShort | None
    expires_in: int
    access_token: str | None = Field(default=None, description="Only for Bearer callers; cookies are rewritten")
    token_type: str | None = None


class NavigationResponse(_Open):
    items: list[dict[str, Any]]


class CheckAccessRequest(BaseModel):
    path: str = Field(min_length=1, description="The page path, e.g. /dashboard/reports")


class CheckAccessResponse(_Open):
    allowed: bool
    reason: str
    page_id: str | None = None


class Profile(_Open):
    user_id: str
    display_name: str | None = None
    avatar_url: str | None = None
    bio: str | None = None
    phone: str | None = None
    extra: dict[str, Any] = {}
    updated_at: str | None = None


class ProfileUpdate(BaseModel):
    """Fields left out keep their value; an explicit ``null`` clears one."""

    display_name: str | None = None
    avatar_url: str | None = None
    bio: str | None = None
    phone: str | None = None
    extra: dict[str, Any] | None = None


class Preferences(_Open):
    theme: str
    language: str
    timezone: str
    sidebar_collapsed: bool
    notifications_enabled: bool
    email_notifications: bool
    extra: dict[str, Any] = {}
    updated_at: str | None = None


class PreferencesUpdate(BaseModel):
    """Fields left out keep their value; an explicit ``null`` clears one."""

    theme: Literal["system", "light", "dark"] | None = None
    language: str | None = None
    timezone: str | None = None
    sidebar_collapsed: bool | None = None
    notifications_enabled: bool | None = None
    email_notifications: bool | None = None
    extra: dict[str, Any] | None = None


class ChangePasswordRequest(BaseModel):
    current_password: str = Field(min_length=1)
    new_password: str = Field(min_length=8)


class ChangePasswordResponse(_Open):
    changed: bool
    revoked_sessions: int


class ResetRequest(BaseModel):
    email: str = Field(min_length=3)


class ResetRequested(_Open):
    requested: bool


class ResetConfirm(BaseModel):
    token: str = Field(min_length=1)
    new_password: str = Field(min_length=8)


class ResetDone(_Open):
    reset: bool


class SessionItem(_Open):
    id: str
    subject_type: str
    created_at: str | None = None
    last_seen_at: str | None = None
    expires_at: str | None = None
    user_agent: str | None = None
    ip_address: str | None = None
    current: bool = False


class SessionList(_Open):
    items: list[SessionItem]
    total: int


class SessionRevoked(_Open):
    revoked: bool
    session_id: str


class SessionsRevoked(_Open):
    revoked_count: int


class RegisterRequest(BaseModel):
    username: str = Field(min_length=1)
    email: str = Field(min_length=3)
    password: str = Field(min_length=8)
    tenant_id: str | None = Field(
        default=None,
        min_length=1,
        description="One of the tenants open to sign-up; may be left out when only one is",
    )


class RegisterResponse(_Open):
    user: UserRecord
    verification: str


class VerifyEmailRequest(BaseModel):
    token: str = Field(min_length=1)


class VerifyEmailResponse(_Open):
    verified: bool
    user: UserRecord | None = None


class ResendRequest(BaseModel):
    email: str = Field(min_length=3)


class ResendResponse(_Open):
    sent: bool


class AcceptInvitationRequest(BaseModel):
    token: str = Field(min_length=1)
    password: str = Field(min_length=8)


# --- helpers ------------------------------------------------------------------------------------------------


ADMIN_TENANT = "admin"
"""Slug of the built-in admin tenant, which is never open to self-registration."""
_MAX_AGENT = 512


class EndUser(TypedDict, total=False):
    """The browser's address and User-Agent, as the Portal calls for people without a session take them."""

    end_user_ip: str
    end_user_agent: str


def end_user_of(request: Request) -> EndUser:
    """The browser's address and User-Agent, forwarded to Portal for its per-address limits and the session
    record (``end_user_ip``, ``end_user_agent``): ``await portal.request_password_reset(email,
    **end_user_of(request))``. Behind a reverse proxy, run the app with the server's
    proxy-header support (``uvicorn --proxy-headers --forwarded-allow-ips=...``) so that this is the visitor's
    address rather than the proxy's."""
    forwarded: EndUser = {}
    host = request.client.host if request.client is not None else None
    if host:
        with contextlib.suppress(ValueError):
            forwarded["end_user_ip"] = str(ipaddress.ip_address(host))
    agent = request.headers.get("user-agent")
    if agent:
        forwarded["end_user_agent"] = agent[:_MAX_AGENT]
    return forwarded


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: ERROR_RESPONSES[status] for status in statuses}


_UPSTREAM = (502, 503, 504)


def _config(request: Request, fallback: SessionConfig) -> SessionConfig:
    config = request.scope.get(CONFIG_SCOPE_KEY)
    return config if isinstance(config, SessionConfig) else fallback


def _is_form(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return content_type in ("application/x-www-form-urlencoded", "multipart/form-data")


def _safe_next(candidate: str | None, request: Request, config: SessionConfig, default: str) -> str:
    """``candidate`` when it is a path on this site (or a URL of this site), else ``default``.

    Refuses scheme-relative (``//evil``) and backslash tricks, so a sign-in link cannot send users away.
    """
    if not candidate:
        return default
    candidate = candidate.strip()
    if "\\" in candidate or any(ord(ch) < 0x20 for ch in candidate):
        return default
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc:
        if parts.scheme not in ("http", "https") or not same_origin(candidate, request, config.allowed_origins):
            return default
        candidate = parts.path or "/"
        if parts.query:
            candidate += f"?{parts.query}"
        return candidate if not candidate.startswith("//") else default
    if not candidate.startswith("/") or candidate.startswith("//"):
        return default
    return candidate


def _check_login_origin(request: Request, config: SessionConfig) -> None:
    origin = request.headers.get("origin")
    if origin is not None and origin != "null" and not same_origin(origin, request, config.allowed_origins):
        raise DominusHTTPException(
            403, "Cross-site sign-in refused: the Origin header must name this site", "csrf_failed"
        )


def _set_cookies(response: Response, request: Request, config: SessionConfig, access: str, refresh: str | None) -> None:
    for value in config.set_cookie_headers(request, access, refresh):
        response.headers.append("set-cookie", value)


def _clear_cookies(response: Response, request: Request, config: SessionConfig) -> None:
    for value in config.clear_cookie_headers(request):
        response.headers.append("set-cookie", value)


def _login_body(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "user": data.get("user"),
        "tenant": data.get("tenant"),
        "tenants": data.get("tenants") or [],
        "expires_in": int(data.get("expires_in") or 0),
    }


def _require(session: PortalSession | None) -> PortalSession:
    if session is None:
        raise DominusHTTPException(401, "Not signed in", "not_authenticated", headers={"WWW-Authenticate": "Bearer"})
    return session


def _validation_error(exc: PydanticValidationError, location: str) -> RequestValidationError:
    return RequestValidationError(
        [{**error, "loc": (location, *error["loc"])} for error in exc.errors(include_url=False)]
    )


class _NoInputEchoRoute(APIRoute):
    """A route whose 422 answers leave out each error's ``input``: Portal bodies carry passwords, PSKs and
    tokens, which must never come back in an error (and raw non-UTF-8 input could not even be encoded)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                errors = [{k: v for k, v in error.items() if k != "input"} for error in exc.errors()]
                raise RequestValidationError(errors) from None

        return handle


def _require_session(session: Annotated[PortalSession | None, Depends(get_session)]) -> PortalSession:
    return _require(session)


ClientDep = Annotated[Dominus, Depends(get_dominus)]
OptionalSession = Annotated[PortalSession | None, Depends(get_session)]
SessionRequired = Annotated[PortalSession, Depends(_require_session)]


def get_portal_router(
    prefix: str = "/auth",
    *,
    tags: list[str] | None = None,
    login_page: str | None = None,
    default_next: str = "/",
    after_logout: str | None = None,
    token_url: str | None = None,
    session_config: SessionConfig | None = None,
    registration_tenants: Sequence[str] = (),
    include_invitations: bool = True,
) -> APIRouter:
    """An ``APIRouter`` with the Portal routes under ``prefix`` (see the module docstring).

    ``login_page`` is where failed form sign-ins and form sign-outs go (with ``error`` and ``next``);
    ``session_config`` applies only when the app has no :class:`PortalSessionMiddleware` (whose settings
    otherwise win, so cookies are written and cleared with identical attributes).

    Self-registration is off by default: ``POST /register``, ``/verify-email`` and ``/resend-verification``
    exist only when ``registration_tenants`` names the tenants (slugs or UUIDs, exactly as the sign-up form
    sends them) that anonymous visitors may join; any other tenant is 403 ``forbidden``. The admin tenant can
    never be one of them (``ValueError`` here, and the server refuses it too). ``include_invitations=False``
    leaves out ``POST /accept-invitation`` (invitations are sent by administrators, so it is on by default).
    """
    open_tenants = tuple(registration_tenants)
    if isinstance(registration_tenants, str):
        raise TypeError("registration_tenants must be a list of tenant slugs or UUIDs, not one string")
    for tenant in open_tenants:
        if not isinstance(tenant, str) or not tenant.strip():
            raise ValueError("registration_tenants must hold non-empty tenant slugs or UUIDs")
        if tenant.strip().lower() == ADMIN_TENANT:
            raise ValueError(
                "registration_tenants must not name the admin tenant: administrators are never self-registered"
            )
    router = APIRouter(prefix=prefix, tags=list(tags or ["auth"]), route_class=_NoInputEchoRoute)
    fallback = session_config or SessionConfig()
    bearer = OAuth2PasswordBearer(tokenUrl=token_url or f"{prefix}/token", auto_error=False)

    secured = [Security(bearer)]  # declares the scheme in OpenAPI; the middleware did the verification

    def user_errors(*extra: int) -> dict[int | str, dict[str, Any]]:
        return _errors(401, *extra, *_UPSTREAM)

    # --- sign-in and sign-out ------------------------------------------------------------------------------

    @router.post(
        "/login",
        name="dominus_login",
        summary="Sign in (JSON or HTML form)",
        response_model=LoginResponse,
        responses={
            303: {"description": "HTML form sign-in: redirect to `next`"},
            **_errors(400, 401, 403, 429, *_UPSTREAM),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": LoginRequest.model_json_schema()},
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "required": ["username", "password"],
                            "properties": {
                                "username": {"type": "string"},
                                "password": {"type": "string", "format": "password"},
                                "tenant_id": {"type": "string"},
                                "next": {"type": "string"},
                            },
                        }
                    },
                },
            }
        },
    )
    async def login(request: Request, client: ClientDep) -> Any:
        config = _config(request, fallback)
        _check_login_origin(request, config)
        form = _is_form(request)
        next_url: str | None = None
        try:
            if form:
                fields = await request.form()
                next_url = str(fields.get("next") or "") or None
                raw: Any = {k: fields.get(k) for k in ("username", "password", "tenant_id") if fields.get(k)}
            else:
                try:
                    raw = await request.json()
                except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep to parse
                    raise RequestValidationError(
                        [{"type": "json_invalid", "loc": ("body",), "msg": "Body must be a JSON object", "input": None}]
                    ) from None
            credentials = LoginRequest.model_validate(raw)
        except PydanticValidationError as exc:
            raise _validation_error(exc, "body") from None
        target = _safe_next(next_url, request, config, default_next)
        try:
            data = await client.portal.login(
                credentials.username, credentials.password, tenant_id=credentials.tenant_id, **end_user_of(request)
            )
        except DominusError as exc:
            # A form caller is a browser: send it back to the sign-in page rather than show it JSON.
            if form and login_page is not None and exc.status_code is not None and exc.status_code < 500:
                code = exc.code or "login_failed"
                location = f"{login_page}?error={quote(code)}&next={quote(target, safe='/')}"
                return RedirectResponse(location, status_code=303)
            raise
        response: Response
        if form:
            response = RedirectResponse(target, status_code=303)
        else:
            response = Response(
                LoginResponse.model_validate(_login_body(data)).model_dump_json(),
                media_type="application/json",
            )
        _set_cookies(response, request, config, str(data["access_token"]), data.get("refresh_token"))
        return response

    @router.post(
        "/token",
        name="dominus_token",
        summary="OAuth2 password flow for Bearer clients",
        response_model=TokenResponse,
        responses=_errors(400, 401, 403, 429, *_UPSTREAM),
    )
    async def token(
        request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], client: ClientDep
    ) -> TokenResponse:
        data = await client.portal.login(form.username, form.password, **end_user_of(request))
        return TokenResponse(
            access_token=str(data["access_token"]),
            token_type=str(data.get("token_type") or "bearer"),
            expires_in=int(data.get("expires_in") or 0),
            refresh_token=data.get("refresh_token"),
        )

    @router.post(
        "/login/client",
        name="dominus_login_client",
        summary="Machine client sign-in with its PSK",
        response_model=TokenResponse,
        responses=_errors(400, 401, 403, 429, *_UPSTREAM),
    )
    async def login_client(request: Request, body: ClientLoginRequest, client: ClientDep) -> TokenResponse:
        data = await client.portal.login_client(body.psk, tenant_id=body.tenant_id, **end_user_of(request))
        return TokenResponse(
            access_token=str(data["access_token"]),
            token_type=str(data.get("token_type") or "bearer"),
            expires_in=int(data.get("expires_in") or 0),
        )

    @router.post(
        "/logout",
        name="dominus_logout",
        summary="Sign out: end the session and clear the cookies",
        status_code=204,
        response_class=Response,
        dependencies=secured,  # the session to end: Bearer or the session cookie (none: only the cookies go)
        responses={303: {"description": "HTML form sign-out: redirect"}, **_errors(403, *_UPSTREAM)},
    )
    async def logout(request: Request, client: ClientDep, session: OptionalSession) -> Response:
        config = _config(request, fallback)
        if session is not None:
            with contextlib.suppress(AuthenticationError):  # already ended: signing out is done either way
                await client.portal.logout(user_token=session.access_token)
            middleware = request.scope.get(MIDDLEWARE_SCOPE_KEY)
            if isinstance(middleware, PortalSessionMiddleware):
                middleware.forget_session(session.session_id, session.expires_at)
        response: Response
        if _is_form(request):
            fields = await request.form()
            default = after_logout or login_page or default_next
            response = RedirectResponse(
                _safe_next(str(fields.get("next") or "") or None, request, config, default), status_code=303
            )
        else:
            response = Response(status_code=204)
        _clear_cookies(response, request, config)
        return response

    @router.post(
        "/refresh",
        name="dominus_refresh",
        summary="Renew the session (refresh cookie, or a refresh token in the body)",
        response_model=RefreshResponse,
        responses=_errors(401, 403, *_UPSTREAM),
    )
    async def refresh(
        request: Request, client: ClientDep, session: OptionalSession, body: RefreshRequest | None = None
    ) -> Any:
        config = _config(request, fallback)
        if body is not None and body.refresh_token:
            data = await client.portal.refresh(refresh_token=body.refresh_token)
            return RefreshResponse(
                **_login_body(data),
                access_token=str(data["access_token"]),
                token_type=str(data.get("token_type") or "bearer"),
                refresh_token=data.get("refresh_token"),
            )
        refresh_token = session.refresh_token if session is not None else request.cookies.get(
            config.refresh_cookie_name
        )
        if not refresh_token:
            if session is not None and session.via == "bearer":
                data = await client.portal.refresh(user_token=session.access_token)
                return RefreshResponse(
                    **_login_body(data),
                    access_token=str(data["access_token"]),
                    token_type=str(data.get("token_type") or "bearer"),
                    refresh_token=data.get("refresh_token"),
                )
            raise DominusHTTPException(401, "No session to refresh", "not_authenticated")
        data = await client.portal.refresh(refresh_token=refresh_token)
        response = Response(
            RefreshResponse.model_validate(_login_body(data)).model_dump_json(), media_type="application/json"
        )
        _set_cookies(response, request, config, str(data["access_token"]), data.get("refresh_token"))
        return response

    # --- the signed-in user ----------------------------------------------------------------------------------

    @router.get("/me", name="dominus_me", summary="The signed-in subject", response_model=MeResponse,
                dependencies=secured, responses=user_errors())
    async def me(session: SessionRequired, client: ClientDep) -> Any:
        return await client.portal.me(user_token=session.access_token)

    @router.post(
        "/switch-tenant",
        name="dominus_switch_tenant",
        summary="Make another of the user's tenants active",
        response_model=SwitchTenantResponse,
        dependencies=secured, responses=user_errors(400, 403),
    )
    async def switch_tenant(
        request: Request, session: SessionRequired, body: SwitchTenantRequest, client: ClientDep
    ) -> Any:
        data = await client.portal.switch_tenant(body.tenant_id, user_token=session.access_token)
        result = {"tenant": data.get("tenant"), "expires_in": int(data.get("expires_in") or 0)}
        if session.via == "bearer":
            result.update(access_token=str(data["access_token"]), token_type=str(data.get("token_type") or "bearer"))
            return result
        config = _config(request, fallback)
        response = Response(
            SwitchTenantResponse.model_validate(result).model_dump_json(), media_type="application/json"
        )
        # The refresh token stays as it is (spec 7.9); only the access cookie changes.
        _set_cookies(response, request, config, str(data["access_token"]), None)
        return response

    @router.get("/navigation", name="dominus_navigation", summary="The navigation tree",
                response_model=NavigationResponse, dependencies=secured, responses=user_errors())
    async def navigation(session: SessionRequired, client: ClientDep) -> Any:
        return await client.portal.get_navigation(user_token=session.access_token)

    @router.post("/check-access", name="dominus_check_access", summary="May the user open this page?",
                 response_model=CheckAccessResponse, dependencies=secured, responses=user_errors(400))
    async def check_access(session: SessionRequired, body: CheckAccessRequest, client: ClientDep) -> Any:
        return await client.portal.check_page_access(body.path, user_token=session.access_token)

    @router.get("/profile", name="dominus_get_profile", summary="The user's profile", response_model=Profile,
                dependencies=secured, responses=user_errors(403))
    async def get_profile(session: SessionRequired, client: ClientDep) -> Any:
        return await client.portal.get_profile(user_token=session.access_token)

    @router.put("/profile", name="dominus_update_profile", summary="Update the user's profile",
                response_model=Profile, dependencies=secured, responses=user_errors(400, 403))
    async def update_profile(session: SessionRequired, body: ProfileUpdate, client: ClientDep) -> Any:
        fields = body.model_dump(include=body.model_fields_set)
        return await client.portal.update_profile(**fields, user_token=session.access_token)

    @router.get("/preferences", name="dominus_get_preferences", summary="The user's preferences",
                response_model=Preferences, dependencies=secured, responses=user_errors(403))
    async def get_preferences(session: SessionRequired, client: ClientDep) -> Any:
        return await client.portal.get_preferences(user_token=session.access_token)

    @router.put("/preferences", name="dominus_update_preferences", summary="Update the user's preferences",
                response_model=Preferences, dependencies=secured, responses=user_errors(400, 403))
    async def update_preferences(session: SessionRequired, body: PreferencesUpdate, client: ClientDep) -> Any:
        fields = body.model_dump(include=body.model_fields_set)
        return await client.portal.update_preferences(**fields, user_token=session.access_token)

    @router.post("/change-password", name="dominus_change_password", summary="Change the password",
                 response_model=ChangePasswordResponse, dependencies=secured, responses=user_errors(400, 403))
    async def change_password(session: SessionRequired, body: ChangePasswordRequest, client: ClientDep) -> Any:
        return await client.portal.change_password(
            body.current_password, body.new_password, user_token=session.access_token
        )

    @router.get("/sessions", name="dominus_list_sessions", summary="The user's sessions",
                response_model=SessionList, dependencies=secured, responses=user_errors())
    async def list_sessions(session: SessionRequired, client: ClientDep) -> Any:
        return await client.portal.list_sessions(user_token=session.access_token)

    @router.delete("/sessions/{session_id}", name="dominus_revoke_session", summary="End one of the sessions",
                   response_model=SessionRevoked, dependencies=secured, responses=user_errors(404))
    async def revoke_session(session_id: str, session: SessionRequired, client: ClientDep) -> Any:
        return await client.portal.revoke_session(session_id, user_token=session.access_token)

    @router.post("/sessions/revoke-all", name="dominus_revoke_all_sessions",
                 summary="End every other session", response_model=SessionsRevoked, dependencies=secured,
                 responses=user_errors())
    async def revoke_all_sessions(session: SessionRequired, client: ClientDep) -> Any:
        return await client.portal.revoke_all_sessions(user_token=session.access_token)

    # --- no session yet ------------------------------------------------------------------------------------

    @router.post("/password-reset/request", name="dominus_request_password_reset",
                 summary="Send a password-reset e-mail", response_model=ResetRequested,
                 responses=_errors(400, 429, *_UPSTREAM))
    async def request_password_reset(request: Request, body: ResetRequest, client: ClientDep) -> Any:
        return await client.portal.request_password_reset(body.email, **end_user_of(request))

    @router.post("/password-reset/confirm", name="dominus_confirm_password_reset",
                 summary="Set a new password with a reset token", response_model=ResetDone,
                 responses=_errors(400, 429, *_UPSTREAM))
    async def confirm_password_reset(request: Request, body: ResetConfirm, client: ClientDep) -> Any:
        return await client.portal.confirm_password_reset(body.token, body.new_password, **end_user_of(request))

    if open_tenants:

        @router.post("/register", name="dominus_register", summary="Create an account",
                     response_model=RegisterResponse, responses=_errors(400, 403, 409, 422, 429, *_UPSTREAM))
        async def register(request: Request, body: RegisterRequest, client: ClientDep) -> Any:
            tenant = body.tenant_id if body.tenant_id is not None else (
                open_tenants[0] if len(open_tenants) == 1 else None
            )
            if tenant is None:
                raise DominusHTTPException(400, "tenant_id is required: name the tenant to join", "validation_failed")
            if tenant not in open_tenants:
                raise DominusHTTPException(403, "Registration is not open for this tenant", "forbidden")
            return await client.portal.register(
                body.username, body.email, body.password, tenant, **end_user_of(request)
            )

        @router.post("/verify-email", name="dominus_verify_email", summary="Confirm an e-mail address",
                     response_model=VerifyEmailResponse, responses=_errors(400, 429, *_UPSTREAM))
        async def verify_email(request: Request, body: VerifyEmailRequest, client: ClientDep) -> Any:
            return await client.portal.verify_email(body.token, **end_user_of(request))

        @router.post("/resend-verification", name="dominus_resend_verification",
                     summary="Send the verification e-mail again", response_model=ResendResponse,
                     responses=_errors(400, 429, *_UPSTREAM))
        async def resend_verification(request: Request, body: ResendRequest, client: ClientDep) -> Any:
            return await client.portal.resend_verification(body.email, **end_user_of(request))

    if include_invitations:

        @router.post("/accept-invitation", name="dominus_accept_invitation",
                     summary="Accept an invitation: set a password and sign in", response_model=LoginResponse,
                     responses=_errors(400, 401, 403, 429, *_UPSTREAM))
        async def accept_invitation(request: Request, body: AcceptInvitationRequest, client: ClientDep) -> Any:
            config = _config(request, fallback)
            _check_login_origin(request, config)
            data = await client.portal.accept_invitation(body.token, body.password, **end_user_of(request))
            response = Response(
                LoginResponse.model_validate(_login_body(data)).model_dump_json(), media_type="application/json"
            )
            _set_cookies(response, request, config, str(data["access_token"]), data.get("refresh_token"))
            return response

    return router

