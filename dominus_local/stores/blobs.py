"""The byte store behind Archivist: immutable blobs addressed by opaque keys.

Archivist keeps every object's metadata (its logical path included) in the database and its bytes here under
a key it generates, so a logical path never becomes a file-system path. A blob is written once under a fresh
key and never modified in place: replacing an object's content writes a new blob, commits the metadata, then
removes the old blob. :class:`BlobStore` is the interface (an S3 implementation can sit behind it);
:class:`DirectoryBlobStore` keeps blobs as files and :class:`MemoryBlobStore` in memory for ephemeral
instances.
"""

from __future__ import annotations

import abc
import asyncio
import os
import re
import secrets
import time
from collections.abc import Iterable
from pathlib import Path

KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_TEMP_SUFFIX = ".part"


class BlobNotFoundError(LookupError):
    """No blob is stored under the key."""


def check_key(key: str) -> str:
    """A blob key is a short token of letters, digits, ``_`` and ``-``: it can never name a path."""
    if not KEY_PATTERN.match(key):
        raise ValueError("invalid blob key")
    return key


class BlobStore(abc.ABC):
    """Write-once blobs. ``put`` is atomic: a reader sees the whole blob or nothing."""

    @abc.abstractmethod
    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` durably before returning."""

    @abc.abstractmethod
    async def get(self, key: str) -> bytes:
        """The blob's bytes; :class:`BlobNotFoundError` when absent."""

    @abc.abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove the blob; ``False`` when it was absent."""

    async def sweep(self, keep: Iterable[str], *, older_than: float = 600.0) -> int:
        """Remove blobs that no object references (``keep``) and that were written more than ``older_than``
        seconds ago: leftovers of writes whose metadata never committed. The age guard spares a write that
        another process sharing the store is about to commit. Returns how many were removed."""
        return 0

    async def ping(self) -> None:
        """Raise when the store cannot be reached (health checks); nothing to check by default."""
        return None

    async def close(self) -> None:
        """Release what the store holds (nothing by default)."""
        return None


class MemoryBlobStore(BlobStore):
    """Blobs in a dict: for ephemeral instances, gone when the instance stops."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    async def put(self, key: str, data: bytes) -> None:
        self._blobs[check_key(key)] = bytes(data)

    async def get(self, key: str) -> bytes:
        try:
            return self._blobs[check_key(key)]
        except KeyError:
            raise BlobNotFoundError(key) from None

    async def delete(self, key: str) -> bool:
        return self._blobs.pop(check_key(key), None) is not None

    async def close(self) -> None:
        self._blobs.clear()


class DirectoryBlobStore(BlobStore):
    """One file per blob under ``root``, fanned out by the key's first two characters.

    ``put`` writes a temporary file in the target directory, fsyncs it, renames it over the final name and
    fsyncs the directory, so a crash at any point leaves either no file or the complete one; temporary
    files left by a crash are removed by :meth:`sweep` at start. File work runs in a thread so a
    large blob does not stall the event loop.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:2] / key

    def _put_sync(self, key: str, data: bytes) -> None:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.parent / f".{key}.{secrets.token_hex(8)}{_TEMP_SUFFIX}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, final)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(final.parent)

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put_sync, key, data)

    def _get_sync(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFoundError(key) from None

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._get_sync, key)

    def _delete_sync(self, key: str) -> bool:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        return True

    async def delete(self, key: str) -> bool:
        return await asyncio.to_thread(self._delete_sync, key)

    def _sweep_sync(self, keep: set[str], cutoff: float) -> int:
        removed = 0
        for path in self.root.glob("*/*"):
            name = path.name
            try:
                if path.stat().st_mtime > cutoff:
                    continue
                partial = name.startswith(".") and name.endswith(_TEMP_SUFFIX)
                orphan = KEY_PATTERN.match(name) is not None and name not in keep
                if partial or orphan:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    async def sweep(self, keep: Iterable[str], *, older_than: float = 600.0) -> int:
        """Also removes the temporary files of interrupted writes (same age guard)."""
        return await asyncio.to_thread(self._sweep_sync, set(keep), time.time() - older_than)


def _fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)
