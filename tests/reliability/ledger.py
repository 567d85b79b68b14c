"""What the reliability and security suites tried, what passed, and every text they must keep secrets out of.

``TALLY`` counts cases per suite (one case = one fault scenario operation, one forged token, one fuzzed
request, ...). Each test records its cases and then asserts that all of them passed, so a failing case fails
its test; the pytest summary prints the table (``tests/reliability/conftest.py``), and with
``DOMINUS_RELIABILITY_REPORT=<file>`` it is also written as JSON. The figures of ``docs/reliability.md`` come
from that table.

``WATCH`` holds the secrets the suites use (PSKs, passwords, tokens) and every text they captured: log
records, error messages, reprs and the output of subprocess servers. The last security test scans it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = ["SCALE", "TALLY", "WATCH", "CaptureHandler", "SecretWatch", "Tally"]

SCALE = max(1, int(os.environ.get("DOMINUS_RELIABILITY_SCALE", "1")))
"""Soak factor: rounds of the fault workloads and fuzzing examples are multiplied by it (default 1, as in CI)."""


@dataclass
class Tally:
    """Cases tried and passed per suite, and a short description of each failed case."""

    tried: dict[str, int] = field(default_factory=dict)
    passed: dict[str, int] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)

    def record(self, suite: str, ok: bool, what: str = "") -> bool:
        """Count one case of ``suite``; returns ``ok`` so that callers can collect failures."""
        self.tried[suite] = self.tried.get(suite, 0) + 1
        self.passed.setdefault(suite, 0)
        if ok:
            self.passed[suite] += 1
        else:
            self.failures.setdefault(suite, []).append(what)
        return ok

    def rows(self) -> list[tuple[str, int, int]]:
        return [(suite, self.tried[suite], self.passed[suite]) for suite in sorted(self.tried)]


TALLY = Tally()


class SecretWatch:
    """Secrets in use, and the texts captured while they were in use."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._texts: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def secret(self, value: str) -> str:
        """Register ``value`` (at least 8 characters) as a secret that no captured text may contain."""
        if len(value) >= 8:
            with self._lock:
                self._secrets.add(value)
        return value

    def capture(self, origin: str, text: str) -> None:
        """Keep ``text`` (a log line, an error message, a repr, server output) for the final scan."""
        if text:
            with self._lock:
                self._texts.append((origin, text))

    def capture_error(self, exc: BaseException) -> None:
        self.capture(f"str({type(exc).__name__})", str(exc))
        self.capture(f"repr({type(exc).__name__})", repr(exc))

    def capture_all(self, origin: str, texts: Iterable[str]) -> None:
        for text in texts:
            self.capture(origin, text)

    @property
    def secrets(self) -> set[str]:
        return set(self._secrets)

    @property
    def text_count(self) -> int:
        return len(self._texts)

    def leaks(self) -> list[str]:
        """``"<origin>: <secret prefix>..."`` for each captured text that contains a registered secret; each
        scanned text counts as one case of the suite ``secrets hygiene``."""
        found = []
        with self._lock:
            texts, known = list(self._texts), set(self._secrets)
        for origin, text in texts:
            leaked = [secret for secret in known if secret in text]
            TALLY.record("secrets hygiene", not leaked, origin)
            found.extend(f"{origin}: {secret[:4]}..." for secret in leaked)
        return found


WATCH = SecretWatch()


class CaptureHandler(logging.Handler):
    """A logging handler that feeds every formatted record (with its traceback) into ``WATCH``."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            WATCH.capture(f"log {record.name}", self.format(record))
        except Exception:  # a record that cannot be formatted is itself not a leak
            self.handleError(record)


# --- pytest glue, shared by the reliability and security conftests -------------------------------------------

_summary_printed = False


@pytest.fixture(autouse=True)
def capture_logs() -> Iterator[None]:
    """Every record logged during the test goes to ``WATCH``: ours at every level, other libraries from INFO."""
    root = logging.getLogger()
    handler = CaptureHandler()
    ours = [logging.getLogger(name) for name in ("dominus_local", "dominus_fastapi")]
    levels = [root.level, *(logger.level for logger in ours)]
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for logger in ours:
        logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        for logger, level in zip([root, *ours], levels):
            logger.setLevel(level)


def terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print (once) the cases tried and passed per suite; write them as JSON to ``DOMINUS_RELIABILITY_REPORT``."""
    global _summary_printed
    if _summary_printed or not TALLY.tried:
        return
    _summary_printed = True
    terminalreporter.section("reliability and security cases")
    for suite, tried, passed in TALLY.rows():
        terminalreporter.write_line(f"{suite:<32} tried {tried:>6}  passed {passed:>6}")
    target = os.environ.get("DOMINUS_RELIABILITY_REPORT")
    if target:
        rows = [{"suite": s, "tried": t, "passed": p} for s, t, p in TALLY.rows()]
        Path(target).write_text(json.dumps(rows, indent=2) + "\n")
