"""The mail store behind Courier: where rendered messages go (spec 7.10).

:class:`MailStore` is the interface Courier writes to. :class:`OutboxMailStore` keeps every message in the
``courier_outbox`` table, inside the caller's transaction, so a message is recorded exactly when the request
that sent it commits (a Portal sign-up that fails leaves no verification mail behind).
:class:`SmtpMailStore` (``DOMINUS_LOCAL_MAIL_URL=smtp://[user:pass@]host:port[?starttls=true]``, or ``smtps://``
for implicit TLS; ``&cafile=/path/ca.pem`` trusts a private CA instead of the system's store, see
:func:`parse_smtp_url`) keeps the same outbox and also delivers every message to the relay, from a background
task that runs after the sending request committed. Delivery is claimed per message in the ``courier_delivery``
table (a lease), so several processes sharing the database never send one message twice while they all run;
a process that dies between the relay's acceptance and recording it may leave one message to be sent again
when its lease ends (SMTP gives no way to make that exactly-once). A failed attempt is recorded in the
message's ``delivery_error`` and retried with a growing delay; a permanent refusal of the message (a 5xx
answer to MAIL, RCPT or DATA) is not retried. A relay that refuses this client rather than the message (530
"must issue STARTTLS first" or "authentication required", 534/535/538 about credentials and encryption, a
certificate it presents that does not verify) keeps the message pending and retried: fixing the URL delivers it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import email.utils
import logging
import secrets
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    RowMapping,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from dominus_local.stores.database import metadata
from dominus_local.validate import format_timestamp

if TYPE_CHECKING:
    from aiosmtplib import SMTPResponseException

    from dominus_local.stores.database import Database

logger = logging.getLogger("dominus_local.courier")

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

    async def start(self, db: Database) -> None:
        """Begin background work on ``db`` (delivery); nothing by default."""
        return None

    async def close(self) -> None:
        """Stop background work and release what the store holds; nothing by default."""
        return None


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


delivery_table = Table(
    "courier_delivery",
    metadata,
    Column(
        "message_id",
        String(36),
        ForeignKey("courier_outbox.message_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("attempts", Integer, nullable=False, default=0),
    # The process that holds the claim (``None`` between attempts) and until when: the lease end while
    # claimed, the earliest next attempt otherwise.
    Column("owner", String(32), nullable=True),
    Column("not_before_ms", BigInteger, nullable=False),
    Column("given_up", Boolean, nullable=False, default=False),
)
"""Delivery bookkeeping of :class:`SmtpMailStore`: claims (leases) and retry times, one row per message that
was tried at least once; removed when the message is delivered."""


@dataclass(frozen=True)
class SmtpRelay:
    """Where and how to reach the SMTP relay; the password stays out of the repr.

    A relay reached over TLS (``tls`` or ``starttls``) gets one :class:`ssl.SSLContext`, built here and shared
    by every message and health check (:attr:`tls_context`). It is ``ssl.create_default_context(cafile=...)``:
    certificate verification and hostname checking are always on. Without ``cafile`` it trusts the system's CA
    store; with ``cafile`` it trusts the certificates of that PEM bundle *only* (Python loads the system store
    only when no ``cafile`` is given), so a bundle for a relay with a public certificate must hold that public
    CA too. There is deliberately no way to turn verification off.

    Raises ``ValueError`` naming ``cafile`` when it is given without TLS, or is not a readable PEM bundle.
    """

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    tls: bool = False
    timeout: float = 10.0
    cafile: str | None = None
    tls_context: ssl.SSLContext | None = field(default=None, init=False, repr=False, compare=False)
    """The context of a TLS relay (``None`` on plain SMTP), built once with the relay."""

    def __post_init__(self) -> None:
        if not (self.tls or self.starttls):
            if self.cafile is not None:
                raise ValueError("cafile needs TLS: use smtps:// or starttls=true (plain SMTP checks no certificate)")
            return
        object.__setattr__(self, "tls_context", _tls_context(self.cafile))

    def describe(self) -> str:
        """``smtp://host:port`` with the TLS options (never the credentials)."""
        scheme = "smtps" if self.tls else "smtp"
        options = (["starttls=true"] if self.starttls else []) + (
            [f"cafile={quote(self.cafile, safe='/')}"] if self.cafile is not None else []
        )
        return f"{scheme}://{self.host}:{self.port}" + ("?" + "&".join(options) if options else "")


