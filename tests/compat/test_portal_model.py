"""Whom a Portal session call acts for: never the service when a user's answer was asked for.

The table ``SESSION_CALLS`` holds every Portal method that acts for a signed-in subject. For each one:

- a plain (stateless) client raises ``AuthorizationError`` before sending, also right after a user signed in
  through it, and so does ``dominus_fastapi.dominus``;
- a ``remember_login`` client (the ``dominus`` package's object) answers for the user who signed in, and its
  answer differs from the service's (an administrator client, which sees the admin page and has no profile);
- after ``logout`` the ``remember_login`` client raises again.

The server is a real in-memory ``dominus_local`` with the demo data (``local_server``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from dominus_fastapi import AuthenticationError, AuthorizationError, Dominus, ValidationError
from dominus_fastapi.core.default import DefaultDominus
from dominus_fastapi.core.namespaces.portal import PortalNamespace
from dominus_local.seed import DEFAULT_DEMO_PASSWORD, seed_demo
from tests.conftest import InProcessServer, make_fast

ADMIN_PAGE = "/dashboard/admin/users"

Call = Callable[[PortalNamespace], Awaitable[Any]]

SESSION_CALLS: dict[str, Call] = {
    "me": lambda p: p.me(),
    "get_navigation": lambda p: p.get_navigation(),
    "check_page_access": lambda p: p.check_page_access(ADMIN_PAGE),
    "refresh": lambda p: p.refresh(),
    "switch_tenant": lambda p: p.switch_tenant("globex"),
    "change_password": lambda p: p.change_password(DEFAULT_DEMO_PASSWORD, "another-password"),
    "list_sessions": lambda p: p.list_sessions(),
    "revoke_session": lambda p: p.revoke_session(str(uuid.uuid4())),
    "revoke_all_sessions": lambda p: p.revoke_all_sessions(),
    "get_profile": lambda p: p.get_profile(),
    "update_profile": lambda p: p.update_profile(display_name="Demo"),
    "get_preferences": lambda p: p.get_preferences(),
    "update_preferences": lambda p: p.update_preferences(theme="dark"),
    "logout": lambda p: p.logout(),
}
"""Every session call of spec 7.9 (``refresh`` without a refresh token)."""


def test_the_table_covers_every_session_endpoint_of_the_catalogue() -> None:
    """Every Portal endpoint that takes a user's token (auth ``user`` or ``service_or_user``) is in the table."""
    catalogue = json.loads((Path(__file__).resolve().parents[2] / "docs" / "endpoints.json").read_text())
    names = {
        e["python"][0].removeprefix("portal.")
        for e in catalogue
        if e["service"] == "portal" and e["auth"] in ("user", "service_or_user")
    }
    assert names == set(SESSION_CALLS)


@pytest.fixture
async def demo(local_server: InProcessServer) -> InProcessServer:
    await seed_demo(local_server.local.state)
    return local_server


def portal_requests(server: InProcessServer) -> int:
    counts = server.local.metrics.requests
    return sum(value for (_, path, _), value in counts.items() if path.startswith("/api/portal"))


@pytest.fixture
async def plain(demo: InProcessServer) -> AsyncIterator[Dominus]:
    client = demo.client()
    make_fast(client)
    try:
        yield client
    finally:
        await client.aclose()
        await client._transport.http.aclose()


@pytest.fixture
async def remembering(demo: InProcessServer) -> AsyncIterator[Dominus]:
    client = demo.client(remember_login=True)
    make_fast(client)
    try:
        yield client
    finally:
        await client.aclose()
        await client._transport.http.aclose()


@pytest.mark.parametrize("name", SESSION_CALLS)
async def test_plain_client_never_answers_for_the_service(name: str, demo: InProcessServer, plain: Dominus) -> None:
    login = await plain.portal.login("demo", DEFAULT_DEMO_PASSWORD)
    sent = portal_requests(demo)
    with pytest.raises(AuthorizationError) as refused:
        await SESSION_CALLS[name](plain.portal)
    assert portal_requests(demo) == sent  # refused before sending
    error = refused.value
    assert error.status_code is None
    assert error.details == {"field": "user_token", "reason": "no user session on this client"}
    assert f"client.as_user(token).portal.{name}(" in error.message and "user_token=" in error.message
    assert login["access_token"] not in str(error) and demo.psk not in str(error)
    # The user's session is there for whoever holds its token.
    assert (await plain.as_user(login["access_token"]).portal.me())["user"]["username"] == "demo"


async def test_the_module_level_default_client_is_stateless(demo: InProcessServer) -> None:
    """``dominus_fastapi.dominus`` serves the requests of many users: one's login never answers another's."""
    client = DefaultDominus()
    client._transport = demo.client()._transport  # the default client, bound to the test server
    await client.portal.login("demo", DEFAULT_DEMO_PASSWORD)
    for call in SESSION_CALLS.values():
        with pytest.raises(AuthorizationError):
            await call(client.portal)
    await client._transport.http.aclose()


