"""Registration with e-mail verification, password reset and invitations, with the mail read from the outbox."""

from __future__ import annotations

import urllib.parse
from datetime import timedelta

import pytest

from dominus_fastapi import AuthenticationError, AuthorizationError, ConflictError, Dominus, ValidationError
from tests.portal.conftest import PASSWORD, Env


async def test_registration_verification_mail_verify_then_login(env: Env) -> None:
    tenant = await env.client.auth.create_tenant("Acme", "acme")
    registered = await env.client.portal.register("dave", "Dave@Example.com", PASSWORD, "acme")
    assert registered["verification"] == "sent"
    assert registered["user"]["status"] == "pending" and registered["user"]["username"] == "dave"
    tenants = await env.client.auth.get_user_tenants(registered["user"]["id"])
    assert [t["id"] for t in tenants["items"]] == [tenant["id"]]

    with pytest.raises(AuthorizationError) as pending:
        await env.client.portal.login("dave", PASSWORD)
    assert pending.value.code == "account_inactive" and pending.value.details["status"] == "pending"

    token, mail = await env.outbox_link("dave@example.com", "email-verification")
    assert mail["to"] == "Dave@Example.com" and mail["from"] == "no-reply@dominus.local"
    assert mail["subject"] == "Confirm your e-mail address for Dominus"
    assert mail["model"]["name"] == "dave" and mail["model"]["product_name"] == "Dominus"
    assert mail["model"]["action_url"].startswith("http://localhost:8000/verify-email?token=")

    verified = await env.client.portal.verify_email(token)
    assert verified["verified"] is True and verified["user"]["status"] == "active"
    login = await env.client.portal.login("dave@example.com", PASSWORD)
    assert login["tenant"] is not None and login["tenant"]["id"] == tenant["id"]

    with pytest.raises(ValidationError) as reused:
        await env.client.portal.verify_email(token)
    assert reused.value.details["field"] == "token"


async def test_registration_refusals_change_nothing(env: Env) -> None:
    await env.client.auth.create_tenant("Acme", "acme")
    off = await env.client.auth.create_tenant("Closed", "closed")
    await env.client.auth.update_tenant(off["id"], status="inactive")
    await env.client.portal.register("dave", "dave@example.com", PASSWORD, "acme")

    with pytest.raises(ConflictError) as name_taken:
        await env.client.portal.register("DAVE", "other@example.com", PASSWORD, "acme")
    assert name_taken.value.details["field"] == "username"
    with pytest.raises(ConflictError) as mail_taken:
        await env.client.portal.register("erin", "DAVE@example.com", PASSWORD, "acme")
    assert mail_taken.value.details["field"] == "email"
    for tenant in ("nowhere", "closed"):
        with pytest.raises(ValidationError) as bad_tenant:  # 422 unprocessable
            await env.client.portal.register("erin", "erin@example.com", PASSWORD, tenant)
        assert bad_tenant.value.status_code == 422 and bad_tenant.value.details["field"] == "tenant_id"
    cases = [
        ("er in", "erin@example.com", PASSWORD, "username"),
        ("erin", "erin-at-example.com", PASSWORD, "email"),
        ("erin", "erin@example.com", "seven77", "password"),
        ("erin", "erin@example.com", "é" * 37, "password"),  # 74 bytes in UTF-8
    ]
    for username, email, password, field in cases:
        with pytest.raises(ValidationError) as invalid:
            await env.client.portal.register(username, email, password, "acme")
        assert invalid.value.status_code == 400 and invalid.value.details["field"] == field

    users = await env.client.auth.list_users()
    assert [u["username"] for u in users["items"]] == ["dave"]
    outbox = await env.client.courier.outbox(template_alias="email-verification")
    assert outbox["total"] == 1


async def test_resend_verification_replaces_the_link(env: Env) -> None:
    await env.client.auth.create_tenant("Acme", "acme")
    await env.client.portal.register("dave", "dave@example.com", PASSWORD, "acme")
    first, _ = await env.outbox_link("dave@example.com", "email-verification")
    env.clock.advance(timedelta(seconds=1))  # the outbox is newest first
    assert await env.client.portal.resend_verification("dave@example.com") == {"sent": True}
    assert await env.client.portal.resend_verification("nobody@example.com") == {"sent": True}
    second, _ = await env.outbox_link("dave@example.com", "email-verification")
    assert first != second
    assert (await env.client.courier.outbox(to="nobody@example.com"))["total"] == 0
    with pytest.raises(ValidationError):
        await env.client.portal.verify_email(first)
    assert (await env.client.portal.verify_email(second))["verified"] is True
    # An active user gets no further verification mail.
    await env.client.portal.resend_verification("dave@example.com")
    assert (await env.client.courier.outbox(template_alias="email-verification"))["total"] == 2


