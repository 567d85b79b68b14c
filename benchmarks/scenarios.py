"""The scenarios. Each returns :class:`~benchmarks.harness.Row` objects: every variant at every concurrency,
repeated, with the baseline measured in the same repeat, right before the variants, at the same concurrency.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import bcrypt
import httpx

from benchmarks import processes
from benchmarks.harness import Call, Row, Sample, merge, peak_rss_mib, reset_peak_rss, run_load
from benchmarks.loadgen import RawGet
from dominus_fastapi import Dominus
from dominus_fastapi.core import wire

KEY = "bench/key"
SERVED = "SDK redis.get, dominus-local serve"
WHISPERER_GET = "/api/whisperer/get"
FASTAPI_DEPENDENCY = "bare endpoint + one trivial FastAPI dependency"


@dataclass
class Options:
    repeats: int = 3
    duration: float = 2.0
    concurrency: tuple[int, ...] = (1, 16, 64)
    slices: int = 4
    log: Callable[[str], None] = print


def _decode(content: bytes) -> Any:
    envelope = json.loads(base64.b64decode(content))
    if envelope.get("success") is not True:
        raise RuntimeError(f"call failed: {envelope}")
    return envelope["data"]


async def _measure_all(
    scenario: str,
    variants: dict[str, tuple[Call, int]],
    baseline: str,
    options: Options,
    *,
    rss_pids: dict[str, int] | None = None,
    notes: dict[str, str] | None = None,
    turns: int | None = None,
) -> list[Row]:
    """Every variant at every concurrency, ``repeats`` times, in an interleaved order (baseline first), in
    ``turns`` slices per repeat (default ``options.slices``)."""
    turns = turns or options.slices
    rows: dict[tuple[str, int], Row] = {}
    for c in options.concurrency:
        for name in variants:
            rows[name, c] = Row(scenario, name, c, note=(notes or {}).get(name, ""))
    for repeat in range(options.repeats):
        for c in options.concurrency:
            # Variants take turns in short slices, so that a burst of load from elsewhere on a shared machine
            # hits them alike instead of whichever happened to run at that moment.
            slices: dict[str, list[Sample]] = {name: [] for name in variants}
            names = list(variants)
            for turn in range(turns):
                # Each slice starts with another variant, so that none always runs first, or always right after
                # the same other one.
                shift = turn % len(names)
                for name in names[shift:] + names[:shift]:
                    call, warmup = variants[name]
                    slices[name].append(
                        await run_load(
                            call,
                            c,
                            duration=options.duration / turns,
                            warmup=warmup if turn == 0 else 0,
                            rss_pid=(rss_pids or {}).get(name),
                        )
                    )
            for name in variants:
                sample = merge(slices[name])
                rows[name, c].samples.append(sample)
                options.log(
                    f"  [{scenario}] repeat {repeat + 1} C={c:<3} {name:<44} {sample.rate:9.1f} calls/s "
                    f"p50 {sample.p50_ms:7.2f} ms  p99 {sample.p99_ms:7.2f} ms"
                )
            for name in variants:
                rows[name, c].baseline.append(rows[baseline, c].samples[-1])
    return list(rows.values())


# --- 1. the SDK call ---------------------------------------------------------------------------------------


async def sdk_call(options: Options) -> list[Row]:
    """``redis.get`` through the SDK, a raw pooled httpx client (baseline), a client per call, embedded mode,
    and the SDK against ``dominus-local serve`` in memory: the same server work as embedded mode, over loopback."""
    psk = secrets.token_hex(32)
    with processes.standin() as server, processes.LocalServe(psk, in_memory=True) as local_server:
        url = server.url
        target = url + WHISPERER_GET
        async with httpx.AsyncClient() as once:
            token = _decode((await once.post(url + "/jwt/mint", content=wire.EMPTY_BODY)).content)["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": wire.CONTENT_TYPE, "Accept": "text/plain"}
        body = {"logical_path": KEY, "nudge": False}
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        raw = httpx.AsyncClient(limits=limits, timeout=30.0)
        sdk = Dominus(token="bench-psk", base_url=url)
        embedded = Dominus(base_url="embedded:")
        await embedded.redis.set(KEY, "v" * 64)
        served = Dominus(token=psk, base_url=local_server.url)
        await served.redis.set(KEY, "v" * 64)

        async def raw_call() -> None:
            response = await raw.post(target, content=wire.encode_body(body), headers=headers)
            _decode(response.content)

        async def per_call() -> None:
            async with httpx.AsyncClient(timeout=30.0) as client:
                response = await client.post(target, content=wire.encode_body(body), headers=headers)
            _decode(response.content)

        async def sdk_get() -> None:
            if not (await sdk.redis.get(KEY))["found"]:
                raise RuntimeError("stand-in lost the key")

        async def embedded_get() -> None:
            if not (await embedded.redis.get(KEY))["found"]:
                raise RuntimeError("embedded instance lost the key")

        async def served_get() -> None:
            if not (await served.redis.get(KEY))["found"]:
                raise RuntimeError("dominus-local serve lost the key")

        try:
            return await _measure_all(
                "1 SDK call",
                {
                    "raw pooled httpx (baseline)": (raw_call, 5),
                    "SDK redis.get": (sdk_get, 5),
                    "client per call (reference pattern)": (per_call, 0),
                    "SDK redis.get, embedded mode": (embedded_get, 5),
                    SERVED: (served_get, 5),
                },
                "raw pooled httpx (baseline)",
                options,
                notes={
                    "SDK redis.get, embedded mode": "real dominus_local in-process, in memory",
                    SERVED: "the same server, in memory, as another process on loopback",
                },
            )
        finally:
            await raw.aclose()
            await sdk.aclose()
            await embedded.aclose()
            await served.aclose()


# --- 2. the token ------------------------------------------------------------------------------------------


async def token(options: Options, *, callers: int = 1000, mint_delay: float = 0.05) -> tuple[list[Row], list[int]]:
    """``callers`` concurrent first calls on a fresh client (the mint takes ``mint_delay`` s at the stand-in);
    baseline: the same number of concurrent calls on the same client once it holds its token."""
    first = Row("2 token", f"{callers:,} concurrent first calls, fresh client", callers)
    warm = Row("2 token", f"{callers:,} concurrent calls, token cached (baseline)", callers)
    mints: list[int] = []
    with processes.standin(mint_delay) as server:
        async with httpx.AsyncClient() as stats:

            async def minted() -> int:
                return int((await stats.get(server.url + "/stats")).json()["mints"])

            for repeat in range(options.repeats):
                before = await minted()
                async with Dominus(token="bench-psk", base_url=server.url) as client:
                    # The first burst includes the one warm-up GET (spec 6.5) and the mint.
                    for row in (first, warm):
                        sample = await _burst(lambda: client.redis.get(KEY), callers)
                        row.samples.append(sample)
                    mints.append(await minted() - before)
                first.baseline.append(warm.samples[-1])
                warm.baseline.append(warm.samples[-1])
                options.log(
                    f"  [2 token] repeat {repeat + 1}: first burst {first.samples[-1].elapsed * 1000:.0f} ms, "
                    f"warm burst {warm.samples[-1].elapsed * 1000:.0f} ms, mints {mints[-1]}"
                )
    done = sorted(sample.elapsed * 1000 for sample in first.samples)
    warm_done = sorted(sample.elapsed * 1000 for sample in warm.samples)
    first.note = (
        f"mints per fresh client: {', '.join(map(str, mints))}; all done in {done[len(done) // 2]:,.0f} ms "
        f"(warm: {warm_done[len(warm_done) // 2]:,.0f} ms)"
    )
    return [warm, first], mints


async def _burst(call: Callable[[], Awaitable[Any]], callers: int) -> Sample:
    latencies: list[float] = []
    reset_peak_rss()

    async def one() -> None:
        t0 = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(callers)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return Sample(
        calls=len(latencies),
        elapsed=elapsed,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99) - 1] * 1000,
        rss_mib=peak_rss_mib(),
    )


# --- 3. FastAPI ---------------------------------------------------------------------------------------------


FASTAPI_TURNS = 10
"""Slices per repeat of the FastAPI rows: their differences are a few percent, so the variants alternate more
finely than elsewhere."""


async def fastapi(options: Options) -> list[Row]:
    """``GET /item`` bare vs behind middleware + CurrentUser + cached page guard: both endpoints served by one
    uvicorn process on loopback (``benchmarks.fastapi_app``), driven by the raw keep-alive load generator."""
    from benchmarks.fastapi_app import BARE_PATH, DEPENDENCY_PATH, GUARDED_PATH, PAGE
    from dominus_fastapi.testing import create_test_user

    psk = secrets.token_hex(32)
    with processes.LocalServe(psk, env={"DOMINUS_LOCAL_BCRYPT_ROUNDS": "4"}) as backend:
        async with Dominus(token=psk, base_url=backend.url) as admin:
            user = await create_test_user(admin, pages=[PAGE])
        port = processes.free_port()
        server = processes.Server(
            ["-m", "uvicorn", "--factory", "benchmarks.fastapi_app:both", "--port", str(port),
             "--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"],
            port=port,
            env={"DOMINUS_BASE_URL": backend.url, "DOMINUS_TOKEN": psk},
        ).start()
        try:
            auth = {"Authorization": f"Bearer {user.access_token}"}
            bare = RawGet(port, BARE_PATH, auth)
            dependency = RawGet(port, DEPENDENCY_PATH, auth)
            guarded = RawGet(port, GUARDED_PATH, auth)
            try:
                with processes.cpus_apart(server.pid) as placement:
                    return await _measure_all(
                        "3 FastAPI",
                        {
                            "bare endpoint (baseline)": (bare, 20),
                            FASTAPI_DEPENDENCY: (dependency, 20),
                            "middleware + CurrentUser + page guard": (guarded, 20),
                        },
                        "bare endpoint (baseline)",
                        options,
                        rss_pids={"bare endpoint (baseline)": server.pid, FASTAPI_DEPENDENCY: server.pid,
                                  "middleware + CurrentUser + page guard": server.pid},
                        notes={"bare endpoint (baseline)": placement,
                               "middleware + CurrentUser + page guard": "same app server process as the baseline",
                               FASTAPI_DEPENDENCY: "FastAPI's own cost of any dependency, for reference"},
                        turns=FASTAPI_TURNS,
                    )
            finally:
                await bare.aclose()
                await dependency.aclose()
                await guarded.aclose()
        finally:
            server.stop()


# --- 4. dominus_local ----------------------------------------------------------------------------------------


TABLE = "bench_orders"
INSERTS = "bench_order_inserts"
ROWS = 20_000
MATCHES = 20


async def local(options: Options) -> tuple[list[Row], dict[str, float]]:
    """Whisperer get/set, Scribe indexed query and insert, Portal login against ``dominus-local serve``
    (SQLite and local files); baseline: the SDK's ``redis.get`` against the stand-in (protocol cost only)."""
    psk = secrets.token_hex(32)
    rows: list[Row] = []
    # The login rows measure one sign-in's own cost, so the per-address limit (a few hundred logins a minute
    # from this one address) is off.
    unthrottled = {"DOMINUS_LOCAL_RATE_LIMIT_ADDRESS_REQUESTS": "0"}
    with processes.standin() as standin, processes.LocalServe(psk, env=unthrottled) as backend:
        client = Dominus(token=psk, base_url=backend.url)
        floor = Dominus(token="bench-psk", base_url=standin.url)
        data_dir = tempfile.mkdtemp(prefix="dominus-bench-embedded-")
        embedded = Dominus(base_url=f"embedded://{data_dir}")
        try:
            await client.redis.set(KEY, "v" * 64)
            await embedded.redis.set(KEY, "v" * 64)
            await _scribe_table(client)
            password = "bench-" + secrets.token_hex(8)
            await client.auth.create_user("benchuser", "benchuser@example.test", password)
            counter = iter(range(10**9))

            async def floor_get() -> None:
                await floor.redis.get(KEY)

            async def get() -> None:
                await client.redis.get(KEY)

            async def embedded_get() -> None:
                await embedded.redis.get(KEY)

            async def put() -> None:
                await client.redis.set(f"bench/set/{next(counter) % 1000}", "v" * 64, ttl=600)

            async def query() -> None:
                page = await client.db.query(TABLE, filters={"account": next(counter) % (ROWS // MATCHES)}, limit=50)
                if page["total"] != MATCHES:
                    raise RuntimeError(f"indexed query found {page['total']} rows, expected {MATCHES}")

            async def insert() -> None:
                n = next(counter)
                await client.db.insert(INSERTS, {"account": n % 1000, "status": "open", "amount": "1.50", "note": "x"})

            async def login() -> None:
                await client.portal.login("benchuser", password)

            baseline = "SDK redis.get vs stand-in (baseline)"
            pid = {name: backend.pid for name in ("Whisperer get", "Whisperer set", "Scribe indexed query",
                                                   "Scribe insert", "Portal login (bcrypt cost 12)")}
            rows += await _measure_all(
                "4 dominus_local",
                {
                    baseline: (floor_get, 5),
                    "Whisperer get": (get, 5),
                    "Whisperer get, embedded (same work in-process)": (embedded_get, 5),
                    "Whisperer set": (put, 2),
                    "Scribe indexed query": (query, 2),
                    "Scribe insert": (insert, 2),
                },
                baseline,
                options,
                rss_pids=pid,
                notes={"Whisperer get": "dominus-local serve, SQLite"},
            )
            rows += await _measure_all(
                "4 dominus_local login",
                {baseline: (floor_get, 2), "Portal login (bcrypt cost 12)": (login, 1)},
                baseline,
                options,
                rss_pids=pid,
            )
        finally:
            await client.aclose()
            await floor.aclose()
            await embedded.aclose()
    return rows, {"bcrypt_cost12_ms": _bcrypt_ms(12), "bcrypt_cost4_ms": _bcrypt_ms(4)}


async def _scribe_table(client: Dominus) -> None:
    """``TABLE`` with ``ROWS`` rows, ``MATCHES`` per indexed ``account``; ``INSERTS`` (same shape) for inserts,
    so that the query's exact totals never change."""
    columns: list[dict[str, Any]] = [
        {"name": "id", "type": "bigserial", "primary_key": True},
        {"name": "account", "type": "integer", "nullable": False},
        {"name": "status", "type": "varchar(20)"},
        {"name": "amount", "type": "numeric(12,2)"},
        {"name": "note", "type": "text"},
    ]
    await client.ddl.create_table("public", TABLE, columns)
    await client.ddl.create_table("public", INSERTS, columns)
    keys = ROWS // MATCHES
    batch = 1000
    for start in range(0, ROWS, batch):
        await client.db.bulk_insert(
            TABLE,
            [{"account": i % keys, "status": "open", "amount": "2.50", "note": f"n{i}"}
             for i in range(start, start + batch)],
        )
    await client.ddl.create_index("public", TABLE, f"{TABLE}_account", ["account"])


def _bcrypt_ms(cost: int) -> float:
    hashed = bcrypt.hashpw(b"benchmark-password", bcrypt.gensalt(cost))
    started = time.perf_counter()
    for _ in range(3):
        bcrypt.checkpw(b"benchmark-password", hashed)
    return (time.perf_counter() - started) / 3 * 1000


__all__ = ["Options", "fastapi", "local", "sdk_call", "token"]
