"""The request pipeline: one pooled ``httpx.AsyncClient`` per client, framing, credentials, retries, breaker.

A :class:`Transport` is owned by one ``Dominus`` object and shared by its user views. It holds everything that
must exist once per client: the HTTP pool (made again in each event loop the client is used in), the circuit
breakers, the cold-start windows, the service-token cache, the key-set cache and (in embedded mode) the
in-process ``dominus_local`` instance.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import ipaddress
import logging
import operator
import ssl
import sys
import time
import uuid
import weakref
from collections.abc import AsyncGenerator, Mapping
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote

import httpx

from dominus_fastapi.core import wire
from dominus_fastapi.core.errors import (
    AuthenticationError,
    CircuitOpenError,
    DominusConnectionError,
    DominusError,
    DominusTimeoutError,
    ServiceError,
    ValidationError,
    error_from_response,
)
from dominus_fastapi.core.namespaces.base import UNSET, AuthKind
from dominus_fastapi.core.resilience import (
    BREAKER_FAILURE_STATUSES,
    RETRYABLE_STATUSES,
    CircuitBreaker,
    ColdStartWindow,
    RetryPolicy,
    parse_retry_after,
    retry_wait,
)
from dominus_fastapi.core.settings import (
    HEALTH_TIMEOUT,
    JWKS_TIMEOUT,
    MINT_TIMEOUT,
    POOL_KEEPALIVE_EXPIRY,
    POOL_MAX_CONNECTIONS,
    POOL_MAX_KEEPALIVE,
    USER_AGENT,
    DominusSettings,
    ResolvedHosts,
)
from dominus_fastapi.core.tokens import JwksCache, ServiceTokenCache

if TYPE_CHECKING:
    from dominus_local.embedded import EmbeddedInstance

__all__ = [
    "DropAwareASGITransport",
    "EmbeddedTransport",
    "ShardedPoolTransport",
    "Transport",
    "encode_query",
    "format_timestamp",
]

logger = logging.getLogger("dominus_fastapi")

Host = Literal["orchestrator", "gateway"]
Credential = Literal["none", "psk", "service", "bearer"]

EMBEDDED_ORIGIN = "http://dominus-local.embedded"
"""The origin used for requests to the in-process instance (never resolved: no sockets are involved)."""
EMBEDDED_MIN_PSK_LENGTH = 32
"""The shortest PSK an embedded instance accepts (as ``dominus-local serve``); checked before starting it."""

MINT_PATH = "/jwt/mint"
JWKS_PATH = "/jwt/jwks"
HEALTH_PATH = "/api/health"

_PRE_SEND_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
"""Transport failures that guarantee the request never left the client (spec 6.2)."""

_RAW_MESSAGE_LIMIT = 500


# --- Embedded mode --------------------------------------------------------------------------------------------


class _NoAnswer(Exception):
    """The app raised, or returned without a complete answer (a dropped connection, to the client)."""


class EmbeddedResponse:
    """An answer of the in-process instance: status, headers (lower-case names) and the whole body.

    Quacks like the parts of ``httpx.Response`` the pipeline reads (``status_code``, ``headers.get``,
    ``content``), without httpx's per-response objects.
    """

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    def __repr__(self) -> str:
        return f"EmbeddedResponse(status_code={self.status_code}, bytes={len(self.content)})"


async def _asgi_exchange(
    app: Any, scope: dict[str, Any], body: bytes, *, head: bool
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Hand ``body`` to ``app`` in one ``http.request`` message and collect the whole answer.

    Raises :class:`_NoAnswer` when the app raises or ends without a complete answer.
    """
    sent_body = False
    finished = asyncio.Event()
    status: int | None = None
    headers: list[tuple[bytes, bytes]] = []
    parts: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if sent_body:
            await finished.wait()
            return {"type": "http.disconnect"}
        sent_body = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Mapping[str, Any]) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            if chunk and not head:
                parts.append(chunk)
            if not message.get("more_body", False):
                finished.set()

    try:
        await app(scope, receive, send)
    except Exception as exc:
        raise _NoAnswer("the embedded server closed the connection without an answer") from exc
    if status is None or not finished.is_set():
        raise _NoAnswer("the embedded server ended without a complete answer")
    return status, headers, b"".join(parts)


