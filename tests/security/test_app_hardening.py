"""The example app under attack: account takeover through the dev outbox,
DNS rebinding through the ``Host`` header, ``NaN``/``Infinity``/``1e999`` in JSON bodies, a start beyond
loopback with the published demo passwords, and the modes of the data dir.

The app is ``example_app.create_app`` on the testing kit's embedded backend with the demo data; the demo
accounts get passwords of their own here (the app refuses the published ones off loopback), so the published
ones are no shortcut for the attacker either.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse

from dominus_fastapi import Dominus, install_exception_handlers
from dominus_fastapi.testing import APP_ORIGIN, mailed_token
from example_app import create_app
from example_app.__main__ import UsageError, parse_args, prepare_environment
from example_app.security import UnsafeStartError, parse_allowed_hosts
from tests.e2e.conftest import ROOT, ExampleAppServer
from tests.reliability.ledger import TALLY, WATCH

ADMIN_PASSWORD = WATCH.secret("admin-pw-" + secrets.token_hex(8))
USER_PASSWORD = WATCH.secret("user-pw-" + secrets.token_hex(8))
PASSWORD_VARIABLES = ("DOMINUS_LOCAL_DEMO_ADMIN_PASSWORD", "DOMINUS_LOCAL_DEMO_USER_PASSWORD")
HTML = {"Accept": "text/html"}
LAN_CLIENT = ("192.168.1.50", 51000)


@pytest.fixture
def dominus_seed_demo(monkeypatch: pytest.MonkeyPatch) -> bool:
    monkeypatch.setenv("DOMINUS_LOCAL_DEMO_ADMIN_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.setenv("DOMINUS_LOCAL_DEMO_USER_PASSWORD", USER_PASSWORD)
    monkeypatch.delenv("EXAMPLE_APP_ALLOWED_HOSTS", raising=False)
    return True


@pytest.fixture
def dominus_app() -> Any:
    return create_app()


@asynccontextmanager
async def browser(
    app: Any, *, origin: str = APP_ORIGIN, client: tuple[str, int] = ("127.0.0.1", 123)
) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping client that sends ``Origin`` like a browser on the app's pages; 500s are answers."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=client)
    async with httpx.AsyncClient(transport=transport, base_url=origin, headers={"Origin": origin}) as http:
        yield http


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[Any]:
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
        yield manager.app


async def sign_in(http: httpx.AsyncClient, username: str, password: str) -> None:
    response = await http.post("/auth/login", data={"username": username, "password": password, "next": "/dashboard"})
    assert response.status_code == 303 and response.headers["location"] == "/dashboard", response.text


# --- 1. account takeover through the dev outbox -------------------------------------------------------------


async def test_outbox_never_hands_a_reset_link_to_an_attacker(dominus: Dominus, dominus_asgi_app: Any) -> None:
    """The report's attack: ``POST /forgot-password`` for the admin, read the link from ``/outbox``, set a
    password. Every way in that is not an administrator's session on a loopback-bound app over a loopback
    connection gets no link; the administrator's password is unchanged."""
    failures: list[str] = []

    def case(ok: bool, what: str, response: httpx.Response | None = None) -> None:
        detail = f"{what}: {response.status_code if response is not None else ''}"
        if not TALLY.record("attacks: outbox account takeover", ok, detail):
            failures.append(detail)

    async with browser(dominus_asgi_app) as attacker:
        sent = await attacker.post("/forgot-password", data={"email": "admin@example.com"}, headers=HTML)
        assert sent.status_code == 200 and 'id="reset-sent"' in sent.text
    token = WATCH.secret(await mailed_token(dominus, "admin@example.com", "password-reset"))

    def leaked(response: httpx.Response) -> bool:
        return token in response.text or "reset-password?token=" in response.text

    async with browser(dominus_asgi_app) as anonymous:
        for accept in ("text/html", "application/json", "*/*", ""):
            response = await anonymous.get("/outbox", headers={"Accept": accept})
            case(response.status_code in (303, 401) and not leaked(response), f"anonymous Accept={accept!r}", response)
        for host in ("evil.example", "192.168.1.20", "localhost.evil.example"):
            response = await anonymous.get("/outbox", headers={**HTML, "Host": host})
            case(response.status_code == 400 and not leaked(response), f"anonymous Host={host}", response)

    async with browser(dominus_asgi_app) as demo:
        await sign_in(demo, "demo", USER_PASSWORD)
        for accept in ("text/html", "application/json"):
            response = await demo.get("/outbox", headers={"Accept": accept})
            case(response.status_code == 403 and not leaked(response), f"demo user Accept={accept}", response)

    # An administrator, but the connection comes from the LAN (the app was started some other way).
    async with browser(dominus_asgi_app, client=LAN_CLIENT) as lan:
        await sign_in(lan, "admin", ADMIN_PASSWORD)
        response = await lan.get("/outbox", headers=HTML)
        case(response.status_code == 404 and not leaked(response), "admin from a LAN peer", response)

    # An administrator of an app bound beyond loopback (the report's --host 0.0.0.0). Off loopback the session
    # cookies are ``Secure``, so the administrator comes through https (TLS ending at a proxy).
    for host, allowed, origin in (
        ("0.0.0.0", "192.168.1.20", "https://192.168.1.20"),
        ("192.168.1.20", None, "https://192.168.1.20"),
        ("::", "[fd00::20]", "https://[fd00::20]"),
    ):
        exposed = create_app(host=host, allowed_hosts=allowed)
        case(exposed.state.dev_outbox is False, f"bound to {host}: outbox flag")
        async with running(exposed) as app, browser(app, origin=origin) as admin:
            await sign_in(admin, "admin", ADMIN_PASSWORD)
            response = await admin.get("/outbox", headers=HTML)
            case(response.status_code == 404 and not leaked(response), f"admin, app bound to {host}", response)
            page = await admin.get("/dashboard", headers=HTML)
            case(page.status_code == 200 and 'href="/outbox"' not in page.text, f"no outbox link, bound to {host}")
    with pytest.raises(ValueError, match="dev_outbox=True needs a loopback host"):
        create_app(host="0.0.0.0", allowed_hosts="192.168.1.20", dev_outbox=True)
    case(True, "dev_outbox=True refused beyond loopback")

    # The link never left: the token still works for its owner's flow, and the admin's password is unchanged.
    async with browser(dominus_asgi_app) as admin:
        await sign_in(admin, "admin", ADMIN_PASSWORD)
        shown = await admin.get("/outbox", headers=HTML)
        assert shown.status_code == 200 and token in shown.text  # the one legitimate reader
    assert failures == []


