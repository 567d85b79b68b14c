"""The example app's plain words (``example_app.text``): dates, browsers, log contexts and form errors."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from example_app.backend import ReportIn
from example_app.text import agent, context_items, plain_field_errors, when

NOW = datetime(2026, 12, 3, 18, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("2026-12-03T13:05:40.621Z", "today, 13:05 UTC"),
        ("2025-01-02T03:04:05+00:00", "2 Jan 2025, 03:04 UTC"),
        ("2025-01-02T03:04:05+02:00", "2 Jan 2025, 01:04 UTC"),
        ("2025-01-02T03:04:05", "2 Jan 2025, 03:04 UTC"),
        ("not a date", "not a date"),
        (None, ""),
        ("", ""),
    ],
)
def test_dates_read_as_people_write_them(value: object, shown: str) -> None:
    assert when(value, now=NOW) == shown


@pytest.mark.parametrize(
    ("user_agent", "shown"),
    [
        ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Firefox on Linux"),
        ("Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
         "Chrome on Android"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Safari/604.1",
         "Safari on iPhone"),
        ("Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/126.0 Safari/537.36 Edg/126.0", "Edge on Windows"),
        ("python-httpx/0.28.1", "a Python program (httpx)"),
        ("SomeBot/1.0", "SomeBot/1.0"),
        (None, "an unknown browser"),
    ],
)
def test_sessions_name_the_browser(user_agent: str | None, shown: str) -> None:
    assert agent(user_agent) == shown


def test_log_context_becomes_name_value_lines() -> None:
    context = {"event": "user_invited", "tenant_id": "acme", "size": 12, "tags": ["a", "b"]}
    assert context_items(context) == [
        ("event", "user_invited"), ("tenant id", "acme"), ("size", "12"), ("tags", '["a", "b"]')
    ]
    assert context_items(None) == [] and context_items("text") == [("value", "text")]


@pytest.mark.parametrize(
    ("form", "lines"),
    [
        ({"title": " ", "amount": "lots", "reason": ""},
         ["Title: is required", "Amount: enter a number, such as 1250 or 99.90",
          "Reason: needs at least 3 characters"]),
        ({"title": "t", "amount": "1.234", "reason": "why"},
         ["Amount: can have at most 2 digits after the decimal point"]),
        ({"title": "t", "amount": "1e20", "reason": "why"},
         ["Amount: has too many digits (at most 10 before the decimal point and 2 after)"]),
        ({"title": "t", "amount": "NaN", "reason": "why"}, ["Amount: enter a number, such as 1250 or 99.90"]),
        ({"title": "t" * 201, "amount": "1", "reason": "why"}, ["Title: can have at most 200 characters"]),
    ],
)
def test_form_errors_name_the_field_by_its_label(form: dict[str, str], lines: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        ReportIn.model_validate(form)
    assert plain_field_errors(caught.value) == lines
