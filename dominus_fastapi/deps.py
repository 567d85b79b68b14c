"""FastAPI dependency providers and their ``Annotated`` aliases.

Every provider is a stable module-level object (``get_current_user`` is a security scheme, the others are
functions), so tests can replace one for the whole app:

    app.dependency_overrides[get_current_user] = lambda: fake_user
    app.dependency_overrides[get_redis] = lambda: fake_redis

``get_dominus`` returns the client that :func:`~dominus_fastapi.dominus_lifespan` opened; the namespace
providers return its namespaces (``get_db`` -> ``client.db`` ...). ``get_portal`` is bound to the request's
session: its user methods act for the signed-in user without a ``user_token=`` argument. ``get_session``
gives the request's :class:`~dominus_fastapi.middleware.PortalSession` or ``None``; ``get_current_user``
gives the signed-in :class:`~dominus_fastapi.middleware.DominusUser` and answers 401 when there is none.

The providers take an ``HTTPConnection``, so they work in websocket endpoints as well as in HTTP ones.

``CurrentTenant`` and ``TenantData`` (the signed-in user's tenant and its data) are defined in
:mod:`dominus_fastapi.tenancy` and can be imported from here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from dominus_fastapi.core.client import Dominus
from dominus_fastapi.core.namespaces.admin import AdminNamespace
from dominus_fastapi.core.namespaces.auth import AuthNamespace
from dominus_fastapi.core.namespaces.courier import CourierNamespace
from dominus_fastapi.core.namespaces.db import DbNamespace, OpenNamespace, SecureNamespace
from dominus_fastapi.core.namespaces.ddl import DdlNamespace
from dominus_fastapi.core.namespaces.files import FilesNamespace
from dominus_fastapi.core.namespaces.health import HealthNamespace
from dominus_fastapi.core.namespaces.logs import LogsNamespace
from dominus_fastapi.core.namespaces.portal import PortalNamespace
from dominus_fastapi.core.namespaces.redis import RedisNamespace
from dominus_fastapi.core.namespaces.secrets import SecretsNamespace
from dominus_fastapi.handlers import DominusHTTPException
from dominus_fastapi.middleware import SESSION_SCOPE_KEY, DominusUser, PortalSession, find_client

if TYPE_CHECKING:
    from dominus_fastapi.tenancy import CurrentTenant, TenantData

__all__ = [
    "AdminDep",
    "AuthDep",
    "CourierDep",
    "CurrentTenant",
    "CurrentUser",
    "CurrentUserScheme",
    "DbDep",
    "DdlDep",
    "DominusDep",
    "FilesDep",
    "HealthDep",
    "LogsDep",
    "OpenDep",
    "PortalDep",
    "RedisDep",
    "SecretsDep",
    "SecureDep",
    "SessionDep",
    "TenantData",
    "get_admin",
    "get_auth",
    "get_courier",
    "get_current_user",
    "get_db",
    "get_ddl",
    "get_dominus",
    "get_files",
    "get_health",
    "get_logs",
    "get_open",
    "get_portal",
    "get_redis",
    "get_secrets",
    "get_secure",
    "get_session",
    "oauth2_scheme",
]

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)
"""Declares the Bearer scheme in OpenAPI so the ``/docs`` "Authorize" button signs in through ``/auth/token``.

It only reads the header; the middleware has already verified it. An app that mounts the portal router
elsewhere passes its own scheme to ``get_portal_router(token_url=...)``.
"""


async def get_dominus(connection: HTTPConnection) -> Dominus:
    """The app's ``Dominus`` client (lifespan state, else ``app.state.dominus``)."""
    client = find_client(connection.scope)
    if client is None:
        raise RuntimeError(
            "No Dominus client for this app: create it with FastAPI(lifespan=dominus_lifespan()) "
            "or enter dominus_lifespan()(app) inside the app's own lifespan"
        )
    return client


DominusDep = Annotated[Dominus, Depends(get_dominus)]
"""An endpoint parameter ``client: DominusDep`` receives the app's client (:func:`get_dominus`)."""


async def get_secrets(client: DominusDep) -> SecretsNamespace:
    """``client.secrets`` (Warden)."""
    return client.secrets


async def get_db(client: DominusDep) -> DbNamespace:
    """``client.db`` (Scribe table data)."""
    return client.db


async def get_secure(client: DominusDep) -> SecureNamespace:
    """``client.secure`` (Scribe audited access)."""
    return client.secure


async def get_open(client: DominusDep) -> OpenNamespace:
    """``client.open`` (Scribe open SQL)."""
    return client.open


async def get_redis(client: DominusDep) -> RedisNamespace:
    """``client.redis`` (Whisperer)."""
    return client.redis


async def get_files(client: DominusDep) -> FilesNamespace:
    """``client.files`` (Archivist)."""
    return client.files


async def get_auth(client: DominusDep) -> AuthNamespace:
    """``client.auth`` (Guardian; every call needs an administrator client)."""
    return client.auth


async def get_ddl(client: DominusDep) -> DdlNamespace:
    """``client.ddl`` (Smith)."""
    return client.ddl