# --- 2. DNS rebinding: the Host header ----------------------------------------------------------------------

FOREIGN_HOSTS = [
    "evil.example",
    "evil.example:8000",
    "127.0.0.1.evil.example",
    "localhost.evil.example",
    "evil.localhost",
    "LOCALHOST.evil.example",
    "192.168.1.20",
    "10.0.0.1:8000",
    "0.0.0.0",
    "[::2]",
    "[::ffff:127.0.0.1]",
    "localhost@evil.example",
    "127.0.0.1 evil.example",
    "",
]
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LocalHost"]
REBIND_REQUESTS: list[tuple[str, str, dict[str, str] | None]] = [
    ("GET", "/login", None),
    ("GET", "/outbox", None),
    ("GET", "/api/me", None),
    ("POST", "/auth/login", {"username": "admin", "password": ADMIN_PASSWORD}),
    ("POST", "/forgot-password", {"email": "admin@example.com"}),
]


async def test_foreign_host_names_are_refused(dominus: Dominus, dominus_asgi_app: Any) -> None:
    """A page on a rebound DNS name reaches the loopback-bound app with that name in ``Host``: 400, nothing
    runs (no sign-in cookie, no mail). The loopback names still answer."""
    failures: list[str] = []
    mails_before = (await dominus.courier.outbox(limit=1))["total"]
    async with browser(dominus_asgi_app) as http:
        for host in FOREIGN_HOSTS:
            for method, path, form in REBIND_REQUESTS:
                response = await http.request(method, path, data=form, headers={**HTML, "Host": host})
                ok = response.status_code == 400 and "set-cookie" not in response.headers
                if not TALLY.record("attacks: DNS rebinding (Host)", ok, f"{method} {path} Host={host!r}"):
                    failures.append(f"{method} {path} Host={host!r}: {response.status_code}")
        for host in LOOPBACK_HOSTS:
            response = await http.get("/login", headers={**HTML, "Host": host})
            if not TALLY.record("attacks: DNS rebinding (Host)", response.status_code == 200, f"loopback {host}"):
                failures.append(f"loopback Host={host!r}: {response.status_code}")
    assert (await dominus.courier.outbox(limit=1))["total"] == mails_before, "a refused request sent a mail"
    assert failures == []


