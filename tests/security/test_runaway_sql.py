"""Runaway statements: an endless ``WITH RECURSIVE`` sent through the open SQL area (by a non-admin service
token) and through Smith's raw DDL, against a real in-process ``dominus_local`` with a low statement time limit.

Each runaway must be answered 504 ``upstream_timeout`` (``details.reason = "statement_timeout"``) within a few
seconds, once (the SDK does not send it again), and leave the server free: the next ordinary statement answers
at once. A client that goes away mid-statement must stop it too, long before the limit: the server sends no
answer, and on PostgreSQL no runaway statement is left running (``pg_stat_activity``).

Runs on SQLite by default, and on PostgreSQL (service database and open area alike) when
``DOMINUS_TEST_POSTGRES_URL`` names a server: ``scripts/test`` runs it in its backend pass.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from dominus_fastapi import Dominus, DominusTimeoutError
from dominus_fastapi.core import wire
from dominus_fastapi.core.transport import DropAwareASGITransport
from dominus_local import LocalSettings, create_app
from tests.conftest import LOCAL_ORIGIN, POSTGRES_ENV, create_database, drop_database, make_fast
from tests.reliability.ledger import TALLY, WATCH

SUITE = "attacks: runaway statements"
LIMIT = 1.0
"""The statement time limit of the servers that must stop runaways by themselves (seconds)."""
LONG_LIMIT = 120.0
"""The limit of the servers where only the client's disconnect may stop the statement in time."""
ANSWER_BOUND = 15.0
"""Generous bound on how long a stopped runaway may take to be answered (the limit plus scheduling slack)."""
RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT x + 1 FROM c) SELECT count(*) AS n FROM c"
RUNAWAY_DDL = (
    "CREATE TABLE spin AS WITH RECURSIVE c(x) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT x + 1 FROM c) "
    "SELECT count(*) AS n FROM c"
)
OPEN_EXECUTE = "/api/scribe/open/execute"
RUNAWAY_ROUNDS = 5
"""As many runaways in a row as the SDK's breaker counts failures before it opens (spec 6.4)."""


@dataclass
class Target:
    """One started instance: its ASGI app, an admin and a non-admin SDK client, the open area's database."""

    app: Any
    local: Any
    admin: Dominus
    robot: Dominus
    robot_token: str
    open_database: str | None
    """The open area's PostgreSQL database name (``None`` on SQLite)."""
    service_database: str | None
    """The service database's PostgreSQL name (``None`` on SQLite)."""

    def answered(self, route: str, status: int) -> int:
        return sum(v for (_, path, code), v in self.local.metrics.requests.items() if path == route and code == status)


def _client(app: Any, token: str) -> Dominus:
    client = Dominus(
        base_url=LOCAL_ORIGIN, token=token, http_client=httpx.AsyncClient(transport=DropAwareASGITransport(app=app))
    )
    make_fast(client)
    return client


@pytest.fixture
async def make_target() -> AsyncIterator[Any]:
    """Start instances with a given statement limit; on PostgreSQL the open area gets a database of its own."""
    admin_url = os.environ.get(POSTGRES_ENV)
    created: list[str] = []
    stack: list[tuple[LifespanManager, list[Dominus]]] = []

    async def start(limit: float) -> Target:
        open_url, open_name = None, None
        if admin_url:
            open_name, open_url = await create_database(admin_url)
            created.append(open_name)
        psk = WATCH.secret(secrets.token_hex(32))
        settings = LocalSettings(
            psk=SecretStr(psk), bcrypt_rounds=4, statement_timeout=limit, open_database_url=open_url
        )
        app = create_app(settings)
        manager = LifespanManager(app, startup_timeout=60, shutdown_timeout=60)
        await manager.__aenter__()
        admin = _client(manager.app, psk)
        robot_psk = WATCH.secret((await admin.auth.create_client("runaway-robot"))["psk"])
        robot = _client(manager.app, robot_psk)
        robot_token = WATCH.secret(await (await robot._transport.token_cache()).get())
        stack.append((manager, [admin, robot]))
        db = app.state.db
        service_name = None if db.is_sqlite else make_url(db.url).database
        return Target(manager.app, app, admin, robot, robot_token, open_name, service_name)

    try:
        yield start
    finally:
        for manager, clients in reversed(stack):
            for client in clients:
                await client.aclose()
                await client._transport.http.aclose()
            await manager.__aexit__(None, None, None)
        for name in created:
            assert admin_url is not None
            await drop_database(admin_url, name)


