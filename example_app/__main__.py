"""``python -m example_app [--host H] [--port P] [--allowed-hosts NAMES] [--data-dir DIR] [--reset]``: run the
example app.

With ``DOMINUS_BASE_URL`` unset the app chooses the embedded backend, ``embedded:///<data dir>``, with the
demo data (``DOMINUS_LOCAL_SEED_DEMO``), and says so; the SDK itself never falls back to it. The data dir
(default ``example_app/.data``) keeps users, tables, files and logs between runs; ``--reset`` starts clean.
With ``DOMINUS_BASE_URL`` (and ``DOMINUS_TOKEN``) set, the same app runs against that backend instead.

The links of the mails the embedded backend sends (password reset, invitation, e-mail verification) point
at this app's pages, at ``http://<host>:<port>``; set ``DOMINUS_LOCAL_PASSWORD_RESET_URL`` and friends to
override them (behind a proxy, for instance).

The app listens on loopback by default. Beyond it (``--host 0.0.0.0``, a LAN address) it needs the host names
clients use (``--allowed-hosts`` or ``EXAMPLE_APP_ALLOWED_HOSTS``; the app answers no other ``Host``), and the
demo passwords replaced (``DOMINUS_LOCAL_DEMO_ADMIN_PASSWORD`` and ``DOMINUS_LOCAL_DEMO_USER_PASSWORD``); the dev
outbox is then off. The data dir is made 0700 and what the app writes in it 0600 (the process runs with umask
077), as it holds the users' password hashes, sessions and the outbox's live reset links.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final, TextIO

from example_app.security import (
    ALLOWED_HOSTS_ENV,
    UnsafeStartError,
    allowed_hosts_for,
    default_password_variables,
    is_loopback_host,
)

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEMO_ACCOUNTS",
    "main",
    "parse_args",
    "prepare_environment",
    "reset_data_dir",
    "secure_data_dir",
]

DEFAULT_DATA_DIR: Final = Path(__file__).resolve().parent / ".data"
MARKER: Final = ".example-app"
"""A file the app writes into its data dir; ``--reset`` only ever clears a directory that has it."""

DEMO_ACCOUNTS: Final = (
    ("admin", "admin@example.com", "dominus-admin", "DOMINUS_LOCAL_DEMO_ADMIN_PASSWORD", "sees every page"),
    ("demo", "user@example.com", "dominus-user", "DOMINUS_LOCAL_DEMO_USER_PASSWORD", "no admin page"),
)
"""The demo data's accounts: username, e-mail, development password, the variable that replaces it, role."""


class UsageError(Exception):
    """A command-line problem, reported in one line with exit status 2."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m example_app", description="Run the Dominus example app.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument(
        "--allowed-hosts", default=None, metavar="NAMES",
        help=f"comma-separated Host names the app answers (default: ${ALLOWED_HOSTS_ENV}, else the loopback "
        "names on loopback; required with --host 0.0.0.0)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None,
        help=f"where the embedded backend keeps its data (default {DEFAULT_DATA_DIR})",
    )
    parser.add_argument("--reset", action="store_true", help="delete the embedded backend's data first")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error("--port: must be from 1 to 65535")
    return args


def public_url(host: str, port: int) -> str:
    """The address to open in a browser: a wildcard interface is reached through ``localhost``."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - naming the wildcard, not binding to it
        host = "localhost"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def reset_data_dir(data_dir: Path) -> None:
    """Delete ``data_dir`` if the app made it (it holds :data:`MARKER`); refuse any other directory."""
    if not data_dir.exists():
        return
    if not data_dir.is_dir():
        raise UsageError(f"--reset: {data_dir} is not a directory")
    if not (data_dir / MARKER).is_file() and any(data_dir.iterdir()):
        raise UsageError(f"--reset: {data_dir} was not made by the example app (no {MARKER} file); not deleting it")
    shutil.rmtree(data_dir)


