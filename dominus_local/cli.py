"""The ``dominus-local`` command: ``serve``, ``info`` and ``seed``.

``serve`` runs the server on uvicorn. With no PSK configured (``DOMINUS_LOCAL_PSK`` or ``DOMINUS_TOKEN``) it
uses the data directory's ``psk`` file (spec 2.3), creating it at first start, and prints a PSK only when it
was just generated. ``info`` describes a data directory without ever printing the PSK.

``serve --workers N`` runs N processes on one port (uvicorn's supervisor restarts one that dies). Every worker
must see the same state, so it needs PostgreSQL (:func:`workers_refusal` says what else), and it creates the
data directory, the signing key and the PSK before the workers start; each worker then builds the same app
from the same environment (:func:`worker_app`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from starlette.types import Message, Receive, Scope, Send

from dominus_local.settings import LocalSettings

__all__ = ["main"]

KEEP_ALIVE_SECONDS = 75
"""How long ``serve`` keeps an idle HTTP connection open (nginx's default; uvicorn's own is 5 s)."""


WORKER_APP = "dominus_local.cli:worker_app"
"""The app factory each ``--workers`` process imports (uvicorn needs an import string to start workers)."""


def _settings(data_dir: str | None) -> LocalSettings:
    return LocalSettings(data_dir=Path(data_dir)) if data_dir else LocalSettings()


def workers_refusal(settings: LocalSettings, workers: int) -> str | None:
    """Why ``serve --workers N`` cannot run on ``settings``, or ``None``.

    Workers share what lives in the database, the cache and the storage, never each other's memory. So they
    need a data directory (every worker loads the same signing key, PSK and secret keys from it; without one,
    each would make its own) and PostgreSQL (on SQLite, each process has its own write lock and its own memo
    of token checks that no other process can update; an in-memory database is not shared at all). The cache
    defaults to a table of that database and the files to ``<data_dir>/blobs``, both shared on one machine.
    """
    if workers <= 1:
        return None
    if settings.data_dir is None:
        return (
            f"--workers {workers} needs --data-dir (or DOMINUS_LOCAL_DATA_DIR): every worker must load the same "
            "signing key, PSK and secret keys from it"
        )
    if not settings.resolved_database_url().startswith("postgresql"):
        return (
            f"--workers {workers} needs a database the workers share: set DOMINUS_LOCAL_DATABASE_URL to a "
            "postgresql:// URL (SQLite serves one process per database)"
        )
    return None


def worker_app() -> Any:
    """The app of one ``--workers`` process, built from the environment the parent prepared."""
    from dominus_local.app import create_app

    return _DropConnections(create_app(LocalSettings()))


class _DropConnections:
    """The app as ``serve`` runs it.

    - Under uvicorn, an injected drop returns quietly: the response was started with a ``Content-Length``
      and no body follows, so uvicorn closes the connection and the client sees it break.
    - Once started, the objects of the whole start-up (modules, the app, SQLAlchemy's metadata and caches)
      are moved out of the garbage collector's reach (``gc.freeze()``): otherwise each full collection scans
      them all again, which pauses every request in flight for tens of milliseconds, a few times a minute
      under load. The process is the server's own, so this changes nothing for anybody else's objects.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from dominus_local.faults import ConnectionDropped

        if scope["type"] == "lifespan":

            async def send_started(message: Message) -> None:
                if message["type"] == "lifespan.startup.complete":
                    gc.collect()
                    gc.freeze()
                await send(message)

            await self.app(scope, receive, send_started)
            return
        try:
            await self.app(scope, receive, send)
        except ConnectionDropped:
            return


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from dominus_local.app import create_app
    from dominus_local.security import generate_psk, load_or_create_psk, load_signing_key
    from dominus_local.serving import uvicorn_options

    settings = _settings(args.data_dir)
    refusal = workers_refusal(settings, args.workers)
    if refusal is not None:
        print(f"dominus-local serve: {refusal}", file=sys.stderr)
        return 2
    announce: str | None = None
    if settings.configured_psk() is None:
        if settings.data_dir is None:
            psk = generate_psk()
            settings = settings.model_copy(update={"psk": SecretStr(psk)})
            announce = f"PSK (in-memory server, shown once): {psk}"
        else:
            settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            psk, created = load_or_create_psk(settings.data_dir)
            if created:
                announce = f"PSK (generated, shown once; kept in {settings.data_dir / 'psk'}): {psk}"
    app: Any = _DropConnections(create_app(settings)) if args.workers == 1 else WORKER_APP
    worker_options: dict[str, Any] = {}
    if args.workers > 1:
        assert settings.data_dir is not None  # workers_refusal
        # Made once, before the workers start, so that they all load the same key (spec 2.3 files).
        load_signing_key(settings.data_dir)
        os.environ["DOMINUS_LOCAL_DATA_DIR"] = str(settings.data_dir)
        worker_options = {"workers": args.workers, "factory": True}
    url = f"http://{args.host}:{args.port}"
    print(f"dominus-local serving on {url}", flush=True)
    print(f"data directory: {settings.data_dir or '(in memory)'}", flush=True)
    if announce:
        print(announce, flush=True)
    # Idle connections are kept longer than clients keep them (the SDK: 4 s; most clients: under a minute), so
    # that the client, not the server, closes an idle one: a server closing it could race a request being sent.
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        lifespan="on",
        # timeout_keep_alive (KEEP_ALIVE_SECONDS), and the bounds on slow, oversized and too many clients.
        **uvicorn_options(settings),
        **worker_options,
    )
    if args.workers > 1:
        print(f"workers: {args.workers}", flush=True)
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return 0
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


