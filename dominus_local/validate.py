"""Typed reads of request fields: each failure is a 400 ``validation_failed`` naming the field and why."""

from __future__ import annotations

import builtins
import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from dominus_local.errors import invalid

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_MISSING = object()


class Fields:
    """Reads fields from a decoded body (or query mapping).

    ``null`` and absence mean the same (spec 1.4) except through :meth:`present`, which PUT updates use to
    tell "left out" from "set to null".
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def present(self, name: builtins.str) -> builtins.bool:
        return name in self._data

    def raw(self, name: builtins.str) -> Any:
        return self._data.get(name)

    def _get(self, name: builtins.str, required: builtins.bool) -> Any:
        value = self._data.get(name, _MISSING)
        if value is _MISSING or value is None:
            if required:
                raise invalid(name, "is required")
            return None
        return value

    def str(
        self,
        name: builtins.str,
        *,
        required: builtins.bool = True,
        default: builtins.str | None = None,
        min_len: builtins.int = 0,
        max_len: builtins.int | None = None,
        pattern: re.Pattern[str] | None = None,
        choices: tuple[str, ...] | None = None,
        strip: builtins.bool = False,
    ) -> Any:
        value = self._get(name, required and default is None)
        if value is None:
            return default
        if not isinstance(value, str):
            raise invalid(name, "must be a string")
        if strip:
            value = value.strip()
        if len(value) < min_len:
            raise invalid(name, "must not be empty" if min_len == 1 else f"must be at least {min_len} characters")
        if max_len is not None and len(value) > max_len:
            raise invalid(name, f"must be at most {max_len} characters")
        if pattern is not None and not pattern.match(value):
            raise invalid(name, f"must match {pattern.pattern}")
        if choices is not None and value not in choices:
            raise invalid(name, f"must be one of {', '.join(choices)}")
        return value

    def int(
        self,
        name: builtins.str,
        *,
        required: builtins.bool = True,
        default: builtins.int | None = None,
        min_value: builtins.int | None = None,
        max_value: builtins.int | None = None,
    ) -> Any:
        value = self._get(name, required and default is None)
        if value is None:
            return default
        if isinstance(value, str) and re.fullmatch(r"-?\d{1,18}", value):
            value = int(value)  # query strings carry numbers as text
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(name, "must be an integer")
        if min_value is not None and value < min_value:
            raise invalid(name, f"must be at least {min_value}")
        if max_value is not None and value > max_value:
            raise invalid(name, f"must be at most {max_value}")
        return value

    def number(
        self,
        name: builtins.str,
        *,
        required: builtins.bool = True,
        default: builtins.float | None = None,
        min_value: builtins.float | None = None,
        max_value: builtins.float | None = None,
    ) -> Any:
        value = self._get(name, required and default is None)
        if value is None:
            return default
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise invalid(name, "must be a number") from None
        if isinstance(value, bool) or not isinstance(value, int | builtins.float):
            raise invalid(name, "must be a number")
        if min_value is not None and value < min_value:
            raise invalid(name, f"must be at least {min_value}")
        if max_value is not None and value > max_value:
            raise invalid(name, f"must be at most {max_value}")
        return value

    def bool(self, name: builtins.str, *, required: builtins.bool = False, default: builtins.bool | None = None) -> Any:
        value = self._get(name, required and default is None)
        if value is None:
            return default
        if isinstance(value, str):
            lowered = value.lower()
            if lowered in ("true", "1"):
                return True
            if lowered in ("false", "0"):
                return False
        if not isinstance(value, bool):
            raise invalid(name, "must be a boolean")
        return value

    def dict(self, name: builtins.str, *, required: builtins.bool = True) -> Any:
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise invalid(name, "must be an object")
        return value

    def list(
        self,
        name: builtins.str,
        *,
        required: builtins.bool = True,
        min_items: builtins.int = 0,
        max_items: builtins.int | None = None,
        comma_split: builtins.bool = True,
    ) -> Any:
        """A list; a query-string value may be comma-separated or repeated (spec 1.5)."""
        value = self._get(name, required)
        if value is None:
            return None
        if isinstance(value, str) and comma_split:
            value = [part for part in value.split(",") if part != ""]
        if not isinstance(value, list):
            raise invalid(name, "must be a list")
        if len(value) < min_items:
            raise invalid(name, "must not be empty" if min_items == 1 else f"needs at least {min_items} items")
        if max_items is not None and len(value) > max_items:
            raise invalid(name, f"must have at most {max_items} items")
        return value

    def str_list(
        self,
        name: builtins.str,
        *,
        required: builtins.bool = True,
        min_items: builtins.int = 0,
        max_items: builtins.int | None = None,
    ) -> Any:
        items = self.list(name, required=required, min_items=min_items, max_items=max_items)
        if items is None:
            return None
        for index, item in enumerate(items):
            if not isinstance(item, str) or not item:
                raise invalid(f"{name}[{index}]", "must be a non-empty string")
        return items

    def uuid(self, name: builtins.str, *, required: builtins.bool = True) -> Any:
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, str) or not is_uuid(value):
            raise invalid(name, "must be a UUID")
        return value.lower()

    def uuid_list(self, name: builtins.str, *, required: builtins.bool = True, min_items: builtins.int = 0) -> Any:
        items = self.list(name, required=required, min_items=min_items)
        if items is None:
            return None
        out = []
        for index, item in enumerate(items):
            if not isinstance(item, str) or not is_uuid(item):
                raise invalid(f"{name}[{index}]", "must be a UUID")
            out.append(item.lower())
        return out

    def identifier(
        self, name: builtins.str, *, required: builtins.bool = True, default: builtins.str | None = None
    ) -> Any:
        return self.str(name, required=required, default=default, pattern=IDENTIFIER)

    def timestamp(self, name: builtins.str, *, required: builtins.bool = False) -> Any:
        """An RFC 3339 timestamp, returned as an aware UTC ``datetime``."""
        value = self.str(name, required=required)
        if value is None:
            return None
        parsed = parse_timestamp(value)
        if parsed is None:
            raise invalid(name, "must be an RFC 3339 timestamp")
        return parsed


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return len(value) == 36


def parse_timestamp(value: str) -> datetime | None:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision and a ``Z`` suffix (spec 1.5)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())
