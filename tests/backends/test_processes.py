"""Several ``dominus-local serve`` processes on one PostgreSQL, Redis, S3 bucket and SMTP relay, and a restart
on them that loses nothing."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from dominus_fastapi import AuthenticationError, Dominus
from tests.backends.conftest import client, delivered_to_sink, eventually, serving
from tests.servers import LocalServer

WELCOME = {"name": "Ada", "product_name": "Dominus"}


async def test_two_processes_share_sessions_locks_files_and_mail(tmp_path: Path, shared_env: dict[str, str]) -> None:
    psk = secrets.token_hex(32)
    keys = tmp_path / "keys"  # both processes use the same signing key, URL key and PSK
    first_server = LocalServer(data_dir=keys, psk=psk, env=shared_env, startup_timeout=60.0)
    second_server = LocalServer(data_dir=keys, psk=psk, env=shared_env, startup_timeout=60.0)
    try:
        # Started at the same time on an empty database: table creation must not race.
        await asyncio.gather(first_server.__aenter__(), second_server.__aenter__())
        one, two = client(first_server), client(second_server)
        # A session created on one process is valid on the other.
        await one.auth.create_user("ada", "ada@example.com", password="correct horse battery")
        login = await two.portal.login("ada", "correct horse battery")
        me = await one.portal.me(user_token=login["access_token"])
        assert me["user"]["username"] == "ada"
        await one.portal.logout(user_token=login["access_token"])
        with pytest.raises(AuthenticationError) as ended:
            await two.portal.me(user_token=login["access_token"])
        assert ended.value.status_code == 401, "a session ended on one process is ended on the other"

        # A setnx lock is exclusive across both processes, under concurrency.
        attempts = [c.redis.setnx("locks/report", {"by": i}, ttl=60) for i, c in enumerate([one, two] * 10)]
        results = await asyncio.gather(*attempts)
        assert sum(1 for r in results if r["acquired"]) == 1
        holder = next(r for r in results if r["acquired"])
        assert all(r["existing"] is not None for r in results if r is not holder)
        assert (await two.redis.incr("hits", 5))["value"] == 5
        assert (await one.redis.incr("hits", 1))["value"] == 6

        # Upload through one, download through the other.
        record = await one.files.upload(b"shared bytes", "shared.txt", category="docs")
        link = await two.files.download(record["id"])
        async with httpx.AsyncClient() as http:
            body = await http.get(link["download_url"])
        assert body.status_code == 200 and body.content == b"shared bytes"
        assert (await two.files.fetch(category="docs", path="shared.txt"))["data"] == b"shared bytes"

        # Mail sent through one is delivered once, though both processes run delivery.
        sent = await two.courier.send("welcome", "ada@example.com", "team@example.com", WELCOME)
        await eventually(lambda: delivered_to_sink(sent["message_id"]))
        outbox = await one.courier.outbox(to="ada@example.com", template_alias="welcome")
        item = next(i for i in outbox["items"] if i["message_id"] == sent["message_id"])
        await eventually(lambda: _delivered(one, sent["message_id"]))
        assert item["delivery_error"] is None
        assert len(delivered_to_sink(sent["message_id"])) == 1
        await one.aclose()
        await two.aclose()
    finally:
        await asyncio.gather(asyncio.to_thread(first_server.stop), asyncio.to_thread(second_server.stop))


async def _delivered(sdk: Dominus, message_id: str) -> bool:
    outbox = await sdk.courier.outbox(limit=1000)
    return any(i["message_id"] == message_id and i["delivered"] for i in outbox["items"])


async def _write_everything(sdk: Dominus) -> dict[str, Any]:
    await sdk.secrets.upsert("api-key", {"v": 1}, comment="kept")
    await sdk.ddl.add_table(
        "orders", [{"name": "id", "type": "SERIAL", "constraints": ["PRIMARY KEY"]}, {"name": "item", "type": "TEXT"}]
    )
    await sdk.db.insert("orders", {"item": "book"})
    await sdk.redis.set("greeting", "hello", ttl=3600)
    await sdk.redis.hset("profile", "name", "Ada", ttl=3600)
    await sdk.redis.incr("visits", 3)
    record = await sdk.files.upload(b"kept bytes", "kept.txt", category="docs")
    user = await sdk.auth.create_user("grace", "grace@example.com", password="a long enough password")
    login = await sdk.portal.login("grace", "a long enough password")
    await sdk.logs.info("restart test", {"step": "before"})
    sent = await sdk.courier.send("welcome", "grace@example.com", "team@example.com", WELCOME)
    return {"file": record["id"], "user": user["id"], "login": login, "mail": sent["message_id"]}


async def test_restart_on_postgresql_loses_nothing(tmp_path: Path, shared_env: dict[str, str]) -> None:
    psk = secrets.token_hex(32)
    data_dir = tmp_path / "data"
    async with serving(data_dir, psk, shared_env) as server:
        sdk = client(server)
        try:
            written = await _write_everything(sdk)
            migrations = await sdk.ddl.list_migrations("public")
        finally:
            await sdk.aclose()
    # A new process on the same database, cache, bucket and keys.
    async with serving(data_dir, psk, shared_env) as server:
        sdk = client(server)
        try:
            assert await sdk.secrets.get("api-key") == {"v": 1}
            rows = await sdk.db.query("orders")
            assert [r["item"] for r in rows["rows"]] == ["book"]
            assert await sdk.ddl.list_migrations("public") == migrations
            assert (await sdk.redis.get("greeting"))["value"] == "hello"
            assert (await sdk.redis.hgetall("profile"))["fields"] == {"name": "Ada"}
            assert (await sdk.redis.incr("visits", 1))["value"] == 4
            assert (await sdk.files.fetch(written["file"]))["data"] == b"kept bytes"
            users = await sdk.auth.list_users()
            assert written["user"] in [u["id"] for u in users["items"]]
            me = await sdk.portal.me(user_token=written["login"]["access_token"])
            assert me["user"]["username"] == "grace", "the session outlives the restart"
            refreshed = await sdk.portal.refresh(refresh_token=written["login"]["refresh_token"])
            assert refreshed["access_token"]
            logs = await sdk.logs.query(limit=100)
            assert any(e["message"] == "restart test" for e in logs)
            outbox = await sdk.courier.outbox(to="grace@example.com")
            assert [i["message_id"] for i in outbox["items"]] == [written["mail"]]
        finally:
            await sdk.aclose()
