"""The gateway (spec 5.2-5.4, 7.1): service-token mint, claims, key set, persistence of the signing key."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import jwt
import pytest

from dominus_local.security import jwk_thumbprint
from dominus_local.settings import LocalSettings

from .conftest import Harness, envelope, error_code, start


async def test_mint_answers_a_bearer_token(server: Harness) -> None:
    response = await server.call("POST", "/jwt/mint", {"method": "auth.self", "params": {}}, token=server.psk)
    data = envelope(response)["data"]
    assert data["token_type"] == "bearer"
    assert data["expires_in"] == 900
    assert data["access_token"].count(".") == 2


async def test_minted_claims_verify_against_the_published_key_set(server: Harness) -> None:
    token = await server.mint()
    jwks = envelope(await server.call("GET", "/jwt/jwks"))["data"]
    assert len(jwks["keys"]) == 1
    jwk = jwks["keys"][0]
    assert {k: jwk[k] for k in ("kty", "use", "alg")} == {"kty": "RSA", "use": "sig", "alg": "RS256"}
    assert jwk["kid"] == jwk_thumbprint(jwk["n"], jwk["e"])
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "RS256", "typ": "JWT", "kid": jwk["kid"]}
    public_key = jwt.PyJWK(jwk).key
    claims = jwt.decode(
        token, public_key, algorithms=["RS256"], options={"verify_exp": False, "verify_iat": False, "verify_nbf": False}
    )
    bootstrap_id = server.app.state.extras["bootstrap_client_id"]
    assert claims["iss"] == "dominus-local"
    assert claims["sub"] == bootstrap_id
    assert claims["subject_type"] == "client"
    assert "sid" not in claims
    assert "aud" not in claims
    assert "admin" in claims["roles"]
    assert "admin" in claims["scopes"]
    assert claims["project_slug"] == "local"
    assert claims["environment"] == "development"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["nbf"] == claims["iat"]
    assert isinstance(claims["jti"], str) and claims["jti"]
    # The bootstrap client holds exactly one tenant (admin), so the service token carries it.
    assert isinstance(claims["tenant_id"], str)


async def test_rfc7638_thumbprint_example() -> None:
    # The example key of RFC 7638 section 3.1 and its published thumbprint.
    rfc_n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3o"
        "knjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZ"
        "Hzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-"
        "kEgU8awapJzKnqDKgw"
    )
    assert jwk_thumbprint(rfc_n, "AQAB") == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


async def test_both_key_set_routes_agree(server: Harness, token: str) -> None:
    gateway = envelope(await server.call("GET", "/jwt/jwks"))["data"]
    warden = envelope(await server.call("GET", "/api/warden/jwks", token=token))["data"]
    assert gateway == warden
    assert error_code(await server.call("GET", "/api/warden/jwks")) == "missing_token"


async def test_unknown_psk_is_invalid_credentials(server: Harness) -> None:
    response = await server.call("POST", "/jwt/mint", {"method": "auth.self"}, token="f" * 64)
    assert response.status_code == 401
    assert error_code(response) == "invalid_credentials"
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert "f" * 64 not in response.text
    missing = await server.call("POST", "/jwt/mint", {"method": "auth.self"})
    assert error_code(missing) == "missing_token"


@pytest.mark.parametrize("body", [{"method": "auth.other"}, {}, {"method": 3}])
async def test_unknown_method_is_validation_failed(server: Harness, body: dict[str, object]) -> None:
    response = await server.call("POST", "/jwt/mint", body, token=server.psk)
    assert response.status_code == 400
    assert error_code(response) == "validation_failed"
    assert envelope(response)["details"]["field"] == "method"


async def test_mint_is_never_replayed_from_the_idempotency_store(server: Harness) -> None:
    headers = {"Idempotency-Key": "same-key"}
    first = await server.call("POST", "/jwt/mint", {"method": "auth.self"}, token=server.psk, headers=headers)
    second = await server.call("POST", "/jwt/mint", {"method": "auth.self"}, token=server.psk, headers=headers)
    assert "idempotent-replayed" not in second.headers
    assert envelope(first)["data"]["access_token"] != envelope(second)["data"]["access_token"]


async def test_minted_tokens_are_counted(server: Harness) -> None:
    for _ in range(3):
        await server.mint()
    await server.call("POST", "/jwt/mint", {"method": "auth.self"}, token="0" * 64)  # refused: not counted
    assert "dominus_local_tokens_minted_total 3\n" in await server.metrics()


async def test_project_and_environment_come_from_settings() -> None:
    settings = LocalSettings(bcrypt_rounds=4, project_slug="shop", environment="staging", audience="shop-api")
    async for harness in start(settings):
        token = await harness.mint()
        claims = jwt.decode(token, options={"verify_signature": False})
        assert (claims["project_slug"], claims["environment"], claims["aud"]) == ("shop", "staging", "shop-api")
        ok = await harness.call("GET", "/api/health/ping", token=token)
        assert ok.status_code == 200


async def test_signing_key_and_psk_persist_in_the_data_dir(data_dir: Path) -> None:
    settings = LocalSettings(data_dir=data_dir, bcrypt_rounds=4)
    async for first in start(settings):
        token = await first.mint()
        kid = envelope(await first.call("GET", "/jwt/jwks"))["data"]["keys"][0]["kid"]
        psk = first.psk
    for name in ("signing_key.pem", "psk", "warden.key"):
        assert stat.S_IMODE(os.stat(data_dir / name).st_mode) == 0o600, name
    # The databases hold token digests and live reset links: private too, whatever the umask.
    databases = sorted(data_dir.glob("*.db*"))
    assert databases
    for path in databases:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert (data_dir / "psk").read_text().strip() == psk
    assert len(psk) == 64 and all(c in "0123456789abcdef" for c in psk)
    async for second in start(LocalSettings(data_dir=data_dir, bcrypt_rounds=4)):
        assert second.psk == psk
        assert envelope(await second.call("GET", "/jwt/jwks"))["data"]["keys"][0]["kid"] == kid
        # A token issued before the restart is still good.
        assert (await second.call("GET", "/api/health/ping", token=token)).status_code == 200


async def test_configured_psk_wins_and_is_never_shown(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("DOMINUS_TOKEN", "e" * 64)
    settings = LocalSettings(data_dir=data_dir, bcrypt_rounds=4)
    assert "e" * 64 not in repr(settings)
    async for harness in start(settings):
        assert harness.psk == "e" * 64
        assert not (data_dir / "psk").exists()
        assert "e" * 64 not in repr(harness.app.state)
        await harness.mint("e" * 64)


async def test_memory_instances_get_their_own_random_psk() -> None:
    psks = []
    for _ in range(2):
        async for harness in start(LocalSettings(bcrypt_rounds=4)):
            psks.append(harness.psk)
            await harness.mint()
    assert psks[0] != psks[1]
    assert all(len(p) == 64 for p in psks)
