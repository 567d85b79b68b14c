"""Reliability suites: every log record of every test is captured for the secrets scan, and the summary
prints cases tried and passed per suite."""

from __future__ import annotations

from tests.reliability.ledger import capture_logs, terminal_summary

_capture_logs = capture_logs
pytest_terminal_summary = terminal_summary
