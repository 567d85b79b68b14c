"""Measurement machinery: closed-loop load at a fixed concurrency, statistics, peak RSS, machine facts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

Call = Callable[[], Awaitable[Any]]


@dataclass
class Sample:
    """One measurement: ``calls`` completed in ``elapsed`` seconds by ``concurrency`` workers."""

    calls: int
    elapsed: float
    p50_ms: float
    p99_ms: float
    rss_mib: float
    errors: int = 0
    cpu_ms: float = float("nan")
    """CPU time (user + system) of ``rss_pid`` per call, in ms: what one call costs the server."""
    latencies: list[float] = field(default_factory=list, repr=False)
    """Every call's latency in seconds, sorted (kept to merge slices)."""

    @property
    def rate(self) -> float:
        return self.calls / self.elapsed if self.elapsed > 0 else 0.0


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


# --- peak RSS ------------------------------------------------------------------------------------------------


def reset_peak_rss(pid: int | None = None) -> None:
    """Reset the kernel's high-water mark of resident memory (Linux ``clear_refs`` 5); no-op elsewhere."""
    with contextlib.suppress(OSError), open(f"/proc/{pid or 'self'}/clear_refs", "w") as handle:
        handle.write("5")


def peak_rss_mib(pid: int | None = None) -> float:
    """``VmHWM`` of a process in MiB (since its last :func:`reset_peak_rss`); ``nan`` when unknown."""
    try:
        with open(f"/proc/{pid or 'self'}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (all its threads) in seconds; ``nan`` when unknown."""
    try:
        with open(f"/proc/{pid or 'self'}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- load ----------------------------------------------------------------------------------------------------


async def run_load(
    call: Call,
    concurrency: int,
    *,
    duration: float,
    max_calls: int | None = None,
    warmup: int = 0,
    rss_pid: int | None = None,
) -> Sample:
    """Run ``concurrency`` workers that call ``call`` back to back for ``duration`` seconds (or until
    ``max_calls`` calls started) and return throughput, latency percentiles and the peak RSS of ``rss_pid``
    (this process by default). ``warmup`` calls per worker run first and are not counted. A failing call
    counts as an error and stops the measurement with that exception."""
    if warmup:
        await asyncio.gather(*(_repeat(call, warmup) for _ in range(concurrency)))
    reset_peak_rss(rss_pid)
    latencies: list[float] = []
    started = 0
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal started
        clock = time.perf_counter
        while clock() < deadline and (max_calls is None or started < max_calls):
            started += 1
            t0 = clock()
            await call()
            latencies.append(clock() - t0)

    cpu_start = cpu_seconds(rss_pid)
    t_start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t_start
    cpu = cpu_seconds(rss_pid) - cpu_start
    latencies.sort()
    return Sample(
        calls=len(latencies),
        elapsed=elapsed,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        rss_mib=peak_rss_mib(rss_pid),
        cpu_ms=cpu / len(latencies) * 1000 if latencies else float("nan"),
        latencies=latencies,
    )


def merge(samples: Sequence[Sample]) -> Sample:
    """One sample from several slices of the same measurement (calls and times add up)."""
    latencies = sorted(value for sample in samples for value in sample.latencies)
    return Sample(
        calls=sum(sample.calls for sample in samples),
        elapsed=sum(sample.elapsed for sample in samples),
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        rss_mib=max(sample.rss_mib for sample in samples),
        cpu_ms=sum(sample.cpu_ms * sample.calls for sample in samples) / max(1, sum(s.calls for s in samples)),
        latencies=latencies,
    )


async def _repeat(call: Call, times: int) -> None:
    for _ in range(times):
        await call()


# --- results -------------------------------------------------------------------------------------------------


@dataclass
class Row:
    """All repeats of one (scenario, variant, concurrency), and the same-run baseline it is compared with."""

    scenario: str
    variant: str
    concurrency: int
    samples: list[Sample] = field(default_factory=list)
    baseline: list[Sample] = field(default_factory=list)
    note: str = ""

    def ratios(self) -> list[float]:
        return [s.rate / b.rate for s, b in zip(self.samples, self.baseline, strict=False) if b.rate > 0]

    def summary(self) -> dict[str, Any]:
        rates = [s.rate for s in self.samples]
        ratios = self.ratios()
        return {
            "scenario": self.scenario,
            "variant": self.variant,
            "concurrency": self.concurrency,
            "repeats": len(self.samples),
            "calls_per_s": _med(rates),
            "calls_per_s_min": min(rates) if rates else None,
            "calls_per_s_max": max(rates) if rates else None,
            "p50_ms": _med([s.p50_ms for s in self.samples]),
            "p99_ms": _med([s.p99_ms for s in self.samples]),
            "peak_rss_mib": max((s.rss_mib for s in self.samples), default=None),
            "cpu_ms_per_call": _med([s.cpu_ms for s in self.samples]),
            "ratio": _med(ratios) if ratios else None,
            "ratio_min": min(ratios) if ratios else None,
            "ratio_max": max(ratios) if ratios else None,
            "calls": sum(s.calls for s in self.samples),
            "note": self.note,
        }


def _med(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:,.{digits}f}"


def markdown_table(rows: Sequence[Row]) -> str:
    """The results as a Markdown table (medians, with min-max of throughput and ratio)."""
    lines = [
        "| scenario | variant | C | calls/s (median, min-max) | p50 ms | p99 ms | peak RSS MiB | server CPU ms/call "
        "| ratio to baseline (median, min-max) |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        s = row.summary()
        rate = f"{_fmt(s['calls_per_s'])} ({_fmt(s['calls_per_s_min'])}-{_fmt(s['calls_per_s_max'])})"
        if s["ratio"] is None:
            ratio = "-"
        else:
            ratio = f"{_fmt(s['ratio'], 2)}x ({_fmt(s['ratio_min'], 2)}-{_fmt(s['ratio_max'], 2)})"
        variant = row.variant + (f" - {row.note}" if row.note else "")
        lines.append(
            f"| {row.scenario} | {variant} | {row.concurrency} | {rate} | {_fmt(s['p50_ms'], 2)} | "
            f"{_fmt(s['p99_ms'], 2)} | {_fmt(s['peak_rss_mib'], 0)} | "
            f"{_fmt(s['cpu_ms_per_call'], 3)} | {ratio} |"
        )
    return "\n".join(lines)


def machine_facts() -> dict[str, Any]:
    """CPU, cores, memory, OS, Python and the versions of the packages that matter, and the date (UTC)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError), open("/proc/meminfo") as handle:
        first = handle.readline().split()
        memory = f"{int(first[1]) / 1024 / 1024:.1f} GiB"
    versions = {}
    for name in ("dominus-fastapi", "httpx", "httpcore", "h11", "anyio", "sniffio", "uvicorn", "fastapi", "starlette",
                 "SQLAlchemy", "aiosqlite", "bcrypt", "asyncpg", "redis"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load": load,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": versions,
    }
