"""Courier transactional e-mail (spec 7.10, 8.10).

``send`` renders a named template with a model; the four wrappers fill in the model of the built-in
templates and tag the message with the template's alias. Extra keyword arguments of a wrapper go into the
model, except the per-call options ``timeout``, ``max_retries`` and ``idempotency_key`` (spec 3.5): a
template field with one of those names must be passed through ``send(model=...)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from dominus_fastapi.core.errors import ValidationError
from dominus_fastapi.core.namespaces.base import Namespace
from dominus_fastapi.core.types import MailSent, Outbox

__all__ = ["MAX_RECIPIENTS", "OUTBOX_MAX_LIMIT", "CourierNamespace"]

MAX_RECIPIENTS = 50
"""Most addresses one message may have (spec 7.10)."""
OUTBOX_MAX_LIMIT = 1000


def _recipients(to: str | Sequence[str]) -> str:
    """``to`` as the wire form: one address, or addresses separated by commas (at most 50)."""
    if isinstance(to, str):
        text = to
        count = len([part for part in to.split(",") if part.strip()])
    else:
        addresses = list(to)
        if not all(isinstance(address, str) for address in addresses):
            raise ValidationError("'to' must hold e-mail addresses", details={"field": "to", "reason": "not a string"})
        text = ", ".join(address.strip() for address in addresses)
        count = len(addresses)
    if count == 0:
        raise ValidationError("'to' needs at least one address", details={"field": "to", "reason": "is required"})
    if count > MAX_RECIPIENTS:
        raise ValidationError(
            f"'to' may name at most {MAX_RECIPIENTS} addresses",
            details={"field": "to", "reason": f"more than {MAX_RECIPIENTS} addresses", "limit": MAX_RECIPIENTS},
        )
    return text


class CourierNamespace(Namespace):
    """Courier transactional e-mail (spec 7.10): ``client.courier``.

    Messages are rendered from named templates (``welcome``, ``password-reset``, ``email-verification``,
    ``invitation``, ...) with a ``model`` of values. The parameters shared by the senders: ``to`` is one address
    or a list of up to 50; ``from_email`` is the sender's address (required). The wrappers (``send_welcome`` ...)
    send ``tag`` equal to the template's alias; their ``name`` (the recipient's), ``product_name`` and link
    (``action_url``, ``reset_url``, ``verify_url``, ``invite_url``, all sent as the model's ``action_url``) go
    into the model, with any further keyword arguments (``**extra``).
    Each returns ``{to, message_id, submitted_at}``.

    Every method also takes, keyword only, ``timeout`` (seconds one attempt may take; default: the client's
    ``timeout``, ``DOMINUS_TIMEOUT``) and ``max_retries`` (how many more attempts a failure that is safe to
    repeat gets; default: the client's ``max_retries``, ``0`` for none). The calls that would not be harmless
    to repeat take ``idempotency_key`` too: the server carries out a key once (spec 3.5); when it is left out,
    the client makes one for the call, so that its own retries never repeat the change. Any call may also raise
    the transport errors (``DominusConnectionError``, ``DominusTimeoutError``, ``ServiceError``,
    ``RateLimitError``) once its retries are spent.
    """

    __slots__ = ()

    async def send(
        self,
        template_alias: str,
        to: str | Sequence[str],
        from_email: str,
        model: Mapping[str, Any],
        tag: str | None = None,
        reply_to: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> MailSent:
        """Send the template ``template_alias`` rendered with ``model``; returns ``{to, message_id, submitted_at}``.

        Args:
            template_alias: The template's name.
            to: One address, or a list of up to 50.
            from_email: The sender's address.
            model: The values the template uses; a template's required fields are checked by the server.
            tag: A label sent with the message, for sorting deliveries.
            reply_to: The address that replies go to, when not ``from_email``.

        Raises:
            ValidationError: A required model field is missing (``details["missing"]``), or too many recipients.
            NotFoundError: No template has this alias.
        """
        body: dict[str, Any] = {
            "template_alias": template_alias,
            "to": _recipients(to),
            "from": from_email,
            "model": dict(model),
        }
        if tag is not None:
            body["tag"] = tag
        if reply_to is not None:
            body["reply_to"] = reply_to
        data = await self._client.request(
            "POST",
            "/api/courier/send",
            body=body,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(MailSent, data)

    async def send_welcome(
        self,
        to: str | Sequence[str],
        from_email: str,
        name: str,
        product_name: str,
        action_url: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> MailSent:
        """Send the ``welcome`` template; ``extra`` keyword arguments go into the model."""
        model: dict[str, Any] = {**extra, "name": name, "product_name": product_name}
        if action_url is not None:
            model["action_url"] = action_url
        return await self.send(
            "welcome",
            to,
            from_email,
            model,
            tag="welcome",
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )

    async def send_password_reset(
        self,
        to: str | Sequence[str],
        from_email: str,
        name: str,
        reset_url: str,
        product_name: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> MailSent:
        """Send the ``password-reset`` template; ``reset_url`` becomes the model's ``action_url``."""
        model = {**extra, "name": name, "action_url": reset_url, "product_name": product_name}
        return await self.send(
            "password-reset",
            to,
            from_email,
            model,
            tag="password-reset",
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )

    async def send_email_verification(
        self,
        to: str | Sequence[str],
        from_email: str,
        name: str,
        verify_url: str,
        product_name: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> MailSent:
        """Send the ``email-verification`` template; ``verify_url`` becomes the model's ``action_url``."""
        model = {**extra, "name": name, "action_url": verify_url, "product_name": product_name}
        return await self.send(
            "email-verification",
            to,
            from_email,
            model,
            tag="email-verification",
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )

    async def send_invitation(
        self,
        to: str | Sequence[str],
        from_email: str,
        name: str,
        invite_url: str,
        inviter_name: str,
        product_name: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> MailSent:
        """Send the ``invitation`` template; ``invite_url`` becomes the model's ``action_url``."""
        model = {
            **extra,
            "name": name,
            "action_url": invite_url,
            "inviter_name": inviter_name,
            "product_name": product_name,
        }
        return await self.send(
            "invitation",
            to,
            from_email,
            model,
            tag="invitation",
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )

    async def outbox(
        self,
        limit: int = 100,
        to: str | None = None,
        template_alias: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Outbox:
        """The server's outbox, newest first (administrators only): where tests and apps read the mailed links.

        Args:
            limit: At most this many messages, 1 to 1000 (checked before sending).
            to: Only messages to this recipient (case-insensitive).
            template_alias: Only messages of this template.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= OUTBOX_MAX_LIMIT:
            raise ValidationError(
                f"'limit' must be an integer from 1 to {OUTBOX_MAX_LIMIT}",
                details={"field": "limit", "reason": f"must be between 1 and {OUTBOX_MAX_LIMIT}"},
            )
        params: dict[str, Any] = {"limit": limit}
        if to is not None:
            params["to"] = to
        if template_alias is not None:
            params["template_alias"] = template_alias
        data = await self._client.request(
            "GET",
            "/api/courier/outbox",
            params=params,
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Outbox, data)
