"""The differences of docs/migration.md that the README scripts do not show on their own."""

from __future__ import annotations

from pathlib import Path

import pytest

import dominus
import dominus_fastapi
from dominus_fastapi import Dominus, DominusSettings, SecureTableError, ValidationError

ROOT = Path(__file__).resolve().parents[2]

NOT_CARRIED_OVER = [
    "hash_password",
    "verify_password",
    "hash_psk",
    "verify_psk",
    "generate_psk_local",
    "hash_token",
    "generate_token",
    "dominus_cache",
    "DominusCache",
    "CircuitBreaker",
    "orchestrator_circuit_breaker",
    "exponential_backoff_with_jitter",
    "verify_jwt_locally",
    "is_jwt_valid",
    "DominusResponse",
    "AiNamespace",
    "OracleNamespace",
]
"""Names the reference SDK's package exported that this one does not (protocol §9, docs/migration.md)."""

FLAT_HELPERS = ["list_tables", "query_table", "insert_row", "update_rows", "delete_rows", "add_user", "ai", "oracle"]


async def test_limits_are_checked_before_sending(embedded: Dominus) -> None:
    refusals = [
        (embedded.db.query("orders", limit=5000), "limit"),
        (embedded.redis.mget([f"k{i}" for i in range(101)]), "keys"),
        (embedded.files.upload(b"x", "x.txt", compliance=True), "actor"),
        (embedded.logs.batch([{"level": "info", "message": "m", "data": {}, "context": {}}]), "events[0].data"),
    ]
    for call, field in refusals:
        with pytest.raises(ValidationError) as refused:
            await call
        assert refused.value.status_code is None
        assert str(refused.value.details.get("field", "")).startswith(field), refused.value.details
    with pytest.raises(SecureTableError) as secure:
        await embedded.secure.query("patients", None)  # type: ignore[arg-type]
    assert secure.value.status_code is None


async def test_open_execute_binds_its_parameters(embedded: Dominus) -> None:
    await embedded.open.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)")
    await embedded.open.execute("INSERT INTO people (name) VALUES ($1)", ["Robert'); DROP TABLE people;--"])
    result = await embedded.open.execute("SELECT name FROM people WHERE id = $1", [1])
    assert result["rows"] == [{"name": "Robert'); DROP TABLE people;--"}]


def test_the_base_url_is_the_gateway_too() -> None:
    hosts = DominusSettings(base_url="https://orchestrator.example.com").resolve_hosts()
    assert hosts.gateway_url == "https://orchestrator.example.com"


def test_what_is_not_carried_over_is_absent() -> None:
    for name in NOT_CARRIED_OVER:
        assert not hasattr(dominus, name), name
    for name in FLAT_HELPERS:
        assert not hasattr(dominus.dominus, name), name
    with pytest.raises(TypeError):
        dominus.dominus("secrets.get", key="DB_URL")  # type: ignore[operator]
    # The SDK's encrypted cache is internal, not a public utility.
    assert "EncryptedTTLCache" not in dominus_fastapi.__all__ and not hasattr(dominus_fastapi, "EncryptedTTLCache")


def test_the_dominus_package_ships_in_the_wheel() -> None:
    config = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'packages = ["dominus_fastapi", "dominus_local", "dominus"]' in config  # the wheel
    assert 'packages = ["dominus_fastapi", "dominus_local", "dominus", "example_app"]' in config  # mypy
    assert (ROOT / "dominus" / "py.typed").exists()
    page = (ROOT / "docs" / "migration.md").read_text(encoding="utf-8")
    assert "never both" in page
