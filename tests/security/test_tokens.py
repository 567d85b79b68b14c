"""Forged, stale and tampered tokens: ``dominus_local`` refuses every one on every kind of endpoint, and the
SDK's local check (spec 5.10) refuses every one too.

The forgeries start from real tokens of the server under test (a service token and a user's session token):
``alg: none``, HS256 keyed with the public key (PEM and JWK), another RSA key under the server's ``kid``,
``kid`` confusion (unknown, missing, traversal, injected ``jwk``/``jku`` headers), other algorithms, expired,
not yet valid, a revoked session, and claims tampered after signing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dominus_fastapi import AuthenticationError
from dominus_fastapi.core import wire
from dominus_local.security import credentials
from tests.conftest import InProcessServer, make_fast
from tests.reliability.ledger import TALLY, WATCH

SUITE = "attacks: forged tokens"
PASSWORD = WATCH.secret("token-suite-password-1")
REFUSED = {"invalid_token", "token_expired", "session_revoked"}
TARGETS = [
    ("GET", "/api/health/ping"),  # any service token
    ("POST", "/api/warden/secrets"),  # a data endpoint
    ("GET", "/api/guardian/users"),  # admin only
    ("GET", "/api/portal/auth/me"),  # service or user
    ("GET", "/api/portal/security/sessions"),  # user only
]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json_part(part: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    head, body, signature = token.split(".")
    return _json_part(head), _json_part(body), signature


def _hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


@dataclass
class Tokens:
    server: InProcessServer
    service: str
    user: str
    revoked: str


@pytest.fixture
async def tokens(local_server: InProcessServer) -> AsyncIterator[Tokens]:
    client = local_server.client()
    make_fast(client)
    try:
        await client.auth.add_user("mallory", PASSWORD, email="mallory@example.com")
        user = (await client.portal.login("mallory", PASSWORD))["access_token"]
        revoked = (await client.portal.login("mallory", PASSWORD))["access_token"]
        await client.portal.logout(user_token=revoked)
        cache = await client._transport.token_cache()
        service = await cache.get()
        for token in (user, revoked, service):
            WATCH.secret(token)
        yield Tokens(local_server, service, user, revoked)
    finally:
        await client.aclose()
        await client._transport.http.aclose()


def forgeries(tokens: Tokens) -> dict[str, str]:
    """Every forged or unusable token, by name, built from the server's real tokens and public key."""
    signer = credentials(tokens.server.local.state).signer
    public = signer.key.private_key.public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    jwk_text = json.dumps(signer.key.jwk).encode()
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header, service_claims, _ = _parts(tokens.service)
    _, user_claims, _ = _parts(tokens.user)
    kid = header["kid"]
    now = int(tokens.server.wall())
    admin_user = {**user_claims, "roles": ["admin"], "subject_type": "client", "sid": None}
    other_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(other_key.public_key()))

    def rs(claims: dict[str, Any], key: Any = None, **headers: Any) -> str:
        return jwt.encode(claims, key or other_key, algorithm="RS256", headers={"kid": kid, **headers})

    def real(claims: dict[str, Any]) -> str:
        return jwt.encode(claims, signer.key.private_key, algorithm="RS256", headers={"kid": kid})

    head_user, body_user, sig_user = tokens.user.split(".")
    flipped = sig_user[:-4] + ("AAAA" if not sig_user.endswith("AAAA") else "BBBB")
    forged = {
        "alg none": _unsigned({"alg": "none", "typ": "JWT", "kid": kid}, service_claims),
        "alg None (case)": _unsigned({"alg": "None", "kid": kid}, service_claims),
        "alg none with a signature": _unsigned({"alg": "none", "kid": kid}, service_claims) + "c2ln",
        "HS256 keyed with the public PEM": _hs256({"alg": "HS256", "kid": kid}, service_claims, pem),
        "HS256 keyed with the public JWK": _hs256({"alg": "HS256", "kid": kid}, service_claims, jwk_text),
        "HS256 keyed with the kid": _hs256({"alg": "HS256", "kid": kid}, service_claims, kid.encode()),
        "HS512 keyed with the public PEM": jwt.encode(
            service_claims, "x" * 64, algorithm="HS512", headers={"kid": kid}
        ),
        "another RSA key under the server's kid": rs(service_claims),
        "another RSA key, no kid": jwt.encode(service_claims, other_key, algorithm="RS256"),
        "unknown kid": rs(service_claims, kid="f" * 43),
        "kid path traversal": rs(service_claims, kid="../../../../dev/null"),
        "kid SQL injection": rs(service_claims, kid="x' OR '1'='1"),
        "embedded jwk header": rs(service_claims, jwk=other_jwk),
        "jku header to another key set": rs(service_claims, jku="http://evil.example/jwks.json"),
        "RS512 with the right key": jwt.encode(
            service_claims, signer.key.private_key, algorithm="RS512", headers={"kid": kid}
        ),
        "PS256 with the right key": jwt.encode(
            service_claims, signer.key.private_key, algorithm="PS256", headers={"kid": kid}
        ),
        "expired": real({**service_claims, "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}),
        "expired just past the 5 s leeway": real({**service_claims, "exp": now - 6}),
        "not valid for another 6 s": real({**service_claims, "nbf": now + 6, "exp": now + 600}),
        "not yet valid": real({**service_claims, "nbf": now + 3600, "exp": now + 7200}),
        "no exp": real({k: v for k, v in service_claims.items() if k != "exp"}),
        "exp as text": real({**service_claims, "exp": str(now + 600)}),
        "wrong issuer": real({**service_claims, "iss": "someone-else"}),
        "subject that does not exist": real({**service_claims, "sub": "00000000-0000-4000-8000-000000000000"}),
        "session that does not exist": real({**user_claims, "sid": "00000000-0000-4000-8000-000000000000"}),
        "revoked session": tokens.revoked,
        "user claims tampered to admin": f"{head_user}.{_b64(json.dumps(admin_user).encode())}.{sig_user}",
        "expiry tampered": f"{head_user}.{_b64(json.dumps({**user_claims, 'exp': now + 10**6}).encode())}.{sig_user}",
        "signature altered": f"{head_user}.{body_user}.{flipped}",
        "signature removed": f"{head_user}.{body_user}.",
        "two parts": f"{head_user}.{body_user}",
        "garbage": "not-a-jwt",
        "header not JSON": f"{_b64(b'{oops')}.{body_user}.{sig_user}",
    }
    return forged


async def test_forged_tokens_are_refused_by_the_server(tokens: Tokens) -> None:
    forged = forgeries(tokens)
    accepted: list[str] = []
    for name, token in forged.items():
        for method, path in TARGETS:
            response = await tokens.server.raw(
                method, path, headers={"Authorization": f"Bearer {token}"}, content=wire.encode_body({"action": "list"})
            )
            body = wire.parse_response_text(response.content)
            code = body.get("code") if isinstance(body, dict) else None
            ok = response.status_code == 401 and code in REFUSED and token not in response.text
            if not TALLY.record(SUITE, ok, f"{name} on {path}: {response.status_code} {code}"):
                accepted.append(f"{name} on {method} {path}: {response.status_code} {code}")
    assert accepted == []
    # The real tokens still work, so the refusals above are about the forgeries.
    ping = await tokens.server.raw("GET", "/api/health/ping", headers={"Authorization": f"Bearer {tokens.service}"})
    me = await tokens.server.raw("GET", "/api/portal/auth/me", headers={"Authorization": f"Bearer {tokens.user}"})
    assert (ping.status_code, me.status_code) == (200, 200)


@pytest.mark.parametrize("when", ["expired", "not yet valid"], ids=str)
async def test_the_clock_decides_expiry(tokens: Tokens, when: str) -> None:
    """A real token refused only because of time: moving the server's clock makes it valid again."""
    wall: Callable[[], float] = tokens.server.wall
    token = forgeries(tokens)[when]
    response = await tokens.server.raw("GET", "/api/health/ping", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    tokens.server.wall.advance(-5400 if when == "expired" else 5400)
    response = await tokens.server.raw("GET", "/api/health/ping", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, wall()
    TALLY.record(SUITE, True)


async def test_forged_tokens_are_refused_by_the_sdk(tokens: Tokens) -> None:
    """``validate_jwt`` (spec 5.10) refuses every forgery that a local check can see (not revocation, not a
    deleted subject or session: those need the server, as the spec says)."""
    client = tokens.server.client()
    make_fast(client)
    client._transport.wall_clock = tokens.server.wall
    server_only = {"revoked session", "subject that does not exist", "session that does not exist", "wrong issuer"}
    accepted: list[str] = []
    try:
        assert (await client.validate_jwt(tokens.user))["sub"]
        for name, token in forgeries(tokens).items():
            if name in server_only:
                continue
            try:
                await client.validate_jwt(token)
            except AuthenticationError as exc:
                WATCH.capture_error(exc)
                ok = exc.code in ("invalid_token", "token_expired") and token not in str(exc)
            else:
                ok = False
            if not TALLY.record("attacks: forged tokens (SDK check)", ok, name):
                accepted.append(name)
    finally:
        await client.aclose()
        await client._transport.http.aclose()
    assert accepted == []


def test_forgery_helpers_build_what_they_claim() -> None:
    """The HS256 helper really signs (so a refusal is the server's doing, not a malformed test token)."""
    token = _hs256({"alg": "HS256"}, {"sub": "x", "exp": int(time.time()) + 60}, b"k" * 32)
    assert jwt.decode(token, b"k" * 32, algorithms=["HS256"])["sub"] == "x"
    assert _unsigned({"alg": "none"}, {"sub": "x"}).endswith(".")
