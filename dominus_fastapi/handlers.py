"""Exception handlers: every SDK error raised in an endpoint becomes one HTTP answer with one body shape.

``install_exception_handlers(app)`` maps the error tree of the client core (spec 4.2) onto the statuses an
application should show its own callers:

====================================  ======  =========================================================
SDK error                             Status  Notes
====================================  ======  =========================================================
``ValidationError``                   400     413 and 422 are kept when the backend answered with them
``AuthenticationError``               401     ``WWW-Authenticate: Bearer``
``AuthorizationError``                403
``SecureTableError``                  403     code ``secure_table_reason_required``
``NotFoundError``                     404
``ConflictError``                     409
``RateLimitError``                    429     ``Retry-After`` when the backend gave one
``ServiceError``                      502     503 (with ``Retry-After``) when the backend was unavailable
``DominusTimeoutError``               504
``CircuitOpenError``                  503     ``Retry-After``: the breaker's remaining open time
``DominusConnectionError``            502
``DominusError`` (anything else)      502
====================================  ======  =========================================================

The body is always ``{"detail": str, "code": str, "request_id": str | None}``. For 4xx answers ``detail`` is
the backend's short sentence (which the protocol guarantees free of secrets); 5xx answers carry a fixed
sentence instead, so that no upstream internals reach the caller. ``request_id`` is the SDK call's request
id (the backend logs it); for an error the application raised itself (``raise NotFoundError("no such note",
code="note_not_found")``, or a :class:`DominusHTTPException`) it is the incoming ``X-Request-Id`` when that is
a plain token of at most 128 characters, else a fresh id; either way the answer also carries it in its own
``X-Request-Id`` header and the log line names it, so a user's report can be matched to the log.

Request validation errors (FastAPI's ``RequestValidationError``) keep FastAPI's 422 body, ``{"detail": [{type,
loc, msg, ctx?}, ...]}``, without each error's ``input``: bodies carry passwords and tokens, which must never
come back in an answer, and an input such as ``NaN`` or ``1e999`` (which Python's JSON parser accepts) cannot
even be written as JSON, so FastAPI's own handler fails with a 500. Any other non-finite number left in an
error (in ``ctx``) is written as a string. With ``install_exception_handlers(app, validation_errors="dominus")``
(or ``setup_dominus(app, validation_errors="dominus")``) the 422 takes the shape of every other error instead,
``{"detail": "Invalid request: body.title: Field required", "code": "validation_failed", "request_id": ...,
"errors": [{type, loc, msg, ctx?}, ...]}``, keeping the same field list in ``errors``, and the app's OpenAPI
document gives its 422 answers the :class:`ValidationErrorResponse` schema instead of FastAPI's.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import Mapping
from typing import Any, Final, Literal

from fastapi import FastAPI, HTTPException
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse

from dominus_fastapi.core.errors import (
    AuthenticationError,
    AuthorizationError,
    CircuitOpenError,
    ConflictError,
    DominusConnectionError,
    DominusError,
    DominusTimeoutError,
    NotFoundError,
    RateLimitError,
    SecureTableError,
    ServiceError,
    ValidationError,
)

__all__ = [
    "ERROR_RESPONSES",
    "DominusHTTPException",
    "ErrorResponse",
    "ValidationErrorResponse",
    "error_response",
    "install_exception_handlers",
    "request_id_of",
]

logger = logging.getLogger("dominus_fastapi")


class ErrorResponse(BaseModel):
    """The one error body shape of every Dominus-aware route (for OpenAPI)."""

    detail: str
    code: str
    request_id: str | None = None


class ValidationErrorResponse(ErrorResponse):
    """The 422 body with ``validation_errors="dominus"``: the common shape plus FastAPI's field list."""

    errors: list[dict[str, Any]]


class DominusHTTPException(HTTPException):
    """An ``HTTPException`` that carries a machine ``code``; raised by the providers, guards and routers.

    Without :func:`install_exception_handlers` FastAPI's own handler still answers it (``{"detail"}`` and the
    headers); with them the body also carries ``code`` and ``request_id``.
    """

    def __init__(self, status_code: int, detail: str, code: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status_code=status_code, detail=detail, headers=dict(headers) if headers else None)
        self.code = code


# (class, status, default code, fixed 5xx sentence) — most specific classes first.
_MAPPING: Final[tuple[tuple[type[DominusError], int, str, str | None], ...]] = (
    (SecureTableError, 403, "secure_table_reason_required", None),
    (AuthorizationError, 403, "forbidden", None),
    (AuthenticationError, 401, "not_authenticated", None),
    (NotFoundError, 404, "not_found", None),
    (ValidationError, 400, "validation_failed", None),
    (ConflictError, 409, "conflict", None),
    (RateLimitError, 429, "rate_limited", None),
    (CircuitOpenError, 503, "service_unavailable", "The backend service is temporarily unavailable"),
    (DominusTimeoutError, 504, "upstream_timeout", "The backend service did not answer in time"),
    (DominusConnectionError, 502, "upstream_error", "The backend service could not be reached"),
    (ServiceError, 502, "upstream_error", "The backend service failed"),
    (DominusError, 502, "upstream_error", "The backend service failed"),
)

