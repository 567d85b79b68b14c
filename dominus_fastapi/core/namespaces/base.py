"""What every namespace is built on: the request interface of the client and the ``UNSET`` sentinel."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final, Literal, Protocol

AuthKind = Literal["none", "psk", "service", "user", "service_or_user"]
Host = Literal["orchestrator", "gateway"]


class _Unset(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = _Unset.UNSET
"""Default of PUT-update arguments: a field left out is not sent; an explicit ``None`` sends ``null``."""

Unset = Literal[_Unset.UNSET]


class Requester(Protocol):
    """The one request method that namespaces call (implemented by ``Dominus`` and its user views).

    ``body`` is framed for POST/PUT/DELETE; ``params`` become the query string of a GET. ``auth`` and
    ``host`` come from the endpoint table; ``safe`` says whether a sent request may be repeated (spec 6.1);
    ``replay=False`` marks the endpoints exempt from idempotency keys (spec 6.3). ``user_token`` replaces
    the service token as the Bearer credential. ``transfer`` selects the transfer timeout. The return value
    is the envelope's ``data``.

    ``keep_service_token=True`` makes a user view (``client.as_user(token)``) send the service token anyway:
    the Portal methods that act for someone without a session yet (login, login_client,
    request_password_reset, confirm_password_reset, register, verify_email, resend_verification,
    accept_invitation; spec 5.7) pass it. It changes nothing on the client itself.
    """

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        auth: AuthKind = "service",
        host: Host = "orchestrator",
        safe: bool = False,
        replay: bool = True,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
        user_token: str | None = None,
        transfer: bool = False,
        keep_service_token: bool = False,
    ) -> Any: ...


class Namespace:
    """A thin view over the client's :meth:`Requester.request`; namespaces own no HTTP client."""

    __slots__ = ("_client",)

    def __init__(self, client: Requester) -> None:
        self._client = client


def compact(**fields: Any) -> dict[str, Any]:
    """The body fields that were given: ``None`` and ``UNSET`` are left out."""
    return {k: v for k, v in fields.items() if v is not None and v is not UNSET}


def update_fields(**fields: Any) -> dict[str, Any]:
    """PUT-update fields: ``UNSET`` is left out, an explicit ``None`` is kept and sent as ``null``."""
    return {k: v for k, v in fields.items() if v is not UNSET}
