"""``python -m benchmarks``: run every scenario, print the table and write it to ``benchmarks/results/``.

Starts what it needs itself: the stand-in gateway (``benchmarks.standin``), ``dominus-local serve`` and two
uvicorn FastAPI apps, each on a free loopback port, and stops them at the end. Options: ``--repeats`` (3),
``--duration`` seconds per measurement (2), ``--only`` (``sdk``, ``token``, ``fastapi``, ``local``, ``backends``;
repeatable), ``--out`` (directory, default ``benchmarks/results``: ``latest.md`` and ``latest.json``, or
``latest-<scenarios>.md``/``.json`` for a run with ``--only``, so that it does not replace the full run's).
``backends`` (dominus-local vs the minimal gateway of ``benchmarks.minimal_gateway``, on the SQLite default and
on PostgreSQL and Redis) measures its PostgreSQL/Redis pass only with the servers of ``scripts/services.sh``:
``scripts/services.sh run .venv/bin/python -m benchmarks --only backends`` (about 8 minutes; shorten it with
``--repeats 1 --duration 1``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks import backends, scenarios
from benchmarks.harness import Row, machine_facts, markdown_table

SCENARIOS = ("sdk", "token", "fastapi", "local", "backends")


def _row(rows: list[Row], variant: str, c: int) -> dict[str, Any]:
    for row in rows:
        if row.variant == variant and row.concurrency == c:
            return row.summary()
    raise KeyError((variant, c))


def checks(rows: list[Row], mints: list[int], facts: dict[str, float]) -> list[str]:
    """The targets of ``docs/performance.md``, computed from this run's medians (a line per target, PASS or FAIL)."""
    lines: list[str] = []

    def line(ok: bool, text: str) -> None:
        lines.append(f"{'PASS' if ok else 'FAIL'}  {text}")

    names = {r.variant for r in rows}
    if "SDK redis.get" in names:
        sdk1 = _row(rows, "SDK redis.get", 1)
        line(sdk1["ratio"] >= 0.9, f"SDK at C=1: {sdk1['ratio']:.2f}x the raw pooled baseline (target >= 0.9)")
        sdk64 = _row(rows, "SDK redis.get", 64)
        tail = sdk64["p99_ms"] / sdk64["p50_ms"]
        line(sdk64["ratio"] >= 1.2, f"SDK at C=64: {sdk64['ratio']:.2f}x the raw pooled baseline (target >= 1.2)")
        line(tail <= 3, f"SDK at C=64: p99 {tail:.2f}x its p50 (target <= 3)")
        for c in (1, 16, 64):
            sdk = _row(rows, "SDK redis.get", c)["calls_per_s"]
            ref = _row(rows, "client per call (reference pattern)", c)["calls_per_s"]
            line(sdk >= 10 * ref, f"SDK at C={c}: {sdk / ref:.1f}x the client-per-call pattern (target >= 10)")
            emb = _row(rows, "SDK redis.get, embedded mode", c)["calls_per_s"]
            line(emb >= 5 * sdk, f"embedded at C={c}: {emb / sdk:.1f}x the loopback SDK call (target >= 5)")
            if scenarios.SERVED in names:
                served = _row(rows, scenarios.SERVED, c)["calls_per_s"]
                lines.append(
                    f"INFO  embedded at C={c}: {emb / served:.1f}x the SDK call to dominus-local serve "
                    "(same server work, in memory, over loopback)"
                )
    if mints:
        line(all(m == 1 for m in mints), f"mints per 1,000 concurrent first calls: {mints} (target: exactly 1)")
    if "middleware + CurrentUser + page guard" in names:
        for c in (1, 16, 64):
            # The paired figure: the median over repeats of guarded/bare measured in the same repeat (the
            # table's ratio column), not a quotient of two medians that may come from different repeats.
            ratio = _row(rows, "middleware + CurrentUser + page guard", c)["ratio"]
            added = 1 / ratio - 1
            line(added <= 0.15, f"FastAPI at C={c}: guards add {added * 100:.0f}% to the request time (target <= 15%)")
            if scenarios.FASTAPI_DEPENDENCY in names:
                floor = 1 / _row(rows, scenarios.FASTAPI_DEPENDENCY, c)["ratio"] - 1
                lines.append(
                    f"INFO  FastAPI at C={c}: one trivial FastAPI dependency alone adds {floor * 100:.0f}% "
                    "(CurrentUser is one)"
                )
    lines += backends.checks(rows)
    if facts:
        lines.append(
            f"INFO  one bcrypt check: {facts['bcrypt_cost12_ms']:.0f} ms at cost 12 "
            f"({facts['bcrypt_cost4_ms']:.1f} ms at cost 4)"
        )
    return lines