_KEPT_VALIDATION_STATUSES: Final = frozenset({400, 413, 422})


def _retry_after(exc: DominusError) -> str | None:
    value = getattr(exc, "retry_after", None)
    if value is None:
        return None
    return str(max(0, math.ceil(float(value))))


def error_response(exc: DominusError, request_id: str | None = None) -> JSONResponse:
    """The HTTP answer for one SDK error (the table of :mod:`dominus_fastapi.handlers`)."""
    cls, status, default_code, fixed_detail = next(entry for entry in _MAPPING if isinstance(exc, entry[0]))
    headers: dict[str, str] = {}
    if cls is ValidationError and exc.status_code is not None and exc.status_code in _KEPT_VALIDATION_STATUSES:
        status = exc.status_code
    if cls is ServiceError and exc.status_code == 503:
        status, default_code = 503, "service_unavailable"
        fixed_detail = "The backend service is temporarily unavailable"
    # Upstream 5xx codes (``internal_error`` ...) describe the backend, not this application's answer.
    code = default_code if status >= 500 else (exc.code or default_code)
    if status in (429, 503):
        retry_after = _retry_after(exc)
        if retry_after is not None:
            headers["Retry-After"] = retry_after
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    detail = fixed_detail if status >= 500 and fixed_detail else (exc.message or "Request failed")
    body = ErrorResponse(detail=detail, code=code, request_id=exc.request_id or request_id)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


_REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_REQUEST_ID_KEY: Final = "dominus.request_id"
"""Where the id is kept: in the ASGI scope, which is the request's own (``request.state`` can be the lifespan
state itself under servers that do not copy it per request)."""


def request_id_of(request: Request) -> str:
    """The id of this request for error answers and logs: the incoming ``X-Request-Id`` when it is a plain
    token (letters, digits, ``._:-``, at most 128 characters), else a new random id, the same for the whole
    request.

    Args:
        request: the incoming request.

    Returns:
        The request id.
    """
    known = request.scope.get(_REQUEST_ID_KEY)
    if isinstance(known, str):
        return known
    incoming = request.headers.get("x-request-id")
    value = incoming if incoming is not None and _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    request.scope[_REQUEST_ID_KEY] = value
    return value


def _raised_by_app(exc: DominusError) -> bool:
    """An error the application raised itself, not one of an SDK call (those carry their endpoint and request id)."""
    return exc.request_id is None and exc.endpoint is None


async def _dominus_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DominusError)
    own = _raised_by_app(exc)
    request_id = request_id_of(request) if own or exc.request_id is None else None
    response = error_response(exc, request_id)
    if request_id is not None:
        response.headers["X-Request-Id"] = request_id
    if response.status_code >= 500:
        facts = {"status": exc.status_code, "code": exc.code, "request id": exc.request_id, "endpoint": exc.endpoint}
        known = ", ".join(f"{name} {value}" for name, value in facts.items() if value is not None)
        logger.warning("Dominus call failed: %s: %s%s", type(exc).__name__, exc.message, f" ({known})" if known else "")
    elif own:
        logger.info(
            "Application error answered: %s (status %s, code %s, request id %s, path %s)",
            type(exc).__name__,
            response.status_code,
            exc.code,
            request_id,
            request.url.path,
        )
    return response


async def _http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DominusHTTPException)
    request_id = request_id_of(request)
    body = ErrorResponse(detail=str(exc.detail), code=exc.code, request_id=request_id)
    headers = {**(exc.headers or {}), "X-Request-Id": request_id}
    return JSONResponse(body.model_dump(), status_code=exc.status_code, headers=headers)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float (``nan``, ``inf``) replaced by its text, at any depth."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _field_errors(exc: RequestValidationError) -> list[Any]:
    errors = [{key: item for key, item in error.items() if key != "input"} for error in exc.errors()]
    cleaned: list[Any] = _finite(jsonable_encoder(errors))
    return cleaned


async def _request_validation_handler(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 answer without the inputs (see the module docstring)."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": _field_errors(exc)}, status_code=422)


def _validation_sentence(errors: list[Any]) -> str:
    """``Invalid request: body.title: Field required (and 2 more)`` from the first error of the list."""
    if not errors:
        return "Invalid request"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"Invalid request: {where}: {first.get('msg', 'invalid')}{more}"


async def _uniform_validation_handler(request: Request, exc: Exception) -> JSONResponse:
    """The 422 answer in the common error shape, with the field list in ``errors`` (``validation_errors="dominus"``)."""
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(exc)
    request_id = request_id_of(request)
    body = ValidationErrorResponse(
        detail=_validation_sentence(errors), code="validation_failed", request_id=request_id, errors=errors
    )
    return JSONResponse(body.model_dump(), status_code=422, headers={"X-Request-Id": request_id})


