"""Profile and preferences: defaults, PUT-update semantics (absent keeps, ``None`` clears) and validation."""

from __future__ import annotations

from typing import Any

import pytest

from dominus_fastapi import AuthorizationError, ValidationError
from tests.portal.conftest import PASSWORD, Env


async def _session(env: Env) -> str:
    await env.client.auth.add_user("alice", PASSWORD, email="alice@example.com")
    return (await env.client.portal.login("alice", PASSWORD))["access_token"]


async def test_profile_is_created_on_first_use_and_updated_field_by_field(env: Env) -> None:
    token = await _session(env)
    portal = env.client.as_user(token).portal
    profile = await portal.get_profile()
    assert profile["display_name"] is None and profile["extra"] == {} and profile["updated_at"]
    me = await portal.me()
    assert me["user"] is not None and profile["user_id"] == me["user"]["id"]

    updated = await portal.update_profile(display_name="Alice A.", bio="Line one\nLine two", extra={"team": "blue"})
    assert updated["display_name"] == "Alice A." and updated["bio"] == "Line one\nLine two"
    assert updated["extra"] == {"team": "blue"}
    kept = await portal.update_profile(phone="+33 1 23 45 67 89")
    assert kept["display_name"] == "Alice A." and kept["phone"] == "+33 1 23 45 67 89"
    cleared = await portal.update_profile(display_name=None, extra={"lang": "fr"})
    assert cleared["display_name"] is None and cleared["extra"] == {"lang": "fr"}
    assert cleared["bio"] == "Line one\nLine two"
    avatar = await portal.update_profile(avatar_url="https://cdn.example.com/a.png")
    assert avatar["avatar_url"] == "https://cdn.example.com/a.png"
    assert await portal.get_profile() == avatar

    # The display name is what Portal's own mail calls the user.
    await portal.update_profile(display_name="Alice Liddell")
    await env.client.portal.request_password_reset("alice@example.com")
    _, mail = await env.outbox_link("alice@example.com", "password-reset")
    assert mail["model"]["name"] == "Alice Liddell" and mail["text_body"].startswith("Hello Alice Liddell,")


async def test_profile_validation_changes_nothing(env: Env) -> None:
    token = await _session(env)
    portal = env.client.as_user(token).portal
    before = await portal.update_profile(display_name="Alice")
    bad: list[tuple[dict[str, Any], str]] = [
        ({"display_name": "x" * 129}, "display_name"),
        ({"display_name": "tab\there"}, "display_name"),
        ({"avatar_url": "javascript:alert(1)"}, "avatar_url"),
        ({"avatar_url": "https://" + "a" * 2048}, "avatar_url"),
        ({"bio": "b" * 2001}, "bio"),
        ({"phone": "1" * 33}, "phone"),
        ({"extra": None}, "extra"),
        ({"extra": ["not", "an", "object"]}, "extra"),
    ]
    for fields, name in bad:
        with pytest.raises(ValidationError) as caught:
            await portal.update_profile(**{"bio": "changed", **fields})
        assert caught.value.details["field"] == name, fields
    assert await portal.get_profile() == before


async def test_preferences_defaults_updates_and_validation(env: Env) -> None:
    token = await _session(env)
    portal = env.client.as_user(token).portal
    defaults = await portal.get_preferences()
    assert {k: v for k, v in defaults.items() if k != "updated_at"} == {
        "theme": "system",
        "language": "en",
        "timezone": "UTC",
        "sidebar_collapsed": False,
        "notifications_enabled": True,
        "email_notifications": True,
        "extra": {},
    }
    changed = await portal.update_preferences(theme="dark", language="pt-BR", timezone="Europe/Paris")
    assert (changed["theme"], changed["language"], changed["timezone"]) == ("dark", "pt-BR", "Europe/Paris")
    flags = await portal.update_preferences(sidebar_collapsed=True, email_notifications=False, extra={"x": 1})
    assert flags["sidebar_collapsed"] is True and flags["email_notifications"] is False
    assert flags["theme"] == "dark" and flags["extra"] == {"x": 1}

    bad: list[dict[str, Any]] = [
        {"theme": "neon"},
        {"language": "not a tag"},
        {"timezone": "Mars/Olympus_Mons"},
        {"timezone": "../etc/passwd"},
        {"theme": None},
        {"sidebar_collapsed": "yes"},
        {"notifications_enabled": None},
    ]
    for fields in bad:
        with pytest.raises(ValidationError) as caught:
            await portal.update_preferences(**{"language": "de", **fields})
        assert caught.value.details["field"] == next(iter(fields))
    assert await portal.get_preferences() == flags


async def test_profile_and_preferences_are_for_user_sessions_only(env: Env) -> None:
    with pytest.raises(AuthorizationError):
        await env.client.portal.get_profile()  # the service token
    with pytest.raises(AuthorizationError):
        await env.client.portal.update_preferences(theme="dark")
