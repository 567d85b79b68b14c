"""A load driver: a mixed workload from many coroutines through one SDK client, then a reconciliation.

    workload = Workload("drops")
    await workload.prepare(admin)                  # the ledger table and the login user (once per server)
    await workload.run(client, workers=8, rounds=6)
    problems = await workload.reconcile(admin)     # [] when nothing was lost, duplicated or half-applied

Each worker runs ``rounds`` rounds of five operations:

- a **read** (``db.query`` on the ledger, a safe POST);
- an **insert** of one ledger row carrying a unique ``op_id`` (unsafe, with an idempotency key);
- an **increment** of a shared counter (unsafe, with a key; not idempotent by nature, so a replay that ran
  twice shows up in the sum);
- an **upload** of a small file at a unique path (unsafe, with a key);
- a **login** of the load user (exempt from idempotency: retried only when it surely did not run).

Every operation ends *acknowledged* (the SDK returned) or *failed* (the SDK raised). Reconciliation reads the
server back with a fault-free client and checks, per operation: an acknowledged write is present exactly once
and complete; a failed write is present at most once and, if present, complete (never half-applied); the
counter lies between the acknowledged increments and the acknowledged plus failed ones. Errors must be
:class:`~dominus_fastapi.DominusError` subclasses; their texts and reprs go to the secrets watch.

``only_not_run=True`` (for injected 5xx answers and cold starts, which guarantee that nothing ran) tightens the
rule for failed writes to "absent".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from dominus_fastapi import Dominus, DominusError
from dominus_fastapi.core.errors import ConflictError
from tests.reliability.ledger import TALLY, WATCH

__all__ = ["KINDS", "LEDGER_TABLE", "LOAD_PASSWORD", "LOAD_USER", "Op", "Workload"]

LEDGER_TABLE = "load_ledger"
LOAD_USER = "load-user"
LOAD_PASSWORD = WATCH.secret("load-password-7f3a9c")
KINDS = ("read", "insert", "incr", "upload", "login")
WRITES = ("insert", "incr", "upload")

LEDGER_COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "type": "SERIAL", "constraints": ["PRIMARY KEY"]},
    {"name": "op_id", "type": "VARCHAR(100)", "constraints": ["NOT NULL"]},
    {"name": "scenario", "type": "VARCHAR(100)", "constraints": ["NOT NULL"]},
    {"name": "payload", "type": "TEXT", "constraints": ["NOT NULL"]},
]
"""``op_id`` is deliberately not unique: a duplicated insert must show up as two rows, not as a conflict."""


@dataclass
class Op:
    """One operation of the workload and how it ended."""

    kind: str
    op_id: str
    acked: bool = False
    error: str | None = None
    """The class name of the error that ended it."""
    message: str | None = None


def _payload(op_id: str) -> str:
    return f"payload-of-{op_id}-" + "x" * 64


def _file_bytes(op_id: str) -> bytes:
    return hashlib.sha256(op_id.encode()).digest() * 64


@dataclass
class Workload:
    """A named scenario's operations: run it (possibly several times), then reconcile."""

    scenario: str
    ops: list[Op] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def counter_key(self) -> str:
        return f"load:{self.scenario}:counter"

    @property
    def upload_prefix(self) -> str:
        return f"load/{self.scenario}/"

    @staticmethod
    async def prepare(admin: Dominus) -> None:
        """Create the ledger table and the login user, once per server (repeat calls are harmless)."""
        with contextlib.suppress(ConflictError):
            await admin.ddl.create_table("public", LEDGER_TABLE, LEDGER_COLUMNS)
        with contextlib.suppress(ConflictError):
            await admin.auth.add_user(LOAD_USER, LOAD_PASSWORD, email="load@example.com")

    def acked(self, kind: str | None = None) -> list[Op]:
        return [op for op in self.ops if op.acked and (kind is None or op.kind == kind)]

    def failed(self, kind: str | None = None) -> list[Op]:
        return [op for op in self.ops if not op.acked and (kind is None or op.kind == kind)]

    async def run(
        self,
        client: Dominus,
        *,
        workers: int,
        rounds: int,
        kinds: tuple[str, ...] = KINDS,
        pause_after_failure: Callable[[], Awaitable[Any]] | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        """``workers`` coroutines, each running ``rounds`` rounds of ``kinds`` (until ``stop`` is set)."""

        async def worker(number: int) -> None:
            for _ in range(rounds):
                for kind in kinds:
                    if stop is not None and stop.is_set():
                        return
                    op = Op(kind, f"{self.scenario}-w{number}-{next(self._seq)}")
                    self.ops.append(op)
                    try:
                        await self._one(client, op)
                        op.acked = True
                    except DominusError as exc:
                        WATCH.capture_error(exc)
                        op.error, op.message = type(exc).__name__, str(exc)
                        if pause_after_failure is not None:
                            await pause_after_failure()
                    except Exception as exc:  # anything else escaping the SDK is a defect
                        WATCH.capture_error(exc)
                        op.error = f"untyped {type(exc).__name__}: {exc}"

        await asyncio.gather(*(worker(n) for n in range(workers)))

    async def _one(self, client: Dominus, op: Op) -> None:
        if op.kind == "read":
            result = await client.db.query(LEDGER_TABLE, filters={"scenario": self.scenario}, limit=5)
            assert isinstance(result["rows"], list)
        elif op.kind == "insert":
            row = await client.db.insert(
                LEDGER_TABLE, {"op_id": op.op_id, "scenario": self.scenario, "payload": _payload(op.op_id)}
            )
            assert row["op_id"] == op.op_id
        elif op.kind == "incr":
            await client.redis.incr(self.counter_key, 1)
        elif op.kind == "upload":
            record = await client.files.upload(
                _file_bytes(op.op_id), f"{op.op_id}.bin", path=f"{self.upload_prefix}{op.op_id}.bin"
            )
            assert record["sha256"] == hashlib.sha256(_file_bytes(op.op_id)).hexdigest()
        elif op.kind == "login":
            session = await client.portal.login(LOAD_USER, LOAD_PASSWORD)
            WATCH.secret(session["access_token"])
            WATCH.secret(session["refresh_token"])
        else:
            raise ValueError(f"unknown operation kind {op.kind!r}")

    async def reconcile(self, admin: Dominus, *, only_not_run: bool = False, suite: str = "faults") -> list[str]:
        """Check every operation against the server's state (see the module docstring); record each one as a case
        of ``suite``; return the problems found (empty when all is well)."""
        problems: list[str] = []
        rows = await self._ledger_rows(admin)
        counts = Counter(row["op_id"] for row in rows)
        complete = {row["op_id"] for row in rows if row["payload"] == _payload(row["op_id"])}
        files = await self._uploaded(admin)
        known = {op.op_id for op in self.ops}

        def check(op: Op, ok: bool, what: str) -> None:
            if not TALLY.record(suite, ok, f"{self.scenario}: {what}"):
                problems.append(f"{op.op_id}: {what}")

        for op in self.ops:
            if op.error is not None and op.error.startswith("untyped"):
                check(op, False, f"an untyped error escaped the SDK ({op.error})")
                continue
            if op.kind == "insert":
                present = counts.get(op.op_id, 0)
                if op.acked:
                    check(op, present == 1 and op.op_id in complete, f"acknowledged insert stored {present} times")
                elif only_not_run:
                    check(op, present == 0, f"insert refused as not run, yet stored {present} times")
                else:
                    ok = present == 0 or (present == 1 and op.op_id in complete)
                    check(op, ok, f"failed insert stored {present} times or incomplete")
            elif op.kind == "upload":
                path = f"{self.upload_prefix}{op.op_id}.bin"
                found = files.get(path, [])
                want = hashlib.sha256(_file_bytes(op.op_id)).hexdigest()
                intact = all(record["sha256"] == want for record in found)
                if op.acked:
                    check(op, len(found) == 1 and intact, f"acknowledged upload present {len(found)} times")
                elif only_not_run:
                    check(op, not found, "upload refused as not run, yet stored")
                else:
                    check(op, len(found) <= 1 and intact, f"failed upload present {len(found)} times or corrupt")
            else:
                # Reads and logins are checked where they ran (the SDK returned the expected shape);
                # increments are checked as a sum below.
                check(op, op.acked or op.error is not None, "neither acknowledged nor failed")
        strays = [op_id for op_id in counts if op_id not in known]
        stray_files = [path for path in files if path.removeprefix(self.upload_prefix)[:-4] not in known]
        if strays or stray_files:
            problems.append(f"writes that no operation made: {strays[:5]} {stray_files[:5]}")
        found = await admin.redis.get(self.counter_key)
        value = int(found["value"]) if found["found"] else 0
        low = len(self.acked("incr"))
        high = low + (0 if only_not_run else len(self.failed("incr")))
        ok = low <= value <= high
        for op in [op for op in self.ops if op.kind == "incr"]:
            check(op, ok, f"counter is {value}, expected between {low} and {high}")
        return problems

    async def _ledger_rows(self, admin: Dominus) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while True:
            page = await admin.db.query(
                LEDGER_TABLE, filters={"scenario": self.scenario}, sort_by="id", limit=1000, offset=len(rows)
            )
            rows.extend(page["rows"])
            if len(rows) >= page["total"] or not page["rows"]:
                return rows

    async def _uploaded(self, admin: Dominus) -> dict[str, list[dict[str, Any]]]:
        by_path: dict[str, list[dict[str, Any]]] = {}
        cursor: str | None = None
        while True:
            page = await admin.files.list(prefix=self.upload_prefix, limit=100, cursor=cursor)
            for record in page["objects"]:
                by_path.setdefault(record["path"], []).append(record)
            cursor = page["cursor"]
            if cursor is None:
                break
        # The stored bytes must match the recorded digest: an object is whole or absent.
        for records in by_path.values():
            for record in records:
                fetched = await admin.files.fetch(record["id"])
                if hashlib.sha256(fetched["data"]).hexdigest() != record["sha256"]:
                    record["sha256"] = "corrupt"
        return by_path
