"""Courier: templates and their required fields, the four wrappers, and the admin-only outbox."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from dominus_fastapi import AuthorizationError, NotFoundError, ValidationError
from tests.portal.conftest import PASSWORD, Env

SENDER = "team@acme.test"


async def test_send_renders_into_the_outbox(env: Env) -> None:
    sent = await env.client.courier.send(
        "welcome",
        "Ann@Example.com, bob@example.com",
        SENDER,
        {"name": "Ann & Co", "product_name": "Acme", "plan": "gold"},
        tag="onboarding",
        reply_to="help@acme.test",
    )
    assert sent["to"] == "Ann@Example.com, bob@example.com" and sent["submitted_at"].endswith("Z")
    page = await env.client.courier.outbox()
    assert page["total"] == 1
    mail = page["items"][0]
    assert mail["message_id"] == sent["message_id"] and mail["submitted_at"] == sent["submitted_at"]
    assert mail["from"] == SENDER and mail["template_alias"] == "welcome"
    assert mail["subject"] == "Welcome to Acme"
    assert "Hello Ann & Co," in mail["text_body"] and "Hello Ann &amp; Co," in mail["html_body"]
    assert mail["model"] == {"name": "Ann & Co", "product_name": "Acme", "plan": "gold"}
    assert mail["delivered"] is False and mail["delivery_error"] is None
    # Each recipient finds it, whatever the letter case.
    assert (await env.client.courier.outbox(to="ann@example.COM"))["total"] == 1
    assert (await env.client.courier.outbox(to="bob@example.com"))["total"] == 1
    assert (await env.client.courier.outbox(to="carl@example.com"))["total"] == 0


async def test_wrappers_fill_the_model_and_tag_and_keep_call_options_out(env: Env) -> None:
    courier = env.client.courier
    await courier.send_welcome("a@example.com", SENDER, "Ann", "Acme", action_url="https://acme.test/start", team="x")
    await courier.send_password_reset("a@example.com", SENDER, "Ann", "https://acme.test/reset?token=1", "Acme")
    await courier.send_email_verification(
        "a@example.com", SENDER, "Ann", "https://acme.test/verify?token=2", "Acme", timeout=5.0, max_retries=0
    )
    await courier.send_invitation(
        "a@example.com",
        SENDER,
        "Ann",
        "https://acme.test/invite?token=3",
        "Grace",
        "Acme",
        idempotency_key="invite-ann-1",
        role="viewer",
    )
    items = {m["template_alias"]: m for m in (await courier.outbox(to="a@example.com"))["items"]}
    assert set(items) == {"welcome", "password-reset", "email-verification", "invitation"}
    assert items["welcome"]["model"] == {
        "name": "Ann",
        "product_name": "Acme",
        "action_url": "https://acme.test/start",
        "team": "x",
    }
    assert "https://acme.test/start" in items["welcome"]["text_body"]
    assert items["password-reset"]["model"]["action_url"] == "https://acme.test/reset?token=1"
    assert items["email-verification"]["model"] == {
        "name": "Ann",
        "action_url": "https://acme.test/verify?token=2",
        "product_name": "Acme",
    }
    assert items["invitation"]["model"]["role"] == "viewer"
    assert items["invitation"]["model"]["inviter_name"] == "Grace"
    for mail in items.values():
        assert not {"timeout", "max_retries", "idempotency_key"} & set(mail["model"])
    # The idempotency key was honoured: the same call again is a replay, not a second message.
    again = await courier.send_invitation(
        "a@example.com",
        SENDER,
        "Ann",
        "https://acme.test/invite?token=3",
        "Grace",
        "Acme",
        idempotency_key="invite-ann-1",
        role="viewer",
    )
    assert again["message_id"] == items["invitation"]["message_id"]
    assert (await courier.outbox(template_alias="invitation"))["total"] == 1


async def test_outbox_order_filters_and_limit(env: Env) -> None:
    courier = env.client.courier
    ids = []
    for index in range(3):
        env.clock.advance(timedelta(seconds=1))
        sent = await courier.send_welcome(f"u{index}@example.com", SENDER, f"U{index}", "Acme")
        ids.append(sent["message_id"])
    await courier.send_password_reset("u0@example.com", SENDER, "U0", "https://acme.test/r", "Acme")
    page = await courier.outbox(limit=2, template_alias="welcome")
    assert page["total"] == 3 and len(page["items"]) == 2
    newest_first = [m["message_id"] for m in (await courier.outbox(template_alias="welcome"))["items"]]
    assert newest_first == ids[::-1]
    assert (await courier.outbox(to="u0@example.com"))["total"] == 2
    with pytest.raises(ValidationError):
        await courier.outbox(limit=0)
    with pytest.raises(ValidationError):
        await courier.outbox(limit=1001)


async def test_send_refusals(env: Env) -> None:
    courier = env.client.courier
    with pytest.raises(ValidationError) as missing:
        await courier.send("password-reset", "a@example.com", SENDER, {"name": "Ann"})
    assert missing.value.details["missing"] == ["action_url", "product_name"]
    with pytest.raises(NotFoundError):
        await courier.send("newsletter", "a@example.com", SENDER, {})
    with pytest.raises(ValidationError) as too_many:  # checked before sending
        await courier.send_welcome([f"u{i}@example.com" for i in range(51)], SENDER, "All", "Acme")
    assert too_many.value.details["field"] == "to"
    for to, sender, field in (
        ("not-an-address", SENDER, "to"),
        ("a@example.com, b@@example.com", SENDER, "to"),
        ("a@example.com", "Acme <team@acme.test>", "from"),
        ("a@example.com\r\nBcc: x@example.com", SENDER, "to"),
    ):
        with pytest.raises(ValidationError) as bad:
            await courier.send_welcome(to, sender, "Ann", "Acme")
        assert bad.value.details["field"] == field
    fifty = await courier.send_welcome(", ".join(f"u{i}@example.com" for i in range(50)), SENDER, "All", "Acme")
    assert fifty["message_id"]
    assert (await courier.outbox())["total"] == 1  # nothing refused was kept


async def test_outbox_is_admin_only(env: Env) -> None:
    plain = await env.client.auth.create_client("mailer")
    other = await env.other_client(plain["psk"])
    try:
        sent = await other.courier.send_welcome("a@example.com", SENDER, "Ann", "Acme")  # any service token sends
        assert sent["message_id"]
        with pytest.raises(AuthorizationError):
            await other.courier.outbox()
    finally:
        await other.aclose()
    await env.client.auth.add_user("alice", PASSWORD, email="alice@example.com")
    session = await env.client.portal.login("alice", PASSWORD)
    with pytest.raises(AuthorizationError):  # session tokens never reach service endpoints
        await env.client.as_user(session["access_token"]).courier.outbox()


async def test_health_reports_portal_and_courier(env: Env) -> None:
    document = await env.client.health.check()
    assert document["services"]["portal"]["status"] == "up"
    courier = document["services"]["courier"]
    relay = "up" if os.environ.get("DOMINUS_LOCAL_MAIL_URL") else "not_configured"  # the backend test run
    assert courier["status"] == "up" and courier["outbox"] == "up" and courier["smtp"] == relay
