"""``PortalSessionMiddleware``: identifies the Portal session of each request; never rejects one for it.

Pure ASGI (no ``BaseHTTPMiddleware``), so streaming responses, background tasks, websockets and context
variables pass through untouched. For each HTTP or websocket connection it:

1. reads the session token from ``Authorization: Bearer`` or else from the HttpOnly session cookie;
2. checks it locally against the cached key set (``Dominus.validate_jwt``, spec 5.10) — no backend round
   trip on the hot path. Only session tokens (those with a ``sid`` claim, spec 5.1) identify a caller;
3. when the cookie's access token has expired, refreshes it with the refresh cookie (``portal.refresh``)
   and rewrites both cookies on the response. Requests that carry the same pair of cookies (the same expired
   access token and the same refresh token) share one refresh, while it runs and for
   ``REFRESH_SHARE_SECONDS`` after it, because presenting a rotated-out refresh token ends the whole
   session (spec 5.7): a browser's parallel requests, and those it sent before it received the new cookies,
   carry that pair. A refresh cookie that comes without its access cookie is never given a shared outcome:
   it is refreshed on its own, so a stolen, rotated-out refresh cookie alone gets no session (the server
   sees the reuse and ends the session);
4. optionally (``revalidate_interval``) asks the backend (``portal.me``) at most once per interval per
   session whether the session is still alive, so a revoked session is noticed within that interval (a
   local check cannot see revocation). A failed check for a reason other than authentication keeps the
   session (fail open) and is logged;
5. sets ``scope["user"]`` / ``scope["auth"]`` (Starlette's ``request.user`` / ``request.auth``): a
   :class:`DominusUser` and its scopes, or ``UnauthenticatedUser`` and no scopes; and the
   :class:`PortalSession` for the dependencies (``dominus_fastapi.deps.get_session``).

It never answers 401: public routes stay reachable and enforcement belongs to the dependencies and guards.

Permissions come from the token. ``request.user``'s scopes, roles and tenant are the claims of the access token,
fixed when it was issued: a scope or role withdrawn in Guardian shows only in the next token, up to 900 s (the
access-token lifetime) later. An ended session (a sign-out elsewhere, a revocation) is refused at once when it
ended through this process (:meth:`PortalSessionMiddleware.forget_session`), else once ``revalidate_interval``
has passed since its last check, and without ``revalidate_interval`` only when its access token expires and the
refresh is refused. Routes that must stop at once use a guard with ``recheck=True`` (``dominus_fastapi.guards``),
which asks the server on every request.
It does answer 403 to a cookie-authenticated unsafe request (POST, PUT, PATCH, DELETE) whose ``Origin``
(or, without one, ``Referer``) names another site than the request's host or a configured allowed origin
(CSRF protection); Bearer-authenticated requests are exempt, because browsers never add that header by
themselves. Hosts are compared as ``host[:port]``, so a TLS-terminating proxy does not break the check.
A websocket handshake whose cookie session comes with another site's ``Origin`` is treated as anonymous, for
the same reason.

Cookies are HttpOnly, ``SameSite=Lax`` and ``Secure`` unless the request is plain http to a loopback host
(localhost, 127.0.0.0/8, ::1); each is configurable through :class:`SessionConfig`.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit

from starlette.authentication import AuthCredentials, BaseUser, UnauthenticatedUser
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dominus_fastapi.core.errors import AuthenticationError, DominusError

if TYPE_CHECKING:
    from dominus_fastapi.core.client import Dominus

__all__ = [
    "CONFIG_SCOPE_KEY",
    "MIDDLEWARE_SCOPE_KEY",
    "SESSION_SCOPE_KEY",
    "DominusUser",
    "PortalSession",
    "PortalSessionMiddleware",
    "SessionConfig",
    "find_client",
    "is_loopback_host",
    "same_origin",
]

logger = logging.getLogger("dominus_fastapi")

SESSION_SCOPE_KEY: Final = "dominus.session"
"""Scope key under which the middleware leaves the request's :class:`PortalSession` (or ``None``)."""
CONFIG_SCOPE_KEY: Final = "dominus.session_config"
"""Scope key under which the middleware leaves its :class:`SessionConfig` (read by the portal router)."""
MIDDLEWARE_SCOPE_KEY: Final = "dominus.session_middleware"
"""Scope key under which the middleware leaves itself, so a sign-out can end the session here at once."""

