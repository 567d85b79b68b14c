"""The client end to end: embedded and network modes, user views, the default client, one pool per client."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import dominus_fastapi
from dominus_fastapi import (
    AuthorizationError,
    Dominus,
    DominusConnectionError,
    DominusUserView,
    NotFoundError,
    ValidationError,
)
from dominus_fastapi.core.namespaces.secrets import SecretsNamespace
from tests.conftest import InProcessServer, make_fast, parse_minted
from tests.servers import LocalServer


async def secret_flow(d: Dominus) -> None:
    """Done-when 2 of the foundation: upsert, get, list without value, delete, NotFoundError."""
    created = await d.upsert("API_KEY", "v1", comment="c")
    assert created["operation"] == "created" and created["key"] == "API_KEY" and "value" not in created
    assert await d.get("API_KEY") == "v1"
    listed = await d.secrets.list(prefix="API_")
    assert [(s["key"], s["comment"]) for s in listed] == [("API_KEY", "c")]
    assert all("value" not in s for s in listed)
    assert await d.secrets.delete("API_KEY") == {"deleted": True, "key": "API_KEY"}
    with pytest.raises(NotFoundError) as info:
        await d.get("API_KEY")
    assert info.value.status_code == 404
    assert info.value.endpoint == "/api/warden/secrets"
    assert info.value.code == "not_found"


async def test_embedded_secret_flow() -> None:
    async with Dominus(base_url="embedded:") as d:
        await secret_flow(d)
        assert (await d.upsert("API_KEY", {"nested": [1, 2]}))["operation"] == "created"
        assert (await d.upsert("API_KEY", {"nested": [3]}))["operation"] == "updated"
        assert await d.get("API_KEY") == {"nested": [3]}
    assert d.closed
    with pytest.raises(DominusConnectionError):
        await d.get("API_KEY")


async def test_embedded_instances_are_private_and_end_with_the_client() -> None:
    async with Dominus(base_url="embedded:") as first, Dominus(base_url="embedded:") as second:
        await first.upsert("ONLY_HERE", 1)
        with pytest.raises(NotFoundError):
            await second.get("ONLY_HERE")
    async with Dominus(base_url="embedded:") as third:
        assert await third.secrets.list() == []


async def test_embedded_data_dir_is_shared_and_persistent(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path / 'data'}"
    async with Dominus(base_url=url) as a, Dominus(base_url=url) as b:
        await a.upsert("SHARED", "yes")
        assert await b.get("SHARED") == "yes"
    psk_file = tmp_path / "data" / "psk"
    assert stat.S_IMODE(psk_file.stat().st_mode) == 0o600
    assert len(psk_file.read_text().strip()) == 64
    async with Dominus(base_url=url) as again:
        assert await again.get("SHARED") == "yes"
    async with Dominus(base_url=url, token=psk_file.read_text().strip()) as explicit:
        assert await explicit.get("SHARED") == "yes"


async def test_embedded_dropped_connection_is_a_connection_error(embedded: Dominus) -> None:
    await embedded.upsert("DROP", "v1")
    await embedded.request(
        "POST", "/api/admin/faults", body={"error_rate": 1, "drop_after_read": True, "paths": ["/api/warden/"]}
    )
    with pytest.raises(DominusConnectionError) as info:
        await embedded.get("DROP", max_retries=1)
    assert info.value.status_code is None and "RemoteProtocolError" in info.value.message
    # The unsafe update was retried with its key: the retry was a replay, so it was applied once.
    with pytest.raises(DominusConnectionError):
        await embedded.upsert("DROP", "v2", idempotency_key="drop-1", max_retries=1)
    await embedded.request("POST", "/api/admin/faults", body={})
    assert (await embedded.secrets.list(prefix="DROP"))[0]["version"] == 2


@pytest.fixture(scope="module")
def network_server() -> Iterator[LocalServer]:
    """One ``dominus-local serve`` subprocess on a loopback port for this module's network tests."""
    with LocalServer() as server:
        yield server


