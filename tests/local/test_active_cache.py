"""The in-process memo of token checks (spec 5.5 steps 4-5): it saves the database work of repeated checks and
never lets a revoked session, or a subject that is no longer active, through (spec 5.7)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from dominus_local import identity
from dominus_local.validate import new_id, utcnow

from .conftest import Harness, add_client, add_user_session, error_code, set_client_status


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def identity_reads(server: Harness) -> Iterator[list[str]]:
    """Every statement that reads the users, clients or sessions table, from now on."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and any(
            name in statement for name in ("guardian_users", "guardian_clients", "guardian_sessions")
        ):
            seen.append(statement)

    engine = server.app.state.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


async def _memo_trusted(server: Harness) -> identity.ActiveCache:
    """The server's memo, once it may be used: at once on SQLite; on PostgreSQL after the change feed's first
    heartbeat (polled with a deadline)."""
    cache = server.app.active_cache
    assert cache is not None
    deadline = time.monotonic() + 10
    while not cache.trusted:
        assert time.monotonic() < deadline, "the change feed never vouched for the memo"
        await asyncio.sleep(0.01)
    return cache


async def test_repeated_checks_read_the_database_once(server: Harness, token: str, identity_reads: list[str]) -> None:
    session = await add_user_session(server)
    await _memo_trusted(server)
    identity_reads.clear()
    for _ in range(5):
        assert (await server.call("GET", "/api/probe/service", token=token)).status_code == 200
        assert (await server.call("GET", "/api/probe/user", token=session)).status_code == 200
    # One subject read per token, plus one session read for the session token; on PostgreSQL too, where the
    # change feed keeps the memo in step with the other processes.
    assert len(identity_reads) == 3
    if not server.app.state.db.is_sqlite:
        assert server.app.change_feed is not None


async def test_a_session_revoked_while_its_checks_are_cached_is_refused_at_once(server: Harness) -> None:
    session = await add_user_session(server)
    for _ in range(3):
        assert (await server.call("GET", "/api/probe/user", token=session)).status_code == 200
    sid = _claim(session, "sid")
    async with server.app.state.db.begin() as conn:
        assert await identity.revoke_sessions(conn, session_id=sid) == 1
    refused = await server.call("GET", "/api/probe/user", token=session)
    assert refused.status_code == 401
    assert error_code(refused) == "session_revoked"


async def test_a_subject_disabled_while_cached_is_refused_at_once(server: Harness) -> None:
    psk = "d" * 64
    client_id = await add_client(server, psk)
    client_token = await server.mint(psk)
    for _ in range(3):
        assert (await server.call("GET", "/api/probe/service", token=client_token)).status_code == 200
    await set_client_status(server, client_id, "suspended")
    refused = await server.call("GET", "/api/probe/service", token=client_token)
    assert refused.status_code == 401
    assert error_code(refused) == "invalid_token"
    await set_client_status(server, client_id, "active")
    assert (await server.call("GET", "/api/probe/service", token=client_token)).status_code == 200


async def test_a_deleted_user_is_refused_at_once(server: Harness) -> None:
    session = await add_user_session(server)
    assert (await server.call("GET", "/api/probe/user", token=session)).status_code == 200
    user_id = _claim(session, "sub")
    async with server.app.state.db.begin() as conn:
        await conn.execute(identity.sessions.delete().where(identity.sessions.c.subject_id == user_id))
        await conn.execute(identity.users.delete().where(identity.users.c.id == user_id))
    refused = await server.call("GET", "/api/probe/user", token=session)
    assert refused.status_code == 401
    assert error_code(refused) == "invalid_token"


async def test_an_answer_read_before_a_write_commits_is_not_kept(server: Harness) -> None:
    cache = identity.ActiveCache()
    cache.watch(server.app.state.db.engine.sync_engine)
    try:
        user_id = new_id()
        async with server.app.state.db.begin() as conn:
            await conn.execute(
                identity.users.update().where(identity.users.c.id == user_id).values(status="disabled")
            )
            # A check on another connection may still see the old row until this commits...
            cache.remember(cache.epoch, "user", user_id, None, None)
            assert cache.hit("user", user_id, None)
        # ...so the commit empties the cache again.
        assert not cache.hit("user", user_id, None)
        # A check that started before a write does not store its (possibly stale) answer.
        epoch = cache.epoch
        async with server.app.state.db.begin() as conn:
            await identity.revoke_sessions(conn, subject_id=user_id)
        cache.remember(epoch, "user", user_id, None, None)
        assert not cache.hit("user", user_id, None)
        # Reads and new rows change nothing.
        cache.remember(cache.epoch, "user", user_id, None, None)
        async with server.app.state.db.begin() as conn:
            await identity.subject_is_active(conn, "user", user_id)
        assert cache.hit("user", user_id, None)
    finally:
        for name, handler in (
            ("before_cursor_execute", cache._before_execute),
            ("commit", cache._after_commit),
            ("rollback", cache._after_rollback),
        ):
            event.remove(server.app.state.db.engine.sync_engine, name, handler)


