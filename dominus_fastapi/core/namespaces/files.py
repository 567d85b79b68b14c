"""Archivist file storage (spec 7.5).

Arguments map to the wire as the spec says: ``file_id`` -> ``id``, ``path`` -> ``logical_path``, ``actor`` ->
``actor_user_id`` (``owner_user_id`` on a compliance upload). ``upload`` and ``fetch`` use the transfer timeout
(``DOMINUS_TRANSFER_TIMEOUT``, spec 6.6). Limits the SDK can know are checked before sending.
"""

from __future__ import annotations

import base64
import inspect
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, runtime_checkable
from urllib.parse import quote

from dominus_fastapi.core.errors import ValidationError
from dominus_fastapi.core.namespaces.base import Namespace

if TYPE_CHECKING:
    from typing_extensions import Self

    from dominus_fastapi.core.transport import DownloadBody

__all__ = [
    "DownloadLink",
    "FetchedFile",
    "FileObject",
    "FileStream",
    "FilesNamespace",
    "ObjectPage",
    "Readable",
]

PREFIX = "/api/archivist"
EXPIRES_MIN, EXPIRES_MAX = 60, 86400
RETENTION_MIN, RETENTION_MAX = 1, 3650
LIMIT_MAX = 1000
MAX_FILENAME = 255
MAX_TAGS = 50
MAX_TAG = 64
MAX_DESCRIPTION = 2000
STREAM_CHUNK = 64 * 1024
"""Bytes per piece that ``FileStream`` hands out."""
STREAM_LINK_SECONDS = EXPIRES_MIN
"""Lifetime of the signed link behind ``files.stream``: it is used at once, so the shortest the spec allows."""


class FileObject(TypedDict):
    """An object record (spec 7.5); ``sha256`` is 64 lower-case hex digits."""

    id: str
    category: str
    path: str
    filename: str
    content_type: str
    size: int
    sha256: str
    tags: list[str]
    description: str | None
    is_compliance: bool
    retention_until: str | None
    owner_user_id: str | None
    created_at: str
    updated_at: str


class DownloadLink(TypedDict):
    download_url: str
    expires_at: str
    id: str
    path: str
    filename: str
    content_type: str
    size: int


class FetchedFile(TypedDict):
    """``files.fetch``: the bytes themselves in ``data`` (decoded from base64)."""

    data: bytes
    filename: str
    content_type: str
    size: int
    id: str
    path: str


class ObjectPage(TypedDict):
    objects: list[FileObject]
    cursor: str | None
    count: int


@runtime_checkable
class Readable(Protocol):
    """A file-like object: ``read()`` returning bytes (or text, sent as UTF-8), possibly as a coroutine."""

    def read(self, *args: Any) -> Any: ...


class FileStream:
    """An open file from ``files.stream``: its record fields, and its bytes as an async iterator.

    ``async for chunk in stream`` yields ``bytes``-like pieces of at most ``chunk_size`` bytes (64 KiB by
    default) and closes the stream at the end; ``async with`` (or :meth:`aclose`) closes it early. Nothing
    holds the whole file on the client side except, in embedded mode, the in-process server's own copy.
    """

    def __init__(self, link: DownloadLink, body: DownloadBody, chunk_size: int = STREAM_CHUNK) -> None:
        """An open file (made by ``files.stream``).

        Args:
            link: the ``files.download`` answer the body belongs to.
            body: the open body of that link.
            chunk_size: the largest piece handed out, in bytes.
        """
        self.id: str = link["id"]
        self.path: str = link["path"]
        self.filename: str = link["filename"]
        self.content_type: str = link["content_type"]
        self.size: int = int(link["size"])
        self.chunk_size = chunk_size
        self._body = body
        self._closed = False

    def __repr__(self) -> str:
        return f"FileStream(id={self.id!r}, filename={self.filename!r}, size={self.size})"

    async def __aiter__(self) -> AsyncIterator[bytes | memoryview]:
        """The bytes, piece by piece; the stream is closed when the loop ends or is left."""
        if self._closed:
            raise RuntimeError("the file stream is closed (it can be read once)")
        try:
            async for chunk in self._body.chunks(self.chunk_size):
                yield chunk
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Release the connection; safe to call more than once."""
        if not self._closed:
            self._closed = True
            await self._body.aclose()

    async def __aenter__(self) -> Self:
        """The stream itself (``async with await files.stream(...) as stream``)."""
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the stream, read to the end or not."""
        await self.aclose()


def _fail(path: str, field: str, reason: str) -> ValidationError:
    return ValidationError(
        f"Invalid argument '{field}': {reason}", details={"field": field, "reason": reason}, endpoint=path
    )


