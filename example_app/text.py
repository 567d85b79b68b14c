"""Plain words for what the pages show: dates as people write them, form errors as sentences, log contexts
as ``name: value`` lines rather than JSON.

The Jinja filters (:func:`install_filters`) are ``when`` (a date), ``agent`` (a browser's name from its
user agent) and ``context_items`` (a log entry's context).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Final

from fastapi.templating import Jinja2Templates
from pydantic import ValidationError as PydanticValidationError

__all__ = ["FIELD_LABELS", "agent", "context_items", "install_filters", "plain_field_errors", "when"]

FIELD_LABELS: Final = {
    "title": "Title",
    "amount": "Amount",
    "note": "Note",
    "reason": "Reason",
}
"""The labels of the report form's fields, as the form shows them."""


def when(value: Any, *, now: datetime | None = None) -> str:
    """An ISO timestamp as ``3 Dec 2026, 13:05 UTC`` (``today, 13:05 UTC`` for today); other values as text.

    Times are shown in UTC, said so, because the server does not know the reader's time zone.
    """
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    today = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).date()
    day = "today" if moment.date() == today else f"{moment.day} {moment:%b %Y}"
    return f"{day}, {moment:%H:%M} UTC"


_BROWSERS: Final = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("HeadlessChrome/", "Chrome (headless)"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
    ("python-httpx/", "a Python program (httpx)"),
)
_SYSTEMS: Final = (
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def agent(value: Any) -> str:
    """A session's user agent as ``Firefox on Linux``; the raw string when no browser is recognised."""
    if not value:
        return "an unknown browser"
    text = str(value)
    browser = next((name for marker, name in _BROWSERS if marker in text), None)
    system = next((name for marker, name in _SYSTEMS if marker in text), None)
    if browser is None:
        return text[:120]
    return f"{browser} on {system}" if system else browser


def context_items(context: Any) -> list[tuple[str, str]]:
    """A log entry's context as ``(name, value)`` pairs, nested values in compact JSON."""
    if not context:
        return []
    if not isinstance(context, Mapping):
        return [("value", str(context))]
    items = []
    for key, value in context.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        items.append((str(key).replace("_", " "), shown))
    return items


def _plain(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    if kind in ("missing", "string_too_short") and ctx.get("min_length", 1) <= 1:
        return "is required"
    if kind == "string_too_short":
        return f"needs at least {ctx['min_length']} characters"
    if kind == "string_too_long":
        return f"can have at most {ctx['max_length']} characters"
    if kind in ("decimal_parsing", "decimal_type", "float_parsing"):
        return "enter a number, such as 1250 or 99.90"
    if kind == "decimal_max_places":
        return f"can have at most {ctx['decimal_places']} digits after the decimal point"
    if kind in ("decimal_max_digits", "decimal_whole_digits"):
        return "has too many digits (at most 10 before the decimal point and 2 after)"
    if kind == "greater_than_equal":
        return f"must be {ctx['ge']} or more"
    if kind == "finite_number":
        return "enter a number, such as 1250 or 99.90"
    message = str(error.get("msg", "is not valid"))
    return re.sub(r"^Value error, ", "", message)


def plain_field_errors(exc: PydanticValidationError, labels: Mapping[str, str] = FIELD_LABELS) -> list[str]:
    """``Label: reason`` sentences for a form's validation error, one per field problem."""
    lines = []
    for error in exc.errors():
        name = ".".join(map(str, error["loc"])) or "form"
        lines.append(f"{labels.get(name, name)}: {_plain(error)}")
    return lines


def install_filters(templates: Jinja2Templates) -> None:
    """Register ``when``, ``agent`` and ``context_items`` with the app's templates."""
    templates.env.filters["when"] = when
    templates.env.filters["agent"] = agent
    templates.env.filters["context_items"] = context_items