async def test_configured_host_names_replace_the_defaults(
    dominus: Dominus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond loopback the app answers only the names it was given (argument, else EXAMPLE_APP_ALLOWED_HOSTS);
    a wildcard bind without names does not start."""
    failures: list[str] = []
    monkeypatch.setenv("EXAMPLE_APP_ALLOWED_HOSTS", "app.lan, *.corp.example")
    for app, expected in (
        (create_app(host="0.0.0.0"), {"app.lan": 200, "x.corp.example": 200, "localhost": 400}),
        (create_app(host="0.0.0.0", allowed_hosts=["other.lan"]), {"other.lan": 200, "app.lan": 400}),
        (create_app(host="192.168.1.20", allowed_hosts="*"), {"anything.example": 200}),
    ):
        async with running(app) as started, browser(started) as http:
            for host, status in {**expected, "evil.example": 200 if "anything.example" in expected else 400}.items():
                response = await http.get("/login", headers={**HTML, "Host": host})
                ok = response.status_code == status
                if not TALLY.record("attacks: DNS rebinding (Host)", ok, f"configured {host}"):
                    failures.append(f"{app.state.allowed_hosts} Host={host}: {response.status_code}")
    monkeypatch.delenv("EXAMPLE_APP_ALLOWED_HOSTS")
    with pytest.raises(UnsafeStartError, match="--allowed-hosts"):
        create_app(host="0.0.0.0")
    for bad in ("", " , ", "*evil.example", "a.*.example"):
        with pytest.raises(ValueError, match="EXAMPLE_APP_ALLOWED_HOSTS"):
            parse_allowed_hosts(bad)
    assert failures == []


# --- 3. non-finite numbers in JSON bodies -------------------------------------------------------------------

NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def _json_routes(app: FastAPI) -> list[tuple[str, str, list[str]]]:
    """Every (method, path, body field names) whose request body is JSON, from the app's OpenAPI document."""
    document = app.openapi()
    schemas = document.get("components", {}).get("schemas", {})
    routes = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = (operation.get("requestBody") or {}).get("content", {})
            if "application/json" not in content:
                continue
            schema = content["application/json"].get("schema", {})
            schema = next((item for item in schema.get("anyOf", []) if "$ref" in item), schema)  # optional bodies
            if "$ref" in schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
            routes.append((method.upper(), path, sorted(schema.get("properties", {}))))
    return routes


async def test_non_finite_json_numbers_get_a_422_on_every_json_route(dominus_app: Any, dominus_asgi_app: Any) -> None:
    """``NaN``, ``Infinity`` and ``1e999`` (which Python's JSON parser accepts) at the top level, in a list, and
    in each field of each JSON route of the example app, signed in as the administrator so that every route
    reaches validation: a 422 in strict JSON that names the field and echoes no input, never a 500."""
    routes = _json_routes(dominus_app)
    assert {"/api/reports", "/api/users/invitations", "/auth/login"} <= {path for _, path, _ in routes}
    assert all(fields for _, _, fields in routes), routes
    failures: list[str] = []
    async with browser(dominus_asgi_app) as http:
        await sign_in(http, "admin", ADMIN_PASSWORD)
        for method, path, fields in routes:
            bodies: list[tuple[str, str | None]] = [(value, None) for value in NON_FINITE]
            bodies += [(f"[{value}]", None) for value in NON_FINITE[:2]]
            bodies += [("{" + ", ".join(f'"{f}": {value}' for f in fields) + "}", None) for value in NON_FINITE[:4]]
            bodies += [(f'{{"{field}": NaN}}', field) for field in fields]
            for body, field in bodies:
                response = await http.request(
                    method, path, content=body.encode(), headers={"content-type": "application/json"}
                )
                try:
                    detail = _strict_json(response.text).get("detail")
                except (ValueError, AttributeError):
                    detail = None
                ok = (
                    response.status_code == 422
                    and response.headers.get("content-type") == "application/json"
                    and isinstance(detail, list)
                    and bool(detail)
                    and all("input" not in error and error.get("loc") for error in detail)
                    and (field is None or any(field in error["loc"] for error in detail))
                )
                if not TALLY.record("attacks: non-finite JSON numbers", ok, f"{method} {path} {body[:40]}"):
                    failures.append(f"{method} {path} {body[:60]}: {response.status_code} {response.text[:120]}")
    assert failures == []


class _Reading(BaseModel):
    value: int
    label: str


async def test_any_app_with_the_handlers_answers_non_finite_numbers_with_a_422() -> None:
    """``install_exception_handlers`` (which ``setup_dominus`` calls) brings the same answer to any app, and
    keeps a validation handler the application registered itself."""
    plain = FastAPI()
    install_exception_handlers(plain)
    custom = FastAPI()

    async def own_handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"mine": True}, status_code=400)

    custom.add_exception_handler(RequestValidationError, own_handler)
    install_exception_handlers(custom)
    for app in (plain, custom):

        @app.post("/readings")
        async def add_reading(body: _Reading) -> dict[str, int]:
            return {"value": body.value}

    failures: list[str] = []
    async with browser(plain) as http:
        for value in NON_FINITE:
            for body in (value, f'{{"value": {value}, "label": "x"}}', f'{{"value": 1, "label": {value}}}'):
                response = await http.post("/readings", content=body, headers={"content-type": "application/json"})
                try:
                    ok = response.status_code == 422 and isinstance(_strict_json(response.text)["detail"], list)
                except ValueError:
                    ok = False
                if not TALLY.record("attacks: non-finite JSON numbers", ok, f"any app: {body}"):
                    failures.append(f"{body}: {response.status_code} {response.text[:100]}")
    async with browser(custom) as http:
        kept = await http.post("/readings", content="NaN", headers={"content-type": "application/json"})
        assert kept.status_code == 400 and kept.json() == {"mine": True}
    assert failures == []