def secure_data_dir(data_dir: Path) -> None:
    """Make ``data_dir`` (created when missing) 0700 and everything already in it 0700 (dirs) or 0600 (files).

    New files get the same modes from the process umask (077, set by :func:`main`); this also tightens a data
    dir made by an older version or under a laxer umask.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    for path in data_dir.rglob("*"):
        if path.is_symlink():
            continue
        path.chmod(0o700 if path.is_dir() else 0o600)


def check_exposure(args: argparse.Namespace, environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """The ``Host`` names the app will answer; raises ``UsageError`` for an unsafe start beyond loopback.

    Beyond loopback with the embedded demo data, both demo passwords must be replaced first: the defaults are
    printed in the documentation (``docs/getting-started.md``) and on the sign-in page.
    """
    try:
        hosts = allowed_hosts_for(args.host, args.allowed_hosts or environ.get(ALLOWED_HOSTS_ENV) or None)
    except (UnsafeStartError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    seeds_demo = environ.get("DOMINUS_LOCAL_SEED_DEMO", "true").strip().lower() in ("1", "true", "yes", "on")
    if not is_loopback_host(args.host) and not environ.get("DOMINUS_BASE_URL") and seeds_demo:
        unset = default_password_variables(environ)
        if unset:
            raise UsageError(
                f"--host {args.host} listens beyond loopback, and the demo accounts would keep their published "
                f"development passwords: set {' and '.join(unset)} (8 to 72 bytes) first"
            )
    return hosts


def prepare_environment(args: argparse.Namespace, environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """Check the start is safe, choose the backend and the mail links in ``environ``; returns the lines to print."""
    hosts = check_exposure(args, environ)
    url = public_url(args.host, args.port)
    lines = []
    if environ.get("DOMINUS_BASE_URL"):
        if args.data_dir is not None or args.reset:
            raise UsageError("--data-dir and --reset apply to the embedded backend; DOMINUS_BASE_URL is set")
        lines.append(f"Backend: {environ['DOMINUS_BASE_URL']} (from DOMINUS_BASE_URL)")
    else:
        data_dir = (args.data_dir or DEFAULT_DATA_DIR).expanduser().resolve()
        if args.reset:
            reset_data_dir(data_dir)
        secure_data_dir(data_dir)
        (data_dir / MARKER).touch(mode=0o600)
        environ["DOMINUS_BASE_URL"] = f"embedded://{data_dir.as_posix()}"
        environ.setdefault("DOMINUS_LOCAL_SEED_DEMO", "true")
        lines.append(
            f"DOMINUS_BASE_URL is not set: using the embedded backend with the demo data in {data_dir}"
            + (" (reset)" if args.reset else "")
        )
    environ.setdefault("DOMINUS_LOCAL_PASSWORD_RESET_URL", f"{url}/reset-password")
    environ.setdefault("DOMINUS_LOCAL_INVITATION_URL", f"{url}/accept-invitation")
    environ.setdefault("DOMINUS_LOCAL_EMAIL_VERIFICATION_URL", f"{url}/verify-email")
    lines.append(f"Open {url}/ in a browser (API docs: {url}/docs)")
    if not is_loopback_host(args.host):
        lines.append(f"Listening beyond loopback: answering Host {', '.join(hosts)}; the dev outbox is off")
    lines.append("Demo accounts (sign in with the username or the e-mail address):")
    for username, email, password, variable, role in DEMO_ACCOUNTS:
        shown = f"password from {variable}" if environ.get(variable) else password
        lines.append(f"  {username:<6} {email:<18} {shown:<16} {role}")
    return lines


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = parse_args(argv)
    os.umask(0o077)  # the data dir's databases, keys and blobs: readable by this user only
    try:
        lines = prepare_environment(args, os.environ)
    except UsageError as exc:
        print(f"python -m example_app: {exc}", file=sys.stderr)
        return 2
    for line in lines:
        print(line, file=out, flush=True)

    import uvicorn

    from example_app.app import create_app

    app = create_app(host=args.host, allowed_hosts=args.allowed_hosts)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
