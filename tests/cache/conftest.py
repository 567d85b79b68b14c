"""Fixtures of the store-level cache tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dominus_local.stores.database import Database


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    """A fresh in-memory database with every table of the server."""
    database = Database("sqlite+aiosqlite://")
    await database.create_all()
    try:
        yield database
    finally:
        await database.dispose()