async def run(arguments: argparse.Namespace) -> int:
    options = scenarios.Options(repeats=arguments.repeats, duration=arguments.duration)
    only = arguments.only or list(SCENARIOS)
    rows: list[Row] = []
    mints: list[int] = []
    facts: dict[str, float] = {}
    machine = machine_facts()
    try:
        await _scenarios(only, options, rows, mints, facts)
    finally:
        # Whatever was measured is reported, also when a later scenario fails.
        _report(arguments, options, machine, rows, mints, facts)
    return 0


async def _scenarios(
    only: list[str], options: scenarios.Options, rows: list[Row], mints: list[int], facts: dict[str, float]
) -> None:
    if "sdk" in only:
        print("scenario 1: SDK call", flush=True)
        rows += await scenarios.sdk_call(options)
    if "token" in only:
        print("scenario 2: token", flush=True)
        token_rows, token_mints = await scenarios.token(options)
        rows += token_rows
        mints += token_mints
    if "fastapi" in only:
        print("scenario 3: FastAPI", flush=True)
        rows += await scenarios.fastapi(options)
    if "local" in only:
        print("scenario 4: dominus_local", flush=True)
        local_rows, local_facts = await scenarios.local(options)
        rows += local_rows
        facts.update(local_facts)
    if "backends" in only:
        print("scenario 4, backends: dominus-local vs the minimal gateway, on PostgreSQL/Redis and SQLite", flush=True)
        rows += await backends.backends(options)


def _report(
    arguments: argparse.Namespace,
    options: scenarios.Options,
    machine: dict[str, Any],
    rows: list[Row],
    mints: list[int],
    facts: dict[str, float],
) -> None:
    if not rows:
        return
    table = markdown_table(rows)
    verdicts = checks(rows, mints, facts)
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    header = (
        f"Date: {machine['date']}. Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory']}, "
        f"{machine['os']}, {machine['python']}. Load average at the start (1, 5, 15 min): {machine['load']}.\n"
        f"Versions: {versions}.\n"
        f"Command: python -m benchmarks --repeats {options.repeats} --duration {options.duration}"
        + "".join(f" --only {name}" for name in arguments.only or ())
        + f". Each cell: median of {options.repeats} runs of {options.duration} s (min-max in brackets); the "
        "ratio compares with the scenario's baseline measured in the same repeat at the same concurrency C. "
        "Peak RSS: the benchmark process, or the server process for the FastAPI and dominus_local rows."
    )
    report = f"{header}\n\n{table}\n\n" + "\n".join(verdicts) + "\n"
    print()
    print(report)
    document = {"machine": machine, "rows": [r.summary() for r in rows], "mints": mints, "facts": facts,
                "checks": verdicts}
    # A run of some scenarios only goes next to the full run's files instead of replacing them.
    stem = "latest" + "".join(f"-{name}" for name in sorted(set(arguments.only or ())))
    written = _write(Path(arguments.out), report, document, stem)
    print(f"written: {', '.join(written)}")


def _write(out: Path, report: str, document: dict[str, Any], stem: str = "latest") -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(report)
    (out / f"{stem}.json").write_text(json.dumps(document, indent=2))
    return [str(out / f"{stem}.md"), str(out / f"{stem}.json")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--only", action="append", choices=SCENARIOS)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
