"""The FastAPI side under attack: CSRF on the portal routes, cookie flags, open redirects through ``next``, and
credential checks that cost the same whether or not the account exists.

The app under test is the integration tests' app (``tests/fastapi/apps.py``) on an in-process
``dominus_local``, through the project's own testing kit.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from typing import Any
from urllib.parse import urlsplit

import bcrypt
import httpx
import pytest

from dominus_fastapi import Dominus
from dominus_fastapi.testing import APP_ORIGIN, TEST_PASSWORD, create_test_user, signed_in_client
from tests.fastapi.apps import build_app
from tests.reliability.ledger import TALLY, WATCH

WATCH.secret(TEST_PASSWORD)

UNSAFE_ROUTES = [
    ("POST", "/auth/logout", {}),
    ("POST", "/auth/refresh", {}),
    ("POST", "/auth/switch-tenant", {"tenant_id": "acme"}),
    ("PUT", "/auth/profile", {"display_name": "Pwned"}),
    ("PUT", "/auth/preferences", {"theme": "dark"}),
    ("POST", "/auth/change-password", {"current_password": TEST_PASSWORD, "new_password": "pwned-password"}),
    ("DELETE", "/auth/sessions/00000000-0000-4000-8000-000000000000", None),
    ("POST", "/auth/sessions/revoke-all", {}),
    ("POST", "/auth/check-access", {"path": "/dashboard"}),
]
FOREIGN = [  # (the same host over https counts as this site, by design: TLS often ends at a proxy)
    {"Origin": "https://evil.example"},
    {"Origin": "http://127.0.0.1.evil.example"},
    {"Origin": "http://127.0.0.1:8081"},
    {"Origin": "null"},
    {"Origin": "null", "Referer": "https://evil.example/page"},
    {"Referer": "https://evil.example/page"},
    {"Referer": "http://evil.example/http://127.0.0.1/"},
    {},
]
OPEN_REDIRECTS = [
    "https://evil.example/steal",
    "http://evil.example",
    "//evil.example",
    "///evil.example",
    "////evil.example/x",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    " //evil.example",
    "\t//evil.example",
    "http:evil.example",
    "https:/evil.example",
    "http://127.0.0.1@evil.example",
    "http://evil.example#@127.0.0.1",
    "http://evil.example\\@127.0.0.1",
    "http://127.0.0.1.evil.example/",
    "//127.0.0.1@evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "%2F%2Fevil.example",
    "/%09/evil.example",
    "https://evil.example%2F@127.0.0.1",
]


@pytest.fixture
def dominus_app() -> Any:
    return build_app()


def _safe_location(location: str) -> bool:
    """A redirect target that a browser resolves to this site: a plain path, nothing it could read as a host."""
    stripped = "".join(ch for ch in location if ch not in "\t\n\r").replace("\\", "/").strip()
    parts = urlsplit(stripped)
    return (
        stripped.startswith("/")
        and not stripped.startswith("//")
        and parts.scheme == ""
        and parts.netloc == ""
        and location == location.strip()
    )


async def test_cross_site_cookie_writes_are_refused(dominus: Dominus, dominus_asgi_app: Any) -> None:
    user = await create_test_user(dominus, tenants=["acme"])
    WATCH.secret(user.access_token)
    failures: list[str] = []
    async with signed_in_client(dominus_asgi_app, user) as http:
        for method, path, body in UNSAFE_ROUTES:
            for headers in FOREIGN:
                http.headers.pop("origin", None)
                response = await http.request(method, path, json=body, headers=headers)
                ok = response.status_code == 403 and response.json().get("code") == "csrf_failed"
                if not TALLY.record("attacks: CSRF", ok, f"{method} {path} {headers}: {response.status_code}"):
                    failures.append(f"{method} {path} {headers}: {response.status_code}")
        http.headers["origin"] = APP_ORIGIN
        assert failures == []
        me = await http.get("/auth/me")
        assert me.status_code == 200, "the refused requests changed nothing: still signed in"
        assert me.json()["user"]["username"] == user.username
        profile = await http.get("/auth/profile")
        assert profile.json().get("display_name") != "Pwned"
    assert failures == []


async def test_cross_site_form_login_is_refused(dominus: Dominus, dominus_app_client: httpx.AsyncClient) -> None:
    """Login CSRF: another site's form cannot sign the victim's browser into the attacker's account."""
    user = await create_test_user(dominus)
    form = {"username": user.username, "password": TEST_PASSWORD, "next": "/"}
    response = await dominus_app_client.post("/auth/login", data=form, headers={"Origin": "https://evil.example"})
    ok = response.status_code == 403 and "dominus_session" not in response.headers.get("set-cookie", "")
    assert TALLY.record("attacks: CSRF", ok, f"cross-site login {response.status_code}")


