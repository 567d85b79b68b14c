"""Where the example app may be reached from, and what it refuses to do on a shared network.

- **Host names.** :func:`allowed_hosts_for` decides which ``Host`` headers the app answers (Starlette's
  ``TrustedHostMiddleware``): for a loopback bind only the loopback names, so that a web page cannot reach the
  app through a DNS name rebound to 127.0.0.1 (DNS rebinding); for any other bind the names given with
  ``--allowed-hosts`` or :data:`ALLOWED_HOSTS_ENV`. A wildcard bind (``0.0.0.0``, ``::``) has no default.
- **Demo passwords.** Off loopback the app refuses to start while a demo account still signs in with its
  documented development password (:func:`refuse_default_demo_passwords`, run by the app's lifespan).
- **Framing.** :class:`FrameDenyMiddleware` forbids every page from being shown in a frame (clickjacking).
- **Caching.** :class:`NoStoreMiddleware` keeps pages out of the browser's cache, so Back after Sign out
  shows no signed-in page (the browser asks again, and the app sends it to the sign-in form).

The dev outbox's own rules (administrators, loopback bind, loopback peer) are in :mod:`example_app.app`.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from typing import Final

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dominus_fastapi import AuthenticationError, Dominus, DominusError

__all__ = [
    "ALLOWED_HOSTS_ENV",
    "DEMO_LOGINS",
    "FRAME_HEADERS",
    "LOOPBACK_NAMES",
    "FrameDenyMiddleware",
    "NoStoreMiddleware",
    "UnsafeStartError",
    "allowed_hosts_for",
    "default_password_variables",
    "is_loopback_address",
    "is_loopback_host",
    "parse_allowed_hosts",
    "refuse_default_demo_passwords",
]

ALLOWED_HOSTS_ENV: Final = "EXAMPLE_APP_ALLOWED_HOSTS"
"""Comma-separated host names the app answers (``--allowed-hosts`` wins); ``*`` turns the check off."""
LOOPBACK_NAMES: Final = ("localhost", "127.0.0.1", "[::1]")
"""The ``Host`` names a loopback-bound app answers by default."""
WILDCARD_HOSTS: Final = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - naming the wildcard, not binding to it
DEMO_LOGINS: Final = (
    ("admin", "dominus-admin", "DOMINUS_LOCAL_DEMO_ADMIN_PASSWORD"),
    ("demo", "dominus-user", "DOMINUS_LOCAL_DEMO_USER_PASSWORD"),
)
"""The demo accounts: username, documented development password, the variable that replaces it."""
FRAME_HEADERS: Final = (("x-frame-options", "DENY"), ("content-security-policy", "frame-ancestors 'none'"))


class UnsafeStartError(RuntimeError):
    """The app was asked to start in a way that would expose it (a message that says what to change)."""


def is_loopback_host(host: str) -> bool:
    """Whether listening on ``host`` keeps the app on this machine: ``localhost`` or a loopback address.

    Other names count as not loopback: what they resolve to is not the app's to know.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback_address(address: str | None) -> bool:
    """Whether a connection's peer address is a loopback address (``None``, unknown, is not)."""
    if not address:
        return False
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _host_name(host: str) -> str:
    """``host`` as it appears in a ``Host`` header (IPv6 addresses in brackets), in lower case."""
    host = host.strip().lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host


