"""Configuration (spec 2.2, 2.3): precedence, host resolution, proxies, secrets kept out of reprs."""

from __future__ import annotations

import httpx
import pydantic
import pytest

from dominus_fastapi import Dominus, DominusSettings
from dominus_fastapi.core.settings import PRODUCTION_BASE_URL, PRODUCTION_GATEWAY_URL

PSK = "0123456789abcdef" * 4


def test_defaults() -> None:
    s = DominusSettings()
    assert (s.timeout, s.connect_timeout, s.transfer_timeout) == (30, 10, 120)
    assert (s.max_retries, s.cold_start_budget) == (2, 30)
    assert s.token is None and s.project_slug is None and s.environment is None


def test_environment_is_read_when_created_and_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOMINUS_TOKEN", PSK)
    monkeypatch.setenv("DOMINUS_TIMEOUT", "12.5")
    monkeypatch.setenv("DOMINUS_MAX_RETRIES", "5")
    monkeypatch.setenv("DOMINUS_COLD_START_BUDGET", "3")
    monkeypatch.setenv("CB_PROJECT_SLUG", "shop")
    monkeypatch.setenv("CB_ENVIRONMENT", "staging")
    s = DominusSettings()
    assert s.psk == PSK and s.timeout == 12.5 and s.max_retries == 5 and s.cold_start_budget == 3
    assert (s.project_slug, s.environment) == ("shop", "staging")
    overridden = DominusSettings(token="arg-psk-" + "x" * 32, timeout=4, max_retries=0)
    assert overridden.psk == "arg-psk-" + "x" * 32 and overridden.timeout == 4 and overridden.max_retries == 0

    client = Dominus(base_url="http://127.0.0.1:1", timeout=7, max_retries=1)
    assert (client.settings.timeout, client.settings.max_retries, client.settings.psk) == (7, 1, PSK)
    explicit = Dominus(token="t" * 40, settings=DominusSettings(base_url="http://127.0.0.1:2", timeout=3))
    assert explicit.settings.psk == "t" * 40 and explicit.settings.timeout == 3


def test_bare_names_in_the_environment_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN", "not-ours")
    monkeypatch.setenv("TIMEOUT", "1")
    s = DominusSettings()
    assert s.token is None and s.timeout == 30


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOMINUS_MAX_RETRIES", "-1")
    with pytest.raises(pydantic.ValidationError, match="DOMINUS_MAX_RETRIES"):
        DominusSettings()
    with pytest.raises(ValueError, match="timeout"):
        Dominus(base_url="http://127.0.0.1:1", timeout=0)
    with pytest.raises(ValueError, match="max_retries"):
        Dominus(base_url="http://127.0.0.1:1", max_retries=-2)


def test_psk_never_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOMINUS_TOKEN", PSK)
    s = DominusSettings()
    client = Dominus(base_url="http://127.0.0.1:1")
    for text in (repr(s), str(s), repr(client), str(client), repr(s.model_dump())):
        assert PSK not in text


@pytest.mark.parametrize(
    ("base", "gateway", "expected"),
    [
        (None, None, (PRODUCTION_BASE_URL, PRODUCTION_GATEWAY_URL)),
        ("http://127.0.0.1:8000/", None, ("http://127.0.0.1:8000", "http://127.0.0.1:8000")),
        (
            "https://api.example.com/base",
            "https://gw.example.com/",
            ("https://api.example.com/base", "https://gw.example.com"),
        ),
    ],
)
def test_host_resolution(base: str | None, gateway: str | None, expected: tuple[str, str]) -> None:
    hosts = DominusSettings(base_url=base, gateway_url=gateway).resolve_hosts()
    assert (hosts.base_url, hosts.gateway_url) == expected
    assert not hosts.embedded


def test_host_resolution_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOMINUS_BASE_URL", "http://10.0.0.1:9000")
    client = Dominus()
    assert client._transport.hosts.gateway_url == "http://10.0.0.1:9000"  # never the production gateway
    monkeypatch.setenv("DOMINUS_GATEWAY_URL", "http://10.0.0.2:9000")
    assert Dominus()._transport.hosts.gateway_url == "http://10.0.0.2:9000"
    assert Dominus(base_url="http://10.0.0.3:1")._transport.hosts.base_url == "http://10.0.0.3:1"


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="no base URL"):
        Dominus(gateway_url="https://gw.example.com")
    with pytest.raises(ValueError, match="embedded"):
        Dominus(base_url="embedded:", gateway_url="https://gw.example.com")
    with pytest.raises(ValueError, match="not an http"):
        Dominus(base_url="ftp://example.com")
    with pytest.raises(ValueError, match="embedded"):
        Dominus(base_url="embedded:relative/dir")
    with pytest.raises(ValueError, match="http_client"):
        Dominus(base_url="embedded:", http_client=httpx.AsyncClient())


def test_embedded_forms() -> None:
    assert DominusSettings(base_url="embedded:").resolve_hosts().data_dir is None
    hosts = DominusSettings(base_url="embedded:///srv/data/", gateway_url="embedded:///srv/data").resolve_hosts()
    assert hosts.embedded and hosts.data_dir == "/srv/data"


def test_proxies_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://generic-proxy:3128")
    monkeypatch.setenv("DOMINUS_HTTPS_PROXY", "http://dominus-proxy:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://ignored:1")
    monkeypatch.setenv("NO_PROXY", "localhost,.internal.example,10.1.2.3")
    s = DominusSettings()
    assert (s.http_proxy, s.https_proxy) == ("http://generic-proxy:3128", "http://dominus-proxy:3128")
    client = Dominus(base_url="https://api.example.com")
    http = client._transport.http

    def proxied(url: str) -> bool:
        return http._transport_for_url(httpx.URL(url)) is not http._transport

    assert proxied("https://api.example.com/api/health")
    assert proxied("http://plain.example.com/")
    assert not proxied("http://localhost:8000/")
    assert not proxied("https://svc.internal.example/")
    assert not proxied("http://10.1.2.3/")


def test_no_proxy_star_disables_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    monkeypatch.setenv("NO_PROXY", "*")
    http = Dominus(base_url="http://api.example.com")._transport.http
    assert http._transport_for_url(httpx.URL("http://api.example.com/")) is http._transport


def test_pool_limits_and_http1() -> None:
    http = Dominus(base_url="http://api.example.com")._transport.http
    pools = [shard._pool for shard in http._transport.shards]  # type: ignore[attr-defined]
    assert sum(pool._max_connections for pool in pools) == 100
    assert sum(pool._max_keepalive_connections for pool in pools) == 100
    assert all(pool._http1 and not pool._http2 for pool in pools)
