"""Streamed file downloads: ``files.stream`` and ``file_response`` against a real Archivist.

The answer carries ``Content-Type``, ``Content-Length`` and a ``Content-Disposition`` that no file name can
break out of; a multi-MiB file goes out in pieces, without a second whole copy in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tracemalloc
import urllib.parse
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.responses import StreamingResponse

from dominus_fastapi import (
    Dominus,
    NotFoundError,
    TenantData,
    content_disposition,
    dominus_lifespan,
    file_response,
    setup_dominus,
)
from dominus_fastapi.core.transport import DropAwareASGITransport
from dominus_fastapi.testing import UserFactory, signed_in_client

QUOTED_FALLBACK = re.compile(r'filename="([ !#-\[\]-~]*)"')
"""The ASCII stand-in: a quoted string without ``"`` or ``\\`` inside."""


def build_app() -> FastAPI:
    app = FastAPI(lifespan=dominus_lifespan())
    setup_dominus(app)

    @app.get("/files/{path}")
    async def download(path: str, data: TenantData, inline: bool = False) -> StreamingResponse:
        stream = await data.files.stream(path)
        return file_response(stream, disposition="inline" if inline else "attachment")

    return app


@pytest.fixture
def dominus_app() -> FastAPI:
    return build_app()


def _filename_of(disposition: str) -> str | None:
    """The name an RFC 6266 client reads: ``filename*`` (RFC 5987 ``UTF-8''`` + percent-encoding) wins."""
    match = re.search(r"filename\*=UTF-8''([A-Za-z0-9!#$&+.^_`|~%-]+)$", disposition)
    return urllib.parse.unquote(match.group(1), errors="strict") if match else None


async def test_download_headers_and_body(dominus: Dominus, dominus_user_client: UserFactory) -> None:
    alice = await dominus_user_client(tenants=["alpha"])
    await dominus.files.upload(b"hello, world", "report.txt", "text/plain", category="tenant-alpha")
    answer = await alice.get("/files/report.txt")
    assert answer.status_code == 200
    assert answer.content == b"hello, world"
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.headers["content-length"] == "12"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-disposition"] == (
        "attachment; filename=\"report.txt\"; filename*=UTF-8''report.txt"
    )
    missing = await alice.get("/files/none.txt")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


HOSTILE_NAMES = [
    ('evil"; filename="evil.exe', "evil__ filename__evil.exe"),
    ("résumé 2024.pdf", "r_sum_ 2024.pdf"),
    ("invoice\u202efdp.exe", "invoice_fdp.exe"),
    ("quote's \"double\".txt", "quote's _double_.txt"),
    ("😀 smile.png", "_ smile.png"),
    ("a;b=c,d.txt", "a_b_c_d.txt"),
    ("%2e%2e%2fetc.txt", "_2e_2e_2fetc.txt"),
    ("..", "download"),
    ("\u00a0\u2028line.txt", "__line.txt"),
]


@pytest.mark.parametrize(("name", "fallback"), HOSTILE_NAMES)
async def test_hostile_file_names_cannot_break_the_header(
    dominus: Dominus, dominus_user_client: UserFactory, name: str, fallback: str
) -> None:
    alice = await dominus_user_client(tenants=["alpha"])
    await dominus.files.upload(b"x", name, "application/octet-stream", category="tenant-alpha", path="hostile")
    answer = await alice.get("/files/hostile")
    assert answer.status_code == 200 and answer.content == b"x"
    header = answer.headers["content-disposition"]
    assert header.isascii() and "\r" not in header and "\n" not in header
    assert header.startswith("attachment; ")
    match = QUOTED_FALLBACK.search(header)
    assert match is not None and match.group(1) == fallback
    assert header.count("filename=") == 1 and header.count("filename*=") == 1
    expected = "".join("_" if ch in "\u202e\u2028" else ch for ch in name).strip(" .") or "download"
    assert _filename_of(header) == expected


async def test_active_content_is_never_inline(dominus: Dominus, dominus_user_client: UserFactory) -> None:
    alice = await dominus_user_client(tenants=["alpha"])
    await dominus.files.upload(b"<script>alert(1)</script>", "page.html", "text/html", category="tenant-alpha")
    await dominus.files.upload(b"\x89PNG", "pic.png", "image/png", category="tenant-alpha")
    html = await alice.get("/files/page.html", params={"inline": "true"})
    assert html.headers["content-disposition"].startswith("attachment;")
    png = await alice.get("/files/pic.png", params={"inline": "true"})
    assert png.headers["content-disposition"].startswith("inline;")
    with pytest.raises(ValueError, match="disposition"):
        content_disposition("a.txt", "download")  # type: ignore[arg-type]


