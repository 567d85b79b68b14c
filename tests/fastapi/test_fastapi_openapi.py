"""The portal router's OpenAPI is complete: named routes, response models and documented errors."""

from __future__ import annotations

from typing import Any

import httpx

from dominus_fastapi import get_portal_router

ERROR_SCHEMA = "#/components/schemas/ErrorResponse"


def _schema_ref(response: dict[str, Any], media_type: str = "application/json") -> str | None:
    schema = response.get("content", {}).get(media_type, {}).get("schema", {})
    ref = schema.get("$ref")
    return None if ref is None else str(ref)


async def test_every_portal_route_documents_its_answers(dominus_app_client: httpx.AsyncClient) -> None:
    spec = (await dominus_app_client.get("/openapi.json")).json()
    operations = [
        (path, method, operation)
        for path, methods in spec["paths"].items()
        if path.startswith("/auth/")
        for method, operation in methods.items()
    ]
    assert len(operations) == 23
    for path, method, operation in operations:
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        success = [status for status in responses if status.startswith("2")]
        assert len(success) == 1, where
        if success[0] == "200":
            ref = _schema_ref(responses["200"])
            assert ref and ref.startswith("#/components/schemas/"), where
            assert ref.rsplit("/", 1)[1] in spec["components"]["schemas"], where
        else:
            assert success[0] == "204" and path == "/auth/logout", where
        errors = [status for status in responses if status[0] in "45"]
        assert {"502", "503", "504"} <= set(errors), where
        assert any(status.startswith("4") for status in errors), where
        for status in errors:
            if status == "422" and "ErrorResponse" not in str(responses[status]):
                continue  # FastAPI's own request-validation answer
            assert _schema_ref(responses[status]) == ERROR_SCHEMA, f"{where} {status}"
        assert operation.get("summary"), where


async def test_user_routes_declare_the_bearer_scheme(dominus_app_client: httpx.AsyncClient) -> None:
    spec = (await dominus_app_client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    (name, scheme), *_ = schemes.items()
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["password"]["tokenUrl"] == "/auth/token"
    me = spec["paths"]["/auth/me"]["get"]
    assert me["security"] == [{name: []}, {"DominusSessionCookie": []}]  # Bearer, or the session cookie
    assert "401" in me["responses"]
    login = spec["paths"]["/auth/login"]["post"]
    assert set(login["requestBody"]["content"]) == {"application/json", "application/x-www-form-urlencoded"}
    assert "303" in login["responses"]


def test_routes_are_named_and_the_prefix_is_configurable() -> None:
    router = get_portal_router("/account", include_invitations=False)
    names = {route.name: route.path for route in router.routes}  # type: ignore[attr-defined]
    assert names["dominus_login"] == "/account/login"
    assert names["dominus_token"] == "/account/token"
    assert names["dominus_me"] == "/account/me"
    assert "dominus_register" not in names
    assert len(names) == 19