async def _runaways_running(database: str | None) -> int:
    """Statements of the runaway's text still active on the PostgreSQL server (0 on SQLite)."""
    admin_url = os.environ.get(POSTGRES_ENV)
    if not admin_url or database is None:
        return 0
    import asyncpg  # type: ignore[import-untyped,unused-ignore]

    watcher = await asyncpg.connect(admin_url)
    try:
        count = await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' "
            "AND query LIKE '%RECURSIVE%' AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await watcher.close()
    return int(count)


async def _settled(database: str | None) -> bool:
    """True once no runaway runs on the server (PostgreSQL ends a cancelled backend's statement shortly)."""
    for _ in range(50):
        if await _runaways_running(database) == 0:
            return True
        await anyio.sleep(0.1)
    return False


async def _leave_mid_statement(app: Any, token: str, path: str, body: dict[str, Any], after: float) -> list[Any]:
    """Send one request straight to the ASGI app, then go away after ``after`` seconds, as a client that gave
    up would; returns the messages the app sent (none is expected)."""
    sent: list[Any] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": wire.encode_body(body), "more_body": False}
        await anyio.sleep(after)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {token}".encode()), (b"content-type", b"text/plain")],
        "server": ("dominus.test", 80),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
    }
    await app(scope, receive, send)
    return sent


