"""Client configuration (spec 2.2, 2.3) and every tunable of the client core, in one place.

Arguments win over the environment, the environment wins over the defaults. The environment is read when a
:class:`DominusSettings` (and so a client) is created, never at import time.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Final, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

try:
    VERSION: Final[str] = metadata.version("dominus-fastapi")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0.1.0"  # type: ignore[misc]

USER_AGENT: Final = f"dominus-fastapi/{VERSION} python/{platform.python_version()}"

# --- Hosts (spec 2.2) -------------------------------------------------------------------------------------
PRODUCTION_BASE_URL: Final = "https://dominus-orchestrator-production-775398158805.us-east4.run.app"
PRODUCTION_GATEWAY_URL: Final = "https://dominus-gateway-production-775398158805.us-east4.run.app"
EMBEDDED_PREFIX: Final = "embedded:"

# --- Timeouts in seconds (spec 6.6) -----------------------------------------------------------------------
DEFAULT_TIMEOUT: Final = 30.0  # DOMINUS_TIMEOUT
DEFAULT_CONNECT_TIMEOUT: Final = 10.0  # DOMINUS_CONNECT_TIMEOUT
DEFAULT_TRANSFER_TIMEOUT: Final = 120.0  # DOMINUS_TRANSFER_TIMEOUT
MINT_TIMEOUT: Final = 30.0
JWKS_TIMEOUT: Final = 10.0
HEALTH_TIMEOUT: Final = 15.0

# --- Retries, breaker, cold start (spec 6.2, 6.4, 6.5) -----------------------------------------------------
DEFAULT_MAX_RETRIES: Final = 2  # DOMINUS_MAX_RETRIES
DEFAULT_COLD_START_BUDGET: Final = 30.0  # DOMINUS_COLD_START_BUDGET
BACKOFF_BASE: Final = 0.5
BACKOFF_MAX: Final = 8.0
BACKOFF_JITTER: Final = (0.5, 1.5)
RETRY_AFTER_CAP: Final = 60.0
BREAKER_FAILURE_THRESHOLD: Final = 5
BREAKER_RECOVERY_SECONDS: Final = 30.0

# --- Tokens and keys (spec 5.6, 5.10) ----------------------------------------------------------------------
TOKEN_REFRESH_MARGIN: Final = 60.0
JWKS_TTL: Final = 3600.0
JWKS_REFETCH_INTERVAL: Final = 30.0

# --- Connection pool: many coroutines share one client ------------------------------------------------------
POOL_MAX_CONNECTIONS: Final = 100
POOL_MAX_KEEPALIVE: Final = 100  # as many as may be open: a lower limit closes and reopens them under load
POOL_KEEPALIVE_EXPIRY: Final = 4.0
"""Seconds an idle pooled connection is kept: below uvicorn's default idle timeout (5 s), the shortest among
common servers, so that the client drops an idle connection before a server can close it under a request just
sent on it (a request the client could not safely send again, such as a login, would fail)."""


class DominusSettings(BaseSettings):
    """Settings of one client, read from arguments, then the environment, then the defaults.

    ``token`` is the project's PSK (``DOMINUS_TOKEN``); it is a :class:`~pydantic.SecretStr` and never shows
    in ``repr``. Hosts are resolved by :meth:`resolve_hosts` following spec 2.2.
    """

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    token: SecretStr | None = Field(default=None, validation_alias=AliasChoices("DOMINUS_TOKEN"))
    base_url: str | None = Field(default=None, validation_alias=AliasChoices("DOMINUS_BASE_URL"))
    gateway_url: str | None = Field(default=None, validation_alias=AliasChoices("DOMINUS_GATEWAY_URL"))
    http_proxy: str | None = Field(default=None, validation_alias=AliasChoices("DOMINUS_HTTP_PROXY", "HTTP_PROXY"))
    https_proxy: str | None = Field(default=None, validation_alias=AliasChoices("DOMINUS_HTTPS_PROXY", "HTTPS_PROXY"))
    no_proxy: str | None = Field(default=None, validation_alias=AliasChoices("NO_PROXY"))
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0, validation_alias=AliasChoices("DOMINUS_TIMEOUT"))
    connect_timeout: float = Field(
        default=DEFAULT_CONNECT_TIMEOUT,
        gt=0,
        validation_alias=AliasChoices("DOMINUS_CONNECT_TIMEOUT"),
    )
    transfer_timeout: float = Field(
        default=DEFAULT_TRANSFER_TIMEOUT,
        gt=0,
        validation_alias=AliasChoices("DOMINUS_TRANSFER_TIMEOUT"),
    )
    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, ge=0, validation_alias=AliasChoices("DOMINUS_MAX_RETRIES"))
    cold_start_budget: float = Field(
        default=DEFAULT_COLD_START_BUDGET,
        ge=0,
        validation_alias=AliasChoices("DOMINUS_COLD_START_BUDGET"),
    )
    project_slug: str | None = Field(default=None, validation_alias=AliasChoices("CB_PROJECT_SLUG"))
    environment: str | None = Field(default=None, validation_alias=AliasChoices("CB_ENVIRONMENT"))

    def __init__(self, **values: Any) -> None:
        # Arguments are given by field name; the environment is read only under the documented names
        # (pydantic's populate_by_name would also read e.g. a bare TIMEOUT variable).
        by_alias: dict[str, Any] = {}
        for name, value in values.items():
            info = type(self).model_fields.get(name)
            alias = info.validation_alias if info is not None else None
            if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
                name = alias.choices[0]
            by_alias[name] = value
        super().__init__(**by_alias)

    @field_validator("base_url", "gateway_url", "http_proxy", "https_proxy", "no_proxy", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    @field_validator("token", mode="before")
    @classmethod
    def _blank_token_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @property
    def psk(self) -> str | None:
        """The configured PSK in clear, or ``None``."""
        return self.token.get_secret_value() if self.token is not None else None

    def resolve_hosts(self) -> ResolvedHosts:
        """Work out both hosts (spec 2.2 rule, spec 2.3 for ``embedded:``).

        Raises ``ValueError`` for a gateway without a base URL, for an embedded base URL with a gateway
        that names anything else, and for malformed URLs.
        """
        base = self.base_url
        gateway = self.gateway_url
        if base is None and gateway is None:
            return ResolvedHosts(PRODUCTION_BASE_URL, PRODUCTION_GATEWAY_URL, defaulted=True)
        if base is None:
            raise ValueError(
                "DOMINUS_GATEWAY_URL (gateway_url) is set but no base URL is: set DOMINUS_BASE_URL (base_url) too"
            )
        if base.startswith(EMBEDDED_PREFIX):
            data_dir = _embedded_data_dir(base)
            if gateway is not None and gateway.rstrip("/") != base.rstrip("/"):
                raise ValueError(
                    "in embedded mode both hosts are the embedded instance: leave DOMINUS_GATEWAY_URL "
                    "(gateway_url) unset or equal to the base URL"
                )
            return ResolvedHosts(base, base, embedded=True, data_dir=data_dir)
        base = _check_url(base, "base_url")
        gateway = _check_url(gateway, "gateway_url") if gateway is not None else base
        return ResolvedHosts(base, gateway)


@dataclass(frozen=True)
class ResolvedHosts:
    """The two hosts of a client. ``data_dir`` is ``None`` for the ephemeral ``embedded:`` form."""

    base_url: str
    gateway_url: str
    embedded: bool = False
    data_dir: str | None = None
    defaulted: bool = False
    """Neither host was configured: the client uses the hosted platform (spec 2.2)."""

    def describe(self, host: Literal["orchestrator", "gateway"] = "orchestrator") -> str:
        """Where a request to ``host`` went, for error messages: its URL, and when it is the default, why.

        ``server: http://127.0.0.1:8001``, ``gateway: ...``, ``the embedded server (embedded:)``, or
        ``DOMINUS_BASE_URL is not set: using the hosted platform at https://...``. A ``user:password@`` part
        of a URL is shown as ``***@``.
        """
        url = _without_userinfo(self.gateway_url if host == "gateway" else self.base_url)
        if self.embedded:
            return f"the embedded server ({url})"
        if self.defaulted:
            what = "the hosted platform's gateway" if host == "gateway" else "the hosted platform"
            return f"DOMINUS_BASE_URL is not set: using {what} at {url}"
        return f"{'gateway' if host == 'gateway' else 'server'}: {url}"


def _embedded_data_dir(url: str) -> str | None:
    rest = url[len(EMBEDDED_PREFIX) :]
    if rest in ("", "//", "///"):
        return None
    if not rest.startswith("///"):
        raise ValueError(
            f"base_url {url!r}: use 'embedded:' (in memory) or 'embedded:///absolute/path' (a data directory)"
        )
    path = rest[2:].rstrip("/") or "/"
    return path


def _without_userinfo(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if sep and "@" in authority:
        return f"{scheme}://***@{authority.rsplit('@', 1)[1]}{slash}{path}"
    return url


def _check_url(url: str, field: str) -> str:
    url = url.rstrip("/")
    scheme, sep, authority = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not authority or authority.startswith("/"):
        raise ValueError(f"{field} {url!r} is not an http(s) URL such as 'https://host:port'")
    return url