def install_exception_handlers(app: FastAPI, *, validation_errors: Literal["fastapi", "dominus"] = "fastapi") -> None:
    """Register the handlers for the whole SDK error tree, :class:`DominusHTTPException` and request validation.

    Every SDK error raised in an endpoint becomes one answer, ``{"detail", "code", "request_id"}``, with the
    status that the table of :mod:`dominus_fastapi.handlers` gives its class (``NotFoundError`` 404,
    ``ServiceError`` 502, ...).

    Handlers are looked up along the exception's MRO, so one handler on ``DominusError`` covers every
    subclass, and the application's own handlers for other exceptions stay untouched. The request-validation
    handler replaces only FastAPI's default one: a handler the application registered itself is kept.

    Args:
        app: the application.
        validation_errors: the shape of FastAPI's 422 request-validation answers: ``"fastapi"`` keeps
            FastAPI's ``{"detail": [...]}`` (without the inputs); ``"dominus"`` gives them the common
            ``{detail, code, request_id}`` shape with the field list in ``errors`` (see the module docstring).

    Raises:
        ValueError: ``validation_errors`` is neither ``"fastapi"`` nor ``"dominus"``.
    """
    if validation_errors not in ("fastapi", "dominus"):
        raise ValueError(f"validation_errors must be 'fastapi' or 'dominus', not {validation_errors!r}")
    app.add_exception_handler(DominusError, _dominus_error_handler)
    app.add_exception_handler(DominusHTTPException, _http_exception_handler)
    if app.exception_handlers.get(RequestValidationError, request_validation_exception_handler) is (
        request_validation_exception_handler
    ) or app.exception_handlers.get(RequestValidationError) in (
        _request_validation_handler,
        _uniform_validation_handler,
    ):
        handler = _uniform_validation_handler if validation_errors == "dominus" else _request_validation_handler
        app.add_exception_handler(RequestValidationError, handler)
        if validation_errors == "dominus":
            _document_uniform_validation(app)


_VALIDATION_OPENAPI = "__dominus_validation_openapi__"
_FASTAPI_422_REF = "#/components/schemas/HTTPValidationError"


def _document_uniform_validation(app: FastAPI) -> None:
    """Make the OpenAPI document say what ``validation_errors="dominus"`` answers: every 422 that FastAPI
    documents with its ``HTTPValidationError`` refers to :class:`ValidationErrorResponse` instead, and FastAPI's
    two schemas go when nothing else refers to them."""
    original = app.openapi
    if getattr(original, _VALIDATION_OPENAPI, False):
        return

    def openapi() -> dict[str, Any]:
        already = app.openapi_schema is not None
        schema = original()
        if not already:
            _replace_validation_schema(schema)
        return schema

    setattr(openapi, _VALIDATION_OPENAPI, True)
    app.openapi = openapi  # type: ignore[method-assign]


def _replace_validation_schema(schema: dict[str, Any]) -> None:
    ours = "#/components/schemas/ValidationErrorResponse"
    replaced = False
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            answer: dict[str, Any] = (
                operation.get("responses", {}).get("422") if isinstance(operation, dict) else None
            ) or {}
            content = answer.get("content", {}).get("application/json", {})
            if content.get("schema", {}).get("$ref") == _FASTAPI_422_REF:
                content["schema"] = {"$ref": ours}
                answer["description"] = "Invalid request: the fields and the reasons are in `errors`"
                replaced = True
    if not replaced:
        return
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    template = "#/components/schemas/{model}"
    schemas.setdefault("ValidationErrorResponse", ValidationErrorResponse.model_json_schema(ref_template=template))
    # FastAPI's schemas stay while anything else (an app's own 422 model, say) still refers to them.
    for name in ("HTTPValidationError", "ValidationError"):
        kept = schemas.pop(name, None)
        if kept is not None and template.format(model=name) in _refs(schema):
            schemas[name] = kept


def _refs(node: Any) -> set[str]:
    """Every ``$ref`` in ``node``."""
    found: set[str] = set()
    pending = [node]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                found.add(ref)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


def _documented(status: int, description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    400: _documented(400, "Invalid input: the field and the reason are in `detail`"),
    401: _documented(401, "Not signed in, or the session has ended"),
    403: _documented(403, "Signed in but not allowed, or a cross-site request was refused"),
    404: _documented(404, "Not found"),
    409: _documented(409, "Conflict with existing data"),
    422: _documented(422, "Well-formed input that cannot be applied"),
    429: _documented(429, "Too many requests (see `Retry-After`)"),
    502: _documented(502, "The backend service failed"),
    503: _documented(503, "The backend service is temporarily unavailable (see `Retry-After`)"),
    504: _documented(504, "The backend service did not answer in time"),
}
"""OpenAPI ``responses`` entries for the error statuses, keyed by status; routers pick the ones they use."""
