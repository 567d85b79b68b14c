"""An embedded backend that cannot start fails at once with a typed error that names the cause."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from dominus_fastapi import Dominus, DominusError, ValidationError
from dominus_local.app import create_app
from dominus_local.settings import LocalSettings

GENEROUS_BOUND = 30.0
"""Seconds; the start-up timeout that used to be hit is 60 s. Not a performance assertion."""


async def test_short_token_fails_at_once_with_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    token = "short-token-14"
    monkeypatch.setenv("DOMINUS_TOKEN", token)
    started = time.monotonic()
    async with Dominus(base_url="embedded:") as client:
        with pytest.raises(ValidationError) as refused:
            await client.health.ping()
        with pytest.raises(ValidationError):  # and again on the next call, as fast
            await client.secrets.list()
    assert time.monotonic() - started < 5.0
    error = refused.value
    assert "DOMINUS_TOKEN (or token=) is 14 characters; the embedded backend needs at least 32" in error.message
    assert error.details == {"field": "token", "reason": "at least 32 characters"}
    assert token not in str(error) and token not in repr(error)


async def test_any_start_up_failure_is_a_dominus_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The instance itself refuses its setting (here the server's own PSK variable): a typed error, quickly."""
    secret = "too-short-server-psk"
    monkeypatch.setenv("DOMINUS_LOCAL_PSK", secret)
    started = time.monotonic()
    async with Dominus(base_url=f"embedded://{tmp_path}") as client:
        with pytest.raises(DominusError) as failed:
            await client.health.ping()
    assert time.monotonic() - started < GENEROUS_BOUND
    assert isinstance(failed.value, ValidationError)
    assert "the embedded backend cannot start" in failed.value.message and "at least 32" in failed.value.message
    assert secret not in str(failed.value)


async def test_the_lifespan_raises_after_reporting_the_failure() -> None:
    """As Starlette does: ``lifespan.startup.failed`` is sent, then the exception is raised, so that
    ``LifespanManager`` stops waiting at once instead of at its start-up timeout."""
    app = create_app(LocalSettings(psk=SecretStr("x" * 10), bcrypt_rounds=4))
    started = time.monotonic()
    with pytest.raises(ValueError, match="at least 32 characters"):
        async with LifespanManager(app, startup_timeout=GENEROUS_BOUND):
            pass
    assert time.monotonic() - started < GENEROUS_BOUND
