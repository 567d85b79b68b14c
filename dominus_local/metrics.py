"""Prometheus metrics of one instance, served unframed at ``GET /metrics`` (spec 7.11).

Exposed: ``dominus_local_requests_total{method,route,status}`` (route is the endpoint's path template, so
ids do not explode the label set), ``dominus_local_request_duration_seconds`` (a histogram by route) and
``dominus_local_tokens_minted_total`` (every token issued by ``/jwt/mint``).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dominus_local.state import LocalState

__all__ = ["CONTENT_TYPE", "Metrics", "metrics", "record_token_minted"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Counters and a latency histogram; safe to update from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        self.tokens_minted = 0
        self._buckets: defaultdict[str, list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self._sum: defaultdict[str, float] = defaultdict(float)
        self._count: defaultdict[str, int] = defaultdict(int)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            buckets = self._buckets[route]
            for index, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    buckets[index] += 1
            self._sum[route] += seconds
            self._count[route] += 1

    def token_minted(self, count: int = 1) -> None:
        with self._lock:
            self.tokens_minted += count

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        with self._lock:
            lines = [
                "# HELP dominus_local_requests_total Requests answered, by method, route template and status.",
                "# TYPE dominus_local_requests_total counter",
            ]
            for (method, route, status), value in sorted(self.requests.items()):
                lines.append(
                    f'dominus_local_requests_total{{method="{_label(method)}",route="{_label(route)}",'
                    f'status="{status}"}} {value}'
                )
            lines += [
                "# HELP dominus_local_request_duration_seconds Time to answer a request, by route template.",
                "# TYPE dominus_local_request_duration_seconds histogram",
            ]
            for route in sorted(self._count):
                label = _label(route)
                for bound, value in zip(BUCKETS, self._buckets[route], strict=True):
                    lines.append(
                        f'dominus_local_request_duration_seconds_bucket{{route="{label}",le="{bound}"}} {value}'
                    )
                count = self._count[route]
                lines.append(f'dominus_local_request_duration_seconds_bucket{{route="{label}",le="+Inf"}} {count}')
                lines.append(f'dominus_local_request_duration_seconds_sum{{route="{label}"}} {self._sum[route]:.6f}')
                lines.append(f'dominus_local_request_duration_seconds_count{{route="{label}"}} {count}')
            lines += [
                "# HELP dominus_local_tokens_minted_total Tokens issued by /jwt/mint.",
                "# TYPE dominus_local_tokens_minted_total counter",
                f"dominus_local_tokens_minted_total {self.tokens_minted}",
            ]
        return "\n".join(lines) + "\n"


def metrics(state: LocalState) -> Metrics:
    """The metrics of an instance (created on first use)."""
    found = state.extras.get("metrics")
    if not isinstance(found, Metrics):
        found = Metrics()
        state.extras["metrics"] = found
    return found


def record_token_minted(state: LocalState) -> None:
    """Count one token issued by ``/jwt/mint`` (``dominus_local_tokens_minted_total``)."""
    metrics(state).token_minted()
