"""Refused input (``*_hash`` fields, malformed fields) and secrets kept out of logs, reprs and errors."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from dominus_fastapi import AuthenticationError, DominusError, ValidationError
from dominus_local.stores.mail import MailMessage
from dominus_local.validate import utcnow
from tests.portal.conftest import PASSWORD, Env


async def test_hash_fields_are_refused_on_portal_endpoints(env: Env) -> None:
    await env.client.auth.add_user("alice", PASSWORD, email="alice@example.com")
    session = await env.client.portal.login("alice", PASSWORD)
    attempts: list[tuple[str, dict[str, Any], str | None]] = [
        ("/api/portal/auth/login", {"username": "alice", "password_hash": "$2b$12$abc"}, None),
        ("/api/portal/register", {"username": "bob", "email": "b@example.com", "password_hash": "x"}, None),
        ("/api/portal/security/confirm-reset", {"token_hash": "x", "new_password": PASSWORD}, None),
        (
            "/api/portal/security/change-password",
            {"current_password": PASSWORD, "new_password_hash": "x"},
            session["access_token"],
        ),
    ]
    for path, body, token in attempts:
        with pytest.raises(ValidationError) as caught:
            await env.client.request(
                "POST", path, body=body, user_token=token, auth="user" if token else "service", replay=False
            )
        field = next(name for name in body if name.endswith("_hash"))
        assert caught.value.status_code == 400 and caught.value.details["field"] == field
    users = await env.client.auth.list_users()
    assert [u["username"] for u in users["items"]] == ["alice"]
    await env.client.portal.login("alice", PASSWORD)  # the password is unchanged


async def test_malformed_fields_name_the_field(env: Env) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/api/portal/auth/login", {"password": PASSWORD}, "username"),
        ("/api/portal/auth/login", {"username": "alice", "password": 12345678}, "password"),
        ("/api/portal/auth/login", {"username": "alice", "password": PASSWORD, "tenant_id": 7}, "tenant_id"),
        ("/api/portal/auth/login-client", {}, "psk"),
        ("/api/portal/security/request-reset", {"email": "nobody"}, "email"),
        ("/api/portal/security/confirm-reset", {"new_password": PASSWORD}, "token"),
        ("/api/portal/register/verify", {"token": ""}, "token"),
        ("/api/portal/register/resend-verification", {}, "email"),
        ("/api/portal/register/accept-invitation", {"token": "t", "password": "x" * 73}, "password"),
        ("/api/courier/send", {"template_alias": "welcome", "to": "a@example.com", "model": {}}, "from"),
        ("/api/courier/send", {"template_alias": "welcome", "to": "a@x.test", "from": "b@x.test"}, "model"),
    ]
    for path, body, field in cases:
        with pytest.raises(ValidationError) as caught:
            await env.client.request("POST", path, body=body, replay=False)
        assert caught.value.status_code == 400, (path, body)
        assert caught.value.details["field"] == field, (path, body)
        assert field in caught.value.message


async def test_no_secret_in_logs_reprs_or_errors(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = env.client
    secrets: list[str] = [PASSWORD, env.psk]
    errors: list[BaseException] = []

    async def refused(call: Any) -> None:
        try:
            await call
        except DominusError as exc:
            errors.append(exc)
        else:  # pragma: no cover - every call below must fail
            raise AssertionError("expected a refusal")

    created = await client.auth.create_client("kiosk")
    secrets.append(created["psk"])
    await client.auth.create_tenant("Acme", "acme")
    await client.auth.add_user("alice", PASSWORD, email="alice@example.com")
    login = await client.portal.login("alice", PASSWORD)
    secrets += [login["access_token"], login["refresh_token"]]
    refreshed = await client.portal.refresh(refresh_token=login["refresh_token"])
    secrets += [refreshed["access_token"], refreshed["refresh_token"]]
    client_session = await client.portal.login_client(created["psk"])
    secrets.append(client_session["access_token"])
    await client.portal.change_password(PASSWORD, "second secret pw", user_token=refreshed["access_token"])
    secrets.append("second secret pw")
    await client.portal.request_password_reset("alice@example.com")
    reset, _ = await env.outbox_link("alice@example.com", "password-reset")
    secrets.append(reset)
    await client.portal.confirm_password_reset(reset, "third secret pw")
    secrets.append("third secret pw")
    await client.portal.register("bob", "bob@example.com", "bob's secret pw", "acme")
    secrets.append("bob's secret pw")
    verify, _ = await env.outbox_link("bob@example.com", "email-verification")
    secrets.append(verify)

    await refused(client.portal.login("alice", "a wrong secret pw"))
    secrets.append("a wrong secret pw")
    await refused(client.portal.login_client("0" * 64))
    secrets.append("0" * 64)
    await refused(client.portal.refresh(refresh_token=login["refresh_token"]))  # reuse
    await refused(client.portal.refresh(refresh_token="unknown-refresh-token-value-0123456789abcdef"))
    secrets.append("unknown-refresh-token-value-0123456789abcdef")
    await refused(client.portal.me(user_token=refreshed["access_token"]))
    await refused(client.portal.confirm_password_reset(reset, "fourth secret pw"))
    secrets.append("fourth secret pw")
    await refused(client.portal.accept_invitation(verify, "fifth secret pw"))
    secrets.append("fifth secret pw")
    await refused(client.portal.change_password("sixth secret pw", "x", user_token=client_session["access_token"]))
    secrets.append("sixth secret pw")

    view = client.as_user(login["access_token"])
    # The database driver's own debug trace echoes bound parameters, among them the outbox rows, which hold
    # the mailed links by design (spec 7.10); every other logger, ours (which logs each request) included.
    records = [r for r in caplog.records if not r.name.startswith(("aiosqlite", "sqlalchemy"))]
    assert any(r.name == "dominus_fastapi" and "/api/portal/" in r.getMessage() for r in records)
    texts = [record.getMessage() for record in records]
    texts += [str(exc) for exc in errors] + [repr(exc) for exc in errors]
    texts += [repr(exc.details) for exc in errors if isinstance(exc, DominusError)]
    texts += [repr(client), repr(view), repr(env.state)]
    message = MailMessage(
        message_id="m",
        to=("a@example.com",),
        from_address="b@example.com",
        template_alias="password-reset",
        subject="s",
        text_body="t",
        html_body="h",
        model={"action_url": f"https://x.test/?token={reset}"},
        submitted_at=utcnow(),
    )
    texts.append(repr(message))
    assert len(errors) == 8 and all(isinstance(e, DominusError) for e in errors)
    assert any(isinstance(e, AuthenticationError) for e in errors)
    for secret in secrets:
        for text in texts:
            assert secret not in text, "a secret leaked into a log line, repr or error message"
