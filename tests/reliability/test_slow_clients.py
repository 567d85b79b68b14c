"""Slow, oversized and departing clients of ``dominus-local serve`` over real sockets (``tests/servers.py``).

- open-SQL runaway cancelled: a client sends an endless ``WITH RECURSIVE`` and gives up after a second; the
  server stops the statement (its own limit is far away) and the next open-SQL call answers at once;
- slow clients: connections that trickle a request's headers, or its body, are answered 408 ``request_timeout``
  (headers: the connection is closed) within the configured timeouts, while health keeps answering;
- a request head over the size limit is answered with a 431 envelope, not a connection reset;
- connections beyond the concurrency cap make requests 503 until they close.

The timeouts are set low (1 s) through the ``DOMINUS_LOCAL_*`` settings, as an operator would set them.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import httpx
import pytest

from dominus_fastapi import Dominus, DominusTimeoutError
from tests.conftest import make_fast
from tests.reliability.ledger import TALLY, WATCH
from tests.servers import LocalServer

pytestmark = pytest.mark.slow

SLOW_SUITE = "faults: slow clients"
RUNAWAY_SUITE = "faults: open-SQL runaway cancelled"

SLOW_CLIENTS = 50
"""Slow connections of each kind (headers, body) held open at once."""
CLIENT_TIMEOUT = 1.0
"""Seconds the header and body timeouts are set to."""
DROP_BOUND = 10.0
"""Generous bound on when a slow connection must have been answered or closed (the timeout plus slack)."""
HEALTH_BOUND = 5.0
"""Generous bound on a health check's answer while the slow connections are held."""
RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) AS n FROM c"
SERVER_ENV = {
    "DOMINUS_LOCAL_HEADER_TIMEOUT": str(CLIENT_TIMEOUT),
    "DOMINUS_LOCAL_BODY_TIMEOUT": str(CLIENT_TIMEOUT),
    "DOMINUS_LOCAL_STATEMENT_TIMEOUT": "120",
    "DOMINUS_LOCAL_MAX_HEADER_BYTES": str(64 * 1024),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    local = LocalServer(data_dir=tmp_path_factory.mktemp("slow") / "data", env=SERVER_ENV)
    local.start()
    assert local.psk is not None
    WATCH.secret(local.psk)
    try:
        yield local
    finally:
        WATCH.capture("dominus-local serve output", local.output())
        local.stop()


def _envelope(raw: bytes) -> tuple[int, dict[str, object]]:
    """Status and decoded envelope of one raw HTTP answer (the body is base64 of JSON, spec 3.2)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(base64.b64decode(body))


def _read_until_closed(sock: socket.socket, deadline: float) -> tuple[bytes, bool]:
    """Everything the server sends until it closes the connection; ``closed`` is False at the deadline."""
    chunks: list[bytes] = []
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, min(0.5, deadline - time.monotonic())))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return b"".join(chunks), True
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
    return b"".join(chunks), False


def _slow_client(port: int, kind: str) -> tuple[bool, str]:
    """One connection that trickles its headers (``kind="headers"``) or its body (``"body"``), a byte every
    0.2 s, until the server answers or closes; returns (rule held, description)."""
    started = time.monotonic()
    deadline = started + DROP_BOUND
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        if kind == "headers":
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            trickle = b"X-Slow: " + b"a" * 200
        else:
            sock.sendall(
                b"POST /api/whisperer/get HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                b"Content-Length: 1000\r\n\r\n"
            )
            trickle = b"e" * 1000
        answered = b""
        for byte in trickle:
            if time.monotonic() > deadline:
                break
            try:
                sock.sendall(bytes([byte]))
                sock.settimeout(0.2)
                answered = sock.recv(65536)
            except TimeoutError:
                continue  # nothing from the server yet: send the next byte
            except OSError:
                break  # reset by the server
            break  # an answer, or b"": closed
        rest, closed = _read_until_closed(sock, deadline)
        answered += rest
    took = time.monotonic() - started
    status, envelope = _envelope(answered) if answered else (0, {})
    ok = closed and took < DROP_BOUND and status == 408 and envelope.get("code") == "request_timeout"
    return ok, f"slow {kind}: status {status}, closed {closed} after {took:.1f} s"


async def test_slow_clients_are_answered_408_and_dropped_while_health_answers(server: LocalServer) -> None:
    results: list[tuple[bool, str]] = []
    health: list[float] = []

    async def slow(kind: str) -> None:
        results.append(await anyio.to_thread.run_sync(_slow_client, server.port, kind, limiter=limiter))

    async def probe_health(http: httpx.AsyncClient, stop: anyio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            response = await http.get("/api/health", timeout=HEALTH_BOUND)
            health.append(time.monotonic() - started if response.status_code == 200 else float("inf"))
            await anyio.sleep(0.1)

    limiter = anyio.CapacityLimiter(2 * SLOW_CLIENTS)
    stop = anyio.Event()
    async with httpx.AsyncClient(base_url=server.url) as http, anyio.create_task_group() as group:
        # The probe's connection is opened before the load: the server gives a new connection the header
        # timeout (1 s here) to send its request, which this process's own hundred client threads could make
        # it miss between connecting and writing.
        assert (await http.get("/api/health", timeout=HEALTH_BOUND)).status_code == 200
        group.start_soon(probe_health, http, stop)
        async with anyio.create_task_group() as clients:
            for index in range(SLOW_CLIENTS):
                clients.start_soon(slow, "headers")
                clients.start_soon(slow, "body")
                if index % 10 == 9:
                    await anyio.sleep(0)
        stop.set()
    failures = [what for ok, what in results if not TALLY.record(SLOW_SUITE, ok, what)]
    healthy = bool(health) and max(health) < HEALTH_BOUND
    TALLY.record(SLOW_SUITE, healthy, f"health while slow clients were held: {len(health)} answers")
    assert len(results) == 2 * SLOW_CLIENTS
    assert not failures, failures[:5]
    assert healthy, health


def test_an_oversized_request_head_gets_a_431_envelope(server: LocalServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        head = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * (70 * 1024) + b"\r\n\r\n"
        sock.sendall(head)
        answered, closed = _read_until_closed(sock, time.monotonic() + DROP_BOUND)
    status, envelope = _envelope(answered) if answered else (0, {})
    ok = closed and status == 431 and envelope.get("code") == "payload_too_large"
    TALLY.record(SLOW_SUITE, ok, f"70 KiB head: status {status}")
    assert ok, answered[:300]
    assert httpx.get(f"{server.url}/api/health", timeout=HEALTH_BOUND).status_code == 200


def test_connections_beyond_the_concurrency_cap_are_refused_then_served_again(tmp_path: Path) -> None:
    cap = 8
    env = {**SERVER_ENV, "DOMINUS_LOCAL_LIMIT_CONCURRENCY": str(cap), "DOMINUS_LOCAL_HEADER_TIMEOUT": "30"}
    with LocalServer(data_dir=tmp_path / "data", env=env) as capped:
        assert capped.psk is not None
        WATCH.secret(capped.psk)
        held = [socket.create_connection(("127.0.0.1", capped.port), timeout=5) for _ in range(cap)]
        try:
            time.sleep(0.2)  # let the server accept them all
            refused = httpx.get(f"{capped.url}/api/health", timeout=HEALTH_BOUND).status_code
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.2)
        served = httpx.get(f"{capped.url}/api/health", timeout=HEALTH_BOUND).status_code
        WATCH.capture("dominus-local serve output", capped.output())
    ok = refused == 503 and served == 200
    TALLY.record(SLOW_SUITE, ok, f"concurrency cap {cap}: {refused} while full, {served} after")
    assert ok, (refused, served)


async def test_open_sql_runaway_cancelled_when_the_client_gives_up(server: LocalServer) -> None:
    client = Dominus(base_url=server.url, token=server.psk)
    make_fast(client)
    try:
        await client.open.execute("CREATE TABLE IF NOT EXISTS visits (page TEXT)")
        failures = []
        for attempt in range(3):
            with pytest.raises(DominusTimeoutError):
                await client.open.execute(RUNAWAY, timeout=1.0, max_retries=0)
            started = time.monotonic()
            found = await client.open.execute("SELECT count(*) AS n FROM visits", timeout=DROP_BOUND)
            took = time.monotonic() - started
            # The server's own limit is 120 s: only the client's departure can have stopped the runaway.
            ok = found["rows"] == [{"n": 0}] and took < DROP_BOUND
            if not TALLY.record(RUNAWAY_SUITE, ok, f"attempt {attempt}: {took:.1f} s"):
                failures.append(f"attempt {attempt}: next call took {took:.1f} s")
        assert not failures
    finally:
        await client.aclose()
