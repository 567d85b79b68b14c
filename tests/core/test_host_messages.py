"""Connection, warm-up and missing-credential errors name the host the client resolved, and say when it is
the hosted platform only because ``DOMINUS_BASE_URL`` is not set (spec 2.2). They never carry a secret, and
never show a missing code as ``None``.

A connection refused on a loopback port is real; the hosted platform is never contacted (respx stands in for
it, as for a timeout, faults the local server cannot produce on demand).
"""

from __future__ import annotations

import logging

import httpx
import pytest
import respx
from fastapi import FastAPI

from dominus_fastapi import (
    AuthenticationError,
    CircuitOpenError,
    Dominus,
    DominusConnectionError,
    DominusTimeoutError,
    dominus_lifespan,
    setup_dominus,
)
from dominus_fastapi.core.settings import PRODUCTION_BASE_URL, PRODUCTION_GATEWAY_URL, DominusSettings
from tests.conftest import make_fast

DEFAULT_NOTE = f"DOMINUS_BASE_URL is not set: using the hosted platform at {PRODUCTION_BASE_URL}"
CLOSED = "http://127.0.0.1:9"
PSK = "p" * 64
PING = "/api/health/ping"


def test_the_description_of_each_kind_of_host() -> None:
    assert DominusSettings().resolve_hosts().describe() == DEFAULT_NOTE
    assert DominusSettings().resolve_hosts().describe("gateway") == (
        f"DOMINUS_BASE_URL is not set: using the hosted platform's gateway at {PRODUCTION_GATEWAY_URL}"
    )
    explicit = DominusSettings(base_url="http://127.0.0.1:8001", gateway_url="http://127.0.0.1:8002")
    assert explicit.resolve_hosts().describe() == "server: http://127.0.0.1:8001"
    assert explicit.resolve_hosts().describe("gateway") == "gateway: http://127.0.0.1:8002"
    assert DominusSettings(base_url="embedded:").resolve_hosts().describe() == "the embedded server (embedded:)"
    with_password = DominusSettings(base_url="http://app:s3cret-pass@127.0.0.1:8001/base")
    assert with_password.resolve_hosts().describe() == "server: http://***@127.0.0.1:8001/base"


@pytest.mark.parametrize("where", ["default", "explicit"])
async def test_a_missing_psk_names_the_host(where: str) -> None:
    client = Dominus() if where == "default" else Dominus(base_url="http://127.0.0.1:8001")
    try:
        with pytest.raises(AuthenticationError) as caught:
            await client.ddl.add_table("orders", [{"name": "id", "type": "serial"}])
    finally:
        await client.aclose()
    note = DEFAULT_NOTE if where == "default" else "server: http://127.0.0.1:8001"
    assert caught.value.message == (f"No PSK configured: pass token= to Dominus(...) or set DOMINUS_TOKEN ({note})")
    assert str(caught.value).endswith("at /api/smith/schema/create-table")


async def test_a_refused_connection_names_the_host_and_no_secret() -> None:
    client = Dominus(
        base_url="http://svc:s3cret-pass@127.0.0.1:9",
        token=PSK,
        max_retries=0,
        settings=DominusSettings(cold_start_budget=0),
    )
    make_fast(client)
    try:
        with pytest.raises(DominusConnectionError) as caught:
            await client.db.tables()
    finally:
        await client.aclose()
    text = str(caught.value)
    assert text.startswith("Connection failed (ConnectError: ")
    assert "; server: http://***@127.0.0.1:9)" in text
    assert PSK not in text and "s3cret" not in text and "None" not in text


async def test_the_hosted_platform_by_default_is_named_as_such() -> None:
    client = Dominus(token=PSK, max_retries=0, settings=DominusSettings(cold_start_budget=0))
    make_fast(client)
    try:
        with respx.mock(assert_all_called=False) as mock:
            mock.route(host=httpx.URL(PRODUCTION_BASE_URL).host).mock(side_effect=httpx.ConnectError("no route"))
            with pytest.raises(DominusConnectionError) as refused:
                await client.db.tables()
            mock.route(host=httpx.URL(PRODUCTION_GATEWAY_URL).host).mock(side_effect=httpx.ReadTimeout("slow"))
            client._transport.warm = True  # past the health check: the next call mints at the gateway
            with pytest.raises(DominusTimeoutError) as slow:
                await client.db.tables()
    finally:
        await client.aclose()
    assert refused.value.message == f"Connection failed (ConnectError: no route; {DEFAULT_NOTE})"
    assert slow.value.message == (
        "Request timed out (ReadTimeout; DOMINUS_BASE_URL is not set: using the hosted platform's gateway at "
        f"{PRODUCTION_GATEWAY_URL})"
    )


async def test_an_open_circuit_names_the_host() -> None:
    client = Dominus(base_url=CLOSED, token=PSK, max_retries=0, settings=DominusSettings(cold_start_budget=0))
    make_fast(client)
    try:
        for _ in range(5):
            with pytest.raises(DominusConnectionError):
                await client.db.tables()
        with pytest.raises(CircuitOpenError) as caught:
            await client.db.tables()
    finally:
        await client.aclose()
    assert caught.value.message.endswith(f"consecutive failures (server: {CLOSED})")


@pytest.mark.parametrize("where", ["default", "explicit"])
async def test_warm_up_failures_name_the_host_without_code_none(
    where: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DOMINUS_COLD_START_BUDGET", "0")
    if where == "default":
        # No PSK and no host: nothing is sent; the message says where the client would have gone.
        app = FastAPI(lifespan=dominus_lifespan())
    else:
        app = FastAPI(lifespan=dominus_lifespan(base_url=CLOSED, token=PSK, max_retries=0))
    with caplog.at_level(logging.WARNING, logger="dominus_fastapi"):
        async with app.router.lifespan_context(app):
            pass
    lines = [r.getMessage() for r in caplog.records if "warm-up" in r.getMessage()]
    assert len(lines) == 1
    if where == "default":
        assert lines[0] == (
            "Dominus warm-up failed: AuthenticationError: No PSK configured: pass token= to Dominus(...) or set "
            f"DOMINUS_TOKEN ({DEFAULT_NOTE}) at {PING}; the client retries on first use"
        )
    else:
        assert lines[0].startswith("Dominus warm-up failed: DominusConnectionError: Connection failed (ConnectError")
        assert lines[0].endswith(f"; server: {CLOSED}) at /api/health; the client retries on first use")
    assert "code None" not in lines[0] and "None" not in lines[0] and PSK not in lines[0]


async def test_strict_warm_up_logs_the_host_and_raises(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DOMINUS_COLD_START_BUDGET", "0")
    app = FastAPI(lifespan=dominus_lifespan(base_url=CLOSED, token=PSK, max_retries=0, strict=True))
    with caplog.at_level(logging.ERROR, logger="dominus_fastapi"), pytest.raises(DominusConnectionError):
        async with app.router.lifespan_context(app):
            pass
    assert f"server: {CLOSED}" in caplog.text and "code None" not in caplog.text


async def test_the_error_handler_log_leaves_out_what_is_unknown(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()
    setup_dominus(app)

    @app.get("/fails")
    async def fails() -> None:
        raise DominusConnectionError(f"Connection failed (ConnectError: refused; server: {CLOSED})")

    transport = httpx.ASGITransport(app=app)
    with caplog.at_level(logging.WARNING, logger="dominus_fastapi"):
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as http:
            assert (await http.get("/fails")).status_code == 502
    assert caplog.records[-1].getMessage() == (
        f"Dominus call failed: DominusConnectionError: Connection failed (ConnectError: refused; server: {CLOSED})"
    )
