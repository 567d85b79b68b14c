"""The example app in a real browser: Debian's headless Chromium driven by Playwright, against
``python -m example_app`` on a loopback port.

``scripts/test`` installs Chromium (``scripts/install-browser.sh``); Playwright never downloads one. Without
``/usr/bin/chromium`` these tests fail rather than skip, so CI cannot pass without them. Every page visited
is saved as a screenshot under ``.data/e2e-artifacts`` (or ``$DOMINUS_E2E_ARTIFACTS``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.e2e.conftest import ARTIFACTS, ExampleAppServer

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 30_000


@pytest.fixture(autouse=True)
def database() -> None:
    """Replaces the suite's async per-test database fixture: these tests drive a subprocess with its own data
    dir, and Playwright's sync API runs its own event loop in this thread, where no other loop may start."""
    return None


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-browser.sh (scripts/test does)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@pytest.fixture
def context(chromium: Browser, app_server: ExampleAppServer) -> Iterator[BrowserContext]:
    ctx = chromium.new_context(base_url=app_server.url, accept_downloads=True)
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


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


def test_navigation_and_admin_page_differ_between_admin_and_demo(
    chromium: Browser, app_server: ExampleAppServer
) -> None:
    admin_ctx = chromium.new_context(base_url=app_server.url)
    demo_ctx = chromium.new_context(base_url=app_server.url)
    try:
        admin, demo = admin_ctx.new_page(), demo_ctx.new_page()
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
        expect(demo.locator("h1")).to_have_text("Not allowed")
        shot(demo, "admin-users-refused")

        for path, name in (("/dashboard/reports", "reports"), ("/dashboard/files", "files"),
                           ("/dashboard/logs", "logs"), ("/dashboard/account", "account"), ("/outbox", "outbox")):
            response = admin.goto(path)
            assert response is not None and response.status == 200, path
            shot(admin, name)
    finally:
        admin_ctx.close()
        demo_ctx.close()


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
    page.select_option('#preferences-form select[name="theme"]', "light")
    page.click('#preferences-form button[type="submit"]')
    expect(page.locator("html")).to_have_attribute("data-theme", "light")


def test_password_reset_from_the_outbox_ends_old_sessions(chromium: Browser, app_server: ExampleAppServer) -> None:
    old_ctx = chromium.new_context(base_url=app_server.url)
    new_ctx = chromium.new_context(base_url=app_server.url)
    admin_ctx = chromium.new_context(base_url=app_server.url)
    try:
        old, page, admin = old_ctx.new_page(), new_ctx.new_page(), admin_ctx.new_page()
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
    finally:
        old_ctx.close()
        new_ctx.close()
        admin_ctx.close()


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
