"""``db.query(..., model=M)``: rows validated as Pydantic models; the dict form stays the default."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from pydantic import BaseModel, ConfigDict

from dominus_fastapi import ValidationError
from tests.data.conftest import Env, make_orders


class Order(BaseModel):
    id: int
    customer: str
    role: str | None
    amount: Decimal | None
    created_at: datetime


class StrictOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int
    customer: str


class Shouting(BaseModel):
    id: int
    customer: int


async def test_rows_come_back_as_models(env: Env) -> None:
    client = env.client
    await make_orders(client)
    await client.db.insert("orders", {"customer": "ada", "role": "admin", "amount": "12.50"})
    await client.db.insert("orders", {"customer": "bob", "amount": None})

    plain = await client.db.query("orders", sort_by="id")
    assert isinstance(plain["rows"][0], dict) and plain["total"] == 2

    typed = await client.db.query("orders", sort_by="id", model=Order)
    assert typed["total"] == 2
    first, second = typed["rows"]
    assert isinstance(first, Order) and first.customer == "ada" and first.amount == Decimal("12.50")
    assert second.amount is None and isinstance(second.created_at, datetime)
    filtered = await client.db.query("orders", filters={"customer": "bob"}, model=Order)
    assert [order.customer for order in filtered["rows"]] == ["bob"]


async def test_a_row_that_does_not_fit_names_the_row_and_field(env: Env) -> None:
    client = env.client
    await make_orders(client)
    await client.db.insert("orders", {"customer": "ada"})
    await client.db.insert("orders", {"customer": "secret-customer-name"})

    with pytest.raises(ValidationError) as caught:
        await client.db.query("orders", sort_by="id", model=Shouting)
    error = caught.value
    assert error.details["field"] == "rows[0].customer" and error.details["model"] == "Shouting"
    assert "Row 0 does not fit Shouting: 'customer'" in error.message
    assert "ada" not in str(error)

    with pytest.raises(ValidationError) as extra:
        await client.db.query("orders", sort_by="id", model=StrictOrder)
    assert extra.value.details["field"].startswith("rows[0].")
    assert "secret-customer-name" not in str(extra.value)
