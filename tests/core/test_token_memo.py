"""A token whose signature checked out is not verified again while the key set stays the same (spec 5.10):
repeated checks cost only the time checks, and every refusal still happens."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from dominus_fastapi import AuthenticationError, Dominus
from dominus_fastapi.core.tokens import JwksCache, unverified_claims, verify_token
from tests.conftest import FakeClock


def _key_set(*keys: tuple[str, rsa.RSAPrivateKey]) -> dict[str, Any]:
    jwks = []
    for kid, key in keys:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        jwks.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
    return {"keys": jwks}


@pytest.fixture(scope="module")
def keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


async def test_repeated_checks_verify_the_signature_once(
    keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = keys
    clock = FakeClock(1_000.0)
    cache = JwksCache(lambda: _answer(_key_set(("k1", first))), clock=clock)
    token = jwt.encode({"sub": "u", "exp": 2_000, "nbf": 900, "aud": "api"}, first, algorithm="RS256",
                       headers={"kid": "k1"})
    decodes = 0
    original = jwt.decode

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal decodes
        decodes += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    for _ in range(5):
        claims = await verify_token(token, cache, clock=clock)
        assert claims["sub"] == "u"
        claims["sub"] = "changed by the caller"  # callers get copies
    assert decodes == 1
    # Another audience is another check, and a wrong one is still refused.
    assert (await verify_token(token, cache, audience="api", clock=clock))["aud"] == "api"
    with pytest.raises(AuthenticationError):
        await verify_token(token, cache, audience="other", clock=clock)
    assert decodes == 3
    # Times are checked on every use.
    clock.now = 2_000
    with pytest.raises(AuthenticationError) as expired:
        await verify_token(token, cache, clock=clock)
    assert expired.value.code == "token_expired"
    assert (await verify_token(token, cache, leeway=10, clock=clock))["sub"] == "u"
    clock.now = 800
    with pytest.raises(AuthenticationError) as early:
        await verify_token(token, cache, clock=clock)
    assert early.value.code == "invalid_token"
    assert decodes == 3


async def test_a_new_key_set_forgets_what_was_verified(keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]) -> None:
    first, second = keys
    clock = FakeClock(1_000.0)
    answers = [_key_set(("k1", first))]
    cache = JwksCache(lambda: _answer(answers[-1]), clock=clock, ttl=3600)
    token = jwt.encode({"sub": "u", "exp": 100_000}, first, algorithm="RS256", headers={"kid": "k1"})
    assert (await verify_token(token, cache, clock=clock))["sub"] == "u"
    # The key is withdrawn: once the key set is fetched again, the token is refused.
    answers.append(_key_set(("k2", second)))
    clock.advance(3600)
    with pytest.raises(AuthenticationError) as refused:
        await verify_token(token, cache, clock=clock)
    assert refused.value.code == "invalid_token"
    assert cache.fetch_count == 2


async def test_validate_jwt_of_a_real_token_many_times(local_client: Dominus) -> None:
    minted = await local_client.request(
        "POST", "/jwt/mint", body={"method": "auth.self", "params": {}}, auth="psk", host="gateway", safe=True,
        replay=False,
    )
    token = minted["access_token"]
    for _ in range(20):
        assert (await local_client.validate_jwt(token))["sub"] == unverified_claims(token)["sub"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(AuthenticationError) as info:
        await local_client.validate_jwt(forged)
    assert info.value.code == "invalid_token"


async def _answer(document: dict[str, Any]) -> dict[str, Any]:
    return document