def _tls_context(cafile: str | None) -> ssl.SSLContext:
    """``ssl.create_default_context(cafile=cafile)``, with a ``ValueError`` naming ``cafile`` when the bundle
    cannot be read or holds no certificate."""
    if cafile is None:
        return ssl.create_default_context()
    if not cafile:
        raise ValueError("cafile must be the path of a PEM file of CA certificates")
    try:
        with open(cafile, "rb"):
            pass
    except OSError as exc:
        raise ValueError(f"cafile {cafile!r} cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        return ssl.create_default_context(cafile=cafile)
    except ssl.SSLError:
        raise ValueError(f"cafile {cafile!r} holds no PEM certificate that can be loaded") from None


_TRUE = ("1", "true", "yes", "on")
_KNOWN = ("cafile", "starttls", "timeout")


def parse_smtp_url(url: str) -> SmtpRelay:
    """``smtp://[user:pass@]host:port[?starttls=true&timeout=S&cafile=PATH]`` or ``smtps://...`` (implicit TLS).

    ``cafile`` is the path of a PEM bundle of CA certificates (URL-encoded where needed: ``+`` must be written
    ``%2B``, since a query reads it as a space) that the relay's certificate is verified against instead of the
    system's CA store, for a relay whose certificate a private CA signed; it needs ``smtps://`` or
    ``starttls=true`` and must be a readable PEM file when the URL is read. A relative path is read from the
    working directory. Verification and hostname checking always stay on (see :class:`SmtpRelay`).

    Raises ``ValueError`` naming the wrong part, never quoting the password."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("must start with smtp:// or smtps://")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    if not parts.hostname:
        raise ValueError("needs a host")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(params) - set(_KNOWN))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(_KNOWN)}")
    try:
        timeout = float(params.get("timeout", "10"))
    except ValueError:
        raise ValueError("timeout must be a number of seconds") from None
    if not 0 < timeout <= 300:
        raise ValueError("timeout must be between 0 and 300 seconds")
    tls = parts.scheme == "smtps"
    starttls = params.get("starttls", "").lower() in _TRUE
    if tls and starttls:
        raise ValueError("smtps:// already uses TLS; starttls=true is for smtp://")
    return SmtpRelay(
        host=parts.hostname,
        port=port if port is not None else (465 if tls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        starttls=starttls,
        tls=tls,
        timeout=timeout,
        cafile=params.get("cafile"),
    )


class _Permanent(Exception):
    """The relay refused the message for good (5xx)."""


class SmtpMailStore(OutboxMailStore):
    """The outbox, plus delivery of every message to an SMTP relay through aiosmtplib.

    :meth:`start` launches the delivery task; :meth:`deliver_pending` runs one round by hand (tests, tools).
    ``clock`` gives Unix seconds (leases and retry times); ``poll_seconds`` is how often the task looks for
    messages submitted by other processes; a message submitted here wakes it at once.
    """

    LEASE_SECONDS = 300
    MAX_ATTEMPTS = 8
    BACKOFF_BASE_SECONDS = 5.0
    BACKOFF_MAX_SECONDS = 600.0

    def __init__(
        self, url: str, *, clock: Callable[[], float] | None = None, poll_seconds: float = 2.0, batch: int = 20
    ) -> None:
        self.relay = parse_smtp_url(url)
        self.clock: Callable[[], float] = clock or time.time
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.owner = secrets.token_hex(8)
        self._db: Database | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._round = asyncio.Lock()
        self._stopping = False

    def __repr__(self) -> str:
        return f"SmtpMailStore({self.relay.describe()!r})"

    async def submit(self, conn: AsyncConnection, message: MailMessage) -> None:
        await super().submit(conn, message)
        self._wake.set()

    async def start(self, db: Database) -> None:
        self._db = db
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="courier-smtp-delivery")

    async def close(self) -> None:
        """Stop the delivery task: it finishes the message in hand (so no database call is cut short), and is
        cancelled only if that takes longer than the relay timeout."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.relay.timeout + 5)
        except asyncio.TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            if self._stopping:
                return
            if self._wake.is_set():
                self._wake.clear()
                await asyncio.sleep(0.05)  # let the submitting request commit
            try:
                await self.deliver_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("SMTP delivery round failed")

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def deliver_pending(self) -> int:
        """Claim and send every message that is due, in batches; returns how many the relay accepted."""
        if self._db is None:
            raise RuntimeError("SmtpMailStore.start() was not called")
        delivered = 0
        async with self._round:
            while not self._stopping:
                claimed = await self._claim(self._db)
                if not claimed:
                    return delivered
                for message in claimed:
                    delivered += await self._deliver(self._db, message)
        return delivered

    async def _claim(self, db: Database) -> list[MailMessage]:
        now = self._now_ms()
        o, d = outbox_table.c, delivery_table.c
        query = (
            select(outbox_table, d.message_id.label("tried"))
            .select_from(outbox_table.outerjoin(delivery_table, d.message_id == o.message_id))
            .where(
                o.delivered.is_(False),
                or_(d.message_id.is_(None), and_(d.given_up.is_(False), d.not_before_ms <= now)),
            )
            .order_by(o.submitted_at, o.message_id)
            .limit(self.batch)
        )
        if db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True, of=outbox_table)
        claimed: list[MailMessage] = []
        lease_end = now + 1000 * self.LEASE_SECONDS
        async with db.begin() as conn:
            for row in (await conn.execute(query)).mappings().all():
                if row["tried"] is None:
                    await conn.execute(
                        insert(delivery_table).values(
                            message_id=row["message_id"], attempts=0, owner=self.owner, not_before_ms=lease_end
                        )
                    )
                else:
                    done = await conn.execute(
                        update(delivery_table)
                        .where(d.message_id == row["message_id"], d.not_before_ms <= now, d.given_up.is_(False))
                        .values(owner=self.owner, not_before_ms=lease_end)
                    )
                    if done.rowcount != 1:
                        continue
                claimed.append(_message(row))
        return claimed

    async def _deliver(self, db: Database, message: MailMessage) -> int:
        error: str | None = None
        permanent = False
        try:
            await self._send(message)
        except _Permanent as exc:
            error, permanent = str(exc), True
        except Exception as exc:
            error = _short_error(exc)
        d = delivery_table.c
        async with db.begin() as conn:
            await self.mark_delivery(conn, message.message_id, error=error)
            if error is None:
                await conn.execute(delete(delivery_table).where(d.message_id == message.message_id))
                return 1
            attempts = int(
                (await conn.execute(select(d.attempts).where(d.message_id == message.message_id))).scalar_one()
            ) + 1
            delay = min(self.BACKOFF_MAX_SECONDS, self.BACKOFF_BASE_SECONDS * 2 ** (attempts - 1))
            await conn.execute(
                update(delivery_table)
                .where(d.message_id == message.message_id)
                .values(
                    attempts=attempts,
                    owner=None,
                    not_before_ms=self._now_ms() + int(delay * 1000),
                    given_up=permanent or attempts >= self.MAX_ATTEMPTS,
                )
            )
        logger.warning("SMTP delivery of message %s failed (attempt %d): %s", message.message_id, attempts, error)
        return 0

    def _email(self, message: MailMessage) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = message.subject
        mail["From"] = message.from_address
        mail["To"] = ", ".join(message.to)
        if message.reply_to:
            mail["Reply-To"] = message.reply_to
        mail["Message-ID"] = f"<{message.message_id}@dominus-local>"
        mail["Date"] = email.utils.format_datetime(message.submitted_at)
        if message.tag:
            mail["X-Dominus-Tag"] = message.tag
        mail["X-Dominus-Template"] = message.template_alias
        mail.set_content(message.text_body)
        mail.add_alternative(message.html_body, subtype="html")
        return mail

    async def _send(self, message: MailMessage) -> None:
        import aiosmtplib

        relay = self.relay
        try:
            await aiosmtplib.send(
                self._email(message),
                hostname=relay.host,
                port=relay.port,
                username=relay.username,
                password=relay.password,
                use_tls=relay.tls,
                start_tls=relay.starttls,
                tls_context=relay.tls_context,
                timeout=relay.timeout,
            )
        except aiosmtplib.SMTPResponseException as exc:
            if _refuses_message(exc):
                raise _Permanent(f"relay refused the message: {exc.code} {exc.message}"[:300]) from None
            raise
        except aiosmtplib.SMTPRecipientsRefused as exc:
            if exc.recipients and all(_refuses_message(refusal) for refusal in exc.recipients):
                raise _Permanent(f"relay refused every recipient ({len(exc.recipients)})") from None
            first = exc.recipients[0] if exc.recipients else None
            detail = f": {first.code} {first.message}" if first is not None else ""
            raise aiosmtplib.SMTPException(f"relay refused every recipient for now{detail}"[:300]) from None

    async def check(self, conn: AsyncConnection) -> dict[str, Any]:
        """The outbox is essential; the relay is not: an unreachable relay makes the store ``degraded``."""
        await conn.execute(select(outbox_table.c.message_id).limit(1))
        smtp = "up"
        try:
            await self.ping()
        except Exception as exc:
            smtp = "down"
            return {"status": "degraded", "outbox": "up", "smtp": smtp, "smtp_error": _short_error(exc)}
        return {"status": "up", "outbox": "up", "smtp": smtp}

    async def ping(self) -> None:
        """Connect to the relay, say EHLO (and STARTTLS / log in as configured), then QUIT."""
        import aiosmtplib

        relay = self.relay
        client = aiosmtplib.SMTP(
            hostname=relay.host,
            port=relay.port,
            use_tls=relay.tls,
            start_tls=relay.starttls,
            tls_context=relay.tls_context,
            timeout=min(relay.timeout, 3.0),
        )
        await client.connect()
        try:
            if relay.username is not None and relay.password is not None:
                await client.login(relay.username, relay.password)
        finally:
            with contextlib.suppress(Exception):
                await client.quit()


