"""Tests of the real backends: PostgreSQL, Redis, S3 (moto's server mode) and SMTP (an aiosmtpd sink).

They need the servers that ``scripts/services.sh`` starts (``scripts/test`` does it) and read their URLs from
the ``DOMINUS_TEST_*_URL`` variables. Without any of those variables this folder is not collected (a plain
``pytest`` on a machine without the services); with only some of them, its tests fail, naming the missing
ones: a backend that cannot start is a failure, not a skip.
"""

from __future__ import annotations

import asyncio
import mailbox
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from dominus_fastapi import Dominus
from tests.conftest import (
    CACHE_ENV,
    MAIL_ENV,
    POSTGRES_ENV,
    STORAGE_ENV,
    create_database,
    drop_database,
    make_fast,
    with_key_prefix,
)
from tests.servers import LocalServer

MAILDIR_ENV = "DOMINUS_TEST_MAILDIR"
_ALL = (POSTGRES_ENV, CACHE_ENV, STORAGE_ENV, MAIL_ENV, MAILDIR_ENV)

collect_ignore_glob = [] if any(os.environ.get(name) for name in _ALL) else ["test_*.py"]


def require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the backend tests through scripts/test or scripts/services.sh")
    return value


@pytest.fixture
def backend_env() -> Iterator[dict[str, str]]:
    """Settings for ``dominus-local serve`` processes on every real backend (a test's own key prefixes; the
    database is added by :func:`shared_env`)."""
    tag = "t" + secrets.token_hex(6)
    yield {
        "DOMINUS_LOCAL_CACHE_URL": with_key_prefix(require(CACHE_ENV), tag),
        "DOMINUS_LOCAL_STORAGE_URL": with_key_prefix(require(STORAGE_ENV), tag),
        "DOMINUS_LOCAL_MAIL_URL": require(MAIL_ENV),
        "DOMINUS_LOCAL_BCRYPT_ROUNDS": "4",
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    }


@pytest.fixture
async def shared_env(backend_env: dict[str, str]) -> AsyncIterator[dict[str, str]]:
    """:func:`backend_env` plus a fresh PostgreSQL database of the test's own (dropped afterwards)."""
    admin_url = require(POSTGRES_ENV)
    name, url = await create_database(admin_url)
    try:
        yield {**backend_env, "DOMINUS_LOCAL_DATABASE_URL": url}
    finally:
        await drop_database(admin_url, name)


@asynccontextmanager
async def serving(data_dir: Path, psk: str, env: dict[str, str]) -> AsyncIterator[LocalServer]:
    """A ``dominus-local serve`` process on ``data_dir`` (its keys) and the backends of ``env``."""
    server = LocalServer(data_dir=data_dir, psk=psk, env=env, startup_timeout=60.0)
    async with server:
        yield server


def client(server: LocalServer, psk: str | None = None) -> Dominus:
    sdk = Dominus(base_url=server.url, token=psk or server.psk)
    make_fast(sdk)
    return sdk


def delivered_to_sink(message_id: str) -> list[Any]:
    """The messages of the SMTP sink's Maildir that carry ``message_id``."""
    box = mailbox.Maildir(require(MAILDIR_ENV), create=False)
    try:
        return [m for m in box if m.get("Message-ID") == f"<{message_id}@dominus-local>"]
    finally:
        box.close()


async def eventually(check: Callable[[], Any], *, within: float = 30.0) -> Any:
    """Poll ``check`` until it answers something truthy (delivery runs in the background); fails after
    ``within`` seconds. A bound on waiting, not a timed assertion."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(0.05)
