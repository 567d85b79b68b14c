"""Security suites: every log record of every test is captured for the secrets scan, and the summary
prints cases tried and passed per suite."""

from __future__ import annotations

from dominus_fastapi.testing import (  # noqa: F401 - the kit's fixtures, taken as tests/fastapi/conftest.py does
    dominus,
    dominus_app_client,
    dominus_asgi_app,
    dominus_base_url,
    dominus_seed_demo,
)
from tests.reliability.ledger import capture_logs, terminal_summary

_capture_logs = capture_logs
pytest_terminal_summary = terminal_summary
