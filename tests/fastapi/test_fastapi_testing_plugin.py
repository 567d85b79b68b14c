"""The ``dominus_fastapi.testing`` plugin as its users meet it: its clients agree with each other, and a test
module runs in a project that has no pytest-asyncio configuration at all."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from dominus_fastapi.testing import APP_ORIGIN, TEST_PASSWORD, UserFactory

ROOT = Path(__file__).resolve().parents[2]


async def test_every_client_sends_the_apps_origin(
    dominus_app_client: httpx.AsyncClient, dominus_user_client: UserFactory
) -> None:
    cookie = await dominus_user_client()
    bearer = await dominus_user_client(via="bearer")
    assert {dominus_app_client.headers["origin"], cookie.headers["origin"], bearer.headers["origin"]} == {APP_ORIGIN}
    assert "authorization" not in dominus_app_client.headers and "authorization" not in cookie.headers
    assert bearer.headers["authorization"].startswith("Bearer ")


async def test_a_form_sign_in_then_sign_out_through_the_anonymous_client(
    dominus_app_client: httpx.AsyncClient, dominus_user_client: UserFactory
) -> None:
    alice = await dominus_user_client()
    form = {"username": alice.user.username, "password": TEST_PASSWORD}
    login = await dominus_app_client.post("/auth/login", data=form)
    assert login.status_code == 303, login.text
    assert (await dominus_app_client.get("/auth/me")).json()["user"]["id"] == alice.user.id
    logout = await dominus_app_client.post("/auth/logout")
    assert logout.status_code == 204, logout.text  # not 403 csrf_failed
    assert (await dominus_app_client.get("/auth/me")).status_code == 401


USER_MODULE = '''
"""A user's test module: no conftest, no pytest-asyncio options, no asyncio marks."""
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from dominus_fastapi import Dominus, dominus_lifespan, get_portal_router, setup_dominus


@pytest.fixture
def dominus_app() -> Any:
    app = FastAPI(lifespan=dominus_lifespan())
    setup_dominus(app)
    app.include_router(get_portal_router())
    return app


async def test_sign_in_by_form_then_sign_out(dominus_app_client: httpx.AsyncClient, dominus_user_client: Any) -> None:
    alice = await dominus_user_client()
    form = {"username": alice.user.username, "password": "test-password-1"}
    assert (await dominus_app_client.post("/auth/login", data=form)).status_code == 303
    assert (await dominus_app_client.post("/auth/logout")).status_code == 204


async def test_the_admin_client(dominus: Dominus) -> None:
    assert (await dominus.health.ping())["status"] == "ok"


class TestInAClass:
    async def test_anonymous(self, dominus_app_client: httpx.AsyncClient) -> None:
        assert (await dominus_app_client.get("/auth/me")).status_code == 401


def test_sync_tests_are_untouched() -> None:
    assert True
'''


def test_a_users_module_runs_without_any_asyncio_configuration(tmp_path: Path) -> None:
    """pytest in a subprocess, from a directory without a configuration file, warnings as errors: the plugin
    runs the async tests that use its fixtures and pytest-asyncio's loop-scope warning does not appear."""
    module = tmp_path / "test_user_app.py"
    module.write_text(USER_MODULE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DOMINUS_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", "-rA", str(module)]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert re.search(r"\b4 passed\b", done.stdout.splitlines()[-1]), output
    assert "asyncio_default_fixture_loop_scope" not in output
    assert "not natively supported" not in output