async def test_verification_link_expires_after_24_hours(env: Env) -> None:
    await env.client.auth.create_tenant("Acme", "acme")
    await env.client.portal.register("dave", "dave@example.com", PASSWORD, "acme")
    token, _ = await env.outbox_link("dave@example.com", "email-verification")
    env.clock.advance(timedelta(hours=24, seconds=1))
    with pytest.raises(ValidationError) as expired:
        await env.client.portal.verify_email(token)
    assert expired.value.details == {"field": "token", "reason": "has expired"}


async def test_password_reset_answers_the_same_for_unknown_addresses(env: Env) -> None:
    user = await env.client.auth.add_user("alice", PASSWORD, email="alice@example.com")
    first = await env.client.portal.login("alice", PASSWORD)
    second = await env.client.portal.login("alice", PASSWORD)

    known = await env.client.portal.request_password_reset("ALICE@example.com")
    unknown = await env.client.portal.request_password_reset("nobody@example.com")
    assert known == unknown == {"requested": True}
    assert (await env.client.courier.outbox(to="nobody@example.com"))["total"] == 0
    token, mail = await env.outbox_link("alice@example.com", "password-reset")
    assert mail["model"]["action_url"].startswith("http://localhost:8000/reset-password?token=")

    with pytest.raises(ValidationError) as short:
        await env.client.portal.confirm_password_reset(token, "short")
    assert short.value.details["field"] == "new_password"
    assert await env.client.portal.confirm_password_reset(token, "brand new password") == {"reset": True}
    for token_ in (first["access_token"], second["access_token"]):  # every session ended
        with pytest.raises(AuthenticationError) as revoked:
            await env.client.portal.me(user_token=token_)
        assert revoked.value.code == "session_revoked"
    await env.client.portal.login("alice", "brand new password")

    with pytest.raises(ValidationError) as used:
        await env.client.portal.confirm_password_reset(token, "another new password")
    assert used.value.details == {"field": "token", "reason": "has already been used"}
    with pytest.raises(ValidationError) as bogus:
        await env.client.portal.confirm_password_reset("not-a-real-token", "another new password")
    assert bogus.value.details["field"] == "token"

    # Inactive users get no reset mail either, and the answer does not change.
    await env.client.auth.update_user(user["id"], status="inactive")
    assert await env.client.portal.request_password_reset("alice@example.com") == {"requested": True}
    assert (await env.client.courier.outbox(template_alias="password-reset"))["total"] == 1


async def test_reset_link_lasts_one_hour_and_a_newer_one_replaces_it(env: Env) -> None:
    await env.client.auth.add_user("alice", PASSWORD, email="alice@example.com")
    await env.client.portal.request_password_reset("alice@example.com")
    older, _ = await env.outbox_link("alice@example.com", "password-reset")
    env.clock.advance(timedelta(seconds=1))
    await env.client.portal.request_password_reset("alice@example.com")
    newer, _ = await env.outbox_link("alice@example.com", "password-reset")
    with pytest.raises(ValidationError):
        await env.client.portal.confirm_password_reset(older, "brand new password")
    env.clock.advance(timedelta(hours=1, seconds=1))
    with pytest.raises(ValidationError) as expired:
        await env.client.portal.confirm_password_reset(newer, "brand new password")
    assert expired.value.details["reason"] == "has expired"
    await env.client.portal.login("alice", PASSWORD)  # the password never changed


