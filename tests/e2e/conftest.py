"""Fixtures of the example app's end-to-end tests.

In-process tests use the project's testing kit (an embedded backend with the demo data per test) and drive
the app through ``httpx.ASGITransport`` with its lifespan running. The run and browser tests start the app
the way the README does, ``python -m example_app``, as a subprocess on a free loopback port
(:class:`ExampleAppServer`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from dominus_fastapi.testing import (  # noqa: F401
    dominus,
    dominus_app_client,
    dominus_asgi_app,
    dominus_base_url,
    dominus_user_client,
)
from example_app import create_app
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("DOMINUS_E2E_ARTIFACTS", ROOT / ".data" / "e2e-artifacts"))
CHROMIUM = Path("/usr/bin/chromium")
"""Debian's headless Chromium (``scripts/install-browser.sh``); the browser tests fail, not skip, without it."""
TIMEOUT_MS = 30_000
"""Where the browser tests leave their screenshots (``.data`` is ignored by git)."""


@pytest.fixture
def dominus_seed_demo() -> bool:
    return True


@pytest.fixture
def dominus_app() -> Any:
    return create_app(dev_outbox=True)


class ExampleAppServer:
    """``python -m example_app`` on a free loopback port, with its own data dir; ``url`` and ``output``."""

    def __init__(self, data_dir: Path, *, args: tuple[str, ...] = (), env: Mapping[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = args
        self.log = data_dir.parent / f"{data_dir.name}-app-{self.port}.log"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DOMINUS_", "CB_", "PYTEST_"))
        }
        self.env.setdefault("DOMINUS_LOCAL_BCRYPT_ROUNDS", "4")  # fast sign-ins in tests
        self.env.update(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> ExampleAppServer:
        command = [sys.executable, "-m", "example_app", "--host", "127.0.0.1", "--port", str(self.port)]
        if "DOMINUS_BASE_URL" not in self.env:
            command += ["--data-dir", str(self.data_dir)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*command, *self.args], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the example app exited with {self.process.returncode}:\n{self.output}")
            try:
                if httpx.get(f"{self.url}/login", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the example app did not answer within {timeout} s:\n{self.output}")

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self) -> ExampleAppServer:
        """Stop, then start again on the same data dir (and a new free port)."""
        self.stop()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.data_dir.parent / f"{self.data_dir.name}-app-{self.port}.log"
        return self.start()

    def __enter__(self) -> ExampleAppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExampleAppServer]:
    """One running ``python -m example_app`` shared by the run and browser tests (it starts in seconds, not
    milliseconds, so it is started once)."""
    with ExampleAppServer(tmp_path_factory.mktemp("example-app") / "data") as server:
        yield server


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One browser per test module that takes it. Module scope, not session: Playwright's sync API keeps an
    event loop running in this thread until it stops, and the async tests of the modules after this one need
    the thread free of it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-browser.sh (scripts/test does)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()
