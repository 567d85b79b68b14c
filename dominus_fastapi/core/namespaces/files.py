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
    """Archivist file storage (spec 7.5): ``client.files``.

    Objects live in a ``category`` (a top-level space such as ``general``) under a logical ``path``; folders,
    views (named sets of categories for ``browse``), compliance retention and expiring download URLs come with
    them. Methods that take ``file_id=None, category=None, path=None`` act on the object ``file_id`` when it is
    given, else on ``path`` inside ``category``; a missing object raises ``NotFoundError``. ``upload`` and
    ``fetch`` use the transfer timeout (``DOMINUS_TRANSFER_TIMEOUT``) unless ``timeout`` is given.

    Every method also takes, keyword only, ``timeout`` (seconds one attempt may take; default: the client's
    ``timeout``, ``DOMINUS_TIMEOUT``) and ``max_retries`` (how many more attempts a failure that is safe to
    repeat gets; default: the client's ``max_retries``, ``0`` for none). The calls that would not be harmless
    to repeat take ``idempotency_key`` too: the server carries out a key once (spec 3.5); when it is left out,
    the client makes one for the call, so that its own retries never repeat the change. Any call may also raise
    the transport errors (``DominusConnectionError``, ``DominusTimeoutError``, ``ServiceError``,
    ``RateLimitError``) once its retries are spent.
    """

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

        An upload to a taken path replaces that object's content and keeps its id. The server caps the size (50 MiB
        by default).

        Args:
            data: The content: bytes, or an object whose ``read()`` (possibly async) returns bytes or text.
            filename: 1 to 255 characters, without ``/``, ``\\`` or control characters.
            content_type: Default: guessed from ``filename``, else ``application/octet-stream``.
            category: The category to store it in.
            path: Its logical path in ``category``; default: ``filename``.
            tags: At most 50 strings of 1 to 64 characters.
            compliance: Make it a compliance object: it cannot be deleted, moved or overwritten for
                ``retention_days``, and every access to it is audited.
            actor: The owner of a compliance object (a user id); required when ``compliance`` is true.
            retention_days: How long a compliance object is retained, 1 to 3650 days (checked on every upload;
                only compliance objects are retained).

        Raises:
            ValidationError: A bad ``filename``, ``tags`` or ``retention_days``, or no ``actor`` for a compliance
                upload (before sending); or a file above the size cap (413).
            ConflictError: The path holds a compliance object under retention (``retention_active``).
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
        """A signed URL that answers a plain GET, without credentials, with the raw bytes until ``expires_at``.

        In embedded mode (``embedded:`` URLs) the link is ``http://dominus-local.embedded/archivist/blob/...``: that
        host exists only inside this process, so a browser, ``httpx.get`` or ``urllib`` cannot open it. Read the bytes
        with :meth:`fetch` there (in a web app, answer them yourself, as ``example_app``'s ``attachment`` helper
        does), or serve the data directory with ``dominus-local serve`` for real links.

        Args:
            file_id: The object's id; when given, ``category`` and ``path`` are not needed.
            category: With ``path``, names the object when there is no ``file_id`` (default ``general``).
            path: The object's logical path inside ``category``.
            actor: Who accesses the object (a user id); required for a compliance object, whose access is audited.
            expires_seconds: How long the URL works, 60 to 86400 seconds.

        Returns:
            ``{download_url, expires_at, id, path, filename, content_type, size}``.
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
        """The file itself, through the API: ``{"data": bytes, "filename", "content_type", "size", "id", "path"}``.

        Args:
            file_id: The object's id; when given, ``category`` and ``path`` are not needed.
            category: With ``path``, names the object when there is no ``file_id`` (default ``general``).
            path: The object's logical path inside ``category``.
            actor: Who accesses the object (a user id); required for a compliance object, whose access is audited.
        """
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
        """One page of object records, ordered by category then path: ``{objects, cursor, count}``.

        Args:
            category: Only this category's objects; ``None``: every category.
            prefix: Only objects whose logical path starts with this.
            limit: At most this many records, 1 to 1000.
            cursor: The ``cursor`` of the previous page, for the next one (``None`` in the answer: no more pages).
        """
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
        """Delete an object: ``{deleted, id}``.

        Args:
            file_id: The object's id; when given, ``category`` and ``path`` are not needed.
            category: With ``path``, names the object when there is no ``file_id`` (default ``general``).
            path: The object's logical path inside ``category``.
            actor: Who accesses the object (a user id); required for a compliance object, whose access is audited.

        Raises:
            ConflictError: A compliance object under retention (code ``retention_active``).
        """
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
        """Give an object a new category and/or path (at least one); returns the updated record.

        Raises:
            ConflictError: A compliance object under retention, or the new path is taken.
        """
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
        """One folder level: ``{path, folders, files, cursor}``, folders first, each group by name.

        Args:
            path: The folder; without ``category`` its first segment names the category, and ``"/"`` lists the
                categories of ``view``.
            category: The category to browse inside.
            view: The named set of categories to browse (default ``all``; ``reserved`` for administrators).
            limit: At most this many entries (folders and files together), 1 to 1000.
            cursor: The ``cursor`` of the previous page, for the next one.
        """
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
        """Delete a folder: ``{deleted, path, deleted_count}``.

        Args:
            force: Delete everything below too; without it the folder must be empty.

        Raises:
            ConflictError: The folder is not empty (without ``force``), or holds a compliance object under retention.
        """
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
        """Delete every object (administrators only): ``{reset, deleted_count, retained_count, by_category}``.

        Args:
            confirm: Must be ``True``, so that no call empties the store by accident.
            preserve_compliance: Keep every compliance object, expired or not (counted in ``retained_count``);
                ``False`` deletes them too, and the reset is audited.
        """
        data: dict[str, Any] = await self._post(
            "factory-reset",
            {"confirm": bool(confirm), "preserve_compliance": bool(preserve_compliance)},
            safe=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return data