REFRESH_SHARE_SECONDS: Final = 60.0
"""How long the outcome of a refresh is reused for other requests that carry the same old cookie pair (the
same expired access token together with the same refresh token); never for a refresh token alone."""
_CACHE_LIMIT: Final = 10_000
_UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Clock = Callable[[], float]
_TRANSIENT: Final = "transient"
_RefreshResult = dict[str, Any] | str | None


@dataclass(frozen=True)
class SessionConfig:
    """How session cookies are written and which foreign origins may send cookie-authenticated writes.

    ``cookie_secure=None`` means: Secure unless the request is plain http to a loopback host.
    ``cookie_max_age=None`` makes browser-session cookies. ``allowed_origins`` are full origins
    (``https://app.example.com``) trusted in addition to the request's own host.
    """

    cookie_name: str = "dominus_session"
    refresh_cookie_name: str = "dominus_refresh"
    cookie_path: str = "/"
    cookie_domain: str | None = None
    cookie_samesite: Literal["lax", "strict", "none"] = "lax"
    cookie_secure: bool | None = None
    cookie_max_age: int | None = None
    allowed_origins: tuple[str, ...] = ()

    def secure_for(self, conn: HTTPConnection) -> bool:
        """Whether cookies set on this request's answer get the ``Secure`` flag."""
        if self.cookie_secure is not None:
            return self.cookie_secure
        return not (conn.url.scheme in ("http", "ws") and is_loopback_host(conn.url.hostname or ""))

    def set_cookie_headers(self, conn: HTTPConnection, access_token: str, refresh_token: str | None) -> list[str]:
        """``Set-Cookie`` values for a new session (the refresh cookie only when there is a refresh token)."""
        values = [self._cookie(conn, self.cookie_name, access_token, self.cookie_max_age)]
        if refresh_token is not None:
            values.append(self._cookie(conn, self.refresh_cookie_name, refresh_token, self.cookie_max_age))
        return values

    def clear_cookie_headers(self, conn: HTTPConnection) -> list[str]:
        """``Set-Cookie`` values that delete both cookies, with the attributes they were set with."""
        return [self._cookie(conn, name, "", 0) for name in (self.cookie_name, self.refresh_cookie_name)]

    def _cookie(self, conn: HTTPConnection, name: str, value: str, max_age: int | None) -> str:
        cookie: SimpleCookie = SimpleCookie()
        cookie[name] = value
        morsel = cookie[name]
        morsel["path"] = self.cookie_path
        morsel["httponly"] = True
        morsel["samesite"] = self.cookie_samesite.capitalize()
        if self.cookie_domain:
            morsel["domain"] = self.cookie_domain
        if self.secure_for(conn) or self.cookie_samesite == "none":
            morsel["secure"] = True
        if max_age is not None:
            morsel["max-age"] = max_age
            if max_age == 0:
                morsel["expires"] = "Thu, 01 Jan 1970 00:00:00 GMT"
        return morsel.OutputString()


def is_loopback_host(host: str) -> bool:
    """``localhost``, any 127.0.0.0/8 address or ``::1``."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_port(scheme: str, netloc: str) -> str:
    """``host[:port]`` in lower case, without the scheme's default port."""
    try:
        parts = urlsplit(f"//{netloc}")
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        return ""
    default = 443 if scheme in ("https", "wss") else 80
    return host if port in (None, default) else f"{host}:{port}"


def same_origin(origin: str, conn: HTTPConnection, allowed_origins: Iterable[str] = ()) -> bool:
    """Whether ``origin`` (an ``Origin`` value or a URL) is the request's own host or an allowed origin."""
    parts = urlsplit(origin.strip())
    scheme = parts.scheme.lower()
    if not scheme or not parts.netloc:
        return False
    candidate = _host_port(scheme, parts.netloc)
    if not candidate:
        return False
    for allowed in allowed_origins:
        allowed_parts = urlsplit(allowed.strip())
        allowed_scheme = allowed_parts.scheme.lower()
        if allowed_scheme == scheme and _host_port(allowed_scheme, allowed_parts.netloc) == candidate:
            return True
    host = conn.headers.get("host")
    # Compare host[:port] only: behind a TLS-terminating proxy the app itself sees plain http.
    return bool(host) and _host_port(scheme, host or "") == candidate


