"""Archivist: file storage with categories, folders, views, compliance retention and download URLs
(spec 7.5, 8.5).

Each object's metadata, its normalised logical path included, is a row of ``archivist_objects``; its bytes
are a blob in a :class:`~dominus_local.stores.blobs.BlobStore` under a key the server generates, so no
logical path ever reaches the file system. Content is written as a new blob before the row that points at it
commits, and an old blob is removed only after the row stops pointing at it: a crash at any moment leaves
every visible object whole (spec 8.5). Every byte read is checked against the recorded SHA-256.

Every access to a compliance object (upload, download, fetch, delete) and every factory reset writes an
audit record through Herald, in the same transaction as the change it records (spec 8.3).

Where the spec is silent: paths are put in Unicode NFC and a segment that folds to ``.`` or ``..`` (or holds a
folded ``\\``) is refused; ``.folder`` is reserved as a last segment; an object may not sit at a folder's path
or below another object (409 ``conflict``); ``deleted_count``, ``by_category`` and statistics count objects,
never folder placeholders; a forced folder delete audits each expired compliance object it removes, with the
caller as actor; the download-URL signing key is kept in the data directory, so URLs outlive a restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import mimetypes
import os
import re
import secrets
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import Response

from dominus_local.errors import ApiError, conflict, forbidden, invalid, not_found, too_large
from dominus_local.routing import Principal, RequestContext, ServiceRouter
from dominus_local.services import health
from dominus_local.state import LocalState
from dominus_local.stores.blobs import BlobNotFoundError, BlobStore, DirectoryBlobStore, MemoryBlobStore
from dominus_local.stores.database import metadata
from dominus_local.validate import Fields, format_timestamp, new_id

router = ServiceRouter("archivist")

CATEGORY = re.compile(r"^_?[a-z0-9][a-z0-9_-]{0,61}$")
DEFAULT_CATEGORY = "general"
PLACEHOLDER = ".folder"
MAX_PATH = 1024
MAX_SEGMENT = 255
MAX_FILENAME = 255
MAX_TAGS = 50
MAX_TAG = 64
MAX_DESCRIPTION = 2000
MAX_ACTOR = 256
RETENTION_MIN, RETENTION_MAX, RETENTION_DEFAULT = 1, 3650, 90
EXPIRES_MIN, EXPIRES_MAX, EXPIRES_DEFAULT = 60, 86400, 3600
LIMIT_MAX = 1000
EMBEDDED_ORIGIN = "http://dominus-local.embedded"
BLOB_ROUTE = "/archivist/blob/{token}"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
CONTENT_TYPE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+(;[\x20-\x7e]*)?$")
"""A media type as HTTP carries it (it becomes the download route's Content-Type header)."""

archivist_objects = Table(
    "archivist_objects",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("category", String(64), nullable=False),
    Column("path", String(MAX_PATH), nullable=False),
    Column("filename", String(MAX_FILENAME), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("tags", JSON, nullable=False),
    Column("description", Text, nullable=True),
    Column("is_compliance", Boolean, nullable=False, default=False),
    Column("retention_until", DateTime(timezone=True), nullable=True),
    Column("owner_user_id", String(MAX_ACTOR), nullable=True),
    Column("is_placeholder", Boolean, nullable=False, default=False),
    Column("blob_key", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("category", "path", name="uq_archivist_objects_category_path"),
)
_o = archivist_objects.c

Clock = Callable[[], float]


@dataclass
class Archive:
    """What Archivist keeps per instance: the blob store, the URL signing key and an injectable clock."""

    blobs: BlobStore
    url_key: bytes = field(repr=False)
    clock: Clock = time.time

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), timezone.utc)


def archive(state: LocalState) -> Archive:
    """The running instance's Archivist state."""
    value: Archive = state.extras["archivist"]
    return value


async def _open_blob_store(state: LocalState) -> BlobStore:
    url = state.settings.storage_url
    if url:
        if url.startswith("file://"):
            return DirectoryBlobStore(url.removeprefix("file://"))
        if url.startswith("s3://"):
            from dominus_local.stores.blobs_s3 import S3BlobStore

            store = S3BlobStore(url)
            try:
                await store.open()
            except BaseException:
                await store.close()
                raise
            return store
        raise ValueError("storage_url: only s3:// and file:// URLs are supported")
    if state.settings.data_dir is not None:
        return DirectoryBlobStore(state.settings.data_dir / "blobs")
    return MemoryBlobStore()


def _url_key(data_dir: Path | None) -> bytes:
    """The download-URL signing key: kept in the data directory so URLs outlive a restart, else random."""
    if data_dir is None:
        return secrets.token_bytes(32)
    path = data_dir / "archivist-url.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    data_dir.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex())
    try:
        os.link(temp, path)  # fails if another process created it first: theirs wins
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    finally:
        temp.unlink(missing_ok=True)
    return key


def _wall_clock(state: LocalState) -> Clock:
    """The app's injectable Unix clock when there is one, so tests drive every expiry with one fake clock."""
    clock: Clock = getattr(state.extras.get("app"), "wall_clock", time.time)
    return clock


@router.on_startup
async def _start(state: LocalState) -> None:
    blobs = await _open_blob_store(state)
    async with state.db.begin() as conn:
        keep = [row.blob_key for row in await conn.execute(select(_o.blob_key))]
    await blobs.sweep(keep)
    state.extras["archivist"] = Archive(
        blobs=blobs, url_key=_url_key(state.settings.data_dir), clock=_wall_clock(state)
    )


async def probe(state: LocalState) -> str:
    """Archivist's health entry: its metadata table and its blob store (S3, directory or memory) answer."""
    current = state.extras.get("archivist")
    if current is None:
        return "down"
    await state.db.ping()
    await current.blobs.ping()
    return "up"


health.register_probe("archivist", probe)


@router.on_shutdown
async def _stop(state: LocalState) -> None:
    current = state.extras.pop("archivist", None)
    if current is not None:
        await current.blobs.close()


# -- names and paths ----------------------------------------------------------------------------------------------


def normalize_path(value: Any, name: str = "logical_path", *, allow_root: bool = False) -> str:
    """The normalised logical path (spec 8.5), or 400 ``validation_failed`` naming the field and the reason.

    Leading, trailing and repeated ``/`` are dropped and the text is put in Unicode NFC, so composed and
    decomposed spellings name one object. A segment may not be ``.`` or ``..``, contain ``\\`` or a control
    character, or turn into any of those under compatibility normalisation (NFKC; e.g. fullwidth dots).
    The root (``""``) is accepted only with ``allow_root``.
    """
    if not isinstance(value, str):
        raise invalid(name, "must be a string")
    if len(value) > 4 * MAX_PATH:
        raise invalid(name, f"must be at most {MAX_PATH} characters")
    text = unicodedata.normalize("NFC", value)
    if _CONTROL.search(text):
        raise invalid(name, "must not contain control characters")
    segments = [segment for segment in text.split("/") if segment]
    path = "/".join(segments)
    if not path and not allow_root:
        raise invalid(name, "must name a path below the category root")
    if len(path) > MAX_PATH:
        raise invalid(name, f"must be at most {MAX_PATH} characters")
    for segment in segments:
        if len(segment) > MAX_SEGMENT:
            raise invalid(name, f"each segment must be at most {MAX_SEGMENT} characters")
        folded = unicodedata.normalize("NFKC", segment)
        if segment in (".", "..") or folded in (".", ".."):
            raise invalid(name, "must not contain '.' or '..' segments")
        if "\\" in folded or "/" in folded:
            raise invalid(name, "must not contain backslashes")
        if _CONTROL.search(folded):
            raise invalid(name, "must not contain control characters")
    return path


def _user_path(value: Any, name: str) -> str:
    path = normalize_path(value, name)
    if path.rsplit("/", 1)[-1] == PLACEHOLDER:
        raise invalid(name, f"'{PLACEHOLDER}' is reserved for folder placeholders")
    return path


def _filename(fields: Fields) -> str:
    value: str = fields.str("filename", min_len=1, max_len=MAX_FILENAME)
    if "/" in value or "\\" in value:
        raise invalid("filename", "must not contain '/' or '\\'")
    if _CONTROL.search(value):
        raise invalid("filename", "must not contain control characters")
    return unicodedata.normalize("NFC", value)


def _category_value(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise invalid(name, "must be a string")
    if not CATEGORY.match(value):
        raise invalid(name, f"must match {CATEGORY.pattern}")
    return value


def _category(fields: Fields, name: str = "category", *, default: str | None = DEFAULT_CATEGORY) -> Any:
    raw = fields.raw(name)
    if raw is None:
        return default
    return _category_value(raw, name)


def is_reserved(category: str) -> bool:
    return category.startswith("_")


def _require_access(principal: Principal, category: str) -> None:
    if is_reserved(category) and not principal.is_admin:
        raise forbidden(f"Category '{category}' is reserved to administrators", category=category)


def _actor(fields: Fields, name: str) -> str | None:
    value: str | None = fields.str(name, required=False, max_len=MAX_ACTOR, strip=True)
    if value is not None and not value:
        raise invalid(name, "must not be empty")
    return value


def _limit(fields: Fields) -> int:
    value: int = fields.int("limit", required=False, default=100, min_value=1, max_value=LIMIT_MAX)
    return value


def _encode_cursor(*parts: str) -> str:
    raw = json.dumps(list(parts), ensure_ascii=False, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, size: int, bound: Sequence[str]) -> list[str]:
    """The cursor's parts after the ``bound`` ones, which must equal the listing's filters."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise invalid("cursor", "is not a cursor this server returned") from None
    if not (isinstance(decoded, list) and len(decoded) == size and all(isinstance(p, str) for p in decoded)):
        raise invalid("cursor", "is not a cursor this server returned")
    if decoded[: len(bound)] != list(bound):
        raise invalid("cursor", "belongs to a listing with other filters")
    return decoded[len(bound) :]


def _ordered(column: Any, conn: AsyncConnection) -> Any:
    # Code-point order everywhere: SQLite compares bytes; PostgreSQL needs the C collation.
    return column.collate("C") if conn.dialect.name == "postgresql" else column


def _starts_with(column: Any, prefix: str) -> Any:
    return func.substr(column, 1, len(prefix)) == prefix


# -- records ------------------------------------------------------------------------------------------------------


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def record(row: Row[Any]) -> dict[str, Any]:
    """The object record of spec 7.5."""
    retention = _aware(row.retention_until)
    return {
        "id": row.id,
        "category": row.category,
        "path": row.path,
        "filename": row.filename,
        "content_type": row.content_type,
        "size": row.size,
        "sha256": row.sha256,
        "tags": list(row.tags or []),
        "description": row.description,
        "is_compliance": bool(row.is_compliance),
        "retention_until": format_timestamp(retention) if retention is not None else None,
        "owner_user_id": row.owner_user_id,
        "created_at": format_timestamp(_aware(row.created_at) or row.created_at),
        "updated_at": format_timestamp(_aware(row.updated_at) or row.updated_at),
    }


def _under_retention(row: Row[Any], now: datetime) -> bool:
    retention = _aware(row.retention_until)
    return bool(row.is_compliance) and retention is not None and now < retention


def _retention_error(row: Row[Any]) -> ApiError:
    retention = _aware(row.retention_until)
    return ApiError(
        "retention_active",
        "The compliance object is under retention",
        details={"id": row.id, "retention_until": format_timestamp(retention) if retention else None},
    )


async def _audit(
    conn: AsyncConnection,
    ctx: RequestContext,
    operation: str,
    row: Row[Any] | None,
    actor: str | None,
    **extra: Any,
) -> None:
    """One audit record (spec 8.3) in the caller's transaction: if it cannot be written, nothing commits."""
    from dominus_local.services.herald import write_audit

    principal = ctx.subject
    context: dict[str, Any] = {
        "service": "archivist",
        "operation": operation,
        "actor": actor,
        "subject": principal.sub,
        "subject_type": principal.subject_type,
        "tenant_id": principal.tenant_id,
        "request_id": ctx.request_id,
    }
    if row is not None:
        context.update(id=row.id, category=row.category, path=row.path)
        message = f"archivist.{operation} {row.category}/{row.path}"
    else:
        message = f"archivist.{operation}"
    context.update(extra)
    await write_audit(conn, principal, message, context, category="audit")


async def _find(
    conn: AsyncConnection, *, object_id: str | None = None, category: str | None = None, path: str | None = None
) -> Row[Any] | None:
    query = select(archivist_objects).where(_o.is_placeholder.is_(False))
    if object_id is not None:
        query = query.where(_o.id == object_id)
    else:
        query = query.where(_o.category == category, _o.path == path)
    return (await conn.execute(query.with_for_update())).first()


@dataclass(frozen=True)
class _Target:
    object_id: str | None
    category: str
    path: str | None


def _target(ctx: RequestContext) -> _Target:
    """``id`` when given, else ``category`` (default ``general``) with ``logical_path`` (spec 7.5)."""
    f = ctx.fields
    object_id: str | None = f.uuid("id", required=False)
    category: str = _category(f)
    if object_id is not None:
        return _Target(object_id, category, None)
    if f.raw("logical_path") is None:
        raise invalid("id", "give either id, or logical_path with an optional category")
    return _Target(None, category, normalize_path(f.raw("logical_path")))


async def _load_target(conn: AsyncConnection, ctx: RequestContext, target: _Target) -> Row[Any]:
    if target.object_id is None:
        _require_access(ctx.subject, target.category)
    row = await _find(conn, object_id=target.object_id, category=target.category, path=target.path)
    if row is None:
        raise not_found("Object", target.object_id or f"{target.category}/{target.path}")
    _require_access(ctx.subject, row.category)
    return row


async def _check_no_clash(conn: AsyncConnection, category: str, path: str, exclude_id: str | None) -> None:
    """An object may not sit where a folder is, nor below another object (409 ``conflict``)."""
    segments = path.split("/")
    ancestors = ["/".join(segments[:i]) for i in range(1, len(segments))]
    if ancestors:
        hit = (
            await conn.execute(
                select(_o.path).where(_o.category == category, _o.path.in_(ancestors), _o.is_placeholder.is_(False))
            )
        ).first()
        if hit is not None:
            raise conflict(f"An object already exists at '{hit.path}', which this path needs as a folder")
    below = select(_o.id).where(_o.category == category, _starts_with(_o.path, path + "/"))
    if exclude_id is not None:
        below = below.where(_o.id != exclude_id)
    if (await conn.execute(below.limit(1))).first() is not None:
        raise conflict(f"'{path}' is a folder")


async def _read_verified(blobs: BlobStore, row: Row[Any]) -> bytes:
    """The object's bytes, checked against the recorded SHA-256 (500 when the stored copy is damaged)."""
    try:
        data = await blobs.get(row.blob_key)
    except BlobNotFoundError:
        raise not_found("Object", row.id) from None
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise ApiError("internal_error", "The stored object failed its integrity check", details={"id": row.id})
    return data


# -- upload ---------------------------------------------------------------------------------------------------


def _decode_content(fields: Fields, cap: int) -> bytes:
    raw = fields.raw("file_content")
    if raw is None:
        raise invalid("file_content", "is required")
    if not isinstance(raw, str):
        raise invalid("file_content", "must be base64 text")
    text = "".join(raw.split())
    # Refuse an oversized file from its encoded length, before decoding it.
    if (len(text) // 4) * 3 - text[-2:].count("=") > cap:
        raise too_large("file_content", cap)
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid("file_content", "must be standard base64") from None
    if len(data) > cap:
        raise too_large("file_content", cap)
    return data


def _tags(fields: Fields) -> list[str] | None:
    tags: list[Any] | None = fields.list("tags", required=False, max_items=MAX_TAGS, comma_split=False)
    if tags is None:
        return None
    for index, tag in enumerate(tags):
        if not isinstance(tag, str) or not tag:
            raise invalid(f"tags[{index}]", "must be a non-empty string")
        if len(tag) > MAX_TAG:
            raise invalid(f"tags[{index}]", f"must be at most {MAX_TAG} characters")
    return list(tags)


@router.post("/api/archivist/upload")
async def upload(ctx: RequestContext) -> dict[str, Any]:
    """Store a file (base64 in ``file_content``); an upload to a taken path replaces that object."""
    f = ctx.fields
    state = archive(ctx.state)
    filename = _filename(f)
    category: str = _category(f)
    _require_access(ctx.subject, category)
    path = _user_path(f.raw("logical_path") if f.raw("logical_path") is not None else filename, "logical_path")
    content_type: str = f.str("content_type", required=False, max_len=255, pattern=CONTENT_TYPE) or (
        mimetypes.guess_type(filename)[0] or "application/octet-stream"
    )
    tags = _tags(f) or []
    compliance: bool = f.bool("is_compliance", default=False)
    retention_days: int = f.int(
        "retention_days", required=False, default=RETENTION_DEFAULT, min_value=RETENTION_MIN, max_value=RETENTION_MAX
    )
    owner = _actor(f, "owner_user_id")
    if compliance and owner is None:
        raise invalid("owner_user_id", "is required for compliance uploads")
    data = _decode_content(f, ctx.state.settings.upload_max_bytes)
    digest = hashlib.sha256(data).hexdigest()

    blob_key = secrets.token_hex(16)
    await state.blobs.put(blob_key, data)
    old_blob: str | None = None
    try:
        async with ctx.state.db.begin() as conn:
            now = state.now()
            values: dict[str, Any] = {
                "filename": filename,
                "content_type": content_type,
                "size": len(data),
                "sha256": digest,
                "tags": tags,
                "description": None,
                "is_compliance": compliance,
                "retention_until": now + timedelta(days=retention_days) if compliance else None,
                "owner_user_id": owner,
                "blob_key": blob_key,
                "updated_at": now,
            }
            existing = await _find(conn, category=category, path=path)
            if existing is not None:
                if _under_retention(existing, now):
                    raise _retention_error(existing)
                await conn.execute(update(archivist_objects).where(_o.id == existing.id).values(**values))
                object_id, old_blob = existing.id, existing.blob_key
            else:
                await _check_no_clash(conn, category, path, None)
                object_id = new_id()
                await conn.execute(
                    insert(archivist_objects).values(
                        id=object_id, category=category, path=path, is_placeholder=False, created_at=now, **values
                    )
                )
            row = await _find(conn, object_id=object_id)
            assert row is not None
            if compliance or (existing is not None and existing.is_compliance):
                await _audit(conn, ctx, "upload", row, owner or ctx.subject.sub, sha256=digest, size=len(data))
    except BaseException:
        await state.blobs.delete(blob_key)
        raise
    if old_blob is not None:
        await state.blobs.delete(old_blob)
    return record(row)


# -- reads ----------------------------------------------------------------------------------------------------


def _sign(key: bytes, payload: str) -> str:
    mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def make_download_token(state: Archive, object_id: str, expires: int) -> str:
    """``<id>.<expiry>.<signature>``: the id and the Unix expiry, signed with the instance's URL key."""
    payload = f"{object_id.replace('-', '')}.{expires}"
    return f"{payload}.{_sign(state.url_key, payload)}"


def read_download_token(state: Archive, token: str) -> str | None:
    """The object id of a valid, unexpired token, else ``None``."""
    parts = token.split(".")
    if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{32}", parts[0]) or not parts[1].isdigit():
        return None
    expected = _sign(state.url_key, f"{parts[0]}.{parts[1]}").encode()
    if not hmac.compare_digest(expected, parts[2].encode("utf-8", "replace")):
        return None
    if int(parts[1]) <= state.clock():
        return None
    raw = parts[0]
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def _origin(ctx: RequestContext) -> str:
    base = str(ctx.request.base_url).rstrip("/")
    return base or EMBEDDED_ORIGIN


@router.post("/api/archivist/download", safe=True)
async def download(ctx: RequestContext) -> dict[str, Any]:
    """A signed URL that serves the raw bytes to a plain GET until ``expires_at``."""
    f = ctx.fields
    state = archive(ctx.state)
    target = _target(ctx)
    actor = _actor(f, "actor_user_id")
    expires_seconds: int = f.int(
        "expires_seconds", required=False, default=EXPIRES_DEFAULT, min_value=EXPIRES_MIN, max_value=EXPIRES_MAX
    )
    async with ctx.state.db.begin() as conn:
        row = await _load_target(conn, ctx, target)
        if row.is_compliance:
            if actor is None:
                raise invalid("actor_user_id", "is required to access a compliance object")
            await _audit(conn, ctx, "download", row, actor, expires_seconds=expires_seconds)
    expires = int(state.clock()) + expires_seconds
    presign = getattr(state.blobs, "presigned_url", None) if getattr(state.blobs, "presigns", False) else None
    if presign is not None:
        url = await presign(
            row.blob_key, expires_seconds=expires_seconds, filename=row.filename, content_type=row.content_type
        )
    else:
        url = f"{_origin(ctx)}/archivist/blob/{make_download_token(state, row.id, expires)}"
    return {
        "download_url": url,
        "expires_at": format_timestamp(datetime.fromtimestamp(expires, timezone.utc)),
        "id": row.id,
        "path": row.path,
        "filename": row.filename,
        "content_type": row.content_type,
        "size": row.size,
    }


@router.post("/api/archivist/fetch", safe=True)
async def fetch(ctx: RequestContext) -> dict[str, Any]:
    """The bytes inline, as base64 in ``data``."""
    f = ctx.fields
    state = archive(ctx.state)
    target = _target(ctx)
    actor = _actor(f, "actor_user_id")
    async with ctx.state.db.begin() as conn:
        row = await _load_target(conn, ctx, target)
        if row.is_compliance:
            if actor is None:
                raise invalid("actor_user_id", "is required to access a compliance object")
            await _audit(conn, ctx, "fetch", row, actor)
    data = await _read_verified(state.blobs, row)
    return {
        "data": base64.b64encode(data).decode(),
        "filename": row.filename,
        "content_type": row.content_type,
        "size": row.size,
        "id": row.id,
        "path": row.path,
    }


@router.get(BLOB_ROUTE, auth="none", safe=True)
async def serve_blob(ctx: RequestContext) -> Response:
    """The raw bytes behind a download URL, unframed; a plain-text 404 when the token is invalid or expired,
    or the object is gone (spec 7.5)."""
    current = archive(ctx.state)
    object_id = read_download_token(current, ctx.path("token"))
    if object_id is None:
        raise not_found("Download link")
    async with ctx.state.db.begin() as conn:
        row = await _find(conn, object_id=object_id)
    if row is None:
        raise not_found("Download link")
    data = await _read_verified(current.blobs, row)
    disposition = f"attachment; filename*=UTF-8''{quote(row.filename, safe='')}"
    return Response(
        data,
        media_type=row.content_type,
        headers={"Content-Disposition": disposition, "Cache-Control": "no-store", "ETag": f'"{row.sha256}"'},
    )


# -- listing ----------------------------------------------------------------------------------------------------


def _visible(principal: Principal) -> Any:
    return None if principal.is_admin else func.substr(_o.category, 1, 1) != "_"


@router.post("/api/archivist/list", safe=True)
async def list_objects(ctx: RequestContext) -> dict[str, Any]:
    """Objects ordered by category then path; ``prefix`` matches the start of the logical path."""
    f = ctx.fields
    limit = _limit(f)
    category: str | None = _category(f, default=None)
    if category is not None:
        _require_access(ctx.subject, category)
    prefix_raw: str = f.str("prefix", required=False, default="", max_len=MAX_PATH)
    prefix = unicodedata.normalize("NFC", prefix_raw).lstrip("/")
    cursor: str | None = f.str("cursor", required=False, max_len=8192)
    after = _decode_cursor(cursor, 4, [category or "", prefix]) if cursor else None
    async with ctx.state.db.begin() as conn:
        cat_col, path_col = _ordered(_o.category, conn), _ordered(_o.path, conn)
        query = select(archivist_objects).where(_o.is_placeholder.is_(False))
        if category is not None:
            query = query.where(_o.category == category)
        elif (hidden := _visible(ctx.subject)) is not None:
            query = query.where(hidden)
        if prefix:
            query = query.where(_starts_with(_o.path, prefix))
        if after is not None:
            query = query.where(or_(cat_col > after[0], and_(_o.category == after[0], path_col > after[1])))
        rows = (await conn.execute(query.order_by(cat_col, path_col).limit(limit + 1))).all()
    page = rows[:limit]
    next_cursor = (
        _encode_cursor(category or "", prefix, page[-1].category, page[-1].path) if len(rows) > limit else None
    )
    return {"objects": [record(row) for row in page], "cursor": next_cursor, "count": len(page)}


@dataclass(frozen=True)
class View:
    name: str
    reserved: bool

    def covers(self, category: str) -> bool:
        return is_reserved(category) == self.reserved


VIEWS = {"all": View("all", False), "reserved": View("reserved", True)}


def _view(principal: Principal, name: str) -> View:
    found = VIEWS.get(name)
    if found is None:
        raise not_found("View", name)
    if found.reserved and not principal.is_admin:
        raise forbidden(f"View '{name}' is reserved to administrators", view=name)
    return found


async def _category_rows(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Every category with its object count and size (placeholders make a category exist but count 0)."""
    real = _o.is_placeholder.is_(False)
    rows = await conn.execute(
        select(
            _o.category,
            func.sum(case((real, 1), else_=0)).label("objects"),
            func.sum(case((real, _o.size), else_=0)).label("size"),
        ).group_by(_o.category)
    )
    out = [
        {"name": row.category, "object_count": int(row.objects or 0), "total_size_bytes": int(row.size or 0)}
        for row in rows
    ]
    return sorted(out, key=lambda item: item["name"])


@router.post("/api/archivist/browse", safe=True)
async def browse(ctx: RequestContext) -> dict[str, Any]:
    """One level of a folder tree: folders first, then files, each by name, paged by cursor."""
    f = ctx.fields
    limit = _limit(f)
    category: str | None = _category(f, default=None)
    view = _view(ctx.subject, f.str("view", required=False, default="all", max_len=64))
    path = normalize_path(f.str("path", required=False, default="/"), "path", allow_root=True)
    cursor: str | None = f.str("cursor", required=False, max_len=8192)
    after = _decode_cursor(cursor, 5, [category or "", view.name, path]) if cursor else None

    explicit_category = category is not None
    if category is None and path:
        # Without a category, the first segment of the path names it.
        category, _, inner = path.partition("/")
        _category_value(category, "path")
    else:
        inner = path
    folders: dict[str, str] = {}
    files: list[dict[str, Any]] = []
    async with ctx.state.db.begin() as conn:
        if category is None:
            for item in await _category_rows(conn):
                name = item["name"]
                if view.covers(name) and (ctx.subject.is_admin or not is_reserved(name)):
                    folders[name] = name
        else:
            _require_access(ctx.subject, category)
            if not view.covers(category):
                raise not_found("Category in view", category)
            base = inner + "/" if inner else ""
            query = select(archivist_objects).where(_o.category == category)
            if base:
                query = query.where(_starts_with(_o.path, base))
            rows = (await conn.execute(query)).all()
            if inner and not rows:
                if await _find(conn, category=category, path=inner) is not None:
                    raise invalid("path", "names a file, not a folder")
                raise not_found("Folder", f"{category}/{inner}")
            for row in rows:
                head, sep, _tail = row.path[len(base) :].partition("/")
                if sep:
                    folders[head] = f"{base}{head}" if explicit_category else f"{category}/{base}{head}"
                elif not row.is_placeholder:
                    files.append(record(row))
    entries: list[tuple[str, str, dict[str, Any]]] = [
        ("0", name, {"name": name, "path": folders[name]}) for name in sorted(folders)
    ]
    entries += [("1", item["path"].rsplit("/", 1)[-1], item) for item in sorted(files, key=_file_name)]
    if after is not None:
        entries = [entry for entry in entries if (entry[0], entry[1]) > (after[0], after[1])]
    page = entries[:limit]
    next_cursor = (
        _encode_cursor(category or "", view.name, path, page[-1][0], page[-1][1]) if len(entries) > limit else None
    )
    shown = "/" + path if path else "/"
    return {
        "path": shown,
        "folders": [item for kind, _, item in page if kind == "0"],
        "files": [item for kind, _, item in page if kind == "1"],
        "cursor": next_cursor,
    }


def _file_name(item: dict[str, Any]) -> str:
    name: str = item["path"].rsplit("/", 1)[-1]
    return name


@router.get("/api/archivist/stats", safe=True)
async def stats(ctx: RequestContext) -> dict[str, Any]:
    """Object count and bytes, in total and per category (reserved categories for administrators only)."""
    async with ctx.state.db.begin() as conn:
        rows = await _category_rows(conn)
    visible = [item for item in rows if ctx.subject.is_admin or not is_reserved(item["name"])]
    return {
        "total_objects": sum(item["object_count"] for item in visible),
        "total_size_bytes": sum(item["total_size_bytes"] for item in visible),
        "by_category": {
            item["name"]: {"objects": item["object_count"], "size_bytes": item["total_size_bytes"]}
            for item in visible
        },
    }


@router.get("/api/archivist/categories", safe=True)
async def categories(ctx: RequestContext) -> dict[str, Any]:
    """Every category that exists, with its object count and size."""
    async with ctx.state.db.begin() as conn:
        rows = await _category_rows(conn)
    return {"categories": [item for item in rows if ctx.subject.is_admin or not is_reserved(item["name"])]}


@router.post("/api/archivist/views", safe=True)
async def views(ctx: RequestContext) -> dict[str, Any]:
    """The views and their categories; ``include_reserved`` has an effect for administrators only."""
    include_reserved: bool = ctx.fields.bool("include_reserved", default=False)
    is_admin = ctx.subject.is_admin
    async with ctx.state.db.begin() as conn:
        names = [item["name"] for item in await _category_rows(conn)]
    listed = [
        {"name": view.name, "categories": [name for name in names if view.covers(name)], "reserved": view.reserved}
        for view in VIEWS.values()
        if not view.reserved or (is_admin and include_reserved)
    ]
    return {"views": listed, "total_views": len(listed), "is_admin": is_admin}


@router.get("/api/archivist/views/{view}/categories", safe=True)
async def view_categories(ctx: RequestContext) -> dict[str, Any]:
    """The categories a view covers, each with its object count and size."""
    view = _view(ctx.subject, ctx.path("view"))
    async with ctx.state.db.begin() as conn:
        rows = await _category_rows(conn)
    return {"view": view.name, "categories": [item for item in rows if view.covers(item["name"])]}


# -- changes ----------------------------------------------------------------------------------------------------


@router.post("/api/archivist/delete")
async def delete_object(ctx: RequestContext) -> dict[str, Any]:
    """Delete an object; a compliance object needs an actor and is refused while under retention."""
    f = ctx.fields
    state = archive(ctx.state)
    target = _target(ctx)
    actor = _actor(f, "actor_user_id")
    async with ctx.state.db.begin() as conn:
        row = await _load_target(conn, ctx, target)
        if row.is_compliance:
            if actor is None:
                raise invalid("actor_user_id", "is required to access a compliance object")
            if _under_retention(row, state.now()):
                raise _retention_error(row)
            await _audit(conn, ctx, "delete", row, actor)
        await conn.execute(delete(archivist_objects).where(_o.id == row.id))
    await state.blobs.delete(row.blob_key)
    return {"deleted": True, "id": row.id}


@router.post("/api/archivist/move")
async def move(ctx: RequestContext) -> dict[str, Any]:
    """Give an object a new category and/or logical path (409 ``conflict`` when the target is taken)."""
    f = ctx.fields
    state = archive(ctx.state)
    object_id: str = f.uuid("id")
    new_category: str | None = _category(f, "new_category", default=None)
    new_path_raw = f.raw("new_logical_path")
    new_path = _user_path(new_path_raw, "new_logical_path") if new_path_raw is not None else None
    if new_category is None and new_path is None:
        raise invalid("new_logical_path", "give new_category, new_logical_path or both")
    if new_category is not None:
        _require_access(ctx.subject, new_category)
    async with ctx.state.db.begin() as conn:
        row = await _load_target(conn, ctx, _Target(object_id, DEFAULT_CATEGORY, None))
        if _under_retention(row, state.now()):
            raise _retention_error(row)
        category = new_category or row.category
        path = new_path or row.path
        if (category, path) != (row.category, row.path):
            taken = (
                await conn.execute(select(_o.id).where(_o.category == category, _o.path == path))
            ).first()
            if taken is not None:
                raise conflict(f"'{category}/{path}' is taken", category=category, path=path)
            await _check_no_clash(conn, category, path, row.id)
            await conn.execute(
                update(archivist_objects)
                .where(_o.id == row.id)
                .values(category=category, path=path, updated_at=state.now())
            )
        moved = await _find(conn, object_id=row.id)
    assert moved is not None
    return record(moved)


@router.post("/api/archivist/update")
async def update_meta(ctx: RequestContext) -> dict[str, Any]:
    """Replace ``tags`` and/or ``description`` (allowed on compliance objects)."""
    f = ctx.fields
    state = archive(ctx.state)
    object_id: str = f.uuid("id")
    tags = _tags(f)
    description: str | None = f.str("description", required=False, max_len=MAX_DESCRIPTION)
    if tags is None and description is None:
        raise invalid("tags", "give tags, description or both")
    changes: dict[str, Any] = {"updated_at": state.now()}
    if tags is not None:
        changes["tags"] = tags
    if description is not None:
        changes["description"] = description
    async with ctx.state.db.begin() as conn:
        row = await _load_target(conn, ctx, _Target(object_id, DEFAULT_CATEGORY, None))
        await conn.execute(update(archivist_objects).where(_o.id == row.id).values(**changes))
        updated = await _find(conn, object_id=row.id)
    assert updated is not None
    return record(updated)


@router.post("/api/archivist/folder/create")
async def create_folder(ctx: RequestContext) -> dict[str, Any]:
    """Make an empty folder visible by storing a hidden placeholder at ``<path>/.folder``."""
    f = ctx.fields
    state = archive(ctx.state)
    path = _user_path(f.raw("path"), "path")
    category: str = _category(f)
    _require_access(ctx.subject, category)
    placeholder_path = f"{path}/{PLACEHOLDER}"
    if len(placeholder_path) > MAX_PATH:
        raise invalid("path", f"must be at most {MAX_PATH - len(PLACEHOLDER) - 1} characters")
    async with ctx.state.db.begin() as conn:
        existing = (
            await conn.execute(select(_o.id).where(_o.category == category, _o.path == placeholder_path))
        ).first()
        if existing is not None:
            return {"created": False, "path": path, "placeholder_id": existing.id, "message": "Folder already exists"}
        if await _find(conn, category=category, path=path) is not None:
            raise conflict(f"An object already exists at '{path}'", category=category, path=path)
        implied = (
            await conn.execute(
                select(_o.id).where(_o.category == category, _starts_with(_o.path, path + "/")).limit(1)
            )
        ).first()
        await _check_no_clash(conn, category, placeholder_path, None)
        now = state.now()
        placeholder_id = new_id()
        await conn.execute(
            insert(archivist_objects).values(
                id=placeholder_id,
                category=category,
                path=placeholder_path,
                filename=PLACEHOLDER,
                content_type="application/x-directory",
                size=0,
                sha256=hashlib.sha256(b"").hexdigest(),
                tags=[],
                description=None,
                is_compliance=False,
                retention_until=None,
                owner_user_id=None,
                is_placeholder=True,
                blob_key="",
                created_at=now,
                updated_at=now,
            )
        )
    created = implied is None
    return {
        "created": created,
        "path": path,
        "placeholder_id": placeholder_id,
        "message": "Folder created" if created else "Folder already exists",
    }


@router.post("/api/archivist/folder/delete")
async def delete_folder(ctx: RequestContext) -> dict[str, Any]:
    """Delete a folder: empty only, or with ``force`` everything below (never retained compliance objects)."""
    f = ctx.fields
    state = archive(ctx.state)
    path = _user_path(f.raw("path"), "path")
    category: str = _category(f)
    force: bool = f.bool("force", default=False)
    _require_access(ctx.subject, category)
    async with ctx.state.db.begin() as conn:
        rows = (
            await conn.execute(
                select(archivist_objects)
                .where(_o.category == category, _starts_with(_o.path, path + "/"))
                .with_for_update()
            )
        ).all()
        if not rows:
            raise not_found("Folder", f"{category}/{path}")
        contents = [row for row in rows if not row.is_placeholder]
        if contents and not force:
            raise conflict("The folder is not empty; pass force to delete its contents", count=len(contents))
        now = state.now()
        retained = [row for row in contents if _under_retention(row, now)]
        if retained:
            raise _retention_error(retained[0])
        for row in contents:
            if row.is_compliance:
                await _audit(conn, ctx, "delete", row, ctx.subject.sub, via="folder_delete")
        await conn.execute(delete(archivist_objects).where(_o.id.in_([row.id for row in rows])))
    for row in contents:
        await state.blobs.delete(row.blob_key)
    return {"deleted": True, "path": path, "deleted_count": len(contents)}


@router.post("/api/archivist/factory-reset", admin=True)
async def factory_reset(ctx: RequestContext) -> dict[str, Any]:
    """Delete every object (keeping compliance objects unless ``preserve_compliance`` is false); audited."""
    f = ctx.fields
    state = archive(ctx.state)
    if f.bool("confirm", default=False) is not True:
        raise invalid("confirm", "must be true to reset the file store")
    preserve: bool = f.bool("preserve_compliance", default=True)
    async with ctx.state.db.begin() as conn:
        rows = (await conn.execute(select(archivist_objects).with_for_update())).all()
        doomed = [row for row in rows if not (preserve and row.is_compliance)]
        kept = [row for row in rows if preserve and row.is_compliance]
        by_category: dict[str, int] = {}
        for row in doomed:
            if not row.is_placeholder:
                by_category[row.category] = by_category.get(row.category, 0) + 1
        deleted_count = sum(by_category.values())
        await _audit(
            conn,
            ctx,
            "factory_reset",
            None,
            ctx.subject.sub,
            preserve_compliance=preserve,
            deleted_count=deleted_count,
            retained_count=len(kept),
            compliance_deleted=[row.id for row in doomed if row.is_compliance],
        )
        if doomed:
            await conn.execute(delete(archivist_objects).where(_o.id.in_([row.id for row in doomed])))
    for row in doomed:
        if row.blob_key:
            await state.blobs.delete(row.blob_key)
    return {"reset": True, "deleted_count": deleted_count, "retained_count": len(kept), "by_category": by_category}
