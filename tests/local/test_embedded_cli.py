"""Embedded instances (spec 2.3), the ``dominus-local`` command, and a real uvicorn server."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from dominus_fastapi.core import wire
from dominus_local import embedded
from dominus_local.cli import main
from tests.servers import LocalServer


def decoded(response: httpx.Response) -> Any:
    body = wire.parse_response_text(response.content)
    assert isinstance(body, dict), response.content[:200]
    return body


async def _mint(app: object, psk: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as http:  # type: ignore[arg-type]
        return await http.post(
            "/jwt/mint", content=wire.encode_body({"method": "auth.self"}), headers={"Authorization": f"Bearer {psk}"}
        )


async def test_private_memory_instances() -> None:
    one = await embedded.acquire(None)
    two = await embedded.acquire(None)
    try:
        assert one is not two and one.psk != two.psk
        assert one.data_dir is None
        assert one.psk not in repr(one)
        assert (await _mint(one.app, one.psk)).status_code == 200
        assert (await _mint(one.app, two.psk)).status_code == 401
    finally:
        await embedded.release(one)
        await embedded.release(two)


async def test_configured_psk_is_the_bootstrap_psk() -> None:
    instance = await embedded.acquire(None, psk="5" * 64)
    try:
        assert instance.psk == "5" * 64
        assert (await _mint(instance.app, "5" * 64)).status_code == 200
    finally:
        await embedded.release(instance)


async def test_one_shared_instance_per_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "shared"
    first = await embedded.acquire(str(data_dir))
    second = await embedded.acquire(data_dir)
    assert first is second
    psk_file = data_dir / "psk"
    assert psk_file.read_text().strip() == first.psk
    assert stat.S_IMODE(os.stat(psk_file).st_mode) == 0o600
    with pytest.raises(ValueError, match="another PSK") as info:
        await embedded.acquire(data_dir, psk="7" * 64)
    assert "7" * 64 not in str(info.value)
    await embedded.release(first)
    assert first.state.ready  # one reference left
    assert (await _mint(second.app, second.psk)).status_code == 200
    await embedded.release(second)
    assert not second.state.ready
    again = await embedded.acquire(data_dir)
    try:
        assert again is not first
        assert again.psk == first.psk  # read back from the directory
    finally:
        await embedded.release(again)


def test_info_never_prints_the_psk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "info"
    assert main(["info", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "none yet" in out
    with LocalServer(data_dir=data_dir, psk=None) as server:
        assert server.psk is not None
        assert server.psk in server.output()  # generated at first start, printed once
    assert main(["info", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert server.psk not in out
    assert "kept in" in out and "signing key id (kid): " in out and "none yet" not in out
    with LocalServer(data_dir=data_dir, psk=None) as again:
        assert again.psk == server.psk
        assert server.psk not in again.output()  # not generated this time: not printed


def test_uvicorn_server_end_to_end_and_dropped_connection() -> None:
    with LocalServer() as server:
        assert server.psk is not None
        minted = httpx.post(
            f"{server.url}/jwt/mint",
            content=wire.encode_body({"method": "auth.self"}),
            headers={"Authorization": f"Bearer {server.psk}"},
        )
        token = decoded(minted)["data"]["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        faults = {"error_rate": 1, "drop_after_read": True, "paths": ["/api/warden/secrets"]}
        assert httpx.post(f"{server.url}/api/admin/faults", content=wire.encode_body(faults), headers=auth).is_success
        body = wire.encode_body({"action": "create", "key": "NET", "value": "once"})
        keyed = {**auth, "Idempotency-Key": "net-1"}
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(f"{server.url}/api/warden/secrets", content=body, headers=keyed)
        httpx.post(f"{server.url}/api/admin/faults", content=wire.encode_body({}), headers=auth)
        retry = httpx.post(f"{server.url}/api/warden/secrets", content=body, headers=keyed)
        assert retry.status_code == 200
        assert retry.headers["idempotent-replayed"] == "true"
        got = httpx.post(
            f"{server.url}/api/warden/secrets", content=wire.encode_body({"action": "get", "key": "NET"}), headers=auth
        )
        assert decoded(got)["data"]["secret"]["value"] == "once"
        assert "dominus_local_tokens_minted_total 1" in httpx.get(f"{server.url}/metrics").text
        process = server.process
    assert process is not None and process.returncode is not None


def test_console_script_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dominus_local.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "serve" in result.stdout and "info" in result.stdout and "seed" in result.stdout


async def test_seed_demo_setting_loads_the_demo_data() -> None:
    from sqlalchemy import select

    from dominus_local import identity
    from dominus_local.settings import LocalSettings

    from .conftest import start

    async for server in start(LocalSettings(bcrypt_rounds=4, seed_demo=True)):
        async with server.app.state.db.begin() as conn:
            names = set((await conn.execute(select(identity.users.c.username))).scalars())
        assert {"admin", "demo"} <= names


def test_seed_command(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOMINUS_LOCAL_BCRYPT_ROUNDS", "4")
    data_dir = tmp_path / "seeded"
    assert main(["seed", "--demo", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert f"demo data loaded into {data_dir}" in out
    assert main(["seed", "--data-dir", str(data_dir)]) == 0  # idempotent
    assert main(["seed"]) == 2


def test_serve_keeps_idle_connections_longer_than_clients_do(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The client, not the server, closes an idle keep-alive connection, so no request races a server close."""
    import uvicorn

    from dominus_fastapi.core.settings import POOL_KEEPALIVE_EXPIRY
    from dominus_local.cli import KEEP_ALIVE_SECONDS

    seen: list[uvicorn.Config] = []

    def run(server: uvicorn.Server, sockets: Any = None) -> None:
        seen.append(server.config)
        server.started = True

    monkeypatch.setattr(uvicorn.Server, "run", run)
    monkeypatch.setenv("DOMINUS_LOCAL_PSK", "p" * 40)
    assert main(["serve", "--port", "0"]) == 0
    assert seen[0].timeout_keep_alive == KEEP_ALIVE_SECONDS
    assert POOL_KEEPALIVE_EXPIRY < 5 < KEEP_ALIVE_SECONDS  # 5 s: uvicorn's own default idle timeout
    assert "p" * 40 not in capsys.readouterr().out


def test_serve_takes_its_bounds_on_clients_from_the_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Header deadline, head size and concurrency cap reach uvicorn; a bad value names the setting and stops."""
    import uvicorn

    from dominus_local.serving import GuardedH11Protocol

    seen: list[uvicorn.Config] = []

    def run(server: uvicorn.Server, sockets: Any = None) -> None:
        seen.append(server.config)
        server.started = True

    monkeypatch.setattr(uvicorn.Server, "run", run)
    monkeypatch.setenv("DOMINUS_LOCAL_PSK", "p" * 40)
    monkeypatch.setenv("DOMINUS_LOCAL_HEADER_TIMEOUT", "3")
    monkeypatch.setenv("DOMINUS_LOCAL_LIMIT_CONCURRENCY", "77")
    monkeypatch.setenv("DOMINUS_LOCAL_MAX_HEADER_BYTES", "32768")
    assert main(["serve", "--port", "0"]) == 0
    config = seen[0]
    assert config.limit_concurrency == 77
    assert config.h11_max_incomplete_event_size == 32768
    assert config.http.func is GuardedH11Protocol  # type: ignore[union-attr]
    assert config.http.keywords == {"header_timeout": 3.0}  # type: ignore[union-attr]
    capsys.readouterr()
    monkeypatch.setenv("DOMINUS_LOCAL_HEADER_TIMEOUT", "0")
    assert main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "header_timeout" in err and "greater than 0" in err
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--workers", "2"], {}, "--data-dir"),
        (["--workers", "2", "--data-dir", "{tmp}"], {}, "DOMINUS_LOCAL_DATABASE_URL"),
        (
            ["--workers", "3", "--data-dir", "{tmp}"],
            {"DOMINUS_LOCAL_DATABASE_URL": "sqlite+aiosqlite:///{tmp}/shared.db"},
            "DOMINUS_LOCAL_DATABASE_URL",
        ),
    ],
)
def test_serve_refuses_workers_that_could_not_share_their_state(
    args: list[str],
    env: dict[str, str],
    named: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("DOMINUS_LOCAL_DATA_DIR", "DOMINUS_LOCAL_DATABASE_URL", "DOMINUS_LOCAL_CACHE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(tmp=tmp_path))
    data_dir = tmp_path / "data"
    assert main(["serve", *(a.format(tmp=data_dir) for a in args)]) == 2
    err = capsys.readouterr().err
    assert named in err and "--workers" in err
    assert not data_dir.exists(), "a refused start creates nothing"


@pytest.mark.parametrize("workers", ["0", "-1", "two"])
def test_serve_workers_must_be_a_positive_number(workers: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--workers", workers])
    assert exited.value.code == 2
    assert "--workers" in capsys.readouterr().err


async def test_served_app_moves_its_start_up_objects_out_of_the_collectors_reach() -> None:
    """A full collection under load then scans only what requests made, not every module and table of the
    start-up (which paused every request in flight for tens of milliseconds)."""
    import gc

    from asgi_lifespan import LifespanManager

    from dominus_local.app import create_app
    from dominus_local.cli import _DropConnections
    from dominus_local.settings import LocalSettings

    gc.unfreeze()
    served = _DropConnections(create_app(LocalSettings()))
    try:
        async with LifespanManager(served):  # type: ignore[arg-type]
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
