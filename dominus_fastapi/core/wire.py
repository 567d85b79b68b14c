"""The wire format of protocol ``dominus-2`` (spec sections 3 and 4.1).

Shared by the SDK and by ``dominus_local``: base64 JSON framing of bodies, the response envelope and the
table of machine codes. This module has no dependencies beyond the standard library so that the server can
import it without pulling in the client.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Final

PROTOCOL: Final = "dominus-2"
CONTENT_TYPE: Final = "text/plain"
MAX_JSON_DEPTH: Final = 64
"""Deepest nesting a server accepts (the top-level object is level 1)."""

EMPTY_BODY: Final = b"e30="
"""``base64("{}")``: what the SDK sends when a body has no fields."""

CODE_STATUS: Final[dict[str, int]] = {
    "invalid_body": 400,
    "validation_failed": 400,
    "missing_token": 401,
    "invalid_token": 401,
    "token_expired": 401,
    "session_revoked": 401,
    "refresh_token_invalid": 401,
    "refresh_token_expired": 401,
    "invalid_credentials": 401,
    "forbidden": 403,
    "account_inactive": 403,
    "secure_table_reason_required": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "request_timeout": 408,
    "conflict": 409,
    "retention_active": 409,
    "idempotency_in_progress": 409,
    "payload_too_large": 413,
    "unprocessable": 422,
    "idempotency_key_reused": 422,
    "rate_limited": 429,
    "internal_error": 500,
    "not_implemented": 501,
    "upstream_error": 502,
    "cold_start": 503,
    "service_unavailable": 503,
    "upstream_timeout": 504,
}
"""Every machine code of spec 4.1 with its HTTP status."""

STATUS_CODE: Final[dict[int, str]] = {
    400: "validation_failed",
    401: "missing_token",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    422: "unprocessable",
    429: "rate_limited",
    500: "internal_error",
    501: "not_implemented",
    502: "upstream_error",
    503: "service_unavailable",
    504: "upstream_timeout",
}
"""The default machine code for a status, used when only a status is known (e.g. injected faults)."""

_B64_CHARS = re.compile(rb"^[A-Za-z0-9+/]*={0,2}$")
_WHITESPACE = re.compile(rb"[ \t\r\n\f\v]+")


class FramingError(ValueError):
    """A body is not base64 of a UTF-8 JSON object (maps to 400 ``invalid_body``)."""


def dumps(obj: Any) -> str:
    """Compact JSON text (UTF-8 kept as is)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace: the form hashed for idempotency fingerprints (spec 6.3)."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def fingerprint(method: str, path: str, body: Any) -> str:
    """SHA-256 over method, path and the canonical JSON of the body."""
    digest = hashlib.sha256()
    digest.update(method.upper().encode())
    digest.update(b"\n")
    digest.update(path.encode())
    digest.update(b"\n")
    digest.update(canonical_json(body))
    return digest.hexdigest()


def encode_json(obj: Any) -> bytes:
    """Frame any JSON value: ``base64(utf8(json))``."""
    return base64.b64encode(dumps(obj).encode())


def encode_body(fields: Mapping[str, Any] | None) -> bytes:
    """Frame a request body; ``None`` or no fields gives ``e30=``."""
    if not fields:
        return EMPTY_BODY
    return encode_json(dict(fields))


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values() if isinstance(child, dict | list))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if isinstance(child, dict | list))
    return False


def decode_json_text(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON text, refusing nesting deeper than ``max_depth`` without recursing into it."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise FramingError("body is not valid JSON") from exc
    if text.count("[") + text.count("{") > max_depth and _depth_exceeds(value, max_depth):
        raise FramingError(f"JSON is nested deeper than {max_depth} levels")
    return value


def decode_body(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """Decode a request body (spec 3.1): tolerant of whitespace and missing padding, strict otherwise.

    An empty body is ``{}``. Raises :class:`FramingError` for anything that is not base64 of a UTF-8 JSON
    object.
    """
    compact = _WHITESPACE.sub(b"", raw)
    if not compact:
        return {}
    compact = compact.rstrip(b"=")
    if not _B64_CHARS.match(compact) or len(compact) % 4 == 1:
        raise FramingError("body is not base64 text")
    compact += b"=" * (-len(compact) % 4)
    try:
        decoded = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FramingError("body is not base64 text") from exc
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FramingError("body is not UTF-8 text") from exc
    value = decode_json_text(text, max_depth=max_depth)
    if not isinstance(value, dict):
        raise FramingError("body must be a JSON object")
    return value


def success_envelope(data: Any) -> dict[str, Any]:
    return {"success": True, "data": data}


def error_envelope(message: str, code: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"success": False, "error": message, "code": code, "details": dict(details or {})}


def parse_response_text(raw: bytes) -> Any | None:
    """Decode a response body the way the SDK does (spec 3.2): base64 JSON first, then plain JSON.

    Returns ``None`` when neither works; the caller decides what that means for the status at hand.
    """
    text = raw.strip()
    if not text:
        return None
    try:
        decoded = base64.b64decode(_WHITESPACE.sub(b"", text), validate=True).decode("utf-8")
        return json.loads(decoded)
    except (binascii.Error, ValueError, RecursionError):
        pass
    try:
        return json.loads(text.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