def _check_int(path: str, field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(path, field, f"must be an integer from {low} to {high}")
    return value


def _check_filename(path: str, filename: Any) -> str:
    if not isinstance(filename, str) or not 1 <= len(filename) <= MAX_FILENAME:
        raise _fail(path, "filename", f"must be a string of 1 to {MAX_FILENAME} characters")
    if "/" in filename or "\\" in filename or any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in filename):
        raise _fail(path, "filename", "must not contain '/', '\\' or control characters")
    return filename


def _check_tags(path: str, tags: Any) -> list[str] | None:
    if tags is None:
        return None
    if isinstance(tags, (str, bytes)) or not isinstance(tags, Sequence):
        raise _fail(path, "tags", "must be a list of strings")
    if len(tags) > MAX_TAGS:
        raise _fail(path, "tags", f"must have at most {MAX_TAGS} items")
    for index, tag in enumerate(tags):
        if not isinstance(tag, str) or not 1 <= len(tag) <= MAX_TAG:
            raise _fail(path, f"tags[{index}]", f"must be a string of 1 to {MAX_TAG} characters")
    return list(tags)


async def _read_all(data: Any, path: str) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, Readable):
        content = data.read()
        if inspect.isawaitable(content):
            content = await content
        if isinstance(content, str):
            return content.encode("utf-8")
        if isinstance(content, (bytes, bytearray, memoryview)):
            return bytes(content)
    raise _fail(path, "data", "must be bytes or a file-like object whose read() returns bytes")


def _target(
    path: str, file_id: str | None, category: str | None, logical_path: str | None, actor: str | None
) -> dict[str, Any]:
    if file_id is None and logical_path is None:
        raise _fail(path, "file_id", "give file_id, or path with an optional category")
    body: dict[str, Any] = {}
    if file_id is not None:
        body["id"] = file_id
    if category is not None:
        body["category"] = category
    if logical_path is not None:
        body["logical_path"] = logical_path
    if actor is not None:
        body["actor_user_id"] = actor
    return body