async def test_a_large_file_streams_in_pieces_without_a_second_copy(
    dominus: Dominus, dominus_asgi_app: Any, dominus_user_client: UserFactory
) -> None:
    """A 6 MiB file through the app's own ASGI interface: many body messages, one whole copy at most."""
    size = 6 * 1024 * 1024
    content = os.urandom(size)
    await dominus.files.upload(content, "big.bin", category="tenant-alpha")
    alice = await dominus_user_client(tenants=["alpha"], via="bearer")
    digest = hashlib.sha256()
    messages: list[int] = []
    start: dict[str, Any] = {}

    requested = False
    finished = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if requested:
            await finished.wait()  # the client stays connected until the answer is complete
            return {"type": "http.disconnect"}
        requested = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            digest.update(body)
            messages.append(len(body))
            if not message.get("more_body", False):
                finished.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/files/big.bin", "raw_path": b"/files/big.bin", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {alice.user.access_token}".encode())],
        "client": ("127.0.0.1", 1234), "server": ("127.0.0.1", 80),
    }
    del content
    tracemalloc.start()
    try:
        await dominus_asgi_app(scope, receive, send)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    headers = dict(start["headers"])
    assert start["status"] == 200 and headers[b"content-length"] == str(size).encode()
    assert sum(messages) == size and len([m for m in messages if m]) == size // (64 * 1024)
    assert max(messages) == 64 * 1024
    stored = await dominus.files.fetch(category="tenant-alpha", path="big.bin")
    assert digest.hexdigest() == hashlib.sha256(stored["data"]).hexdigest()
    # One copy (the in-process server's) plus pieces and bookkeeping; a second copy would pass 2 x size.
    assert peak < 1.5 * size, f"peak {peak} bytes for a {size}-byte file"


async def test_stream_over_http_reads_the_socket_in_pieces(dominus: Dominus) -> None:
    """Over HTTP (not embedded) the body is read chunk by chunk, and a used-up link is closed."""
    content = bytes(range(256)) * 1024  # 256 KiB
    record = await dominus.files.upload(content, "data.bin", category="reports")
    instance = dominus._transport.embedded.instance  # type: ignore[union-attr]
    http = httpx.AsyncClient(transport=DropAwareASGITransport(app=instance.app))
    async with Dominus(base_url="http://dominus.embedded", token=instance.psk, http_client=http) as client:
        stream = await client.files.stream(record["id"], chunk_size=10_000)
        assert (stream.filename, stream.size, stream.path) == ("data.bin", len(content), "data.bin")
        pieces = [bytes(piece) async for piece in stream]
        assert b"".join(pieces) == content and max(map(len, pieces)) <= 10_000
        with pytest.raises(RuntimeError, match="read once"):
            async for _ in stream:
                pass
        async with await client.files.stream(category="reports", path="data.bin") as early:
            first = await early.__aiter__().__anext__()
            assert len(first) <= 64 * 1024
        with pytest.raises(NotFoundError):
            await client.files.stream(category="reports", path="missing.bin")
        with pytest.raises(NotFoundError):
            await client.open_download("http://dominus.embedded/archivist/blob/not-a-token")
    await http.aclose()


async def test_stream_checks_its_arguments(dominus: Dominus) -> None:
    from dominus_fastapi import ValidationError

    with pytest.raises(ValidationError) as caught:
        await dominus.files.stream(category="reports", path="x", chunk_size=0)
    assert caught.value.details["field"] == "chunk_size"
    with pytest.raises(ValidationError) as caught:
        await dominus.open_download("http://elsewhere.example/archivist/blob/x")
    assert caught.value.details["field"] == "url"


async def test_signed_in_client_helper_still_works(dominus: Dominus, dominus_asgi_app: Any) -> None:
    """The kit's ``signed_in_client`` reads the streamed answer like any other (cookie session)."""
    from dominus_fastapi.testing import create_test_user

    user = await create_test_user(dominus, tenants=["alpha"])
    await dominus.files.upload(b"abc", "a.txt", "text/plain", category="tenant-alpha")
    async with signed_in_client(dominus_asgi_app, user) as http:
        assert (await http.get("/files/a.txt")).content == b"abc"
