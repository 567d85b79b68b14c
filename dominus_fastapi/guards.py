"""Guards: page access, scope and role checks, each usable as a decorator and as a dependency.

::

    @app.get("/admin/users")
    @require_page_access("/dashboard/admin/users")
    async def users(db: DbDep) -> list[dict[str, Any]]: ...

    router = APIRouter(dependencies=[Depends(require_scopes("reports:read"))])

As a decorator a guard adds a hidden ``Request`` parameter to the endpoint's signature when the endpoint has
none (``functools.wraps`` keeps its name, docstring and OpenAPI data); sync endpoints stay sync (they run in
the thread pool after the check). As a dependency FastAPI calls the guard with the request.

- Anonymous -> 401 ``not_authenticated`` (or, with ``redirect_to`` set and a caller that accepts HTML, a
  303 to ``redirect_to?next=<path>``).
- Signed in but not allowed -> 403: ``page_access_denied`` (with Portal's ``reason`` in ``detail``),
  ``missing_scope`` or ``missing_role``.

How fresh a guard's answer is (permissions come from the token):

- ``require_scopes``, ``require_role`` and ``require_jwt`` (and ``CurrentUser``) read the token's claims.
  Scopes, roles and the tenant are fixed when the token is issued, so a change in Guardian (a scope taken from
  a role, a role or a tenant taken from the user) reaches them only with the next token: up to 900 s, the
  access-token lifetime.
  An ended session (a sign-out elsewhere, a revocation, a reused refresh token) is refused at once when it
  ended through this process, else after the middleware's ``revalidate_interval`` (e.g. 30 s), and without
  one only when the access token expires.
- ``require_page_access`` asks Portal, which reads current data and checks the session, but reuses a yes for
  ``cache_seconds`` (10 s) per session, tenant and page: changes and ended sessions are seen within that.
- ``recheck=True`` on any of the four asks the server on every request, before the endpoint runs and past
  every memo (one round trip: ``portal.me`` for scopes, roles and sessions, ``check_page_access`` for pages), so a
  removed scope or page gets 403 and an ended session 401 at once. If the server cannot answer, the request
  fails (the error handlers answer 503/504): a recheck never falls back to the token. Use it on writes that
  must stop the moment access is withdrawn (uploads, invitations, payments); it decides the guard only, and
  ``request.user`` still carries the token's claims.

Equivalents of the reference SDK's FastAPI helpers:

======================  =================================================================================
Reference SDK           Here
======================  =================================================================================
``@jwt``                ``@require_jwt()`` (or the ``CurrentUser`` dependency): a valid session token,
                        checked locally against the key set — with its signature, which the reference
                        helper skipped (spec 10.9)
``@scopes(...)``        ``@require_scopes(*scopes, any_of=True)``: the session's ``scopes`` claim
``@psk``                ``@require_psk()``: the caller sends its PSK in ``X-Dominus-PSK``; it is turned
                        into a client session with ``portal.login_client`` (cached until shortly before
                        that token expires) and the claims land in ``request.state.dominus_client``
======================  =================================================================================
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import time
import typing
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Annotated, Any, Final, TypeVar
from urllib.parse import quote

from fastapi import FastAPI, params
from fastapi import routing as fastapi_routing
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute
from pydantic.fields import FieldInfo
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from dominus_fastapi.core.client import Dominus
from dominus_fastapi.core.errors import AuthenticationError
from dominus_fastapi.deps import CurrentUser, get_current_user
from dominus_fastapi.handlers import DominusHTTPException, ErrorResponse
from dominus_fastapi.middleware import (
    MIDDLEWARE_SCOPE_KEY,
    SESSION_SCOPE_KEY,
    DominusUser,
    PortalSession,
    PortalSessionMiddleware,
    SessionConfig,
    find_client,
)

__all__ = [
    "COOKIE_SCHEME",
    "PSK_SCHEME",
    "Guard",
    "PageAccessGuard",
    "PskGuard",
    "RoleGuard",
    "ScopesGuard",
    "SessionGuard",
    "current_user_of",
    "install_guard_openapi",
    "require_jwt",
    "require_page_access",
    "require_psk",
    "require_role",
    "require_scopes",
]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
Clock = Callable[[], float]

PAGE_ACCESS_CACHE_SECONDS: Final = 10.0
"""How long one session's answer for one page is reused before Portal is asked again."""
PSK_TOKEN_MARGIN: Final = 60.0
"""A cached PSK client session is renewed this many seconds before its token expires."""
_CACHE_LIMIT: Final = 10_000
_HIDDEN_REQUEST: Final = "_dominus_guard_request"
_NEEDS_SESSION: Final = "__dominus_needs_session__"
_GUARD_OPENAPI: Final = "__dominus_guard_openapi__"
_GUARDS: Final = "__dominus_guards__"
COOKIE_SCHEME: Final = "DominusSessionCookie"
"""OpenAPI name of the session-cookie security scheme (an API key in a cookie), next to the Bearer scheme."""
PSK_SCHEME: Final = "DominusPsk"
"""OpenAPI name of the PSK header scheme of :func:`require_psk`."""
_ERROR_REF: Final = "#/components/schemas/ErrorResponse"


