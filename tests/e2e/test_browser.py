"""The example app in a real browser: Debian's headless Chromium driven by Playwright, against
``python -m example_app`` on a loopback port.

``scripts/test`` installs Chromium (``scripts/install-browser.sh``); Playwright never downloads one. Without
``/usr/bin/chromium`` these tests fail rather than skip, so CI cannot pass without them. One browser serves
the whole module; each test opens contexts for the views it needs: a desktop (1280x800) or a phone
(390x844), in the light or the dark colour scheme (the demo users keep the "system" theme, so the page
follows the browser's scheme). Every page visited is saved as a screenshot under ``.data/e2e-artifacts``
(or ``$DOMINUS_E2E_ARTIFACTS``).

The sweep (:func:`test_every_page_in_every_view`) opens every page of the app, anonymous, administrator,
plain user, error pages, in the four views and checks on each: no horizontal overflow, axe-core finds no
serious or critical violation (``axe-playwright-python`` injects its bundled ``axe.min.js``: no network),
no console error, and the colours of the theme. Other tests follow every menu link, tap the buttons on a
phone, and go through an invitation from the form to the invited user's dashboard.

The tests share one app and its data (users, sessions, preferences), so each leaves what it changed as it
found it, and the one that resets the demo user's password runs last and sets it back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Route, expect

from tests.e2e.conftest import ARTIFACTS, TIMEOUT_MS, ExampleAppServer

ADMIN = ("admin", "dominus-admin")
DEMO = ("demo", "dominus-user")
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
THEMES = ("light", "dark")
BACKGROUNDS = {"light": "rgb(246, 247, 249)", "dark": "rgb(20, 23, 29)"}
"""The page background of each theme (``--bg`` in style.css), to check the theme reached the page."""
VIEWS = [(size, theme) for size in SIZES for theme in THEMES]
LOOPBACK_URL = re.compile(r"^(https?|wss?)://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?/")
SERIOUS = ("serious", "critical")
AXE = Axe()


@pytest.fixture(autouse=True)
def database() -> None:
    """Replaces the suite's async per-test database fixture: these tests drive a subprocess with its own data
    dir, and Playwright's sync API runs its own event loop in this thread, where no other loop may start."""
    return None


@dataclass
class Contexts:
    """Opens browser contexts for views and closes them all at the end of the test."""

    browser: Browser
    base_url: str
    opened: list[BrowserContext] = field(default_factory=list)

    def new(self, size: str = "desktop", theme: str = "light", **options: Any) -> BrowserContext:
        ctx = self.browser.new_context(
            base_url=self.base_url, viewport=SIZES[size], color_scheme=theme,  # type: ignore[arg-type]
            is_mobile=size == "phone", has_touch=size == "phone", **options,
        )
        ctx.set_default_timeout(TIMEOUT_MS)
        self.opened.append(ctx)
        return ctx

    def close(self) -> None:
        for ctx in self.opened:
            ctx.close()


@pytest.fixture
def contexts(chromium: Browser, app_server: ExampleAppServer) -> Iterator[Contexts]:
    opened = Contexts(chromium, app_server.url)
    yield opened
    opened.close()


@pytest.fixture
def context(contexts: Contexts) -> BrowserContext:
    return contexts.new(accept_downloads=True)


def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def sign_in(page: Page, username: str, password: str) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', password)
    page.click('#login-form button[type="submit"]')
    expect(page).to_have_url(re.compile(r"/dashboard$"))


def nav_titles(page: Page) -> list[str]:
    items = page.locator("#nav > ul:first-child :is(a, span.nav-header)")
    return [text.strip() for text in items.all_text_contents()]


def switch_tenant(page: Page, name: str) -> None:
    """Switch with the top bar's switcher (on a phone too: it sits on its own row there)."""
    page.locator("#tenant-select").select_option(label=name)
    with page.expect_navigation(url=re.compile(r"/dashboard$")):
        page.click('#tenant-switcher button[type="submit"]')
    expect(page.locator("#tenant-name")).to_have_text(name)