@pytest.mark.slow
async def test_network_secret_flow_from_the_environment(
    network_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = network_server
    assert server.psk is not None
    monkeypatch.setenv("DOMINUS_BASE_URL", server.url)
    monkeypatch.setenv("DOMINUS_TOKEN", server.psk)
    async with Dominus() as d:
        assert d._transport.hosts.gateway_url == server.url
        await secret_flow(d)
        assert d._transport.protocol == "dominus-2"
        assert server.psk not in repr(d)


@pytest.mark.slow
async def test_one_pool_per_client_after_many_calls_and_failures(
    network_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[httpx.AsyncClient] = []
    original_init = httpx.AsyncClient.__init__

    def counting_init(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> None:
        created.append(self)
        original_init(self, *args, **kwargs)

    server = network_server
    minted_before = parse_minted(httpx.get(f"{server.url}/metrics").text)
    monkeypatch.setattr(httpx.AsyncClient, "__init__", counting_init)
    d = Dominus(base_url=server.url, token=server.psk)
    make_fast(d)
    assert len(created) == 1
    pool = d._transport.http
    try:
        await d.upsert("POOLED", 0)
        await asyncio.gather(*(d.get("POOLED") for _ in range(250)))
        for _ in range(250):
            await d.get("POOLED")
        after_calls = d._transport.pool_connections()
        assert 1 <= after_calls <= 100  # the pool's limit, far below 500 calls

        for _ in range(50):
            with pytest.raises(NotFoundError):
                await d.get("MISSING")
        await d.request("POST", "/api/admin/faults", body={"error_rate": 1, "error_status": 503})
        for _ in range(3):
            with pytest.raises(Exception):
                await d.get("POOLED", max_retries=0)
        await d.request("POST", "/api/admin/faults", body={})
        assert d._transport.pool_connections() <= after_calls
        assert d._transport.http is pool
        assert len(created) == 1  # no client was created per request

        metrics = (await pool.get(f"{server.url}/metrics")).text
        assert parse_minted(metrics) - minted_before == 1  # one service token for all 500+ calls
    finally:
        await d.aclose()
    assert d._transport.pool_connections() == 0
    assert pool.is_closed


async def test_user_view_sends_the_user_token_and_shares_the_pool(
    local_server: InProcessServer, local_client: Dominus
) -> None:
    session = await local_client.request(
        "POST", "/api/portal/auth/login-client", body={"psk": local_server.psk}, replay=False
    )
    view = local_client.as_user(session["access_token"])
    assert isinstance(view, DominusUserView)
    assert view._transport is local_client._transport
    assert isinstance(view.secrets, SecretsNamespace) and view.secrets is view.secrets
    assert view.db_secure is view.secure
    with pytest.raises(AuthorizationError) as info:
        await view.secrets.list()  # a session token on a data endpoint
    assert info.value.code == "forbidden"
    # Calls that keep the service token (Portal's pre-session methods) still work through the view.
    listed = await view.request(
        "POST", "/api/warden/secrets", body={"action": "list"}, safe=True, keep_service_token=True
    )
    assert listed == {"secrets": []}
    # Endpoints with auth none are unchanged.
    assert (await view.health.check())["status"] == "healthy"
    assert session["access_token"] not in repr(view)
    assert not local_client.closed


async def test_per_call_options_and_validation_before_sending(
    local_server: InProcessServer, local_client: Dominus
) -> None:
    with pytest.raises(ValidationError) as info:
        await local_client.get("bad key with spaces")
    assert info.value.details["field"] == "key"
    with pytest.raises(ValidationError) as key_info:
        await local_client.upsert("K", 1, idempotency_key="x" * 256)
    assert key_info.value.details["field"] == "idempotency_key"
    with pytest.raises(ValidationError):
        await local_client.upsert("K", float("nan"))
    assert await local_server.tokens_minted() == 0  # nothing was sent
    assert await local_client.secrets.list(timeout=5, max_retries=0) == []


async def test_default_client_is_lazy_and_configured_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "dominus" not in vars(dominus_fastapi)
    monkeypatch.setenv("DOMINUS_BASE_URL", "embedded:")
    monkeypatch.setattr(dominus_fastapi, "_default_client", None)
    from dominus_fastapi import dominus

    try:
        assert isinstance(dominus, Dominus)
        assert dominus_fastapi.dominus is dominus
        assert dominus._transport.hosts.embedded
        await dominus.upsert("DEFAULT", 1)
        assert await dominus.get("DEFAULT") == 1
    finally:
        await dominus.aclose()


async def test_default_client_reads_the_environment_at_first_use_and_reopens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Imported before the environment is set (the reference README's order), it still uses that environment;
    after ``aclose()`` the next call opens it again, and its ``repr`` never does."""
    monkeypatch.delenv("DOMINUS_BASE_URL", raising=False)
    monkeypatch.setattr(dominus_fastapi, "_default_client", None)
    from dominus_fastapi import dominus

    assert repr(dominus) == "Dominus(<configured from the environment at first use>)" and not dominus.closed
    monkeypatch.setenv("DOMINUS_BASE_URL", "embedded:")
    try:
        assert dominus.settings.base_url == "embedded:" and dominus._transport.hosts.embedded
        await dominus.upsert("FIRST_USE", 1)
        await dominus.aclose()
        assert dominus.closed and "closed: opens again on use" in repr(dominus)
        assert dominus.closed  # repr did not reopen it
        assert not dominus.remembers_login
        with pytest.raises(NotFoundError):  # reopened: a new in-memory instance
            await dominus.get("FIRST_USE")
        assert not dominus.closed
    finally:
        await dominus.aclose()


def test_public_names_are_exported() -> None:
    for name in dominus_fastapi.__all__:
        assert getattr(dominus_fastapi, name) is not None
    assert dominus_fastapi.__version__
    assert "dominus" in dominus_fastapi.__all__


def test_core_never_imports_the_web_framework() -> None:
    core = Path(dominus_fastapi.__file__).parent / "core"
    for path in core.rglob("*.py"):
        text = path.read_text()
        assert "import fastapi" not in text and "from fastapi" not in text, path
        assert "import starlette" not in text and "from starlette" not in text, path


async def test_repr_and_close_are_safe(psk: str) -> None:
    d = Dominus(base_url="http://127.0.0.1:9", token=psk)
    assert psk not in repr(d) and psk not in repr(d.settings) and psk not in str(d.settings.model_dump())
    await d.aclose()
    await d.aclose()
    assert d.closed
    assert os.environ.get("DOMINUS_TOKEN") is None


def test_every_namespace_is_a_cached_property() -> None:
    from dominus_fastapi.core.namespaces import (
        admin,
        auth,
        courier,
        db,
        ddl,
        files,
        health,
        logs,
        portal,
        redis,
        secrets,
    )

    client = Dominus(base_url="http://127.0.0.1:9")
    expected = {
        "secrets": secrets.SecretsNamespace,
        "db": db.DbNamespace,
        "secure": db.SecureNamespace,
        "db_secure": db.SecureNamespace,
        "open": db.OpenNamespace,
        "redis": redis.RedisNamespace,
        "files": files.FilesNamespace,
        "auth": auth.AuthNamespace,
        "ddl": ddl.DdlNamespace,
        "logs": logs.LogsNamespace,
        "portal": portal.PortalNamespace,
        "courier": courier.CourierNamespace,
        "health": health.HealthNamespace,
        "admin": admin.AdminNamespace,
    }
    for name, cls in expected.items():
        namespace = getattr(client, name)
        assert type(namespace) is cls, name
        assert getattr(client, name) is namespace, name
        assert namespace._client is client
    assert client.db_secure is client.secure


@pytest.mark.slow
async def test_network_drop_after_send_is_applied_once(network_server: LocalServer) -> None:
    d = Dominus(base_url=network_server.url, token=network_server.psk)
    make_fast(d)
    try:
        await d.upsert("NET_DROP", "v1")
        before = d._transport.pool_connections()
        await d.request(
            "POST", "/api/admin/faults", body={"error_rate": 1, "drop_after_read": True, "paths": ["/api/warden/"]}
        )
        with pytest.raises(DominusConnectionError) as info:
            await d.upsert("NET_DROP", "v2", idempotency_key="net-drop-1")  # every attempt is cut off
        assert info.value.status_code is None
        await d.request("POST", "/api/admin/faults", body={})
        assert (await d.secrets.list(prefix="NET_DROP"))[0]["version"] == 2  # three attempts, one write
        assert await d.get("NET_DROP") == "v2"
        assert d._transport.pool_connections() <= max(before, 1)  # broken connections left the pool
    finally:
        await d.aclose()