class DropAwareASGITransport(httpx.ASGITransport):
    """``ASGITransport`` whose app exceptions look like a connection closed without an answer.

    ``dominus_local`` simulates a dropped connection (fault ``drop_after_read``) by raising out of the app;
    an HTTP server would close the socket, so the client sees :class:`httpx.RemoteProtocolError`.

    The request is handed to the app in one ``http.request`` message and the answer is collected into one
    ``httpx.Response`` with its content already read: the same exchange as ``httpx.ASGITransport``, without
    its per-request event, stream iterators and chunked reading.
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        url = request.url
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for (k, v) in request.headers.raw],
            "scheme": url.scheme,
            "path": url.path,
            "raw_path": url.raw_path.split(b"?")[0],
            "query_string": url.query,
            "server": (url.host, url.port),
            "client": self.client,
            "root_path": self.root_path,
        }
        try:
            status, headers, content = await _asgi_exchange(self.app, scope, body, head=request.method == "HEAD")
        except _NoAnswer as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc.__cause__
        return httpx.Response(status, headers=headers, content=content, request=request)


_EMBEDDED_HOST = EMBEDDED_ORIGIN.removeprefix("http://")
_EMBEDDED_CLIENT = ("127.0.0.1", 123)
_EMBEDDED_FIXED_HEADERS = [(b"host", _EMBEDDED_HOST.encode("ascii")), (b"accept-encoding", b"identity")]


class EmbeddedTransport(httpx.AsyncBaseTransport):
    """Runs ``dominus_local`` in this process: acquired on first use, released when the client closes.

    ``dominus_local`` is imported only here, and only when an ``embedded:`` URL is used. Per-attempt timeouts
    apply as on the network (the ASGI transport itself has none).

    The client's pipeline calls :meth:`exchange`, which hands the framed request straight to the instance's
    ASGI app (the same bytes, headers and app as over HTTP, without httpx's request and response objects);
    requests sent through an ``httpx.AsyncClient`` built on this transport take the same path.
    """

    def __init__(self, data_dir: str | None, psk: str | None) -> None:
        self._data_dir = data_dir
        self._psk = psk
        self._instance: EmbeddedInstance | None = None
        self._app: Any = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._lost: str | None = None
        """Why the in-memory instance cannot be started again (its data ended with its event loop)."""

    async def start(self) -> EmbeddedInstance:
        """The running instance, started (and its lifespan run) on the first call."""
        if self._instance is not None:
            return self._instance
        async with self._lock:
            if self._instance is None:
                if self._closed:
                    raise DominusConnectionError("the client is closed")
                if self._lost is not None:
                    raise DominusConnectionError(self._lost)
                if self._psk is not None and len(self._psk) < EMBEDDED_MIN_PSK_LENGTH:
                    raise ValidationError(
                        f"DOMINUS_TOKEN (or token=) is {len(self._psk)} characters; the embedded backend needs "
                        f"at least {EMBEDDED_MIN_PSK_LENGTH}: set a longer one, or leave it unset to use the "
                        "instance's own",
                        details={"field": "token", "reason": f"at least {EMBEDDED_MIN_PSK_LENGTH} characters"},
                    )
                from dominus_local import embedded

                try:
                    instance = await embedded.acquire(self._data_dir, self._psk)
                except DominusError:
                    raise
                except ValueError as exc:  # a setting the instance refused (dominus_local says which)
                    raise ValidationError(
                        f"the embedded backend cannot start: {exc}", details={"reason": "invalid setting"}
                    ) from exc
                except Exception as exc:
                    raise ServiceError(
                        f"the embedded backend failed to start ({type(exc).__name__}: {exc})"
                    ) from exc
                self._app = instance.app
                self._instance = instance
        return self._instance

    @property
    def instance(self) -> EmbeddedInstance | None:
        return self._instance

    async def exchange(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        content: bytes | None,
        timeout: float | None,
    ) -> EmbeddedResponse:
        """Send one request to the instance and return its whole answer.

        ``target`` is the percent-encoded path with its query, if any; ``headers`` are the request's own
        (``Host``, ``Content-Length`` and ``Accept-Encoding`` are added here).

        Raises ``httpx.RemoteProtocolError`` when the app drops the request (as a server closing the socket
        would) and ``httpx.ReadTimeout`` after ``timeout`` seconds, so that the pipeline treats both as the
        network failures they stand for.
        """
        app = self._app
        if app is None:
            await self.start()
            app = self._app
        body = content or b""
        raw_path, _, query = target.partition("?")
        raw_headers = [*_EMBEDDED_FIXED_HEADERS, (b"content-length", str(len(body)).encode("ascii"))]
        raw_headers += [(name.lower().encode("ascii"), value.encode("ascii")) for name, value in headers.items()]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "headers": raw_headers,
            "scheme": "http",
            "path": unquote(raw_path) if "%" in raw_path else raw_path,
            "raw_path": raw_path.encode("ascii"),
            "query_string": query.encode("ascii"),
            "server": (_EMBEDDED_HOST, 80),
            "client": _EMBEDDED_CLIENT,
            "root_path": "",
        }
        # One pass through the event loop per call, as a socket read would give: callers on the same loop
        # (a web app's other requests) get their turn even when the instance never has to wait.
        await asyncio.sleep(0)
        exchange = _asgi_exchange(app, scope, body, head=method == "HEAD")
        try:
            if timeout is None:
                status, head, answer = await exchange
            elif sys.version_info >= (3, 11):
                async with asyncio.timeout(timeout):
                    status, head, answer = await exchange
            else:  # pragma: no cover - Python 3.10
                status, head, answer = await asyncio.wait_for(exchange, timeout=timeout)
        except _NoAnswer as exc:
            raise httpx.RemoteProtocolError(str(exc)) from exc.__cause__
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise httpx.ReadTimeout("the embedded server did not answer in time") from exc
        return EmbeddedResponse(
            status, {name.decode("latin-1"): value.decode("latin-1") for name, value in head}, answer
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        timeouts = request.extensions.get("timeout") or {}
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers.raw}
        for name in ("host", "accept-encoding", "content-length"):
            headers.pop(name, None)
        try:
            answer = await self.exchange(
                request.method, request.url.raw_path.decode("ascii"), headers, body, timeouts.get("read")
            )
        except httpx.RequestError as exc:
            exc.request = request
            raise
        return httpx.Response(
            answer.status_code, headers=list(answer.headers.items()), content=answer.content, request=request
        )

    def abandon(self, *, close: bool = False) -> None:
        """Forget the instance started in an earlier event loop, which ended with it (``close``: for good).

        A data directory's instance is started again in the next loop, on the same data. An in-memory one
        (``embedded:``) cannot be: its data is gone, and a fresh empty instance would give wrong answers
        silently, so the next call raises :class:`DominusConnectionError` saying so.
        """
        self._closed = self._closed or close
        if self._instance is not None and self._data_dir is None:
            self._lost = (
                "the in-memory embedded backend (embedded:) ran in an event loop that has ended (an earlier "
                "asyncio.run), and its data ended with it: use embedded:///path/to/dir to keep the data "
                "across asyncio.run() calls, or make a new client"
            )
        self._instance, self._app = None, None
        self._lock = asyncio.Lock()

    async def aclose(self) -> None:
        self._closed = True
        instance, self._instance, self._app = self._instance, None, None
        if instance is not None:
            from dominus_local import embedded

            await embedded.release(instance)


# --- The connection pool ------------------------------------------------------------------------------------

POOL_SHARDS = 32
"""How many independent connection pools share the client's connection limit. Chosen by measurement (64
concurrent callers, loopback): 1 pool lost most of its throughput, 8 kept it but with a p99 up to 9x the
p50, 32 gave the best throughput with a p99 about 2x the p50."""


class _Shard:
    __slots__ = ("active", "transport")

    def __init__(self, transport: httpx.AsyncHTTPTransport) -> None:
        self.transport = transport
        self.active = 0


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that tells its shard when the exchange is over (the connection is free again)."""

    def __init__(self, inner: httpx.AsyncByteStream, shard: _Shard) -> None:
        self._inner = inner
        self._shard: _Shard | None = shard

    async def __aiter__(self) -> Any:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        shard, self._shard = self._shard, None
        if shard is not None:
            shard.active -= 1
        await self._inner.aclose()


