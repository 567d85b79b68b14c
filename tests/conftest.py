"""Shared fixtures: a real ``dominus_local`` in-process, SDK clients bound to it, fake clocks and sleeps.

Backend switch: when ``scripts/services.sh`` (run by ``scripts/test``) exports the ``DOMINUS_TEST_*_URL``
variables, every test server of every folder runs on those real backends instead of the embedded defaults:

* ``DOMINUS_TEST_POSTGRES_URL`` (a maintenance database): each test gets a fresh PostgreSQL database, dropped
  afterwards (fixture :func:`database`; ``tests/data`` and ``tests/local`` bring their own of the same kind);
* ``DOMINUS_TEST_CACHE_URL``: Redis, with a key prefix of the test's own;
* ``DOMINUS_TEST_STORAGE_URL``: S3, with a key prefix of the test's own inside the bucket;
* ``DOMINUS_TEST_MAIL_URL``: SMTP delivery to the sink.

They reach the servers as the ``DOMINUS_LOCAL_*_URL`` settings, the way an operator configures them.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from dominus_fastapi import Dominus
from dominus_fastapi.core.transport import DropAwareASGITransport
from dominus_local import LocalSettings, create_app

LOCAL_ORIGIN = "http://dominus.test"
"""The origin that in-process clients use (never resolved: the ASGI transport carries the requests)."""


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class InstantSleep:
    """A drop-in for ``asyncio.sleep`` that records the waits and moves ``clocks`` forward instead."""

    clocks: tuple[FakeClock, ...] = ()
    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        for clock in self.clocks:
            clock.advance(seconds)


def make_fast(client: Dominus, *, clock: FakeClock | None = None) -> InstantSleep:
    """Patch the client's backoff sleeps to zero (moving ``clock``, which then drives its budgets)."""
    sleep = InstantSleep((clock,) if clock is not None else ())
    client._transport.policy.sleep = sleep
    if clock is not None:
        client._transport.policy.clock = clock
    return sleep


