"""In-process instances for the SDK's ``embedded:`` URLs (spec 2.3).

``await acquire(None)`` starts a private in-memory instance. ``await acquire("/data/dir")`` starts the
instance of that directory, or shares the one already running for it in this process and event loop; each
:func:`acquire` is paired with one :func:`release`, and the last release stops the instance. The registry is
keyed by (directory, running event loop) because an instance's database connections belong to the loop that
opened them (pytest gives each test its own loop).
"""

from __future__ import annotations

import asyncio
import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from dominus_local.app import DominusLocalApp, create_app
from dominus_local.security import credentials
from dominus_local.settings import LocalSettings
from dominus_local.state import LocalState

__all__ = ["EmbeddedInstance", "acquire", "release"]

STARTUP_TIMEOUT_SECONDS = 60.0


@dataclass(eq=False)
class EmbeddedInstance:
    """A running in-process instance: ``app`` has its lifespan started; ``psk`` is its bootstrap PSK."""

    app: Any
    """The ASGI app to hand to ``httpx.ASGITransport``."""
    psk: str = field(repr=False)
    data_dir: Path | None
    state: LocalState = field(repr=False)
    _manager: LifespanManager = field(repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(repr=False, default=None)
    _refs: int = field(repr=False, default=1)


@dataclass
class _LoopRegistry:
    instances: dict[str, EmbeddedInstance] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


# Weak keys: a closed, collected event loop takes its entries with it.
_registries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopRegistry] = weakref.WeakKeyDictionary()


def _registry(loop: asyncio.AbstractEventLoop) -> _LoopRegistry:
    found = _registries.get(loop)
    if found is None:
        found = _registries[loop] = _LoopRegistry()
    return found


async def _start(data_dir: Path | None, psk: str | None) -> EmbeddedInstance:
    # Without a PSK from the client, the environment may still name one (spec 2.3: DOMINUS_TOKEN).
    settings = LocalSettings(data_dir=data_dir) if psk is None else LocalSettings(data_dir=data_dir, psk=SecretStr(psk))
    app: DominusLocalApp = create_app(settings)
    manager = LifespanManager(app, startup_timeout=STARTUP_TIMEOUT_SECONDS, shutdown_timeout=STARTUP_TIMEOUT_SECONDS)
    await manager.__aenter__()
    return EmbeddedInstance(
        app=manager.app,
        psk=credentials(app.state).psk,
        data_dir=settings.data_dir,
        state=app.state,
        _manager=manager,
    )


def _normalise(data_dir: str | Path) -> Path:
    # No symlink resolution: it would touch the disk, and the path only names a registry entry.
    return Path(os.path.abspath(os.path.expanduser(data_dir)))


async def acquire(data_dir: str | Path | None, psk: str | None = None) -> EmbeddedInstance:
    """Start (or share) the instance for ``data_dir``; ``None`` gives a private in-memory instance.

    ``psk`` is the PSK configured on the client, if any; without one the instance uses its own (random in
    memory, the ``psk`` file of the directory otherwise). Asking for a running directory with a different PSK
    raises ``ValueError``, because one directory has one bootstrap PSK.
    """
    if data_dir is None:
        return await _start(None, psk)
    path = _normalise(data_dir)
    loop = asyncio.get_running_loop()
    registry = _registry(loop)
    async with registry.lock:
        instance = registry.instances.get(str(path))
        if instance is not None:
            if psk is not None and psk != instance.psk:
                raise ValueError(
                    f"The embedded instance for {path} is already running with another PSK; "
                    "clients that share a data directory must use the same PSK"
                )
            instance._refs += 1
            return instance
        instance = await _start(path, psk)
        instance._loop = loop
        registry.instances[str(path)] = instance
        return instance


async def release(instance: EmbeddedInstance) -> None:
    """Drop one reference; the last one stops the instance (ASGI shutdown, database closed)."""
    if instance._loop is None:
        await instance._manager.__aexit__(None, None, None)
        return
    registry = _registry(instance._loop)
    async with registry.lock:
        instance._refs -= 1
        if instance._refs > 0:
            return
        for name, running in list(registry.instances.items()):
            if running is instance:
                del registry.instances[name]
        await instance._manager.__aexit__(None, None, None)