@dataclass(frozen=True)
class PortalSession:
    """The Portal session of one request: the verified claims and the credential they came from.

    ``access_token`` and ``refresh_token`` are secrets: they are left out of ``repr``.
    """

    access_token: str = field(repr=False)
    claims: Mapping[str, Any] = field(repr=False)
    via: Literal["cookie", "bearer"]
    refresh_token: str | None = field(default=None, repr=False)
    refreshed: bool = False

    @cached_property
    def subject_id(self) -> str:
        """The subject's id (claim ``sub``): a user id, or a client id for a client session."""
        return str(self.claims.get("sub", ""))

    @cached_property
    def subject_type(self) -> str:
        """``"user"`` or ``"client"`` (claim ``subject_type``; ``"user"`` when absent)."""
        return str(self.claims.get("subject_type", "user"))

    @cached_property
    def session_id(self) -> str:
        """The session's id (claim ``sid``), as ``portal.list_sessions`` and ``revoke_session`` name it."""
        return str(self.claims.get("sid", ""))

    @cached_property
    def tenant_id(self) -> str | None:
        """The tenant the session is switched to (claim ``tenant_id``), or ``None``."""
        value = self.claims.get("tenant_id")
        return None if value is None else str(value)

    @cached_property
    def roles(self) -> tuple[str, ...]:
        """The role names of the subject (claim ``roles``)."""
        return tuple(str(r) for r in self.claims.get("roles") or ())

    @cached_property
    def scopes(self) -> tuple[str, ...]:
        """The scope slugs of the subject (claim ``scopes``)."""
        return tuple(str(s) for s in self.claims.get("scopes") or ())

    @cached_property
    def expires_at(self) -> float:
        """When the access token expires (claim ``exp``, Unix seconds)."""
        return float(self.claims.get("exp", 0))

    @cached_property
    def user(self) -> DominusUser:
        """The session's subject as ``request.user`` (one object per session)."""
        return DominusUser(self)

    def __repr__(self) -> str:
        return (
            f"PortalSession(subject_type={self.subject_type!r}, subject_id={self.subject_id!r}, "
            f"session_id={self.session_id!r}, tenant_id={self.tenant_id!r}, via={self.via!r})"
        )


class DominusUser(BaseUser):
    """The signed-in subject, as ``request.user`` and as the ``CurrentUser`` dependency.

    Built from the verified token claims; the token itself stays in the :class:`PortalSession`.
    """

    def __init__(self, session: PortalSession) -> None:
        self.session = session

    @property
    def is_authenticated(self) -> bool:
        """Always ``True``: an anonymous request has Starlette's ``UnauthenticatedUser`` instead."""
        return True

    @property
    def display_name(self) -> str:
        """The subject's id (Starlette's ``BaseUser`` interface; tokens carry no name)."""
        return self.id

    @property
    def identity(self) -> str:
        """The subject's id (Starlette's ``BaseUser`` interface)."""
        return self.id

    @property
    def id(self) -> str:
        """The subject's id (claim ``sub``)."""
        return self.session.subject_id

    @property
    def subject_type(self) -> str:
        """``"user"`` or ``"client"``."""
        return self.session.subject_type

    @property
    def session_id(self) -> str:
        """The Portal session's id (claim ``sid``)."""
        return self.session.session_id

    @property
    def tenant_id(self) -> str | None:
        """The tenant the session is switched to, or ``None``."""
        return self.session.tenant_id

    @property
    def roles(self) -> tuple[str, ...]:
        """The role names of the subject (claim ``roles``)."""
        return self.session.roles

    @property
    def scopes(self) -> tuple[str, ...]:
        """The scope slugs of the subject (claim ``scopes``)."""
        return self.session.scopes

    @property
    def is_admin(self) -> bool:
        """An administrator holds the ``admin`` role (spec 5.9)."""
        return "admin" in self.session.roles

    @property
    def claims(self) -> Mapping[str, Any]:
        """Every verified claim of the access token."""
        return self.session.claims

    def __repr__(self) -> str:
        return f"DominusUser(id={self.id!r}, subject_type={self.subject_type!r}, tenant_id={self.tenant_id!r})"