def console_errors(page: Page) -> list[str]:
    """A list that fills with the page's console errors and uncaught exceptions from now on."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    return errors


def check_page(page: Page, path: str, status: int, view: str, errors: list[str], theme: str, who: str) -> None:
    """Open ``path`` and check what every page must satisfy (see the module docstring)."""
    errors.clear()
    response = page.goto(path)
    assert response is not None and response.status == status, (path, response and response.status)
    page.wait_for_load_state("load")
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{path} ({view}) is {overflow} px wider than the window"
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert background == BACKGROUNDS[theme], (path, view, background)
    violations = [v for v in AXE.run(page).response["violations"] if v["impact"] in SERIOUS]
    summary = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in violations]
    assert not violations, f"{path} ({view}): {summary}"
    # A 4xx page is itself a failed load in Chromium's console: that line is expected, no other.
    expected = f"status of {status}" if status >= 400 else None
    unexpected = [e for e in errors if not (expected and "Failed to load resource" in e and expected in e)]
    assert not unexpected, f"{path} ({view}): {unexpected}"
    shot(page, f"{view}-{who}{path.replace('/', '_').split('?')[0]}", full_page=False)


ANONYMOUS_PAGES = (
    ("/login", 200), ("/forgot-password", 200), ("/reset-password?token=abc", 200),
    ("/accept-invitation?token=abc", 200), ("/verify-email", 400), ("/no-such-page", 404),
)
ADMIN_PAGES = (
    ("/dashboard", 200), ("/dashboard/reports", 200), ("/dashboard/files", 200), ("/dashboard/logs", 200),
    ("/dashboard/account", 200), ("/outbox", 200), ("/dashboard/admin/users", 200), ("/no-such-page", 404),
)
ADMIN_TENANT_PAGES = (("/admin", 200), ("/dashboard", 200))
DEMO_PAGES = (
    ("/dashboard", 200), ("/dashboard/files", 200), ("/dashboard/account", 200),
    ("/dashboard/reports", 403), ("/dashboard/admin/users", 403), ("/dashboard/logs", 403), ("/outbox", 403),
)


@pytest.mark.parametrize(("size", "theme"), VIEWS, ids=[f"{s}-{t}" for s, t in VIEWS])
def test_every_page_in_every_view(contexts: Contexts, size: str, theme: str) -> None:
    view = f"{size}-{theme}"
    admin, demo = contexts.new(size, theme).new_page(), contexts.new(size, theme).new_page()
    admin_errors, demo_errors = console_errors(admin), console_errors(demo)
    for path, status in ANONYMOUS_PAGES:
        check_page(admin, path, status, view, admin_errors, theme, "anonymous")
    expect(admin.locator("html")).to_have_attribute("data-theme", "system")

    sign_in(admin, *ADMIN)
    for path, status in ADMIN_PAGES:
        check_page(admin, path, status, view, admin_errors, theme, "admin")
        expect(admin.locator("#sign-out")).to_be_visible()  # error pages too keep the signed-in layout
        assert admin.locator('header a[href="/login"]').count() == 0, path
    admin.goto("/dashboard")
    switch_tenant(admin, "Administration")
    for path, status in ADMIN_TENANT_PAGES:
        check_page(admin, path, status, view, admin_errors, theme, "admin-tenant")

    sign_in(demo, *DEMO)
    for path, status in DEMO_PAGES:
        check_page(demo, path, status, view, demo_errors, theme, "demo")
        expect(demo.locator("#sign-out")).to_be_visible()


@pytest.mark.parametrize("theme", THEMES)
def test_keyboard_skip_link_and_focus_ring(contexts: Contexts, theme: str) -> None:
    page = contexts.new("desktop", theme).new_page()
    sign_in(page, *ADMIN)
    page.keyboard.press("Tab")
    skip = page.locator(".skip-link")
    expect(skip).to_be_focused()
    box = skip.bounding_box()
    assert box is not None and box["y"] >= 0  # shown on focus, not left off-screen
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.keyboard.press("Tab")
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    width = page.evaluate("() => parseFloat(getComputedStyle(document.activeElement).outlineWidth)")
    assert outline == "solid" and width >= 2, (outline, width)


MENU_USERS = ((ADMIN, ("Acme Health", "Globex Retail", "Administration")), (DEMO, ("Acme Health", "Globex Retail")))


def test_every_menu_link_resolves_for_every_user_and_tenant(contexts: Contexts) -> None:
    visited = 0
    for (username, password), tenants in MENU_USERS:
        page = contexts.new().new_page()
        sign_in(page, username, password)
        for tenant in tenants:
            page.goto("/dashboard")
            switch_tenant(page, tenant)
            links = page.locator("#nav a[href]").evaluate_all("links => links.map(a => a.getAttribute('href'))")
            assert "/dashboard" in links and "/dashboard/account" in links, (username, tenant, links)
            for href in links:
                response = page.goto(href)
                assert response is not None and response.status == 200, (username, tenant, href)
                visited += 1
    assert visited >= 25


def test_phone_taps_reach_every_button(contexts: Contexts, tmp_path: Path) -> None:
    """At 390x844 the Menu, Filter, Download and Sign out buttons take a normal click (no force): Playwright
    refuses a click whose point lands on another element or off the page."""
    ctx = contexts.new("phone", "light", accept_downloads=True)
    page = ctx.new_page()
    sign_in(page, *ADMIN)
    nav = page.locator("#nav")
    expect(nav).to_be_hidden()
    page.click("#menu-toggle")
    expect(nav).to_be_visible()
    expect(page.locator("#menu-toggle")).to_have_attribute("aria-expanded", "true")
    nav.get_by_role("link", name="Logs").click()
    expect(page).to_have_url(re.compile(r"/dashboard/logs$"))

    page.select_option('#log-filters select[name="level"]', "info")
    page.click('#log-filters button[type="submit"]')
    expect(page).to_have_url(re.compile(r"/dashboard/logs\?level=info"))

    page.goto("/dashboard/files")
    content = b"tapped on a phone\n"
    page.set_input_files('input[name="upload"]', files=[
        {"name": "phone.txt", "mimeType": "text/plain", "buffer": content}
    ])
    page.click('#upload-form button[type="submit"]')
    row = page.locator("#files tr", has_text="phone.txt").first
    with page.expect_download() as info:
        row.locator("a.download").click()
    target = tmp_path / "phone.txt"
    info.value.save_as(target)
    assert target.read_bytes() == content
    shot(page, "phone-files")

    page.click("#sign-out")
    expect(page).to_have_url(re.compile(r"/login\?notice=signed_out$"))
    page.go_back()  # the Files page is not in the cache: the browser asks again and is sent to sign in
    expect(page).to_have_url(re.compile(r"/login\?next="))
    expect(page.locator("#login-form")).to_be_visible()


def test_invitation_from_the_form_to_the_dashboard_on_a_phone(contexts: Contexts) -> None:
    admin = contexts.new("phone", "dark").new_page()
    guest = contexts.new("phone", "light").new_page()
    sign_in(admin, *ADMIN)
    admin.goto("/dashboard/admin/users")
    form = admin.locator("#invite-form")
    form.locator('input[name="username"]').fill("erin")
    form.locator('input[name="email"]').fill("erin@example.com")
    form.locator('select[name="tenant_id"]').select_option(label="Globex Retail")
    role = form.locator('select[name="role_id"] option', has_text="member").get_attribute("value")
    assert role is not None
    form.locator('select[name="role_id"]').select_option(role)
    form.locator('button[type="submit"]').click()  # a normal tap on a phone
    expect(admin.locator(".flash.ok")).to_contain_text("Invitation sent to erin@example.com: member in Globex Retail")
    expect(admin.locator("#users")).to_contain_text("erin@example.com")

    admin.goto("/outbox")
    mail = admin.locator('article.mail[data-template="invitation"][data-to="erin@example.com"]').first
    link = mail.locator("a.action").get_attribute("href")
    assert link is not None and "/accept-invitation?token=" in link
    guest.goto(link)
    guest.fill('input[name="password"]', "erin-pass-1")
    guest.fill('input[name="confirm_password"]', "erin-pass-1")
    guest.click('#invitation-form button[type="submit"]')
    expect(guest).to_have_url(re.compile(r"/login\?notice=invitation_accepted$"))
    sign_in(guest, "erin", "erin-pass-1")
    expect(guest.locator("#tenant-name")).to_have_text("Globex Retail")
    expect(guest.locator("#whoami")).to_have_text("erin")
    shot(guest, "invited-dashboard")
    guest.goto(link)  # the link again: spent, and the page says what to do
    guest.fill('input[name="password"]', "erin-pass-2")
    guest.fill('input[name="confirm_password"]', "erin-pass-2")
    guest.click('#invitation-form button[type="submit"]')
    expect(guest.locator("#invitation-error")).to_contain_text("already been used")


def test_sign_in_form_keeps_the_username_and_skips_when_signed_in(context: BrowserContext) -> None:
    page = context.new_page()
    page.goto("/login")
    page.fill('input[name="username"]', "admin")
    page.fill('input[name="password"]', "not-the-password")
    page.click('#login-form button[type="submit"]')
    expect(page.locator("#login-error")).to_have_text("Wrong username or password.")
    expect(page.locator('input[name="username"]')).to_have_value("admin")
    assert "admin" not in page.url  # kept in the tab, not in the URL
    expect(page.locator('input[name="password"]')).to_be_focused()
    page.fill('input[name="password"]', "dominus-admin")
    page.click('#login-form button[type="submit"]')
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    page.goto("/login")
    expect(page).to_have_url(re.compile(r"/dashboard$"))


def test_sessions_show_the_browser_and_end_another_one(contexts: Contexts) -> None:
    mine, other = contexts.new().new_page(), contexts.new("phone", "dark").new_page()
    sign_in(mine, *ADMIN)
    sign_in(other, *ADMIN)
    other.goto("/dashboard/account")
    other_id = other.locator("#sessions li:has(#this-session)").get_attribute("data-session")
    mine.goto("/dashboard/account")
    entry = mine.locator(f'#sessions li[data-session="{other_id}"]')
    expect(entry).to_contain_text("Chrome")  # the visitor's browser, not the app's HTTP client
    expect(entry).not_to_contain_text("python-httpx")
    expect(entry).not_to_contain_text(re.compile(r"\d{4}-\d{2}-\d{2}T"))  # a date as "today, 13:05 UTC"
    entry.get_by_role("button", name="End this session").click()
    expect(mine.locator(".flash.ok")).to_contain_text("The session was ended")
    other.goto("/dashboard")
    expect(other).to_have_url(re.compile(r"/login\?next=/dashboard$"))


@pytest.mark.parametrize("path", ["/docs"])
def test_api_docs_render_offline(context: BrowserContext, path: str) -> None:
    """Swagger UI renders with every request to a host other than loopback blocked (and none is tried)."""
    blocked: list[str] = []

    def only_loopback(route: Route) -> None:
        if LOOPBACK_URL.match(route.request.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_loopback)
    page = context.new_page()
    errors = console_errors(page)
    page.goto(path)
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Dominus example app")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    assert blocked == [] and errors == [], (blocked, errors)


def test_navigation_and_admin_page_differ_between_admin_and_demo(contexts: Contexts) -> None:
    admin, demo = contexts.new().new_page(), contexts.new().new_page()
    admin.goto("/login")
    shot(admin, "login")
    sign_in(admin, "admin", "dominus-admin")
    sign_in(demo, "demo", "dominus-user")
    expect(admin.locator("#username")).to_have_text("admin")
    assert nav_titles(admin) == ["Dashboard", "Reports", "Files", "Admin", "Users"]
    assert nav_titles(demo) == ["Dashboard", "Files"]
    shot(admin, "dashboard-admin")
    shot(demo, "dashboard-demo")

    admin.click("#nav >> text=Users")
    expect(admin).to_have_url(re.compile(r"/dashboard/admin/users$"))
    expect(admin.locator("#users")).to_contain_text("user@example.com")
    shot(admin, "admin-users")

    refused = demo.goto("/dashboard/admin/users")
    assert refused is not None and refused.status == 403
    expect(demo.locator("h1")).to_have_text("Users is not open to you")
    shot(demo, "admin-users-refused")

    for path, name in (("/dashboard/reports", "reports"), ("/dashboard/files", "files"),
                       ("/dashboard/logs", "logs"), ("/dashboard/account", "account"), ("/outbox", "outbox")):
        response = admin.goto(path)
        assert response is not None and response.status == 200, path
        shot(admin, name)


def test_switching_tenant_changes_the_dashboard(context: BrowserContext) -> None:
    page = context.new_page()
    sign_in(page, "demo", "dominus-user")
    expect(page.locator("#tenant-name")).to_have_text("Acme Health")
    assert "Reports" not in nav_titles(page)
    page.select_option("#tenant-select", "globex")
    page.click('#tenant-switcher button[type="submit"]')
    expect(page.locator("#tenant-name")).to_have_text("Globex Retail")
    assert nav_titles(page) == ["Dashboard", "Reports", "Files"]
    shot(page, "dashboard-demo-globex")
    page.click("#nav >> text=Reports")
    expect(page.locator("h1")).to_have_text("Reports")


def test_refusal_offers_the_tenant_where_the_page_opens(context: BrowserContext) -> None:
    page = context.new_page()
    sign_in(page, *DEMO)
    refused = page.goto("/dashboard/reports")
    assert refused is not None and refused.status == 403
    expect(page.locator("#error-detail")).to_have_text(
        "Reports exists in Globex Retail, where your roles give you access. Switch there to open it."
    )
    page.get_by_role("button", name="Switch to Globex Retail").click()
    expect(page).to_have_url(re.compile(r"/dashboard/reports$"))
    expect(page.locator("h1")).to_have_text("Reports")
    expect(page.locator("#tenant-select option:checked")).to_have_text("Globex Retail")


def test_reports_form_writes_a_row_with_its_reason(context: BrowserContext) -> None:
    page = context.new_page()
    sign_in(page, "admin", "dominus-admin")
    page.goto("/dashboard/reports")
    page.fill('input[name="title"]', "Browser row")
    page.fill('input[name="amount"]', "42.10")
    page.fill('input[name="reason"]', "typed in the browser")
    page.click('#report-form button[type="submit"]')
    expect(page.locator("#report-rows")).to_contain_text("Browser row")
    expect(page.locator("#audit")).to_contain_text("typed in the browser")
    shot(page, "reports-added")


def test_uploaded_file_downloads_with_the_same_bytes(context: BrowserContext, tmp_path: Path) -> None:
    content = bytes(range(256)) * 16 + "é\n".encode()
    page = context.new_page()
    sign_in(page, "admin", "dominus-admin")
    page.goto("/dashboard/files")
    upload = {"name": "browser.bin", "mimeType": "application/octet-stream", "buffer": content}
    page.set_input_files('input[name="upload"]', files=[upload])
    page.click('#upload-form button[type="submit"]')
    row = page.locator("#files tr", has_text="browser.bin")
    expect(row).to_have_count(1)
    shot(page, "files-uploaded")
    with page.expect_download() as info:
        row.locator("a.download").click()
    download = info.value
    assert download.suggested_filename == "browser.bin"
    target = tmp_path / "downloaded.bin"
    download.save_as(target)
    assert target.read_bytes() == content


def test_theme_preference_applies_to_the_page(context: BrowserContext) -> None:
    page = context.new_page()
    sign_in(page, "admin", "dominus-admin")
    page.goto("/dashboard/account")
    page.select_option('#preferences-form select[name="theme"]', "dark")
    page.click('#preferences-form button[type="submit"]')
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    shot(page, "account-dark")
    for path in ("/no-such-page", "/dashboard/admin/users/nope"):  # error pages follow the user's theme too
        page.goto(path)
        expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") == BACKGROUNDS["dark"]
    page.goto("/dashboard/account")
    page.select_option('#preferences-form select[name="theme"]', "light")
    page.click('#preferences-form button[type="submit"]')
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    page.select_option('#preferences-form select[name="theme"]', "system")  # as the other tests expect it
    page.click('#preferences-form button[type="submit"]')
    expect(page.locator("html")).to_have_attribute("data-theme", "system")


def test_pages_refuse_to_be_framed(context: BrowserContext, app_server: ExampleAppServer) -> None:
    """Clickjacking: another page that frames the sign-in form gets Chromium's error page in the frame."""
    page = context.new_page()
    with page.expect_response(re.compile(r"/login$")) as framed:
        page.set_content(f'<iframe id="framed" src="{app_server.url}/login"></iframe>')
    assert framed.value.headers["x-frame-options"] == "DENY"
    child = page.frame_locator("#framed")
    expect(child.locator("#login-form")).to_have_count(0)
    frame = next(f for f in page.frames if f is not page.main_frame)
    for _ in range(100):  # the blocked frame settles on Chromium's error page within moments
        if frame.url.startswith("chrome-error:"):
            break
        page.wait_for_timeout(100)
    assert frame.url.startswith("chrome-error:"), frame.url
    assert page.goto("/login") is not None and page.locator("#login-form").is_visible()  # shown on its own