async def get_logs(client: DominusDep) -> LogsNamespace:
    """``client.logs`` (Herald)."""
    return client.logs


async def get_courier(client: DominusDep) -> CourierNamespace:
    """``client.courier`` (Courier)."""
    return client.courier


async def get_health(client: DominusDep) -> HealthNamespace:
    """``client.health``."""
    return client.health


async def get_admin(client: DominusDep) -> AdminNamespace:
    """``client.admin``."""
    return client.admin


async def get_session(connection: HTTPConnection) -> PortalSession | None:
    """The request's Portal session as the middleware identified it, or ``None`` (anonymous)."""
    return connection.scope.get(SESSION_SCOPE_KEY)


SessionDep = Annotated[PortalSession | None, Depends(get_session)]
"""The request's :class:`~dominus_fastapi.middleware.PortalSession`, or ``None`` (:func:`get_session`)."""


async def get_portal(client: DominusDep, session: SessionDep) -> PortalNamespace:
    """``client.portal`` bound to the request's session (``client.as_user(token).portal``), else unbound.

    On an anonymous request the unbound namespace still serves ``login``, ``register`` and the other calls for
    someone without a session; its session calls (``me``, ``get_navigation``, ``check_page_access``, profile,
    ...) raise :class:`~dominus_fastapi.AuthorizationError` (a 403 through the exception handlers) instead of
    answering for the app's service credential.
    """
    if session is None:
        return client.portal
    return client.as_user(session.access_token).portal


class CurrentUserScheme(OAuth2PasswordBearer):
    """The provider behind ``CurrentUser``: the signed-in subject of the request.

    It is the same OpenAPI Bearer scheme as :data:`oauth2_scheme` (so ``CurrentUser`` routes show the lock in
    ``/docs``) and, as a dependency, reads the session the middleware identified. FastAPI resolves every
    dependency on every request, so this is one dependency, not a session provider plus a header read. On an
    endpoint decorated with a guard, the guard fills ``CurrentUser`` in itself after its check
    (:func:`~dominus_fastapi.guards.current_user_of`), honouring overrides of this provider.
    """

    async def __call__(self, connection: HTTPConnection) -> DominusUser:  # type: ignore[override]
        """The signed-in subject; 401 ``not_authenticated`` (with ``WWW-Authenticate: Bearer``) when anonymous."""
        session: PortalSession | None = connection.scope.get(SESSION_SCOPE_KEY)
        if session is None:
            raise DominusHTTPException(
                401, "Not signed in", "not_authenticated", headers={"WWW-Authenticate": "Bearer"}
            )
        return session.user


get_current_user = CurrentUserScheme(tokenUrl="/auth/token", auto_error=False, scheme_name="OAuth2PasswordBearer")
"""The signed-in subject; 401 ``not_authenticated`` (with ``WWW-Authenticate: Bearer``) when anonymous.

Declares the Bearer scheme of :data:`oauth2_scheme` in OpenAPI; the middleware has verified the token.
Replace it for a whole app with ``app.dependency_overrides[get_current_user] = ...``.
"""


PortalDep = Annotated[PortalNamespace, Depends(get_portal)]
"""``client.portal`` bound to the request's session (:func:`get_portal`)."""
CurrentUser = Annotated[DominusUser, Depends(get_current_user)]
"""The signed-in :class:`~dominus_fastapi.middleware.DominusUser`; 401 when anonymous (:data:`get_current_user`)."""
SecretsDep = Annotated[SecretsNamespace, Depends(get_secrets)]
"""``client.secrets`` (Warden)."""
DbDep = Annotated[DbNamespace, Depends(get_db)]
"""``client.db`` (Scribe tables)."""
SecureDep = Annotated[SecureNamespace, Depends(get_secure)]
"""``client.secure`` (audited secure tables)."""
OpenDep = Annotated[OpenNamespace, Depends(get_open)]
"""``client.open`` (the open SQL area)."""
RedisDep = Annotated[RedisNamespace, Depends(get_redis)]
"""``client.redis`` (Whisperer cache, locks and counters)."""
FilesDep = Annotated[FilesNamespace, Depends(get_files)]
"""``client.files`` (Archivist)."""
AuthDep = Annotated[AuthNamespace, Depends(get_auth)]
"""``client.auth`` (Guardian)."""
DdlDep = Annotated[DdlNamespace, Depends(get_ddl)]
"""``client.ddl`` (Smith schema and tenants)."""
LogsDep = Annotated[LogsNamespace, Depends(get_logs)]
"""``client.logs`` (Herald)."""
CourierDep = Annotated[CourierNamespace, Depends(get_courier)]
"""``client.courier`` (Courier e-mail)."""
HealthDep = Annotated[HealthNamespace, Depends(get_health)]
"""``client.health``."""
AdminDep = Annotated[AdminNamespace, Depends(get_admin)]
"""``client.admin``."""


def __getattr__(name: str) -> Any:
    # dominus_fastapi.tenancy builds on this module, so its two dependencies are looked up on first use.
    if name in ("CurrentTenant", "TenantData"):
        from dominus_fastapi import tenancy

        return getattr(tenancy, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
