"""The example app through HTTP, in-process: its lifespan runs (``LifespanManager``) on an embedded backend
with the demo data, and a browser-like ``httpx`` client signs in through the portal router's form sign-in.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from dominus_fastapi import Dominus, SecureTableError
from dominus_fastapi.testing import APP_ORIGIN, mailed_token
from example_app import create_app

HTML = {"Accept": "text/html"}
ADMIN = ("admin", "dominus-admin")
DEMO = ("demo", "dominus-user")


@asynccontextmanager
async def browser(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping client that sends ``Origin`` on writes, like a browser on the app's own pages."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=APP_ORIGIN, headers={"Origin": APP_ORIGIN}
    ) as http:
        yield http


async def sign_in(http: httpx.AsyncClient, username: str, password: str, next_path: str = "/dashboard") -> None:
    response = await http.post("/auth/login", data={"username": username, "password": password, "next": next_path})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == next_path
    assert "dominus_session" in http.cookies


def nav_titles(html: str) -> list[str]:
    nav = html.split('id="nav"', 1)[1].split('class="app-links"', 1)[0]
    return re.findall(r">([^<>]+)</(?:a|span)>", nav)


async def test_anonymous_visitors_go_to_the_login_form(dominus_app_client: httpx.AsyncClient) -> None:
    home = await dominus_app_client.get("/", headers=HTML)
    assert home.status_code == 303 and home.headers["location"] == "/login"
    login = await dominus_app_client.get("/login", headers=HTML)
    assert login.status_code == 200
    assert 'action="/auth/login"' in login.text and 'name="password"' in login.text
    page = await dominus_app_client.get("/dashboard/files", headers=HTML)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/dashboard/files"
    api = await dominus_app_client.get("/api/me")
    assert api.status_code == 401 and api.json()["code"] == "not_authenticated"


async def test_wrong_password_returns_to_the_form_with_a_message(dominus_asgi_app: Any) -> None:
    async with browser(dominus_asgi_app) as http:
        response = await http.post("/auth/login", data={"username": "admin", "password": "nope-nope", "next": "/x"})
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?error=invalid_credentials")
        form = await http.get(response.headers["location"], headers=HTML)
        assert form.status_code == 401 and "Wrong username or password." in form.text
        assert "dominus_session" not in http.cookies


async def test_sign_out_ends_the_session(dominus_asgi_app: Any) -> None:
    async with browser(dominus_asgi_app) as http:
        await sign_in(http, *DEMO)
        token = http.cookies["dominus_session"]
        out = await http.post("/auth/logout", data={"next": "/login?notice=signed_out"})
        assert out.status_code == 303 and out.headers["location"] == "/login?notice=signed_out"
        assert "dominus_session" not in http.cookies
        assert "You are signed out." in (await http.get(out.headers["location"], headers=HTML)).text
        http.cookies.set("dominus_session", token)  # the old cookie, replayed, no longer opens a page
        replayed = await http.get("/dashboard", headers=HTML)
        assert replayed.status_code == 303 and replayed.headers["location"] == "/login?next=/dashboard"


async def test_navigation_and_admin_page_differ_between_admin_and_demo(dominus_asgi_app: Any) -> None:
    async with browser(dominus_asgi_app) as admin, browser(dominus_asgi_app) as demo:
        await sign_in(admin, *ADMIN)
        await sign_in(demo, *DEMO)
        admin_dash = await admin.get("/dashboard", headers=HTML)
        demo_dash = await demo.get("/dashboard", headers=HTML)
        assert admin_dash.status_code == demo_dash.status_code == 200
        assert nav_titles(admin_dash.text) == ["Dashboard", "Reports", "Files", "Admin", "Users"]
        assert nav_titles(demo_dash.text) == ["Dashboard", "Files"]  # acme is not a retail tenant: no Reports

        users = await admin.get("/dashboard/admin/users", headers=HTML)
        assert users.status_code == 200 and "user@example.com" in users.text
        refused = await demo.get("/dashboard/admin/users", headers=HTML)
        assert refused.status_code == 403 and "missing_scope" in refused.text
        assert "Users is not open to you" in refused.text and "An administrator can give you a role" in refused.text
        assert 'id="sign-out"' in refused.text and 'href="/login"' not in refused.text  # still the signed-in layout

        assert (await admin.get("/api/users")).json()["total"] == 2
        api_refused = await demo.get("/api/users")
        assert api_refused.status_code == 403 and api_refused.json()["code"] == "page_access_denied"
        admin_nav = (await admin.get("/api/navigation")).json()["items"]
        demo_nav = (await demo.get("/api/navigation")).json()["items"]
        assert [item["title"] for item in admin_nav] == ["Dashboard", "Reports", "Files", "Admin"]
        assert [item["title"] for item in demo_nav] == ["Dashboard", "Files"]


async def test_switching_tenant_changes_the_dashboard(dominus_asgi_app: Any) -> None:
    async with browser(dominus_asgi_app) as demo:
        await sign_in(demo, *DEMO)
        before = await demo.get("/dashboard", headers=HTML)
        assert 'id="tenant-name">Acme Health<' in before.text
        refused = await demo.get("/dashboard/reports", headers=HTML)
        assert refused.status_code == 403
        assert "Reports exists in Globex Retail, where your roles give you access" in refused.text
        assert '<input type="hidden" name="tenant_id" value="globex">' in refused.text  # the switch offered

        switched = await demo.post("/auth/switch-tenant", json={"tenant_id": "globex"})
        assert switched.status_code == 200 and switched.json()["tenant"]["slug"] == "globex"
        after = await demo.get("/dashboard", headers=HTML)
        assert 'id="tenant-name">Globex Retail<' in after.text
        assert nav_titles(after.text) == ["Dashboard", "Reports", "Files"]
        assert (await demo.get("/dashboard/reports", headers=HTML)).status_code == 200
        assert (await demo.get("/api/me")).json()["tenant"]["slug"] == "globex"


async def test_reports_are_audited_per_tenant_and_bad_input_writes_nothing(
    dominus_asgi_app: Any, dominus: Dominus
) -> None:
    async with browser(dominus_asgi_app) as admin:
        await sign_in(admin, *ADMIN)
        form = {"title": "Q3 revenue", "amount": "1234.5", "note": "preliminary", "reason": "quarterly close"}
        added = await admin.post("/dashboard/reports", data=form)
        assert added.status_code == 303 and added.headers["location"] == "/dashboard/reports"
        shown = await admin.get("/dashboard/reports", headers=HTML)
        assert 'class="flash ok" role="status">Row added.<' in shown.text
        assert "Row added." not in (await admin.get("/dashboard/reports", headers=HTML)).text  # shown once
        crafted = await admin.get("/dashboard/reports?ok=Call+us+now", headers=HTML)
        assert "Call us now" not in crafted.text  # messages never come from the URL

        bad = await admin.post("/dashboard/reports", data={"title": " ", "amount": "lots", "reason": ""},
                               headers=HTML)
        assert bad.status_code == 400
        for line in ("Title: is required", "Amount: enter a number, such as 1250 or 99.90",
                     "Reason: needs at least 3 characters"):
            assert f"<li>{line}</li>" in bad.text
        api_bad = await admin.post("/api/reports", json={"title": "x", "amount": "1", "reason": ""})
        assert api_bad.status_code == 422 and api_bad.json()["detail"][0]["loc"] == ["body", "reason"]

        page = await admin.get("/dashboard/reports", headers=HTML)
        assert page.text.count("<td>Q3 revenue</td>") == 1 and "1234.50" in page.text
        rows = (await admin.get("/api/reports", params={"reason": "test check"})).json()
        assert [(row["title"], row["author"]) for row in rows["rows"]] == [("Q3 revenue", "admin")]

        # The write and its reason are in the audit trail, and the table is secure: no reason, no read.
        audit = await dominus.logs.query(category="audit", search="tenant_acme.reports")
        assert any(entry["context"].get("reason") == "quarterly close" for entry in audit)
        assert "quarterly close" in page.text
        assert "<td>admin (admin@example.com)</td>" in page.text  # the actor by name, not by id
        assert 'id="audit-why"' in page.text  # why each view adds an audit entry
        with pytest.raises(SecureTableError):
            await dominus.db.query("reports", "tenant_acme")
        assert (await dominus.db.query("reports", "tenant_acme", reason="test", actor="machine"))["total"] == 1


async def test_files_upload_download_and_tenant_isolation(dominus_asgi_app: Any) -> None:
    content = bytes(range(256)) * 40 + b"\x00end"
    async with browser(dominus_asgi_app) as admin, browser(dominus_asgi_app) as demo:
        await sign_in(admin, *ADMIN)
        await sign_in(demo, *DEMO)
        uploaded = await admin.post(
            "/dashboard/files", files={"upload": ("data file.bin", content, "application/octet-stream")}
        )
        assert uploaded.status_code == 303, uploaded.text
        listing = await admin.get("/dashboard/files", headers=HTML)
        assert "data file.bin" in listing.text
        download = await admin.get("/dashboard/files/download", params={"path": "data file.bin"})
        assert download.status_code == 200 and download.content == content
        assert "attachment" in download.headers["content-disposition"]

        # The demo user reads acme's files but may not write them (no files.write).
        assert (await demo.get("/api/files/content", params={"path": "data file.bin"})).content == content
        refused = await demo.post("/api/files", files={"upload": ("x.txt", b"x", "text/plain")})
        assert refused.status_code == 403 and refused.json()["code"] == "missing_scope"
        assert 'id="upload-form"' not in (await demo.get("/dashboard/files", headers=HTML)).text

        # Another tenant sees none of them.
        assert (await demo.post("/auth/switch-tenant", json={"tenant_id": "globex"})).status_code == 200
        assert (await demo.get("/api/files")).json() == {"files": []}
        missing = await demo.get("/api/files/content", params={"path": "data file.bin"})
        assert missing.status_code == 404


async def test_view_counter_and_log_page(dominus_asgi_app: Any) -> None:
    async with browser(dominus_asgi_app) as admin:
        await sign_in(admin, *ADMIN)
        first = await admin.get("/dashboard", headers=HTML)
        second = await admin.get("/dashboard", headers=HTML)
        count = int(re.search(r'id="views">(\d+)<', first.text).group(1))  # type: ignore[union-attr]
        assert f'id="views">{count + 1}<' in second.text
        assert (await admin.post("/api/views")).json() == {"value": count + 2}

        await admin.post("/dashboard/files", files={"upload": ("log-me.txt", b"hi", "text/plain")})
        logs_page = await admin.get("/dashboard/logs", params={"search": "uploaded"}, headers=HTML)
        assert logs_page.status_code == 200 and "File uploaded" in logs_page.text
        entries = (await admin.get("/api/logs", params={"level": "info"})).json()["entries"]
        assert any(entry["message"] == "File uploaded" for entry in entries)
        assert (await admin.get("/api/logs", params={"level": "loud"})).status_code == 422


async def test_theme_preference_is_applied_to_the_page(dominus_asgi_app: Any) -> None:
    async with browser(dominus_asgi_app) as demo:
        await sign_in(demo, *DEMO)
        assert '<html lang="en" data-theme="system">' in (await demo.get("/dashboard", headers=HTML)).text
        saved = await demo.post("/dashboard/account/preferences", data={"theme": "dark"})
        assert saved.status_code == 303
        assert '<html lang="en" data-theme="dark">' in (await demo.get("/dashboard", headers=HTML)).text
        refused = await demo.post("/dashboard/account/preferences", data={"theme": "neon"})
        assert refused.status_code == 303
        account = await demo.get("/dashboard/account", headers=HTML)
        assert "theme: must be one of system, light, dark" in account.text
        assert '<html lang="en" data-theme="dark">' in account.text

        await demo.post("/dashboard/account/profile", data={"display_name": "Demo Person", "bio": "hello"})
        assert 'value="Demo Person"' in (await demo.get("/dashboard/account", headers=HTML)).text


def selected(html: str, name: str) -> str:
    """The value of the selected option of the ``<select name=...>`` in ``html``."""
    block = html.split(f'<select name="{name}"', 1)[1].split("</select>", 1)[0]
    return re.search(r'<option value="([^"]+)" selected>', block).group(1)  # type: ignore[union-attr]


async def test_invitation_through_the_outbox(dominus_asgi_app: Any, dominus: Dominus) -> None:
    async with browser(dominus_asgi_app) as admin, browser(dominus_asgi_app) as guest:
        await sign_in(admin, *ADMIN)
        form_page = (await admin.get("/dashboard/admin/users", headers=HTML)).text
        tenant_id, role_id = selected(form_page, "tenant_id"), selected(form_page, "role_id")  # acme, member
        invite = {"username": "carol", "email": "carol@example.com", "tenant_id": tenant_id, "role_id": role_id}
        before = (await dominus.auth.list_users())["total"]
        for bad_field, bad_value, message in (
            ("email", "nope", "E-mail: enter an e-mail address"),
            ("tenant_id", "00000000-0000-0000-0000-000000000000", "Tenant: choose the tenant"),
            ("role_id", "", "Role: choose the role"),
        ):
            bad = await admin.post("/dashboard/admin/users/invite", data={**invite, bad_field: bad_value},
                                   headers=HTML)
            assert bad.status_code == 400 and message in bad.text, bad_field
        assert (await dominus.auth.list_users())["total"] == before  # bad input created nobody
        invited = await admin.post("/dashboard/admin/users/invite", data=invite)
        assert invited.status_code == 303
        duplicate = await admin.post(
            "/dashboard/admin/users/invite", data={**invite, "email": "carol2@example.com"}, headers=HTML
        )
        assert duplicate.status_code == 400

        anonymous = await guest.get("/outbox", headers=HTML)  # the outbox holds live links: admins only
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=/outbox"
        outbox = await admin.get("/outbox", headers=HTML)
        assert "admin invited you" in outbox.text and "carol@example.com" in outbox.text
        link = re.search(r'class="action" href="([^"]+accept-invitation[^"]+)"', outbox.text).group(1)  # type: ignore[union-attr]
        token = parse_qs(urlsplit(link.replace("&amp;", "&")).query)["token"][0]
        assert token == await mailed_token(dominus, "carol@example.com", "invitation")

        mismatch = await guest.post("/accept-invitation", data={"token": token, "password": "carol-pass-1",
                                                                "confirm_password": "other-pass-1"}, headers=HTML)
        assert mismatch.status_code == 400 and "confirm_password" in mismatch.text
        accepted = await guest.post("/accept-invitation", data={"token": token, "password": "carol-pass-1",
                                                                "confirm_password": "carol-pass-1"})
        assert accepted.headers["location"] == "/login?notice=invitation_accepted"
        again = await guest.post("/accept-invitation", data={"token": token, "password": "carol-pass-1",
                                                             "confirm_password": "carol-pass-1"}, headers=HTML)
        assert again.status_code == 400 and "This invitation link has already been used" in again.text
        await sign_in(guest, "carol", "carol-pass-1")
        dashboard = await guest.get("/dashboard", headers=HTML)  # the invitation gave a tenant and a role
        assert dashboard.status_code == 200 and 'id="tenant-name">Acme Health<' in dashboard.text
        assert nav_titles(dashboard.text) == ["Dashboard", "Files"]

        # The JSON route takes the tenant and the role by slug or name; an unknown one creates nobody.
        api_invite = {"username": "dave", "email": "dave@example.com", "tenant": "globex", "role": "analyst"}
        for field, value in (("tenant", "nowhere"), ("role", "king")):
            unknown = await admin.post("/api/users/invitations", json={**api_invite, field: value})
            assert unknown.status_code == 422 and unknown.json()["detail"].startswith(f"{field}: no {field}")
        created = await admin.post("/api/users/invitations", json=api_invite)
        assert created.status_code == 201, created.text
        tenants = await dominus.auth.get_user_tenants(created.json()["id"])
        roles = await dominus.auth.get_user_roles(created.json()["id"])
        assert [t["slug"] for t in tenants["items"]] == ["globex"]
        assert [r["name"] for r in roles["items"]] == ["analyst"]


async def test_password_reset_through_the_outbox_ends_old_sessions(dominus_asgi_app: Any, dominus: Dominus) -> None:
    async with browser(dominus_asgi_app) as old, browser(dominus_asgi_app) as fresh:
        await sign_in(old, *DEMO)
        assert (await old.get("/dashboard", headers=HTML)).status_code == 200

        sent = await fresh.post("/forgot-password", data={"email": "user@example.com"}, headers=HTML)
        assert sent.status_code == 200 and 'id="reset-sent"' in sent.text
        token = await mailed_token(dominus, "user@example.com", "password-reset")
        form = await fresh.get("/reset-password", params={"token": token}, headers=HTML)
        assert f'value="{token}"' in form.text
        short = await fresh.post("/reset-password", data={"token": token, "new_password": "short",
                                                          "confirm_password": "short"}, headers=HTML)
        assert short.status_code == 400 and "new_password: must be at least 8 characters" in short.text
        done = await fresh.post("/reset-password", data={"token": token, "new_password": "brand-new-pass",
                                                         "confirm_password": "brand-new-pass"})
        assert done.headers["location"] == "/login?notice=password_reset"
        reused = await fresh.post("/reset-password", data={"token": token, "new_password": "another-pass",
                                                           "confirm_password": "another-pass"}, headers=HTML)
        assert reused.status_code == 400 and "This reset link has already been used" in reused.text
        assert 'href="/forgot-password" id="new-link"' in reused.text  # a new link is one click away

        ended = await old.get("/dashboard", headers=HTML)
        assert ended.status_code == 303 and ended.headers["location"].startswith("/login")
        assert "dominus_session" not in old.cookies  # the dead session's cookies were cleared
        refused = await fresh.post("/auth/login", data={"username": "demo", "password": "dominus-user"})
        assert refused.headers["location"].startswith("/login?error=invalid_credentials")
        await sign_in(fresh, "demo", "brand-new-pass")


async def test_change_password_ends_the_other_sessions(dominus_asgi_app: Any) -> None:
    async with browser(dominus_asgi_app) as here, browser(dominus_asgi_app) as elsewhere:
        await sign_in(here, *ADMIN)
        await sign_in(elsewhere, *ADMIN)
        wrong = await here.post("/dashboard/account/password", data={
            "current_password": "not-it-at-all", "new_password": "admin-pass-2", "confirm_password": "admin-pass-2"})
        assert wrong.status_code == 303
        assert "current_password: is wrong" in (await here.get("/dashboard/account", headers=HTML)).text
        changed = await here.post("/dashboard/account/password", data={
            "current_password": "dominus-admin", "new_password": "admin-pass-2", "confirm_password": "admin-pass-2"})
        assert changed.status_code == 303
        account = await here.get("/dashboard/account", headers=HTML)
        assert "Password changed; 1 other session(s) ended." in account.text
        assert (await here.get("/dashboard", headers=HTML)).status_code == 200
        assert (await elsewhere.get("/dashboard", headers=HTML)).status_code == 303


async def test_outbox_is_off_unless_enabled(dominus: Dominus) -> None:
    from asgi_lifespan import LifespanManager

    app = create_app(dev_outbox=False)
    async with LifespanManager(app) as manager, browser(manager.app) as http:
        response = await http.get("/outbox", headers=HTML)
        assert response.status_code == 404 and "Outbox" not in response.text.split("<main", 1)[1]
        await sign_in(http, *ADMIN)
        assert (await http.get("/outbox", headers=HTML)).status_code == 404
        assert "/outbox" not in (await http.get("/dashboard", headers=HTML)).text


async def test_outbox_and_logs_are_for_administrators(dominus_asgi_app: Any, dominus: Dominus) -> None:
    """A plain user sees neither the logs nor the outbox, in any of their tenants, as a page or as JSON, and
    learns nothing of their content; the outbox also needs a loopback peer (``tests/security`` tries more)."""
    marker = "log-marker-" + "7c1d"
    await dominus.logs.info(f"Entry {marker}", {"event": marker}, "example-app")
    await dominus.portal.request_password_reset("admin@example.com")  # a mail the outbox would show
    async with browser(dominus_asgi_app) as admin, browser(dominus_asgi_app) as demo:
        await sign_in(admin, *ADMIN)
        await sign_in(demo, *DEMO)
        assert (await admin.get("/outbox", headers=HTML)).status_code == 200
        logs = await admin.get("/dashboard/logs", headers=HTML)
        assert logs.status_code == 200 and marker in logs.text
        admin_nav = (await admin.get("/dashboard", headers=HTML)).text
        assert 'href="/outbox"' in admin_nav and 'href="/dashboard/logs"' in admin_nav

        refusals = 0
        for tenant in ("acme", "globex"):
            assert (await demo.post("/auth/switch-tenant", json={"tenant_id": tenant})).status_code == 200
            for path, accept in (("/outbox", HTML), ("/dashboard/logs", HTML), ("/outbox", {}),
                                 ("/dashboard/logs", {}), ("/api/logs", {}), ("/api/logs?search=" + marker, {})):
                refused = await demo.get(path, headers=accept)
                assert refused.status_code == 403, (tenant, path, accept)
                assert marker not in refused.text and "reset-password?token=" not in refused.text
                if accept:
                    assert "Only administrators" in refused.text and 'id="sign-out"' in refused.text
                else:
                    assert refused.json()["code"] == "admin_only"
                refusals += 1
            demo_nav = (await demo.get("/dashboard", headers=HTML)).text
            assert 'href="/outbox"' not in demo_nav and 'href="/dashboard/logs"' not in demo_nav
        assert refusals == 12

    # An administrator whose connection is not from loopback does not get the outbox either.
    transport = httpx.ASGITransport(app=dominus_asgi_app, client=("192.168.1.50", 51000))
    async with httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN, headers={"Origin": APP_ORIGIN}) as lan:
        await sign_in(lan, *ADMIN)
        remote = await lan.get("/outbox", headers=HTML)
        assert remote.status_code == 404 and "reset-password?token=" not in remote.text


async def test_a_user_without_access_gets_an_explanation_and_sign_out(
    dominus_asgi_app: Any, dominus: Dominus
) -> None:
    await dominus.auth.create_user("frank", "frank@example.com", "frank-pass-1")  # no tenant, no role
    async with browser(dominus_asgi_app) as frank:
        await sign_in(frank, "frank", "frank-pass-1")
        page = await frank.get("/dashboard", headers=HTML)
        assert page.status_code == 403
        assert "Your account has no access yet" in page.text and "add you to a tenant with a role" in page.text
        assert 'id="sign-out"' in page.text and 'id="no-access"' in page.text
        assert 'href="/login"' not in page.text
        signed_out = await frank.post("/auth/logout", data={"next": "/login?notice=signed_out"})
        assert signed_out.status_code == 303 and "dominus_session" not in frank.cookies


async def test_signed_in_pages_are_not_cached_and_login_skips_to_the_dashboard(dominus_asgi_app: Any) -> None:
    async with browser(dominus_asgi_app) as http:
        assert (await http.get("/login", headers=HTML)).headers["cache-control"] == "no-store"
        await sign_in(http, *ADMIN)
        for path in ("/dashboard", "/dashboard/account", "/dashboard/reports", "/no-such-page", "/api/me"):
            assert (await http.get(path, headers=HTML)).headers["cache-control"] == "no-store", path
        again = await http.get("/login", headers=HTML)
        assert again.status_code == 303 and again.headers["location"] == "/dashboard"
        for path, kind in (("/static/style.css", "text/css"), ("/favicon.ico", "image/svg+xml"),
                           ("/static/favicon.svg", "image/svg+xml")):
            static = await http.get(path)
            assert static.status_code == 200 and static.headers["content-type"].startswith(kind), path
            assert "no-store" not in static.headers.get("cache-control", "")
        dashboard = (await http.get("/dashboard", headers=HTML)).text
        assert 'rel="icon" href="/static/favicon.svg"' in dashboard and 'class="skip-link" href="#main"' in dashboard


async def test_the_administration_tenant_start_page(dominus_asgi_app: Any) -> None:
    """The backend's navigation links ``/admin`` in the Administration tenant: the app has that page."""
    async with browser(dominus_asgi_app) as admin:
        await sign_in(admin, *ADMIN)
        assert (await admin.post("/auth/switch-tenant", json={"tenant_id": "admin"})).status_code == 200
        dashboard = await admin.get("/dashboard", headers=HTML)
        assert 'href="/admin"' in dashboard.text
        page = await admin.get("/admin", headers=HTML)
        assert page.status_code == 200 and 'id="admin-summary"' in page.text
        assert "<strong>2</strong> user(s)" in page.text