def _share(total: int | None, parts: int, index: int) -> int | None:
    """Part ``index`` of ``total`` split into ``parts`` near-equal whole shares (``None``: no limit)."""
    if total is None:
        return None
    return total // parts + (1 if index < total % parts else 0)


class ShardedPoolTransport(httpx.AsyncBaseTransport):
    """``shards`` independent ``httpx.AsyncHTTPTransport`` pools that split ``limits`` between them (so the
    client never holds more than ``limits.max_connections`` connections).

    httpcore's pool does bookkeeping proportional to (waiting requests x pooled connections) on every request
    and every response, so one large pool loses throughput as concurrency grows. Each request goes to the
    shard with the fewest exchanges in flight (the first such shard on a tie, so light traffic reuses the
    same few connections); an exchange counts until its response body is closed. Every shard keeps its
    connections alive: a keep-alive limit below the concurrency would close and reopen connections all the
    time.
    """

    def __init__(
        self, limits: httpx.Limits, *, shards: int = POOL_SHARDS, verify: ssl.SSLContext | bool = True
    ) -> None:
        if shards < 1:
            raise ValueError("shards must be 1 or more")
        if limits.max_connections is not None and limits.max_connections < shards:
            shards = limits.max_connections
        # One TLS context for every shard: each one built loads the whole CA bundle (tens of ms of CPU).
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        self._shards = [
            _Shard(
                httpx.AsyncHTTPTransport(
                    limits=httpx.Limits(
                        max_connections=_share(limits.max_connections, shards, index),
                        max_keepalive_connections=_share(limits.max_keepalive_connections, shards, index),
                        keepalive_expiry=limits.keepalive_expiry,
                    ),
                    http1=True,
                    http2=False,
                    verify=context,
                )
            )
            for index in range(shards)
        ]
        self._least_busy = operator.attrgetter("active")

    @property
    def shards(self) -> list[httpx.AsyncHTTPTransport]:
        """The underlying transports, in order."""
        return [shard.transport for shard in self._shards]

    def connections(self) -> int:
        """How many connections the shards hold now."""
        return sum(len(shard.transport._pool.connections) for shard in self._shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        shard = min(self._shards, key=self._least_busy)
        shard.active += 1
        try:
            response = await shard.transport.handle_async_request(request)
        except BaseException:
            shard.active -= 1
            raise
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        response.stream = _ReleasingStream(stream, shard)
        return response

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.transport.aclose()


# --- Helpers -------------------------------------------------------------------------------------------------


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def encode_query(params: Mapping[str, Any] | None) -> str:
    """A percent-encoded query string (spec 3.1): booleans as ``true``/``false``, lists comma-joined,
    ``None`` left out."""
    if not params:
        return ""
    pairs: list[str] = []
    for name, value in params.items():
        if value is None or value is UNSET:
            continue
        if isinstance(value, list | tuple | set | frozenset):
            text = ",".join(quote(_query_value(item), safe="") for item in value)
        else:
            text = quote(_query_value(value), safe="")
        pairs.append(f"{quote(str(name), safe='')}={text}")
    return "&".join(pairs)


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and ``Z`` (naive datetimes are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def check_idempotency_key(key: str) -> None:
    """A key is 1 to 255 printable ASCII characters (spec 6.3)."""
    if not isinstance(key, str) or not 1 <= len(key) <= 255 or not all(32 <= ord(c) < 127 for c in key):
        raise ValidationError(
            "idempotency_key must be 1 to 255 printable ASCII characters",
            details={"field": "idempotency_key", "reason": "1 to 255 printable ASCII characters"},
        )


def _proxy_mounts(settings: DominusSettings) -> dict[str, httpx.AsyncBaseTransport | None]:
    """Proxy transports per scheme, and ``NO_PROXY`` exceptions (curl's syntax, as httpx reads it)."""
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
    limits = _limits()
    for scheme, proxy in (("http", settings.http_proxy), ("https", settings.https_proxy)):
        if proxy:
            url = proxy if "://" in proxy else f"http://{proxy}"
            mounts[f"{scheme}://"] = httpx.AsyncHTTPTransport(proxy=url, limits=limits, http1=True, http2=False)
    if not mounts or not settings.no_proxy:
        return mounts
    for entry in (part.strip() for part in settings.no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return {}
        if "://" in entry:
            mounts[entry] = None
            continue
        host = entry
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            mounts[f"all://*{host}"] = None  # ".x.com" matches subdomains; "x.com" also itself
            continue
        mounts[f"all://[{host}]" if address.version == 6 else f"all://{host}"] = None
    return mounts


def _tls_context(hosts: ResolvedHosts) -> ssl.SSLContext:
    """The pool's TLS context: the verifying default (CA bundle, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``) when a
    host is ``https``. Plain-``http`` hosts never use one, so they get a context that trusts no CA at all,
    built without loading the bundle; any TLS connection through it would fail verification."""
    if hosts.base_url.startswith("https:") or hosts.gateway_url.startswith("https:"):
        return httpx.create_ssl_context(trust_env=True)
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _no_cookies() -> http.cookiejar.CookieJar:
    """A cookie jar that accepts nothing: the protocol uses no cookies and the SDK ignores ``Set-Cookie``."""
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


class _NoCookies(httpx.Cookies):
    """The cookie store of the SDK's own clients: always empty, and ``Set-Cookie`` is not even parsed (httpx
    would otherwise build a ``urllib`` request for every response just to offer it to the jar)."""

    def __init__(self) -> None:
        super().__init__(_no_cookies())

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        return None


def _without_cookies(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """``client`` with a :class:`_NoCookies` store (it keeps its rejecting jar if httpx's layout changes)."""
    if isinstance(getattr(client, "_cookies", None), httpx.Cookies):
        client._cookies = _NoCookies()
    return client


def _limits() -> httpx.Limits:
    return httpx.Limits(
        max_connections=POOL_MAX_CONNECTIONS,
        max_keepalive_connections=POOL_MAX_KEEPALIVE,
        keepalive_expiry=POOL_KEEPALIVE_EXPIRY,
    )


async def _loop_end_guard(
    transport: weakref.ref[Transport], loop: asyncio.AbstractEventLoop
) -> AsyncGenerator[None, None]:
    """Suspended for the life of ``loop``; closed by its ``shutdown_asyncgens`` (``asyncio.run`` does it)."""
    try:
        yield
    finally:
        owner = transport()
        if owner is not None:
            await owner._close_at_loop_end(loop)


def _abandon(pool: httpx.AsyncClient) -> None:
    """Let go of a pool whose event loop has ended, without awaiting anything on it."""
    del pool


# --- The transport --------------------------------------------------------------------------------------------


class DownloadBody:
    """The open body of a download (see :meth:`Transport.open_download`): ``status_code``, ``headers`` (lower-case
    names) and the bytes through :meth:`chunks`; :meth:`aclose` releases the connection."""

    def __init__(
        self,
        status_code: int,
        headers: Mapping[str, str],
        *,
        content: bytes | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        self.status_code = status_code
        self.headers = {name.lower(): value for name, value in headers.items()}
        self._content = content
        self._response = response

    async def chunks(self, chunk_size: int) -> AsyncGenerator[bytes | memoryview, None]:
        """The body in pieces of at most ``chunk_size`` bytes (views of the one copy in embedded mode)."""
        if self._content is not None:
            view = memoryview(self._content)
            for start in range(0, len(view), chunk_size):
                yield view[start : start + chunk_size]
            return
        assert self._response is not None
        async for chunk in self._response.aiter_bytes(chunk_size):
            yield chunk

    async def aclose(self) -> None:
        """Release the connection (a no-op in embedded mode); safe to call twice."""
        self._content = None
        if self._response is not None:
            await self._response.aclose()


class Transport:
    """Shared machinery of one client (see the module docstring). ``request`` is the whole pipeline."""

    def __init__(self, settings: DominusSettings, *, http_client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.hosts: ResolvedHosts = settings.resolve_hosts()
        self.policy = RetryPolicy()
        self.wall_clock = time.time
        self.embedded: EmbeddedTransport | None = None
        if self.hosts.embedded:
            if http_client is not None:
                raise ValueError("http_client cannot be combined with an embedded: base URL")
            self.embedded = EmbeddedTransport(self.hosts.data_dir, settings.psk)
            self.http = self._new_pool()
            self._owns_http = True
        elif http_client is not None:
            self.http = http_client
            self._owns_http = False
        else:
            self.http = self._new_pool()
            self._owns_http = True
        self.breakers: dict[str, CircuitBreaker] = {
            host: CircuitBreaker(host, clock=self._monotonic, where=self.hosts.describe(host))
            for host in ("orchestrator", "gateway")
        }
        self.cold: dict[str, ColdStartWindow] = {
            host: ColdStartWindow(settings.cold_start_budget, clock=self._monotonic)
            for host in ("orchestrator", "gateway")
        }
        self._tokens: ServiceTokenCache | None = None
        self.jwks = JwksCache(self._fetch_jwks)
        self.protocol: str | None = None
        self.warm = False
        self._warm_lock = asyncio.Lock()
        self.closed = False
        self._urls: dict[tuple[str, str], httpx.URL] = {}
        self._timeouts: dict[float, httpx.Timeout] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        """The event loop the pool (and the embedded instance) is used in."""
        self._guard: AsyncGenerator[None, None] | None = None

    def _monotonic(self) -> float:
        return self.policy.clock()

    # -- the pool and its event loop --

    def _new_pool(self) -> httpx.AsyncClient:
        """A new ``httpx.AsyncClient``: over the embedded instance, or over the sharded connection pool."""
        if self.embedded is not None:
            return _without_cookies(
                httpx.AsyncClient(
                    transport=self.embedded, trust_env=False, follow_redirects=False, cookies=_no_cookies()
                )
            )
        return _without_cookies(
            httpx.AsyncClient(
                transport=ShardedPoolTransport(_limits(), verify=_tls_context(self.hosts)),
                trust_env=False,
                follow_redirects=False,
                mounts=_proxy_mounts(settings=self.settings),
                cookies=_no_cookies(),
            )
        )

    async def _follow_loop(self) -> None:
        """Follow the running event loop: a pool made in another loop (a script's earlier ``asyncio.run``) is
        replaced by a new one, since its connections belong to that loop.

        In each loop the pool is used in, a guard (an async generator, which ``asyncio.run`` closes while its
        loop still runs, after cancelling the tasks) closes an owned network pool when the loop ends. Where
        that did not happen (a loop closed without ``shutdown_asyncgens``), the old pool is dropped without
        awaiting anything on its dead loop. An embedded instance is handed back the same way and started again
        in this loop (``dominus_local`` keys instances by loop). A caller's ``http_client`` is kept as it is.
        """
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        if self._loop is not None:
            if self._owns_http:
                old, self.http = self.http, self._new_pool()
                _abandon(old)
            if self.embedded is not None:
                self.embedded.abandon()
            self._new_locks()
        self._loop = loop
        if self._owns_http and self.embedded is None:
            guard = _loop_end_guard(weakref.ref(self), loop)
            await guard.__anext__()
            self._guard = guard

    async def _close_at_loop_end(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called by the guard as ``loop`` ends: close the pool of that loop; the next loop makes a new one."""
        self._guard = None
        if self.closed or self._loop is not loop:
            return
        old, self.http = self.http, self._new_pool()
        self._loop = None
        self._new_locks()
        await old.aclose()

    def _new_locks(self) -> None:
        """Locks for the next loop: an ``asyncio.Lock`` binds to the loop that first waits on it."""
        self._warm_lock = asyncio.Lock()
        self.jwks.rebind()
        if self._tokens is not None:
            self._tokens.rebind()

    # -- credentials --

    def has_psk(self) -> bool:
        return self.settings.psk is not None or self.embedded is not None

    async def psk(self) -> str:
        """The PSK in use: the configured one, else (embedded) the instance's."""
        configured = self.settings.psk
        if configured is not None:
            return configured
        if self.embedded is not None:
            return str((await self.embedded.start()).psk)
        raise AuthenticationError(self._no_psk())

    def _no_psk(self) -> str:
        return f"No PSK configured: pass token= to Dominus(...) or set DOMINUS_TOKEN ({self.hosts.describe()})"

    async def token_cache(self) -> ServiceTokenCache:
        """The service-token cache, created once the PSK is known."""
        if self._tokens is None:
            psk = await self.psk()
            if self._tokens is None:
                self._tokens = ServiceTokenCache(
                    self._mint,
                    gateway_url=self.hosts.gateway_url,
                    psk=psk,
                    clock=lambda: self.wall_clock(),
                    project_slug=self.settings.project_slug,
                    environment=self.settings.environment,
                )
        return self._tokens

    async def _mint(self) -> Mapping[str, Any]:
        data = await self._execute(
            "POST",
            MINT_PATH,
            body={"method": "auth.self", "params": {}},
            host="gateway",
            credential="psk",
            safe=True,
            replay=False,
            timeout=MINT_TIMEOUT,
            max_retries=self.settings.max_retries,
        )
        if not isinstance(data, Mapping):
            raise DominusError("the gateway answered a mint without a data object", endpoint=MINT_PATH)
        return data

    async def _fetch_jwks(self) -> Mapping[str, Any]:
        data = await self.request("GET", JWKS_PATH, auth="none", host="gateway", safe=True, timeout=JWKS_TIMEOUT)
        if not isinstance(data, Mapping):
            raise DominusError("the key set is not an object", endpoint=JWKS_PATH)
        return data

    # -- warm-up (spec 6.5) --

    async def ensure_warm(self) -> None:
        """Send the one ``GET /api/health`` that precedes the first authenticated orchestrator request, and
        record whether the host speaks ``dominus-2`` (which decides if unsafe requests may be retried)."""
        if self.warm:
            return
        async with self._warm_lock:
            if self.warm:
                return
            document: Any = None
            try:
                document = await self._execute(
                    "GET",
                    HEALTH_PATH,
                    host="orchestrator",
                    credential="none",
                    safe=True,
                    timeout=HEALTH_TIMEOUT,
                    max_retries=self.settings.max_retries,
                )
            except (DominusConnectionError, DominusTimeoutError):
                raise
            except DominusError as exc:
                if exc.code == "cold_start":
                    raise
                # An unhealthy or odd answer does not stop the client (spec 6.5); calls fail one by one.
                document = exc.details
            if isinstance(document, Mapping) and isinstance(document.get("protocol"), str):
                self.protocol = document["protocol"]
            self.warm = True

    def keys_honoured(self) -> bool:
        """Whether the orchestrator replays ``Idempotency-Key`` (every ``dominus_local`` does)."""
        return self.embedded is not None or self.protocol == wire.PROTOCOL

    # -- the pipeline --

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        auth: AuthKind = "service",
        host: Host = "orchestrator",
        safe: bool = False,
        replay: bool = True,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
        bearer: str | None = None,
        transfer: bool = False,
    ) -> Any:
        """Send one logical call and return the envelope's ``data`` (see ``Requester.request``).

        ``bearer`` replaces the service token on endpoints that take a token (user tokens and user views).
        """
        if self.closed:
            raise DominusConnectionError(
                "the client is closed: make a new Dominus(...) (or use it with async with)", endpoint=path
            )
        await self._follow_loop()
        credential: Credential
        if auth == "none":
            credential = "none"
        elif auth == "psk":
            credential = "psk"
        elif bearer is not None:
            credential = "bearer"
        else:
            credential = "service"
            if not self.has_psk():
                raise AuthenticationError(self._no_psk(), endpoint=path)
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
        if credential != "none" and host == "orchestrator":
            await self.ensure_warm()
        return await self._execute(
            method,
            path,
            body=body,
            params=params,
            host=host,
            credential=credential,
            safe=safe,
            replay=replay,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
            bearer=bearer,
            transfer=transfer,
        )

    def _per_attempt_timeout(self, path: str, timeout: float | None, transfer: bool) -> httpx.Timeout:
        if timeout is None:
            if transfer:
                timeout = self.settings.transfer_timeout
            elif path == MINT_PATH:
                timeout = MINT_TIMEOUT
            elif path == JWKS_PATH:
                timeout = JWKS_TIMEOUT
            elif path == HEALTH_PATH:
                timeout = HEALTH_TIMEOUT
            else:
                timeout = self.settings.timeout
        found = self._timeouts.get(timeout)
        if found is None:
            found = httpx.Timeout(timeout, connect=min(timeout, self.settings.connect_timeout))
            if len(self._timeouts) < 64:
                self._timeouts[timeout] = found
        return found

    def _url(self, host: Host, path: str, query: str) -> httpx.URL:
        """The parsed URL; those without a query are parsed once and reused (httpx parses strings per call)."""
        if not query:
            found = self._urls.get((host, path))
            if found is not None:
                return found
        if self.embedded is not None:
            origin = EMBEDDED_ORIGIN
        else:
            origin = self.hosts.gateway_url if host == "gateway" else self.hosts.base_url
        url = httpx.URL(f"{origin}{path}?{query}" if query else f"{origin}{path}")
        if not query:
            if len(self._urls) >= 1024:
                self._urls.clear()
            self._urls[host, path] = url
        return url

    async def _execute(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        host: Host,
        credential: Credential,
        safe: bool,
        replay: bool = True,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
        bearer: str | None = None,
        transfer: bool = False,
    ) -> Any:
        method = method.upper()
        endpoint = path.split("?", 1)[0]
        request_id = str(uuid.uuid4())
        retries_allowed = self.settings.max_retries if max_retries is None else max(0, max_retries)
        has_body = method != "GET"
        try:
            content = wire.encode_body(body) if has_body else None
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"the request body cannot be sent as JSON: {exc}",
                details={"field": "body", "reason": "not JSON-serialisable"},
                endpoint=endpoint,
            ) from exc
        query = encode_query(params) if not has_body else ""
        embedded = self.embedded
        target = ""
        url: httpx.URL | None = None
        if embedded is not None:
            target = f"{path}?{query}" if query else path
        else:
            url = self._url(host, path, query)
        headers: dict[str, str] = {
            "User-Agent": USER_AGENT,
            "X-Request-Id": request_id,
            "Accept": "text/plain, application/json",
        }
        if content is not None:
            headers["Content-Type"] = wire.CONTENT_TYPE
        # Every non-GET call except safe POSTs and exempt endpoints carries a key (spec 6.3).
        key: str | None = None
        if has_body and replay and (method != "POST" or not safe):
            key = idempotency_key or str(uuid.uuid4())
            headers["Idempotency-Key"] = key
        attempt_timeout = self._per_attempt_timeout(endpoint, timeout, transfer)
        breaker = self.breakers[host]
        window = self.cold[host]
        retries = 0
        cold_retries = 0
        reminted = False
        used_window = False
        # The error of the latest attempt that may have run (sent, then no answer or a 5xx other than
        # cold_start). Once there is one, a breaker that refuses a retry must not raise CircuitOpenError, whose
        # meaning is "nothing was sent": the call raises this unknown-outcome error instead (spec 4.1, 6.4).
        unknown: DominusError | None = None

        while True:
            in_window = window.active()
            used_window = used_window or in_window
            token_used: str | None = None
            if credential == "service":
                cache = await self.token_cache()
                token_used = await cache.get()
                headers["Authorization"] = f"Bearer {token_used}"
            elif credential == "psk":
                headers["Authorization"] = f"Bearer {await self.psk()}"
            elif credential == "bearer" and bearer is not None:
                headers["Authorization"] = f"Bearer {bearer}"

            try:
                breaker.before_request(endpoint)
            except CircuitOpenError as refused:
                if unknown is not None:
                    raise unknown from refused
                raise
            response: httpx.Response | EmbeddedResponse
            try:
                if embedded is not None:
                    response = await embedded.exchange(method, target, headers, content, attempt_timeout.read)
                else:
                    assert url is not None
                    outgoing = self.http.build_request(
                        method, url, content=content, headers=headers, timeout=attempt_timeout
                    )
                    # No cookies, even with a caller's http_client whose jar holds some (spec 5.7).
                    outgoing.headers.pop("cookie", None)
                    response = await self.http.send(outgoing)
            except httpx.TransportError as exc:
                breaker.record("neutral" if in_window else "failure")
                sent = not isinstance(exc, _PRE_SEND_ERRORS)
                failure = self._transport_error(exc, endpoint, request_id, self.hosts.describe(host))
                if sent:
                    unknown = failure
                if in_window and isinstance(exc, httpx.ConnectError):
                    wait = retry_wait(cold_retries, None, uniform=self.policy.uniform)
                    left = window.left()
                    if wait is not None and left > 0:
                        cold_retries += 1
                        await self.policy.sleep(min(wait, left))
                        continue
                    raise failure from exc
                if used_window and isinstance(exc, httpx.ConnectError):
                    raise failure from exc  # the cold-start budget ran out
                may_retry = (not sent) or safe or (key is not None and self.keys_honoured())
                if may_retry and retries < retries_allowed:
                    wait = retry_wait(retries, None, uniform=self.policy.uniform)
                    retries += 1
                    await self.policy.sleep(wait or 0.0)
                    continue
                raise failure from exc
            except BaseException:
                breaker.record("neutral")
                raise

            status = response.status_code
            if logger.isEnabledFor(logging.DEBUG):
                # httpx logs each request it sends; embedded requests bypass httpx, so this line covers both.
                logger.debug("%s %s -> %d (request %s)", method, endpoint, status, request_id)
            data, error = self._decode(response, endpoint, request_id)
            cold_answer = error is not None and error.code == "cold_start"
            # A statement the server stopped at its time limit says nothing about the server's health, and sent
            # again it would run as long: neither a breaker failure nor retried.
            statement_stopped = error is not None and error.details.get("reason") == "statement_timeout"
            if status in BREAKER_FAILURE_STATUSES and not statement_stopped:
                breaker.record("neutral" if in_window else "failure")
            else:
                breaker.record("success")
            if error is None:
                window.close()
                return data
            if status >= 500 and not cold_answer:
                unknown = error

            retry_after = parse_retry_after(response.headers.get("retry-after"))
            legacy_warming = host == "gateway" and status == 401 and error.code is None and endpoint == MINT_PATH
            if not (cold_answer or (in_window and legacy_warming)):
                window.close()

            # 401 to the service token: drop it, mint again, replay once (spec 5.6).
            if (
                credential == "service"
                and status == 401
                and error.code in (None, "invalid_token", "token_expired")
                and not reminted
            ):
                reminted = True
                (await self.token_cache()).invalidate(token_used)
                continue

            # Inside the cold-start budget of a host's first request (spec 6.5).
            if cold_answer or (in_window and legacy_warming):
                if in_window:
                    wait = retry_wait(cold_retries, retry_after, uniform=self.policy.uniform)
                    left = window.left()
                    if wait is not None and left > 0:
                        cold_retries += 1
                        await self.policy.sleep(min(wait, left))
                        continue
                    raise error
                if used_window:
                    raise error

            if cold_answer:
                retryable = True
            elif statement_stopped:
                retryable = False
            elif error.code == "idempotency_in_progress":
                retryable = key is not None
            elif status in RETRYABLE_STATUSES:
                retryable = safe or (key is not None and self.keys_honoured())
            else:
                retryable = False
            if not retryable or retries >= retries_allowed:
                raise error
            wait = retry_wait(retries, retry_after, uniform=self.policy.uniform)
            if wait is None:
                raise error
            retries += 1
            await self.policy.sleep(wait)

    async def open_download(
        self, url: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> DownloadBody:
        """Open a GET of a signed download URL (``files.download``) without reading its body.

        The URL carries its own credential, so no token is sent. In embedded mode the in-process instance
        answers with its one copy of the bytes, which the body hands out as slices (no copy); over the network
        the body is read from the socket chunk by chunk. Connection failures and 5xx answers before the body
        starts are retried (``max_retries``, with the client's backoff); a 404 (expired link, object gone)
        raises :class:`NotFoundError`.
        """
        await self._follow_loop()
        endpoint = "/archivist/blob"
        request_id = str(uuid.uuid4())
        retries_allowed = self.settings.max_retries if max_retries is None else max(0, max_retries)
        attempt_timeout = self._per_attempt_timeout(endpoint, timeout, True)
        embedded = self.embedded
        retries = 0
        while True:
            try:
                if embedded is not None:
                    parsed = httpx.URL(url)
                    if f"{parsed.scheme}://{parsed.netloc.decode('ascii')}" != EMBEDDED_ORIGIN:
                        raise ValidationError(
                            "this download URL does not belong to the embedded backend",
                            details={"field": "url", "reason": "not an embedded download URL"},
                            endpoint=endpoint,
                        )
                    answer = await embedded.exchange(
                        "GET", parsed.raw_path.decode("ascii"), {"X-Request-Id": request_id}, None, attempt_timeout.read
                    )
                    status, headers = answer.status_code, dict(answer.headers)
                    if status == 200:
                        return DownloadBody(status, headers, content=answer.content)
                    detail = answer.content[:_RAW_MESSAGE_LIMIT]
                else:
                    outgoing = self.http.build_request(
                        "GET",
                        url,
                        headers={"User-Agent": USER_AGENT, "X-Request-Id": request_id},
                        timeout=attempt_timeout,
                    )
                    response = await self.http.send(outgoing, stream=True)
                    if response.status_code == 200:
                        return DownloadBody(response.status_code, dict(response.headers), response=response)
                    status, headers = response.status_code, dict(response.headers)
                    try:
                        detail = (await response.aread())[:_RAW_MESSAGE_LIMIT]
                    finally:
                        await response.aclose()
            except httpx.TransportError as exc:
                # The host only: the link's path is a bearer credential.
                where = f"download host {httpx.URL(url).host or '?'}"
                failure = self._transport_error(exc, endpoint, request_id, where)
                if retries >= retries_allowed:
                    raise failure from exc
            else:
                text = detail.decode("utf-8", "replace").strip() or None
                failure = error_from_response(status, None, text, None, endpoint, request_id=request_id)
                if status not in RETRYABLE_STATUSES or retries >= retries_allowed:
                    raise failure
            wait = retry_wait(retries, None, uniform=self.policy.uniform)
            retries += 1
            await self.policy.sleep(wait or 0.0)

    @staticmethod
    def _transport_error(exc: httpx.TransportError, endpoint: str, request_id: str, where: str) -> DominusError:
        """The error of an attempt that got no answer; ``where`` names the host (``ResolvedHosts.describe``)."""
        if isinstance(exc, httpx.TimeoutException):
            return DominusTimeoutError(
                f"Request timed out ({type(exc).__name__}; {where})", endpoint=endpoint, request_id=request_id
            )
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return DominusConnectionError(
            f"Connection failed ({detail}; {where})", endpoint=endpoint, request_id=request_id
        )

    @staticmethod
    def _decode(
        response: httpx.Response | EmbeddedResponse, endpoint: str, request_id: str
    ) -> tuple[Any, DominusError | None]:
        """``(data, None)`` for a success, ``(None, error)`` otherwise (spec 3.2, 3.3)."""
        status = response.status_code
        rid = response.headers.get("x-request-id") or request_id
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        parsed = wire.parse_response_text(response.content)
        if 200 <= status < 300:
            if parsed is None:
                return None, DominusError("Undecodable response", status_code=status, endpoint=endpoint, request_id=rid)
            if isinstance(parsed, dict) and "success" in parsed:
                if parsed.get("success") is False:
                    return None, _envelope_error(parsed, status, endpoint, rid, retry_after)
                return parsed.get("data"), None
            # A bare JSON body from an older server (e.g. ``{"keys": [...]}``) is the data itself.
            return parsed, None
        if isinstance(parsed, dict):
            return None, _envelope_error(parsed, status, endpoint, rid, retry_after)
        raw = response.content.decode("utf-8", errors="replace").strip()[:_RAW_MESSAGE_LIMIT]
        return None, error_from_response(
            status, None, raw or None, None, endpoint, request_id=rid, retry_after=retry_after
        )

    async def aclose(self) -> None:
        """Close the pool (and stop the embedded instance). A caller-supplied ``http_client`` stays open."""
        if self.closed:
            return
        self.closed = True
        if not self._owns_http:
            return
        running = asyncio.get_running_loop()
        guard, self._guard = self._guard, None
        if guard is not None and self._loop is running:
            await guard.aclose()  # finished now, so that it is never finalised after its loop has closed
        if self._loop is not None and self._loop is not running:
            # Made in a loop that has ended (a script's earlier asyncio.run): nothing can be awaited there.
            _abandon(self.http)
            if self.embedded is not None:
                self.embedded.abandon(close=True)
            return
        await self.http.aclose()

    def pool_connections(self) -> int:
        """How many connections the pool holds now (0 in embedded mode): a diagnostic for tests and tools."""
        count = 0
        transports = [getattr(self.http, "_transport", None), *getattr(self.http, "_mounts", {}).values()]
        for transport in transports:
            if isinstance(transport, ShardedPoolTransport):
                count += transport.connections()
                continue
            pool = getattr(transport, "_pool", None)
            connections = getattr(pool, "connections", None)
            if connections is not None:
                count += len(connections)
        return count


def _envelope_error(
    parsed: Mapping[str, Any], status: int, endpoint: str, request_id: str, retry_after: float | None
) -> DominusError:
    message = parsed.get("error")
    if not isinstance(message, str) or not message:
        detail = parsed.get("detail")
        message = detail if isinstance(detail, str) else None
    code = parsed.get("code") if isinstance(parsed.get("code"), str) else None
    details = parsed.get("details") if isinstance(parsed.get("details"), dict) else None
    return error_from_response(status, code, message, details, endpoint, request_id=request_id, retry_after=retry_after)
