"""Subprocess servers on free loopback ports: started, waited for, stopped by their own process id."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``python -m <module> ...`` on a free port; ``url``, ``pid``; ready when ``ready_path`` answers."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        port: int,
        env: Mapping[str, str] | None = None,
        ready_path: str = "/api/health",
        startup_timeout: float = 60.0,
    ) -> None:
        self.args = list(args)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = dict(env or {})
        self.ready_path = ready_path
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOMINUS_", "CB_"))}
        env.update(self.env)
        self.process = subprocess.Popen(
            [sys.executable, *self.args], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.args} exited with {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + self.ready_path, timeout=2.0).status_code < 500:
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.args} did not answer within {self.startup_timeout} s")
            time.sleep(0.05)

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(OSError):
            self._log.close()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@contextlib.contextmanager
def cpus_apart(pid: int) -> Iterator[str]:
    """While the block runs, keep every thread of process ``pid`` on the last CPU and this process on the
    others, so that a server and its load generator do not take turns on one core (which the scheduler does
    at random on a 2-core machine, moving a figure by several percent). Yields a description for the notes;
    does nothing with fewer than 2 CPUs or where affinity cannot be set."""
    setter = getattr(os, "sched_setaffinity", None)
    mine = set(os.sched_getaffinity(0)) if setter is not None else set()
    if setter is None or len(mine) < 2:
        yield "not pinned"
        return
    server_cpu = max(mine)
    for task in Path(f"/proc/{pid}/task").iterdir():  # threads keep the affinity they were started with
        with contextlib.suppress(OSError):
            setter(int(task.name), {server_cpu})
    setter(0, mine - {server_cpu})
    try:
        yield f"server on CPU {server_cpu}, load generator on the other {len(mine) - 1}"
    finally:
        setter(0, mine)


def standin(mint_delay: float = 0.0) -> Server:
    port = free_port()
    return Server(["-m", "benchmarks.standin", str(port), str(mint_delay)], port=port)


class LocalServe(Server):
    """``dominus-local serve`` with its own temporary data directory (or, ``in_memory=True``, none) and PSK."""

    def __init__(self, psk: str, *, env: Mapping[str, str] | None = None, in_memory: bool = False) -> None:
        self.data_dir: Path | None = None if in_memory else Path(tempfile.mkdtemp(prefix="dominus-bench-"))
        port = free_port()
        where = [] if self.data_dir is None else ["--data-dir", str(self.data_dir)]
        super().__init__(
            [
                "-m",
                "dominus_local.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *where,
                "--log-level",
                "warning",
            ],
            port=port,
            env={"DOMINUS_LOCAL_PSK": psk, **(env or {})},
        )
        self.psk = psk

    def stop(self) -> None:
        super().stop()
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
