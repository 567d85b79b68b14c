"""The PostgreSQL pool pings only connections that sat idle, and replaces one the server has closed."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from dominus_local.stores import database
from dominus_local.stores.database import Database
from tests.backends.conftest import require
from tests.conftest import POSTGRES_ENV, create_database, drop_database


async def test_a_busy_connection_is_not_pinged_and_a_dead_idle_one_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncpg  # type: ignore[import-untyped,unused-ignore]

    admin_url = require(POSTGRES_ENV)
    name, url = await create_database(admin_url)
    db = Database(url, pool_size=1)
    statements: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    pings: list[bool] = []
    ping = db.engine.dialect.do_ping
    monkeypatch.setattr(db.engine.dialect, "do_ping", lambda conn: pings.append(True) or ping(conn))
    try:
        for _ in range(3):
            await db.ping()
        assert pings == [] and statements == ["SELECT 1"] * 3
        # The server closes the pooled connection; once it has been idle for long enough, it is pinged,
        # found dead, and replaced: the caller never sees the failure.
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
        finally:
            await admin.close()
        monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", -1.0)
        await db.ping()
        assert pings == [True]
    finally:
        await db.dispose()
        await drop_database(admin_url, name)
