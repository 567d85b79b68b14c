"""The open SQL area: a separate database with ``$n`` parameters (spec 7.3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dominus_fastapi import Dominus, ServiceError, ValidationError
from tests.conftest import make_fast
from tests.data.conftest import Env, make_orders


async def test_execute_with_dollar_parameters(env: Env) -> None:
    sql = env.client.open
    created = await sql.execute("CREATE TABLE visits (id INTEGER PRIMARY KEY, page TEXT, hits INTEGER)")
    assert created == {"columns": [], "rows": [], "row_count": 0}
    inserted = await sql.execute("INSERT INTO visits (page, hits) VALUES ($1, $2), ($3, $2)", ["/a", 3, "/b"])
    assert inserted["row_count"] == 2
    hostile = "x'); DROP TABLE visits; --"
    await sql.execute("INSERT INTO visits (page, hits) VALUES ($1, 0)", [hostile])
    found = await sql.execute("SELECT page, hits FROM visits WHERE hits = $1 ORDER BY page", [3])
    assert found == {
        "columns": ["page", "hits"],
        "rows": [{"page": "/a", "hits": 3}, {"page": "/b", "hits": 3}],
        "row_count": 2,
    }
    literal = await sql.execute("SELECT count(*) AS n FROM visits WHERE page = $1", [hostile])
    assert literal["rows"] == [{"n": 1}]
    updated = await sql.execute("UPDATE visits SET hits = hits + 1 WHERE page LIKE $1", ["/%"])
    assert updated["row_count"] == 2


async def test_refusals(env: Env) -> None:
    sql = env.client.open
    for statement, params in (
        ("SELECT 1; SELECT 2", None),
        ("ATTACH DATABASE ':memory:' AS other", None),
        ("PRAGMA table_info(visits)", None),
        ("SELECT $2", [1]),
        ("SELECT ?", [1]),
        ("SELECT :name", [1]),
    ):
        with pytest.raises(ValidationError) as caught:
            await sql.execute(statement, params)
        assert caught.value.status_code == 400
    with pytest.raises(ValidationError) as refused:
        await sql.execute("SELECT * FROM no_such_table")
    assert refused.value.status_code == 422
    with pytest.raises(ValidationError):
        await sql.execute("   ")


async def test_the_open_area_cannot_reach_scribe_tables(env: Env) -> None:
    await make_orders(env.client)
    with pytest.raises(ValidationError):
        await env.client.open.execute("SELECT * FROM orders")
    with pytest.raises(ValidationError):
        await env.client.open.execute('SELECT * FROM userdata."public.orders"')
    with pytest.raises(ValidationError):
        await env.client.open.execute("SELECT * FROM guardian_clients")


async def test_dsn(env: Env, tmp_path: Path) -> None:
    with pytest.raises(ServiceError) as caught:
        await env.client.open.dsn()
    assert caught.value.status_code == 501
    persistent = Dominus(base_url=f"embedded://{tmp_path}")
    make_fast(persistent)
    try:
        dsn = await persistent.open.dsn()
        assert dsn == f"sqlite:///{tmp_path / 'open.db'}"
        await persistent.open.execute("CREATE TABLE kept (v TEXT)")
        await persistent.open.execute("INSERT INTO kept VALUES ($1)", ["yes"])
    finally:
        await persistent.aclose()
    import sqlite3

    with sqlite3.connect(tmp_path / "open.db") as plain:
        assert plain.execute("SELECT v FROM kept").fetchall() == [("yes",)]