async def test_invited_user_accepts_and_is_logged_in(env: Env) -> None:
    tenant = await env.client.auth.create_tenant("Acme", "acme")
    invited = await env.client.auth.create_user("frank", "frank@example.com", status="invited", inviter_name="Grace")
    assert invited["status"] == "invited" and invited["invitation_sent"] is True
    await env.client.auth.add_user_tenants(invited["id"], [tenant["id"]])

    token, mail = await env.outbox_link("frank@example.com", "invitation")
    assert mail["model"]["inviter_name"] == "Grace" and mail["subject"] == "Grace invited you to Dominus"
    assert mail["model"]["action_url"].startswith("http://localhost:8000/accept-invitation?token=")

    with pytest.raises(ValidationError):
        await env.client.portal.accept_invitation(token, "short")
    accepted = await env.client.portal.accept_invitation(token, "frank's password")
    assert accepted["user"]["status"] == "active" and accepted["user"]["id"] == invited["id"]
    assert accepted["tenant"] is not None and accepted["tenant"]["id"] == tenant["id"]
    me = await env.client.portal.me(user_token=accepted["access_token"])
    assert me["session_id"] == accepted["session_id"]
    refreshed = await env.client.portal.refresh(refresh_token=accepted["refresh_token"])
    assert refreshed["session_id"] == accepted["session_id"]

    with pytest.raises(ValidationError) as again:
        await env.client.portal.accept_invitation(token, "another password")
    assert again.value.details["field"] == "token"
    await env.client.portal.login("frank", "frank's password")


async def test_invitation_defaults_and_expiry(env: Env) -> None:
    invited = await env.client.auth.create_user("gina", "gina@example.com", status="invited")
    token, mail = await env.outbox_link("gina@example.com", "invitation")
    assert mail["model"]["inviter_name"] == "Dominus"  # the product name, when no inviter is named
    env.clock.advance(timedelta(days=7, seconds=1))
    with pytest.raises(ValidationError) as expired:
        await env.client.portal.accept_invitation(token, "gina's password")
    assert expired.value.details["reason"] == "has expired"
    assert (await env.client.auth.get_user(invited["id"]))["status"] == "invited"


async def test_configured_product_links_and_registration_without_verification(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOMINUS_LOCAL_BCRYPT_ROUNDS", "4")
    monkeypatch.setenv("DOMINUS_LOCAL_REQUIRE_EMAIL_VERIFICATION", "false")
    monkeypatch.setenv("DOMINUS_LOCAL_PRODUCT_NAME", "Acme Portal")
    monkeypatch.setenv("DOMINUS_LOCAL_MAIL_FROM", "hello@acme.test")
    monkeypatch.setenv("DOMINUS_LOCAL_PASSWORD_RESET_URL", "https://app.acme.test/reset?lang=en")
    async with Dominus(base_url="embedded:") as client:
        await client.auth.create_tenant("Acme", "acme")
        registered = await client.portal.register("dave", "dave@example.com", PASSWORD, "acme")
        assert registered["verification"] == "not_required" and registered["user"]["status"] == "active"
        assert (await client.courier.outbox(template_alias="email-verification"))["total"] == 0
        await client.portal.login("dave", PASSWORD)

        await client.portal.request_password_reset("dave@example.com")
        mail = (await client.courier.outbox(to="dave@example.com"))["items"][0]
        assert mail["from"] == "hello@acme.test" and mail["subject"] == "Reset your Acme Portal password"
        assert mail["model"]["product_name"] == "Acme Portal"
        url = urllib.parse.urlsplit(mail["model"]["action_url"])
        assert (url.scheme, url.netloc, url.path) == ("https", "app.acme.test", "/reset")
        query = urllib.parse.parse_qs(url.query)
        assert query["lang"] == ["en"] and len(query["token"][0]) >= 43


async def test_deleting_a_user_removes_its_portal_data(env: Env) -> None:
    user = await env.client.auth.add_user("alice", PASSWORD, email="alice@example.com")
    login = await env.client.portal.login("alice", PASSWORD)
    await env.client.portal.update_profile(display_name="Alice", user_token=login["access_token"])
    await env.client.portal.update_preferences(theme="dark", user_token=login["access_token"])
    await env.client.portal.request_password_reset("alice@example.com")
    token, _ = await env.outbox_link("alice@example.com", "password-reset")
    await env.client.auth.delete_user(user["id"])
    with pytest.raises(ValidationError):
        await env.client.portal.confirm_password_reset(token, "brand new password")
    again = await env.client.auth.add_user("alice", PASSWORD, email="alice@example.com")
    fresh = await env.client.portal.login("alice", PASSWORD)
    profile = await env.client.portal.get_profile(user_token=fresh["access_token"])
    assert profile["user_id"] == again["id"] and profile["display_name"] is None
