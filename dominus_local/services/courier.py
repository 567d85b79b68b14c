"""Courier: transactional e-mail rendered from templates into the outbox (spec 7.10, 8.10).

Endpoints: ``POST /api/courier/send`` (any service token) and ``GET /api/courier/outbox`` (admin only).
Other services send mail with :func:`send_template`, inside their own transaction, so the message exists
exactly when their change does.

Addresses are plain ``local@domain`` addresses (spec 8.1: at most 254 characters, exactly one ``@``); display
names (``"Name <addr>"``) are not accepted, so no header can be smuggled in through an address.
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from dominus_local.errors import ApiError, invalid
from dominus_local.routing import RequestContext, ServiceRouter
from dominus_local.services import health
from dominus_local.state import LocalState
from dominus_local.stores.mail import MailMessage, MailStore, open_mail_store, recipients
from dominus_local.validate import Fields, format_timestamp, new_id, utcnow

MAX_RECIPIENTS = 50
MAX_ADDRESS_LENGTH = 254
MAX_ALIAS_LENGTH = 64
MAX_TAG_LENGTH = 128
OUTBOX_MAX_LIMIT = 1000

_ADDRESS = re.compile(r"^[^@\s,<>\"()\[\];:\\]+@[^@\s,<>\"()\[\];:\\]+$")

router = ServiceRouter("courier")


@dataclass(frozen=True)
class Template:
    """One e-mail template: its required and optional model fields and three ``string.Template`` texts.

    ``prepare`` derives extra placeholders from the model (for example a line that exists only when an
    optional field was given); HTML placeholders receive escaped values.
    """

    alias: str
    required: tuple[str, ...]
    subject: str
    text: str
    html: str
    optional: tuple[str, ...] = ()
    prepare: Callable[[Mapping[str, str]], dict[str, str]] = field(default=lambda model: {})

    def render(self, model: Mapping[str, Any]) -> tuple[str, str, str]:
        """Subject, text body and HTML body for ``model`` (missing optional fields render as empty)."""
        values = {name: "" for name in self.optional}
        values.update({key: _text(value) for key, value in model.items()})
        text_values = {**values, **self.prepare(values)}
        escaped = {key: html.escape(value) for key, value in values.items()}
        html_values = {**escaped, **self.prepare(escaped)}
        subject = " ".join(string.Template(self.subject).safe_substitute(text_values).split())
        return (
            subject,
            string.Template(self.text).safe_substitute(text_values),
            string.Template(self.html).safe_substitute(html_values),
        )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _welcome_extras(values: Mapping[str, str]) -> dict[str, str]:
    url = values.get("action_url", "")
    return {
        "action_text": f"Get started: {url}\n" if url else "",
        "action_html": f'<p><a href="{url}">Get started</a></p>' if url else "",
    }


TEMPLATES: dict[str, Template] = {
    template.alias: template
    for template in (
        Template(
            alias="welcome",
            required=("name", "product_name"),
            optional=("action_url",),
            subject="Welcome to $product_name",
            text="Hello $name,\n\nWelcome to $product_name.\n$action_text\nThe $product_name team\n",
            html=("<p>Hello $name,</p><p>Welcome to $product_name.</p>$action_html<p>The $product_name team</p>"),
            prepare=_welcome_extras,
        ),
        Template(
            alias="password-reset",
            required=("name", "action_url", "product_name"),
            subject="Reset your $product_name password",
            text=(
                "Hello $name,\n\nSomeone asked to reset the password of your $product_name account.\n"
                "To choose a new password, open this link (valid for one hour, usable once):\n$action_url\n\n"
                "If you did not ask for this, ignore this message; your password stays unchanged.\n"
            ),
            html=(
                "<p>Hello $name,</p><p>Someone asked to reset the password of your $product_name account.</p>"
                '<p><a href="$action_url">Choose a new password</a> (valid for one hour, usable once).</p>'
                "<p>If you did not ask for this, ignore this message; your password stays unchanged.</p>"
            ),
        ),
        Template(
            alias="email-verification",
            required=("name", "action_url", "product_name"),
            subject="Confirm your e-mail address for $product_name",
            text=(
                "Hello $name,\n\nPlease confirm your e-mail address to activate your $product_name account:\n"
                "$action_url\n\nThe link is valid for 24 hours and can be used once.\n"
            ),
            html=(
                "<p>Hello $name,</p><p>Please confirm your e-mail address to activate your $product_name "
                'account:</p><p><a href="$action_url">Confirm my address</a></p>'
                "<p>The link is valid for 24 hours and can be used once.</p>"
            ),
        ),
        Template(
            alias="invitation",
            required=("name", "action_url", "inviter_name", "product_name"),
            subject="$inviter_name invited you to $product_name",
            text=(
                "Hello $name,\n\n$inviter_name invited you to join $product_name.\n"
                "To accept, choose your password here (valid for 7 days):\n$action_url\n"
            ),
            html=(
                "<p>Hello $name,</p><p>$inviter_name invited you to join $product_name.</p>"
                '<p><a href="$action_url">Accept the invitation</a> (valid for 7 days).</p>'
            ),
        ),
    )
}
"""The templates of spec 8.10, by alias."""


@dataclass
class CourierRuntime:
    """Courier's per-instance objects, kept in ``state.extras["courier"]``."""

    store: MailStore
    clock: Callable[[], datetime] = utcnow


