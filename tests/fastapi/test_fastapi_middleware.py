"""The session middleware breaks nothing: streaming, background tasks, websockets, context variables, lifespan."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.types import Message

from dominus_fastapi import Dominus
from dominus_fastapi.middleware import SessionConfig, is_loopback_host, same_origin
from dominus_fastapi.testing import APP_ORIGIN, create_test_user
from tests.fastapi.apps import build_app


async def call_asgi(
    app: Any, path: str, *, headers: list[tuple[bytes, bytes]] | None = None, method: str = "GET"
) -> list[Message]:
    """Drive one HTTP request through ``app`` and return every message it sent, in order."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), *(headers or [])],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    sent: list[Message] = []
    received = False

    async def receive() -> Message:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # a client that stays connected
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@pytest.fixture(params=[True, False], ids=["with-middleware", "without-middleware"])
def with_dominus(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


async def test_streaming_response_is_not_buffered(dominus_base_url: str, with_dominus: bool) -> None:
    app = build_app(with_dominus=with_dominus)
    async with LifespanManager(app) as manager:
        sent = await call_asgi(manager.app, "/stream")
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    chunks = [m["body"] for m in bodies if m["body"]]
    assert chunks == [b"chunk-0;", b"chunk-1;", b"chunk-2;"]
    assert all(m.get("more_body") for m in bodies[:-1]) and not bodies[-1].get("more_body")


async def test_streaming_survives_a_cookie_rewrite(dominus: Dominus, dominus_base_url: str) -> None:
    """The cookie-writing path of the middleware (an invalid cookie is cleared) still streams chunk by chunk."""
    app = build_app()
    async with LifespanManager(app) as manager:
        sent = await call_asgi(manager.app, "/stream", headers=[(b"cookie", b"dominus_session=garbage")])
    start = sent[0]
    cookies = [v.decode() for k, v in start["headers"] if k == b"set-cookie"]
    assert any(c.startswith("dominus_session=") and "Max-Age=0" in c for c in cookies)
    chunks = [m["body"] for m in sent if m["type"] == "http.response.body" and m["body"]]
    assert chunks == [b"chunk-0;", b"chunk-1;", b"chunk-2;"]


async def test_background_task_runs_after_the_response(dominus_base_url: str, with_dominus: bool) -> None:
    app = build_app(with_dominus=with_dominus)
    recorder = app.state.recorder
    async with LifespanManager(app) as manager:
        sent = await call_asgi(manager.app, "/background")
    assert json.loads(b"".join(m.get("body", b"") for m in sent)) == {"queued": True}
    assert recorder.events == ["endpoint", "background"]


async def test_context_variables_flow_as_without_middleware(dominus_base_url: str, with_dominus: bool) -> None:
    app = build_app(with_dominus=with_dominus)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN) as http:
            response = await http.get("/context")
    # The value set by the outer middleware reaches the endpoint, and the endpoint's value is visible
    # to the outer middleware afterwards: everything ran in one task and one context.
    assert response.json() == {"seen": "outer"}
    assert app.state.recorder.seen_after == ["endpoint"]


async def websocket_exchange(app: Any, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
        "subprotocols": [],
    }
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    for message in ({"type": "websocket.connect"}, {"type": "websocket.receive", "text": "hi"}):
        inbox.put_nowait(message)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, inbox.get, send), timeout=30)
    return sent


async def test_websocket_passes_through_and_sees_the_user(dominus: Dominus, dominus_base_url: str) -> None:
    user = await create_test_user(dominus, tenants=["acme"])
    app = build_app()
    async with LifespanManager(app) as manager:
        anonymous = await websocket_exchange(manager.app, [])
        cookie = f"dominus_session={user.access_token}".encode()
        signed_in = await websocket_exchange(manager.app, [(b"cookie", cookie)])
        garbage = await websocket_exchange(manager.app, [(b"cookie", b"dominus_session=garbage")])
        same_site = await websocket_exchange(manager.app, [(b"cookie", cookie), (b"origin", b"http://127.0.0.1")])
        cross_site = await websocket_exchange(manager.app, [(b"cookie", cookie), (b"origin", b"https://evil.example")])

    def texts(sent: list[Message]) -> list[str]:
        return [m["text"] for m in sent if m["type"] == "websocket.send"]

    assert [m["type"] for m in anonymous] == ["websocket.accept", "websocket.send", "websocket.send", "websocket.close"]
    assert json.loads(texts(anonymous)[0]) == {"authenticated": False, "id": None}
    assert json.loads(texts(signed_in)[0]) == {"authenticated": True, "id": user.id}
    assert texts(signed_in)[1] == "echo:hi"
    # No Set-Cookie on a websocket handshake; the request is simply anonymous.
    assert json.loads(texts(garbage)[0]) == {"authenticated": False, "id": None}
    assert "headers" not in garbage[0] or not garbage[0]["headers"]
    assert json.loads(texts(same_site)[0]) == {"authenticated": True, "id": user.id}
    assert json.loads(texts(cross_site)[0]) == {"authenticated": False, "id": None}


async def test_lifespan_publishes_and_closes_the_client(dominus_base_url: str) -> None:
    app = build_app()
    async with LifespanManager(app) as manager:
        client = app.state.dominus
        assert isinstance(client, Dominus) and not client.closed
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN) as http:
            assert (await http.get("/public")).status_code == 200
    assert client.closed
    assert not hasattr(app.state, "dominus")


SECURE_BY_URL = {
    "http://127.0.0.1": False,
    "http://localhost:8000": False,
    "http://[::1]:8000": False,
    "http://127.5.6.7": False,
    "http://testserver": True,
    "http://app.example.com": True,
    "https://app.example.com": True,
    "https://127.0.0.1": True,
}


async def test_cookie_secure_flag_follows_the_request(dominus: Dominus, dominus_asgi_app: Any) -> None:
    user = await create_test_user(dominus)
    transport = httpx.ASGITransport(app=dominus_asgi_app)
    for url, secure in SECURE_BY_URL.items():
        async with httpx.AsyncClient(transport=transport, base_url=url) as http:
            login = await http.post("/auth/login", json={"username": user.username, "password": user.password})
        assert login.status_code == 200, url
        for value in login.headers.get_list("set-cookie"):
            assert ("; Secure" in value) is secure, (url, value)
            assert "HttpOnly" in value and "SameSite=Lax" in value


def test_loopback_and_origin_rules() -> None:
    for host in ("localhost", "127.0.0.1", "127.9.9.9", "::1", "[::1]", "api.localhost"):
        assert is_loopback_host(host), host
    for host in ("example.com", "10.0.0.1", "::2", "localhost.example.com"):
        assert not is_loopback_host(host), host

    from starlette.requests import HTTPConnection

    def conn(host: str) -> HTTPConnection:
        return HTTPConnection({"type": "http", "headers": [(b"host", host.encode())], "path": "/", "query_string": b""})

    assert same_origin("https://app.example.com", conn("app.example.com"))
    assert same_origin("http://app.example.com:8000", conn("app.example.com:8000"))
    assert same_origin("https://app.example.com:443", conn("app.example.com"))
    assert not same_origin("https://evil.example.com", conn("app.example.com"))
    assert not same_origin("https://app.example.com.evil.test", conn("app.example.com"))
    assert not same_origin("null", conn("app.example.com"))
    assert same_origin("https://admin.example.com", conn("app.example.com"), ["https://admin.example.com"])
    assert not same_origin("http://admin.example.com", conn("app.example.com"), ["https://admin.example.com"])
    config = SessionConfig(cookie_secure=True)
    assert config.secure_for(conn("127.0.0.1"))