def _mark_coroutine_function(func: Callable[..., Any]) -> None:
    """Make FastAPI await ``func``: it returns an awaitable when called as a dependency (see ``Guard``)."""
    if hasattr(inspect, "markcoroutinefunction"):  # Python >= 3.12
        inspect.markcoroutinefunction(func)
    # ``asyncio.iscoroutinefunction`` (which FastAPI uses on Python < 3.13) honours this older marker.
    legacy_marker = getattr(asyncio.coroutines, "_is_coroutine", None)
    if legacy_marker is not None:
        func._is_coroutine = legacy_marker  # type: ignore[attr-defined]


class Guard:
    """Base of every guard: ``guard(endpoint)`` decorates, ``guard(request=...)`` checks (as a dependency).

    The same object has to be a decorator (a sync call that returns the wrapped endpoint) and an async
    dependency. ``__call__`` therefore dispatches on its argument, and is marked as a coroutine function so
    that FastAPI awaits what it returns when it resolves the dependency.
    """

    needs_session: bool = True
    """Whether the guard admits only requests with a session (their OpenAPI operations show the Bearer
    scheme, see :func:`install_guard_openapi`)."""

    def __init__(self) -> None:
        self.__signature__ = inspect.Signature(
            [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)]
        )

    async def check(self, request: Request) -> None:
        """Raise ``DominusHTTPException`` when the request may not go on."""
        raise NotImplementedError

    def allows_at_once(self, request: Request) -> bool:
        """``True`` when the request may go on without :meth:`check` (known without awaiting anything);
        ``False`` means only that :meth:`check` has to decide."""
        return False

    def openapi_responses(self) -> dict[str, str]:
        """What the guard answers instead of the endpoint, for OpenAPI: ``{status: description}``, each
        description naming what the caller needs and the ``code`` of the refusal."""
        answers = {"401": "Not signed in, or the session has ended (`not_authenticated`)"}
        redirect_to = getattr(self, "redirect_to", None)
        if redirect_to:
            answers["303"] = f"A browser that is not signed in is sent to `{redirect_to}?next=<this path>`"
        return answers

    def __call__(self, endpoint: Any = None, /, *, request: Request | None = None) -> Any:
        if request is None and isinstance(endpoint, Request):
            request = endpoint
        if request is not None:
            return self.check(request)
        if not callable(endpoint):
            raise TypeError("a guard decorates an endpoint function or is used as Depends(guard)")
        return self.decorate(endpoint)

    _mark_coroutine_function(__call__)

    def decorate(self, endpoint: F) -> F:
        """Wrap ``endpoint`` so that the check runs first (adding a hidden ``Request`` parameter if needed).

        ``CurrentUser`` parameters of the endpoint are filled in by the wrapper after the check, instead of
        by FastAPI's dependency resolution (see :func:`current_user_of`).
        """
        signature = inspect.signature(endpoint)
        try:
            hints = typing.get_type_hints(endpoint, include_extras=True)
        except Exception:  # unresolvable forward references: keep the annotations as written
            hints = {}
        params = [
            p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()
        ]
        user_params = tuple(p.name for p in params if _is_current_user_param(p))
        params = [p for p in params if p.name not in user_params]
        request_param = next((p.name for p in params if p.annotation is Request), None)
        if request_param is None:
            hidden = inspect.Parameter(_HIDDEN_REQUEST, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
            variadic = [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
            params = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD] + [hidden] + variadic
        is_async = inspect.iscoroutinefunction(endpoint)
        guard = self

        @functools.wraps(endpoint)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            request = kwargs.pop(_HIDDEN_REQUEST) if request_param is None else kwargs[request_param]
            if not guard.allows_at_once(request):
                await guard.check(request)
            if user_params:
                user = await current_user_of(request)
                for name in user_params:
                    kwargs[name] = user
            if is_async:
                return await endpoint(*args, **kwargs)
            return await run_in_threadpool(endpoint, *args, **kwargs)

        return_annotation = hints.get("return", signature.return_annotation)
        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=params, return_annotation=return_annotation
        )
        if self.needs_session or user_params or getattr(endpoint, _NEEDS_SESSION, False):
            setattr(wrapper, _NEEDS_SESSION, True)
        setattr(wrapper, _GUARDS, (*getattr(endpoint, _GUARDS, ()), self))
        return typing.cast(F, wrapper)


