"""Service tokens (spec 5.6), the key-set cache and local verification (spec 5.10)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dominus_fastapi import (
    AuthenticationError,
    AuthorizationError,
    Dominus,
    DominusConnectionError,
    DominusSettings,
    NotFoundError,
)
from dominus_fastapi.core.cache import EncryptedTTLCache
from dominus_fastapi.core.tokens import JwksCache, ServiceTokenCache, unverified_claims
from tests.conftest import FakeClock, InProcessServer


async def service_token(client: Dominus) -> str:
    return await (await client._transport.token_cache()).get()


# --- single flight, refresh ahead, re-mint -------------------------------------------------------------------


async def test_thousand_concurrent_first_calls_mint_once(local_server: InProcessServer, local_client: Dominus) -> None:
    before = await local_server.tokens_minted()
    results = await asyncio.gather(*(local_client.secrets.list() for _ in range(1000)))
    assert all(r == [] for r in results)
    assert await local_server.tokens_minted() - before == 1
    assert local_server.requests_to("/api/health") == 1  # one warm-up, too
    assert local_server.requests_to("/api/warden/secrets") == 1000


async def test_token_is_refreshed_ahead_of_expiry(local_server: InProcessServer, local_client: Dominus) -> None:
    sdk_clock = FakeClock(local_server.wall())
    local_client._transport.wall_clock = sdk_clock
    await local_client.secrets.list()
    first = await service_token(local_client)
    exp = unverified_claims(first)["exp"]
    assert await local_server.tokens_minted() == 1

    sdk_clock.now = exp - 61  # 61 s left: still used
    await local_client.secrets.list()
    assert await service_token(local_client) == first
    assert await local_server.tokens_minted() == 1

    sdk_clock.now = exp - 59  # under 60 s left: minted again before the call
    local_server.wall.now = exp - 59
    await local_client.secrets.list()
    assert await service_token(local_client) != first
    assert await local_server.tokens_minted() == 2


async def test_expired_service_token_is_reminted_once_and_replayed(
    local_server: InProcessServer, local_client: Dominus
) -> None:
    await local_client.upsert("K", "v1")
    stale = await service_token(local_client)
    # The server's time moves past the token's expiry; the client's does not, so it sends the stale token.
    local_server.wall.advance(1000)
    assert await local_client.get("K") == "v1"
    assert await local_server.tokens_minted() == 2
    assert await service_token(local_client) != stale


async def test_a_second_401_raises_without_a_third_mint(local_server: InProcessServer, local_client: Dominus) -> None:
    cache = await local_client._transport.token_cache()
    real_mint = cache._mint

    async def mint_then_expire() -> Mapping[str, Any]:
        data = await real_mint()
        local_server.wall.advance(1000)  # every fresh token is already expired when it is used
        return data

    cache._mint = mint_then_expire
    with pytest.raises(AuthenticationError) as info:
        await local_client.secrets.list()
    assert info.value.code == "token_expired"
    assert await local_server.tokens_minted() == 2


async def test_user_token_401_is_not_reminted(local_server: InProcessServer, local_client: Dominus) -> None:
    await local_client.secrets.list()
    with pytest.raises(AuthenticationError):
        await local_client.as_user("x.y.z").secrets.list()
    assert await local_server.tokens_minted() == 1


async def test_network_client_without_psk_refuses_before_sending(local_server: InProcessServer) -> None:
    client = local_server.client(token=None)
    try:
        with pytest.raises(AuthenticationError) as info:
            await client.secrets.list()
        assert "DOMINUS_TOKEN" in info.value.message
        assert (await client.health.check())["status"] == "healthy"
        assert await local_server.tokens_minted() == 0
    finally:
        await client.aclose()


async def test_claims_that_differ_from_cb_settings_warn_once(
    local_server: InProcessServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = DominusSettings(project_slug="another-project", environment="development", cold_start_budget=0)
    client = local_server.client(settings=settings)
    try:
        with caplog.at_level(logging.WARNING, logger="dominus_fastapi"):
            await client.secrets.list()
            (await client._transport.token_cache()).invalidate()
            await client.secrets.list()
        warnings = [r for r in caplog.records if "project_slug" in r.getMessage()]
        assert len(warnings) == 1
        assert local_server.psk not in caplog.text
    finally:
        await client.aclose()


async def test_invalidate_drops_only_the_cached_token() -> None:
    minted: list[str] = []

    async def mint() -> Mapping[str, Any]:
        token = f"h.{base64.urlsafe_b64encode(json.dumps({'exp': 2_000_000_000}).encode()).decode()}.s{len(minted)}"
        minted.append(token)
        return {"access_token": token, "expires_in": 900}

    cache = ServiceTokenCache(mint, gateway_url="http://g", psk="p" * 64, clock=lambda: 1_000_000_000.0)
    first = await cache.get()
    cache.invalidate("some-older-token")
    assert await cache.get() == first
    cache.invalidate(first)
    second = await cache.get()
    assert second != first and len(minted) == 2
    assert "p" * 64 not in repr(cache)


async def test_expires_in_is_used_when_the_token_has_no_exp() -> None:
    clock = FakeClock(1000.0)
    count = 0

    async def mint() -> Mapping[str, Any]:
        nonlocal count
        count += 1
        return {"token": f"opaque-{count}", "expires_in": 120}

    cache = ServiceTokenCache(mint, gateway_url="http://g", psk="p" * 64, clock=clock)
    assert await cache.get() == "opaque-1"
    clock.advance(59)
    assert await cache.get() == "opaque-1"
    clock.advance(2)
    assert await cache.get() == "opaque-2"


def test_encrypted_cache_keeps_ciphertext_and_expires() -> None:
    clock = FakeClock(0.0)
    cache = EncryptedTTLCache("secret-psk", clock=clock)
    cache.set("k", {"token": "abc.def.ghi"}, ttl=10)
    assert b"abc.def.ghi" not in cache._entries["k"][1]
    assert cache.get("k") == {"token": "abc.def.ghi"}
    assert EncryptedTTLCache("other-psk", clock=clock).get("k") is None
    clock.advance(10)
    assert cache.get("k") is None


# --- key set and local verification --------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, Any], claims: dict[str, Any], sign: Any) -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(sign(f'{head}.{body}'.encode()))}"


async def test_validate_jwt_accepts_a_real_token(local_client: Dominus) -> None:
    token = await service_token(local_client)
    claims = await local_client.validate_jwt(token)
    assert claims["subject_type"] == "client"
    assert "sid" not in claims


async def test_forged_tokens_are_refused(local_client: Dominus) -> None:
    token = await service_token(local_client)
    header = jwt.get_unverified_header(token)
    claims = unverified_claims(token)
    keys = (await local_client.get_public_key())["keys"]
    public_pem = jwt.algorithms.RSAAlgorithm.from_jwk(keys[0]).public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    forged = {
        "alg none": _forge({"alg": "none", "typ": "JWT", "kid": header["kid"]}, claims, lambda _: b""),
        "HS256 with the public key": _forge(
            {"alg": "HS256", "typ": "JWT", "kid": header["kid"]},
            claims,
            lambda msg: hmac.new(public_pem, msg, hashlib.sha256).digest(),
        ),
        "another RSA key, same kid": jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": header["kid"]}),
        "another RSA key, no kid": jwt.encode(claims, other_key, algorithm="RS256"),
        "tampered claims": ".".join(
            [token.split(".")[0], _b64(json.dumps({**claims, "roles": ["admin", "x"]}).encode()), token.split(".")[2]]
        ),
        "garbage": "not-a-token",
    }
    for name, bad in forged.items():
        with pytest.raises(AuthenticationError) as info:
            await local_client.validate_jwt(bad)
        assert info.value.code == "invalid_token", name

    # The server refuses them too.
    for name, bad in forged.items():
        with pytest.raises(AuthenticationError) as server_info:
            await local_client.as_user(bad).health.ping()
        assert server_info.value.code == "invalid_token", name


async def test_expiry_nbf_leeway_and_audience(local_client: Dominus) -> None:
    token = await service_token(local_client)
    claims = unverified_claims(token)
    clock = FakeClock(claims["exp"] + 5)
    local_client._transport.wall_clock = clock
    with pytest.raises(AuthenticationError) as expired:
        await local_client.validate_jwt(token)
    assert expired.value.code == "token_expired"
    assert (await local_client.validate_jwt(token, leeway=10))["sub"] == claims["sub"]

    clock.now = claims["nbf"] - 30
    with pytest.raises(AuthenticationError) as early:
        await local_client.validate_jwt(token)
    assert early.value.code == "invalid_token"
    clock.now = claims["iat"] + 1
    with pytest.raises(AuthenticationError) as audience:
        await local_client.validate_jwt(token, audience="some-api")
    assert audience.value.code == "invalid_token"


async def test_jwks_cache_ttl_refetch_limit_and_stale_copy() -> None:
    clock = FakeClock(0.0)
    answers: list[Any] = [{"keys": [{"kid": "a", "kty": "RSA"}]}]
    calls = 0

    async def fetch() -> Mapping[str, Any]:
        nonlocal calls
        calls += 1
        answer = answers[-1]
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)

    cache = JwksCache(fetch, clock=clock)
    assert [k["kid"] for k in await cache.keys()] == ["a"]
    assert await cache.keys_for("unknown") == []  # fetched just now: no refetch yet
    assert calls == 1
    clock.advance(31)
    answers.append({"keys": [{"kid": "a"}, {"kid": "b"}]})
    assert [k["kid"] for k in await cache.keys_for("b")] == ["b"]
    assert calls == 2
    await cache.keys_for("c")
    await cache.keys_for("c")
    assert calls == 2  # at most one refetch every 30 s
    clock.advance(3600)
    answers.append(DominusConnectionError("down"))
    assert [k["kid"] for k in await cache.keys()] == ["a", "b"]  # stale copy
    assert calls == 3


async def test_jwks_fetch_is_cached_across_validations(local_client: Dominus) -> None:
    token = await service_token(local_client)
    for _ in range(5):
        await local_client.validate_jwt(token)
    assert local_client._transport.jwks.fetch_count == 1


async def test_mint_jwt_issues_a_user_token_that_validates(local_client: Dominus) -> None:
    user = await local_client.request(
        "POST",
        "/api/guardian/users",
        body={"username": "ana", "email": "ana@example.com", "password": "correct horse battery"},
    )
    minted = await local_client.mint_jwt(user["id"], expires_in=600)
    assert minted["token_type"] == "bearer" and minted["expires_in"] == 600
    claims = await local_client.validate_jwt(minted["access_token"])
    assert (claims["sub"], claims["subject_type"], claims["sid"]) == (user["id"], "user", minted["session_id"])
    assert claims["exp"] - claims["iat"] == 600
    with pytest.raises(NotFoundError):
        await local_client.mint_jwt(str(uuid.uuid4()))
    with pytest.raises(AuthorizationError):
        await local_client.mint_jwt(user["id"], scope=["not-held"])


async def test_a_skewed_local_clock_does_not_mint_on_every_call(
    local_server: InProcessServer, local_client: Dominus
) -> None:
    local_client._transport.wall_clock = FakeClock(local_server.wall() + 870)  # 14.5 minutes ahead
    for _ in range(3):
        await local_client.secrets.list()
    assert await local_server.tokens_minted() == 1
