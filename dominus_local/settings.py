"""Configuration of one ``dominus_local`` instance (environment prefix ``DOMINUS_LOCAL_``).

Arguments win over the environment, and the environment over the defaults. A few variables are shared with
the SDK and keep their protocol names: ``DOMINUS_TOKEN`` (the PSK, when ``DOMINUS_LOCAL_PSK`` is not set),
``CB_PROJECT_SLUG`` and ``CB_ENVIRONMENT`` (spec 2.2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
        env_prefix="DOMINUS_LOCAL_", extra="ignore", populate_by_name=True, validate_default=True
    )

    data_dir: Path | None = None
    """Where the database, the signing key, the PSK file and the secret key live; ``None``: in memory."""
    database_url: str | None = None
    """SQLAlchemy async URL; default: SQLite ``<data_dir>/dominus.db``, or in-memory SQLite."""
    psk: SecretStr | None = Field(default=None, validation_alias=AliasChoices("DOMINUS_LOCAL_PSK", "DOMINUS_TOKEN"))
    """The bootstrap client's PSK; when unset, ``<data_dir>/psk`` (created on first start) or a random one."""
    issuer: str = "dominus-local"
    audience: str | None = None
    """When set, every token carries this ``aud`` and only tokens for it are accepted."""
    project_slug: str = Field(
        default="local", validation_alias=AliasChoices("CB_PROJECT_SLUG", "DOMINUS_LOCAL_PROJECT_SLUG")
    )
    environment: str = Field(
        default="development", validation_alias=AliasChoices("CB_ENVIRONMENT", "DOMINUS_LOCAL_ENVIRONMENT")
    )
    access_token_ttl: int = Field(default=900, ge=60, le=86400)
    """Lifetime of service and session access tokens in seconds (spec 5.3: 900)."""
    bcrypt_rounds: int = Field(default=12, ge=4, le=31)
    """bcrypt cost (spec 5.8: 12); test suites lower it to stay fast."""
    metrics_enabled: bool = True
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
    storage_url: str | None = None
    mail_url: str | None = None
    db_pool_size: int = Field(default=10, ge=1, le=1000)
    open_database_url: str | None = None
    """Scribe's open SQL area (SQLAlchemy async URL); default: SQLite ``<data_dir>/open.db``, or in memory."""

    # Mail that Portal sends itself (spec 8.10): sender, product name, and the pages its links open; each link
    # is the URL with ``token=<token>`` added.
    mail_from: str = "no-reply@dominus.local"
    product_name: str = "Dominus"
    password_reset_url: str = "http://localhost:8000/reset-password"
    email_verification_url: str = "http://localhost:8000/verify-email"
    invitation_url: str = "http://localhost:8000/accept-invitation"
    require_email_verification: bool = True
    """``False``: Portal registration creates active users and answers ``verification: "not_required"``."""

    # Fault injection at start (spec 7.12); ``POST /api/admin/faults`` replaces them at run time.
    fault_latency_ms: int = Field(default=0, ge=0, le=60000)
    fault_error_rate: float = Field(default=0, ge=0, le=1)
    fault_error_status: int = 503
    fault_paths: list[str] | None = None
    fault_drop_after_read: bool = False

    @field_validator("fault_error_status")
    @classmethod
    def _known_fault_status(cls, value: int) -> int:
        if value not in FAULT_ERROR_STATUSES:
            raise ValueError(f"must be one of {', '.join(map(str, FAULT_ERROR_STATUSES))}")
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

    def configured_psk(self) -> str | None:
        """The PSK given by argument or environment, if any (never logged)."""
        return self.psk.get_secret_value() if self.psk is not None else None
