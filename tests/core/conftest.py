"""Client-core tests read no configuration from the machine they run on."""

from __future__ import annotations

import pytest

_ENV = (
    "DOMINUS_TOKEN",
    "DOMINUS_BASE_URL",
    "DOMINUS_GATEWAY_URL",
    "DOMINUS_HTTP_PROXY",
    "DOMINUS_HTTPS_PROXY",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "DOMINUS_TIMEOUT",
    "DOMINUS_CONNECT_TIMEOUT",
    "DOMINUS_TRANSFER_TIMEOUT",
    "DOMINUS_MAX_RETRIES",
    "DOMINUS_COLD_START_BUDGET",
    "CB_PROJECT_SLUG",
    "CB_ENVIRONMENT",
    "DOMINUS_LOCAL_PSK",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