def _is_current_user_param(param: inspect.Parameter) -> bool:
    """Whether FastAPI would resolve ``param`` with ``get_current_user`` (``CurrentUser`` or an equivalent
    ``Depends``); ``Security(get_current_user, scopes=...)`` is left to FastAPI for its OpenAPI scopes."""
    marker: object = param.default
    if typing.get_origin(param.annotation) is Annotated:
        # FastAPI uses the last Depends/Field marker of an Annotated type.
        markers = [m for m in param.annotation.__metadata__ if isinstance(m, (params.Depends, FieldInfo))]
        if markers:
            marker = markers[-1]
    return (
        isinstance(marker, params.Depends)
        and marker.dependency is get_current_user
        and not getattr(marker, "scopes", None)
    )


async def current_user_of(request: Request) -> DominusUser:
    """The request's ``CurrentUser``, as FastAPI would resolve it, honouring
    ``app.dependency_overrides[get_current_user]``.

    Guard-decorated endpoints get their ``CurrentUser`` parameters from here, after the guard's check: the
    guard has the request at hand, and resolving the same session once more through FastAPI's dependency
    system would cost about as much as the rest of the guarded request (see the README's performance
    section). An override is resolved by FastAPI itself, with its own dependencies and parameters.
    """
    app = request.scope.get("app")
    overrides: Mapping[Any, Any] = getattr(app, "dependency_overrides", None) or {}
    if get_current_user not in overrides:
        return await get_current_user(request)
    return typing.cast(DominusUser, await _resolve_through_fastapi(request, app))


async def _user_holder(user: CurrentUser) -> DominusUser:
    return user


async def _resolve_through_fastapi(request: Request, app: Any) -> Any:
    from fastapi.dependencies.utils import get_dependant, solve_dependencies
    from fastapi.exceptions import RequestValidationError

    route = request.scope.get("route")
    path = getattr(route, "path_format", None) or request.url.path
    dependant = get_dependant(path=path, call=_user_holder)
    stack = request.scope.get("fastapi_inner_astack") or request.scope.get("fastapi_astack")
    arguments = {
        "request": request,
        "dependant": dependant,
        "dependency_overrides_provider": app,
        "async_exit_stack": stack,
        "embed_body_fields": False,
    }
    # The keyword set of this function differs across the FastAPI versions the package supports.
    accepted = inspect.signature(solve_dependencies).parameters
    solved: Any = await solve_dependencies(**{k: v for k, v in arguments.items() if k in accepted})
    values, errors = (solved.values, solved.errors) if hasattr(solved, "errors") else (solved[0], solved[1])
    if errors:
        raise RequestValidationError(errors)
    return values["user"]


def install_guard_openapi(app: FastAPI, *, cookie_name: str | None = None) -> None:
    """Complete ``app``'s OpenAPI document for guarded endpoints. :func:`setup_dominus` calls it.

    - Every endpoint behind a guard (as a decorator, a route dependency or a router dependency) documents the
      guard's answers: 401 and 403 with the ``ErrorResponse`` schema and a description of what it needs (the
      page, the scopes or the roles, and the refusal's ``code``), and 303 when the guard has ``redirect_to``.
      Answers the route declares itself are kept.
    - Session-guarded endpoints (and those whose ``CurrentUser`` a guard fills in) show the security
      requirement: the Bearer scheme of ``CurrentUser`` or the session cookie ``cookie_name`` (default
      ``dominus_session``), declared as an API key in a cookie (:data:`COOKIE_SCHEME`). Every operation that
      already names the Bearer scheme (``CurrentUser``, the portal router) gets the cookie alternative too.
    - ``require_psk`` endpoints show an API key in its header (:data:`PSK_SCHEME`).
    """
    original = app.openapi
    if getattr(original, _GUARD_OPENAPI, False):
        return
    cookie = cookie_name or SessionConfig().cookie_name

    def openapi() -> dict[str, Any]:
        already = app.openapi_schema is not None
        schema = original()
        if not already:
            _add_guard_openapi(app, schema, cookie)
        return schema

    setattr(openapi, _GUARD_OPENAPI, True)
    app.openapi = openapi  # type: ignore[method-assign]


