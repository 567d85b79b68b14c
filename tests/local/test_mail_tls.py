"""SMTP delivery over TLS: STARTTLS and implicit TLS (``smtps://``) against in-process aiosmtpd relays whose
certificates a throwaway private CA signed, trusted through the URL's ``cafile=``."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import secrets
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError as SettingsError

from dominus_local import LocalSettings
from dominus_local.stores.database import Database
from dominus_local.stores.mail import MailMessage, SmtpMailStore, delivery_table, outbox_table, parse_smtp_url
from tests.conftest import FakeClock
from tests.servers import free_port

USER = "mailer"
PASSWORD = "tls-relay-s3cret"


@dataclass(frozen=True)
class Pki:
    """A throwaway CA and the server certificates it signed, as PEM files."""

    ca: Path
    cert: Path
    """For ``localhost`` and ``127.0.0.1``."""
    key: Path
    other_cert: Path
    """For ``relay.internal`` only (a certificate for some other host)."""


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = (
            builder.add_extension(x509.SubjectAlternativeName(names or []), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue("Dominus test CA", ca_key, "Dominus test CA", ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue(
        "localhost",
        key,
        "Dominus test CA",
        ca_key,
        ca=False,
        names=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    other = _issue("relay.internal", key, "Dominus test CA", ca_key, ca=False, names=[x509.DNSName("relay.internal")])
    paths = Pki(
        ca=tmp_path / "ca.pem",
        cert=tmp_path / "relay.pem",
        key=tmp_path / "relay.key",
        other_cert=tmp_path / "other.pem",
    )
    paths.ca.write_bytes(_pem(ca_cert))
    paths.cert.write_bytes(_pem(cert) + _pem(ca_cert))
    paths.other_cert.write_bytes(_pem(other) + _pem(ca_cert))
    paths.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def _server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls_version: str | None
    """The TLS version of the connection that carried the message (``None`` in clear text)."""
    authenticated: bool

    @property
    def over_tls(self) -> bool:
        return self.tls_version is not None and self.tls_version.startswith("TLSv1.")


def _tls_version(server: Any) -> str | None:
    """What the relay's own transport says: its SSL object exists only on a TLS connection (implicit, or after
    STARTTLS, where aiosmtpd also sets ``session.ssl``)."""
    ssl_object = server.transport.get_extra_info("ssl_object")
    return None if ssl_object is None else str(ssl_object.version())


@dataclass
class Sink:
    """An aiosmtpd handler that keeps what it accepted and how it was reached."""

    received: list[Received] = field(default_factory=list)
    logins: list[tuple[str, bool, bool]] = field(default_factory=list)
    """``(login, accepted, over TLS)`` per AUTH attempt."""

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(
            Received(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                message=parsed,
                tls_version=_tls_version(server),
                authenticated=bool(session.authenticated),
            )
        )
        return "250 OK"

    def authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == USER.encode()
            and auth_data.password == PASSWORD.encode()
        )
        login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?"
        self.logins.append((login, ok, session.ssl is not None and _tls_version(server) is not None))
        return AuthResult(success=ok, handled=False)


@dataclass
class Relay:
    port: int
    sink: Sink


@pytest.fixture
def starttls_relay(pki: Pki) -> Iterator[Relay]:
    """A relay that demands STARTTLS before anything else and AUTH (only over TLS) before MAIL."""
    sink = Sink()
    port = free_port()
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=port,
        tls_context=_server_context(pki.cert, pki.key),
        require_starttls=True,
        authenticator=sink.authenticate,
        auth_require_tls=True,
        auth_required=True,
    )
    controller.start()
    try:
        yield Relay(port, sink)
    finally:
        controller.stop()


def _implicit_tls_relay(cert: Path, key: Path) -> Iterator[Relay]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, ssl_context=_server_context(cert, key))
    controller.start()
    try:
        yield Relay(port, sink)
    finally:
        controller.stop()


@pytest.fixture
def smtps_relay(pki: Pki) -> Iterator[Relay]:
    """A relay that speaks TLS from the first byte (no AUTH)."""
    yield from _implicit_tls_relay(pki.cert, pki.key)


@pytest.fixture
def smtps_relay_for_other_host(pki: Pki) -> Iterator[Relay]:
    """A relay on 127.0.0.1 whose certificate (signed by the same CA) names only ``relay.internal``."""
    yield from _implicit_tls_relay(pki.other_cert, pki.key)


def _message() -> MailMessage:
    return MailMessage(
        message_id=secrets.token_hex(4) + "-0000-4000-8000-" + secrets.token_hex(6),
        to=("ada@example.com",),
        from_address="team@example.com",
        template_alias="welcome",
        subject="Welcome over TLS",
        text_body="Hello Ada, in plain text",
        html_body="<p>Hello Ada, in <b>HTML</b></p>",
        model={"name": "Ada"},
        submitted_at=dt.datetime.now(dt.timezone.utc),
    )


@dataclass
class Outbox:
    db: Database
    clock: FakeClock

    def store(self, url: str) -> SmtpMailStore:
        store = SmtpMailStore(url, clock=self.clock)
        store._db = self.db  # delivery rounds run by hand, without the background task
        return store

    async def submit(self, store: SmtpMailStore) -> MailMessage:
        message = _message()
        async with self.db.begin() as conn:
            await store.submit(conn, message)
        return message

    async def row(self, message_id: str) -> dict[str, Any]:
        async with self.db.begin() as conn:
            outbox = (
                (await conn.execute(outbox_table.select().where(outbox_table.c.message_id == message_id)))
                .mappings()
                .one()
            )
            delivery = (
                (await conn.execute(delivery_table.select().where(delivery_table.c.message_id == message_id)))
                .mappings()
                .one_or_none()
            )
        return {**outbox, "bookkeeping": dict(delivery) if delivery is not None else None}

    async def health(self, store: SmtpMailStore) -> dict[str, Any]:
        async with self.db.begin() as conn:
            return await store.check(conn)


@pytest.fixture
async def outbox() -> AsyncIterator[Outbox]:
    db = Database("sqlite+aiosqlite://")
    await db.create_all()
    try:
        yield Outbox(db, FakeClock())
    finally:
        await db.dispose()


def _cafile(pki: Pki) -> str:
    return quote(str(pki.ca), safe="")


def _assert_pending_for_retry(row: dict[str, Any], clock: FakeClock) -> None:
    assert row["delivered"] is False and row["delivery_error"]
    assert PASSWORD not in row["delivery_error"]
    bookkeeping = row["bookkeeping"]
    assert bookkeeping is not None and bookkeeping["attempts"] == 1 and bookkeeping["owner"] is None
    assert bookkeeping["given_up"] is False, "a refusal of this client, not of the message, is retried"
    assert bookkeeping["not_before_ms"] > clock() * 1000


async def test_starttls_with_auth_and_private_ca_delivers(outbox: Outbox, starttls_relay: Relay, pki: Pki) -> None:
    url = f"smtp://{USER}:{PASSWORD}@127.0.0.1:{starttls_relay.port}?starttls=true&timeout=5&cafile={_cafile(pki)}"
    store = outbox.store(url)
    assert store.relay.cafile == str(pki.ca) and store.relay.tls_context is not None
    assert PASSWORD not in repr(store.relay) and PASSWORD not in store.relay.describe()
    message = await outbox.submit(store)
    assert await store.deliver_pending() == 1
    assert await store.deliver_pending() == 0, "a delivered message is not sent again"

    [got] = starttls_relay.sink.received
    assert got.over_tls and got.authenticated, "the relay saw an authenticated TLS session"

    assert starttls_relay.sink.logins == [(USER, True, True)], "the password travelled only inside TLS"
    assert got.rcpt_tos == ["ada@example.com"] and got.mail_from == "team@example.com"
    mail = got.message
    assert mail["To"] == "ada@example.com" and mail["Subject"] == "Welcome over TLS"
    assert mail["Message-ID"] == f"<{message.message_id}@dominus-local>"
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None and isinstance(text, EmailMessage)
    assert html is not None and isinstance(html, EmailMessage)
    assert text.get_content().strip() == "Hello Ada, in plain text"
    assert html.get_content().strip() == "<p>Hello Ada, in <b>HTML</b></p>"

    row = await outbox.row(message.message_id)
    assert row["delivered"] is True and row["delivery_error"] is None and row["bookkeeping"] is None
    assert await outbox.health(store) == {"status": "up", "outbox": "up", "smtp": "up"}
    assert starttls_relay.sink.logins[-1] == (USER, True, True), "the health check logs in over TLS too"


async def test_one_tls_context_per_relay_serves_every_message(outbox: Outbox, starttls_relay: Relay, pki: Pki) -> None:
    store = outbox.store(
        f"smtp://{USER}:{PASSWORD}@localhost:{starttls_relay.port}?starttls=true&timeout=5&cafile={_cafile(pki)}"
    )
    context = store.relay.tls_context
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # The bundle replaces the system store (ssl.create_default_context(cafile=...)): only the private CA.
    assert [ca["subject"] for ca in context.get_ca_certs()] == [((("commonName", "Dominus test CA"),),)]
    for _ in range(3):
        await outbox.submit(store)
    assert await store.deliver_pending() == 3
    assert store.relay.tls_context is context
    assert len(starttls_relay.sink.received) == 3 and all(r.over_tls for r in starttls_relay.sink.received)


async def test_smtps_with_private_ca_delivers(outbox: Outbox, smtps_relay: Relay, pki: Pki) -> None:
    store = outbox.store(f"smtps://127.0.0.1:{smtps_relay.port}?timeout=5&cafile={_cafile(pki)}")
    message = await outbox.submit(store)
    assert await store.deliver_pending() == 1
    [got] = smtps_relay.sink.received
    assert got.over_tls and got.message["Subject"] == "Welcome over TLS"
    row = await outbox.row(message.message_id)
    assert row["delivered"] is True and row["delivery_error"] is None
    assert await outbox.health(store) == {"status": "up", "outbox": "up", "smtp": "up"}


async def test_without_cafile_the_private_ca_is_not_trusted(
    outbox: Outbox, starttls_relay: Relay, smtps_relay: Relay
) -> None:
    for url in (
        f"smtp://{USER}:{PASSWORD}@127.0.0.1:{starttls_relay.port}?starttls=true&timeout=5",
        f"smtps://{USER}:{PASSWORD}@127.0.0.1:{smtps_relay.port}?timeout=5",
    ):
        store = outbox.store(url)
        message = await outbox.submit(store)
        assert await store.deliver_pending() == 0
        row = await outbox.row(message.message_id)
        _assert_pending_for_retry(row, outbox.clock)
        assert "CERTIFICATE_VERIFY_FAILED" in row["delivery_error"], row["delivery_error"]
        health = await outbox.health(store)
        assert health["status"] == "degraded" and health["smtp"] == "down" and health["outbox"] == "up"
        assert "CERTIFICATE_VERIFY_FAILED" in health["smtp_error"] and PASSWORD not in health["smtp_error"]
        assert await store.deliver_pending() == 0, "not retried before its backoff"
    assert starttls_relay.sink.received == [] and smtps_relay.sink.received == []
    assert starttls_relay.sink.logins == [], "no password was sent to an unverified relay"


async def test_hostname_is_checked_even_with_a_trusted_ca(
    outbox: Outbox, smtps_relay_for_other_host: Relay, pki: Pki
) -> None:
    store = outbox.store(f"smtps://127.0.0.1:{smtps_relay_for_other_host.port}?timeout=5&cafile={_cafile(pki)}")
    message = await outbox.submit(store)
    assert await store.deliver_pending() == 0
    row = await outbox.row(message.message_id)
    _assert_pending_for_retry(row, outbox.clock)
    assert "CERTIFICATE_VERIFY_FAILED" in row["delivery_error"] and "mismatch" in row["delivery_error"]
    assert smtps_relay_for_other_host.sink.received == []


async def test_relay_requiring_starttls_without_starttls_keeps_the_message(
    outbox: Outbox, starttls_relay: Relay, pki: Pki
) -> None:
    """The relay answers 530 (or offers no AUTH before TLS): the URL is wrong, not the message, so it stays
    pending and is retried, and fixing the URL delivers it."""
    port = starttls_relay.port
    with_login = outbox.store(f"smtp://{USER}:{PASSWORD}@127.0.0.1:{port}?timeout=5")
    first = await outbox.submit(with_login)
    assert await with_login.deliver_pending() == 0
    row = await outbox.row(first.message_id)
    _assert_pending_for_retry(row, outbox.clock)
    assert "AUTH" in row["delivery_error"], row["delivery_error"]
    assert starttls_relay.sink.logins == [], "no password was sent in clear text"
    health = await outbox.health(with_login)
    assert health["status"] == "degraded" and health["smtp"] == "down" and PASSWORD not in health["smtp_error"]

    without_login = outbox.store(f"smtp://127.0.0.1:{port}?timeout=5")
    second = await outbox.submit(without_login)
    assert await without_login.deliver_pending() == 0, "the first message waits for its backoff"
    row = await outbox.row(second.message_id)
    _assert_pending_for_retry(row, outbox.clock)
    assert "530" in row["delivery_error"] and "STARTTLS" in row["delivery_error"], row["delivery_error"]
    assert starttls_relay.sink.received == []

    # The URL is fixed: both messages go out once their backoff has passed.
    fixed = outbox.store(f"smtp://{USER}:{PASSWORD}@127.0.0.1:{port}?starttls=true&timeout=5&cafile={_cafile(pki)}")
    assert await fixed.deliver_pending() == 0
    outbox.clock.advance(SmtpMailStore.BACKOFF_BASE_SECONDS + 1)
    assert await fixed.deliver_pending() == 2
    assert {r.message["Message-ID"] for r in starttls_relay.sink.received} == {
        f"<{first.message_id}@dominus-local>",
        f"<{second.message_id}@dominus-local>",
    }
    for message in (first, second):
        row = await outbox.row(message.message_id)
        assert row["delivered"] is True and row["delivery_error"] is None


async def test_wrong_password_keeps_the_message_for_a_fixed_url(
    outbox: Outbox, starttls_relay: Relay, pki: Pki
) -> None:
    store = outbox.store(
        f"smtp://{USER}:wrong-{PASSWORD}@127.0.0.1:{starttls_relay.port}?starttls=true&timeout=5&cafile={_cafile(pki)}"
    )
    message = await outbox.submit(store)
    assert await store.deliver_pending() == 0
    row = await outbox.row(message.message_id)
    _assert_pending_for_retry(row, outbox.clock)
    assert "535" in row["delivery_error"] and "wrong-" not in row["delivery_error"]
    logins = starttls_relay.sink.logins
    assert logins and set(logins) == {(USER, False, True)}, "refused, over TLS (each mechanism the client tried)"
    health = await outbox.health(store)
    assert health["status"] == "degraded" and "535" in health["smtp_error"] and PASSWORD not in health["smtp_error"]


@pytest.mark.parametrize(
    ("answer", "for_good"),
    [("550 5.1.1 no such mailbox", True), ("450 4.2.1 mailbox busy", False), ("530 5.7.0 log in first", False)],
)
async def test_recipients_refused_for_good_or_for_now(
    outbox: Outbox, smtps_relay: Relay, pki: Pki, answer: str, for_good: bool
) -> None:
    """Every recipient refused: for good on a 5xx about the message, retried on a 4xx or an access code."""

    async def refuse(server: Any, session: Session, envelope: Envelope, address: str, options: list[str]) -> str:
        return answer

    smtps_relay.sink.handle_RCPT = refuse  # type: ignore[attr-defined]
    store = outbox.store(f"smtps://127.0.0.1:{smtps_relay.port}?timeout=5&cafile={_cafile(pki)}")
    message = await outbox.submit(store)
    assert await store.deliver_pending() == 0
    row = await outbox.row(message.message_id)
    assert "refused every recipient" in row["delivery_error"]
    if for_good:
        assert row["delivered"] is False and row["bookkeeping"]["given_up"] is True
    else:
        _assert_pending_for_retry(row, outbox.clock)
        assert answer[:3] in row["delivery_error"]
    assert smtps_relay.sink.received == []


def test_parse_cafile_needs_tls_and_a_readable_bundle(pki: Pki, tmp_path: Path) -> None:
    cafile = _cafile(pki)
    with pytest.raises(ValueError) as plain:
        parse_smtp_url(f"smtp://{USER}:{PASSWORD}@relay.internal:25?cafile={cafile}")
    assert "cafile" in str(plain.value) and "TLS" in str(plain.value) and PASSWORD not in str(plain.value)
    with pytest.raises(ValueError) as explicit_false:
        parse_smtp_url(f"smtp://{USER}:{PASSWORD}@relay.internal:25?starttls=false&cafile={cafile}")
    assert "cafile" in str(explicit_false.value) and PASSWORD not in str(explicit_false.value)

    missing = quote(str(tmp_path / "nowhere.pem"), safe="")
    for scheme, query in (("smtps", ""), ("smtp", "starttls=true&")):
        with pytest.raises(ValueError) as gone:
            parse_smtp_url(f"{scheme}://{USER}:{PASSWORD}@relay.internal:465?{query}cafile={missing}")
        text = str(gone.value)
        assert "cafile" in text and "nowhere.pem" in text and PASSWORD not in text

    not_pem = tmp_path / "not-a-bundle.pem"
    not_pem.write_text("just text\n")
    with pytest.raises(ValueError) as garbage:
        parse_smtp_url(f"smtps://{USER}:{PASSWORD}@relay.internal:465?cafile={quote(str(not_pem), safe='')}")
    assert "cafile" in str(garbage.value) and "PEM" in str(garbage.value) and PASSWORD not in str(garbage.value)
    with pytest.raises(ValueError) as empty:
        parse_smtp_url(f"smtps://{USER}:{PASSWORD}@relay.internal:465?cafile=")
    assert "cafile" in str(empty.value) and PASSWORD not in str(empty.value)
    with pytest.raises(ValueError) as unknown:
        parse_smtp_url(f"smtps://{USER}:{PASSWORD}@relay.internal:465?verify=false")
    assert "verify" in str(unknown.value) and "cafile" in str(unknown.value), "there is no verify switch"

    relay = parse_smtp_url(f"smtps://{USER}:{PASSWORD}@relay.internal?cafile={cafile}")
    assert relay.port == 465 and relay.cafile == str(pki.ca) and relay.tls_context is not None
    assert PASSWORD not in repr(relay) and relay.describe() == f"smtps://relay.internal:465?cafile={pki.ca}"
    # An unencoded path reads the same; a plain relay has no context at all.
    assert parse_smtp_url(f"smtp://relay.internal:587?starttls=true&cafile={pki.ca}").cafile == str(pki.ca)
    assert parse_smtp_url("smtp://relay.internal:25").tls_context is None


def test_settings_refuse_a_bad_cafile_naming_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.pem"
    with pytest.raises(SettingsError) as bad:
        LocalSettings(mail_url=f"smtps://{USER}:{PASSWORD}@relay.internal:465?cafile={missing}")
    text = str(bad.value)
    assert "mail_url" in text and "cafile" in text and PASSWORD not in text


def test_settings_name_the_cafile_in_the_backends(pki: Pki) -> None:
    settings = LocalSettings(mail_url=f"smtp://{USER}:{PASSWORD}@relay.internal:587?starttls=true&cafile={pki.ca}")
    mail = settings.backends()["mail"]
    assert mail.startswith(f"smtp: smtp://relay.internal:587?starttls=true&cafile={pki.ca} ") and PASSWORD not in mail
