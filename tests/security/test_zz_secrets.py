"""Secrets hygiene, run last (the ``zz`` keeps it after the other reliability and security tests).

Every PSK, password and token that the reliability and security suites used was registered with ``WATCH``;
every log record of those tests, every error message and repr they saw, and the output of every subprocess
server were captured. This test adds a flow of its own that is rich in failures (wrong PSKs, wrong passwords,
refused and revoked tokens, reprs of every object that holds a credential) and then scans all of it.
"""

from __future__ import annotations

import logging
import secrets

import pytest
from pydantic import SecretStr

from dominus_fastapi import DominusError
from dominus_fastapi.core.settings import DominusSettings
from dominus_local import LocalSettings
from dominus_local.security import credentials
from tests.conftest import InProcessServer, make_fast
from tests.reliability.ledger import WATCH


async def test_a_failure_rich_flow_leaks_nothing(
    local_server: InProcessServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    psk = WATCH.secret(local_server.psk)
    wrong_psk = WATCH.secret(secrets.token_hex(32))
    password = WATCH.secret("hygiene-password-" + secrets.token_hex(4))
    wrong_password = WATCH.secret("hygiene-wrong-" + secrets.token_hex(4))
    client = local_server.client()
    make_fast(client)
    impostor = local_server.client(token=wrong_psk)
    make_fast(impostor)
    try:
        await client.auth.add_user("hygiene", password, email="hygiene@example.com")
        session = await client.portal.login("hygiene", password)
        token = WATCH.secret(session["access_token"])
        WATCH.secret(session["refresh_token"])
        robot = await client.auth.create_client("hygiene-robot")
        WATCH.secret(robot["psk"])
        attempts = [
            impostor.secrets.list(),
            client.portal.login("hygiene", wrong_password),
            client.portal.login_client(wrong_psk),
            client.portal.refresh(WATCH.secret(secrets.token_urlsafe(32))),
            client.portal.change_password(wrong_password, "new-" + password, user_token=token),
            client.as_user(token).secrets.list(),
            client.validate_jwt(token + "x"),
        ]
        for attempt in attempts:
            try:
                await attempt
            except DominusError as exc:
                WATCH.capture_error(exc)
        await client.portal.logout(user_token=token)
        try:
            await client.portal.me(user_token=token)
        except DominusError as exc:
            WATCH.capture_error(exc)
        for holder in (
            client,
            impostor,
            client.as_user(token),
            DominusSettings(token=psk),
            LocalSettings(psk=SecretStr(psk)),
            credentials(local_server.local.state),
            SecretStr(password),
        ):
            WATCH.capture(f"repr({type(holder).__name__})", repr(holder))
            WATCH.capture(f"str({type(holder).__name__})", str(holder))
    finally:
        await client.aclose()
        await client._transport.http.aclose()
        await impostor.aclose()
        await impostor._transport.http.aclose()
    WATCH.capture_all("caplog", (record.getMessage() for record in caplog.records))
    WATCH.capture("caplog text", caplog.text)


def test_no_secret_in_any_captured_text() -> None:
    leaks = WATCH.leaks()
    assert len(WATCH.secrets) >= 8, "the suites registered their secrets"
    assert WATCH.text_count >= 20, "the suites captured texts to scan"
    assert leaks == []
