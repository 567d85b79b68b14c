"""A minimal HTTP/1.1 keep-alive load generator on raw asyncio streams (one connection per worker).

Much cheaper per request than a full client, so that a server-side difference is not hidden by client cost.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Sequence


class _Raw:
    """Sends prepared requests on free keep-alive connections and checks the 200 answer."""

    method = "GET"

    def __init__(self, port: int) -> None:
        self.port = port
        self._free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._all: list[asyncio.StreamWriter] = []

    def _request(self) -> bytes:
        raise NotImplementedError

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._all.append(writer)
        return reader, writer

    async def __call__(self) -> bytes:
        reused = bool(self._free)
        reader, writer = self._free.pop() if reused else await self._connect()
        request = self._request()
        writer.write(request)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            if not reused:
                raise
            # The server closed an idle keep-alive connection (uvicorn does after 5 s): use a new one.
            writer.close()
            reader, writer = await self._connect()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
        status = head[9:12]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        if status != b"200":
            raise RuntimeError(f"{self.method} answered {status.decode()}: {body[:200]!r}")
        self._free.append((reader, writer))
        return body

    async def aclose(self) -> None:
        for writer in self._all:
            writer.close()
        self._all.clear()
        self._free.clear()


class RawGet(_Raw):
    """``await RawGet(...)()`` sends one ``GET`` on a free connection and checks the 200 answer."""

    def __init__(self, port: int, path: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(port)
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _request(self) -> bytes:
        return self.request


class RawPost(_Raw):
    """``await RawPost(...)()`` sends one ``POST`` of the next body of ``bodies`` (taken in turn, already
    encoded), with a fresh ``Idempotency-Key`` each time when ``idempotency_key`` is set, as the SDK does on
    an unsafe call."""

    method = "POST"

    def __init__(
        self,
        port: int,
        path: str,
        bodies: Sequence[bytes],
        headers: dict[str, str] | None = None,
        *,
        idempotency_key: bool = False,
    ) -> None:
        super().__init__(port)
        lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: text/plain"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        # Whole requests prepared once, but for the key: per call only a join (and a UUID when keyed).
        self._requests = itertools.cycle([head + b"Content-Length: %d\r\n" % len(b) for b in bodies])
        self._bodies = itertools.cycle(bodies)
        self.idempotency_key = idempotency_key

    def _request(self) -> bytes:
        head, body = next(self._requests), next(self._bodies)
        if self.idempotency_key:
            return b"%sIdempotency-Key: %s\r\n\r\n%s" % (head, uuid.uuid4().hex.encode(), body)
        return b"%s\r\n%s" % (head, body)