_ACCESS_CODES = frozenset({530, 534, 535, 538})
"""5xx answers about this client's access (STARTTLS or authentication required, credentials refused,
encryption required), not about the message: a URL that is fixed later delivers the message."""


def _refuses_message(exc: SMTPResponseException) -> bool:
    """Whether an SMTP error answer refuses the message for good (retrying it cannot help): a 5xx answer to
    MAIL, RCPT or DATA, except the access codes of :data:`_ACCESS_CODES`."""
    if not 500 <= exc.code < 600 or exc.code in _ACCESS_CODES:
        return False
    from aiosmtplib import SMTPAuthenticationError, SMTPConnectResponseError, SMTPHeloError

    return not isinstance(exc, (SMTPAuthenticationError, SMTPConnectResponseError, SMTPHeloError))


def _short_error(exc: BaseException) -> str:
    """A one-line description of a delivery failure (exception type and text, at most 300 characters)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def open_mail_store(url: str | None, *, clock: Callable[[], float] | None = None) -> MailStore:
    """The mail store a ``mail_url`` asks for: :class:`SmtpMailStore` for ``smtp://`` / ``smtps://``, the plain
    outbox when it is unset or ``outbox:``."""
    if not url or url == "outbox:":
        return OutboxMailStore()
    return SmtpMailStore(url, clock=clock)


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