def parse_allowed_hosts(value: str | Sequence[str], *, origin: str = ALLOWED_HOSTS_ENV) -> list[str]:
    """Host names from a comma-separated string or a list: ``name``, ``*.domain`` or ``*`` (any host).

    Raises ``ValueError`` naming ``origin`` for an empty list or a misplaced ``*``.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    hosts = [_host_name(item) for item in items if item.strip()]
    if not hosts:
        raise ValueError(f"{origin}: name at least one host (comma-separated), or * for any")
    for host in hosts:
        if host != "*" and ("*" in host[1:] or (host.startswith("*") and not host.startswith("*."))):
            raise ValueError(f"{origin}: {host!r}: a wildcard must be the whole name (*) or lead it (*.example.com)")
    return hosts


def allowed_hosts_for(host: str, configured: str | Sequence[str] | None = None) -> list[str]:
    """The ``Host`` names the app answers when it listens on ``host``.

    ``configured`` (``--allowed-hosts``, or :data:`ALLOWED_HOSTS_ENV` when None) wins. Otherwise a loopback
    bind answers :data:`LOOPBACK_NAMES` (and the bind address), another address or name answers itself, and
    a wildcard bind raises ``UnsafeStartError``: its reachable names are unknown.
    """
    if configured is None:
        configured = os.environ.get(ALLOWED_HOSTS_ENV) or None
    if configured is not None:
        return parse_allowed_hosts(configured)
    if host in WILDCARD_HOSTS:
        raise UnsafeStartError(
            f"listening on {host or 'every interface'}: name the host names clients use with --allowed-hosts "
            f"(or {ALLOWED_HOSTS_ENV}), e.g. --allowed-hosts 192.168.1.20,myhost.lan"
        )
    if is_loopback_host(host):
        return list(dict.fromkeys([*LOOPBACK_NAMES, _host_name(host)]))
    return [_host_name(host)]


def default_password_variables(environ: os._Environ[str] | dict[str, str]) -> list[str]:
    """The demo-password variables that are unset (or set to the development default) in ``environ``."""
    return [variable for _, default, variable in DEMO_LOGINS if environ.get(variable, "") in ("", default)]


async def refuse_default_demo_passwords(client: Dominus) -> None:
    """Raise ``UnsafeStartError`` when a demo account signs in with its development password.

    Run at startup off loopback: it catches data made earlier with the defaults, which setting the variables
    later does not change (the demo seed never overwrites a password). A probe that signs in is signed out
    at once; a backend that cannot answer counts as a failed check (the app does not start unchecked).
    """
    exposed: list[str] = []
    for username, default, variable in DEMO_LOGINS:
        try:
            login = await client.portal.login(username, default)
        except AuthenticationError:
            continue  # wrong password, unknown or inactive account: not exposed
        except DominusError as exc:
            raise UnsafeStartError(
                f"could not check the demo passwords ({type(exc).__name__}, code {exc.code}); the app does not "
                "start off loopback unchecked"
            ) from None
        exposed.append(f"{username} ({variable})")
        await client.portal.logout(user_token=str(login["access_token"]))
    if exposed:
        raise UnsafeStartError(
            "refusing to listen beyond loopback: the demo account(s) "
            + ", ".join(exposed)
            + " still sign in with the development password. Set DOMINUS_LOCAL_DEMO_ADMIN_PASSWORD and "
            "DOMINUS_LOCAL_DEMO_USER_PASSWORD before the data dir is created (--reset starts a new one), or "
            "change the passwords from the account page"
        )


class FrameDenyMiddleware:
    """Adds ``X-Frame-Options: DENY`` and ``Content-Security-Policy: frame-ancestors 'none'`` to every answer.

    Pure ASGI (streaming answers pass through). An answer that sets its own header keeps it. The policy only
    names ``frame-ancestors``, so scripts, styles and forms of the pages are not restricted by it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in FRAME_HEADERS:
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class NoStoreMiddleware:
    """Adds ``Cache-Control: no-store`` to every answer outside ``cacheable`` (path prefixes).

    Signed-in pages show personal data; without it the browser's Back button shows them again from its cache
    after Sign out. Anonymous pages get it too: the app cannot tell from the path alone whether a visitor is
    signed in, and its forms are cheap to send again. An answer that sets ``Cache-Control`` keeps its own.
    """

    def __init__(self, app: ASGIApp, cacheable: Sequence[str] = ()) -> None:
        self.app = app
        self.cacheable = tuple(cacheable)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(self.cacheable):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "cache-control" not in headers:
                    headers.append("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, send_no_store)