async def test_sessions_name_the_browser_and_can_be_ended(dominus_asgi_app: Any) -> None:
    agent = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
    async with browser(dominus_asgi_app) as mine, browser(dominus_asgi_app) as other:
        other.headers["User-Agent"] = agent
        await sign_in(mine, *ADMIN)
        await sign_in(other, *ADMIN)
        account = (await mine.get("/dashboard/account", headers=HTML)).text
        # Each session shows its visitor's browser (forwarded as end_user_agent), not the SDK's client.
        assert "<strong>Firefox on Linux</strong>" in account and "<strong>a Python program (httpx)</strong>" in account
        assert "dominus-fastapi" not in account.split('id="sessions"')[1]
        sessions = re.findall(r'<li data-session="([^"]+)">', account)
        current = re.search(r'<li data-session="([^"]+)"><strong>[^<]*</strong>[^<]*\s*<span id="this-session">',
                            account)
        assert current is not None and len(sessions) == 2
        target = next(ident for ident in sessions if ident != current.group(1))
        own = await mine.post(f"/dashboard/account/sessions/{current.group(1)}/end")
        assert own.status_code == 303 and (await mine.get("/dashboard", headers=HTML)).status_code == 200
        ended = await mine.post(f"/dashboard/account/sessions/{target}/end")
        assert ended.status_code == 303
        assert "The session was ended" in (await mine.get("/dashboard/account", headers=HTML)).text
        gone = await other.get("/dashboard", headers=HTML)
        assert gone.status_code == 303 and gone.headers["location"].startswith("/login")


