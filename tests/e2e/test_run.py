"""``python -m example_app`` and ``scripts/run``: the README's first command, its start-up message, the data
dir that survives restarts, ``--reset``, and the same app on a network ``dominus-local serve``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from dominus_local.seed import DEFAULT_ADMIN_PASSWORD, DEFAULT_DEMO_PASSWORD
from example_app import create_app
from example_app.__main__ import (
    DEFAULT_DATA_DIR,
    DEMO_ACCOUNTS,
    MARKER,
    UsageError,
    parse_args,
    prepare_environment,
    public_url,
    reset_data_dir,
)
from tests.e2e.conftest import ROOT, ExampleAppServer
from tests.servers import LocalServer

HTML = {"Accept": "text/html"}


def sign_in(http: httpx.Client, username: str, password: str) -> None:
    response = http.post("/auth/login", data={"username": username, "password": password, "next": "/dashboard"})
    assert response.status_code == 303 and response.headers["location"] == "/dashboard", response.text


def test_run_prints_the_url_and_accounts_and_keeps_the_data(app_server: ExampleAppServer) -> None:
    assert httpx.get(f"{app_server.url}/login").status_code == 200  # what `curl` of the login page sees
    output = app_server.output
    assert f"embedded backend with the demo data in {app_server.data_dir}" in output
    assert f"Open {app_server.url}/ in a browser" in output
    assert "admin@example.com" in output and "dominus-admin" in output and "dominus-user" in output
    with httpx.Client(base_url=app_server.url, headers={"Origin": app_server.url}) as http:
        sign_in(http, "admin", "dominus-admin")
        added = http.post("/api/reports", json={"title": "kept across restarts", "amount": "1.00", "reason": "check"})
        assert added.status_code == 201, added.text
    assert (app_server.data_dir / MARKER).is_file()

    app_server.restart()
    with httpx.Client(base_url=app_server.url, headers={"Origin": app_server.url}) as http:
        sign_in(http, "admin", "dominus-admin")
        rows = http.get("/api/reports", params={"reason": "restart check"}).json()["rows"]
        assert "kept across restarts" in [row["title"] for row in rows]


def test_the_running_app_refuses_foreign_hosts_and_answers_non_finite_numbers(app_server: ExampleAppServer) -> None:
    """Over a real socket (uvicorn): a rebound DNS name gets 400; ``NaN`` and ``1e999`` in a JSON body get a
    422 in JSON (they used to get a plain-text 500); every answer forbids framing; the data dir is private."""
    assert httpx.get(f"{app_server.url}/login", headers={"Host": "evil.example"}).status_code == 400
    assert httpx.get(f"{app_server.url}/login", headers={"Host": f"localhost:{app_server.port}"}).status_code == 200
    with httpx.Client(base_url=app_server.url, headers={"Origin": app_server.url}) as http:
        sign_in(http, "admin", "dominus-admin")
        for body in ('{"title": "t", "amount": NaN, "reason": "check"}', "1e999", '{"title": Infinity}'):
            response = http.post("/api/reports", content=body, headers={"content-type": "application/json"})
            assert response.status_code == 422, response.text
            assert response.headers["content-type"] == "application/json" and response.json()["detail"]
            assert response.headers["x-frame-options"] == "DENY"
    assert oct(app_server.data_dir.stat().st_mode & 0o777) == oct(0o700)
    assert oct((app_server.data_dir / "dominus.db").stat().st_mode & 0o777) == oct(0o600)


def test_reset_deletes_only_a_data_dir_the_app_made(tmp_path: Path) -> None:
    ours = tmp_path / "ours"
    (ours / "nested").mkdir(parents=True)
    (ours / MARKER).touch()
    (ours / "nested" / "dominus.db").write_bytes(b"x")
    reset_data_dir(ours)
    assert not ours.exists()
    reset_data_dir(tmp_path / "never-made")  # nothing to do

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not made by the example app"):
        reset_data_dir(foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_environment_defaults_to_the_embedded_backend(tmp_path: Path) -> None:
    environ: dict[str, str] = {}
    lines = prepare_environment(parse_args(["--port", "8123", "--data-dir", str(tmp_path / "d")]), environ)
    assert environ["DOMINUS_BASE_URL"] == f"embedded://{(tmp_path / 'd').resolve().as_posix()}"
    assert environ["DOMINUS_LOCAL_SEED_DEMO"] == "true"
    assert environ["DOMINUS_LOCAL_PASSWORD_RESET_URL"] == "http://127.0.0.1:8123/reset-password"
    assert environ["DOMINUS_LOCAL_INVITATION_URL"] == "http://127.0.0.1:8123/accept-invitation"
    assert lines[0].startswith("DOMINUS_BASE_URL is not set: using the embedded backend")
    assert parse_args([]).port == 8000 and parse_args([]).data_dir is None
    assert DEFAULT_DATA_DIR == ROOT / "example_app" / ".data"

    # A password chosen through the environment is named, never printed.
    environ = {"DOMINUS_LOCAL_DEMO_ADMIN_PASSWORD": "s3cret-admin-pw"}
    text = "\n".join(prepare_environment(parse_args(["--data-dir", str(tmp_path / "e")]), environ))
    assert "s3cret-admin-pw" not in text and "password from DOMINUS_LOCAL_DEMO_ADMIN_PASSWORD" in text


def test_environment_with_a_backend_url_keeps_it(tmp_path: Path) -> None:
    environ = {"DOMINUS_BASE_URL": "http://127.0.0.1:9999", "DOMINUS_TOKEN": "psk-value"}
    lines = prepare_environment(parse_args([]), environ)
    assert environ["DOMINUS_BASE_URL"] == "http://127.0.0.1:9999"
    assert "DOMINUS_LOCAL_SEED_DEMO" not in environ
    assert lines[0] == "Backend: http://127.0.0.1:9999 (from DOMINUS_BASE_URL)"
    assert all("psk-value" not in line for line in lines)
    with pytest.raises(UsageError, match="--data-dir and --reset apply to the embedded backend"):
        prepare_environment(parse_args(["--reset"]), environ)


def test_arguments_and_urls() -> None:
    assert public_url("0.0.0.0", 8000) == "http://localhost:8000"
    assert public_url("::1", 81) == "http://[::1]:81"
    with pytest.raises(SystemExit):
        parse_args(["--port", "70000"])
    assert isinstance(parse_args(["--host", "0.0.0.0", "--reset"]), argparse.Namespace)


def test_demo_accounts_match_the_seed() -> None:
    assert [(name, password) for name, _, password, _, _ in DEMO_ACCOUNTS] == [
        ("admin", DEFAULT_ADMIN_PASSWORD),
        ("demo", DEFAULT_DEMO_PASSWORD),
    ]


def test_scripts_run_sets_up_and_starts_the_app() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOMINUS_", "PYTEST_"))}
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "run"), "--help"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: python -m example_app" in result.stdout and "--data-dir" in result.stdout


async def test_the_same_app_on_a_network_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {"DOMINUS_LOCAL_SEED_DEMO": "true", "DOMINUS_LOCAL_BCRYPT_ROUNDS": "4"}
    with LocalServer(data_dir=tmp_path / "server", env=env) as server:
        monkeypatch.setenv("DOMINUS_BASE_URL", server.url)
        monkeypatch.setenv("DOMINUS_TOKEN", server.psk or "")
        app: Any = create_app()
        assert app.state.dev_outbox is True  # a loopback http backend counts as local
        async with LifespanManager(app) as manager, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://127.0.0.1",
            headers={"Origin": "http://127.0.0.1"},
        ) as http:
            login = await http.post("/auth/login", data={"username": "admin", "password": "dominus-admin"})
            assert login.status_code == 303
            dashboard = await http.get("/dashboard", headers=HTML)
            assert dashboard.status_code == 200 and 'id="username">admin<' in dashboard.text
            assert (await http.get("/dashboard/admin/users", headers=HTML)).status_code == 200
