"""File downloads: an Archivist file as a streaming answer.

::

    @app.get("/files/{name}")
    async def download(name: str, data: TenantData) -> StreamingResponse:
        return file_response(await data.files.stream(name))

:func:`file_response` answers with ``Content-Type``, ``Content-Length``, a ``Content-Disposition`` that any
file name survives (RFC 6266 with the RFC 5987 ``filename*`` form) and ``X-Content-Type-Options: nosniff``.
The bytes flow from :meth:`~dominus_fastapi.core.namespaces.files.FilesNamespace.stream` piece by piece, so
the app never holds the whole file (see :class:`~dominus_fastapi.core.namespaces.files.FileStream`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator
from typing import Final, Literal
from urllib.parse import quote

from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

from dominus_fastapi.core.namespaces.files import FileStream

__all__ = ["ACTIVE_CONTENT_TYPES", "content_disposition", "file_response"]

ACTIVE_CONTENT_TYPES: Final = frozenset(
    {"text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml", "text/javascript"}
)
"""Types a browser would run as part of the app's origin: :func:`file_response` never serves them inline."""
_ASCII_SAFE: Final = frozenset(" !#$&'()+-.0123456789@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{}~")
"""Characters kept in the ASCII stand-in: no quote or backslash (they end or escape the quoted string), and no
``;``, ``=``, ``,`` or ``%``, which naive parsers split on or percent-decode."""


_REPLACED: Final = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _visible(filename: str) -> str:
    """``filename`` without control, format and line-breaking characters (``\\u202e`` and the like reverse how
    a name reads, ``.exe`` shown as ``.pdf``; ``\\u2028`` breaks it across lines), which become ``_``."""
    cleaned = "".join("_" if unicodedata.category(ch) in _REPLACED else ch for ch in filename)
    cleaned = cleaned.replace("/", "_").replace("\\", "_").strip(" .")
    return cleaned or "download"


def content_disposition(filename: str, disposition: Literal["attachment", "inline"] = "attachment") -> str:
    """A ``Content-Disposition`` value that carries any file name safely (RFC 6266, RFC 5987).

    ``filename=`` holds an ASCII stand-in for old clients (other characters become ``_``, as do ``"``, ``\\``,
    ``;``, ``=``, ``,`` and ``%``, so that no parser, however naive, reads a second parameter there);
    ``filename*=UTF-8''...`` holds the real name, percent-encoded. Control, format and line-breaking
    characters and path separators are replaced in both.

    Args:
        filename: the name to offer.
        disposition: ``attachment`` (save) or ``inline`` (show).

    Returns:
        The header value.

    Raises:
        ValueError: an unknown ``disposition``.
    """
    if disposition not in ("attachment", "inline"):
        raise ValueError(f"disposition must be 'attachment' or 'inline', not {disposition!r}")
    visible = _visible(filename)
    fallback = "".join(ch if ch in _ASCII_SAFE else "_" for ch in visible)
    encoded = quote(visible, safe="")
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


async def _chunks(stream: FileStream) -> AsyncIterator[bytes]:
    async for chunk in stream:
        # One piece at a time (64 KiB by default): a server may expect ``bytes`` in ``http.response.body``.
        yield chunk if isinstance(chunk, bytes) else bytes(chunk)


def file_response(
    stream: FileStream,
    *,
    filename: str | None = None,
    disposition: Literal["attachment", "inline"] = "attachment",
    headers: dict[str, str] | None = None,
) -> StreamingResponse:
    """A streaming answer for an open :class:`FileStream` (from ``files.stream`` or ``TenantFiles.stream``).

    ``inline`` is honoured except for types a browser would run as the app's own page
    (:data:`ACTIVE_CONTENT_TYPES`: HTML, SVG, XML, JavaScript), which are always sent as attachments, so
    an uploaded file cannot script the app's origin. The stream is closed when the answer ends or the
    client goes away.

    Args:
        stream: the open file.
        filename: the name to offer (default: the file's own).
        disposition: ``attachment`` (default) or ``inline``.
        headers: more headers (``Cache-Control`` ...); they cannot replace the four this sets.

    Returns:
        The ``StreamingResponse`` (status 200).

    Raises:
        ValueError: an unknown ``disposition``.
    """
    media_type = stream.content_type or "application/octet-stream"
    if media_type.split(";", 1)[0].strip().lower() in ACTIVE_CONTENT_TYPES:
        disposition = "attachment"
    answer_headers = dict(headers or {})
    answer_headers.update(
        {
            "Content-Disposition": content_disposition(filename or stream.filename, disposition),
            "Content-Length": str(stream.size),
            "X-Content-Type-Options": "nosniff",
        }
    )
    return StreamingResponse(
        _chunks(stream), media_type=media_type, headers=answer_headers, background=BackgroundTask(stream.aclose)
    )