# --- 4. starting beyond loopback with the published demo passwords -----------------------------------------


def test_start_beyond_loopback_needs_new_demo_passwords(tmp_path: Path) -> None:
    """``python -m example_app --host <not loopback>`` on the embedded demo data refuses to start, naming the
    variables to set, until both demo passwords are replaced; nothing is created before that."""
    failures: list[str] = []
    defaults = dict(zip(PASSWORD_VARIABLES, ("dominus-admin", "dominus-user"), strict=True))
    attempts: list[tuple[list[str], dict[str, str], tuple[str, ...]]] = [
        (["--host", "0.0.0.0", "--allowed-hosts", "192.168.1.20"], {}, PASSWORD_VARIABLES),
        (["--host", "192.168.1.20"], {}, PASSWORD_VARIABLES),
        (["--host", "::", "--allowed-hosts", "[fd00::20]"], {}, PASSWORD_VARIABLES),
        (["--host", "myhost.lan"], {}, PASSWORD_VARIABLES),
        (["--host", "192.168.1.20"], {PASSWORD_VARIABLES[0]: ADMIN_PASSWORD}, PASSWORD_VARIABLES[1:]),
        (["--host", "192.168.1.20"], {PASSWORD_VARIABLES[1]: USER_PASSWORD}, PASSWORD_VARIABLES[:1]),
        (["--host", "192.168.1.20"], defaults, PASSWORD_VARIABLES),
        (["--host", "192.168.1.20"], {**dict.fromkeys(PASSWORD_VARIABLES, "")}, PASSWORD_VARIABLES),
    ]
    for index, (argv, environ, named) in enumerate(attempts):
        data_dir = tmp_path / f"d{index}"
        try:
            prepare_environment(parse_args([*argv, "--data-dir", str(data_dir)]), dict(environ))
        except UsageError as exc:
            message = str(exc)
            ok = all(variable in message for variable in named) and not data_dir.exists()
            ok = ok and ADMIN_PASSWORD not in message and USER_PASSWORD not in message
        else:
            ok, message = False, "started"
        if not TALLY.record("attacks: exposed start", ok, f"{argv} {sorted(environ)}"):
            failures.append(f"{argv} {sorted(environ)}: {message}")

    allowed = prepare_environment(
        parse_args(["--host", "192.168.1.20", "--data-dir", str(tmp_path / "ok")]),
        {PASSWORD_VARIABLES[0]: ADMIN_PASSWORD, PASSWORD_VARIABLES[1]: USER_PASSWORD},
    )
    assert any("the dev outbox is off" in line for line in allowed)
    with pytest.raises(UsageError, match="--allowed-hosts"):
        prepare_environment(parse_args(["--host", "0.0.0.0", "--data-dir", str(tmp_path / "w")]), {})

    # The command itself: exit status 2, one line on stderr.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOMINUS_", "PYTEST_", "EXAMPLE_APP_"))}
    result = subprocess.run(
        [sys.executable, "-m", "example_app", "--host", "192.168.1.20", "--data-dir", str(tmp_path / "cli")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    ok = result.returncode == 2 and all(v in result.stderr for v in PASSWORD_VARIABLES) and result.stdout == ""
    if not TALLY.record("attacks: exposed start", ok, "python -m example_app --host 192.168.1.20"):
        failures.append(f"command: {result.returncode} {result.stderr[-300:]}")
    assert not (tmp_path / "cli").exists()
    assert failures == []


async def test_old_data_with_the_published_passwords_is_caught_at_startup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Data seeded earlier with the published passwords keeps them (the seed never overwrites a password), so
    setting the variables later is not enough: off loopback the app's startup signs in to check, and stops."""
    url = f"embedded://{tmp_path / 'data'}"
    monkeypatch.setenv("DOMINUS_BASE_URL", url)
    monkeypatch.setenv("DOMINUS_LOCAL_SEED_DEMO", "true")
    monkeypatch.setenv("DOMINUS_LOCAL_BCRYPT_ROUNDS", "4")
    monkeypatch.delenv("DOMINUS_TOKEN", raising=False)
    for variable in PASSWORD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    async with running(create_app()):  # a first run on loopback seeds the published passwords
        pass
    for variable, password in zip(PASSWORD_VARIABLES, (ADMIN_PASSWORD, USER_PASSWORD), strict=True):
        monkeypatch.setenv(variable, password)
    failures: list[str] = []
    for host in ("192.168.1.20", "0.0.0.0", "::"):
        try:
            async with running(create_app(host=host, allowed_hosts="app.lan")):
                message = "started"
        except UnsafeStartError as exc:
            message = str(exc)
        ok = all(named in message for named in ("admin (" + PASSWORD_VARIABLES[0], "demo (" + PASSWORD_VARIABLES[1]))
        ok = ok and "dominus-admin" not in message and "dominus-user" not in message
        if not TALLY.record("attacks: exposed start", ok, f"old data, bound to {host}"):
            failures.append(f"{host}: {message}")
    async with running(create_app()) as app, browser(app) as http:  # loopback still starts, for local use
        assert (await http.get("/login", headers=HTML)).status_code == 200
    assert failures == []


# --- 5. the data dir ----------------------------------------------------------------------------------------


def test_data_dir_and_its_files_are_private(tmp_path: Path) -> None:
    """The running app's data dir is 0700 and every file in it 0600, also a data dir made laxer before."""
    data_dir = tmp_path / "data"
    (data_dir / "old").mkdir(parents=True, mode=0o755)
    data_dir.chmod(0o755)
    (data_dir / ".example-app").touch(mode=0o644)
    (data_dir / "old" / "notes.txt").write_text("from an older version")
    (data_dir / "old" / "notes.txt").chmod(0o644)
    env = {PASSWORD_VARIABLES[0]: ADMIN_PASSWORD, PASSWORD_VARIABLES[1]: USER_PASSWORD}
    with ExampleAppServer(data_dir, env=env) as server, httpx.Client(
        base_url=server.url, headers={"Origin": server.url}
    ) as http:
        signed_in = http.post("/auth/login", data={"username": "admin", "password": ADMIN_PASSWORD, "next": "/"})
        assert signed_in.status_code == 303
        assert http.post("/api/files", files={"upload": ("a.txt", b"x", "text/plain")}).status_code == 201
        assert http.post("/forgot-password", data={"email": "user@example.com"}).status_code == 200
        WATCH.capture("example app output", server.output)
        paths = [data_dir, *data_dir.rglob("*")]
        names = {path.name for path in paths}
        assert {"dominus.db", "userdata.db", "signing_key.pem"} <= names, names
        failures: list[str] = []
        for path in paths:
            mode = stat.S_IMODE(path.lstat().st_mode)
            expected = 0o700 if path.is_dir() else 0o600
            if not TALLY.record("attacks: data dir modes", mode == expected, str(path.relative_to(tmp_path))):
                failures.append(f"{path.relative_to(tmp_path)}: {oct(mode)}")
    assert failures == []
