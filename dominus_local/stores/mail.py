"""The mail store behind Courier: where rendered messages go (spec 7.10).

:class:`MailStore` is the interface Courier writes to. :class:`OutboxMailStore` keeps every message in the
``courier_outbox`` table, inside the caller's transaction, so a message is recorded exactly when the request
that sent it commits (a Portal sign-up that fails leaves no verification mail behind). SMTP delivery is a
later addition behind the same interface: it reads the undelivered messages and records the outcome with
:meth:`MailStore.mark_delivery`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    RowMapping,
    String,
    Table,
    Text,
    and_,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from dominus_local.stores.database import metadata
from dominus_local.validate import format_timestamp

outbox_table = Table(
    "courier_outbox",
    metadata,
    Column("message_id", String(36), primary_key=True),
    Column("to_addresses", Text, nullable=False),
    Column("from_address", String(254), nullable=False),
    Column("reply_to", String(254), nullable=True),
    Column("template_alias", String(64), nullable=False),
    Column("tag", String(128), nullable=True),
    Column("subject", Text, nullable=False),
    Column("text_body", Text, nullable=False),
    Column("html_body", Text, nullable=False),
    Column("model", JSON, nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("delivered", Boolean, nullable=False, default=False),
    Column("delivery_error", Text, nullable=True),
    Index("ix_courier_outbox_submitted", "submitted_at", "message_id"),
    Index("ix_courier_outbox_alias", "template_alias"),
)

outbox_recipients_table = Table(
    "courier_outbox_recipients",
    metadata,
    Column(
        "message_id",
        String(36),
        ForeignKey("courier_outbox.message_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # Stored lower-cased so the outbox's ``to`` filter is case-insensitive on every database.
    Column("address", String(254), primary_key=True),
    Index("ix_courier_outbox_recipients_address", "address"),
)


@dataclass(frozen=True)
class MailMessage:
    """One rendered message, ready to be kept and delivered."""

    message_id: str
    to: tuple[str, ...]
    from_address: str
    template_alias: str
    subject: str
    text_body: str
    html_body: str
    model: Mapping[str, Any] = field(repr=False)
    """The template model; it may hold one-time links, so it stays out of reprs."""
    submitted_at: datetime
    tag: str | None = None
    reply_to: str | None = None


class MailStore(abc.ABC):
    """Where Courier puts messages. Every method runs inside the caller's transaction."""

    keeps_outbox: bool = True
    """``False`` for a store that delivers without keeping messages: the outbox endpoint then answers 501."""

    @abc.abstractmethod
    async def submit(self, conn: AsyncConnection, message: MailMessage) -> None:
        """Record ``message`` for delivery, atomically with the rest of the caller's transaction."""

    @abc.abstractmethod
    async def outbox(
        self,
        conn: AsyncConnection,
        *,
        limit: int,
        to: str | None = None,
        template_alias: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """The kept messages, newest first, as spec 7.10 items, and the count of every match."""

    @abc.abstractmethod
    async def check(self, conn: AsyncConnection) -> dict[str, Any]:
        """Health of the store (spec 7.11): ``{"status": "up" | "degraded" | "down", ...}``.

        The outbox is essential; SMTP delivery is not, so a relay that is down makes the store ``degraded``.
        """

    @abc.abstractmethod
    async def pending(self, conn: AsyncConnection, *, limit: int = 100) -> list[MailMessage]:
        """Messages not delivered yet, oldest first (what an SMTP relay would send next)."""

    @abc.abstractmethod
    async def mark_delivery(self, conn: AsyncConnection, message_id: str, *, error: str | None) -> None:
        """Record a delivery attempt: delivered when ``error`` is ``None``, else the short failure message."""


class OutboxMailStore(MailStore):
    """Keeps every message in the ``courier_outbox`` table of the server's database."""

    async def submit(self, conn: AsyncConnection, message: MailMessage) -> None:
        await conn.execute(
            outbox_table.insert().values(
                message_id=message.message_id,
                to_addresses=", ".join(message.to),
                from_address=message.from_address,
                reply_to=message.reply_to,
                template_alias=message.template_alias,
                tag=message.tag,
                subject=message.subject,
                text_body=message.text_body,
                html_body=message.html_body,
                model=dict(message.model),
                submitted_at=message.submitted_at,
                delivered=False,
                delivery_error=None,
            )
        )
        addresses = sorted({address.lower() for address in message.to})
        await conn.execute(
            outbox_recipients_table.insert(),
            [{"message_id": message.message_id, "address": address} for address in addresses],
        )

    async def outbox(
        self,
        conn: AsyncConnection,
        *,
        limit: int,
        to: str | None = None,
        template_alias: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        conditions: list[ColumnElement[bool]] = []
        if to is not None:
            conditions.append(
                outbox_table.c.message_id.in_(
                    select(outbox_recipients_table.c.message_id).where(
                        outbox_recipients_table.c.address == to.strip().lower()
                    )
                )
            )
        if template_alias is not None:
            conditions.append(outbox_table.c.template_alias == template_alias)
        where = and_(*conditions) if conditions else None
        count_query = select(func.count()).select_from(outbox_table)
        rows_query = select(outbox_table).order_by(outbox_table.c.submitted_at.desc(), outbox_table.c.message_id.desc())
        if where is not None:
            count_query = count_query.where(where)
            rows_query = rows_query.where(where)
        total = int((await conn.execute(count_query)).scalar_one())
        rows = (await conn.execute(rows_query.limit(limit))).mappings().all()
        return [_outbox_item(row) for row in rows], total

    async def check(self, conn: AsyncConnection) -> dict[str, Any]:
        await conn.execute(select(outbox_table.c.message_id).limit(1))
        # No relay is configured for this store: delivery counts as up (spec 7.11).
        return {"status": "up", "outbox": "up", "smtp": "not_configured"}

    async def pending(self, conn: AsyncConnection, *, limit: int = 100) -> list[MailMessage]:
        rows = (
            (
                await conn.execute(
                    select(outbox_table)
                    .where(outbox_table.c.delivered.is_(False))
                    .order_by(outbox_table.c.submitted_at, outbox_table.c.message_id)
                    .limit(limit)
                )
            )
            .mappings()
            .all()
        )
        return [_message(row) for row in rows]

    async def mark_delivery(self, conn: AsyncConnection, message_id: str, *, error: str | None) -> None:
        values: dict[str, Any] = {"delivery_error": error}
        if error is None:
            values["delivered"] = True
        await conn.execute(update(outbox_table).where(outbox_table.c.message_id == message_id).values(**values))


def _recipients(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _outbox_item(row: RowMapping) -> dict[str, Any]:
    return {
        "message_id": row["message_id"],
        "to": row["to_addresses"],
        "from": row["from_address"],
        "reply_to": row["reply_to"],
        "tag": row["tag"],
        "template_alias": row["template_alias"],
        "subject": row["subject"],
        "text_body": row["text_body"],
        "html_body": row["html_body"],
        "model": row["model"],
        "submitted_at": format_timestamp(row["submitted_at"]),
        "delivered": bool(row["delivered"]),
        "delivery_error": row["delivery_error"],
    }


def _message(row: RowMapping) -> MailMessage:
    return MailMessage(
        message_id=row["message_id"],
        to=_recipients(row["to_addresses"]),
        from_address=row["from_address"],
        template_alias=row["template_alias"],
        subject=row["subject"],
        text_body=row["text_body"],
        html_body=row["html_body"],
        model=row["model"],
        submitted_at=row["submitted_at"],
        tag=row["tag"],
        reply_to=row["reply_to"],
    )


def recipients(addresses: Sequence[str]) -> tuple[str, ...]:
    """Addresses in the order given, without repeats (compared case-insensitively)."""
    seen: set[str] = set()
    out: list[str] = []
    for address in addresses:
        key = address.lower()
        if key not in seen:
            seen.add(key)
            out.append(address)
    return tuple(out)
