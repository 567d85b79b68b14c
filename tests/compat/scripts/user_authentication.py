"""The reference README's User Authentication (Portal) block, with the demo users.

The module-level ``dominus`` keeps the session of its last login, so ``me``, navigation, page access,
profile, preferences and sessions answer for the signed-in user, never for the service.
"""

import asyncio
import os
import urllib.parse

os.environ["DOMINUS_TOKEN"] = "your-psk-token"

from dominus import AuthorizationError, dominus


async def token_mailed_to(address, alias):
    """The token of the newest mail of ``alias`` to ``address`` (the outbox of the local server)."""
    mail = (await dominus.courier.outbox(to=address, template_alias=alias))["items"][0]
    query = urllib.parse.urlsplit(mail["model"]["action_url"]).query
    return urllib.parse.parse_qs(query)["token"][0]


async def main():
    kiosk = await dominus.auth.create_client("kiosk")

    # User login (tenant_id is optional)
    session = await dominus.portal.login(
        username="user@example.com",
        password="dominus-user",
        tenant_id="acme"  # optional
    )

    # Client login with PSK (for service-to-service)
    client_session = await dominus.portal.login_client(psk=kiosk["psk"])
    assert client_session["access_token"] != session["access_token"]

    # Get current user
    me = await dominus.portal.me()
    assert me["user"]["username"] == "demo" and me["session_id"] == session["session_id"]

    # Get navigation (access-filtered for current user)
    nav = await dominus.portal.get_navigation()
    titles = [item["title"] for item in nav["items"]]
    assert "Administration" not in titles and "Reports" not in titles  # acme: no reports for demo

    # Check page access
    has_access = await dominus.portal.check_page_access("/dashboard/admin/users")
    assert has_access["allowed"] is False
    assert (await dominus.portal.check_page_access("/dashboard"))["allowed"] is True

    # Switch tenant
    await dominus.portal.switch_tenant("globex")
    assert (await dominus.portal.me())["tenant"]["slug"] == "globex"
    assert "Reports" in [item["title"] for item in (await dominus.portal.get_navigation())["items"]]

    # Profile & preferences
    profile = await dominus.portal.get_profile()
    await dominus.portal.update_profile(display_name="John Doe")
    assert profile["user_id"] == me["user"]["id"]
    assert (await dominus.portal.get_profile())["display_name"] == "John Doe"

    prefs = await dominus.portal.get_preferences()
    await dominus.portal.update_preferences(theme="dark", timezone="America/New_York")
    assert prefs["theme"] == "system"
    assert (await dominus.portal.get_preferences())["timezone"] == "America/New_York"

    # Password management
    await dominus.portal.change_password("dominus-user", "new-password-1")
    await dominus.portal.request_password_reset("user@example.com")
    reset_token = await token_mailed_to("user@example.com", "password-reset")

    # Session management
    sessions = await dominus.portal.list_sessions()
    assert [s["current"] for s in sessions["items"]] == [True]
    await dominus.portal.revoke_all_sessions()
    await dominus.portal.revoke_session(session["session_id"])  # the current one: forgotten
    try:
        await dominus.portal.me()
    except AuthorizationError as e:
        assert e.status_code is None  # refused before sending: never the service's identity
    else:
        raise AssertionError("after revoking its session the object is signed out")

    await dominus.portal.confirm_password_reset(reset_token, "new-password-2")
    again = await dominus.portal.login("demo", "new-password-2")
    assert (await dominus.portal.me())["session_id"] == again["session_id"]

    # Registration & email verification
    await dominus.portal.register("newuser", "new@example.com", "new-user-password", "acme")
    await dominus.portal.verify_email(await token_mailed_to("new@example.com", "email-verification"))
    await dominus.portal.resend_verification("new@example.com")

    # Logout
    await dominus.portal.logout()
    for call in (dominus.portal.me(), dominus.portal.get_navigation(),
                 dominus.portal.check_page_access("/dashboard/admin/users")):
        try:
            await call
        except AuthorizationError:
            pass
        else:
            raise AssertionError("after logout the object acts for nobody")
    await dominus.aclose()
    print("ok")


asyncio.run(main())
