"""A cheap stand-in gateway speaking protocol ``dominus-2``: just enough for ``redis.get`` and the token.

It answers ``GET /api/health``, ``POST /jwt/mint`` (an unsigned token whose payload carries ``iat``/``exp``,
which is all the SDK reads) and ``POST /api/whisperer/get`` (a fixed entry), with base64 JSON envelopes, and
``GET /stats`` (plain JSON: how many mints it answered). ``MINT_DELAY`` seconds of latency on the mint make
concurrent first calls overlap it, as a real gateway would. The work per request is the framing only, so the
figures measured against it are the client's own cost.

Run: ``python -m benchmarks.standin PORT [MINT_DELAY]`` (uvicorn on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from typing import Any

from starlette.types import Receive, Scope, Send

from dominus_fastapi.core import wire

_HEADERS = [(b"content-type", b"text/plain"), (b"cache-control", b"no-store")]


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def fake_token(lifetime: int = 3600) -> str:
    """An unsigned JWS-shaped token with ``iat``/``exp`` (the stand-in never verifies signatures)."""
    now = int(time.time())
    header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "standin"}).encode())
    payload = _b64url(
        json.dumps({"sub": "standin", "subject_type": "client", "iat": now, "exp": now + lifetime}).encode()
    )
    return f"{header}.{payload}.{_b64url(b'not-a-signature')}"


class StandIn:
    """The ASGI app."""

    def __init__(self, mint_delay: float = 0.0) -> None:
        self.mint_delay = mint_delay
        self.mints = 0
        self.token = fake_token()
        self.entry = wire.encode_json(wire.success_envelope({"found": True, "value": "v" * 64, "ttl_remaining": None}))
        self.health = wire.encode_json(wire.success_envelope({"status": "ok", "protocol": wire.PROTOCOL}))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                while (await receive())["type"] != "lifespan.shutdown":
                    await send({"type": "lifespan.startup.complete"})
                await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path = scope["path"]
        status, answer, headers = 200, b"", _HEADERS
        if path == "/api/whisperer/get":
            authorised = any(name == b"authorization" for name, _ in scope["headers"])
            if not authorised:
                status = 401
                answer = wire.encode_json(wire.error_envelope("no token", "missing_token"))
            else:
                wire.decode_body(body)
                answer = self.entry
        elif path == "/jwt/mint":
            self.mints += 1
            if self.mint_delay:
                await asyncio.sleep(self.mint_delay)
            answer = wire.encode_json(wire.success_envelope({"access_token": self.token, "expires_in": 3600}))
        elif path == "/api/health":
            answer = self.health
        elif path == "/stats":
            answer = json.dumps({"mints": self.mints}).encode()
            headers = [(b"content-type", b"application/json")]
        else:
            status, answer = 404, wire.encode_json(wire.error_envelope("no route", "not_found"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


def main(argv: list[str]) -> Any:
    import uvicorn

    port = int(argv[0])
    delay = float(argv[1]) if len(argv) > 1 else 0.0
    uvicorn.run(StandIn(delay), host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main(sys.argv[1:])
