"""Test an application built on ``dominus_fastapi`` offline: a pytest plugin with an in-process backend.

Installed as a pytest plugin (entry point ``dominus_fastapi.testing``), it offers these fixtures:

``dominus_base_url``
    An ``embedded:///<tmp>/dominus`` URL, private to the test, exported as ``DOMINUS_BASE_URL`` so that the
    app's own ``dominus_lifespan()`` talks to the same in-process ``dominus_local``. bcrypt runs at its
    lowest cost there (``DOMINUS_LOCAL_BCRYPT_ROUNDS=4``) unless the environment says otherwise.
``dominus_seed_demo``
    ``False``; override it to return ``True`` to start the backend with the demo data.
``dominus``
    A ``Dominus`` client bound to that backend, with the administrator PSK.
``dominus_app``
    The app under test: override it in your ``conftest.py`` to return your ``FastAPI`` instance.
``dominus_asgi_app``
    The app with its lifespan running (``asgi_lifespan.LifespanManager``).
``dominus_app_client``
    An anonymous ``httpx.AsyncClient`` for the app. Like the signed-in clients it sends ``Origin`` (the app's
    own), as a browser does on the app's pages, so a form sign-in through it and then ``POST /auth/logout``
    pass the CSRF check.
``dominus_user_client``
    A factory: ``await dominus_user_client(roles=["editor"], tenants=["acme"], pages=["/reports"])`` creates a
    user with those roles, scopes, tenants and pages (missing ones are created), signs them in and returns a
    :class:`SignedInClient` for the app (session cookie by default, or ``via="bearer"``).

``async def`` tests that take one of these fixtures run on asyncio with pytest-asyncio's defaults: the plugin
marks them ``asyncio`` and needs no ``asyncio_mode`` or loop-scope option in the project's configuration.

A test then reads::

    async def test_reports_page(dominus_user_client, dominus_app_client):
        assert (await dominus_app_client.get("/reports")).status_code == 401
        alice = await dominus_user_client(pages=["/reports"])
        assert (await alice.get("/reports")).status_code == 200
"""

from __future__ import annotations

import inspect
import os
import secrets
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager

from dominus_fastapi.core.client import Dominus
from dominus_fastapi.middleware import SessionConfig

__all__ = [
    "APP_ORIGIN",
    "TEST_PASSWORD",
    "SignedInClient",
    "TestUser",
    "UserFactory",
    "app_client",
    "create_test_user",
    "dominus",
    "dominus_app",
    "dominus_app_client",
    "dominus_asgi_app",
    "dominus_base_url",
    "dominus_seed_demo",
    "dominus_user_client",
    "mailed_token",
    "signed_in_client",
]

try:
    from pytest_asyncio import fixture as async_fixture

    HAS_PYTEST_ASYNCIO = True
except ImportError:  # pragma: no cover - the plugin must load in any pytest run; async fixtures then need a runner
    async_fixture = pytest.fixture  # type: ignore[assignment]
    HAS_PYTEST_ASYNCIO = False

APP_ORIGIN = "http://127.0.0.1"
"""Where test clients send their requests: plain http to a loopback host, so cookies are not ``Secure``."""
TEST_PASSWORD = "test-password-1"
"""The password of users made by the factory unless one is given (test data only)."""
ASYNC_FIXTURES = frozenset({"dominus", "dominus_asgi_app", "dominus_app_client", "dominus_user_client"})
"""The plugin's coroutine fixtures: an ``async def`` test that takes one runs on asyncio without configuration."""
_RUNNER_MARKS = frozenset({"asyncio", "anyio", "trio"})
_LOOP_SCOPE_WARNING = r'The configuration option "asyncio_default_fixture_loop_scope" is unset'
APP_LIFESPAN_TIMEOUT = 60.0
"""Seconds the app's startup and shutdown may take: the first startup in a process imports and starts the
embedded backend, which can exceed ``LifespanManager``'s 5-second default on a busy machine."""


@dataclass(frozen=True)
class TestUser:
    """A user made by :func:`create_test_user`; ``password`` and ``access_token`` are left out of ``repr``."""

    __test__ = False  # not a test class, whatever its name

    id: str
    username: str
    email: str
    password: str = field(repr=False)
    tenant_ids: tuple[str, ...] = ()
    role_ids: tuple[str, ...] = ()
    scope_ids: tuple[str, ...] = ()
    access_token: str = field(default="", repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    session_id: str | None = None


class SignedInClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` for the app under test, signed in as :attr:`user`."""

    user: TestUser


class UserFactory(Protocol):
    """The ``dominus_user_client`` fixture's signature."""

    def __call__(
        self,
        *,
        username: str | None = None,
        password: str = TEST_PASSWORD,
        roles: Sequence[str] = (),
        scopes: Sequence[str] = (),
        tenants: Sequence[str] = (),
        pages: Sequence[str] = (),
        tenant: str | None = None,
        via: Literal["cookie", "bearer"] = "cookie",
    ) -> Awaitable[SignedInClient]: ...


async def _all(list_page: Callable[..., Awaitable[Any]]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = await list_page(limit=1000, offset=offset)
        items.extend(page["items"])
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return items


async def _tenant_id(client: Dominus, slug: str) -> str:
    for tenant in await _all(client.auth.list_tenants):
        if tenant["slug"] == slug or tenant["id"] == slug:
            return str(tenant["id"])
    return str((await client.auth.create_tenant(slug, slug))["id"])


async def _role_id(client: Dominus, name: str) -> str:
    for role in await _all(client.auth.list_roles):
        if role["name"] == name or role["id"] == name:
            return str(role["id"])
    return str((await client.auth.create_role(name))["id"])


async def _scope_id(client: Dominus, slug: str) -> str:
    for scope in await _all(client.auth.list_scopes):
        if scope["slug"] == slug or scope["id"] == slug:
            return str(scope["id"])
    return str((await client.auth.create_scope(slug, slug))["id"])


async def _page_scope_id(client: Dominus, path: str) -> str | None:
    """A scope that opens ``path``: one of the page's scopes, or a new one for a page created here.

    ``None`` when the existing page has no scope (anyone in a matching tenant may open it already).
    """
    for page in await _all(client.auth.list_pages):
        if page["path"] == path:
            linked = await client.auth.get_page_scopes(page["id"])
            return str(linked["items"][0]["id"]) if linked["items"] else None
    created = await client.auth.create_page(path, path)
    scope_id = await _scope_id(client, f"page{path.replace('/', ':')}")
    await client.auth.add_page_scopes(created["id"], [scope_id])
    return scope_id


async def create_test_user(
    client: Dominus,
    *,
    username: str | None = None,
    password: str = TEST_PASSWORD,
    roles: Sequence[str] = (),
    scopes: Sequence[str] = (),
    tenants: Sequence[str] = (),
    pages: Sequence[str] = (),
    tenant: str | None = None,
) -> TestUser:
    """Create a user through Guardian (``client`` needs the administrator PSK) and sign them in.

    ``roles``, ``scopes`` and ``tenants`` are names, slugs or ids; missing ones are created. For each of
    ``pages`` the user gets a scope that opens it (a page that does not exist yet is created, guarded by a
    scope of its own). ``tenant`` picks the active tenant at sign-in (default: the first by slug).
    """
    username = username or f"user-{secrets.token_hex(4)}"
    tenant_ids = [await _tenant_id(client, slug) for slug in tenants]
    role_ids = [await _role_id(client, name) for name in roles]
    scope_ids = [await _scope_id(client, slug) for slug in scopes]
    for path in pages:
        scope_id = await _page_scope_id(client, path)
        if scope_id is not None and scope_id not in scope_ids:
            scope_ids.append(scope_id)
    user = await client.auth.create_user(username, f"{username}@example.test", password)
    user_id = str(user["id"])
    if tenant_ids:
        await client.auth.add_user_tenants(user_id, tenant_ids)
    if role_ids:
        await client.auth.add_user_roles(user_id, role_ids)
    if scope_ids:
        await client.auth.add_user_scopes(user_id, scope_ids)
    login = await client.portal.login(username, password, tenant_id=tenant)
    return TestUser(
        id=user_id,
        username=username,
        email=f"{username}@example.test",
        password=password,
        tenant_ids=tuple(tenant_ids),
        role_ids=tuple(role_ids),
        scope_ids=tuple(scope_ids),
        access_token=str(login["access_token"]),
        refresh_token=login.get("refresh_token"),
        session_id=login.get("session_id"),
    )


async def mailed_token(client: Dominus, to: str, template_alias: str) -> str:
    """The one-time token in the newest ``template_alias`` mail to ``to`` in the backend's outbox.

    For tests of password reset, e-mail verification and invitations (``client`` needs the administrator PSK).
    """
    page = await client.courier.outbox(to=to, template_alias=template_alias, limit=1)
    if not page["items"]:
        raise AssertionError(f"no {template_alias!r} mail to {to!r} in the outbox")
    url = str(page["items"][0]["model"]["action_url"])
    return parse_qs(urlsplit(url).query)["token"][0]


def signed_in_client(
    app: Any,
    user: TestUser,
    *,
    via: Literal["cookie", "bearer"] = "cookie",
    session_config: SessionConfig | None = None,
    origin: str = APP_ORIGIN,
) -> SignedInClient:
    """An HTTP client for ``app`` (already started) that carries ``user``'s session.

    Like every client of the plugin it sends ``Origin: <origin>``, as a browser does on the app's own pages,
    so that cookie requests pass the CSRF check. With ``via="cookie"`` it holds the session cookies; with
    ``via="bearer"`` it sends ``Authorization: Bearer``.
    """
    config = session_config or SessionConfig()
    # Every client of the plugin sends ``Origin`` (see :func:`app_client`); a bearer one adds its token.
    headers = {"Origin": origin}
    if via == "bearer":
        headers["Authorization"] = f"Bearer {user.access_token}"
    http = SignedInClient(transport=httpx.ASGITransport(app=app), base_url=origin, headers=headers)
    if via == "cookie":
        host = httpx.URL(origin).host
        http.cookies.set(config.cookie_name, user.access_token, domain=host, path=config.cookie_path)
        if user.refresh_token:
            http.cookies.set(config.refresh_cookie_name, user.refresh_token, domain=host, path=config.cookie_path)
    http.user = user
    return http


def app_client(app: Any, *, origin: str = APP_ORIGIN) -> httpx.AsyncClient:
    """An anonymous HTTP client for ``app`` (already started) that sends ``Origin: <origin>``.

    It behaves like a browser on the app's own pages, as the signed-in clients do: after a form sign-in
    through it (which stores the session cookies), its unsafe requests such as ``POST /auth/logout`` pass the
    CSRF check instead of getting 403 ``csrf_failed``.
    """
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=origin, headers={"Origin": origin})


# --- running async tests without configuration -----------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Silence pytest-asyncio's "``asyncio_default_fixture_loop_scope`` is unset" warning when the project
    has not set it: the plugin's fixtures are function-scoped, so the pending change of that default (to
    ``function``) does not change them. A project that sets the option keeps its own value and warnings."""
    if HAS_PYTEST_ASYNCIO and not _ini_is_set(config, "asyncio_default_fixture_loop_scope"):
        warnings.filterwarnings("ignore", message=_LOOP_SCOPE_WARNING, category=pytest.PytestDeprecationWarning)


def _ini_is_set(config: pytest.Config, name: str) -> bool:
    try:
        return bool(config.getini(name))
    except ValueError:  # not registered: pytest-asyncio is absent
        return False


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Mark ``async def`` tests that take one of :data:`ASYNC_FIXTURES` with ``pytest.mark.asyncio``.

    So they run in pytest-asyncio's default (strict) mode without ``asyncio_mode = auto`` in the project's
    configuration. Tests already marked for a runner (``asyncio``, ``anyio``, ``trio``) are left alone, and so
    are async tests that reach the fixtures only through fixtures of their own (mark those, or set
    ``asyncio_mode = "auto"``). Nothing is collected here: pytest goes on with its own collection.
    """
    if not HAS_PYTEST_ASYNCIO or not inspect.iscoroutinefunction(obj):
        return
    if not isinstance(collector, pytest.Module | pytest.Class) or not collector.istestfunction(obj, name):
        return
    marks = {mark.name for mark in getattr(obj, "pytestmark", ())}
    marks |= {mark.name for mark in collector.iter_markers()}
    if marks & _RUNNER_MARKS:
        return
    if ASYNC_FIXTURES & set(inspect.signature(obj).parameters):
        pytest.mark.asyncio(obj)


# --- fixtures -------------------------------------------------------------------------------------------------


@pytest.fixture
def dominus_seed_demo() -> bool:
    """Override to return ``True`` to load the demo data (``dominus_local.seed``) into the backend."""
    return False


@pytest.fixture
def dominus_base_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dominus_seed_demo: bool) -> str:
    """A private persistent embedded backend for this test, also exported as ``DOMINUS_BASE_URL``."""
    url = f"embedded://{tmp_path / 'dominus'}"
    monkeypatch.setenv("DOMINUS_BASE_URL", url)
    monkeypatch.delenv("DOMINUS_GATEWAY_URL", raising=False)
    monkeypatch.delenv("DOMINUS_TOKEN", raising=False)
    if "DOMINUS_LOCAL_BCRYPT_ROUNDS" not in os.environ:
        monkeypatch.setenv("DOMINUS_LOCAL_BCRYPT_ROUNDS", "4")
    if dominus_seed_demo:
        monkeypatch.setenv("DOMINUS_LOCAL_SEED_DEMO", "true")
    return url


@async_fixture
async def dominus(dominus_base_url: str) -> AsyncIterator[Dominus]:
    """A client with the administrator PSK, bound to the test's backend."""
    async with Dominus(base_url=dominus_base_url) as client:
        yield client


@pytest.fixture
def dominus_app() -> Any:
    """The app under test: override this fixture to return your ``FastAPI`` application."""
    raise pytest.UsageError(
        "Define a `dominus_app` fixture that returns the FastAPI app under test (e.g. in conftest.py)"
    )


@async_fixture
async def dominus_asgi_app(dominus: Dominus, dominus_app: Any) -> AsyncIterator[Any]:
    """The app with its lifespan running; its ``dominus_lifespan()`` shares the test's backend."""
    async with LifespanManager(
        dominus_app, startup_timeout=APP_LIFESPAN_TIMEOUT, shutdown_timeout=APP_LIFESPAN_TIMEOUT
    ) as manager:
        yield manager.app


@async_fixture
async def dominus_app_client(dominus_asgi_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An anonymous HTTP client for the app under test; it sends ``Origin`` like the signed-in ones
    (:func:`app_client`)."""
    async with app_client(dominus_asgi_app) as http:
        yield http


@async_fixture
async def dominus_user_client(dominus: Dominus, dominus_asgi_app: Any) -> AsyncIterator[UserFactory]:
    """A factory of signed-in clients for the app under test (see :func:`create_test_user`)."""
    opened: list[httpx.AsyncClient] = []

    async def factory(
        *,
        username: str | None = None,
        password: str = TEST_PASSWORD,
        roles: Sequence[str] = (),
        scopes: Sequence[str] = (),
        tenants: Sequence[str] = (),
        pages: Sequence[str] = (),
        tenant: str | None = None,
        via: Literal["cookie", "bearer"] = "cookie",
    ) -> SignedInClient:
        user = await create_test_user(
            dominus,
            username=username,
            password=password,
            roles=roles,
            scopes=scopes,
            tenants=tenants,
            pages=pages,
            tenant=tenant,
        )
        http = signed_in_client(dominus_asgi_app, user, via=via)
        opened.append(http)
        return http

    yield factory
    for http in opened:
        await http.aclose()