@dataclass
class InProcessServer:
    """A started in-process ``dominus_local`` with injectable clocks."""

    app: Any
    """The ASGI app to send requests to (lifespan running)."""
    local: Any
    """The ``DominusLocalApp`` itself: its ``faults``, ``metrics`` and ``state``."""
    psk: str
    clock: FakeClock
    """The server's monotonic clock (cold start, faults)."""
    wall: FakeClock
    """The server's wall clock (token times)."""

    def client(self, **options: Any) -> Dominus:
        """An SDK client over the network code path, carried by an ASGI transport to this server."""
        http = httpx.AsyncClient(transport=DropAwareASGITransport(app=self.app))
        options.setdefault("token", self.psk)
        return Dominus(base_url=LOCAL_ORIGIN, http_client=http, **options)

    async def raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A plain HTTP request to the server, outside the SDK."""
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=LOCAL_ORIGIN) as http:
            return await http.request(method, path, **kwargs)

    def requests_to(self, route: str) -> int:
        """How many requests the server answered on ``route`` (from its request metrics)."""
        counts = self.local.metrics.requests
        return sum(value for (_, path, _), value in counts.items() if path == route)

    async def tokens_minted(self) -> int:
        """``dominus_local_tokens_minted_total`` read from ``GET /metrics``."""
        return parse_minted((await self.raw("GET", "/metrics")).text)


def parse_minted(metrics_text: str) -> int:
    match = re.search(r"^dominus_local_tokens_minted_total\s+([0-9.e+]+)$", metrics_text, re.MULTILINE)
    assert match is not None, "metrics carry no dominus_local_tokens_minted_total"
    return int(float(match.group(1)))


POSTGRES_ENV = "DOMINUS_TEST_POSTGRES_URL"
CACHE_ENV = "DOMINUS_TEST_CACHE_URL"
STORAGE_ENV = "DOMINUS_TEST_STORAGE_URL"
MAIL_ENV = "DOMINUS_TEST_MAIL_URL"
_OWN_DATABASE_FIXTURE = ("local",)
"""Test folders whose conftest gives each server a fresh PostgreSQL database in its own way."""


def backend_set() -> str:
    """``"real"`` when the tests run on PostgreSQL/Redis/S3/SMTP, ``"default"`` on the embedded defaults."""
    given = any(os.environ.get(name) for name in (POSTGRES_ENV, CACHE_ENV, STORAGE_ENV, MAIL_ENV))
    return "real" if given else "default"


def with_key_prefix(url: str, prefix: str) -> str:
    """``url`` (``redis://`` or ``s3://``) with a key prefix for one test, so tests never see each other's keys."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        return urlunsplit(parts._replace(path=f"/{prefix}"))
    query = f"{parts.query}&key_prefix={prefix}:" if parts.query else f"key_prefix={prefix}:"
    return urlunsplit(parts._replace(query=query))


async def create_database(admin_url: str) -> tuple[str, str]:
    """A fresh database on the PostgreSQL server of ``admin_url``: ``(name, postgresql+asyncpg URL)``."""
    import asyncpg  # type: ignore[import-untyped,unused-ignore]

    name = "t_" + uuid.uuid4().hex
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return name, f"{base}/{name}"


async def drop_database(admin_url: str, name: str) -> None:
    import asyncpg  # type: ignore[import-untyped,unused-ignore]

    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session", autouse=True)
def warm_storage_client() -> None:
    """Open one S3 client before the first test when S3 is in use: loading the S3 service model takes a
    few seconds once per process, which would otherwise fall into the first test server's start-up."""
    url = os.environ.get(STORAGE_ENV)
    if not url:
        return
    import asyncio

    from dominus_local.stores.blobs_s3 import S3BlobStore

    async def warm() -> None:
        store = S3BlobStore(url)
        try:
            await store.open()
        finally:
            await store.close()

    asyncio.run(warm())


@pytest.fixture(autouse=True)
def backends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every server of the test at the real cache, storage and mail backends, when they are given."""
    tag = "t" + uuid.uuid4().hex[:12]
    for source, target in (
        (CACHE_ENV, "DOMINUS_LOCAL_CACHE_URL"),
        (STORAGE_ENV, "DOMINUS_LOCAL_STORAGE_URL"),
        (MAIL_ENV, "DOMINUS_LOCAL_MAIL_URL"),
    ):
        url = os.environ.get(source)
        if url:
            monkeypatch.setenv(target, url if source == MAIL_ENV else with_key_prefix(url, tag))


@pytest.fixture(autouse=True)
async def database(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """A fresh PostgreSQL database per test when ``DOMINUS_TEST_POSTGRES_URL`` is set; else the defaults."""
    admin_url = os.environ.get(POSTGRES_ENV)
    folder = request.node.path.parent.name
    if not admin_url or folder in _OWN_DATABASE_FIXTURE:
        yield
        return
    name, url = await create_database(admin_url)
    monkeypatch.setenv("DOMINUS_LOCAL_DATABASE_URL", url)
    try:
        yield
    finally:
        await drop_database(admin_url, name)


@pytest.fixture
def psk() -> str:
    return secrets.token_hex(32)


@pytest.fixture
def extra_routers() -> list[Any]:
    """Extra ``ServiceRouter``s for ``local_server`` (override in a test module to add probe endpoints)."""
    return []


@pytest.fixture
async def local_server(psk: str, extra_routers: list[Any]) -> AsyncIterator[InProcessServer]:
    """A real ``dominus_local`` (in memory), its lifespan running, with fake clocks."""
    routers = tuple(extra_routers)
    clock = FakeClock(10_000.0)
    wall = FakeClock()
    settings = LocalSettings(psk=SecretStr(psk), bcrypt_rounds=4)
    app = create_app(settings, clock=clock, wall_clock=wall, routers=routers)
    async with LifespanManager(app) as manager:
        yield InProcessServer(app=manager.app, local=app, psk=psk, clock=clock, wall=wall)


@pytest.fixture
async def local_client(local_server: InProcessServer) -> AsyncIterator[Dominus]:
    """An SDK client of ``local_server`` with backoff sleeps patched to zero."""
    client = local_server.client()
    make_fast(client)
    try:
        yield client
    finally:
        await client.aclose()
        await client._transport.http.aclose()


@pytest.fixture
async def embedded() -> AsyncIterator[Dominus]:
    """``Dominus(base_url="embedded:")`` with backoff sleeps patched to zero; closed after the test."""
    client = Dominus(base_url="embedded:")
    make_fast(client)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documentation site, built once per session from this checkout's ``mkdocs.yml`` with ``--strict`` (a
    broken link, a page missing from the nav or a warning of the reference's machinery fails it)."""
    site = tmp_path_factory.mktemp("site")
    # The reference imports the packages: the settings of a test run must not leak into what they document.
    env = {key: value for key, value in os.environ.items() if not key.startswith("DOMINUS_")}
    env["NO_MKDOCS_2_WARNING"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return site
