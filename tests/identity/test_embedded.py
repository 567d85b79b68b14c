"""The README forms through the SDK's ``embedded:`` mode: an in-process server chosen by the base URL."""

from __future__ import annotations

import pytest

from dominus_fastapi.core.client import Dominus


async def test_readme_forms_in_embedded_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOMINUS_LOCAL_BCRYPT_ROUNDS", "4")
    async with Dominus(base_url="embedded:") as client:
        auth = client.auth
        await auth.create_scope("reports.view", "View reports")
        role = await auth.add_role("analyst", scope_slugs=["reports.view"])
        user = await auth.add_user("eve", "password-123", email="eve@example.com", role_id=role["id"])
        assert [u["username"] for u in (await auth.list_users())["items"]] == ["eve"]
        assert "admin" in {c["slug"] for c in (await auth.list_tenant_categories())["items"]}
        minted = await auth.mint_jwt(user["id"], expires_in=300, scopes=["reports.view"])
        claims = await auth.validate_jwt(minted["access_token"])
        assert claims["sub"] == user["id"] and claims["roles"] == ["analyst"]
        assert claims["scopes"] == ["reports.view"] and claims["exp"] - claims["iat"] == 300
        assert (await auth.get_jwks())["keys"][0]["kid"] == (await client.get_public_key())["keys"][0]["kid"]
