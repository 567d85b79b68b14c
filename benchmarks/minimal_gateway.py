"""The thinnest gateway doing the work no gateway can skip, as a baseline for ``dominus-local serve``.

Pure ASGI under uvicorn: read the base64 JSON body, verify the RS256 Bearer token (PyJWT, key loaded once),
make ONE call to the store with the driver dominus-local uses, frame the envelope. No idempotency, no
validation, no routing table. ``MINIMAL_JWKS`` (the server's key set), ``MINIMAL_DATABASE`` (a PostgreSQL DSN
or a SQLite file holding ``MINIMAL_QUERY_TABLE``/``MINIMAL_INSERT_TABLE``), ``MINIMAL_CACHE`` (a ``redis://``
URL, or a SQLite file for a key-value table of its own).
"""

import base64
import json
import os
import uuid
from typing import Any

import jwt

KEY = jwt.PyJWK(json.loads(os.environ["MINIMAL_JWKS"])["keys"][0]).key
DB, CACHE = os.environ["MINIMAL_DATABASE"], os.environ["MINIMAL_CACHE"]
PREFIX = os.environ.get("MINIMAL_KEY_PREFIX", "")
QUERY_T, INSERT_T = os.environ["MINIMAL_QUERY_TABLE"], os.environ["MINIMAL_INSERT_TABLE"]
PG = DB.startswith("postgres")
P = ("$1", "$2", "$3", "$4", "$5") if PG else ("?",) * 5
QUERY = f"SELECT *, count(*) OVER () AS total FROM {QUERY_T} WHERE account = {P[0]} ORDER BY id LIMIT 50"
INSERT = f"INSERT INTO {INSERT_T} (account, status, amount, note) VALUES ({', '.join(P[:4])}) RETURNING *"
store: dict[str, Any] = {}


async def startup() -> None:
    if PG:
        import asyncpg  # type: ignore[import-untyped,unused-ignore]

        store["pool"] = await asyncpg.create_pool(DB, min_size=10, max_size=20)
    else:
        import aiosqlite

        store["sql"] = conn = await aiosqlite.connect(DB, isolation_level=None)
        await conn.execute("PRAGMA journal_mode=WAL")
    if CACHE.startswith("redis"):
        import redis.asyncio as aioredis

        store["redis"] = aioredis.Redis.from_url(CACHE)
    else:
        store["kv"] = kv = await aiosqlite.connect(CACHE, isolation_level=None)
        await kv.execute("PRAGMA journal_mode=WAL")
        await kv.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT, exp INTEGER)")


async def sql(statement: str, *args: Any) -> list[dict[str, Any]]:
    if PG:
        return [dict(r) for r in await store["pool"].fetch(statement, *args)]
    async with store["sql"].execute(statement, args) as cursor:
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r, strict=True)) for r in await cursor.fetchall()]


async def handle(path: str, body: dict[str, Any]) -> Any:
    if path.endswith("/get"):
        if "redis" in store:
            value = await store["redis"].get(PREFIX + body["logical_path"])
        else:
            async with store["kv"].execute("SELECT v FROM kv WHERE k = ?", (body["logical_path"],)) as c:
                value = (await c.fetchone() or [None])[0]
        return {"found": value is not None, "value": value.decode() if isinstance(value, bytes) else value}
    if path.endswith("/set"):
        if "redis" in store:
            await store["redis"].set(PREFIX + body["logical_path"], body["value"], ex=body["ttl_seconds"])
        else:
            await store["kv"].execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)",
                                      (body["logical_path"], json.dumps(body["value"]), body["ttl_seconds"]))
        return {"ok": True}
    if path.endswith("/query"):
        rows = await sql(QUERY, body["filters"]["account"])
        return {"items": [{k: str(v) for k, v in r.items() if k != "total"} for r in rows],
                "total": rows[0]["total"] if rows else 0, "limit": 50, "offset": 0}
    d = body["data"]
    return {k: str(v) for k, v in (await sql(INSERT, d["account"], d["status"], d["amount"], d["note"]))[0].items()}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await startup()
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["method"] == "GET":  # the readiness probe
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return
    raw, more = b"", True
    while more:
        message = await receive()
        raw, more = raw + message.get("body", b""), message.get("more_body", False)
    try:
        auth = dict(scope["headers"]).get(b"authorization", b"")[7:].decode()
        jwt.decode(auth, KEY, algorithms=["RS256"], options={"verify_aud": False})
        envelope = {"success": True, "data": await handle(scope["path"], json.loads(base64.b64decode(raw)))}
        status = 200
    except Exception as exc:
        envelope, status = {"success": False, "error": type(exc).__name__}, 500
    out = base64.b64encode(json.dumps(envelope, default=str).encode())
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain"), (b"content-length", str(len(out)).encode()),
        (b"x-request-id", str(uuid.uuid4()).encode())]})
    await send({"type": "http.response.body", "body": out})
