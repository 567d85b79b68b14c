"""How services declare endpoints, and what a handler receives.

A service module builds one :class:`ServiceRouter` and declares each endpoint with its auth kind (spec 5.1),
its admin rule and whether it is exempt from idempotency storage (spec 6.3). The app assembles the routers;
the dispatcher checks the token, applies idempotency, calls the handler and frames its return value as the
envelope's ``data``. Handlers raise :class:`dominus_local.errors.ApiError` to fail.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from starlette.requests import Request

from dominus_local.errors import not_found
from dominus_local.validate import Fields, is_uuid

if TYPE_CHECKING:
    from dominus_local.idempotency import KeyUse
    from dominus_local.state import LocalState

AuthKind = Literal["none", "psk", "service", "user", "service_or_user"]
DisconnectHook = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Principal:
    """The verified subject of a request, from its token's claims (spec 5.3)."""

    subject_type: Literal["client", "user"]
    sub: str
    tenant_id: str | None
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    sid: str | None
    project: str
    environment: str
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def is_session(self) -> bool:
        return self.sid is not None


@dataclass
class RequestContext:
    """Everything a handler needs: the decoded body, the verified principal and the server state."""

    request: Request
    body: dict[str, Any]
    path_params: dict[str, str]
    state: LocalState
    request_id: str
    principal: Principal | None = None
    psk: str | None = field(default=None, repr=False)
    """The raw Bearer credential on ``psk`` endpoints (never logged)."""
    idempotency: KeyUse | None = None
    """The request's idempotency key on a ``records_key`` endpoint: the handler records it with its write."""
    disconnected: bool = False
    """Set when the client went away while the handler ran (``cancel_on_disconnect`` endpoints only)."""
    _disconnect_hooks: list[DisconnectHook] = field(default_factory=list, repr=False)

    def on_disconnect(self, hook: DisconnectHook) -> Callable[[], None]:
        """Call ``hook`` if the client disconnects while the handler runs; returns the function that removes it.

        Only endpoints declared with ``cancel_on_disconnect=True`` watch for the disconnect.
        """
        self._disconnect_hooks.append(hook)

        def remove() -> None:
            if hook in self._disconnect_hooks:
                self._disconnect_hooks.remove(hook)

        return remove

    async def client_disconnected(self) -> None:
        """Called by the dispatcher when the client has gone: marks the request and runs the hooks."""
        self.disconnected = True
        for hook in list(self._disconnect_hooks):
            await hook()

    @property
    def fields(self) -> Fields:
        """The body's fields; for DELETE, the query string fills in what the body lacks (spec 3.1)."""
        if self.request.method == "DELETE":
            merged: dict[str, Any] = {}
            for key in self.request.query_params:
                values = self.request.query_params.getlist(key)
                merged[key] = values[0] if len(values) == 1 else ",".join(values)
            merged.update(self.body)
            return Fields(merged)
        return Fields(self.body)

    @property
    def query(self) -> Fields:
        """GET parameters; repeated parameters are joined with commas (spec 1.5)."""
        merged: dict[str, Any] = {}
        for key in self.request.query_params:
            values = self.request.query_params.getlist(key)
            merged[key] = values[0] if len(values) == 1 else ",".join(values)
        return Fields(merged)

    def path_uuid(self, name: str) -> str:
        """A UUID path parameter; anything else is 404 ``not_found`` (spec 4.1)."""
        value = self.path_params.get(name, "")
        if not is_uuid(value):
            raise not_found("Resource", value)
        return value.lower()

    def path(self, name: str) -> str:
        return self.path_params[name]

    @property
    def subject(self) -> Principal:
        """The principal of an authenticated endpoint (always set there)."""
        if self.principal is None:  # pragma: no cover - the dispatcher guarantees it
            raise RuntimeError("endpoint has no authenticated principal")
        return self.principal


Handler = Callable[[RequestContext], Awaitable[Any]]
StartupHook = Callable[["LocalState"], Awaitable[None]]


@dataclass(frozen=True)
class Endpoint:
    service: str
    method: str
    path: str
    handler: Handler
    auth: AuthKind = "service"
    admin: bool = False
    replay: bool = True
    """``False`` for endpoints whose answer carries a credential: never stored for idempotency."""
    safe: bool = False
    records_key: bool = False
    """The handler records the idempotency key with its write (``ctx.idempotency``, see
    :mod:`dominus_local.idempotency`) instead of the dispatcher claiming it in a transaction of its own."""
    cancel_on_disconnect: bool = False
    """The dispatcher watches for the client's disconnect while the handler runs and calls the request's
    disconnect hooks (:meth:`RequestContext.on_disconnect`); used where a caller's statement may run long."""


class ServiceRouter:
    """Collects one service's endpoints and its startup/shutdown hooks."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.endpoints: list[Endpoint] = []
        self.startup: list[StartupHook] = []
        self.shutdown: list[StartupHook] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        auth: AuthKind = "service",
        admin: bool = False,
        replay: bool = True,
        safe: bool | None = None,
        records_key: bool = False,
        cancel_on_disconnect: bool = False,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            is_safe = safe if safe is not None else method.upper() in ("GET", "PUT", "DELETE")
            self.endpoints.append(
                Endpoint(
                    self.service,
                    method.upper(),
                    path,
                    handler,
                    auth,
                    admin,
                    replay,
                    is_safe,
                    records_key,
                    cancel_on_disconnect,
                )
            )
            return handler

        return register

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **options)

    def on_startup(self, hook: StartupHook) -> StartupHook:
        self.startup.append(hook)
        return hook

    def on_shutdown(self, hook: StartupHook) -> StartupHook:
        self.shutdown.append(hook)
        return hook
