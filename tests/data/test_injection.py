"""Hostile identifiers, filter keys, operators and values never run as SQL (spec 8.1, 8.2).

Every hostile request is refused with 400 or 422 and leaves the database unchanged (compared by a checksum
of every user table, Smith's catalogue and the migration history); hostile *values* are stored and matched
as the literal text they are.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from dominus_fastapi import DominusError
from tests.data.conftest import Env, make_orders

LONG = "a" * 10_000
HOSTILE_NAMES = [
    "orders; DROP TABLE orders",
    'orders" --',
    "orders' OR '1'='1",
    "orders/*x*/",
    "orders)",
    "orders\u037e DROP TABLE orders",  # Greek question mark, a look-alike of ';'
    "\u043erders",  # Cyrillic small o
    "\uff4frders",  # fullwidth small o
    "ord\u200bers",  # zero-width space
    "orders\x00",
    "1orders",
    "",
    LONG,
]
HOSTILE_VALUES = [
    "' OR '1'='1",
    "x'; DROP TABLE orders; --",
    '"; DROP TABLE orders; --',
    "admin' --",
    "%",
    "_",
    "/* comment */",
    "\u037e DROP TABLE orders",
    "Robert'); DROP TABLE Students;--",
    LONG,
]


def _seg(value: str) -> str:
    return quote(value, safe="")


def _requests() -> list[tuple[str, str, dict[str, Any] | None]]:
    cases: list[tuple[str, str, dict[str, Any] | None]] = []
    for name in HOSTILE_NAMES:
        if "/" not in name and name:  # a path segment cannot hold a slash, nor be empty: the router sees no route
            cases += [
                ("POST", f"/api/scribe/data/public/{_seg(name)}/query", {}),
                ("POST", f"/api/scribe/data/{_seg(name)}/orders/insert", {"data": {"customer": "x"}}),
                ("GET", f"/api/scribe/data/public/{_seg(name)}/columns", None),
                ("GET", f"/api/smith/migrations/list/{_seg(name)}", None),
            ]
        cases += [
            ("POST", "/api/scribe/data/public/orders/query", {"filters": {name: "x"}}),
            ("POST", "/api/scribe/data/public/orders/query", {"sort_by": name}),
            ("POST", "/api/scribe/data/public/orders/insert", {"data": {"customer": "x", name: "y"}}),
            ("POST", "/api/scribe/data/public/orders/update", {"data": {name: "y"}, "filters": {"customer": "x"}}),
            ("POST", "/api/scribe/data/public/orders/delete", {"filters": {name: "x"}}),
            (
                "POST",
                "/api/smith/schema/create-table",
                {"schema": "public", "table": name, "columns": [{"name": "a", "type": "int"}]},
            ),
            (
                "POST",
                "/api/smith/schema/create-table",
                {"schema": name, "table": "t", "columns": [{"name": "a", "type": "int"}]},
            ),
            (
                "POST",
                "/api/smith/schema/create-table",
                {"schema": "public", "table": "t", "columns": [{"name": name, "type": "int"}]},
            ),
            (
                "POST",
                "/api/smith/schema/add-column",
                {"schema": "public", "table": "orders", "column": name, "type": "text"},
            ),
            (
                "POST",
                "/api/smith/schema/rename-column",
                {"schema": "public", "table": "orders", "old_name": "role", "new_name": name},
            ),
            (
                "POST",
                "/api/smith/schema/create-index",
                {"schema": "public", "table": "orders", "index_name": "i", "columns": [name]},
            ),
            (
                "POST",
                "/api/smith/schema/create-index",
                {"schema": "public", "table": "orders", "index_name": name, "columns": ["role"]},
            ),
            ("DELETE", "/api/smith/schema/drop-table", {"schema": "public", "table": name}),
            ("DELETE", "/api/smith/schema/drop-column", {"schema": "public", "table": "orders", "column": name}),
        ]
    for operator in ({"$ne": "x"}, {">": 1}, {"gt": 0}, {"op": "OR", "value": "1=1"}, {"raw": "1=1"}):
        cases.append(("POST", "/api/scribe/data/public/orders/query", {"filters": {"amount": operator}}))
        cases.append(("POST", "/api/scribe/data/public/orders/delete", {"filters": {"amount": operator}}))
    for order in ("ASC; DROP TABLE orders", "DESC --", "ASC, (SELECT 1)", "random()", LONG):
        cases.append(("POST", "/api/scribe/data/public/orders/query", {"sort_by": "customer", "sort_order": order}))
    for limit in ("10; DROP TABLE orders", "1 OR 1=1", -1, 0, 1001, 10**30, 1.5, True):
        cases.append(("POST", "/api/scribe/data/public/orders/query", {"limit": limit}))
    for offset in ("0; DROP TABLE orders", -1, "1e3"):
        cases.append(("POST", "/api/scribe/data/public/orders/query", {"offset": offset}))
    for kind in ("text); DROP TABLE orders; --", "int4 CHECK (1=1)", "varchar(10) DEFAULT 'x'", "serial; --", LONG):
        cases.append(
            (
                "POST",
                "/api/smith/schema/add-column",
                {"schema": "public", "table": "orders", "column": "c", "type": kind},
            )
        )
    for definition in (
        "(amount > 0); DROP TABLE orders",
        "(amount > 0) OR 1=1 --",
        "(amount > 0) /* x */",
        "((amount > 0)",
        "(amount > (SELECT 1))",
        "(amount > 0)\u037e DROP TABLE orders",
        "(customer = 'x'';DROP TABLE orders;--')) OR (1=1",
    ):
        cases.append(
            (
                "POST",
                "/api/smith/schema/add-constraint",
                {
                    "schema": "public",
                    "table": "orders",
                    "constraint_name": "c1",
                    "constraint_type": "check",
                    "definition": definition,
                },
            )
        )
    cases.append(
        (
            "POST",
            "/api/smith/schema/add-constraint",
            {
                "schema": "public",
                "table": "orders",
                "constraint_name": "fk1",
                "constraint_type": "foreign_key",
                "definition": "(id) REFERENCES public.orders(id); DROP TABLE orders",
            },
        )
    )
    cases.append(("POST", "/api/scribe/data/public/orders/query", {"filters": {"amount": "1; DROP TABLE orders"}}))
    cases.append(("POST", "/api/scribe/data/public/orders/query", {"filters": {"id": "1 OR 1=1"}}))
    cases.append(("POST", "/api/scribe/data/public/orders/insert", {"data": {"customer": "x\x00y"}}))
    cases.append(("POST", "/api/scribe/data/public/orders/insert", {"data": {"customer": "x", "role": LONG}}))
    return cases


async def test_hostile_requests_are_refused_and_change_nothing(env: Env) -> None:
    await make_orders(env.client)
    await env.client.db.bulk_insert("orders", [{"customer": "ann", "role": "admin", "amount": 5}])
    before = await env.checksum()
    for method, path, body in _requests():
        with pytest.raises(DominusError) as caught:
            await env.raw(method, path, body)
        error = caught.value
        assert error.status_code in (400, 422), (method, path[:80], str(body)[:120], error)
        assert error.code in ("validation_failed", "unprocessable"), error.code
    assert await env.checksum() == before


async def test_hostile_values_are_literal(env: Env) -> None:
    db = env.client.db
    await env.client.ddl.create_table(
        "public",
        "notes",
        [
            {"name": "id", "type": "serial", "primary_key": True},
            {"name": "body", "type": "text"},
            {"name": "tag", "type": "text"},
        ],
    )
    rows = [{"body": value, "tag": f"t{i}"} for i, value in enumerate(HOSTILE_VALUES)]
    stored = (await db.bulk_insert("notes", rows))["rows"]
    assert [r["body"] for r in stored] == HOSTILE_VALUES
    for row in rows:
        found = await db.query("notes", filters={"body": row["body"]})
        assert [r["tag"] for r in found["rows"]] == [row["tag"]]
        either = await db.query("notes", filters={"body": [row["body"], "no such text"]})
        assert either["total"] == 1
        assert (await db.query("notes", filters={"tag": row["body"]}))["total"] == 0
    updated = await db.update("notes", {"tag": "' OR 1=1 --"}, filters={"body": "%"})
    assert updated == {"affected_rows": 1}
    assert (await db.query("notes", filters={"tag": "' OR 1=1 --"}))["rows"][0]["body"] == "%"
    assert (await db.query("notes"))["total"] == len(rows)
    # A hostile text default (not a quoted SQL literal, so sent unchanged) is stored as the literal it is.
    await env.client.ddl.add_column("public", "notes", "note", "text", default="'); DROP TABLE notes; --")
    row = await db.insert("notes", {"body": "zed"})
    assert row["note"] == "'); DROP TABLE notes; --"
    assert (await db.query("notes"))["total"] == len(rows) + 1