async def test_verification_link_opens_the_verify_email_page(dominus_asgi_app: Any, dominus: Dominus) -> None:
    """The link of a verification mail (``/verify-email?token=...``) activates the account once."""
    await dominus.portal.register("erin", "erin@example.com", "erin-pass-1", "acme")
    token = await mailed_token(dominus, "erin@example.com", "email-verification")
    async with browser(dominus_asgi_app) as guest:
        pending = await guest.post("/auth/login", data={"username": "erin", "password": "erin-pass-1"})
        assert pending.headers["location"].startswith("/login?error=")
        verified = await guest.get("/verify-email", params={"token": token}, headers=HTML)
        assert verified.status_code == 200 and 'id="verify-ok"' in verified.text
        await sign_in(guest, "erin", "erin-pass-1")
        again = await guest.get("/verify-email", params={"token": token}, headers=HTML)
        assert again.status_code == 400 and "This verification link has already been used" in again.text
        assert 'id="resend-form"' in again.text  # offers a new link
        resent = await guest.post("/verify-email/resend", data={"email": "erin@example.com"}, headers=HTML)
        assert resent.status_code == 200 and 'id="verify-resent"' in resent.text
        missing = await guest.get("/verify-email", headers=HTML)
        assert missing.status_code == 400 and "the link has no token" in missing.text


