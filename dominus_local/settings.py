"""Configuration of one ``dominus_local`` instance (environment prefix ``DOMINUS_LOCAL_``).

Arguments win over the environment, and the environment over the defaults. A few variables are shared with
the SDK and keep their protocol names: ``DOMINUS_TOKEN`` (the PSK, when ``DOMINUS_LOCAL_PSK`` is not set),
``CB_PROJECT_SLUG`` and ``CB_ENVIRONMENT`` (spec 2.2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024

FAULT_ERROR_STATUSES = (429, 500, 502, 503, 504)
"""Statuses an injected failure may carry (spec 7.12)."""


class LocalSettings(BaseSettings):
    """Settings of a ``dominus_local`` server.

    ``data_dir=None`` runs entirely in memory: database, signing key, PSK and secret-encryption key all end
    with the instance. With a data directory, they are kept there and survive restarts.
    """

    model_config = SettingsConfigDict(
        env_prefix="DOMINUS_LOCAL_",
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
        # URLs may carry passwords: a validation error names the field and the reason, never the value.
        hide_input_in_errors=True,
    )

    data_dir: Path | None = None
    """Where the database, the signing key, the PSK file and the secret key live; ``None``: in memory."""
    database_url: str | None = None
    """SQLAlchemy async URL; default: SQLite ``<data_dir>/dominus.db``, or in-memory SQLite."""
    psk: SecretStr | None = Field(default=None, validation_alias=AliasChoices("DOMINUS_LOCAL_PSK", "DOMINUS_TOKEN"))
    """The bootstrap client's PSK; when unset, ``<data_dir>/psk`` (created on first start) or a random one."""
    issuer: str = "dominus-local"
    """The ``iss`` claim of the tokens this server issues (and the only one it accepts)."""
    audience: str | None = None
    """When set, every token carries this ``aud`` and only tokens for it are accepted."""
    project_slug: str = Field(
        default="local", validation_alias=AliasChoices("CB_PROJECT_SLUG", "DOMINUS_LOCAL_PROJECT_SLUG")
    )
    """The ``project_slug`` claim of its tokens (``CB_PROJECT_SLUG``); secrets, cache and logs are scoped by it."""
    environment: str = Field(
        default="development", validation_alias=AliasChoices("CB_ENVIRONMENT", "DOMINUS_LOCAL_ENVIRONMENT")
    )
    """The ``environment`` claim of its tokens (``CB_ENVIRONMENT``); the same scoping."""
    access_token_ttl: int = Field(default=900, ge=60, le=86400)
    """Lifetime of service and session access tokens in seconds (spec 5.3: 900)."""
    bcrypt_rounds: int = Field(default=12, ge=4, le=31)
    """bcrypt cost (spec 5.8: 12); test suites lower it to stay fast."""
    metrics_enabled: bool = True
    """Serve the Prometheus metrics at ``/metrics``."""
    cold_start_seconds: float = Field(default=0, ge=0, le=3600)
    """Behave as still starting (503 ``cold_start``) for this many seconds after start."""
    seed_demo: bool = False
    """Load the demo data at start (``dominus_local.seed.seed_demo``)."""
    upload_max_bytes: int = Field(default=50 * MIB, ge=1)
    """Largest file Archivist accepts; the request body limit of its upload route follows from it."""
    max_body_bytes: int = Field(default=32 * MIB, ge=16 * MIB)
    """Largest request body on every other route (spec 3.1: at least 16 MiB; the default leaves room for a
    16 MiB payload inside its JSON and base64)."""
    cache_url: str | None = None
    """Whisperer's store: ``redis://[[user]:password@]host:port/db`` (or ``rediss://``); default: a table of the
    database."""
    storage_url: str | None = None
    """Archivist's bytes: ``s3://BUCKET[/PREFIX]?endpoint_url=URL&region=REGION[&presign=true]`` (AWS credentials
    from the environment) or ``file:///directory``; default: ``<data_dir>/blobs``, or memory."""
    mail_url: str | None = None
    """Courier's delivery: ``smtp://[user:pass@]host:port[?starttls=true]`` or ``smtps://...``, with TLS
    optionally ``&cafile=/path/ca.pem`` (a PEM bundle trusted instead of the system CA store; see
    :func:`dominus_local.stores.mail.parse_smtp_url`); default (or ``outbox:``): the outbox only."""
    db_pool_size: int = Field(default=10, ge=1, le=1000)
    """Connections the PostgreSQL pool keeps open (and as many more under load, kept open as well once opened)."""
    open_database_url: str | None = None
    """Scribe's open SQL area (SQLAlchemy async URL); default: SQLite ``<data_dir>/open.db``, or in memory."""
    statement_timeout: float = Field(default=30, ge=0, le=86400)
    """Seconds a statement that callers write or shape may run: open SQL, Scribe's data calls and Smith's raw
    DDL (``DOMINUS_LOCAL_STATEMENT_TIMEOUT``; 0: no limit). Past it the answer is 504 ``upstream_timeout`` with
    ``details.reason = "statement_timeout"``; see :mod:`dominus_local.stores.limits`."""

    # How ``dominus-local serve`` treats slow and numerous clients (see dominus_local.cli.uvicorn_options).
    header_timeout: float = Field(default=10, gt=0, le=3600)
    """Seconds a client has to send a request's line and headers (``DOMINUS_LOCAL_HEADER_TIMEOUT``); then the
    connection gets a 408 ``request_timeout`` envelope and is closed."""
    body_timeout: float = Field(default=60, gt=0, le=86400)
    """Seconds a client has to send a request's whole body once its headers are in
    (``DOMINUS_LOCAL_BODY_TIMEOUT``); then the answer is 408 ``request_timeout`` and the connection is closed.
    Raise it for large uploads over slow links."""
    limit_concurrency: int = Field(default=1000, ge=1, le=1_000_000)
    """Open connections plus running requests ``dominus-local serve`` accepts (``DOMINUS_LOCAL_LIMIT_CONCURRENCY``);
    a request beyond it gets uvicorn's plain 503."""
    max_header_bytes: int = Field(default=64 * 1024, ge=4096, le=16 * MIB)
    """Largest request line plus headers ``dominus-local serve`` reads (``DOMINUS_LOCAL_MAX_HEADER_BYTES``); a
    larger one gets a 431 ``payload_too_large`` envelope and the connection is closed."""

    # Mail that Portal sends itself (spec 8.10): sender, product name, and the pages its links open; each link
    # is the URL with ``token=<token>`` added.
    mail_from: str = "no-reply@dominus.local"
    """The sender of the mails Portal sends itself (password reset, verification, invitation)."""
    product_name: str = "Dominus"
    """The product name those mails show."""
    password_reset_url: str = "http://localhost:8000/reset-password"
    """The page a password-reset mail's link opens (with ``token=<token>`` added)."""
    email_verification_url: str = "http://localhost:8000/verify-email"
    """The page a verification mail's link opens (with ``token=<token>`` added)."""
    invitation_url: str = "http://localhost:8000/accept-invitation"
    """The page an invitation mail's link opens (with ``token=<token>`` added)."""
    require_email_verification: bool = True
    """``False``: Portal registration creates active users and answers ``verification: "not_required"``."""

    # Throttling of Portal's anonymous endpoints and the bcrypt pool (see dominus_local.throttle); a limit of 0
    # switches that limit off.
    rate_limit_address_requests: int = Field(default=120, ge=0)
    """Requests to sign-in, reset, registration and verification endpoints per end-user address and window."""
    rate_limit_address_window: int = Field(default=60, ge=1, le=86400)
    """Seconds of one per-address window."""
    trust_end_user_ip: bool = True
    """Count the ``end_user_ip`` that a service-token caller forwards (its visitor's address) instead of the
    caller's own address."""
    login_failure_limit: int = Field(default=10, ge=0)
    """Failed sign-ins of one account per ``login_failure_window`` before it is locked."""
    login_failure_window: int = Field(default=900, ge=1, le=86400)
    """Seconds over which failed sign-ins of one account are counted."""
    login_lockout_seconds: int = Field(default=60, ge=1, le=86400)
    """First lockout; each further one within a day doubles it, up to ``login_lockout_max_seconds``."""
    login_lockout_max_seconds: int = Field(default=900, ge=1, le=86400)
    """The longest lockout."""
    mail_per_address_limit: int = Field(default=3, ge=0)
    """Password-reset (or verification) mails per address and ``mail_per_address_window``; more are not sent
    (the answer stays ``requested: true``)."""
    mail_per_address_window: int = Field(default=3600, ge=1, le=86400 * 7)
    """Seconds of one ``mail_per_address_limit`` window."""
    bcrypt_workers: int | None = Field(default=None, ge=1, le=256)
    """Threads that run bcrypt; default: the number of CPUs."""
    bcrypt_max_waiting: int = Field(default=32, ge=0, le=100000)
    """Hashes that may wait for a bcrypt thread; beyond that a request is answered 429 at once."""

    # Fault injection at start (spec 7.12); ``POST /api/admin/faults`` replaces them at run time.
    fault_latency_ms: int = Field(default=0, ge=0, le=60000)
    """Injected latency at start, in milliseconds (see ``admin.set_faults``)."""
    fault_error_rate: float = Field(default=0, ge=0, le=1)
    """Fraction of requests answered with ``fault_error_status`` at start."""
    fault_error_status: int = 503
    """Status of the injected failures: 429, 500, 502, 503 or 504."""
    fault_paths: list[str] | None = None
    """Path prefixes the injected faults apply to; ``None``: every path."""
    fault_drop_after_read: bool = False
    """Run the requests ``fault_error_rate`` picks, then drop the connection without an answer."""

    @field_validator("fault_error_status")
    @classmethod
    def _known_fault_status(cls, value: int) -> int:
        if value not in FAULT_ERROR_STATUSES:
            raise ValueError(f"must be one of {', '.join(map(str, FAULT_ERROR_STATUSES))}")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        scheme, sep, rest = value.partition("://")
        if scheme in ("postgresql", "postgres") and sep:
            return f"postgresql+asyncpg://{rest}"  # the driver this server uses for PostgreSQL
        if scheme not in ("sqlite+aiosqlite", "postgresql+asyncpg") or not sep:
            raise ValueError("must be a sqlite+aiosqlite:// or postgresql+asyncpg:// URL")
        return value

    @field_validator("cache_url")
    @classmethod
    def _known_cache(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError("must be a redis:// or rediss:// URL")
        if not parts.hostname:
            raise ValueError("needs a host")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError("has an invalid port") from None
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ValueError("the path must be a database number, e.g. redis://host:6379/0")
        return value

    @field_validator("storage_url")
    @classmethod
    def _known_storage(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if value.startswith("file://"):
            if not value.removeprefix("file://").startswith("/"):
                raise ValueError("a file:// URL needs an absolute path, e.g. file:///var/lib/dominus/blobs")
            return value
        if value.startswith("s3://"):
            from dominus_local.stores.blobs_s3 import parse_s3_url

            parse_s3_url(value)
            return value
        raise ValueError("must be an s3:// or file:// URL")

    @field_validator("mail_url")
    @classmethod
    def _known_mail(cls, value: str | None) -> str | None:
        if value in (None, "", "outbox:"):
            return None
        assert value is not None
        from dominus_local.stores.mail import parse_smtp_url

        parse_smtp_url(value)
        return value

    @field_validator("data_dir", mode="before")
    @classmethod
    def _expand_data_dir(cls, value: Any) -> Any:
        if value in (None, ""):
            return None
        return Path(value).expanduser().resolve()

    @property
    def ephemeral(self) -> bool:
        """True when nothing is kept on disk."""
        return self.data_dir is None

    def resolved_database_url(self) -> str:
        """The database URL in use: the configured one, else SQLite in the data directory or in memory."""
        if self.database_url:
            return self.database_url
        if self.data_dir is None:
            return "sqlite+aiosqlite://"
        return f"sqlite+aiosqlite:///{self.data_dir / 'dominus.db'}"

    def backends(self) -> dict[str, str]:
        """The backend of each store, as ``{"database"|"cache"|"storage"|"mail": "<name>: <where>"}``, with
        every password masked: what ``dominus-local info`` prints."""
        from sqlalchemy.engine import make_url

        db_url = make_url(self.resolved_database_url())
        database = "postgresql" if db_url.get_backend_name() == "postgresql" else "sqlite"
        out = {"database": f"{database}: {db_url.render_as_string(hide_password=True)}"}
        if self.cache_url:
            from dominus_local.stores.kv_redis import redact_redis_url

            out["cache"] = f"redis: {redact_redis_url(self.cache_url)}"
        else:
            out["cache"] = f"{database}: the whisperer_kv table of the database"
        if self.storage_url and self.storage_url.startswith("s3://"):
            from dominus_local.stores.blobs_s3 import parse_s3_url

            loc = parse_s3_url(self.storage_url)
            where = f"bucket {loc.bucket}" + (f", prefix {loc.prefix}" if loc.prefix else "")
            out["storage"] = f"s3: {where}, endpoint {loc.endpoint_url or 'AWS'}, region {loc.region}"
        elif self.storage_url:
            out["storage"] = f"directory: {self.storage_url.removeprefix('file://')}"
        elif self.data_dir is not None:
            out["storage"] = f"directory: {self.data_dir / 'blobs'}"
        else:
            out["storage"] = "memory: blobs end with the process"
        if self.mail_url:
            from dominus_local.stores.mail import parse_smtp_url

            out["mail"] = f"smtp: {parse_smtp_url(self.mail_url).describe()} (every message also kept in the outbox)"
        else:
            out["mail"] = "outbox: messages kept in the database, not delivered"
        return out

    def configured_psk(self) -> str | None:
        """The PSK given by argument or environment, if any (never logged)."""
        return self.psk.get_secret_value() if self.psk is not None else None
