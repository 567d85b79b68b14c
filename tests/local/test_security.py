"""Credential helpers of ``dominus_local.security`` and the idempotency store's takeover of abandoned keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from dominus_local.errors import ApiError
from dominus_local.idempotency import IN_PROGRESS_LEASE_SECONDS, IdempotencyStore
from dominus_local.security import (
    SigningKey,
    TokenSigner,
    generate_psk,
    generate_token,
    hash_password,
    hash_password_async,
    load_credentials,
    psk_digest,
    token_digest,
    verify_password,
    verify_password_async,
)
from dominus_local.settings import LocalSettings
from dominus_local.stores.database import Database

from .conftest import Clock


def test_passwords_are_bcrypt_hashed_and_checked() -> None:
    hashed = hash_password("correct horse", rounds=4)
    assert hashed.startswith("$2b$04$")
    assert "correct horse" not in hashed
    assert verify_password("correct horse", hashed)
    assert not verify_password("wrong horse", hashed)
    assert not verify_password("correct horse", None)
    assert not verify_password("x" * 73, hashed)
    assert not verify_password("correct horse", "not a bcrypt hash")


async def test_password_helpers_run_off_the_event_loop() -> None:
    hashed = await hash_password_async("s3cret-pass", 4)
    assert await verify_password_async("s3cret-pass", hashed)


def test_psks_and_opaque_tokens() -> None:
    psk = generate_psk()
    assert re.fullmatch(r"[0-9a-f]{64}", psk)
    assert generate_psk() != psk
    token = generate_token()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)  # 256 bits, base64url without padding
    assert psk_digest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert token_digest("abc") == psk_digest("abc")


def test_short_configured_psk_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        load_credentials(LocalSettings(psk=SecretStr("too-short")))


def test_signer_round_trip_with_an_injected_clock() -> None:
    clock = Clock(1_000_000.0)
    signer = TokenSigner(SigningKey.generate(), issuer="dominus-local", clock=clock)
    token = signer.issue_token({"sub": "s", "subject_type": "client"}, ttl=60)
    claims = signer.verify_token(token)
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (1_000_000, 1_000_000, 1_000_060)
    clock.advance(64.9)
    signer.verify_token(token)
    clock.advance(0.2)
    with pytest.raises(ApiError) as info:
        signer.verify_token(token)
    assert (info.value.code, info.value.status) == ("token_expired", 401)
    assert token not in info.value.message


def test_key_file_is_reused(tmp_path: Path) -> None:
    first = load_credentials(LocalSettings(data_dir=tmp_path))
    second = load_credentials(LocalSettings(data_dir=tmp_path))
    assert first.signer.key.kid == second.signer.key.kid
    assert first.psk == second.psk
    assert (first.psk_created, second.psk_created) == (True, False)
    assert first.psk not in repr(first)


async def test_abandoned_in_progress_key_is_taken_over() -> None:
    from dominus_local.idempotency import idempotency_keys

    db = Database("sqlite+aiosqlite://")
    async with db.begin() as conn:
        await conn.run_sync(idempotency_keys.create, checkfirst=True)
    clock = Clock(5_000.0)
    store = IdempotencyStore(db, clock=clock)
    try:
        assert await store.claim("client", "c1", "k", "fp") is None
        with pytest.raises(ApiError) as busy:
            await store.claim("client", "c1", "k", "fp")
        assert busy.value.code == "idempotency_in_progress"
        # The process that held the key died without finishing: after the lease a retry runs afresh.
        clock.advance(IN_PROGRESS_LEASE_SECONDS + 1)
        assert await store.claim("client", "c1", "k", "fp") is None
        await store.finish("client", "c1", "k", 200, b"e30=")
        replay = await store.claim("client", "c1", "k", "fp")
        assert replay is not None and (replay.status, replay.body) == (200, b"e30=")
        clock.advance(24 * 3600 + 1)
        assert await store.purge_expired() == 1
    finally:
        await db.dispose()