async def _service_answers(client: Dominus) -> dict[str, Any]:
    """What the service itself gets: the admin page, the Administration menu, and no profile."""
    answers: dict[str, Any] = {
        "me": await client.portal.me(as_service=True),
        "check_page_access": await client.portal.check_page_access(ADMIN_PAGE, as_service=True),
        "get_navigation": await client.portal.get_navigation(as_service=True),
    }
    assert answers["me"]["subject_type"] == "client"
    assert answers["check_page_access"]["allowed"] is True
    assert "Administration" in [item["title"] for item in answers["get_navigation"]["items"]]
    return answers


@pytest.mark.parametrize("name", SESSION_CALLS)
async def test_remembering_client_acts_for_the_signed_in_user(name: str, remembering: Dominus) -> None:
    service = await _service_answers(remembering)
    login = await remembering.portal.login("demo", DEFAULT_DEMO_PASSWORD, "acme")
    user_id = login["user"]["id"]
    portal = remembering.portal
    if name == "revoke_session":
        answer = await portal.revoke_session(login["session_id"])  # its own session: forgotten
        assert answer["session_id"] == login["session_id"]
    else:
        answer = await SESSION_CALLS[name](portal)
    if name == "me":
        assert answer["user"]["id"] == user_id and answer["session_id"] == login["session_id"]
        assert answer != service["me"]
    elif name == "get_navigation":
        assert "Administration" not in [item["title"] for item in answer["items"]]
    elif name == "check_page_access":
        assert answer["allowed"] is False and answer != service["check_page_access"]
    elif name == "refresh":
        assert answer["session_id"] == login["session_id"] and answer["refresh_token"] != login["refresh_token"]
        assert (await portal.me())["user"]["id"] == user_id
        with pytest.raises(AuthenticationError):  # the old refresh token was rotated out
            await remembering.portal.refresh(refresh_token=login["refresh_token"])
        return  # reusing the old token ended the session
    elif name == "switch_tenant":
        assert answer["tenant"]["slug"] == "globex"
        me = await portal.me()
        assert me["tenant"]["slug"] == "globex" and me["user"]["id"] == user_id
    elif name == "change_password":
        assert answer["changed"] is True
        assert (await portal.me())["user"]["id"] == user_id
    elif name == "list_sessions":
        assert [(s["id"], s["current"]) for s in answer["items"]] == [(login["session_id"], True)]
    elif name in ("get_profile", "update_profile"):
        assert answer["user_id"] == user_id
    elif name in ("get_preferences", "update_preferences"):
        assert answer["theme"] == ("dark" if name == "update_preferences" else "system")
    elif name == "revoke_all_sessions":
        assert answer["revoked_count"] == 0
    if name not in ("logout", "revoke_session"):
        assert (await portal.me())["user"]["id"] == user_id
        await portal.logout()
    # Signed out: the object acts for nobody, and never falls back to the service.
    for call in (portal.me, portal.get_navigation, portal.get_profile):
        with pytest.raises(AuthorizationError) as refused:
            await call()
        assert refused.value.status_code is None


async def test_remembering_client_session_rules(demo: InProcessServer, remembering: Dominus) -> None:
    portal = remembering.portal
    first = await portal.login("demo", DEFAULT_DEMO_PASSWORD)
    # A failed login leaves the object signed out rather than acting for the previous user.
    with pytest.raises(AuthenticationError):
        await portal.login("admin", "wrong-password")
    with pytest.raises(AuthorizationError):
        await portal.me()
    # A client session is never remembered.
    kiosk = await remembering.auth.create_client("kiosk")
    await portal.login_client(kiosk["psk"])
    with pytest.raises(AuthorizationError):
        await portal.me()
    # An explicit token still wins over the remembered session.
    second = await portal.login("admin", "dominus-admin")
    assert (await portal.me(user_token=first["access_token"]))["user"]["username"] == "demo"
    assert (await portal.me())["user"]["username"] == "admin"
    # Other namespaces keep the service credential.
    assert "admin" in [r["name"] for r in (await remembering.auth.list_roles())["items"]]
    remembered = repr(remembering._portal_session)
    assert second["access_token"] not in remembered and second["refresh_token"] not in remembered
    await remembering.aclose()
    assert remembering._portal_session is None


async def test_views_tokens_and_the_service_opt_in(plain: Dominus) -> None:
    login = await plain.portal.login("demo", DEFAULT_DEMO_PASSWORD)
    view = plain.as_user(login["access_token"])
    assert (await view.portal.me())["user"]["username"] == "demo"
    assert (await view.portal.check_page_access(ADMIN_PAGE))["allowed"] is False
    assert (await plain.portal.check_page_access(ADMIN_PAGE, login["access_token"]))["allowed"] is False
    assert (await plain.portal.me(as_service=True))["subject_type"] == "client"
    with pytest.raises(ValidationError) as both:
        await plain.portal.me(login["access_token"], as_service=True)
    assert both.value.details["field"] == "as_service"
    refreshed = await plain.portal.refresh(refresh_token=login["refresh_token"])  # no session needed
    assert refreshed["session_id"] == login["session_id"]
    await view.portal.logout()
    with pytest.raises(AuthenticationError):
        await view.portal.me()