@pytest.mark.parametrize("origin", [APP_ORIGIN, "https://app.example"], ids=["loopback http", "https"])
async def test_session_cookie_flags(dominus: Dominus, dominus_asgi_app: Any, origin: str) -> None:
    user = await create_test_user(dominus)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=dominus_asgi_app), base_url=origin) as http:
        response = await http.post(
            "/auth/login", json={"username": user.username, "password": TEST_PASSWORD}, headers={"Origin": origin}
        )
    assert response.status_code == 200
    cookies = response.headers.get_list("set-cookie")
    assert cookies, "login sets the session cookies"
    failures = []
    for cookie in cookies:
        WATCH.secret(cookie.split("=", 1)[1].split(";", 1)[0])
        flags = {part.strip().split("=", 1)[0].lower(): part.strip() for part in cookie.split(";")[1:]}
        ok = (
            "httponly" in flags
            and flags.get("samesite", "").lower() in ("samesite=lax", "samesite=strict")
            and ("secure" in flags) == origin.startswith("https")
            and flags.get("path") == "Path=/"
        )
        if not TALLY.record("attacks: cookie flags", ok, cookie.split("=", 1)[0]):
            failures.append(cookie.split("=", 1)[0] + " " + str(sorted(flags)))
    assert failures == []


async def test_next_never_redirects_off_site(dominus: Dominus, dominus_app_client: httpx.AsyncClient) -> None:
    user = await create_test_user(dominus)
    origin = {"Origin": APP_ORIGIN}
    failures: list[str] = []
    for target in OPEN_REDIRECTS:
        form = {"username": user.username, "password": TEST_PASSWORD, "next": target}
        login = await dominus_app_client.post("/auth/login", data=form, headers=origin)
        logout = await dominus_app_client.post("/auth/logout", data={"next": target}, headers=origin)
        for name, response in (("login", login), ("logout", logout)):
            location = response.headers.get("location", "")
            ok = response.status_code == 303 and _safe_location(location)
            if not TALLY.record("attacks: open redirects", ok, f"{name} next={target!r} -> {location!r}"):
                failures.append(f"{name} next={target!r} -> {location!r}")
    assert failures == []


