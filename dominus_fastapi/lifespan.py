"""``dominus_lifespan()``: one ``Dominus`` client per application, opened at startup and closed at shutdown.

Use it directly::

    app = FastAPI(lifespan=dominus_lifespan())

inside the application's own lifespan::

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with dominus_lifespan()(app) as state:
            yield {**state, "other": ...}

or composed with it: ``FastAPI(lifespan=combine_lifespans(dominus_lifespan(), lifespan))``.

The client (with its embedded orchestrator when ``DOMINUS_BASE_URL`` is ``embedded:...``) is warmed up —
health check and service token — so the first request does not pay for it, published in the lifespan state
under ``"dominus"`` and on ``app.state.dominus``, and closed on shutdown. A failed warm-up is logged, not
raised: the client retries on first use (cold-start rules of spec 6.5), and an app whose backend is briefly
down still starts. Pass ``warm_up=False`` to skip it, or ``strict=True`` to make startup fail instead.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from dominus_fastapi.core.client import Dominus
from dominus_fastapi.core.errors import DominusError
from dominus_fastapi.core.settings import DominusSettings

__all__ = ["DominusLifespan", "combine_lifespans", "dominus_lifespan"]

logger = logging.getLogger("dominus_fastapi")

Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


class DominusLifespan:
    """The lifespan returned by :func:`dominus_lifespan`; call it with the app to get the context manager."""

    def __init__(
        self,
        settings: DominusSettings | None,
        client_kwargs: Mapping[str, Any],
        *,
        warm_up: bool,
        strict: bool,
        state_key: str,
    ) -> None:
        self.settings = settings
        self.client_kwargs = dict(client_kwargs)
        self.warm_up = warm_up
        self.strict = strict
        self.state_key = state_key

    def __call__(self, app: Any) -> AbstractAsyncContextManager[dict[str, Any]]:
        return self._run(app)

    @asynccontextmanager
    async def _run(self, app: Any) -> AsyncIterator[dict[str, Any]]:
        client = Dominus(settings=self.settings, **self.client_kwargs)
        try:
            if self.warm_up:
                await self._warm(client)
            app_state = getattr(app, "state", None)
            if app_state is not None:
                setattr(app_state, self.state_key, client)
            try:
                yield {self.state_key: client}
            finally:
                if app_state is not None and getattr(app_state, self.state_key, None) is client:
                    delattr(app_state, self.state_key)
        finally:
            await client.aclose()

    async def _warm(self, client: Dominus) -> None:
        try:
            # ``ping`` needs the service token, so one call checks the server and mints the token.
            await client.health.ping()
        except DominusError as exc:
            message = warm_up_message(client, exc)
            if self.strict:
                logger.error("%s", message)
                raise
            logger.warning("%s; the client retries on first use", message)


def warm_up_message(client: Dominus, exc: DominusError) -> str:
    """``Dominus warm-up failed: <error>`` naming the host (and, when it is the default, why it is that host).

    The error's own text never holds a secret (the SDK keeps PSKs and tokens out of messages); a missing
    ``code`` is left out rather than shown as ``None``.
    """
    text = str(exc)
    where = client._transport.hosts.describe()
    if where not in text:
        text = f"{text} ({where})"
    return f"Dominus warm-up failed: {type(exc).__name__}: {text}"


def dominus_lifespan(
    settings: DominusSettings | None = None,
    *,
    warm_up: bool = True,
    strict: bool = False,
    state_key: str = "dominus",
    **client_kwargs: Any,
) -> DominusLifespan:
    """A lifespan that opens one ``Dominus`` client for the app (see the module docstring).

    ``settings`` and ``client_kwargs`` (``token=``, ``base_url=``, ``timeout=``, ...) go to ``Dominus``;
    without them the client reads the environment (``DOMINUS_TOKEN``, ``DOMINUS_BASE_URL``, ...).
    """
    return DominusLifespan(settings, client_kwargs, warm_up=warm_up, strict=strict, state_key=state_key)


def combine_lifespans(*lifespans: Lifespan) -> Callable[[Any], AbstractAsyncContextManager[dict[str, Any]]]:
    """One lifespan that enters ``lifespans`` in order, exits them in reverse, and merges their states.

    Each may yield ``None`` or a mapping; later states win on equal keys.
    """

    @asynccontextmanager
    async def combined(app: Any) -> AsyncIterator[dict[str, Any]]:
        state: dict[str, Any] = {}
        async with AsyncExitStack() as stack:
            for lifespan in lifespans:
                value = await stack.enter_async_context(lifespan(app))
                if value is not None:
                    state.update(value)
            yield state

    return combined
