"""``SecureAccessContext``: the reason and the actor that every audited ``secure.*`` data call carries (spec 8.3)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SecureAccessContext"]


@dataclass(frozen=True)
class SecureAccessContext:
    """Why a secure table is accessed (``reason``) and on whose behalf (``actor``).

    The constructor accepts any strings; the ``secure`` methods raise
    :class:`~dominus_fastapi.core.errors.SecureTableError` before sending when either one is empty or only
    whitespace. ``actor`` is by convention a user id, or ``"machine"`` for automated access.
    """

    reason: str
    actor: str

    @property
    def complete(self) -> bool:
        """Whether both values are non-empty after trimming."""
        return _filled(self.reason) and _filled(self.actor)


def _filled(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())