def test_password_reset_from_the_outbox_ends_old_sessions(contexts: Contexts) -> None:
    """Runs last: it changes the demo user's password, and sets it back at the end."""
    old, page, admin = contexts.new().new_page(), contexts.new().new_page(), contexts.new().new_page()
    sign_in(old, "demo", "dominus-user")

    page.goto("/login")
    page.click("text=Forgot your password?")
    page.fill('input[name="email"]', "user@example.com")
    page.click('#forgot-form button[type="submit"]')
    expect(page.locator("#reset-sent")).to_be_visible()
    page.click("#reset-sent >> text=outbox")  # the outbox is for administrators: to the sign-in form
    expect(page).to_have_url(re.compile(r"/login\?next=/outbox$"))

    admin.goto("/login?next=/outbox")  # an administrator reads the mail and passes the link on
    admin.fill('input[name="username"]', "admin")
    admin.fill('input[name="password"]', "dominus-admin")
    admin.click('#login-form button[type="submit"]')
    expect(admin).to_have_url(re.compile(r"/outbox$"))
    mail = admin.locator('article.mail[data-template="password-reset"][data-to="user@example.com"]').first
    expect(mail).to_be_visible()
    shot(admin, "outbox-reset-mail")
    link = mail.locator("a.action").get_attribute("href")
    assert link is not None and "/reset-password?token=" in link
    page.goto(link)
    expect(page).to_have_url(re.compile(r"/reset-password\?token="))
    shot(page, "reset-password")
    page.fill('input[name="new_password"]', "dominus-user-2")
    page.fill('input[name="confirm_password"]', "dominus-user-2")
    page.click('#reset-form button[type="submit"]')
    expect(page).to_have_url(re.compile(r"/login\?notice=password_reset$"))

    old.goto("/dashboard")  # the old session ended with the reset
    expect(old).to_have_url(re.compile(r"/login\?next=/dashboard$"))
    shot(old, "old-session-ended")

    page.fill('input[name="username"]', "demo")
    page.fill('input[name="password"]', "dominus-user")
    page.click('#login-form button[type="submit"]')
    expect(page.locator("#login-error")).to_have_text("Wrong username or password.")
    sign_in(page, "demo", "dominus-user-2")
    expect(page.locator("#username")).to_have_text("demo")

    page.goto(link)  # the spent link offers a new one
    page.fill('input[name="new_password"]', "dominus-user-3")
    page.fill('input[name="confirm_password"]', "dominus-user-3")
    page.click('#reset-form button[type="submit"]')
    expect(page.locator("#reset-error")).to_contain_text("already been used")
    expect(page.locator("#new-link")).to_have_attribute("href", "/forgot-password")

    page.goto("/dashboard/account")  # back to the documented password
    form = page.locator("#password-form")
    form.locator('input[name="current_password"]').fill("dominus-user-2")
    form.locator('input[name="new_password"]').fill("dominus-user")
    form.locator('input[name="confirm_password"]').fill("dominus-user")
    form.locator('button[type="submit"]').click()
    expect(page.locator(".flash.ok")).to_contain_text("Password changed")