class FilesNamespace(Namespace):
    """Archivist file storage (spec 7.5): objects by category and logical path, folders, views, compliance
    retention and expiring download URLs."""

    async def _post(
        self,
        op: str,
        body: dict[str, Any],
        *,
        safe: bool,
        timeout: float | None,
        max_retries: int | None,
        idempotency_key: str | None = None,
        transfer: bool = False,
    ) -> Any:
        return await self._client.request(
            "POST",
            f"{PREFIX}/{op}",
            body=body,
            safe=safe,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
            transfer=transfer,
        )

    async def upload(
        self,
        data: bytes | bytearray | memoryview | Readable,
        filename: str,
        content_type: str | None = None,
        category: str = "general",
        path: str | None = None,
        tags: Sequence[str] | None = None,
        compliance: bool = False,
        actor: str | None = None,
        retention_days: int = 90,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> FileObject:
        """Store a file (bytes, or a file-like object read to the end) and return its record.

        ``path`` defaults to ``filename``; an upload to a taken path replaces that object's content and keeps
        its id. ``compliance=True`` makes a retained compliance object owned by ``actor`` (required) for
        ``retention_days`` (1 to 3650). The server caps the size (50 MiB by default; 413 beyond it).
        """
        endpoint = f"{PREFIX}/upload"
        _check_filename(endpoint, filename)
        tag_list = _check_tags(endpoint, tags)
        _check_int(endpoint, "retention_days", retention_days, RETENTION_MIN, RETENTION_MAX)
        if compliance and not (isinstance(actor, str) and actor.strip()):
            raise _fail(endpoint, "actor", "is required for a compliance upload")
        content = await _read_all(data, endpoint)
        body: dict[str, Any] = {
            "file_content": base64.b64encode(content).decode("ascii"),
            "filename": filename,
            "category": category,
            "logical_path": path if path is not None else filename,
            "is_compliance": bool(compliance),
            "retention_days": retention_days,
        }
        if content_type is not None:
            body["content_type"] = content_type
        if tag_list is not None:
            body["tags"] = tag_list
        if compliance:
            body["owner_user_id"] = actor
        record: FileObject = await self._post(
            "upload",
            body,
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
            transfer=True,
        )
        return record

    async def download(
        self,
        file_id: str | None = None,
        category: str | None = None,
        path: str | None = None,
        actor: str | None = None,
        expires_seconds: int = 3600,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> DownloadLink:
        """A signed URL that answers a plain GET with the raw bytes until ``expires_at``: the whole answer
        (``download_url``, ``expires_at``, ``id``, ``path``, ``filename``, ``content_type``, ``size``).

        The object is ``file_id``, else ``category`` (default ``general``) with ``path``. A compliance object
        needs ``actor``, and the access is audited.

        In embedded mode (``embedded:`` URLs) the link is ``http://dominus-local.embedded/archivist/blob/...``:
        that host exists only inside this process, so a browser, ``httpx.get`` or ``urllib`` cannot open it.
        Read the bytes with :meth:`fetch` there (in a web app, answer them yourself, as ``example_app``'s
        ``attachment`` helper does), or serve the data directory with ``dominus-local serve`` for real links.
        """
        endpoint = f"{PREFIX}/download"
        body = _target(endpoint, file_id, category, path, actor)
        body["expires_seconds"] = _check_int(endpoint, "expires_seconds", expires_seconds, EXPIRES_MIN, EXPIRES_MAX)
        link: DownloadLink = await self._post(
            "download", body, safe=True, timeout=timeout, max_retries=max_retries
        )
        return link

    async def fetch(
        self,
        file_id: str | None = None,
        category: str | None = None,
        path: str | None = None,
        actor: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> FetchedFile:
        """The file itself: ``{"data": bytes, "filename", "content_type", "size", "id", "path"}``. The target
        is chosen as for :meth:`download`; a compliance object needs ``actor`` and the access is audited."""
        endpoint = f"{PREFIX}/fetch"
        body = _target(endpoint, file_id, category, path, actor)
        data = await self._post(
            "fetch", body, safe=True, timeout=timeout, max_retries=max_retries, transfer=True
        )
        return {
            "data": base64.b64decode(data["data"]),
            "filename": data["filename"],
            "content_type": data["content_type"],
            "size": data["size"],
            "id": data["id"],
            "path": data["path"],
        }

    async def stream(
        self,
        file_id: str | None = None,
        category: str | None = None,
        path: str | None = None,
        actor: str | None = None,
        *,
        chunk_size: int = STREAM_CHUNK,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> FileStream:
        """The file as a stream of bytes, for answers that must not hold a large file in memory.

        Two round trips: a short-lived signed link (``files.download``, so a compliance object needs
        ``actor`` and is audited), then a GET of that link whose body is read piece by piece. Use it with
        ``async with`` or iterate it to the end, which closes it; see :class:`FileStream`.

        Args:
            file_id: the object's id, else ``category`` (default ``general``) with ``path``.
            category: the object's category.
            path: the object's logical path.
            actor: the user on whose behalf a compliance object is read.
            chunk_size: the largest piece handed out, in bytes (at least 1).
            timeout: seconds per attempt of each round trip (default: the transfer timeout for the bytes).
            max_retries: retries of each round trip before the bytes start (default: the client's).

        Returns:
            An open :class:`FileStream` with ``id``, ``path``, ``filename``, ``content_type`` and ``size``.

        Raises:
            NotFoundError: no such object (or it went away between the two round trips).
            ValidationError: a bad argument.
        """
        endpoint = f"{PREFIX}/download"
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise _fail(endpoint, "chunk_size", "must be a positive integer")
        opener = getattr(self._client, "open_download", None)
        if opener is None:
            raise TypeError("files.stream needs a Dominus client (its transport reads the bytes)")
        link = await self.download(
            file_id, category, path, actor, STREAM_LINK_SECONDS, timeout=timeout, max_retries=max_retries
        )
        body = await opener(link["download_url"], timeout=timeout, max_retries=max_retries)
        return FileStream(link, body, chunk_size)

    async def list(
        self,
        category: str | None = None,
        prefix: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ObjectPage:
        """One page of object records ordered by category then path: ``{objects, cursor, count}``. ``prefix``
        matches the start of the logical path; pass ``cursor`` back for the next page."""
        endpoint = f"{PREFIX}/list"
        body: dict[str, Any] = {"limit": _check_int(endpoint, "limit", limit, 1, LIMIT_MAX)}
        if category is not None:
            body["category"] = category
        if prefix is not None:
            body["prefix"] = prefix
        if cursor is not None:
            body["cursor"] = cursor
        page: ObjectPage = await self._post("list", body, safe=True, timeout=timeout, max_retries=max_retries)
        return page

    async def delete(
        self,
        file_id: str | None = None,
        category: str | None = None,
        path: str | None = None,
        actor: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Delete an object: ``{deleted, id}``. A compliance object needs ``actor``, is audited, and is
        refused while under retention (``ConflictError`` with code ``retention_active``)."""
        endpoint = f"{PREFIX}/delete"
        body = _target(endpoint, file_id, category, path, actor)
        data: dict[str, Any] = await self._post(
            "delete", body, safe=False, timeout=timeout, max_retries=max_retries, idempotency_key=idempotency_key
        )
        return data

    async def move(
        self,
        file_id: str,
        new_category: str | None = None,
        new_path: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> FileObject:
        """Give an object a new category and/or path (at least one); the updated record."""
        endpoint = f"{PREFIX}/move"
        if new_category is None and new_path is None:
            raise _fail(endpoint, "new_path", "give new_category, new_path or both")
        body: dict[str, Any] = {"id": file_id}
        if new_category is not None:
            body["new_category"] = new_category
        if new_path is not None:
            body["new_logical_path"] = new_path
        record: FileObject = await self._post(
            "move", body, safe=False, timeout=timeout, max_retries=max_retries, idempotency_key=idempotency_key
        )
        return record

    async def update_meta(
        self,
        file_id: str,
        tags: Sequence[str] | None = None,
        description: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> FileObject:
        """Replace an object's ``tags`` and/or ``description`` (allowed on compliance objects too)."""
        endpoint = f"{PREFIX}/update"
        tag_list = _check_tags(endpoint, tags)
        if description is not None and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION):
            raise _fail(endpoint, "description", f"must be a string of at most {MAX_DESCRIPTION} characters")
        if tag_list is None and description is None:
            raise _fail(endpoint, "tags", "give tags, description or both")
        body: dict[str, Any] = {"id": file_id}
        if tag_list is not None:
            body["tags"] = tag_list
        if description is not None:
            body["description"] = description
        record: FileObject = await self._post(
            "update", body, safe=False, timeout=timeout, max_retries=max_retries, idempotency_key=idempotency_key
        )
        return record

    async def browse(
        self,
        path: str = "/",
        category: str | None = None,
        view: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> dict[str, Any]:
        """One folder level: ``{path, folders, files, cursor}``, folders first. Without ``category`` the first
        path segment names the category, and ``"/"`` lists the categories of ``view`` (default ``all``)."""
        endpoint = f"{PREFIX}/browse"
        body: dict[str, Any] = {"path": path, "limit": _check_int(endpoint, "limit", limit, 1, LIMIT_MAX)}
        if category is not None:
            body["category"] = category
        if view is not None:
            body["view"] = view
        if cursor is not None:
            body["cursor"] = cursor
        data: dict[str, Any] = await self._post(
            "browse", body, safe=True, timeout=timeout, max_retries=max_retries
        )
        return data

    async def get_storage_stats(
        self, *, timeout: float | None = None, max_retries: int | None = None
    ) -> dict[str, Any]:
        """``{total_objects, total_size_bytes, by_category: {name: {objects, size_bytes}}}``."""
        data: dict[str, Any] = await self._client.request(
            "GET", f"{PREFIX}/stats", safe=True, timeout=timeout, max_retries=max_retries
        )
        return data

    async def list_categories(
        self, *, timeout: float | None = None, max_retries: int | None = None
    ) -> dict[str, Any]:
        """``{categories: [{name, object_count, total_size_bytes}, ...]}``."""
        data: dict[str, Any] = await self._client.request(
            "GET", f"{PREFIX}/categories", safe=True, timeout=timeout, max_retries=max_retries
        )
        return data

    async def list_views(
        self, include_reserved: bool = False, *, timeout: float | None = None, max_retries: int | None = None
    ) -> dict[str, Any]:
        """``{views: [{name, categories, reserved}], total_views, is_admin}``; ``include_reserved`` counts for
        administrators only."""
        data: dict[str, Any] = await self._post(
            "views",
            {"include_reserved": bool(include_reserved)},
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return data

    async def list_categories_in_view(
        self, view: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> dict[str, Any]:
        """``{view, categories}`` for one view; ``NotFoundError`` for an unknown view."""
        endpoint = f"{PREFIX}/views/{{view}}/categories"
        if not isinstance(view, str) or not view:
            raise _fail(endpoint, "view", "must be a non-empty string")
        data: dict[str, Any] = await self._client.request(
            "GET",
            f"{PREFIX}/views/{quote(view, safe='')}/categories",
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return data

    async def create_folder(
        self,
        path: str,
        category: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Make an empty folder visible: ``{created, path, placeholder_id, message}``."""
        body: dict[str, Any] = {"path": path}
        if category is not None:
            body["category"] = category
        data: dict[str, Any] = await self._post(
            "folder/create",
            body,
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return data

    async def delete_folder(
        self,
        path: str,
        category: str | None = None,
        force: bool = False,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Delete a folder: ``{deleted, path, deleted_count}``. Without ``force`` it must be empty; with it,
        everything below goes, unless a compliance object under retention lies there."""
        body: dict[str, Any] = {"path": path, "force": bool(force)}
        if category is not None:
            body["category"] = category
        data: dict[str, Any] = await self._post(
            "folder/delete",
            body,
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return data

    async def factory_reset(
        self,
        confirm: bool = False,
        preserve_compliance: bool = True,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Delete every object (administrators only; ``confirm=True`` required), keeping compliance objects
        unless ``preserve_compliance=False``: ``{reset, deleted_count, retained_count, by_category}``."""
        data: dict[str, Any] = await self._post(
            "factory-reset",
            {"confirm": bool(confirm), "preserve_compliance": bool(preserve_compliance)},
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return data

