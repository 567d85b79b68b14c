"""Errors the application raises itself, and the uniform 422 option of ``install_exception_handlers``.

An endpoint's own ``raise NotFoundError("no such note", code="note_not_found")`` answers 404 with its code and
a request id (the caller's ``X-Request-Id`` when it is a plain token, else a fresh one) in the body and in the
``X-Request-Id`` header. ``validation_errors="dominus"`` gives request-validation errors the same shape with
FastAPI's field list in ``errors``, without the inputs.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse

from dominus_fastapi import (
    ConflictError,
    NotFoundError,
    ValidationError,
    install_exception_handlers,
    request_id_of,
    setup_dominus,
)
from dominus_fastapi.handlers import DominusHTTPException
from dominus_fastapi.testing import APP_ORIGIN


class NoteIn(BaseModel):
    title: str = Field(min_length=1, max_length=20)
    password: str
    priority: int = 0


def build(validation_errors: Any = "fastapi", *, with_setup: bool = False) -> FastAPI:
    app = FastAPI()
    if with_setup:
        setup_dominus(app, prefix=None, validation_errors=validation_errors)
    else:
        install_exception_handlers(app, validation_errors=validation_errors)

    @app.get("/notes/{note_id}")
    async def note(note_id: int) -> dict[str, Any]:
        raise NotFoundError("no such note", code="note_not_found")

    @app.post("/notes")
    async def add(note: NoteIn) -> dict[str, Any]:
        if note.title == "taken":
            raise ConflictError("a note with this title exists", code="note_exists")
        if note.title == "bad":
            raise ValidationError("title may not be 'bad'", details={"field": "title"})
        return {"title": note.title}

    @app.get("/refused")
    async def refused() -> None:
        raise DominusHTTPException(403, "not yours", "not_owner")

    return app


async def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP_ORIGIN)


async def test_app_raised_errors_answer_with_their_code_and_a_request_id(caplog: pytest.LogCaptureFixture) -> None:
    async with await _client(build()) as http:
        caplog.set_level(logging.INFO, logger="dominus_fastapi")
        missing = await http.get("/notes/7", headers={"X-Request-Id": "req-abc.123"})
        assert missing.status_code == 404
        assert missing.json() == {"detail": "no such note", "code": "note_not_found", "request_id": "req-abc.123"}
        assert missing.headers["x-request-id"] == "req-abc.123"
        assert any("req-abc.123" in r.getMessage() and "NotFoundError" in r.getMessage() for r in caplog.records)

        fresh = await http.get("/notes/7")
        request_id = fresh.json()["request_id"]
        assert request_id and len(request_id) == 32 and fresh.headers["x-request-id"] == request_id
        assert (await http.get("/notes/7")).json()["request_id"] != request_id

        conflict = await http.post("/notes", json={"title": "taken", "password": "pw"})
        assert (conflict.status_code, conflict.json()["code"]) == (409, "note_exists")
        invalid = await http.post("/notes", json={"title": "bad", "password": "pw"})
        assert (invalid.status_code, invalid.json()["code"]) == (400, "validation_failed")

        refused = await http.get("/refused", headers={"X-Request-Id": "r1"})
        assert refused.json() == {"detail": "not yours", "code": "not_owner", "request_id": "r1"}
        assert refused.headers["x-request-id"] == "r1"


@pytest.mark.parametrize(
    "hostile", ["a" * 129, "two words", "<script>", "id\u00e9", "semi;colon", ""], ids=lambda v: repr(v)[:12]
)
async def test_an_odd_incoming_request_id_is_replaced(hostile: str) -> None:
    async with await _client(build()) as http:
        answer = await http.get("/notes/1", headers={"X-Request-Id": hostile.encode("utf-8")})
    request_id = answer.json()["request_id"]
    assert request_id != hostile and len(request_id) == 32
    assert answer.headers["x-request-id"] == request_id


async def test_request_id_of_is_stable_within_a_request() -> None:
    app = FastAPI()

    @app.get("/id")
    async def show(request: Request) -> dict[str, str]:
        return {"first": request_id_of(request), "second": request_id_of(request)}

    async with await _client(app) as http:
        body = (await http.get("/id")).json()
    assert body["first"] == body["second"]


async def test_fastapi_shape_stays_the_default() -> None:
    async with await _client(build()) as http:
        answer = await http.post("/notes", json={"title": "", "password": "hunter2-secret"})
    assert answer.status_code == 422
    assert set(answer.json()) == {"detail"} and isinstance(answer.json()["detail"], list)
    assert "hunter2-secret" not in answer.text


@pytest.mark.parametrize("with_setup", [False, True], ids=["install_exception_handlers", "setup_dominus"])
async def test_uniform_validation_errors_keep_the_field_list(with_setup: bool) -> None:
    async with await _client(build("dominus", with_setup=with_setup)) as http:
        answer = await http.post(
            "/notes", json={"title": "", "password": "hunter2-secret", "priority": "high"},
            headers={"X-Request-Id": "req-422"},
        )
        assert answer.status_code == 422
        body = answer.json()
        assert set(body) == {"detail", "code", "request_id", "errors"}
        assert body["code"] == "validation_failed" and body["request_id"] == "req-422"
        assert body["detail"] == "Invalid request: body.title: String should have at least 1 character (and 1 more)"
        assert [(e["loc"], e["type"]) for e in body["errors"]] == [
            (["body", "title"], "string_too_short"),
            (["body", "priority"], "int_parsing"),
        ]
        assert all("input" not in e for e in body["errors"])
        assert "hunter2-secret" not in answer.text and answer.headers["x-request-id"] == "req-422"

        not_json = await http.post("/notes", content=b'{"title": NaN}', headers={"Content-Type": "application/json"})
        assert not_json.status_code == 422 and not_json.json()["code"] == "validation_failed"
        path = await http.get("/notes/seven")
        assert path.json()["detail"].startswith("Invalid request: path.note_id: ")


def test_an_unknown_validation_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="validation_errors"):
        install_exception_handlers(FastAPI(), validation_errors="pretty")  # type: ignore[arg-type]


async def test_an_app_handler_for_validation_is_kept() -> None:
    app = FastAPI()

    async def own(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"mine": True}, status_code=422)

    app.add_exception_handler(RequestValidationError, own)
    install_exception_handlers(app, validation_errors="dominus")

    @app.get("/n/{n}")
    async def n(n: int) -> int:
        return n

    async with await _client(app) as http:
        assert (await http.get("/n/x")).json() == {"mine": True}


async def test_request_ids_stay_per_request_when_the_app_has_lifespan_state() -> None:
    """``LifespanManager`` hands every request the lifespan state itself: the id must not land there."""
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    from asgi_lifespan import LifespanManager

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"shared": True}

    app = build()
    app.router.lifespan_context = lifespan
    async with LifespanManager(app) as manager, httpx.AsyncClient(
        transport=httpx.ASGITransport(app=manager.app), base_url=APP_ORIGIN
    ) as http:
        first = (await http.get("/notes/1")).json()["request_id"]
        second = (await http.get("/notes/1")).json()["request_id"]
        given = (await http.get("/notes/1", headers={"X-Request-Id": "mine"})).json()["request_id"]
    assert first != second and given == "mine"


async def test_openapi_documents_the_uniform_422_it_answers() -> None:
    app = FastAPI()
    install_exception_handlers(app, validation_errors="dominus")

    @app.get("/n/{n}")
    async def n(n: int) -> int:
        return n

    schema = app.openapi()
    answer = schema["paths"]["/n/{n}"]["get"]["responses"]["422"]
    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ValidationErrorResponse"}
    schemas = schema["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    documented = schemas["ValidationErrorResponse"]
    async with await _client(app) as http:
        sent = (await http.get("/n/x")).json()
    assert set(documented["required"]) <= set(sent) and set(sent) <= set(documented["properties"])
    assert app.openapi() is schema  # built once


def test_openapi_keeps_fastapis_422_by_default() -> None:
    app = FastAPI()
    install_exception_handlers(app)

    @app.get("/n/{n}")
    async def n(n: int) -> int:
        return n

    answer = app.openapi()["paths"]["/n/{n}"]["get"]["responses"]["422"]
    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/HTTPValidationError"}
