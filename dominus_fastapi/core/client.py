"""The ``Dominus`` client: namespaces, root shortcuts, user views and the lifecycle of its one pool."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import SecretStr

from dominus_fastapi.core.namespaces.base import AuthKind, Host
from dominus_fastapi.core.settings import DominusSettings
from dominus_fastapi.core.tokens import verify_token
from dominus_fastapi.core.transport import MINT_PATH, DownloadBody, Transport

if TYPE_CHECKING:
    from typing_extensions import Self

    from dominus_fastapi.core.namespaces.admin import AdminNamespace
    from dominus_fastapi.core.namespaces.auth import AuthNamespace
    from dominus_fastapi.core.namespaces.courier import CourierNamespace
    from dominus_fastapi.core.namespaces.db import DbNamespace, OpenNamespace, SecureNamespace
    from dominus_fastapi.core.namespaces.ddl import DdlNamespace
    from dominus_fastapi.core.namespaces.files import FilesNamespace
    from dominus_fastapi.core.namespaces.health import HealthNamespace
    from dominus_fastapi.core.namespaces.logs import LogsNamespace
    from dominus_fastapi.core.namespaces.portal import PortalNamespace, PortalSession
    from dominus_fastapi.core.namespaces.redis import RedisNamespace
    from dominus_fastapi.core.namespaces.secrets import SecretsNamespace


class _ClientBase:
    """Namespaces and root methods, shared by :class:`Dominus` and its user views."""

    _transport: Transport
    _bearer: str | None
    remembers_login: bool = False
    """Whether ``portal`` session calls act for the session of the last ``portal.login`` (see
    :mod:`dominus_fastapi.core.namespaces.portal`); ``False`` except on ``Dominus(remember_login=True)``."""
    _portal_session: PortalSession | None = None

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
        user_token: str | None = None,
        transfer: bool = False,
        keep_service_token: bool = False,
    ) -> Any:
        """Send one call through the pipeline and return the envelope's ``data`` (see ``Requester``).

        The Bearer credential is, in order: ``user_token`` when given; this view's user token (unless
        ``keep_service_token``); else the service token. Endpoints with auth ``none`` or ``psk`` are unchanged.
        """
        bearer = user_token
        if bearer is None and not keep_service_token:
            bearer = self._bearer
        return await self._transport.request(
            method,
            path,
            body=body,
            params=params,
            auth=auth,
            host=host,
            safe=safe,
            replay=replay,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
            bearer=bearer if auth in ("service", "user", "service_or_user") else None,
            transfer=transfer,
        )

    async def open_download(
        self, url: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> DownloadBody:
        """Open a signed download URL's body without reading it (see ``Transport.open_download``).

        Args:
            url: a ``download_url`` from ``files.download``.
            timeout: seconds per attempt (default: the transfer timeout).
            max_retries: retries before the body starts (default: the client's).

        Returns:
            The open body; close it with ``aclose()``.

        Raises:
            NotFoundError: the link expired or the object is gone.
            DominusConnectionError: the URL could not be reached.
        """
        return await self._transport.open_download(url, timeout=timeout, max_retries=max_retries)

    # -- namespaces --

    @functools.cached_property
    def secrets(self) -> SecretsNamespace:
        """Secrets (Warden): :class:`~dominus_fastapi.core.namespaces.secrets.SecretsNamespace`."""
        from dominus_fastapi.core.namespaces.secrets import SecretsNamespace

        return SecretsNamespace(self)

    @functools.cached_property
    def db(self) -> DbNamespace:
        """Tables (Scribe): :class:`~dominus_fastapi.core.namespaces.db.DbNamespace`."""
        from dominus_fastapi.core.namespaces.db import DbNamespace

        return DbNamespace(self)

    @functools.cached_property
    def secure(self) -> SecureNamespace:
        """Secure tables, audited (Scribe): :class:`~dominus_fastapi.core.namespaces.db.SecureNamespace`."""
        from dominus_fastapi.core.namespaces.db import SecureNamespace

        return SecureNamespace(self)

    @property
    def db_secure(self) -> SecureNamespace:
        """Alias of :attr:`secure` (the reference SDK's name)."""
        return self.secure

    @functools.cached_property
    def open(self) -> OpenNamespace:
        """The open SQL area (Scribe): :class:`~dominus_fastapi.core.namespaces.db.OpenNamespace`."""
        from dominus_fastapi.core.namespaces.db import OpenNamespace

        return OpenNamespace(self)

    @functools.cached_property
    def redis(self) -> RedisNamespace:
        """Cache, locks and counters (Whisperer): :class:`~dominus_fastapi.core.namespaces.redis.RedisNamespace`."""
        from dominus_fastapi.core.namespaces.redis import RedisNamespace

        return RedisNamespace(self)

    @functools.cached_property
    def files(self) -> FilesNamespace:
        """Files (Archivist): :class:`~dominus_fastapi.core.namespaces.files.FilesNamespace`."""
        from dominus_fastapi.core.namespaces.files import FilesNamespace

        return FilesNamespace(self)

    @functools.cached_property
    def auth(self) -> AuthNamespace:
        """Users and access (Guardian): :class:`~dominus_fastapi.core.namespaces.auth.AuthNamespace`."""
        from dominus_fastapi.core.namespaces.auth import AuthNamespace

        return AuthNamespace(self)

    @functools.cached_property
    def ddl(self) -> DdlNamespace:
        """Schema, migrations and tenants (Smith): :class:`~dominus_fastapi.core.namespaces.ddl.DdlNamespace`."""
        from dominus_fastapi.core.namespaces.ddl import DdlNamespace

        return DdlNamespace(self)

    @functools.cached_property
    def logs(self) -> LogsNamespace:
        """Logs (Herald): :class:`~dominus_fastapi.core.namespaces.logs.LogsNamespace`."""
        from dominus_fastapi.core.namespaces.logs import LogsNamespace

        return LogsNamespace(self)

    @functools.cached_property
    def portal(self) -> PortalNamespace:
        """Sign-in and sessions (Portal): :class:`~dominus_fastapi.core.namespaces.portal.PortalNamespace`."""
        from dominus_fastapi.core.namespaces.portal import PortalNamespace

        return PortalNamespace(self)

    @functools.cached_property
    def courier(self) -> CourierNamespace:
        """E-mail (Courier): :class:`~dominus_fastapi.core.namespaces.courier.CourierNamespace`."""
        from dominus_fastapi.core.namespaces.courier import CourierNamespace

        return CourierNamespace(self)

    @functools.cached_property
    def health(self) -> HealthNamespace:
        """Health and warm-up: :class:`~dominus_fastapi.core.namespaces.health.HealthNamespace`."""
        from dominus_fastapi.core.namespaces.health import HealthNamespace

        return HealthNamespace(self)

    @functools.cached_property
    def admin(self) -> AdminNamespace:
        """Administration and fault injection: :class:`~dominus_fastapi.core.namespaces.admin.AdminNamespace`."""
        from dominus_fastapi.core.namespaces.admin import AdminNamespace

        return AdminNamespace(self)

    # -- root shortcuts --

    async def get(self, key: str, *, timeout: float | None = None, max_retries: int | None = None) -> Any:
        """The value of secret ``key`` (Warden); :class:`NotFoundError` when it is missing."""
        return await self.secrets.get(key, timeout=timeout, max_retries=max_retries)

    async def upsert(
        self,
        key: str,
        value: Any,
        comment: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Create or update secret ``key``; the record (without value) plus ``"operation"`` (spec 7.2)."""
        return await self.secrets.upsert(
            key, value, comment, timeout=timeout, max_retries=max_retries, idempotency_key=idempotency_key
        )

    async def get_public_key(self, *, timeout: float | None = None, max_retries: int | None = None) -> Any:
        """The gateway's key set, ``{"keys": [JWK, ...]}`` (``GET {gateway}/jwt/jwks``)."""
        return await self.request(
            "GET", "/jwt/jwks", auth="none", host="gateway", safe=True, timeout=timeout, max_retries=max_retries
        )

    async def validate_jwt(
        self,
        token: str,
        *,
        audience: str | Sequence[str] | None = None,
        leeway: float = 0,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> dict[str, Any]:
        """Check ``token`` locally against the cached key set (spec 5.10) and return its claims.

        Raises :class:`AuthenticationError` (code ``token_expired`` or ``invalid_token``). ``timeout`` and
        ``max_retries`` are accepted for uniformity; the key-set fetch uses its own 10 s timeout.
        """
        del timeout, max_retries
        transport = self._transport
        return await verify_token(
            token, transport.jwks, audience=audience, leeway=leeway, clock=lambda: transport.wall_clock()
        )

    def key_set_generation(self) -> int | None:
        """A number that changes whenever the cached key set does; ``None`` while there is no fresh key set.

        A token that :meth:`validate_jwt` accepted stays acceptable, as far as its signature goes, for as long
        as this number stays the same (its times still have to be checked against :meth:`wall_time`).
        """
        return self._transport.jwks.fresh_generation()

    def wall_time(self) -> float:
        """The client's wall clock (Unix seconds): the clock token times are checked against."""
        return self._transport.wall_clock()

    async def mint_jwt(
        self,
        user_id: str,
        scope: str | Sequence[str] | None = None,
        expires_in: int = 900,
        system: str = "user",
        tenant_id: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Any:
        """Mint a session token for ``user_id`` (``auth.mint`` at the gateway, admin only; spec 5.7, 7.1).

        ``scope`` and ``tenant_id`` are sent only when given. Exempt from idempotency keys: a lost answer
        is not replayed, because it carries a credential.
        """
        params: dict[str, Any] = {"user_id": user_id, "system": system, "expires_in": expires_in}
        if scope is not None:
            params["scope"] = list(scope) if not isinstance(scope, str) else scope
        if tenant_id is not None:
            params["tenant_id"] = tenant_id
        return await self.request(
            "POST",
            MINT_PATH,
            body={"method": "auth.mint", "params": params},
            auth="psk",
            host="gateway",
            safe=False,
            replay=False,
            timeout=timeout,
            max_retries=max_retries,
        )

    def as_user(self, token: str) -> DominusUserView:
        """A view that sends ``token`` instead of the service token; it shares this client's pool, breakers
        and caches, never mints or refreshes for ``token``, and never closes the pool."""
        if not isinstance(token, str) or not token:
            raise ValueError("as_user() needs a non-empty token")
        return DominusUserView(self._transport, token)


class Dominus(_ClientBase):
    """Async client of the Dominus platform (or of an embedded ``dominus_local``).

    The client owns exactly one pooled ``httpx.AsyncClient`` (or uses ``http_client``, which it then does not
    close); close it with ``await client.aclose()`` or ``async with``. Its pool belongs to the event loop it was
    made in: used from another loop (a second ``asyncio.run``), the client drops the old pool and makes a new one.
    Arguments win over ``settings``, which win over the environment, read now.

    The client is stateless: it holds the service credential only, and ``portal`` calls that act for a
    signed-in user need ``as_user(token)`` or ``user_token=``. ``remember_login=True`` makes it keep the
    session of its last ``portal.login`` instead, as the reference SDK's module-level object is used in
    scripts; never in a web server, where users share the client.

    Args:
        token: The project's PSK (``DOMINUS_TOKEN``).
        base_url: The orchestrator's URL (``DOMINUS_BASE_URL``); ``embedded:`` runs the server in-process, in
            memory, and ``embedded:///path`` keeps its data in a directory (spec 2.3).
        gateway_url: The gateway's URL (``DOMINUS_GATEWAY_URL``); default: ``base_url`` (spec 2.2).
        settings: Settings to start from (:class:`DominusSettings`); default: the environment.
        timeout: Default seconds for each attempt of a call (``DOMINUS_TIMEOUT``, 30); a call's own
            ``timeout=`` wins.
        max_retries: Default retries after the first attempt of a call that is safe to repeat
            (``DOMINUS_MAX_RETRIES``, 2); a call's own ``max_retries=`` wins.
        http_client: An ``httpx.AsyncClient`` to send through instead of the client's own pool.
        remember_login: Keep the session of the last ``portal.login`` and act for it (scripts only).

    Raises:
        ValueError: ``timeout`` is not positive, ``max_retries`` is negative, or the URLs are malformed.
    """

    def __init__(
        self,
        token: str | None = None,
        base_url: str | None = None,
        gateway_url: str | None = None,
        *,
        settings: DominusSettings | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        http_client: httpx.AsyncClient | None = None,
        remember_login: bool = False,
    ) -> None:
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if max_retries is not None and max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries!r}")
        overrides: dict[str, Any] = {
            name: value
            for name, value in (
                ("token", token),
                ("base_url", base_url),
                ("gateway_url", gateway_url),
                ("timeout", timeout),
                ("max_retries", max_retries),
            )
            if value is not None
        }
        if settings is None:
            settings = DominusSettings(**overrides)
        elif overrides:
            if "token" in overrides:
                overrides["token"] = SecretStr(overrides["token"])
            settings = settings.model_copy(update=overrides)
        self.settings = settings
        self._transport = Transport(settings, http_client=http_client)
        self._bearer = None
        self.remembers_login = remember_login
        self._portal_session = None

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called; a closed client raises ``DominusConnectionError`` on use."""
        return self._transport.closed

    async def aclose(self) -> None:
        """Close the connection pool and stop the embedded instance, if any; forget a remembered session.
        Safe to call twice. A closed client stays closed (``DominusConnectionError``): make a new one."""
        self._portal_session = None
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        hosts = self._transport.hosts
        psk = "set" if self.settings.token is not None else "unset"
        return f"Dominus(base_url={hosts.base_url!r}, gateway_url={hosts.gateway_url!r}, psk={psk})"


class DominusUserView(_ClientBase):
    """``client.as_user(token)``: the client's namespaces and root methods, acting as ``token``'s subject."""

    def __init__(self, transport: Transport, token: str) -> None:
        self._transport = transport
        self._bearer = token

    def __repr__(self) -> str:
        return f"DominusUserView(base_url={self._transport.hosts.base_url!r})"
