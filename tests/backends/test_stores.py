"""The Redis, S3 and SMTP stores against their real servers; URL settings and ``dominus-local info``."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError as SettingsError

from dominus_fastapi import ServiceError, ValidationError
from dominus_local import LocalSettings
from dominus_local.stores.blobs import BlobNotFoundError
from dominus_local.stores.blobs_s3 import S3BlobStore
from dominus_local.stores.database import Database
from dominus_local.stores.kv import NotIntegerError, WrongTypeError
from dominus_local.stores.kv_redis import RedisKVStore
from dominus_local.stores.mail import MailMessage, SmtpMailStore, outbox_table
from tests.backends.conftest import delivered_to_sink, require
from tests.conftest import CACHE_ENV, MAIL_ENV, STORAGE_ENV, FakeClock, with_key_prefix
from tests.files.conftest import file_server
from tests.servers import free_port


@pytest.fixture
async def redis_store() -> AsyncIterator[tuple[RedisKVStore, FakeClock]]:
    clock = FakeClock()
    store = RedisKVStore(with_key_prefix(require(CACHE_ENV), "k" + secrets.token_hex(6)), clock=clock)
    try:
        yield store, clock
    finally:
        await store.flush()
        await store.close()


async def test_redis_expiry_nudge_and_kinds(redis_store: tuple[RedisKVStore, FakeClock]) -> None:
    store, clock = redis_store
    await store.set("p/e/default", "a", {"x": 1}, 60)
    clock.advance(50)
    entry = await store.get("p/e/default", "a", nudge=True)
    assert entry is not None and entry.ttl_remaining(clock()) == 60, "a nudge resets to the written TTL"
    clock.advance(59)
    assert await store.get("p/e/default", "a") is not None
    clock.advance(1)
    assert await store.get("p/e/default", "a") is None, "an expired key is gone"
    assert await store.scan("p/e/default") == []
    await store.hset("p/e/default", "h", "f", [1], 120)
    with pytest.raises(WrongTypeError):
        await store.set("p/e/default", "h", 1, 60)
    with pytest.raises(WrongTypeError):
        await store.incr("p/e/default", "h", 1, 60)
    await store.set("p/e/default", "s", "text", 60)
    with pytest.raises(NotIntegerError):
        await store.incr("p/e/default", "s", 1, 60)
    assert await store.incr("p/e/default", "n", 2**63 - 1, 60) == 2**63 - 1
    with pytest.raises(NotIntegerError):
        await store.incr("p/e/default", "n", 1, 60)
    assert await store.hdel("p/e/default", "h", "f") is True
    assert await store.get("p/e/default", "h") is None, "removing the last field removes the key"


async def test_redis_listing_pages_in_code_point_order(redis_store: tuple[RedisKVStore, FakeClock]) -> None:
    store, _ = redis_store
    keys = ["b", "a*", "a[1]", "a/z", "ä", "a\\b", "ab", "Z"]
    for key in keys:
        await store.set("p/e/c", key, 1, 60)
    await store.set("p/e/other", "a-elsewhere", 1, 60)
    pages: list[str] = []
    after = None
    while True:
        page = await store.scan("p/e/c", after=after, limit=3)
        pages += page
        if len(page) < 3:
            break
        after = page[-1]
    assert pages == sorted(keys)
    assert await store.scan("p/e/c", prefix="a[") == ["a[1]"], "glob characters in a prefix are literal"


async def test_redis_setnx_is_exclusive_across_clients(redis_store: tuple[RedisKVStore, FakeClock]) -> None:
    store, clock = redis_store
    other = RedisKVStore(f"{require(CACHE_ENV)}?key_prefix={store.prefix}", clock=clock)
    try:
        results = await asyncio.gather(*(s.setnx("p/e/l", "lock", i, 60) for i, s in enumerate([store, other] * 25)))
    finally:
        await other.close()
    assert sum(1 for acquired, _ in results if acquired) == 1


@pytest.fixture
async def s3_store() -> AsyncIterator[S3BlobStore]:
    store = S3BlobStore(with_key_prefix(require(STORAGE_ENV), "b" + secrets.token_hex(6)))
    await store.open()
    try:
        yield store
    finally:
        for key in await store.keys():
            await store.delete(key)
        await store.close()


async def test_s3_blobs_round_trip_and_sweep(s3_store: S3BlobStore) -> None:
    await s3_store.put("abc", b"hello")
    assert await s3_store.get("abc") == b"hello"
    assert await s3_store.keys() == ["abc"]
    assert await s3_store.sweep(["abc"], older_than=0) == 0
    assert await s3_store.sweep([], older_than=3600) == 0, "a fresh blob is spared"
    assert await s3_store.sweep([], older_than=-1) == 1
    with pytest.raises(BlobNotFoundError):
        await s3_store.get("abc")
    assert await s3_store.delete("abc") is False
    with pytest.raises(ValueError):
        await s3_store.put("../escape", b"x")


async def test_s3_presigned_url_serves_the_bytes(s3_store: S3BlobStore) -> None:
    await s3_store.put("doc", b"presigned bytes")
    name = "r\u00e9sum\u00e9.txt"
    url = await s3_store.presigned_url("doc", expires_seconds=60, filename=name, content_type="text/plain")
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200 and response.content == b"presigned bytes"
    assert response.headers["content-type"].startswith("text/plain")
    assert "UTF-8''r%C3%A9sum%C3%A9.txt" in response.headers["content-disposition"]


async def test_archivist_on_s3_replaces_removes_and_refuses_corrupt_blobs(tmp_path: Path) -> None:
    async with file_server(tmp_path) as server:
        blobs = server.state.extras["archivist"].blobs
        assert isinstance(blobs, S3BlobStore)
        files = server.admin.files
        first = await files.upload(b"one", "doc.txt")
        second = await files.upload(b"two", "doc.txt")
        assert second["id"] == first["id"]
        (key,) = await blobs.keys()
        assert await blobs.get(key) == b"two", "the replaced content's blob is removed"
        await blobs.put(key, b"flipped")
        with pytest.raises(ServiceError) as info:
            await files.fetch(first["id"])
        assert info.value.status_code == 500
        await files.delete(first["id"])
        assert await blobs.keys() == []
    async with file_server(tmp_path / "capped", upload_max_bytes=1024) as server:
        with pytest.raises(ValidationError) as refused:
            await server.admin.files.upload(b"\0" * 1025, "big.bin")
        assert refused.value.status_code == 413
        assert await server.state.extras["archivist"].blobs.keys() == []


async def test_archivist_presigned_downloads(tmp_path: Path) -> None:
    url = with_key_prefix(require(STORAGE_ENV), "p" + secrets.token_hex(6)) + "&presign=true"
    async with file_server(tmp_path, storage_url=url) as server:
        record = await server.admin.files.upload(b"direct", "direct.bin")
        link = await server.admin.files.download(record["id"])
        assert "X-Amz-Signature=" in link["download_url"]
        async with httpx.AsyncClient() as http:
            response = await http.get(link["download_url"])
        assert response.content == b"direct"


def _message(to: str = "ada@example.com") -> MailMessage:
    ident = secrets.token_hex(4) + "-0000-4000-8000-" + secrets.token_hex(6)
    return MailMessage(
        message_id=ident,
        to=(to,),
        from_address="team@example.com",
        template_alias="welcome",
        subject="Welcome",
        text_body="Hello",
        html_body="<p>Hello</p>",
        model={"name": "Ada"},
        submitted_at=datetime.now(timezone.utc),
    )


async def _smtp(url: str, clock: FakeClock) -> tuple[Database, SmtpMailStore]:
    db = Database("sqlite+aiosqlite://")
    await db.create_all()
    store = SmtpMailStore(url, clock=clock)
    store._db = db  # delivery rounds run by hand here, without the background task
    return db, store


async def test_smtp_delivers_once_and_records_it() -> None:
    db, store = await _smtp(require(MAIL_ENV), FakeClock())
    try:
        message = _message()
        async with db.begin() as conn:
            await store.submit(conn, message)
        assert await store.deliver_pending() == 1
        assert await store.deliver_pending() == 0, "a delivered message is not sent again"
        assert len(delivered_to_sink(message.message_id)) == 1
        async with db.begin() as conn:
            items, _ = await store.outbox(conn, limit=10)
            health = await store.check(conn)
        assert items[0]["delivered"] is True and items[0]["delivery_error"] is None
        assert health == {"status": "up", "outbox": "up", "smtp": "up"}
    finally:
        await db.dispose()


async def test_smtp_relay_down_is_recorded_retried_and_degraded() -> None:
    clock = FakeClock()
    port = free_port()  # nothing listens there
    db, store = await _smtp(f"smtp://user:s3cret-pass@127.0.0.1:{port}?timeout=2", clock)
    try:
        message = _message()
        async with db.begin() as conn:
            await store.submit(conn, message)
        assert await store.deliver_pending() == 0
        async with db.begin() as conn:
            items, _ = await store.outbox(conn, limit=10)
            health = await store.check(conn)
        assert items[0]["delivered"] is False and items[0]["delivery_error"]
        assert "s3cret-pass" not in items[0]["delivery_error"] and "s3cret-pass" not in repr(store)
        assert health["status"] == "degraded" and health["smtp"] == "down" and health["outbox"] == "up"
        assert await store.deliver_pending() == 0, "not retried before its backoff"
        # The relay comes back: point the store at it and let the backoff pass.
        store.relay = type(store.relay)(host="127.0.0.1", port=int(require(MAIL_ENV).rsplit(":", 1)[1]))
        clock.advance(SmtpMailStore.BACKOFF_BASE_SECONDS + 1)
        assert await store.deliver_pending() == 1
        async with db.begin() as conn:
            row = (await conn.execute(outbox_table.select())).mappings().one()
        assert row["delivered"] is True and row["delivery_error"] is None
    finally:
        await db.dispose()


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("cache_url", "memcached://h:1", "redis://"),
        ("cache_url", "redis://h:1/zero", "database number"),
        ("storage_url", "s3://B?endpoint_url=http://h", "bucket name"),
        ("storage_url", "s3://bucket?endpoint=http://h", "unknown parameter"),
        ("storage_url", "s3://key:secret-value@bucket", "credentials"),
        ("storage_url", "ftp://x", "s3://"),
        ("mail_url", "smtp://user:pw-secret@:25", "host"),
        ("mail_url", "smtps://h:465?starttls=true", "starttls"),
        ("database_url", "mysql://u:pw-secret@h/db", "postgresql+asyncpg"),
    ],
)
def test_bad_backend_urls_name_the_field_and_hide_the_value(field: str, value: str, reason: str) -> None:
    with pytest.raises(SettingsError) as info:
        LocalSettings(**{field: value})
    text = str(info.value)
    assert field in text and reason in text
    assert "secret" not in text and "pw-" not in text


def test_info_names_every_backend_without_secrets(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOMINUS_")}
    env.update(
        DOMINUS_LOCAL_DATABASE_URL="postgresql://app:db-secret@db.internal:5432/dominus",
        DOMINUS_LOCAL_CACHE_URL="redis://:redis-secret@cache.internal:6379/2",
        DOMINUS_LOCAL_STORAGE_URL="s3://files-bucket/prod?endpoint_url=http://s3.internal:9000&region=eu-west-1",
        DOMINUS_LOCAL_MAIL_URL="smtp://mailer:mail-secret@smtp.internal:587?starttls=true",
        DOMINUS_LOCAL_PSK="p" * 64,
    )
    out = subprocess.run(
        [sys.executable, "-m", "dominus_local.cli", "info", "--data-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "database: postgresql: postgresql+asyncpg://app:***@db.internal:5432/dominus" in out
    assert "cache: redis: redis://:***@cache.internal:6379/2" in out
    assert "storage: s3: bucket files-bucket, prefix prod/, endpoint http://s3.internal:9000, region eu-west-1" in out
    assert "mail: smtp: smtp://smtp.internal:587?starttls=true" in out
    assert "secret" not in out and "p" * 64 not in out
    defaults = subprocess.run(
        [sys.executable, "-m", "dominus_local.cli", "info", "--data-dir", str(tmp_path)],
        env={k: v for k, v in env.items() if not k.startswith("DOMINUS_")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "database: sqlite:" in defaults and "cache: sqlite:" in defaults
    assert f"storage: directory: {tmp_path / 'blobs'}" in defaults and "mail: outbox:" in defaults


@pytest.mark.parametrize(
    ("setting", "template", "error"),
    [
        ("cache_url", "redis://:hidden-pass@127.0.0.1:{port}/0", "redis.exceptions.ConnectionError"),
        (
            "storage_url",
            "s3://unreachable?endpoint_url=http://127.0.0.1:{port}",
            "botocore.exceptions.EndpointConnectionError",
        ),
    ],
)
async def test_an_unreachable_backend_stops_the_start_without_leaking_secrets(
    setting: str, template: str, error: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    from dominus_local import create_app

    module, _, name = error.rpartition(".")
    expected: type[BaseException] = getattr(importlib.import_module(module), name)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    app = create_app(LocalSettings(psk="q" * 64, **{setting: template.format(port=free_port())}))
    with pytest.raises(expected) as info:
        await app.startup()
    await app.shutdown()
    assert "hidden-pass" not in str(info.value) and "hidden-pass" not in caplog.text


def test_cli_refuses_a_bad_url_by_name_without_a_traceback() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOMINUS_")}
    env["DOMINUS_LOCAL_MAIL_URL"] = "smtp://mailer:very-secret@:25"
    done = subprocess.run(
        [sys.executable, "-m", "dominus_local.cli", "info"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "invalid settings" in done.stderr and "mail_url" in done.stderr and "needs a host" in done.stderr
    assert "very-secret" not in done.stderr + done.stdout and "Traceback" not in done.stderr
