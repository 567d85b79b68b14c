"""Floods and sign-ups against Portal's anonymous endpoints, on a real in-process ``dominus_local``.

- **Self-registration**: an anonymous visitor cannot join the admin tenant (by slug, by UUID, or a tenant of
  the admin category), neither through the FastAPI portal router nor by calling the server directly, and
  the router offers sign-up only when the app names the tenants open to it.
- **Password guessing**: wrong passwords for one account lock it (429 ``rate_limited`` with ``Retry-After``,
  no password checked meanwhile) and the lockout doubles; the real user gets in once it ends.
- **Per-address flood**: requests from one end-user address beyond the window's limit are 429 with
  ``Retry-After``, whatever the account; other addresses are not affected; the address is the one the app
  server forwards for its visitor (``end_user_ip``), recorded on the session too.
- **Mail bombing**: 20 password-reset (or verification) requests for one address send at most the
  configured number of mails, and each still answers ``{requested: true}`` / ``{sent: true}``.
- **Through the FastAPI app**: the 429 reaches the browser with ``Retry-After``.

The limits are lowered through the ``DOMINUS_LOCAL_*`` environment, as an operator would set them.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select

from dominus_fastapi import Dominus
from dominus_fastapi.core.errors import AuthenticationError, AuthorizationError, DominusError, RateLimitError
from dominus_fastapi.testing import APP_ORIGIN
from dominus_local import identity
from tests.conftest import InProcessServer, make_fast
from tests.fastapi.apps import build_app
from tests.reliability.ledger import TALLY, WATCH

REGISTRATION = "attacks: self-registration"
GUESSING = "attacks: password guessing"
FLOOD = "attacks: per-address flood"
MAIL = "attacks: mail bombing"
PASSWORD = WATCH.secret("throttle-password-1")
LIMITS = {
    "DOMINUS_LOCAL_LOGIN_FAILURE_LIMIT": "5",
    "DOMINUS_LOCAL_LOGIN_FAILURE_WINDOW": "900",
    "DOMINUS_LOCAL_LOGIN_LOCKOUT_SECONDS": "60",
    "DOMINUS_LOCAL_LOGIN_LOCKOUT_MAX_SECONDS": "900",
    "DOMINUS_LOCAL_RATE_LIMIT_ADDRESS_REQUESTS": "30",
    "DOMINUS_LOCAL_RATE_LIMIT_ADDRESS_WINDOW": "60",
    "DOMINUS_LOCAL_MAIL_PER_ADDRESS_LIMIT": "3",
    "DOMINUS_LOCAL_MAIL_PER_ADDRESS_WINDOW": "3600",
}


@pytest.fixture(autouse=True)
def low_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in LIMITS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def admin(local_client: Dominus) -> Dominus:
    """The service client of ``local_server`` (an administrator)."""
    return local_client


async def _user_count(server: InProcessServer) -> int:
    async with server.local.state.db.begin() as conn:
        return int((await conn.execute(select(func.count()).select_from(identity.users))).scalar_one())


def _retry_after(exc: DominusError) -> float | None:
    return getattr(exc, "retry_after", None)


# --- self-registration ------------------------------------------------------------------------------------


async def test_the_server_refuses_registration_into_the_admin_tenant(
    admin: Dominus, local_server: InProcessServer
) -> None:
    tenants = {row["slug"]: row for row in (await admin.auth.list_tenants())["items"]}
    admin_category = next(
        row for row in (await admin.auth.list_tenant_categories())["items"] if row["slug"] == "admin"
    )
    await admin.auth.create_tenant("Ops", "ops", category_id=admin_category["id"])
    await admin.auth.create_tenant("Acme", "acme")
    before = await _user_count(local_server)
    failures: list[str] = []
    attempts = [("admin", "slug"), (tenants["admin"]["id"], "UUID"), (tenants["admin"]["id"].upper(), "UUID upper"),
                ("ops", "admin category")]
    for index, (tenant, what) in enumerate(attempts):
        try:
            await admin.portal.register(f"intruder{index}", f"intruder{index}@example.com", PASSWORD, tenant)
        except AuthorizationError as exc:
            ok = exc.code == "forbidden" and exc.details.get("reason") == "admin_tenant" and "admin" in exc.message
            case = f"{what}: {exc.code} {exc.details}"
        else:
            ok, case = False, f"{what}: registered"
        if not TALLY.record(REGISTRATION, ok, case):
            failures.append(case)
    assert failures == []
    assert await _user_count(local_server) == before
    registered = await admin.portal.register("newcomer", "newcomer@example.com", PASSWORD, "acme")
    assert registered["user"]["username"] == "newcomer"


async def test_the_portal_router_offers_sign_up_only_for_the_tenants_it_names(dominus: Dominus) -> None:
    await dominus.auth.create_tenant("Acme", "acme")
    await dominus.auth.create_tenant("Beta", "beta")
    body = {"username": "mallory", "email": "mallory@example.com", "password": PASSWORD}
    cases: list[tuple[str, dict[str, Any], dict[str, Any], int]] = [
        ("sign-up off by default", {"registration_tenants": ()}, {"tenant_id": "acme"}, 404),
        ("admin tenant", {}, {"tenant_id": "admin"}, 403),
        ("tenant not named", {}, {"tenant_id": "beta"}, 403),
        ("no tenant, two open", {"registration_tenants": ["acme", "gamma"]}, {}, 400),
    ]
    failures: list[str] = []
    for what, options, extra, status in cases:
        app = build_app(**options)
        async with LifespanManager(app) as manager, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url=APP_ORIGIN
        ) as http:
            response = await http.post("/auth/register", json={**body, **extra})
        ok = response.status_code == status
        if not TALLY.record(REGISTRATION, ok, f"{what}: {response.status_code}"):
            failures.append(f"{what}: {response.status_code} {response.text}")
    for tenants in (["admin"], ["acme", " Admin "]):
        options = {"registration_tenants": tenants}
        try:
            build_app(registration_tenants=tenants)
        except ValueError as exc:
            ok = "admin" in str(exc)
        else:
            ok = False
        if not TALLY.record(REGISTRATION, ok, f"router built with {options}"):
            failures.append(f"router built with {options}")
    assert failures == []
    assert (await dominus.auth.list_users(limit=100))["total"] == 0 or all(
        user["username"] != "mallory" for user in (await dominus.auth.list_users(limit=100))["items"]
    )


# --- password guessing --------------------------------------------------------------------------------------


async def test_wrong_passwords_lock_the_account_and_the_real_user_gets_in_afterwards(
    admin: Dominus, local_server: InProcessServer
) -> None:
    tenant = await admin.auth.create_tenant("Acme", "acme")
    user = await admin.auth.add_user("victim", PASSWORD, email="victim@example.com")
    await admin.auth.add_user_tenants(user["id"], [tenant["id"]])
    answers: list[str] = []
    for attempt in range(40):
        # Each guess from its own forwarded address: the per-address limit plays no part here.
        login_name = "victim" if attempt % 2 else "VICTIM@example.com"
        try:
            await admin.portal.login(login_name, f"guess-{attempt:04d}", end_user_ip=f"198.51.100.{attempt + 1}")
        except AuthenticationError:
            answers.append("401")
        except RateLimitError as exc:
            retry = _retry_after(exc)
            answers.append("429" if retry is not None and 0 < retry <= 60 else f"429 without Retry-After {retry}")
    expected = ["401"] * 5 + ["429"] * 35
    for index, (got, want) in enumerate(zip(answers, expected, strict=True)):
        TALLY.record(GUESSING, got == want, f"guess {index}: {got}")
    assert answers == expected
    # The right password is refused too while the lock lasts: nothing is checked meanwhile.
    with pytest.raises(RateLimitError):
        await admin.portal.login("victim", PASSWORD, end_user_ip="203.0.113.9")
    local_server.wall.advance(61)
    signed_in = await admin.portal.login("victim", PASSWORD, end_user_ip="203.0.113.9")
    WATCH.secret(signed_in["access_token"])
    TALLY.record(GUESSING, signed_in["user"]["id"] == user["id"], "real user after the lockout")
    # A success forgot the failures: the next round locks again only after five more failures, for 60 s.
    for attempt in range(5):
        with pytest.raises(AuthenticationError):
            await admin.portal.login("victim", f"again-{attempt}", end_user_ip="198.51.100.200")
    with pytest.raises(RateLimitError) as locked:
        await admin.portal.login("victim", PASSWORD, end_user_ip="203.0.113.9")
    TALLY.record(GUESSING, _retry_after(locked.value) == 60, f"lockout after a success: {_retry_after(locked.value)}")
    # Without a success in between, each further lockout doubles: 120 s after the next five failures.
    local_server.wall.advance(61)
    for attempt in range(5):
        with pytest.raises(AuthenticationError):
            await admin.portal.login("victim", f"third-{attempt}", end_user_ip="198.51.100.201")
    with pytest.raises(RateLimitError) as doubled:
        await admin.portal.login("victim", PASSWORD, end_user_ip="203.0.113.9")
    TALLY.record(GUESSING, _retry_after(doubled.value) == 120, f"doubled lockout: {_retry_after(doubled.value)}")
    assert _retry_after(doubled.value) == 120


async def test_unknown_names_lock_like_accounts(admin: Dominus) -> None:
    """An unknown name is counted like an account, so lockouts say nothing about which names exist."""
    answers = []
    for attempt in range(7):
        try:
            await admin.portal.login("nobody-here", f"guess-{attempt}", end_user_ip=f"198.51.100.{attempt + 1}")
        except AuthenticationError:
            answers.append(401)
        except RateLimitError:
            answers.append(429)
    ok = answers == [401] * 5 + [429] * 2
    TALLY.record(GUESSING, ok, f"unknown name: {answers}")
    assert ok


# --- per-address flood ------------------------------------------------------------------------------------


async def test_one_address_is_limited_and_others_are_not(admin: Dominus, local_server: InProcessServer) -> None:
    tenant = await admin.auth.create_tenant("Acme", "acme")
    for index in range(40):
        user = await admin.auth.add_user(f"member{index}", PASSWORD, email=f"member{index}@example.com")
        await admin.auth.add_user_tenants(user["id"], [tenant["id"]])
    statuses: list[int] = []
    retry_ok = True
    for index in range(40):
        try:  # one account each: only the per-address limit can refuse these
            await admin.portal.login(f"member{index}", "wrong-password", end_user_ip="192.0.2.7")
        except AuthenticationError:
            statuses.append(401)
        except RateLimitError as exc:
            statuses.append(429)
            retry_ok = retry_ok and _retry_after(exc) is not None and 0 < (_retry_after(exc) or 0) <= 60
    expected = [401] * 30 + [429] * 10
    for index, (got, want) in enumerate(zip(statuses, expected, strict=True)):
        TALLY.record(FLOOD, got == want, f"request {index} from one address: {got}")
    assert statuses == expected and retry_ok
    # Other flows from the same address are refused too; another address (and IPv6 /64) is not.
    with pytest.raises(RateLimitError):
        await admin.portal.request_password_reset("member1@example.com", end_user_ip="192.0.2.7")
    with pytest.raises(RateLimitError):
        await admin.portal.login_client("0" * 64, end_user_ip="192.0.2.7")
    session = await admin.portal.login("member0", PASSWORD, end_user_ip="192.0.2.8", end_user_agent="Browser/1.0")
    WATCH.secret(session["access_token"])
    sessions = await admin.portal.list_sessions(user_token=session["access_token"])
    mine = next(item for item in sessions["items"] if item["current"])
    recorded = mine["ip_address"] == "192.0.2.8" and mine["user_agent"] == "Browser/1.0"
    TALLY.record(FLOOD, recorded, f"session records the end user: {mine['ip_address']} {mine['user_agent']}")
    assert recorded
    for index in range(30):  # one IPv6 /64 counts as one address
        with pytest.raises(AuthenticationError):
            await admin.portal.login(f"member{index}", "wrong-password", end_user_ip=f"2001:db8:1:2::{index + 1:x}")
    with pytest.raises(RateLimitError):
        await admin.portal.login("member0", "wrong-password", end_user_ip="2001:db8:1:2:ffff::1")
    TALLY.record(FLOOD, True, "IPv6 /64 counted as one address")
    # The window ends: the address may try again.
    local_server.wall.advance(61)
    with pytest.raises(AuthenticationError):
        await admin.portal.login("member39", "wrong-password", end_user_ip="192.0.2.7")
    # A forwarded address that is not an address is refused and counts nothing.
    with pytest.raises(DominusError) as bad:
        await admin.portal.login("member0", PASSWORD, end_user_ip="not-an-ip")
    ok = bad.value.status_code == 400 and bad.value.details.get("field") == "end_user_ip"
    TALLY.record(FLOOD, ok, f"bad end_user_ip: {bad.value.status_code}")
    assert ok


async def test_without_a_forwarded_address_the_peer_address_counts(local_server: InProcessServer) -> None:
    client = local_server.client()
    make_fast(client)
    try:
        statuses = []
        for index in range(32):
            try:
                await client.portal.login(f"someone{index}", "wrong-password")
            except AuthenticationError:
                statuses.append(401)
            except RateLimitError:
                statuses.append(429)
        ok = statuses == [401] * 30 + [429] * 2
        TALLY.record(FLOOD, ok, f"peer address: {statuses[-3:]}")
        assert ok
    finally:
        await client.aclose()
        await client._transport.http.aclose()


# --- mail bombing --------------------------------------------------------------------------------------------


async def test_twenty_reset_requests_send_three_mails(admin: Dominus) -> None:
    tenant = await admin.auth.create_tenant("Acme", "acme")
    user = await admin.auth.add_user("target", PASSWORD, email="target@example.com")
    await admin.auth.add_user_tenants(user["id"], [tenant["id"]])
    answers = [
        await admin.portal.request_password_reset("Target@Example.com", end_user_ip=f"198.51.100.{index + 1}")
        for index in range(20)
    ]
    for index, answer in enumerate(answers):
        TALLY.record(MAIL, answer == {"requested": True}, f"reset request {index}: {answer}")
    assert all(answer == {"requested": True} for answer in answers)
    sent = await admin.courier.outbox(to="target@example.com", template_alias="password-reset")
    TALLY.record(MAIL, len(sent["items"]) == 3, f"reset mails sent: {len(sent['items'])}")
    assert len(sent["items"]) == 3
    # Unknown addresses answer the same.
    assert await admin.portal.request_password_reset("nobody@example.com") == {"requested": True}


async def test_twenty_verification_resends_send_three_mails(admin: Dominus) -> None:
    await admin.auth.create_tenant("Acme", "acme")
    await admin.portal.register("pending", "pending@example.com", PASSWORD, "acme")
    answers = [
        await admin.portal.resend_verification("pending@example.com", end_user_ip=f"198.51.100.{index + 1}")
        for index in range(20)
    ]
    for index, answer in enumerate(answers):
        TALLY.record(MAIL, answer == {"sent": True}, f"resend {index}: {answer}")
    sent = await admin.courier.outbox(to="pending@example.com", template_alias="email-verification")
    # The registration's own mail plus three resends.
    TALLY.record(MAIL, len(sent["items"]) == 4, f"verification mails sent: {len(sent['items'])}")
    assert len(sent["items"]) == 4


# --- through the FastAPI app ---------------------------------------------------------------------------------


@pytest.fixture
def dominus_app() -> Any:
    return build_app()


async def test_the_app_passes_the_429_on_with_retry_after(
    dominus: Dominus, dominus_app_client: httpx.AsyncClient
) -> None:
    tenant = await dominus.auth.create_tenant("Acme", "acme")
    user = await dominus.auth.add_user("browser", PASSWORD, email="browser@example.com")
    await dominus.auth.add_user_tenants(user["id"], [tenant["id"]])
    statuses = []
    last: httpx.Response | None = None
    for attempt in range(7):
        last = await dominus_app_client.post(
            "/auth/login", json={"username": "browser", "password": f"guess-{attempt}"}, headers={"Origin": APP_ORIGIN}
        )
        statuses.append(last.status_code)
    assert last is not None
    ok = (
        statuses == [401] * 5 + [429] * 2
        and last.json()["code"] == "rate_limited"
        and 0 < int(last.headers["retry-after"]) <= 60
    )
    TALLY.record(GUESSING, ok, f"through the app: {statuses} {last.headers.get('retry-after')}")
    assert ok
    form = await dominus_app_client.post(
        "/auth/login", data={"username": "browser", "password": PASSWORD}, headers={"Origin": APP_ORIGIN}
    )
    assert form.status_code == 429  # no login_page: the browser gets the JSON answer
