"""Errors as a browser should see them: HTML pages for the pages, the library's JSON for everything else.

``setup_dominus`` installs handlers that answer every SDK error and every guard refusal with the JSON body
``{detail, code, request_id}``. The JSON routes (``/api``, ``/auth``) keep exactly that. A page request (an
HTML ``Accept`` on any other path) gets the same status as an HTML page instead, and a 401 (anonymous, or a
session that ended elsewhere) becomes a redirect to the sign-in page that also clears the dead cookies.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final
from urllib.parse import quote

from fastapi import FastAPI, HTTPException
from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

__all__ = ["NON_PAGE_PREFIXES", "AppError", "install_page_errors", "is_page_request"]

NON_PAGE_PREFIXES: Final = ("/api/", "/auth/", "/docs", "/redoc", "/openapi.json", "/static/")
"""Paths whose errors stay JSON whatever the caller accepts."""

Handler = Callable[[Request, Exception], Response | Awaitable[Response]]
ErrorContext = Callable[[Request, int, str | None, str], Awaitable[dict[str, Any]]]
"""Builds an error page's template context from the request, the status, the machine code and the detail."""


class AppError(HTTPException):
    """An error of the app itself, with a machine ``code`` like the library's errors."""

    def __init__(self, status_code: int, detail: str, code: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status_code=status_code, detail=detail, headers=dict(headers) if headers else None)
        self.code = code


def is_page_request(request: Request) -> bool:
    """Whether the request comes from a browser page (HTML accepted) on one of the app's page paths."""
    path = request.url.path
    if any(path == prefix.rstrip("/") or path.startswith(prefix) for prefix in NON_PAGE_PREFIXES):
        return False
    return "text/html" in request.headers.get("accept", "")


async def _app_error_json(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    body = {"detail": str(exc.detail), "code": exc.code, "request_id": request.headers.get("x-request-id")}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def _detail(response: Response) -> tuple[str | None, str]:
    """The machine code and the sentence of a JSON error answer."""
    try:
        body = json.loads(bytes(response.body))
    except ValueError:
        return None, "The request failed"
    if not isinstance(body, dict):
        return None, "The request failed"
    detail = body.get("detail")
    code = str(body["code"]) if body.get("code") else None
    if isinstance(detail, list):  # FastAPI's request validation errors
        return code, "; ".join(f"{'.'.join(map(str, e.get('loc', ())[1:]))}: {e.get('msg')}" for e in detail)
    return code, str(detail or "The request failed")


def install_page_errors(
    app: FastAPI,
    templates: Jinja2Templates,
    *,
    login_path: str,
    cookie_names: tuple[str, ...],
    error_context: ErrorContext | None = None,
) -> None:
    """Wrap the app's installed error handlers so that page requests get HTML (see the module docstring).

    ``error_context`` gives the error page its context (the signed-in layout, plain words); without it the
    page shows the status and the detail. Call it after ``setup_dominus(app)``: it wraps the handlers
    registered by then.
    """

    def page_aware(handler: Handler) -> Handler:
        async def handle(request: Request, exc: Exception) -> Response:
            answer = handler(request, exc)
            response: Response = await answer if inspect.isawaitable(answer) else answer
            if not is_page_request(request) or response.status_code < 400:
                return response
            if response.status_code == 401:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                redirect = RedirectResponse(f"{login_path}?next={quote(target, safe='/')}", status_code=303)
                if request.cookies.keys() & set(cookie_names):
                    for name in cookie_names:
                        redirect.delete_cookie(name, path="/", httponly=True, samesite="lax")
                return redirect
            code, detail = _detail(response)
            context: dict[str, Any] = {"status": response.status_code, "detail": detail}
            if error_context is not None:
                context = await error_context(request, response.status_code, code, detail)
            page: Response = templates.TemplateResponse(
                request, "error.html", context, status_code=response.status_code
            )
            for name in ("retry-after", "www-authenticate"):
                if name in response.headers:
                    page.headers[name] = response.headers[name]
            return page

        return handle

    app.add_exception_handler(AppError, _app_error_json)
    for key, handler in list(app.exception_handlers.items()):
        if isinstance(key, type) and issubclass(key, Exception):
            app.exception_handlers[key] = page_aware(handler)
