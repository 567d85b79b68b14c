"""The ``dominus_local`` ASGI application: the services, the framing and the dispatcher.

Every request under ``/api/`` and ``/jwt/`` goes through one pure-ASGI dispatcher that

1. echoes (or creates) ``X-Request-Id`` and answers 503 ``cold_start`` while the server is starting;
2. finds the endpoint (framed 404 ``not_found`` / 405 ``method_not_allowed`` otherwise);
3. reads the body within its size limit (413) and time limit (408), applies injected faults (spec 7.12) and
   decodes the base64 JSON body (400 ``invalid_body``);
4. checks the credential for the endpoint's auth kind (spec 5.1, 5.5) and the admin rule (spec 5.9);
5. applies the idempotency key (spec 6.3), runs the handler and frames its return value as ``data``, or the
   :class:`~dominus_local.errors.ApiError` it raised as a failure envelope; anything else is a 500
   ``internal_error`` whose details stay in the server log.

A service joins the app with one line in :data:`ROUTERS`. Routes outside ``/api/`` and ``/jwt/`` (the raw
download route, ``/metrics``) are not framed: their handlers return a Starlette ``Response``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

import dominus_fastapi.core.wire as wire
from dominus_local import identity, revocation
from dominus_local.errors import ApiError, ClientDisconnected
from dominus_local.faults import ConnectionDropped, FaultDecision, FaultInjector
from dominus_local.idempotency import HEADER as IDEMPOTENCY_HEADER
from dominus_local.idempotency import IdempotencyStore, KeyTaken, KeyUse, StoredAnswer, check_key
from dominus_local.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from dominus_local.metrics import Metrics
from dominus_local.routing import Endpoint, Principal, RequestContext, ServiceRouter
from dominus_local.security import INVALID_TOKEN_CHALLENGE, Credentials, credentials, load_credentials
from dominus_local.services import (
    admin,
    archivist,
    courier,
    gateway,
    guardian,
    health,
    herald,
    portal,
    scribe,
    smith,
    warden,
    whisperer,
)
from dominus_local.settings import LocalSettings
from dominus_local.state import LocalState
from dominus_local.stores.database import Database

__all__ = ["ROUTERS", "DominusLocalApp", "create_app"]

logger = logging.getLogger("dominus_local")

ROUTERS: list[ServiceRouter] = [
    gateway.router,
    health.router,
    warden.router,
    herald.router,
    admin.router,
    courier.router,
    portal.router,
    whisperer.router,
    archivist.router,
    scribe.router,
    smith.router,
    guardian.router,
]
"""Every service of the server; a new service adds its router here."""

FRAMED_PREFIXES = ("/api/", "/jwt/")
UPLOAD_PATH = "/api/archivist/upload"
UPLOAD_BODY_FACTOR = 16 / 9
"""The file is base64 inside JSON, and the JSON is base64 again: 4/3 twice (spec 3.1)."""
UPLOAD_BODY_SLACK = 1024 * 1024
UNMATCHED_ROUTE = "<unmatched>"
_METHODS_WITH_BODY = ("POST", "PUT", "PATCH", "DELETE")
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CREDENTIAL_REFUSED = ("invalid_token", "token_expired", "session_revoked")


@dataclass(frozen=True)
class _Route:
    endpoint: Endpoint
    pattern: re.Pattern[str]


def _compile(template: str) -> re.Pattern[str]:
    parts, last = [], 0
    for match in _PARAM.finditer(template):
        parts.append(re.escape(template[last : match.start()]))
        parts.append(f"(?P<{match.group(1)}>[^/]+)")
        last = match.end()
    parts.append(re.escape(template[last:]))
    return re.compile("^" + "".join(parts) + "$")


class _Answer:
    """A finished answer: status, headers and body bytes."""

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


def _framed_error(error: ApiError) -> _Answer:
    body = wire.encode_json(wire.error_envelope(error.message, error.code, error.details))
    headers = dict(error.headers)
    if error.status == 401 and "WWW-Authenticate" not in headers:
        refused = error.code in _CREDENTIAL_REFUSED
        headers["WWW-Authenticate"] = INVALID_TOKEN_CHALLENGE if refused else "Bearer"
    return _Answer(error.status, body, wire.CONTENT_TYPE, headers)


def _plain_error(error: ApiError) -> _Answer:
    return _Answer(error.status, error.message.encode("utf-8"), "text/plain; charset=utf-8", dict(error.headers))


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        return None
    return credential


def _missing_token() -> ApiError:
    return ApiError(
        "missing_token", "An Authorization header 'Bearer <token>' is required", headers={"WWW-Authenticate": "Bearer"}
    )


_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,200}")


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    if _REQUEST_ID.fullmatch(given):
        return given
    return str(uuid.uuid4())


class _BodyTooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


async def _read_body(receive: Receive, limit: int, seconds: float) -> bytes:
    """The whole body, within ``limit`` bytes and ``seconds`` (``LocalSettings.body_timeout``).

    A body that does not arrive in time is 408 ``request_timeout``, with ``Connection: close``: what is left
    of it is never read, so the connection cannot carry another request.
    """
    chunks: list[bytes] = []
    size = 0
    deadline = anyio.current_time() + seconds
    while True:
        with anyio.move_on_after(deadline - anyio.current_time()) as waiting:
            message = await receive()
        if waiting.cancelled_caught:
            raise ApiError(
                "request_timeout",
                f"The request body did not arrive within {seconds:g} s",
                details={"limit": seconds},
                headers={"Connection": "close"},
            )
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _principal(claims: dict[str, Any], settings: LocalSettings) -> Principal:
    subject_type = claims.get("subject_type")
    sub = claims.get("sub")
    tenant_id = claims.get("tenant_id")
    roles = claims.get("roles", [])
    scopes = claims.get("scopes", [])
    sid = claims.get("sid")
    ok = (
        subject_type in ("client", "user")
        and isinstance(sub, str)
        and (tenant_id is None or isinstance(tenant_id, str))
        and isinstance(roles, list)
        and all(isinstance(r, str) for r in roles)
        and isinstance(scopes, list)
        and all(isinstance(s, str) for s in scopes)
        and (sid is None or isinstance(sid, str))
    )
    if not ok:
        raise ApiError(
            "invalid_token",
            "The bearer token's claims are malformed",
            headers={"WWW-Authenticate": INVALID_TOKEN_CHALLENGE},
        )
    project = claims.get("project_slug")
    environment = claims.get("environment")
    return Principal(
        subject_type="user" if subject_type == "user" else "client",
        sub=str(sub),
        tenant_id=tenant_id,
        roles=tuple(roles),
        scopes=tuple(scopes),
        sid=sid,
        project=project if isinstance(project, str) else settings.project_slug,
        environment=environment if isinstance(environment, str) else settings.environment,
        claims=claims,
    )


class _SharedCheck:
    """A token check in progress, awaited by the requests that arrive while it runs."""

    __slots__ = ("done", "epoch", "outcome")

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.done = anyio.Event()
        self.outcome: bool | ApiError | None = None
        """``True``: active; an error: refused; ``None``: the check failed otherwise (followers check again)."""


def _replay(stored: StoredAnswer, use: KeyUse) -> _Answer:
    """The answer to a request whose key is already recorded (spec 6.3)."""
    if stored.fingerprint != use.fingerprint:
        raise ApiError("idempotency_key_reused", "This Idempotency-Key was already used for a different request")
    if stored.status is None:
        raise ApiError(
            "idempotency_in_progress",
            "A request with this Idempotency-Key is still running; retry shortly",
            headers={"Retry-After": "1"},
        )
    return _Answer(stored.status, stored.body, wire.CONTENT_TYPE, {"Idempotent-Replayed": "true"})


class DominusLocalApp:
    """The ASGI application of one ``dominus_local`` instance.

    ``state`` is the instance's :class:`~dominus_local.state.LocalState`. ``clock`` (monotonic seconds) drives
    the cold-start window and injected faults; ``wall_clock`` (Unix seconds) drives token times and
    idempotency retention. ``routers`` adds services beyond :data:`ROUTERS`.
    """

    def __init__(
        self,
        settings: LocalSettings,
        *,
        routers: Sequence[ServiceRouter] = (),
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.wall_clock = wall_clock
        # On PostgreSQL the statement time limit is a connection option of the service engine (no SET LOCAL round
        # trip per Scribe call); the server's own waits at start lift it (Database.startup_lock, create_all).
        database = Database(
            settings.resolved_database_url(),
            pool_size=settings.db_pool_size,
            statement_timeout=settings.statement_timeout,
        )
        self.state = LocalState(settings, database)
        self.routers: list[ServiceRouter] = [*ROUTERS, *routers]
        self.faults = FaultInjector.from_settings(settings, clock=clock)
        self.metrics = Metrics()
        self.idempotency = IdempotencyStore(self.state.db, clock=wall_clock)
        # Token checks (spec 5.5 steps 4-5) reuse recent answers: see identity.ActiveCache. On PostgreSQL, where
        # several processes share the database, only while a change feed keeps the memo in step (revocation).
        if self.state.db.is_sqlite:
            self.active_cache: identity.ActiveCache | None = identity.ActiveCache()
        else:
            self.active_cache = identity.ActiveCache(identity.SHARED_ACTIVE_CACHE_SECONDS, trusted=False)
        self.active_cache.watch(self.state.db.engine.sync_engine)
        self.state.db.observer = self.active_cache
        self.change_feed: revocation.ChangeFeed | None = None
        self.state.extras["faults"] = self.faults
        self.state.extras["metrics"] = self.metrics
        self.state.extras["idempotency"] = self.idempotency
        self.state.extras["app"] = self
        self._routes: list[_Route] = [
            _Route(endpoint, _compile(endpoint.path)) for router in self.routers for endpoint in router.endpoints
        ]
        # What _match answers for each (method, fixed path) pair, worked out once by the same ordered scan:
        # nearly every request names a fixed path, and the scan tries every route's pattern in turn.
        self._fixed: dict[tuple[str, str], Endpoint] = {}
        for route in self._routes:
            if "{" not in route.endpoint.path:
                with contextlib.suppress(ApiError):
                    endpoint, params = self._scan(route.endpoint.method, route.endpoint.path)
                    if not params:
                        self._fixed.setdefault((route.endpoint.method, route.endpoint.path), endpoint)
        self.started_at: float | None = None
        self._checks: dict[tuple[str, str, str | None], _SharedCheck] = {}

    # --- lifespan -------------------------------------------------------------------------------------------

    async def startup(self) -> None:
        """Create the tables, load the keys, ensure the bootstrap client, run the startup hooks, get ready."""
        settings = self.settings
        if settings.data_dir is not None:
            settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        creds: Credentials = await anyio.to_thread.run_sync(lambda: load_credentials(settings, clock=self.wall_clock))
        self.state.extras["security"] = creds
        # Several processes may start at once on one PostgreSQL database: they prepare it one at a time.
        async with self.state.db.startup_lock():
            await self.state.db.create_all()
            if not self.state.db.is_sqlite:
                await revocation.install_triggers(self.state.db)
            async with self.state.db.begin() as conn:
                self.state.extras["bootstrap_client_id"] = await identity.ensure_bootstrap_client(conn, creds.psk)
            await self.idempotency.purge_expired()
            for router in self.routers:
                for hook in router.startup:
                    await hook(self.state)
            if settings.seed_demo:
                await _seed_demo(self.state)
        if not self.state.db.is_sqlite and self.active_cache is not None:
            self.change_feed = revocation.feed_for(self.state.db, settings.cache_url, self.active_cache)
            await self.change_feed.start()
        if settings.data_dir is not None:
            _make_databases_private(settings.data_dir)
        self.started_at = self.clock()
        self.state.ready = True

    async def shutdown(self) -> None:
        """Run the shutdown hooks (last service first) and close the database."""
        self.state.ready = False
        try:
            if self.change_feed is not None:
                feed, self.change_feed = self.change_feed, None
                await feed.stop()
            for router in reversed(self.routers):
                for hook in router.shutdown:
                    try:
                        await hook(self.state)
                    except Exception:
                        logger.exception("Shutdown hook of service %s failed", router.service)
        finally:
            await self.state.db.dispose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """The ASGI lifespan protocol.

        A failed start-up sends ``lifespan.startup.failed`` and then re-raises, as Starlette does: a server
        reads the message, and ``asgi_lifespan.LifespanManager`` (embedded mode) needs the exception to stop
        waiting at once instead of at its start-up timeout. A lifespan cancelled while running (its event
        loop is ending, e.g. at the end of a script's ``asyncio.run``) still closes the database.
        """
        while True:
            try:
                message = await receive()
            except BaseException:
                if self.state.ready:
                    with contextlib.suppress(Exception):
                        await self.shutdown()
                raise
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    logger.exception("dominus_local failed to start")
                    with contextlib.suppress(Exception):
                        await self.state.db.dispose()
                    await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                    raise
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                except Exception as exc:
                    await send({"type": "lifespan.shutdown.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- HTTP -----------------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    def cold_start_remaining(self) -> float:
        """Seconds the server still behaves as starting (spec 6.5): not ready, configured window, or faults."""
        if not self.state.ready or self.started_at is None:
            return 1.0
        configured = self.settings.cold_start_seconds - (self.clock() - self.started_at)
        return max(0.0, configured, self.faults.cold_start_remaining())

    def _match(self, method: str, path: str) -> tuple[Endpoint, dict[str, str]]:
        fixed = self._fixed.get((method, path))
        if fixed is not None:
            return fixed, {}
        return self._scan(method, path)

    def _scan(self, method: str, path: str) -> tuple[Endpoint, dict[str, str]]:
        allowed: list[str] = []
        for route in self._routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.endpoint.method == method:
                return route.endpoint, found.groupdict()
            allowed.append(route.endpoint.method)
        if allowed:
            raise ApiError(
                "method_not_allowed",
                f"Method {method} is not allowed here; use {', '.join(sorted(set(allowed)))}",
                headers={"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise ApiError("not_found", f"No route for {path}")

    def _body_limit(self, path: str) -> int:
        if path == UPLOAD_PATH:
            upload = math.ceil(self.settings.upload_max_bytes * UPLOAD_BODY_FACTOR) + UPLOAD_BODY_SLACK
            return max(self.settings.max_body_bytes, upload)
        return self.settings.max_body_bytes

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = Request(scope)
        path: str = scope["path"]
        method: str = scope["method"].upper()
        request_id = _request_id(request)
        if path == "/metrics":
            await self._metrics(method, request_id, send)
            return
        framed = path.startswith(FRAMED_PREFIXES)
        route = UNMATCHED_ROUTE
        decision = FaultDecision()
        answer: _Answer | None = None
        raw: Response | None = None
        try:
            try:
                remaining = self.cold_start_remaining()
                if remaining > 0 and framed and not (path == "/api/admin/faults" and self.state.ready):
                    raise self._cold_start_error(path, remaining)
                endpoint, params = self._match(method, path)
                route = endpoint.path
                limit = self._body_limit(path)
                declared = request.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise _BodyTooLarge
                raw_body = await _read_body(receive, limit, self.settings.body_timeout)
                decision = self.faults.decide(path)
                if decision.latency_ms > 0:
                    await self.faults.sleep(decision.latency_ms / 1000)
                if decision.error_status is not None:
                    status = decision.error_status
                    headers = {"Retry-After": "1"} if status in (429, 503) else {}
                    raise ApiError(
                        wire.STATUS_CODE[status],
                        "Injected fault: the request was not run",
                        status=status,
                        headers=headers,
                    )
                body: dict[str, Any] = {}
                if method in _METHODS_WITH_BODY:
                    try:
                        body = wire.decode_body(raw_body)
                    except wire.FramingError as exc:
                        raise ApiError("invalid_body", f"The request body is invalid: {exc}") from None
                answer, raw = await self._dispatch(endpoint, request, params, body, request_id, framed, receive)
            except _BodyTooLarge:
                limit = self._body_limit(path)
                raise ApiError(
                    "payload_too_large",
                    f"The request body is larger than the limit of {limit} bytes",
                    details={"limit": limit},
                ) from None
        except (_ClientGone, ClientDisconnected):
            return
        except ApiError as error:
            answer = _framed_error(error) if framed else _plain_error(error)
        except Exception:
            logger.exception("Unhandled error in %s %s (request %s)", method, route, request_id)
            failure = ApiError("internal_error", "The server failed to handle the request")
            answer = _framed_error(failure) if framed else _plain_error(failure)
        status = raw.status_code if raw is not None else answer.status if answer is not None else 500
        self.metrics.observe_request(method, route, status, time.perf_counter() - started)
        if raw is not None:
            raw.headers["X-Request-Id"] = request_id
            await raw(scope, receive, send)
            return
        assert answer is not None
        head = [
            (b"content-type", answer.content_type.encode()),
            (b"content-length", str(len(answer.body)).encode()),
            (b"x-request-id", request_id.encode()),
        ]
        if framed:
            head.append((b"cache-control", b"no-store"))
        head += [(name.lower().encode(), value.encode("latin-1")) for name, value in answer.headers.items()]
        await send({"type": "http.response.start", "status": answer.status, "headers": head})
        if decision.drop:
            # The request ran; now break the connection: the head promises a body that never comes.
            raise ConnectionDropped(f"injected connection drop after {method} {path}")
        await send({"type": "http.response.body", "body": answer.body})

    def _cold_start_error(self, path: str, remaining: float) -> ApiError:
        details: dict[str, Any] = {}
        if path == "/api/health":
            details = health.starting_document(self.state)
        return ApiError(
            "cold_start",
            "The server is starting; retry shortly",
            details=details,
            headers={"Retry-After": str(max(1, math.ceil(remaining)))},
        )

    async def _authenticate(self, endpoint: Endpoint, request: Request) -> tuple[Principal | None, str | None]:
        """Spec 5.5 in order, then the admin rule; returns ``(principal, raw PSK)``.

        ``psk`` endpoints only get the raw credential: the handler finds its client (and applies any admin
        rule itself, as ``auth.mint`` does).

        Round trips: none when the memo knows the subject (and session) to be active, which is the case for
        every request but the first of a token in each memo period; else one database transaction (BEGIN, one
        SELECT per check, COMMIT), shared by the requests of the same token that arrive meanwhile.
        """
        if endpoint.auth == "none":
            return None, None
        credential = _bearer(request)
        if credential is None:
            raise _missing_token()
        if endpoint.auth == "psk":
            return None, credential
        claims = credentials(self.state).signer.verify_token(credential)
        principal = _principal(claims, self.settings)
        cache = self.active_cache
        if cache is None:
            await self._check_active(principal)
        elif not cache.hit(principal.subject_type, principal.sub, principal.sid):
            await self._check_active_shared(principal, cache)
        if endpoint.auth == "service" and principal.is_session:
            raise ApiError("forbidden", "This endpoint takes a service token, not a session token")
        if endpoint.auth == "user" and not principal.is_session:
            raise ApiError("forbidden", "This endpoint takes a session token, not a service token")
        if endpoint.admin and not principal.is_admin:
            raise ApiError("forbidden", "This endpoint is for administrators only")
        return principal, None

    async def _check_active(self, principal: Principal) -> datetime | None:
        """Spec 5.5 steps 4 and 5: the subject is active and so is the session, if any (its expiry returned)."""
        session_expires = None
        async with self.state.db.begin() as conn:
            if not await identity.subject_is_active(conn, principal.subject_type, principal.sub):
                raise ApiError(
                    "invalid_token",
                    "The bearer token's subject no longer exists or is not active",
                    headers={"WWW-Authenticate": INVALID_TOKEN_CHALLENGE},
                )
            if principal.sid is not None:
                session_expires = await identity.active_session_expiry(conn, principal.sid)
                if session_expires is None:
                    raise ApiError(
                        "session_revoked",
                        "The bearer token's session has ended",
                        headers={"WWW-Authenticate": INVALID_TOKEN_CHALLENGE},
                    )
        return session_expires

    async def _check_active_shared(self, principal: Principal, cache: identity.ActiveCache) -> None:
        """:meth:`_check_active` through the cache, one check at a time per (subject, session).

        Requests that arrive while the same check is running wait for it and share its answer, unless an
        identity write happened meanwhile (the cache's epoch moved): then they check for themselves. Without
        this, every request of a busy client would query the database each time the remembered answer expires.
        """
        key = (principal.subject_type, principal.sub, principal.sid)
        running = self._checks.get(key)
        if running is not None:
            await running.done.wait()
            if running.epoch == cache.epoch and running.outcome is not None:
                if isinstance(running.outcome, ApiError):
                    raise running.outcome
                return
            await self._check_active(principal)
            return
        check = _SharedCheck(cache.epoch)
        self._checks[key] = check
        try:
            session_expires = await self._check_active(principal)
            cache.remember(check.epoch, principal.subject_type, principal.sub, principal.sid, session_expires)
            check.outcome = True
        except ApiError as error:
            check.outcome = error
            raise
        finally:
            del self._checks[key]
            check.done.set()

    async def _dispatch(
        self,
        endpoint: Endpoint,
        request: Request,
        params: dict[str, str],
        body: dict[str, Any],
        request_id: str,
        framed: bool,
        receive: Receive,
    ) -> tuple[_Answer | None, Response | None]:
        """Authenticate, apply the idempotency key (spec 6.3), run the handler.

        Keys are used only where a subject is known (``none`` and ``psk`` endpoints have none, and the one
        ``psk`` endpoint is exempt anyway), never on a GET, a safe POST (a read) or a ``replay=False`` endpoint.
        A key first used for another request gets 422 even while that request is still running (the spec is
        silent on the order). ``records_key`` endpoints record the key with their own write (no round trip of
        its own); the others claim it here, in a transaction before the handler and one after it.
        """
        principal, psk = await self._authenticate(endpoint, request)
        ctx = RequestContext(
            request=request,
            body=body,
            path_params=params,
            state=self.state,
            request_id=request_id,
            principal=principal,
            psk=psk,
        )
        key = request.headers.get(IDEMPOTENCY_HEADER) if endpoint.replay else None
        if (
            key is None
            or principal is None
            or endpoint.method == "GET"
            or (endpoint.safe and endpoint.method == "POST")
        ):
            return await self._run(endpoint, ctx, framed, receive)
        check_key(key)
        fingerprint = wire.fingerprint(endpoint.method, request.url.path, body)
        if endpoint.records_key:
            use = KeyUse(principal.subject_type, principal.sub, key, fingerprint, self.idempotency)
            ctx.idempotency = use
            return await self._run_recording(endpoint, ctx, framed, use, receive)
        subject = (principal.subject_type, principal.sub, key)
        replay = await self.idempotency.claim(*subject, fingerprint)
        if replay is not None:
            return _Answer(replay.status, replay.body, wire.CONTENT_TYPE, {"Idempotent-Replayed": "true"}), None
        try:
            answer, raw = await self._run(endpoint, ctx, framed, receive)
        except ApiError as error:
            # Spec 6.3 keeps every answer below 500 (a 4xx changed nothing); finish() forgets a 5xx.
            failed = _framed_error(error)
            await self.idempotency.finish(*subject, failed.status, failed.body)
            raise
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.idempotency.forget(*subject)
            raise
        if answer is not None:
            await self.idempotency.finish(*subject, answer.status, answer.body)
        else:
            await self.idempotency.forget(*subject)
        return answer, raw

    async def _run_recording(
        self, endpoint: Endpoint, ctx: RequestContext, framed: bool, use: KeyUse, receive: Receive
    ) -> tuple[_Answer | None, Response | None]:
        """Run a ``records_key`` handler: its success is recorded with its write; a failure below 500 is
        recorded after it (where the handler's store keeps its keys); a key already recorded is answered from
        its record."""
        try:
            answer, raw = await self._run(endpoint, ctx, framed, receive)
        except KeyTaken as taken:
            return _replay(taken.stored, use), None
        except ApiError as error:
            failed = _framed_error(error)
            if failed.status >= 500:
                raise
            with anyio.CancelScope(shield=True):
                stored = await use.recorder.record_failure(use, failed.status, failed.body)
            if stored is not None:
                return _replay(stored, use), None
            raise
        if use.answer is None and answer is not None:  # pragma: no cover - every records_key handler records
            raise RuntimeError(f"handler of {endpoint.path} did not record its idempotency key")
        return answer, raw

    async def _run(
        self, endpoint: Endpoint, ctx: RequestContext, framed: bool, receive: Receive
    ) -> tuple[_Answer | None, Response | None]:
        if endpoint.cancel_on_disconnect:
            data = await _run_watched(endpoint, ctx, receive)
        else:
            data = await endpoint.handler(ctx)
        if isinstance(data, Response):
            return None, data
        if not framed:
            raise RuntimeError(f"handler of unframed route {endpoint.path} must return a Response")
        recorded = ctx.idempotency.answer if ctx.idempotency is not None else None
        body = recorded if recorded is not None else wire.encode_json(wire.success_envelope(data))
        return _Answer(200, body, wire.CONTENT_TYPE), None

    async def _metrics(self, method: str, request_id: str, send: Send) -> None:
        if not self.settings.metrics_enabled:
            status, body, content_type = 404, b"Not Found", "text/plain; charset=utf-8"
        elif method not in ("GET", "HEAD"):
            status, body, content_type = 405, b"Method Not Allowed", "text/plain; charset=utf-8"
        else:
            status, body, content_type = 200, self.metrics.render().encode(), METRICS_CONTENT_TYPE
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body if method != "HEAD" else b""})


async def _run_watched(endpoint: Endpoint, ctx: RequestContext, receive: Receive) -> Any:
    """Run the handler while listening for the client's disconnect, which calls the request's disconnect hooks.

    The body has been read, so the next ``http.disconnect`` means the client went away (ASGI servers hold
    ``receive`` until then, or until the answer is sent). The handler's task is not cancelled: the hooks stop
    its work in a way its store survives (:mod:`dominus_local.stores.limits`).
    """

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        await ctx.client_disconnected()

    watcher = asyncio.ensure_future(watch())
    try:
        return await endpoint.handler(ctx)
    finally:
        watcher.cancel()
        await asyncio.wait([watcher])


async def _seed_demo(state: LocalState) -> None:
    """Load the demo data (``LocalSettings.seed_demo``); idempotent, so every start may run it."""
    from dominus_local.seed import seed_demo  # imported late: the demo data pulls in every service

    await seed_demo(state)


def create_app(
    settings: LocalSettings | None = None,
    *,
    routers: Iterable[ServiceRouter] = (),
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> DominusLocalApp:
    """Build the ASGI app of a ``dominus_local`` instance (its lifespan starts it).

    ``settings`` defaults to :class:`LocalSettings` read from the environment. ``routers`` adds services
    (tests use it for probe endpoints); the clocks are injectable for tests.
    """
    return DominusLocalApp(settings or LocalSettings(), routers=tuple(routers), clock=clock, wall_clock=wall_clock)


def _make_databases_private(data_dir: Path) -> None:
    """Give the SQLite files of a data directory mode 0600, as the keys and the PSK already have.

    SQLite creates a database with the process umask (usually 0644), and its ``-wal``/``-shm`` files with the
    database's own mode, so tightening the files once they exist covers the later ones too. The outbox and the
    session tables hold live reset links and token digests.
    """
    for path in data_dir.glob("*.db*"):
        if path.is_file() and not path.is_symlink():
            with contextlib.suppress(OSError):  # e.g. a file owned by another user: reading still works
                path.chmod(0o600)