def _api_routes(app: FastAPI) -> Iterator[Any]:
    """Every API route of ``app`` with its effective path, methods, endpoint and dependencies, those of
    included routers too. FastAPI versions that include routers lazily keep them as one entry of
    ``app.routes`` and walk them with ``fastapi.routing.iter_route_contexts`` (as their OpenAPI does)."""
    iterate = getattr(fastapi_routing, "iter_route_contexts", None)
    if iterate is None:
        yield from (route for route in app.routes if isinstance(route, APIRoute))
        return
    for context in iterate(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def _route_guards(route: Any) -> list[Guard]:
    """The guards of ``route``: those that decorate its endpoint and those among its dependencies (the
    router's included), in the order they run."""
    found: list[Guard] = []
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop(0)
        if isinstance(dependency.call, Guard) and dependency.call not in found:
            found.append(dependency.call)
        pending.extend(dependency.dependencies)
    found.extend(g for g in getattr(route.endpoint, _GUARDS, ()) if g not in found)
    return found


def _add_guard_openapi(app: FastAPI, schema: dict[str, Any], cookie_name: str) -> None:
    bearer = get_current_user.scheme_name
    schemes_used: set[str] = set()
    psk_headers: list[str] = []  # one scheme names one header: the first guard's (the default X-Dominus-PSK)
    errors_used = False
    routes = list(_api_routes(app))
    for route in routes:
        guards = _route_guards(route)
        needs_session = getattr(route.endpoint, _NEEDS_SESSION, False) or any(g.needs_session for g in guards)
        needs_psk = False
        for guard in guards:
            if isinstance(guard, PskGuard):
                needs_psk = True
                psk_headers.append(guard.header)
        answers: dict[str, list[str]] = {}
        for guard in guards:
            for status, text in guard.openapi_responses().items():
                if text not in answers.setdefault(status, []):
                    answers[status].append(text)
        operations = schema.get("paths", {}).get(route.path_format, {})
        for method in route.methods or ():
            operation = operations.get(method.lower())
            if operation is None:  # include_in_schema=False
                continue
            responses = operation.setdefault("responses", {})
            for status, texts in sorted(answers.items()):
                if status in responses:
                    continue
                responses[status] = {"description": "; ".join(texts)}
                if status != "303":
                    responses[status]["content"] = {"application/json": {"schema": {"$ref": _ERROR_REF}}}
                    errors_used = True
            security = operation.setdefault("security", [])
            if needs_session and not any(bearer in alternative for alternative in security):
                security.append({bearer: []})  # a Security() with scopes already names it
            if needs_psk and {PSK_SCHEME: []} not in security:
                security.append({PSK_SCHEME: []})
            if any(bearer in alternative for alternative in security) and {COOKIE_SCHEME: []} not in security:
                security.append({COOKIE_SCHEME: []})
            if not security:
                del operation["security"]
            schemes_used.update(name for alternative in security for name in alternative)
    components = schema.setdefault("components", {})
    if errors_used:
        schemas = components.setdefault("schemas", {})
        if "ErrorResponse" not in schemas:
            schemas["ErrorResponse"] = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    if not schemes_used:
        return
    schemes = components.setdefault("securitySchemes", {})
    if bearer in schemes_used:
        schemes.setdefault(bearer, jsonable_encoder(get_current_user.model, by_alias=True, exclude_none=True))
    if COOKIE_SCHEME in schemes_used:
        schemes.setdefault(
            COOKIE_SCHEME,
            {
                "type": "apiKey",
                "in": "cookie",
                "name": cookie_name,
                "description": "The session cookie set by the portal router's sign-in (the same token as Bearer)",
            },
        )
    if PSK_SCHEME in schemes_used and psk_headers:
        schemes.setdefault(
            PSK_SCHEME,
            {"type": "apiKey", "in": "header", "name": psk_headers[0], "description": "A machine client's PSK"},
        )


def _needed(kind: str, names: tuple[str, ...], any_of: bool) -> str:
    listed = ", ".join(f"`{name}`" for name in names)
    if len(names) == 1:
        return f"the {kind} {listed}"
    return f"one of the {kind}s {listed}" if any_of else f"all of the {kind}s {listed}"


def _session(request: Request) -> PortalSession | None:
    return request.scope.get(SESSION_SCOPE_KEY)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


async def _ask_server(request: Request, session: PortalSession, call: Callable[[Dominus], Awaitable[T]]) -> T:
    """One call to the server with the session's token, for ``recheck``: an ended session -> 401.

    A session the server reports ended (``session_revoked``) is also refused by the middleware of this process
    from then on. Other failures propagate (fail closed): the app's error handlers answer them.
    """
    client = find_client(request.scope)
    if client is None:
        raise RuntimeError("recheck=True needs the Dominus client: use dominus_lifespan()")
    try:
        return await call(client)
    except AuthenticationError as exc:
        middleware = request.scope.get(MIDDLEWARE_SCOPE_KEY)
        if exc.code == "session_revoked" and isinstance(middleware, PortalSessionMiddleware):
            middleware.forget_session(session.session_id, session.expires_at)
        raise DominusHTTPException(
            401, "The session has ended", exc.code or "not_authenticated", headers={"WWW-Authenticate": "Bearer"}
        ) from None


async def _current_scopes(request: Request, session: PortalSession) -> tuple[str, ...]:
    """The session's scopes in its tenant, read from current data (``portal.me``; 401 if it has ended)."""
    me = await _ask_server(request, session, lambda client: client.portal.me(user_token=session.access_token))
    return tuple(str(scope) for scope in me.get("scopes") or ())


def _not_signed_in(request: Request, redirect_to: str | None) -> DominusHTTPException:
    if redirect_to is not None and _wants_html(request) and request.method in ("GET", "HEAD"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        separator = "&" if "?" in redirect_to else "?"
        location = f"{redirect_to}{separator}next={quote(target, safe='/')}"
        return DominusHTTPException(303, "Sign in to open this page", "login_required", headers={"Location": location})
    return DominusHTTPException(401, "Not signed in", "not_authenticated", headers={"WWW-Authenticate": "Bearer"})


class SessionGuard(Guard):
    """Any valid session (``require_jwt``); ``subject_type`` narrows it to ``"user"`` or ``"client"``.

    With ``recheck=True`` the server confirms on every request that the session is still live (one round
    trip, ``portal.me``); otherwise an ended session passes for as long as the middleware lets it (see the
    module docstring).
    """

    def __init__(
        self, *, subject_type: str | None = None, redirect_to: str | None = None, recheck: bool = False
    ) -> None:
        super().__init__()
        self.subject_type = subject_type
        self.redirect_to = redirect_to
        self.recheck = recheck

    def openapi_responses(self) -> dict[str, str]:
        answers = super().openapi_responses()
        if self.subject_type is not None:
            answers["403"] = f"Needs a {self.subject_type} session (`forbidden`)"
        if self.recheck:
            answers["401"] += "; the server confirms the session on every request"
        return answers

    async def check(self, request: Request) -> None:
        session = _session(request)
        if session is None:
            raise _not_signed_in(request, self.redirect_to)
        if self.subject_type is not None and session.subject_type != self.subject_type:
            raise DominusHTTPException(403, f"Only {self.subject_type} sessions may call this", "forbidden")
        if self.recheck:
            await _current_scopes(request, session)


class ScopesGuard(Guard):
    """The session's ``scopes`` claim holds any (``any_of=True``) or all of ``scopes``.

    The claim is the token's: a scope withdrawn in Guardian still passes until the token is replaced (up to
    900 s). With ``recheck=True`` the scopes are read from current data on every request (one round trip,
    ``portal.me``, which also refuses an ended session with 401).
    """

    def __init__(
        self, scopes: tuple[str, ...], *, any_of: bool, redirect_to: str | None = None, recheck: bool = False
    ) -> None:
        super().__init__()
        if not scopes:
            raise ValueError("require_scopes needs at least one scope")
        self.scopes = scopes
        self.any_of = any_of
        self.redirect_to = redirect_to
        self.recheck = recheck

    def openapi_responses(self) -> dict[str, str]:
        answers = super().openapi_responses()
        answers["403"] = f"Signed in, but without {_needed('scope', self.scopes, self.any_of)} (`missing_scope`)"
        return answers

    async def check(self, request: Request) -> None:
        session = _session(request)
        if session is None:
            raise _not_signed_in(request, self.redirect_to)
        held = set(await _current_scopes(request, session) if self.recheck else session.scopes)
        missing = [s for s in self.scopes if s not in held]
        allowed = len(missing) < len(self.scopes) if self.any_of else not missing
        if not allowed:
            wanted = "one of" if self.any_of and len(self.scopes) > 1 else "the scope(s)"
            raise DominusHTTPException(403, f"Needs {wanted}: {', '.join(missing)}", "missing_scope")


class RoleGuard(Guard):
    """The session's ``roles`` claim (its effective roles in the active tenant, spec 5.9) holds any
    (``any_of=True``) or all of ``roles``.

    Like scopes, the claim is the token's: a role taken away in Guardian still passes until the token is
    replaced (up to 900 s), and a role granted shows with the next token. With ``recheck=True`` the roles are
    read from current data on every request (one round trip, ``portal.me``, which also refuses an ended
    session with 401).
    """

    def __init__(
        self, roles: tuple[str, ...], *, any_of: bool, redirect_to: str | None = None, recheck: bool = False
    ) -> None:
        super().__init__()
        if not roles:
            raise ValueError("require_role needs at least one role")
        if any(not isinstance(role, str) or not role for role in roles):
            raise ValueError("require_role takes role names (non-empty strings)")
        self.roles = roles
        self.any_of = any_of
        self.redirect_to = redirect_to
        self.recheck = recheck

    def openapi_responses(self) -> dict[str, str]:
        answers = super().openapi_responses()
        answers["403"] = f"Signed in, but without {_needed('role', self.roles, self.any_of)} (`missing_role`)"
        return answers

    async def check(self, request: Request) -> None:
        session = _session(request)
        if session is None:
            raise _not_signed_in(request, self.redirect_to)
        held = set(await _current_roles(request, session) if self.recheck else session.roles)
        missing = [r for r in self.roles if r not in held]
        allowed = len(missing) < len(self.roles) if self.any_of else not missing
        if not allowed:
            wanted = "one of the roles" if self.any_of and len(self.roles) > 1 else "the role(s)"
            raise DominusHTTPException(403, f"Needs {wanted}: {', '.join(missing)}", "missing_role")


async def _current_roles(request: Request, session: PortalSession) -> tuple[str, ...]:
    """The session's roles in its tenant, read from current data (``portal.me``; 401 if it has ended)."""
    me = await _ask_server(request, session, lambda client: client.portal.me(user_token=session.access_token))
    return tuple(str(role) for role in me.get("roles") or ())


class PageAccessGuard(Guard):
    """Portal's page-access rule (spec 8.8) for ``path``, or for the request's own path when ``path`` is None.

    Answers are cached per session, active tenant and page for ``cache_seconds`` (``clock`` is injectable for
    tests), so a page's many requests cost one Portal call, and concurrent requests that find no fresh answer
    share one Portal call. A session the backend finds revoked gets 401. So a withdrawn page or scope, and an
    ended session, still pass for up to ``cache_seconds`` after the last allowed answer.

    With ``recheck=True`` Portal is asked on every request, on its own call, without the cache: a withdrawn
    page or scope gets 403 and an ended session 401 at once (one round trip per request).
    """

    def __init__(
        self,
        path: str | None = None,
        *,
        redirect_to: str | None = None,
        cache_seconds: float = PAGE_ACCESS_CACHE_SECONDS,
        clock: Clock = time.monotonic,
        recheck: bool = False,
    ) -> None:
        super().__init__()
        self.path = path
        self.redirect_to = redirect_to
        self.cache_seconds = cache_seconds
        self.recheck = recheck
        self._clock = clock
        self._cache: OrderedDict[tuple[str, str, str], tuple[float, bool, str]] = OrderedDict()
        self._inflight: dict[
            tuple[str, str, str], tuple[asyncio.AbstractEventLoop, asyncio.Task[tuple[bool, str]]]
        ] = {}

    def openapi_responses(self) -> dict[str, str]:
        answers = super().openapi_responses()
        page = f"the Guardian page `{self.path}`" if self.path else "the Guardian page of this path"
        answers["403"] = f"Signed in, but may not open {page} (`page_access_denied`, with Portal's reason)"
        return answers

    async def check(self, request: Request) -> None:
        session = _session(request)
        if session is None:
            raise _not_signed_in(request, self.redirect_to)
        path = self.path or request.url.path
        if self.recheck:
            answer = await _ask_server(
                request, session, lambda client: client.portal.check_page_access(path, user_token=session.access_token)
            )
            allowed, reason = bool(answer.get("allowed")), str(answer.get("reason") or "")
        else:
            allowed, reason = await self._decide(request, session, path)
        if not allowed:
            raise DominusHTTPException(403, f"Access to {path} denied: {reason}", "page_access_denied")

    def allows_at_once(self, request: Request) -> bool:
        session = request.scope.get(SESSION_SCOPE_KEY)
        if session is None or self.recheck:
            return False
        cached = self._cache.get((session.session_id, session.tenant_id or "", self.path or request.url.path))
        return cached is not None and cached[1] and self._clock() - cached[0] < self.cache_seconds

    async def _decide(self, request: Request, session: PortalSession, path: str) -> tuple[bool, str]:
        # The answer depends on the active tenant (spec 8.8), which a switch changes within one session.
        key = (session.session_id, session.tenant_id or "", path)
        cached = self._cache.get(key)
        if cached is not None and self._clock() - cached[0] < self.cache_seconds:
            return cached[1], cached[2]
        client = find_client(request.scope)
        if client is None:
            raise RuntimeError("require_page_access needs the Dominus client: use dominus_lifespan()")
        # Concurrent requests of one session for one page share one Portal call: when an answer expires
        # under load, Portal is asked once, not once per waiting request. The call runs in its own task, so
        # a waiter that is cancelled (its client went away) cancels neither the call nor the other waiters.
        loop = asyncio.get_running_loop()
        running = self._inflight.get(key)
        if running is None or running[0] is not loop or running[1].done():
            task = loop.create_task(self._ask(client, session, key, path))
            running = (loop, task)
            self._inflight[key] = running
            task.add_done_callback(functools.partial(self._finished, key))
        return await asyncio.shield(running[1])

    def _finished(self, key: tuple[str, str, str], task: asyncio.Task[tuple[bool, str]]) -> None:
        running = self._inflight.get(key)
        if running is not None and running[1] is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here too, for when every waiter was cancelled

    async def _ask(
        self, client: Dominus, session: PortalSession, key: tuple[str, str, str], path: str
    ) -> tuple[bool, str]:
        now = self._clock()
        try:
            answer = await client.portal.check_page_access(path, user_token=session.access_token)
        except AuthenticationError as exc:
            self._cache.pop(key, None)
            raise DominusHTTPException(
                401, "The session has ended", exc.code or "not_authenticated", headers={"WWW-Authenticate": "Bearer"}
            ) from None
        allowed, reason = bool(answer.get("allowed")), str(answer.get("reason") or "")
        self._cache[key] = (now, allowed, reason)
        self._cache.move_to_end(key)
        while len(self._cache) > _CACHE_LIMIT:
            self._cache.popitem(last=False)
        return allowed, reason


class PskGuard(Guard):
    """Machine callers that present their PSK (the reference SDK's ``psk`` helper).

    The PSK is read from ``header`` and exchanged with ``portal.login_client`` for a client session, whose
    verified claims are put in ``request.state.dominus_client`` (a :class:`DominusUser`). Sessions are cached
    by the PSK's SHA-256 digest (never the PSK itself) until ``PSK_TOKEN_MARGIN`` seconds before they expire.
    A wrong PSK gets 401 ``invalid_credentials``.
    """

    def __init__(
        self,
        *,
        header: str = "X-Dominus-PSK",
        scopes: tuple[str, ...] = (),
        clock: Clock = time.time,
    ) -> None:
        super().__init__()
        self.needs_session = False
        self.header = header
        self.scopes = scopes
        self._clock = clock
        self._cache: OrderedDict[str, PortalSession] = OrderedDict()

    def openapi_responses(self) -> dict[str, str]:
        answers = {
            "401": f"No PSK in the `{self.header}` header (`not_authenticated`), or a wrong one "
            "(`invalid_credentials`)"
        }
        if self.scopes:
            answers["403"] = f"The client lacks {_needed('scope', self.scopes, False)} (`missing_scope`)"
        return answers

    async def check(self, request: Request) -> None:
        psk = request.headers.get(self.header)
        if not psk:
            raise DominusHTTPException(
                401, f"Send the client's PSK in the {self.header} header", "not_authenticated"
            )
        digest = hashlib.sha256(psk.encode()).hexdigest()
        session = self._cache.get(digest)
        if session is None or session.expires_at - PSK_TOKEN_MARGIN <= self._clock():
            session = await self._login(request, psk)
            self._cache[digest] = session
            self._cache.move_to_end(digest)
            while len(self._cache) > _CACHE_LIMIT:
                self._cache.popitem(last=False)
        missing = [s for s in self.scopes if s not in session.scopes]
        if missing:
            raise DominusHTTPException(403, f"Needs the scope(s): {', '.join(missing)}", "missing_scope")
        request.state.dominus_client = DominusUser(session)

    async def _login(self, request: Request, psk: str) -> PortalSession:
        client = find_client(request.scope)
        if client is None:
            raise RuntimeError("require_psk needs the Dominus client: use dominus_lifespan()")
        try:
            data = await client.portal.login_client(psk)
        except AuthenticationError:
            raise DominusHTTPException(401, "Invalid client credentials", "invalid_credentials") from None
        token = str(data["access_token"])
        claims: Mapping[str, Any] = await client.validate_jwt(token)
        return PortalSession(token, claims, "bearer")


def require_page_access(
    path: str | None = None,
    *,
    redirect_to: str | None = None,
    cache_seconds: float = PAGE_ACCESS_CACHE_SECONDS,
    clock: Clock = time.monotonic,
    recheck: bool = False,
) -> PageAccessGuard:
    """A guard that lets the request through only if the session may open ``path`` (spec 8.8).

    Answers are reused for ``cache_seconds``; ``recheck=True`` asks Portal on every request instead.
    """
    return PageAccessGuard(path, redirect_to=redirect_to, cache_seconds=cache_seconds, clock=clock, recheck=recheck)


def require_scopes(
    *scopes: str, any_of: bool = True, redirect_to: str | None = None, recheck: bool = False
) -> ScopesGuard:
    """A guard on the session's scopes: any one of them (default) or, with ``any_of=False``, all.

    The token's scopes by default (fixed for its lifetime, up to 900 s); ``recheck=True`` reads them from
    current data on every request (``portal.me``), refusing an ended session too.
    """
    return ScopesGuard(tuple(scopes), any_of=any_of, redirect_to=redirect_to, recheck=recheck)


def require_role(
    *roles: str, any_of: bool = True, redirect_to: str | None = None, recheck: bool = False
) -> RoleGuard:
    """A guard on the session's roles in its active tenant: any one of ``roles`` (default) or, with
    ``any_of=False``, all. A decorator and a dependency, like every guard.

    Anonymous: 401 ``not_authenticated`` (303 to ``redirect_to?next=...`` for a browser when set). Signed in
    without the role: 403 ``missing_role``. The token's roles by default (fixed for its lifetime, up to 900 s);
    ``recheck=True`` reads them from current data on every request (``portal.me``), refusing an ended session
    too. Role names are Guardian role names (``auth.ensure_role``); the built-in ``admin`` role makes its
    holder an administrator of the whole project.
    """
    return RoleGuard(tuple(roles), any_of=any_of, redirect_to=redirect_to, recheck=recheck)


def require_jwt(
    *, subject_type: str | None = None, redirect_to: str | None = None, recheck: bool = False
) -> SessionGuard:
    """A guard that needs any valid session token (the reference SDK's ``jwt`` helper).

    ``recheck=True`` has the server confirm on every request that the session is still live (``portal.me``).
    """
    return SessionGuard(subject_type=subject_type, redirect_to=redirect_to, recheck=recheck)


def require_psk(*, header: str = "X-Dominus-PSK", scopes: tuple[str, ...] = ()) -> PskGuard:
    """A guard for machine clients that send their PSK (the reference SDK's ``psk`` helper)."""
    return PskGuard(header=header, scopes=scopes)