def _info(args: argparse.Namespace) -> int:
    from dominus_local.security import PSK_FILE, SIGNING_KEY_FILE, load_signing_key

    settings = _settings(args.data_dir)
    data_dir = settings.data_dir
    print(f"data directory: {data_dir or '(in memory)'}")
    for store, backend in settings.backends().items():
        print(f"{store}: {backend}")
    if data_dir is not None and (data_dir / SIGNING_KEY_FILE).exists():
        print(f"signing key id (kid): {load_signing_key(data_dir).kid}")
    else:
        print("signing key id (kid): none yet (created at first start)")
    if settings.configured_psk() is not None:
        print("PSK: configured by the environment")
    elif data_dir is not None and (data_dir / PSK_FILE).exists():
        print(f"PSK: kept in {data_dir / PSK_FILE}")
    else:
        print("PSK: none yet (generated at first start)")
    print(f"project: {settings.project_slug}  environment: {settings.environment}")
    return 0


async def _run_seed(settings: LocalSettings) -> Any:
    from asgi_lifespan import LifespanManager

    from dominus_local.app import create_app
    from dominus_local.seed import seed_demo

    app = create_app(settings)
    async with LifespanManager(app):
        return await seed_demo(app.state)


def _seed(args: argparse.Namespace) -> int:
    settings = _settings(args.data_dir)
    if settings.data_dir is None and not settings.database_url:
        print("dominus-local seed: give --data-dir (an in-memory server forgets its data at once)", file=sys.stderr)
        return 2
    result = asyncio.run(_run_seed(settings))
    print(f"demo data loaded into {settings.data_dir or settings.database_url}")
    for name, ident in (result or {}).items():
        print(f"  {name}: {ident}")
    return 0


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dominus-local", description="Run and inspect a dominus_local server.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server on uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--data-dir", help="directory for the database, keys and PSK (default: in memory)")
    serve.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="processes serving the port (more than 1 needs --data-dir and PostgreSQL)",
    )
    serve.set_defaults(run=_serve)

    info = commands.add_parser("info", help="describe a data directory (never prints the PSK)")
    info.add_argument("--data-dir")
    info.set_defaults(run=_info)

    seed = commands.add_parser("seed", help="load the demo data into a data directory")
    seed.add_argument("--data-dir")
    seed.add_argument("--demo", action="store_true", help="the demo data set (the only one there is; the default)")
    seed.set_defaults(run=_seed)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dominus-local`` console script: run the command in ``argv`` and return its exit status.

    Args:
        argv: The arguments (``serve ...``, ``info ...``, ``seed ...``); default: ``sys.argv[1:]``.

    Returns:
        The command's exit status (0 on success); 2 for invalid settings (the message names each setting and the reason,
        never its value).
    """
    from pydantic import ValidationError

    args = _parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except ValidationError as exc:
        # Names each setting and the reason; the values (URLs may hold passwords) are never shown.
        print(f"dominus-local: invalid settings: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
