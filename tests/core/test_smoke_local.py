from __future__ import annotations

import pytest

from dominus_fastapi import Dominus, NotFoundError


async def test_secret_flow(local_client: Dominus) -> None:
    d = local_client
    rec = await d.upsert("API_KEY", "v1", comment="c")
    assert rec["operation"] == "created"
    assert await d.get("API_KEY") == "v1"
    listed = await d.secrets.list(prefix="API_")
    assert [s["key"] for s in listed] == ["API_KEY"]
    assert "value" not in listed[0]
    await d.secrets.delete("API_KEY")
    with pytest.raises(NotFoundError) as info:
        await d.get("API_KEY")
    assert info.value.status_code == 404
    assert info.value.endpoint == "/api/warden/secrets"
