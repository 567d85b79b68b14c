"""Every ``portal.*`` and ``courier.*`` name of ``docs/endpoints.json`` exists and is called against the server."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from dominus_fastapi import DominusError
from dominus_fastapi.core.namespaces.courier import CourierNamespace
from dominus_fastapi.core.namespaces.portal import PortalNamespace
from tests.portal.conftest import PASSWORD, Env

CATALOGUE = Path(__file__).resolve().parents[2] / "docs" / "endpoints.json"
NAMESPACES: dict[str, type[Any]] = {"portal": PortalNamespace, "courier": CourierNamespace}


def catalogue_names() -> set[str]:
    names: set[str] = set()
    for entry in json.loads(CATALOGUE.read_text("utf-8")):
        names.update(name for name in entry["python"] if name.split(".")[0] in NAMESPACES)
    return names


def test_every_catalogue_name_exists_as_a_coroutine_method() -> None:
    names = catalogue_names()
    assert len(names) == 22 + 6
    for name in sorted(names):
        namespace, method = name.split(".")
        member = getattr(NAMESPACES[namespace], method, None)
        assert member is not None, f"{name} is missing from the client"
        assert inspect.iscoroutinefunction(member), f"{name} is not a coroutine function"
        parameters = inspect.signature(member).parameters
        for option in ("timeout", "max_retries"):
            assert parameters[option].kind is inspect.Parameter.KEYWORD_ONLY, f"{name} lacks {option}="


@pytest.fixture
def called(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Records each Portal/Courier method whose request reached the server (answered, successfully or not)."""
    seen: set[str] = set()

    def recording(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(method)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                result = await method(*args, **kwargs)
            except DominusError as exc:
                if exc.status_code is not None:
                    seen.add(name)
                raise
            seen.add(name)
            return result

        return wrapper

    for namespace, cls in NAMESPACES.items():
        for attr, member in list(vars(cls).items()):
            if not attr.startswith("_") and inspect.iscoroutinefunction(member):
                monkeypatch.setattr(cls, attr, recording(f"{namespace}.{attr}", member))
    return seen


async def test_every_catalogue_name_is_called_against_the_server(env: Env, called: set[str]) -> None:
    client = env.client
    portal, courier = client.portal, client.courier
    tenant = await client.auth.create_tenant("Acme", "acme")
    user = await client.auth.add_user("alice", PASSWORD, email="alice@example.com")
    await client.auth.add_user_tenants(user["id"], [tenant["id"]])
    created = await client.auth.create_client("kiosk")

    login = await portal.login("alice", PASSWORD)
    token = login["access_token"]
    await portal.login_client(created["psk"])
    refreshed = await portal.refresh(refresh_token=login["refresh_token"])
    token = refreshed["access_token"]
    await portal.me(user_token=token)
    token = (await portal.switch_tenant("acme", user_token=token))["access_token"]
    await portal.get_profile(user_token=token)
    await portal.update_profile(display_name="Alice", user_token=token)
    await portal.get_preferences(user_token=token)
    await portal.update_preferences(theme="light", user_token=token)
    await portal.get_navigation(user_token=token)
    await portal.check_page_access("/dashboard", user_token=token)
    second = await portal.login("alice", PASSWORD)
    await portal.list_sessions(user_token=token)
    await portal.revoke_session(second["session_id"], user_token=token)
    await portal.revoke_all_sessions(user_token=token)
    await portal.change_password(PASSWORD, "second password", user_token=token)
    await portal.request_password_reset("alice@example.com")
    reset_token, _ = await env.outbox_link("alice@example.com", "password-reset")
    await portal.confirm_password_reset(reset_token, "third password")
    fresh = await portal.login("alice", "third password")
    await portal.logout(user_token=fresh["access_token"])

    await portal.register("bob", "bob@example.com", PASSWORD, "acme")
    await portal.resend_verification("bob@example.com")
    verify_token, _ = await env.outbox_link("bob@example.com", "email-verification")
    await portal.verify_email(verify_token)
    await client.auth.create_user("carol", "carol@example.com", status="invited")
    invite_token, _ = await env.outbox_link("carol@example.com", "invitation")
    await portal.accept_invitation(invite_token, "carol's password")

    await courier.send("welcome", "x@example.com", "team@acme.test", {"name": "X", "product_name": "Acme"})
    await courier.send_welcome("x@example.com", "team@acme.test", "X", "Acme")
    await courier.send_password_reset("x@example.com", "team@acme.test", "X", "https://acme.test/r", "Acme")
    await courier.send_email_verification("x@example.com", "team@acme.test", "X", "https://acme.test/v", "Acme")
    await courier.send_invitation("x@example.com", "team@acme.test", "X", "https://acme.test/i", "Grace", "Acme")
    await courier.outbox()

    missing = catalogue_names() - called
    assert not missing, f"never called against the server: {sorted(missing)}"