async def test_password_checks_cost_the_same_for_unknown_accounts(
    dominus: Dominus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Timing safety: a login for an unknown user, for a user without a password, with a wrong password and
    with the right one each run exactly one bcrypt comparison (bcrypt compares in constant time)."""
    calls: list[int] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(1)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    user = await create_test_user(dominus)
    await dominus.auth.add_user("no-password-user", "placeholder-password", email="np@example.com")
    attempts = {
        "unknown user": ("nobody-at-all", "wrong-password-1"),
        "wrong password": (user.username, "wrong-password-1"),
        "right password": (user.username, TEST_PASSWORD),
        "unknown e-mail": ("nobody@example.com", "wrong-password-1"),
    }
    counts = {}
    for name, (username, password) in attempts.items():
        calls.clear()
        try:
            await dominus.portal.login(username, password)
        except Exception as exc:
            WATCH.capture_error(exc)
        counts[name] = len(calls)
    for name, count in counts.items():
        TALLY.record("attacks: timing-safe credentials", count == 1, f"{name}: {count} bcrypt checks")
    assert counts == dict.fromkeys(attempts, 1)


async def test_credentials_are_stored_only_as_digests(tmp_path: Any) -> None:
    """PSKs are looked up by SHA-256 digest and passwords kept as bcrypt hashes: neither appears in the
    database file, so no code path compares them as plain strings."""
    import secrets

    psk = WATCH.secret(secrets.token_hex(32))
    password = WATCH.secret("stored-password-" + secrets.token_hex(4))
    client = Dominus(base_url=f"embedded://{tmp_path / 'data'}", token=psk)
    try:
        created = await client.auth.create_client("robot")
        other_psk = WATCH.secret(created["psk"])
        await client.auth.add_user("stored", password, email="stored@example.com")
        await client.portal.login("stored", password)
        await client.portal.login_client(other_psk)
    finally:
        await client.aclose()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("dominus.db*"))
    found = [
        name
        for name, secret in (("psk", psk), ("client psk", other_psk), ("password", password))
        if secret.encode() in raw
    ]
    TALLY.record("attacks: timing-safe credentials", found == [], f"stored in clear: {found}")
    assert found == []
    with sqlite3.connect(tmp_path / "data" / "dominus.db") as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert any("client" in t for t in tables)


PORTAL_BODY_ROUTES = [
    ("POST", "/auth/login"),
    ("POST", "/auth/token"),
    ("POST", "/auth/login/client"),
    ("POST", "/auth/refresh"),
    ("POST", "/auth/switch-tenant"),
    ("POST", "/auth/check-access"),
    ("PUT", "/auth/profile"),
    ("PUT", "/auth/preferences"),
    ("POST", "/auth/change-password"),
    ("POST", "/auth/password-reset/request"),
    ("POST", "/auth/password-reset/confirm"),
    ("POST", "/auth/register"),
    ("POST", "/auth/verify-email"),
    ("POST", "/auth/resend-verification"),
    ("POST", "/auth/accept-invitation"),
]
SECRET_FIELDS = ("password", "current_password", "new_password", "psk", "token", "refresh_token")


async def test_portal_routes_refuse_bad_bodies_without_echoing_them(dominus: Dominus, dominus_asgi_app: Any) -> None:
    """Malformed bodies on the portal routes get a 4xx (never a 500, also for bytes that are not UTF-8), and the
    answer never repeats the secrets the body carried."""
    user = await create_test_user(dominus, tenants=["acme"])
    secret = WATCH.secret("echoed-secret-" + "7" * 12)
    bodies: list[tuple[str, dict[str, Any]]] = [
        ("json", dict.fromkeys(SECRET_FIELDS, secret)),  # every other field missing
        ("json", {**dict.fromkeys(SECRET_FIELDS, secret), "tenant_id": [], "theme": {}, "path": 5}),
    ]
    raw = [b"\xff\xfe\xfd", b"{", b'{"a":' * 3000, b"null"]
    content_types = ["application/json", "application/x-www-form-urlencoded", "text/plain", "multipart/form-data"]
    failures: list[str] = []
    async with signed_in_client(dominus_asgi_app, user) as http:
        for method, path in PORTAL_BODY_ROUTES:
            attempts: list[tuple[str, Any]] = []
            for _, body in bodies:
                attempts.append(("json", await http.request(method, path, json=body)))
                form = {k: str(v) for k, v in body.items()}
                attempts.append(("form", await http.request(method, path, data=form)))
            for content in raw:
                for content_type in content_types:
                    response = await http.request(method, path, content=content, headers={"content-type": content_type})
                    attempts.append((f"{content[:6]!r} as {content_type}", response))
            for what, response in attempts:
                ok = response.status_code < 500 and secret not in response.text
                if not TALLY.record("attacks: portal bad bodies", ok, f"{method} {path} {what}"):
                    failures.append(f"{method} {path} {what}: {response.status_code} {response.text[:120]}")
    assert failures == []


def _b64_json(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


async def test_forged_sessions_never_sign_in_to_the_app(dominus: Dominus, dominus_asgi_app: Any) -> None:
    """Forged or mangled session tokens, as Bearer header, as cookies or both: public routes still answer,
    signed-in routes answer 401, and nothing fails with a 5xx."""
    user = await create_test_user(dominus, tenants=["acme"])
    WATCH.secret(user.access_token)
    head, payload, signature = user.access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = {
        "alg none": f"{_b64_json({'alg': 'none'})}.{payload}.",
        "claims tampered to admin": f"{head}.{_b64_json({**claims, 'roles': ['admin']})}.{signature}",
        "signature altered": f"{head}.{payload}.{signature[:-2]}xx",
        "HS256 header": f"{_b64_json({'alg': 'HS256', 'kid': 'x'})}.{payload}.{signature}",
        "kid traversal": f"{_b64_json({'alg': 'RS256', 'kid': '../../etc/passwd'})}.{payload}.{signature}",
        "header is a list": f"{_b64_json([1, 2])}.{payload}.{signature}",
        "claims are a list": f"{head}.{_b64_json([1])}.{signature}",
        "exp as text": f"{head}.{_b64_json({**claims, 'exp': 'soon'})}.{signature}",
        "10 000 characters": "x" * 10_000,
        "three dots": "a.b.c",
        "non-ASCII": "ünïcode.tökén.sïg",
        "NUL": "a\x00b",
        "empty": "",
    }
    failures: list[str] = []
    transport = httpx.ASGITransport(app=dominus_asgi_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN) as http:
        for name, token in forged.items():
            for path in ("/public", "/whoami", "/auth/me", "/auth/sessions"):
                for how in ("bearer", "cookie", "both"):
                    headers: dict[str, bytes] = {}
                    if how in ("bearer", "both"):
                        headers["authorization"] = f"Bearer {token}".encode()
                    if how in ("cookie", "both"):
                        headers["cookie"] = f"dominus_session={token}; dominus_refresh={token}".encode()
                    response = await http.get(path, headers=headers)
                    expected = 200 if path == "/public" else 401
                    ok = response.status_code == expected
                    if not TALLY.record("attacks: forged tokens (FastAPI app)", ok, f"{name} {path} {how}"):
                        failures.append(f"{name} {path} {how}: {response.status_code}")
    assert failures == []