async def test_every_answer_forbids_framing(dominus_asgi_app: Any) -> None:
    async with browser(dominus_asgi_app) as http:
        answers = [await http.get(path, headers=HTML) for path in ("/login", "/dashboard", "/nowhere")]
        answers += [await http.get("/api/me"), await http.get("/static/style.css"), await http.get("/docs")]
        await sign_in(http, *ADMIN)
        answers += [await http.get("/dashboard", headers=HTML), await http.post("/api/reports", json={})]
        for response in answers:
            assert response.headers["x-frame-options"] == "DENY", response.url
            assert response.headers["content-security-policy"] == "frame-ancestors 'none'", response.url


async def test_api_routes_are_in_the_openapi_document(dominus_app_client: httpx.AsyncClient) -> None:
    paths = (await dominus_app_client.get("/openapi.json")).json()["paths"]
    for path in ("/api/me", "/api/navigation", "/api/views", "/api/reports", "/api/files", "/api/files/content",
                 "/api/users", "/api/users/invitations", "/api/logs", "/auth/login", "/auth/switch-tenant"):
        assert path in paths, path
    assert "/dashboard" not in paths  # the HTML pages stay out of the API document
    assert (await dominus_app_client.get("/docs")).status_code == 200


@pytest.fixture
def low_address_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three anonymous Portal requests per visitor address and window (set before the backend starts); the
    app's client does not retry a 429, so each answer is the backend's first."""
    monkeypatch.setenv("DOMINUS_LOCAL_RATE_LIMIT_ADDRESS_REQUESTS", "3")
    monkeypatch.setenv("DOMINUS_LOCAL_RATE_LIMIT_ADDRESS_WINDOW", "3600")  # windows align on the clock: no edge
    monkeypatch.setenv("DOMINUS_MAX_RETRIES", "0")


async def test_reset_requests_are_limited_per_visitor_not_for_the_whole_app(
    low_address_limit: None, dominus_asgi_app: Any
) -> None:
    """The app forwards each visitor's address, so one visitor's flood does not lock the others out."""

    def visitor(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=dominus_asgi_app, client=(address, 50000))
        return httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN, headers={"Origin": APP_ORIGIN})

    async with visitor("198.51.100.7") as flooder, visitor("198.51.100.8") as other:
        statuses = []
        for _ in range(4):
            sent = await flooder.post("/forgot-password", data={"email": "user@example.com"}, headers=HTML)
            statuses.append(sent.status_code)
        fine = await other.post("/forgot-password", data={"email": "user@example.com"}, headers=HTML)
    assert statuses == [200, 200, 200, 429]
    assert fine.status_code == 200
