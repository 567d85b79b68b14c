"""The documentation site in a real browser: the session's ``mkdocs build --strict`` (``built_site``), served
by a static file server on a loopback port, and pages of it opened in Debian's headless Chromium (Playwright).

Like ``test_browser.py``, these tests fail rather than skip without ``/usr/bin/chromium``. Screenshots go to
``.data/e2e-artifacts`` (or ``$DOMINUS_E2E_ARTIFACTS``).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import ARTIFACTS, TIMEOUT_MS


@pytest.fixture(autouse=True)
def database() -> None:
    """Replaces the suite's async per-test database fixture: nothing here needs a backend, and Playwright's sync
    API runs its own event loop in this thread, where no other loop may start."""
    return None


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: pytest would show them as captured output of every test."""


@pytest.fixture(scope="session")
def docs_site(built_site: Path) -> Iterator[str]:
    """The site built from this checkout (strict: a broken link fails the build), served on loopback."""
    folder = built_site
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def page(chromium: Browser, docs_site: str) -> Iterator[Page]:
    context = chromium.new_context(base_url=docs_site)
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    yield opened
    context.close()


def expect_heading(page: Page, text: str) -> None:
    """The page's title heading reads ``text`` (followed by its permalink sign)."""
    expect(page.locator("article h1").first).to_have_text(re.compile(rf"^{re.escape(text)}\s*¶?$"))


def nav_link(page: Page, title: str) -> Any:
    """The first entry of the site's navigation (a page link or a section label) that reads ``title``."""
    return page.locator("nav.md-nav--primary .md-nav__link", has_text=title).first


def test_getting_started_renders_with_its_code_and_the_nav(page: Page) -> None:
    answer = page.goto("/getting-started/")
    assert answer is not None and answer.status == 200
    expect(page).to_have_title("Getting started - dominus-fastapi")
    expect_heading(page, "Getting started")
    # The snippets' run options (```python demo) do not break the fences: the code is highlighted.
    expect(page.locator("article .highlight code", has_text="dominus_lifespan").first).to_be_visible()
    assert "```" not in page.locator("article").inner_text()
    for title in ("Tutorial", "The app", "Tables (Scribe)", "Configuration", "API reference"):
        expect(nav_link(page, title)).to_be_attached()
    page.screenshot(path=str(ARTIFACTS / "docs-getting-started.png"), full_page=True)

    page.locator("nav.md-nav--primary a.md-nav__link", has_text="Tutorial").first.click()
    expect_heading(page, "Tutorial: a small multi-tenant app")


def test_the_client_reference_page_is_in_the_nav(page: Page) -> None:
    answer = page.goto("/reference/client/")
    assert answer is not None and answer.status == 200
    expect_heading(page, "The client")
    expect(page).to_have_title("The client - dominus-fastapi")
    active = page.locator("nav.md-nav--primary a.md-nav__link--active")
    expect(active.first).to_have_text("The client")
    page.screenshot(path=str(ARTIFACTS / "docs-reference-client.png"), full_page=True)

    page.goto("/")
    expect_heading(page, "dominus-fastapi")
