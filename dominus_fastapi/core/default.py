"""The module-level clients: ``dominus_fastapi.dominus`` and the ``dominus`` compatibility package's ``dominus``.

Both are a :class:`DefaultDominus`: a real :class:`~dominus_fastapi.core.client.Dominus` whose settings are read
at its first use, not when it is created or imported, so that a script may set ``os.environ["DOMINUS_TOKEN"]``
after ``from dominus import dominus``. After ``aclose()`` the next call opens it again, from the environment
of that moment (a plain ``Dominus`` stays closed). Like every client, it follows the running event loop, so a
script may call ``asyncio.run`` more than once.
"""

from __future__ import annotations

from dominus_fastapi.core.client import Dominus
from dominus_fastapi.core.settings import DominusSettings
from dominus_fastapi.core.transport import Transport

__all__ = ["DefaultDominus"]


class DefaultDominus(Dominus):
    """A :class:`Dominus` configured from the environment at first use, and reopened on use after ``aclose()``.

    ``remember_login=True`` gives the stateful object of the ``dominus`` package (see
    :mod:`dominus_fastapi.core.namespaces.portal`); ``dominus_fastapi.dominus`` is stateless.
    """

    def __init__(self, *, remember_login: bool = False) -> None:
        # No Dominus.__init__: nothing may be read from the environment yet.
        self._bearer = None
        self.remembers_login = remember_login
        self._portal_session = None
        self._current: Transport | None = None
        self._settings: DominusSettings | None = None

    def _open(self) -> Transport:
        transport = self._current
        if transport is None or transport.closed:
            settings = DominusSettings()
            transport = Transport(settings)
            self._settings, self._current = settings, transport
            self._portal_session = None
        return transport

    @property
    def _transport(self) -> Transport:
        return self._open()

    @_transport.setter
    def _transport(self, value: Transport) -> None:
        self._current = value

    @property
    def settings(self) -> DominusSettings:
        """The settings in use, read from the environment when the client was (re)opened."""
        self._open()
        assert self._settings is not None
        return self._settings

    @settings.setter
    def settings(self, value: DominusSettings) -> None:
        self._settings = value

    @property
    def closed(self) -> bool:
        """``True`` after ``aclose()`` until the next use reopens it; ``False`` before the first use."""
        return self._current is not None and self._current.closed

    async def aclose(self) -> None:
        """Close the pool (and the embedded instance); the next call opens a new one. Safe to call twice."""
        self._portal_session = None
        if self._current is not None:
            await self._current.aclose()

    def __repr__(self) -> str:
        current, settings = self._current, self._settings
        if current is None or settings is None:
            return "Dominus(<configured from the environment at first use>)"
        psk = "set" if settings.token is not None else "unset"
        state = ", closed: opens again on use" if current.closed else ""
        hosts = current.hosts
        return f"Dominus(base_url={hosts.base_url!r}, gateway_url={hosts.gateway_url!r}, psk={psk}{state})"
