"""How ``dominus-local serve`` treats slow, numerous and oversized clients: uvicorn's options, and its h11
protocol with a header deadline.

uvicorn closes idle keep-alive connections and can cap concurrency, but it gives a client unlimited time to
send a request's headers, and it answers headers over h11's size limit by closing the socket while the client
is still writing (the client sees a reset). :func:`uvicorn_options` sets, from :class:`LocalSettings`:

- ``header_timeout`` (``DOMINUS_LOCAL_HEADER_TIMEOUT``, 10 s): a client has this long, from its request's
  first byte (or from connecting), to send the request line and headers. Then it gets a 408
  ``request_timeout`` envelope and the connection is closed; a connection that sent nothing is just closed.
- ``body_timeout`` (``DOMINUS_LOCAL_BODY_TIMEOUT``, 60 s): enforced by the app itself while it reads a body
  (:func:`dominus_local.app._read_body`), so under any ASGI server: 408 ``request_timeout``, connection closed.
- ``max_header_bytes`` (``DOMINUS_LOCAL_MAX_HEADER_BYTES``, 64 KiB): h11's limit on the request line plus
  headers. A larger head gets a 431 envelope with code ``payload_too_large`` (spec 4.1 lists no status for
  it; 431 is HTTP's own) and a graceful close: the server stops writing, discards what the client still sends
  for a moment, then closes, so the client reads the answer instead of a reset.
- ``limit_concurrency`` (``DOMINUS_LOCAL_LIMIT_CONCURRENCY``, 1000): open connections plus running requests;
  a request beyond it gets uvicorn's plain 503, which the SDK retries like any 503.
- ``timeout_keep_alive``: :data:`KEEP_ALIVE_SECONDS`.

An application served by uvicorn (the example app, for one) can take the same protection:
``uvicorn.run(app, host=..., port=..., **uvicorn_options(LocalSettings()))``.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

import dominus_fastapi.core.wire as wire
from dominus_local.cli import KEEP_ALIVE_SECONDS
from dominus_local.settings import LocalSettings

__all__ = ["KEEP_ALIVE_SECONDS", "LINGER_SECONDS", "GuardedH11Protocol", "uvicorn_options"]

H11_DEFAULT_HEAD_BYTES = 16 * 1024
"""h11's own limit on a request's head, when uvicorn is given none."""
LINGER_SECONDS = 2.0
"""How long a connection refused for its head keeps discarding what the client still sends before closing."""


def _envelope(status: int, reason: str, code: str, message: str, details: dict[str, Any]) -> bytes:
    """A whole HTTP/1.1 answer with a failure envelope, and ``Connection: close``."""
    body = wire.encode_json(wire.error_envelope(message, code, details))
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        f"content-type: {wire.CONTENT_TYPE}\r\n"
        f"content-length: {len(body)}\r\n"
        "cache-control: no-store\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's head and a framed 431 for an oversized head."""

    def __init__(self, *args: Any, header_timeout: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_bytes_seen = False
        self._lingering = False
        self._head_limit = self.config.h11_max_incomplete_event_size or H11_DEFAULT_HEAD_BYTES

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the answer is written; what the client still sends is dropped unread
        if self.conn.their_state is h11.IDLE:
            self._head_bytes_seen = True
            self._arm_head_deadline()
            # h11 checks its limit only while a head is incomplete: a large head that arrives whole would pass.
            pending = self.conn.trailing_data[0]
            if len(pending) + len(data) > self._head_limit:
                end = (pending + data).find(b"\r\n\r\n")
                if end == -1 or end + 4 > self._head_limit:
                    self._refuse_head()
                    return
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm_head_deadline()  # the head is complete (or refused)

    def eof_received(self) -> None:
        if self._lingering:
            self.transport.close()

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self._head_bytes_seen:
            message = f"The request's headers did not arrive within {self.header_timeout:g} s"
            details = {"limit": self.header_timeout}
            self.transport.write(_envelope(408, "Request Timeout", "request_timeout", message, details))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """h11 refused the head: frame a 431 when it is only too large, else keep uvicorn's 400."""
        self._disarm_head_deadline()
        if len(self.conn.trailing_data[0]) <= self._head_limit:
            super().send_400_response(msg)
            return
        self._refuse_head()

    def _refuse_head(self) -> None:
        self._disarm_head_deadline()
        limit = self._head_limit
        message = f"The request line and headers are larger than the limit of {limit} bytes"
        details = {"limit": limit, "reason": "request headers too large"}
        self.transport.write(_envelope(431, "Request Header Fields Too Large", "payload_too_large", message, details))
        self._close_gently()

    def _close_gently(self) -> None:
        """Stop writing and close once the client is done sending (or after :data:`LINGER_SECONDS`): closing
        with unread input would reset the connection and could destroy the answer before the client reads it."""
        self._lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def uvicorn_options(settings: LocalSettings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` / ``uvicorn.run`` that bound slow and numerous clients."""
    protocol = functools.partial(GuardedH11Protocol, header_timeout=settings.header_timeout)
    return {
        "http": cast(type[asyncio.Protocol], protocol),
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "limit_concurrency": settings.limit_concurrency,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }
