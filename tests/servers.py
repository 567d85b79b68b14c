"""Run ``dominus-local serve`` as a real subprocess on a free loopback port, for network tests.

    with LocalServer() as server:          # or: async with LocalServer() as server
        httpx.get(f"{server.url}/api/health")
        ... Dominus(base_url=server.url, token=server.psk) ...

The server gets its own temporary data directory (unless one is given) and a fresh PSK through
``DOMINUS_LOCAL_PSK`` (pass ``psk=None`` to let it generate and keep one in ``<data_dir>/psk``, which is then
read back). ``stop()`` sends SIGTERM, then SIGKILL after a grace period, and removes the temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

__all__ = ["LocalServer", "free_port"]

_GENERATE = object()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalServer:
    """A ``dominus-local serve`` subprocess: ``url``, ``psk``, ``data_dir``; start/stop or use as a context."""

    def __init__(
        self,
        *,
        data_dir: str | Path | None = None,
        psk: Any = _GENERATE,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        args: Sequence[str] = (),
    ) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="dominus-local-"))
        self.psk: str | None = secrets.token_hex(32) if psk is _GENERATE else psk
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.args = tuple(args)
        """More ``serve`` arguments (e.g. ``--workers 2``)."""
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def start(self) -> LocalServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOMINUS_", "CB_"))}
        env["DOMINUS_LOCAL_BCRYPT_ROUNDS"] = "4"  # test passwords need no real cost; a test may set another
        env.update(self.env)
        if self.psk is not None:
            env["DOMINUS_LOCAL_PSK"] = self.psk
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server, closed by stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dominus_local.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--log-level",
                "warning",
                *self.args,
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self.process.poll()
            if code is not None:
                output = self.output()
                self.stop()
                raise RuntimeError(f"dominus-local serve exited with {code}:\n{output}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                output = self.output()
                self.stop()
                raise RuntimeError(f"dominus-local serve did not answer within {self.startup_timeout} s:\n{output}")
            time.sleep(0.05)
        if self.psk is None:
            self.psk = (self.data_dir / "psk").read_text().strip()
        return self

    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        if self._log is None:
            return ""
        self._log.seek(0)
        raw: bytes = self._log.read()
        return raw.decode("utf-8", "replace")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout``; removes a temporary data directory."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> LocalServer:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        import anyio.to_thread

        await anyio.to_thread.run_sync(self.stop)