def test_answers_expire_with_the_ttl_and_with_the_session() -> None:
    clock = _Clock()
    cache = identity.ActiveCache(ttl=1.0, clock=clock)
    sid = new_id()
    cache.remember(cache.epoch, "user", "u", sid, utcnow() + timedelta(hours=1))
    assert cache.hit("user", "u", sid)
    assert not cache.hit("user", "u", new_id())  # another session of the same user is not known
    clock.now += 1.0
    assert not cache.hit("user", "u", sid)
    cache.remember(cache.epoch, "user", "u", sid, utcnow() - timedelta(seconds=1))
    assert cache.hit("user", "u", None)
    assert not cache.hit("user", "u", sid)  # the session itself has expired
    disabled = identity.ActiveCache(ttl=0, clock=clock)
    disabled.remember(disabled.epoch, "client", "c", None, None)
    assert not disabled.hit("client", "c", None)


def _claim(token: str, name: str) -> str:
    import jwt

    value = jwt.decode(token, options={"verify_signature": False})[name]
    assert isinstance(value, str)
    return value


async def test_a_remembered_signature_does_not_outlive_the_token(server: Harness, token: str) -> None:
    assert (await server.call("GET", "/api/probe/service", token=token)).status_code == 200
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    refused = await server.call("GET", "/api/probe/service", token=forged)
    assert refused.status_code == 401
    assert error_code(refused) == "invalid_token"
    assert (await server.call("GET", "/api/probe/service", token=token)).status_code == 200
    server.wall.advance(900 + 6)  # past exp and the 5 s leeway
    expired = await server.call("GET", "/api/probe/service", token=token)
    assert expired.status_code == 401
    assert error_code(expired) == "token_expired"


async def test_a_login_or_a_refresh_keeps_the_memo_but_a_revocation_empties_it(server: Harness) -> None:
    session = await add_user_session(server)
    cache = await _memo_trusted(server)
    assert (await server.call("GET", "/api/probe/user", token=session)).status_code == 200
    user_id, sid = _claim(session, "sub"), _claim(session, "sid")
    assert cache.hit("user", user_id, sid)
    now = utcnow()
    async with server.app.state.db.begin() as conn:
        # What a login and a refresh write: nothing that ends access.
        await conn.execute(identity.users.update().where(identity.users.c.id == user_id).values(last_login_at=now))
        await conn.execute(
            identity.sessions.update()
            .where(identity.sessions.c.id == sid)
            .values(last_seen_at=now, expires_at=now + timedelta(days=1))
        )
    assert cache.hit("user", user_id, sid)
    async with server.app.state.db.begin() as conn:
        await identity.revoke_sessions(conn, session_id=sid, reason="logout")
    assert not cache.hit("user", user_id, sid)


@pytest.mark.parametrize(
    ("statement", "ends"),
    [
        ("SELECT status FROM guardian_users WHERE id = ?", False),
        ("INSERT INTO guardian_sessions (id) VALUES (?)", False),
        ("UPDATE guardian_users SET last_login_at=? WHERE guardian_users.id = ?", False),
        ("UPDATE guardian_sessions SET refresh_digest=?, expires_at=? WHERE guardian_sessions.id = ?", False),
        ("UPDATE guardian_tenants SET status=? WHERE id = ?", False),
        ("UPDATE guardian_users SET status=?, updated_at=? WHERE guardian_users.id = ?", True),
        ("update guardian_clients set status = 'suspended' where id = ?", True),
        ("UPDATE guardian_sessions SET revoked_at=?, revoked_reason=? WHERE guardian_sessions.id = ?", True),
        ("UPDATE guardian_users SET last_login_at=? RETURNING status", False),
        ("DELETE FROM guardian_users WHERE id = ?", True),
        ("DELETE FROM guardian_sessions WHERE subject_id = ?", True),
        ("INSERT INTO guardian_users (id) VALUES (?) ON CONFLICT (id) DO UPDATE SET status='disabled'", True),
        ("UPDATE guardian_users AS u FROM x", True),  # no SET clause it can read: counts as ending access
    ],
)
def test_which_statements_may_end_access(statement: str, ends: bool) -> None:
    assert identity.may_end_access(statement) is ends


def test_an_untrusted_memo_answers_nothing_and_trusting_it_again_starts_empty() -> None:
    clock = _Clock()
    cache = identity.ActiveCache(5.0, clock=clock, trusted=False)
    cache.remember(cache.epoch, "user", "u", None, None)
    assert not cache.hit("user", "u", None), "nothing is stored while the feed has not vouched"
    cache.trust(clock.now + 1.0)
    cache.remember(cache.epoch, "user", "u", None, None)
    assert cache.hit("user", "u", None)
    clock.now += 1.0  # the feed's last heartbeat is too old: the memo stops answering
    assert not cache.hit("user", "u", None)
    cache.trust(clock.now + 1.0)
    cache.distrust()  # the feed broke: what it missed is unknown
    cache.trust(clock.now + 1.0)
    assert not cache.hit("user", "u", None)


def test_forgetting_one_subject_or_session_keeps_the_others() -> None:
    cache = identity.ActiveCache()
    sid, other = new_id(), new_id()
    later = utcnow() + timedelta(hours=1)
    cache.remember(cache.epoch, "user", "A" * 8, sid, later)
    cache.remember(cache.epoch, "user", "b", other, later)
    cache.remember(cache.epoch, "client", "c", None, None)
    epoch = cache.epoch
    cache.forget_session(sid.upper())
    assert not cache.hit("user", "a" * 8, sid)
    assert cache.hit("user", "aaaaaaaa", None)
    cache.forget_subject("user", "b")
    assert not cache.hit("user", "b", other)
    assert cache.hit("client", "c", None)
    cache.remember(epoch, "user", "b", other, later)  # a check that started before the change keeps nothing
    assert not cache.hit("user", "b", other)