def runtime(state: LocalState) -> CourierRuntime:
    """Courier's runtime for this instance, created on first use (its clock follows the app's wall clock)."""
    found = state.extras.get("courier")
    if not isinstance(found, CourierRuntime):
        wall_clock = getattr(state.extras.get("app"), "wall_clock", None)
        clock = _from_unix(wall_clock) if callable(wall_clock) else utcnow
        found = CourierRuntime(store=open_mail_store(state.settings.mail_url), clock=clock)
        state.extras["courier"] = found
    return found


def _from_unix(wall_clock: Callable[[], float]) -> Callable[[], datetime]:
    return lambda: datetime.fromtimestamp(wall_clock(), timezone.utc)


@router.on_startup
async def _start(state: LocalState) -> None:
    await runtime(state).store.start(state.db)


@router.on_shutdown
async def _stop(state: LocalState) -> None:
    found = state.extras.pop("courier", None)
    if isinstance(found, CourierRuntime):
        await found.store.close()


async def probe(state: LocalState) -> dict[str, Any]:
    """Courier's health entry: the outbox must be reachable; SMTP delivery is not essential (spec 7.11)."""
    async with state.db.begin() as conn:
        return await runtime(state).store.check(conn)


health.register_probe("courier", probe)


def check_address(field_name: str, value: Any) -> str:
    """One plain e-mail address (spec 8.1), or 400 ``validation_failed`` naming ``field_name``."""
    if not isinstance(value, str):
        raise invalid(field_name, "must be a string")
    address = value.strip()
    if not address:
        raise invalid(field_name, "is required")
    if len(address) > MAX_ADDRESS_LENGTH:
        raise invalid(field_name, f"must be at most {MAX_ADDRESS_LENGTH} characters")
    if not _ADDRESS.match(address) or any(ord(ch) < 32 or ord(ch) == 127 for ch in address):
        raise invalid(field_name, "must be an e-mail address with exactly one '@'")
    return address


def parse_recipients(field_name: str, value: Any) -> tuple[str, ...]:
    """``to``: one address, or up to 50 separated by commas (a list of addresses is accepted too)."""
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(",")]
    elif isinstance(value, list):
        parts = list(value)
    elif value is None:
        raise invalid(field_name, "is required")
    else:
        raise invalid(field_name, "must be a string of comma-separated addresses")
    if not parts or parts == [""]:
        raise invalid(field_name, "is required")
    if len(parts) > MAX_RECIPIENTS:
        raise invalid(field_name, f"must name at most {MAX_RECIPIENTS} addresses")
    return recipients([check_address(field_name, part) for part in parts])


def template_for(alias: str) -> Template:
    """The template of ``alias``, or 404 ``not_found``."""
    template = TEMPLATES.get(alias)
    if template is None:
        raise ApiError(
            "not_found",
            f"No e-mail template named '{alias}'; known templates: {', '.join(sorted(TEMPLATES))}",
            details={"field": "template_alias", "id": alias},
        )
    return template