def _sql(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_runaway_open_sql_is_stopped_at_the_limit_and_the_area_stays_usable(make_target: Any) -> None:
    target: Target = await make_target(LIMIT)
    robot = target.robot
    await robot.open.execute("CREATE TABLE visits (page TEXT)")
    await robot.open.execute("INSERT INTO visits VALUES ($1)", ["/home"])
    failures = []
    for round_number in range(RUNAWAY_ROUNDS):
        started = time.monotonic()
        with pytest.raises(DominusTimeoutError) as caught:
            await robot.open.execute(RUNAWAY)
        took = time.monotonic() - started
        error = caught.value
        ok = (
            error.status_code == 504
            and error.code == "upstream_timeout"
            and error.details == {"reason": "statement_timeout", "limit": LIMIT}
            and took < ANSWER_BOUND
        )
        if not TALLY.record(SUITE, ok, f"open SQL runaway {round_number}: {error!r} after {took:.1f} s"):
            failures.append(f"runaway {round_number}: {error!r} after {took:.1f} s")
        started = time.monotonic()
        found = await robot.open.execute("SELECT page FROM visits")
        took = time.monotonic() - started
        ok = found["rows"] == [{"page": "/home"}] and took < ANSWER_BOUND / 3
        if not TALLY.record(SUITE, ok, f"open SQL after runaway {round_number}: {took:.1f} s"):
            failures.append(f"ordinary statement after runaway {round_number}: {found} after {took:.1f} s")
    # Each runaway was sent once (a statement stopped at the limit would run as long again), and the five
    # 504s did not open the SDK's breaker: the ordinary call after the fifth went through.
    once = target.answered(OPEN_EXECUTE, 504) == RUNAWAY_ROUNDS
    if not TALLY.record(SUITE, once, "runaways sent once each"):
        failures.append(f"{target.answered(OPEN_EXECUTE, 504)} runaway answers for {RUNAWAY_ROUNDS} calls")
    settled = await _settled(target.open_database)
    if not TALLY.record(SUITE, settled, "no runaway left on the server"):
        failures.append("a runaway statement is still running on PostgreSQL")
    assert not failures


async def test_runaway_raw_ddl_is_stopped_and_nothing_is_recorded(make_target: Any) -> None:
    target: Target = await make_target(LIMIT)
    admin = target.admin
    before = await admin.db.tables()
    started = time.monotonic()
    with pytest.raises(DominusTimeoutError) as caught:
        await admin.ddl.execute_raw("public", RUNAWAY_DDL)
    took = time.monotonic() - started
    error = caught.value
    stopped = error.status_code == 504 and error.details.get("reason") == "statement_timeout" and took < ANSWER_BOUND
    TALLY.record(SUITE, stopped, f"raw DDL runaway: {error!r} after {took:.1f} s")
    after = await admin.db.tables()
    unchanged = after == before and "spin" not in [t["name"] for t in after]
    TALLY.record(SUITE, unchanged, "raw DDL runaway left no table")
    await admin.ddl.create_table("public", "kept", [{"name": "id", "type": "serial", "primary_key": True}])
    usable = "kept" in [t["name"] for t in await admin.db.tables()]
    TALLY.record(SUITE, usable, "Smith usable after the runaway")
    assert stopped, f"{error!r} after {took:.1f} s"
    assert unchanged and usable


@pytest.mark.parametrize("route", ["open SQL", "raw DDL"])
async def test_a_client_that_leaves_mid_statement_stops_it(make_target: Any, route: str) -> None:
    target: Target = await make_target(LONG_LIMIT)
    if route == "open SQL":
        path, body, token = OPEN_EXECUTE, {"sql": _sql(RUNAWAY)}, target.robot_token
    else:
        path, body = "/api/smith/schema/execute-raw-ddl", {"schema": "public", "sql": _sql(RUNAWAY_DDL)}
        token = WATCH.secret(await (await target.admin._transport.token_cache()).get())
    await target.robot.open.execute("CREATE TABLE visits (page TEXT)")
    started = time.monotonic()
    sent = await _leave_mid_statement(target.app, token, path, body, after=0.5)
    took = time.monotonic() - started
    # Stopped by the disconnect, far below the limit, and no answer sent to nobody.
    stopped = sent == [] and took < ANSWER_BOUND
    TALLY.record(SUITE, stopped, f"{route} runaway whose client left: {sent!r} after {took:.1f} s")
    settled = await _settled(target.open_database if route == "open SQL" else target.service_database)
    TALLY.record(SUITE, settled, f"{route}: no runaway left on the server")
    started = time.monotonic()
    found = await target.robot.open.execute("SELECT count(*) AS n FROM visits")
    quick = found["rows"] == [{"n": 0}] and time.monotonic() - started < ANSWER_BOUND / 3
    TALLY.record(SUITE, quick, f"{route}: open SQL answers after the client left")
    tables = [t["name"] for t in await target.admin.db.tables()]
    TALLY.record(SUITE, "spin" not in tables, f"{route}: nothing kept of the stopped statement")
    assert stopped, f"{sent!r} after {took:.1f} s"
    assert settled and quick and "spin" not in tables


async def test_an_in_process_caller_whose_timeout_passes_stops_the_statement(make_target: Any) -> None:
    """An in-process caller's timeout cancels the request's task instead of disconnecting: the statement is
    stopped all the same, and the open area keeps its data (an in-memory SQLite one too)."""
    target: Target = await make_target(LONG_LIMIT)
    robot = target.robot
    await robot.open.execute("CREATE TABLE visits (page TEXT)")
    await robot.open.execute("INSERT INTO visits VALUES ($1)", ["/kept"])
    started = time.monotonic()
    with anyio.move_on_after(0.5) as waiting:  # as embedded: does at its timeout: the app's task is cancelled
        await robot.open.execute(RUNAWAY, max_retries=0)
    took = time.monotonic() - started
    assert waiting.cancelled_caught
    stopped = took < ANSWER_BOUND
    TALLY.record(SUITE, stopped, f"in-process timeout on a runaway: {took:.1f} s")
    settled = await _settled(target.open_database)
    TALLY.record(SUITE, settled, "in-process timeout: no runaway left on the server")
    started = time.monotonic()
    found = await robot.open.execute("SELECT page FROM visits")
    kept = found["rows"] == [{"page": "/kept"}] and time.monotonic() - started < ANSWER_BOUND / 3
    TALLY.record(SUITE, kept, "in-process timeout: the open area answers with its data")
    assert stopped and settled and kept, (took, found)
