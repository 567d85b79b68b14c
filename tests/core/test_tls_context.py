"""The pool's TLS context: built once per client and shared by every pool shard, verifying for https hosts."""

from __future__ import annotations

import ssl
from typing import Any

from dominus_fastapi import Dominus
from dominus_fastapi.core.transport import ShardedPoolTransport


def _contexts(client: Dominus) -> list[Any]:
    transport = client._transport.http._transport
    assert isinstance(transport, ShardedPoolTransport)
    return [shard._pool._ssl_context for shard in transport.shards]


async def test_https_hosts_share_one_verifying_context() -> None:
    async with Dominus(token="t" * 40, base_url="https://api.example.com") as client:
        contexts = _contexts(client)
        assert len(contexts) > 1 and all(context is contexts[0] for context in contexts)
        context = contexts[0]
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        assert context.cert_store_stats()["x509_ca"] > 0  # the CA bundle is loaded once, for all shards


async def test_plain_http_hosts_load_no_ca_bundle_and_trust_nothing() -> None:
    async with Dominus(token="t" * 40, base_url="http://127.0.0.1:9") as client:
        contexts = _contexts(client)
        assert all(context is contexts[0] for context in contexts)
        context = contexts[0]
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        assert context.cert_store_stats()["x509_ca"] == 0


async def test_an_https_gateway_alone_gets_the_verifying_context() -> None:
    async with Dominus(
        token="t" * 40, base_url="http://127.0.0.1:9", gateway_url="https://gateway.example.com"
    ) as client:
        assert _contexts(client)[0].cert_store_stats()["x509_ca"] > 0