def check_model(template: Template, model: Mapping[str, Any]) -> None:
    """400 ``validation_failed`` with ``details.missing`` when a required model field is absent or empty."""
    missing = [name for name in template.required if model.get(name) in (None, "")]
    if missing:
        raise ApiError(
            "validation_failed",
            f"Template '{template.alias}' needs the model field(s): {', '.join(missing)}",
            details={"field": "model", "reason": "missing required fields", "missing": missing},
        )


async def send_template(
    conn: AsyncConnection,
    state: LocalState,
    *,
    template_alias: str,
    to: str | Sequence[str],
    model: Mapping[str, Any],
    from_email: str | None = None,
    tag: str | None = None,
    reply_to: str | None = None,
) -> dict[str, Any]:
    """Render ``template_alias`` with ``model`` and hand it to the mail store, in the caller's transaction.

    ``from_email`` defaults to the server's configured sender. Answers what ``POST /api/courier/send``
    answers: ``{to, message_id, submitted_at}``. Raises :class:`ApiError` (400/404) before writing anything.
    """
    addresses = parse_recipients("to", to if isinstance(to, str) else list(to))
    sender = check_address("from", from_email if from_email is not None else default_sender(state))
    reply = check_address("reply_to", reply_to) if reply_to is not None else None
    template = template_for(template_alias)
    check_model(template, model)
    subject, text_body, html_body = template.render(model)
    courier = runtime(state)
    message = MailMessage(
        message_id=new_id(),
        to=addresses,
        from_address=sender,
        template_alias=template.alias,
        subject=subject,
        text_body=text_body,
        html_body=html_body,
        model=dict(model),
        submitted_at=courier.clock(),
        tag=tag,
        reply_to=reply,
    )
    await courier.store.submit(conn, message)
    echoed = to if isinstance(to, str) else ", ".join(to)
    return {"to": echoed, "message_id": message.message_id, "submitted_at": format_timestamp(message.submitted_at)}


def default_sender(state: LocalState) -> str:
    """The configured ``From`` of the mail the server sends itself (setting ``mail_from``)."""
    return state.settings.mail_from


@router.post("/api/courier/send")
async def send(ctx: RequestContext) -> dict[str, Any]:
    """Render a template into the outbox (spec 7.10)."""
    fields = ctx.fields
    alias = fields.str("template_alias", min_len=1, max_len=MAX_ALIAS_LENGTH, strip=True)
    to = parse_recipients("to", fields.raw("to"))
    sender = check_address("from", fields.raw("from"))
    model = fields.dict("model")
    tag = fields.str("tag", required=False, max_len=MAX_TAG_LENGTH)
    reply_to = fields.raw("reply_to")
    if reply_to is not None:
        check_address("reply_to", reply_to)
    template = template_for(alias)
    check_model(template, model)
    raw_to = fields.raw("to")
    async with ctx.state.db.begin() as conn:
        return await send_template(
            conn,
            ctx.state,
            template_alias=alias,
            to=raw_to if isinstance(raw_to, str) else list(to),
            model=model,
            from_email=sender,
            tag=tag,
            reply_to=reply_to,
        )


@router.get("/api/courier/outbox", admin=True)
async def outbox(ctx: RequestContext) -> dict[str, Any]:
    """The kept messages, newest first (spec 7.10); 501 when this server keeps no outbox."""
    query: Fields = ctx.query
    limit = query.int("limit", default=100, min_value=1, max_value=OUTBOX_MAX_LIMIT)
    to = query.str("to", required=False, max_len=MAX_ADDRESS_LENGTH, strip=True)
    alias = query.str("template_alias", required=False, max_len=MAX_ALIAS_LENGTH, strip=True)
    store = runtime(ctx.state).store
    if not store.keeps_outbox:
        raise ApiError("not_implemented", "This server delivers mail without keeping an outbox")
    async with ctx.state.db.begin() as conn:
        items, total = await store.outbox(conn, limit=limit, to=to or None, template_alias=alias or None)
    return {"items": items, "total": total}
