"""Herald structured logs (spec 7.8).

The logging methods never raise: a failure writes one JSON line to stderr and returns ``False``, so an outage
of the log service never takes the application down with it.
"""

from __future__ import annotations

import builtins
import json
import sys
import types
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from dominus_fastapi.core.errors import DominusError, ValidationError
from dominus_fastapi.core.namespaces.base import Namespace

LOG_PATH = "/api/herald/log"
QUERY_PATH = "/api/herald/query"
BATCH_PATH = "/api/herald/batch"
LEVELS = ("debug", "info", "notice", "warn", "error", "critical")
EVENT_FIELDS = ("level", "message", "context", "category", "file", "function")
"""The fields of a batch event (spec 7.8); ``data`` is accepted as the reference SDK's name for ``context``."""
BATCH_SIZE = 100
QUERY_LIMIT_MAX = 1000

_PATH_PREFIXES = ("/app/", "/home/", "/Users/", "C:\\")
_SKIP_MODULES = ("asyncio", __name__)


def _utc_now() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _timestamp(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def short_path(path: str) -> str:
    """Drop one leading ``/app/``, ``/home/``, ``/Users/`` or ``C:\\`` and keep the last three components."""
    for prefix in _PATH_PREFIXES:
        if path.startswith(prefix):
            path = path[len(prefix) :]
            break
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    return "/".join(parts[-3:])


def caller_location(frame: types.FrameType | None) -> tuple[str | None, str | None]:
    """``(file, function)`` of the first frame outside this module and asyncio (the caller's code)."""
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not any(module == skip or module.startswith(skip + ".") for skip in _SKIP_MODULES):
            return short_path(frame.f_code.co_filename), frame.f_code.co_name
        frame = frame.f_back
    return None, None


def _context_or_data(
    context: Mapping[str, Any] | None, data: Mapping[str, Any] | None, where: str
) -> Mapping[str, Any] | None:
    """``context``, or ``data`` (the reference SDK's name for it); both at once is a :class:`ValidationError`."""
    if data is None:
        return context
    if context is not None:
        raise ValidationError(
            f"{where}: give context or data (its other name), not both",
            details={"field": "data", "reason": "data is another name for context; both were given"},
        )
    return data


def normalise_event(event: Mapping[str, Any], index: int) -> dict[str, Any]:
    """A batch event as sent: ``data`` renamed ``context``; an unknown key raises :class:`ValidationError`.

    The reference SDK's README writes ``{"level", "message", "data"}``; a server that ignores unknown fields
    would store the entry without its ``data``, so a key outside :data:`EVENT_FIELDS` (and ``data``) is refused
    before anything is sent rather than dropped.
    """
    if not isinstance(event, Mapping):
        raise ValidationError(
            f"events[{index}] must be a mapping",
            details={"field": f"events[{index}]", "reason": "not a mapping"},
            endpoint=BATCH_PATH,
        )
    unknown = sorted(str(key) for key in event if key not in EVENT_FIELDS and key != "data")
    if unknown:
        raise ValidationError(
            f"events[{index}] has the unknown key {unknown[0]!r}; the keys are {', '.join(EVENT_FIELDS)} "
            "(and data, another name for context)",
            details={"field": f"events[{index}].{unknown[0]}", "reason": "unknown key"},
            endpoint=BATCH_PATH,
        )
    out = {key: value for key, value in event.items() if key != "data"}
    if "data" in event:
        if "context" in event:
            raise ValidationError(
                f"events[{index}] has both context and data (its other name): keep one",
                details={"field": f"events[{index}].data", "reason": "data is another name for context"},
                endpoint=BATCH_PATH,
            )
        out["context"] = event["data"]
    return out


def write_fallback(level: str, message: str, context: Mapping[str, Any] | None = None) -> None:
    """One JSON line on stderr for a log entry that could not be stored."""
    line: dict[str, Any] = {"dt": _utc_now(), "level": level.upper(), "message": message, "_fallback": True}
    if context:
        line["context"] = dict(context)
    try:
        sys.stderr.write(json.dumps(line, default=str, ensure_ascii=False) + "\n")
        sys.stderr.flush()
    except Exception:  # noqa: S110 - the last resort of a logger that must never raise
        pass


class LogsNamespace(Namespace):
    """Herald structured logs (spec 7.8): ``client.logs``.

    The logging methods (``debug`` to ``critical``) never raise for a failure of the log service: they write one
    JSON line to stderr and return ``False``, so an outage of the log service never takes the application down.
    Each entry records the calling file and function, and the server stamps it with its time, project,
    environment and subject. The parameters of the logging methods:

    - ``message``: 1 to 32768 characters.
    - ``context``: a JSON object of at most 64 KiB stored with the entry (``data=`` is its other name, as in the
      reference SDK; giving both raises ``ValidationError``, the one error these methods raise).
    - ``category``: at most 64 characters, for filtering; categories starting with ``audit`` are the server's.

    Every method also takes, keyword only, ``timeout`` (seconds one attempt may take; default: the client's
    ``timeout``, ``DOMINUS_TIMEOUT``) and ``max_retries`` (how many more attempts a failure that is safe to
    repeat gets; default: the client's ``max_retries``, ``0`` for none). The calls that would not be harmless
    to repeat take ``idempotency_key`` too: the server carries out a key once (spec 3.5); when it is left out,
    the client makes one for the call, so that its own retries never repeat the change. Any call may also raise
    the transport errors (``DominusConnectionError``, ``DominusTimeoutError``, ``ServiceError``,
    ``RateLimitError``) once its retries are spent.
    """

    async def _log(
        self,
        level: str,
        message: str,
        context: Mapping[str, Any] | None,
        category: str | None,
        exception: BaseException | None,
        timeout: float | None,
        max_retries: int | None,
        idempotency_key: str | None,
    ) -> bool:
        ctx: dict[str, Any] | None = dict(context) if context is not None else None
        try:
            if exception is not None:
                ctx = ctx or {}
                ctx["exception"] = {"type": type(exception).__name__, "message": str(exception)}
            file, function = caller_location(sys._getframe(1))
            body: dict[str, Any] = {"level": level, "message": message}
            if ctx is not None:
                body["context"] = ctx
            if category is not None:
                body["category"] = category
            if file is not None:
                body["file"] = file
            if function is not None:
                body["function"] = function
            data = await self._client.request(
                "POST",
                LOG_PATH,
                body=body,
                timeout=timeout,
                max_retries=max_retries,
                idempotency_key=idempotency_key,
            )
            return bool(data.get("stored")) if isinstance(data, Mapping) else False
        except Exception:
            write_fallback(level, message, ctx)
            return False

    async def debug(
        self,
        message: str,
        context: Mapping[str, Any] | None = None,
        category: str | None = None,
        *,
        data: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> bool:
        """Store a ``debug`` entry; ``True`` when stored, ``False`` (and a stderr line) on any failure.

        ``data=`` is the reference SDK's name for ``context`` (giving both raises :class:`ValidationError`,
        the one error these methods raise: a mistake in the call, found before sending).
        """
        context = _context_or_data(context, data, "logs.debug")
        return await self._log("debug", message, context, category, None, timeout, max_retries, idempotency_key)

    async def info(
        self,
        message: str,
        context: Mapping[str, Any] | None = None,
        category: str | None = None,
        *,
        data: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> bool:
        """Store an ``info`` entry; never raises (see :meth:`debug`)."""
        context = _context_or_data(context, data, "logs.info")
        return await self._log("info", message, context, category, None, timeout, max_retries, idempotency_key)

    async def notice(
        self,
        message: str,
        context: Mapping[str, Any] | None = None,
        category: str | None = None,
        *,
        data: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> bool:
        """Store a ``notice`` entry; never raises (see :meth:`debug`)."""
        context = _context_or_data(context, data, "logs.notice")
        return await self._log("notice", message, context, category, None, timeout, max_retries, idempotency_key)

    async def warn(
        self,
        message: str,
        context: Mapping[str, Any] | None = None,
        category: str | None = None,
        *,
        data: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> bool:
        """Store a ``warn`` entry; never raises (see :meth:`debug`)."""
        context = _context_or_data(context, data, "logs.warn")
        return await self._log("warn", message, context, category, None, timeout, max_retries, idempotency_key)

    async def error(
        self,
        message: str,
        context: Mapping[str, Any] | None = None,
        category: str | None = None,
        exception: BaseException | None = None,
        *,
        data: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> bool:
        """Store an ``error`` entry, with ``context.exception = {type, message}`` when ``exception`` is given;
        never raises (see :meth:`debug`)."""
        context = _context_or_data(context, data, "logs.error")
        return await self._log("error", message, context, category, exception, timeout, max_retries, idempotency_key)

    async def critical(
        self,
        message: str,
        context: Mapping[str, Any] | None = None,
        category: str | None = None,
        exception: BaseException | None = None,
        *,
        data: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> bool:
        """Store a ``critical`` entry (same arguments as :meth:`error`); never raises."""
        context = _context_or_data(context, data, "logs.critical")
        return await self._log("critical", message, context, category, exception, timeout, max_retries, idempotency_key)

    async def query(
        self,
        level: str | None = None,
        category: str | None = None,
        start_time: datetime | str | None = None,
        end_time: datetime | str | None = None,
        file: str | None = None,
        function: str | None = None,
        search: str | None = None,
        limit: int = 100,
        project: str | None = None,
        environment: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """Stored entries, newest first; ``[]`` on any failure of the request.

        Args:
            level: The minimum severity (``debug``, ``info``, ``notice``, ``warn``, ``error``, ``critical``).
            category: Only entries of this category (``"audit"`` for the audit trail).
            start_time: Only entries at or after this time (a ``datetime`` or an RFC 3339 string).
            end_time: Only entries before this time.
            file: Only entries logged from this file (as recorded: the last three path components).
            function: Only entries logged from this function.
            search: A case-insensitive substring of the message.
            limit: At most this many entries, 1 to 1000.
            project: Another project's entries (administrators only); default: the caller's.
            environment: Another environment's entries (administrators only); default: the caller's.

        Raises:
            ValidationError: A bad ``limit`` or ``level`` (before sending).
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= QUERY_LIMIT_MAX:
            raise ValidationError(
                f"limit must be an integer from 1 to {QUERY_LIMIT_MAX}",
                details={"field": "limit", "reason": f"between 1 and {QUERY_LIMIT_MAX}"},
                endpoint=QUERY_PATH,
            )
        if level is not None and level not in LEVELS:
            raise ValidationError(
                f"level must be one of {', '.join(LEVELS)}",
                details={"field": "level", "reason": "unknown level"},
                endpoint=QUERY_PATH,
            )
        fields = {
            "level": level,
            "category": category,
            "start_time": _timestamp(start_time),
            "end_time": _timestamp(end_time),
            "file": file,
            "function": function,
            "search": search,
            "project": project,
            "environment": environment,
        }
        body: dict[str, Any] = {"limit": limit, **{k: v for k, v in fields.items() if v is not None}}
        try:
            data = await self._client.request(
                "POST", QUERY_PATH, body=body, safe=True, timeout=timeout, max_retries=max_retries
            )
        except DominusError:
            return []
        logs = data.get("logs") if isinstance(data, Mapping) else None
        return builtins.list(logs) if isinstance(logs, builtins.list) else []

    async def batch(
        self,
        events: Iterable[Mapping[str, Any]],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Store many events, in requests of 100; ``{total, stored, failed, errors}`` added up.

        Each ``errors`` entry's ``index`` counts over the whole list. A request that fails counts all of its
        events as failed and writes them as fallback lines; a failure of the service never raises. With
        ``idempotency_key=K`` the n-th request carries ``K:n``.

        Events have the keys of :data:`EVENT_FIELDS`; ``data`` is taken as ``context`` (the reference SDK's
        README form). An unknown key, or both ``data`` and ``context``, raises :class:`ValidationError` before
        anything is sent, so that no entry is stored without one of its fields.
        """
        items = [normalise_event(event, index) for index, event in enumerate(events)]
        result: dict[str, Any] = {"total": 0, "stored": 0, "failed": 0, "errors": []}
        for number, start in enumerate(range(0, len(items), BATCH_SIZE), start=1):
            chunk = items[start : start + BATCH_SIZE]
            try:
                data = await self._client.request(
                    "POST",
                    BATCH_PATH,
                    body={"events": chunk},
                    timeout=timeout,
                    max_retries=max_retries,
                    idempotency_key=None if idempotency_key is None else f"{idempotency_key}:{number}",
                )
                if not isinstance(data, Mapping):
                    raise DominusError("the batch answer is not an object", endpoint=BATCH_PATH)
                result["total"] += int(data.get("total", len(chunk)))
                result["stored"] += int(data.get("stored", 0))
                result["failed"] += int(data.get("failed", 0))
                for error in data.get("errors") or []:
                    entry = dict(error)
                    if isinstance(entry.get("index"), int):
                        entry["index"] += start
                    result["errors"].append(entry)
            except Exception as exc:
                code = exc.code if isinstance(exc, DominusError) else None
                result["total"] += len(chunk)
                result["failed"] += len(chunk)
                for offset, event in enumerate(chunk):
                    result["errors"].append({"index": start + offset, "code": code, "error": str(exc)})
                    try:
                        level = str(event.get("level", "info"))
                        message = str(event.get("message", ""))
                        context = event.get("context") if isinstance(event.get("context"), Mapping) else None
                    except Exception:
                        level, message, context = "info", repr(event), None
                    write_fallback(level, message, context)
        return result