def find_client(scope: Scope) -> Dominus | None:
    """The ``Dominus`` client of the app: the lifespan state first, then ``app.state.dominus``."""
    state = scope.get("state")
    if (type(state) is dict or isinstance(state, Mapping)) and state.get("dominus") is not None:
        return state["dominus"]  # type: ignore[no-any-return]
    app = scope.get("app")
    app_state = getattr(app, "state", None)
    client = getattr(app_state, "dominus", None)
    return client


def _pair_digest(access_token: str, refresh_token: str) -> str:
    """One digest of both session cookies (never the secrets themselves as a key); NUL never occurs in a cookie."""
    return hashlib.sha256(f"{access_token}\0{refresh_token}".encode()).hexdigest()


def _header_bytes(scope: Scope, name: bytes) -> bytes | None:
    """The first raw value of header ``name`` (lower case) without building a ``Headers`` object per request."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def _raw_header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), decoded."""
    value = _header_bytes(scope, name)
    return None if value is None else value.decode("latin-1")


@dataclass
class _Outcome:
    session: PortalSession | None = None
    set_cookies: list[str] = field(default_factory=list)


class PortalSessionMiddleware:
    """Identify the Portal session of every HTTP and websocket request; never reject a request for lacking one.

    Pure ASGI, so streaming, background tasks, websockets and context variables pass through. For each request it
    reads the session token (``Authorization: Bearer``, else the HttpOnly session cookie), checks it locally
    against the cached key set (no backend round trip), refreshes an expired cookie session with the refresh
    cookie (rewriting both cookies), and sets ``request.user`` (a :class:`DominusUser`, or Starlette's
    ``UnauthenticatedUser``) and the :class:`PortalSession` that the dependencies read. Enforcement belongs to
    the dependencies and guards; the one answer it gives itself is 403 to a cookie-authenticated unsafe request
    (POST, PUT, PATCH, DELETE) from another site (CSRF protection; Bearer requests are exempt).

    Permissions come from the token: a scope or role withdrawn in Guardian shows in the next token (up to 900 s
    later). An ended session is refused at once when it ended through this process, else after
    ``revalidate_interval``.

    Args:
        app: The ASGI app to wrap (``app.add_middleware`` passes it).
        cookie_name: The access-token cookie.
        refresh_cookie_name: The refresh-token cookie.
        cookie_path: The cookies' ``Path``.
        cookie_domain: The cookies' ``Domain``; ``None``: the request's host only.
        cookie_samesite: ``lax`` (the default), ``strict`` or ``none``.
        cookie_secure: ``None``: ``Secure`` unless the request is plain http to a loopback host.
        cookie_max_age: Cookie lifetime in seconds; ``None``: browser-session cookies.
        allowed_origins: Full origins (``https://app.example.com``) trusted for cookie-authenticated writes
            besides the request's own host.
        csrf: ``False`` turns the Origin check off (only for apps that protect themselves otherwise).
        revalidate_interval: Seconds between checks with the server (``portal.me``) that a session is still
            alive, at most one per session per interval; ``None``: never (a revoked session then lasts until its
            access token expires). A check that fails for another reason than authentication keeps the session.
        leeway: Seconds of clock skew allowed on token times.
        client: The ``Dominus`` client; default: the one :func:`~dominus_fastapi.dominus_lifespan` published.
        clock: A monotonic clock, injectable for tests.
        config: A :class:`SessionConfig` that replaces the cookie arguments (``setup_dominus`` passes one).
    """

    def __init__(
        self,
        app: ASGIApp,
        cookie_name: str = "dominus_session",
        *,
        refresh_cookie_name: str = "dominus_refresh",
        cookie_path: str = "/",
        cookie_domain: str | None = None,
        cookie_samesite: Literal["lax", "strict", "none"] = "lax",
        cookie_secure: bool | None = None,
        cookie_max_age: int | None = None,
        allowed_origins: Sequence[str] = (),
        csrf: bool = True,
        revalidate_interval: float | None = None,
        leeway: float = 0.0,
        client: Dominus | None = None,
        clock: Clock = time.monotonic,
        config: SessionConfig | None = None,
    ) -> None:
        self.app = app
        self.config = config or SessionConfig(
            cookie_name=cookie_name,
            refresh_cookie_name=refresh_cookie_name,
            cookie_path=cookie_path,
            cookie_domain=cookie_domain,
            cookie_samesite=cookie_samesite,
            cookie_secure=cookie_secure,
            cookie_max_age=cookie_max_age,
            allowed_origins=tuple(allowed_origins),
        )
        if revalidate_interval is not None and revalidate_interval < 0:
            raise ValueError("revalidate_interval must be None or a number of seconds >= 0")
        self.csrf = csrf
        self.revalidate_interval = revalidate_interval
        self.leeway = leeway
        self._client = client
        self._clock = clock
        self._checked: OrderedDict[str, float] = OrderedDict()  # sid -> clock time of the last good check
        self._revoked: OrderedDict[str, float] = OrderedDict()  # sid -> token expiry (epoch seconds)
        self._refreshes: OrderedDict[str, tuple[float, _RefreshResult]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[_RefreshResult]] = {}
        # Sessions of verified tokens, with the key-set generation they were verified under (see _recall), keyed
        # by the whole Authorization header value, or by the (access, refresh) cookie values.
        self._known: dict[bytes | tuple[str, str | None], tuple[PortalSession, int]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        session: PortalSession | None = self._known_bearer(scope)
        if session is not None:
            # The common case, settled without awaiting anything: a Bearer token verified before.
            scope[CONFIG_SCOPE_KEY] = self.config
            scope[MIDDLEWARE_SCOPE_KEY] = self
            scope[SESSION_SCOPE_KEY] = session
            scope["user"] = session.user
            scope["auth"] = AuthCredentials(session.scopes)
            await self.app(scope, receive, send)
            return
        outcome = await self._identify(scope)
        session = outcome.session
        if self.csrf and session is not None and session.via == "cookie" and kind == "websocket":
            # Another site's page opening a websocket with our cookie (cross-site websocket hijacking); browsers
            # always send Origin on a handshake, so only a foreign one is refused.
            origin = _raw_header(scope, b"origin")
            if origin is not None and not same_origin(origin, HTTPConnection(scope), self.config.allowed_origins):
                session = None
        scope[CONFIG_SCOPE_KEY] = self.config
        scope[MIDDLEWARE_SCOPE_KEY] = self
        scope[SESSION_SCOPE_KEY] = session
        if session is not None:
            scope["user"] = session.user
            scope["auth"] = AuthCredentials(session.scopes)
        else:
            scope["user"] = UnauthenticatedUser()
            scope["auth"] = AuthCredentials()
        if (
            self.csrf
            and kind == "http"
            and session is not None
            and session.via == "cookie"
            and scope["method"] in _UNSAFE_METHODS
            and not self._origin_ok(HTTPConnection(scope))
        ):
            conn = HTTPConnection(scope)
            response = JSONResponse(
                {
                    "detail": "Cross-site request refused: the Origin (or Referer) header must name this site",
                    "code": "csrf_failed",
                    "request_id": conn.headers.get("x-request-id"),
                },
                status_code=403,
            )
            headers = MutableHeaders(scope={"type": "http", "headers": response.raw_headers})
            for value in outcome.set_cookies:
                headers.append("set-cookie", value)
            await response(scope, receive, send)
            return
        if not outcome.set_cookies or kind != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, self._cookie_writer(send, outcome.set_cookies))

    def _cookie_writer(self, send: Send, values: list[str]) -> Send:
        names = (self.config.cookie_name, self.config.refresh_cookie_name)

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                # The endpoint's own cookie (a login, a logout) wins over the middleware's.
                own = {
                    v.split("=", 1)[0].strip() for v in headers.getlist("set-cookie") if v.split("=", 1)[0] in names
                }
                for value in values:
                    if value.split("=", 1)[0] not in own:
                        headers.append("set-cookie", value)
            await send(message)

        return send_with_cookies

    def _origin_ok(self, conn: HTTPConnection) -> bool:
        origin = conn.headers.get("origin")
        if origin is None or origin == "null":
            origin = conn.headers.get("referer")
        if not origin:
            return False
        return same_origin(origin, conn, self.config.allowed_origins)

    # --- identification -----------------------------------------------------------------------------------

    def _known_bearer(self, scope: Scope) -> PortalSession | None:
        """The session of the request's ``Authorization`` header when that exact header carried a token that
        was verified before, under the same key set, that is still within its times and whose session needs
        no backend check now; ``None`` otherwise (then :meth:`_identify` decides)."""
        if not self._known:
            return None
        header = _header_bytes(scope, b"authorization")
        if header is None:
            return None
        client = self._client or find_client(scope)
        if client is None:
            return None
        session = self._recall(client, header)
        if session is None or session.session_id in self._revoked or self.revalidate_interval is not None:
            return None
        return session

    async def _identify(self, scope: Scope) -> _Outcome:
        raw_authorization = _header_bytes(scope, b"authorization")
        if raw_authorization is not None:
            scheme, _, credential = raw_authorization.decode("latin-1").partition(" ")
            credential = credential.strip()
            if scheme.lower() == "bearer" and credential:
                client = self._require_client(scope)
                session = await self._verify(client, credential, "bearer", None)
                if session is not None and not await self._alive(client, session):
                    return _Outcome()
                if session is not None:
                    self._learn(client, raw_authorization, session)
                return _Outcome(session)
        if _raw_header(scope, b"cookie") is None:
            return _Outcome()
        conn = HTTPConnection(scope)
        access = conn.cookies.get(self.config.cookie_name)
        refresh = conn.cookies.get(self.config.refresh_cookie_name)
        if not access and not refresh:
            return _Outcome()
        client = self._require_client(scope)
        expired = not access
        if access:
            session = self._recall(client, (access, refresh))
            if session is None:
                try:
                    claims = await client.validate_jwt(access, leeway=self.leeway)
                except AuthenticationError as exc:
                    expired = exc.code == "token_expired"
                    if not expired:
                        return _Outcome(None, self.config.clear_cookie_headers(conn))
                except DominusError as exc:  # the key set could not be fetched: do not throw the cookies away
                    logger.warning("Session check skipped: key set unavailable (%s)", type(exc).__name__)
                    return _Outcome()
                else:
                    if not claims.get("sid"):
                        return _Outcome(None, self.config.clear_cookie_headers(conn))
                    session = self._learn(client, (access, refresh), PortalSession(access, claims, "cookie", refresh))
            if session is not None:
                if not await self._alive(client, session):
                    return _Outcome(None, self.config.clear_cookie_headers(conn))
                return _Outcome(session)
        if expired and refresh and scope["type"] == "http":
            # Websocket handshakes cannot reliably set cookies, so a websocket never rotates the refresh token.
            return await self._refresh(client, conn, access, refresh)
        return _Outcome(None, self.config.clear_cookie_headers(conn) if scope["type"] == "http" else [])

    def _recall(self, client: Dominus, key: bytes | tuple[str, str | None]) -> PortalSession | None:
        """The session remembered under ``key`` while the key set is the one its token was verified with and the
        token's times still hold; ``None`` when it has to be checked (again)."""
        known = self._known.get(key)
        if known is None:
            return None
        session, generation = known
        if generation != client.key_set_generation() or client.wall_time() >= session.expires_at + self.leeway:
            del self._known[key]
            return None
        return session

    def _learn(
        self, client: Dominus, key: bytes | tuple[str, str | None], session: PortalSession
    ) -> PortalSession:
        """Remember a session whose token just passed :meth:`Dominus.validate_jwt` (see :meth:`_recall`)."""
        generation = client.key_set_generation()
        if generation is not None:
            if len(self._known) >= _CACHE_LIMIT:
                self._known.clear()
            self._known[key] = (session, generation)
        return session

    def _require_client(self, scope: Scope) -> Dominus:
        client = self._client or find_client(scope)
        if client is None:
            raise RuntimeError(
                "PortalSessionMiddleware found no Dominus client: use FastAPI(lifespan=dominus_lifespan()) "
                "or pass client= to the middleware"
            )
        return client

    async def _verify(
        self, client: Dominus, token: str, via: Literal["cookie", "bearer"], refresh: str | None
    ) -> PortalSession | None:
        try:
            claims = await client.validate_jwt(token, leeway=self.leeway)
        except DominusError:
            return None
        if not claims.get("sid"):
            return None
        return PortalSession(token, claims, via, refresh)

    async def _alive(self, client: Dominus, session: PortalSession) -> bool:
        """False when the session is known (or found) to be revoked; the backend is asked per interval."""
        sid = session.session_id
        now = self._clock()
        if sid in self._revoked:
            return False
        if self.revalidate_interval is None:
            return True
        last = self._checked.get(sid)
        if last is not None and now - last < self.revalidate_interval:
            return True
        try:
            await client.portal.me(user_token=session.access_token)
        except AuthenticationError:
            self._remember(self._revoked, sid, session.expires_at)
            self._checked.pop(sid, None)
            return False
        except DominusError as exc:
            logger.warning("Session revalidation failed, keeping the session (%s)", type(exc).__name__)
            return True
        self._remember(self._checked, sid, now)
        return True

    def forget_session(self, session_id: str, expires_at: float) -> None:
        """Refuse this session from now on in this process (a sign-out through this app calls it).

        Other processes of the app notice the end of the session through ``revalidate_interval``.
        """
        self._remember(self._revoked, session_id, expires_at)

    async def _refresh(
        self, client: Dominus, conn: HTTPConnection, access_token: str | None, refresh_token: str
    ) -> _Outcome:
        """Trade the refresh cookie for new tokens, sharing the outcome only with the same cookie pair.

        The share is keyed by both cookies, so that it reaches only the client that held the pair: a browser
        always sends both. Without an access cookie there is nothing to bind to, so the request refreshes for
        itself: a rotated-out token is then refused by the server as a reuse, which ends the session.
        """
        if not access_token:
            data = await self._run_refresh(client, None, refresh_token)
        else:
            key = _pair_digest(access_token, refresh_token)
            self._expire_refreshes(self._clock())
            shared = self._refreshes.get(key)
            if shared is not None:
                data = shared[1]
            elif key in self._inflight:
                data = await self._inflight[key]
            else:
                data = await self._run_refresh(client, key, refresh_token)
        if data is _TRANSIENT:
            return _Outcome()
        if not isinstance(data, dict):
            return _Outcome(None, self.config.clear_cookie_headers(conn))
        new_access = str(data["access_token"])
        new_refresh = data.get("refresh_token")
        session = await self._verify(client, new_access, "cookie", new_refresh)
        if session is None:
            return _Outcome(None, self.config.clear_cookie_headers(conn))
        session = PortalSession(session.access_token, session.claims, "cookie", new_refresh, refreshed=True)
        return _Outcome(session, self.config.set_cookie_headers(conn, new_access, new_refresh))

    async def _run_refresh(self, client: Dominus, key: str | None, refresh_token: str) -> _RefreshResult:
        """Call ``portal.refresh``; with a ``key``, others with that key wait for it and reuse its outcome."""
        future: asyncio.Future[_RefreshResult] = asyncio.get_running_loop().create_future()
        if key is not None:
            self._inflight[key] = future
        result: _RefreshResult
        try:
            try:
                result = dict(await client.portal.refresh(refresh_token=refresh_token))
            except AuthenticationError:
                result = None  # unknown, expired or reused: the session is over
            except DominusError as exc:
                # Transient: the refresh token may still be good, so nothing is cached and no cookie cleared.
                logger.warning("Session refresh failed (%s)", type(exc).__name__)
                result = _TRANSIENT
            if result is not _TRANSIENT and key is not None:
                self._remember(self._refreshes, key, (self._clock(), result))
            future.set_result(result)
            return result
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # marks it retrieved, so a future nobody awaited does not warn
            raise
        finally:
            if key is not None:
                self._inflight.pop(key, None)

    def _expire_refreshes(self, now: float) -> None:
        while self._refreshes:
            key, (at, _) = next(iter(self._refreshes.items()))
            if now - at < REFRESH_SHARE_SECONDS:
                break
            self._refreshes.pop(key)

    @staticmethod
    def _remember(store: OrderedDict[str, Any], key: str, value: Any) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > _CACHE_LIMIT:
            store.popitem(last=False)
