"""Token checks of spec 5.5 and the auth kinds of spec 5.1, with real and forged tokens."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dominus_local.security import issue_token, signer

from .conftest import Harness, add_client, add_user_session, envelope, error_code, set_client_status


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(server: Harness, **overrides: Any) -> dict[str, Any]:
    now = int(server.wall())
    claims = {
        "iss": "dominus-local",
        "sub": server.app.state.extras["bootstrap_client_id"],
        "subject_type": "client",
        "tenant_id": None,
        "roles": ["admin"],
        "scopes": [],
        "project_slug": "local",
        "environment": "development",
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": "j",
    }
    claims.update(overrides)
    return claims


def _refused(response: Any, code: str = "invalid_token") -> None:
    assert response.status_code == 401
    assert error_code(response) == code
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_missing_or_malformed_authorization_is_missing_token(server: Harness, token: str) -> None:
    for headers in ({}, {"Authorization": token}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}):
        response = await server.call("GET", "/api/probe/service", headers=headers)
        assert response.status_code == 401
        assert error_code(response) == "missing_token"
        assert response.headers["www-authenticate"] == "Bearer"


async def test_service_token_reaches_service_endpoints(server: Harness, token: str) -> None:
    response = await server.call("GET", "/api/probe/service", token=token)
    data = envelope(response)["data"]
    assert data["subject_type"] == "client"
    assert data["admin"] is True
    assert data["sid"] is None
    lower_scheme = await server.call("GET", "/api/probe/service", headers={"Authorization": f"bearer {token}"})
    assert lower_scheme.status_code == 200


async def test_none_endpoints_ignore_any_authorization(server: Harness) -> None:
    response = await server.call("GET", "/api/probe/none", headers={"Authorization": "Bearer garbage"})
    assert envelope(response)["data"] == {"principal": None, "psk_given": False}


async def test_psk_endpoints_receive_the_raw_credential(server: Harness) -> None:
    response = await server.call("GET", "/api/probe/psk", token="some-psk")
    assert envelope(response)["data"] == {"principal": None, "psk_given": True}
    missing = await server.call("GET", "/api/probe/psk")
    assert error_code(missing) == "missing_token"


async def test_alg_none_is_refused(server: Harness) -> None:
    header = _b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": signer(server.app.state).key.kid}).encode())
    payload = _b64url(json.dumps(_claims(server)).encode())
    for forged in (f"{header}.{payload}.", f"{header}.{payload}"):
        _refused(await server.call("GET", "/api/probe/service", token=forged))


async def test_hs256_signed_with_the_public_key_is_refused(server: Harness) -> None:
    key = signer(server.app.state).key
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    payload = _b64url(json.dumps(_claims(server)).encode())
    import hashlib
    import hmac

    signature = _b64url(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    _refused(await server.call("GET", "/api/probe/service", token=f"{header}.{payload}.{signature}"))


async def test_token_signed_by_another_rsa_key_is_refused(server: Harness) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = signer(server.app.state).key.kid  # claims our kid, but the signature is not ours
    forged = jwt.encode(_claims(server), other, algorithm="RS256", headers={"kid": kid})
    _refused(await server.call("GET", "/api/probe/service", token=forged))


async def test_unknown_or_missing_kid_is_refused(server: Harness) -> None:
    private_key = signer(server.app.state).key.private_key
    unknown = jwt.encode(_claims(server), private_key, algorithm="RS256", headers={"kid": "not-ours"})
    _refused(await server.call("GET", "/api/probe/service", token=unknown))
    no_kid = jwt.encode(_claims(server), private_key, algorithm="RS256")
    _refused(await server.call("GET", "/api/probe/service", token=no_kid))


@pytest.mark.parametrize("garbage", ["abc", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30.", "x" * 5000])
async def test_malformed_tokens_are_refused(server: Harness, garbage: str) -> None:
    _refused(await server.call("GET", "/api/probe/service", token=garbage))


async def test_the_psk_is_not_a_bearer_token_for_services(server: Harness) -> None:
    _refused(await server.call("GET", "/api/probe/service", token=server.psk))


async def test_expired_token_is_token_expired(server: Harness, token: str) -> None:
    server.wall.advance(900 + 5)
    _refused(await server.call("GET", "/api/probe/service", token=token), "token_expired")


async def test_expiry_allows_five_seconds_of_skew(server: Harness, token: str) -> None:
    server.wall.advance(900 + 4)
    assert (await server.call("GET", "/api/probe/service", token=token)).status_code == 200


async def test_not_yet_valid_token_is_invalid_token(server: Harness) -> None:
    state = server.app.state
    base = _claims(server)
    early = issue_token(state, {**base, "nbf": int(server.wall()) + 60})
    _refused(await server.call("GET", "/api/probe/service", token=early))
    within_leeway = issue_token(state, {**base, "nbf": int(server.wall()) + 4})
    assert (await server.call("GET", "/api/probe/service", token=within_leeway)).status_code == 200


async def test_wrong_issuer_and_malformed_claims_are_refused(server: Harness) -> None:
    state = server.app.state
    private_key = signer(state).key.private_key
    kid = signer(state).key.kid
    other_issuer = jwt.encode(_claims(server, iss="someone-else"), private_key, algorithm="RS256", headers={"kid": kid})
    _refused(await server.call("GET", "/api/probe/service", token=other_issuer))
    bad_roles = issue_token(state, {**_claims(server), "roles": "admin"})
    _refused(await server.call("GET", "/api/probe/service", token=bad_roles))


async def test_real_time_check_uses_the_wall_clock_not_the_host_clock(server: Harness, token: str) -> None:
    # The injected clock says the token is fresh even when the host clock would disagree.
    server.wall.now = time.time() - 10_000
    fresh = issue_token(server.app.state, _claims(server))
    assert (await server.call("GET", "/api/probe/service", token=fresh)).status_code == 200


async def test_inactive_or_deleted_subject_is_invalid_token(server: Harness) -> None:
    psk = "b" * 64
    client_id = await add_client(server, psk)
    client_token = await server.mint(psk)
    assert (await server.call("GET", "/api/probe/service", token=client_token)).status_code == 200
    await set_client_status(server, client_id, "disabled")
    _refused(await server.call("GET", "/api/probe/service", token=client_token))
    ghost = issue_token(server.app.state, _claims(server, sub="0b9c0b2e-1a6f-4d7e-9a55-2b7c5a0f1e11"))
    _refused(await server.call("GET", "/api/probe/service", token=ghost))


async def test_session_tokens_follow_the_endpoint_kind(server: Harness, token: str) -> None:
    session = await add_user_session(server)
    assert envelope(await server.call("GET", "/api/probe/user", token=session))["data"]["subject_type"] == "user"
    assert (await server.call("GET", "/api/probe/either", token=session)).status_code == 200
    assert (await server.call("GET", "/api/probe/either", token=token)).status_code == 200
    on_service = await server.call("GET", "/api/probe/service", token=session)
    assert on_service.status_code == 403
    assert error_code(on_service) == "forbidden"
    on_user = await server.call("GET", "/api/probe/user", token=token)
    assert on_user.status_code == 403
    assert error_code(on_user) == "forbidden"


async def test_revoked_session_is_session_revoked(server: Harness) -> None:
    session = await add_user_session(server, revoked=True)
    _refused(await server.call("GET", "/api/probe/user", token=session), "session_revoked")


async def test_admin_rule(server: Harness, token: str) -> None:
    assert (await server.call("GET", "/api/probe/admin", token=token)).status_code == 200
    psk = "c" * 64
    await add_client(server, psk)
    plain = await server.mint(psk)
    response = await server.call("GET", "/api/probe/admin", token=plain)
    assert response.status_code == 403
    assert error_code(response) == "forbidden"
    admin_session = await add_user_session(server, roles=("admin",))
    # An administrator's session token is still the wrong kind for a service endpoint.
    assert (await server.call("GET", "/api/probe/admin", token=admin_session)).status_code == 403
