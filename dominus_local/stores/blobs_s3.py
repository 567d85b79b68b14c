"""Archivist's byte store on S3-compatible storage (``DOMINUS_LOCAL_STORAGE_URL=s3://BUCKET?...``).

URL form: ``s3://BUCKET[/PREFIX]?endpoint_url=URL&region=REGION[&presign=true]``. ``endpoint_url`` is optional
(AWS itself when absent); ``region`` defaults to ``us-east-1``; ``PREFIX`` puts every blob under that key
prefix, so several deployments can share a bucket. Credentials come from the standard AWS sources (the
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` environment variables, a profile, an instance role) and
never from the URL. The bucket is created at start when it is missing.

A ``PUT`` of one S3 object is atomic (a reader sees the whole object or nothing), which is what
:class:`~dominus_local.stores.blobs.BlobStore` promises. With ``presign=true``, Archivist's ``download``
answers presigned S3 ``GET`` URLs instead of URLs of its own ``/archivist/blob/{token}`` route.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from dominus_local.stores.blobs import BlobNotFoundError, BlobStore, check_key

__all__ = ["S3BlobStore", "S3Location", "parse_s3_url"]

DEFAULT_REGION = "us-east-1"
_TRUE = ("1", "true", "yes", "on")
_KNOWN_PARAMS = ("endpoint_url", "region", "presign")


@dataclass(frozen=True)
class S3Location:
    """What an ``s3://`` storage URL names."""

    bucket: str
    prefix: str
    endpoint_url: str | None
    region: str
    presign: bool


def parse_s3_url(url: str) -> S3Location:
    """Parse ``s3://BUCKET[/PREFIX]?endpoint_url=...&region=...&presign=...``; ``ValueError`` naming the part
    that is wrong. The URL holds no credentials, and one that carries a user or password is refused."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise ValueError("must start with s3://")
    if "@" in parts.netloc:
        raise ValueError("must not carry credentials; use the AWS environment variables")
    bucket = parts.netloc
    if not (3 <= len(bucket) <= 63) or not all(c.islower() or c.isdigit() or c in ".-" for c in bucket):
        raise ValueError("needs a bucket name of 3 to 63 lower-case letters, digits, '.' or '-'")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(params) - set(_KNOWN_PARAMS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(_KNOWN_PARAMS)}")
    endpoint = params.get("endpoint_url") or None
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ValueError("endpoint_url must be an http:// or https:// URL")
    prefix = parts.path.strip("/")
    return S3Location(
        bucket=bucket,
        prefix=f"{prefix}/" if prefix else "",
        endpoint_url=endpoint,
        region=params.get("region") or DEFAULT_REGION,
        presign=params.get("presign", "").lower() in _TRUE,
    )


class S3BlobStore(BlobStore):
    """Blobs as objects of one S3 bucket, through aioboto3 (one pooled client per store).

    Call :meth:`open` before use (it creates the client, and the bucket when missing) and :meth:`close` after.
    """

    def __init__(self, url: str) -> None:
        self.location = parse_s3_url(url)
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    def __repr__(self) -> str:
        loc = self.location
        return f"S3BlobStore(bucket={loc.bucket!r}, prefix={loc.prefix!r}, endpoint_url={loc.endpoint_url!r})"

    @property
    def presigns(self) -> bool:
        """Whether download URLs are presigned S3 URLs (``presign=true``)."""
        return self.location.presign

    async def open(self) -> None:
        """Create the client, then the bucket when it is missing (a race with another process is harmless)."""
        from botocore.config import Config

        session = _session()
        config = Config(retries={"max_attempts": 3, "mode": "standard"}, signature_version="s3v4")
        self._client = await self._stack.enter_async_context(
            session.client(
                "s3", endpoint_url=self.location.endpoint_url, region_name=self.location.region, config=config
            )
        )
        await self._ensure_bucket()

    async def _ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        bucket = self.location.bucket
        try:
            await self._client.head_bucket(Bucket=bucket)
            return
        except ClientError as exc:
            if _status(exc) != 404 and _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise
        options: dict[str, Any] = {"Bucket": bucket}
        if self.location.region != DEFAULT_REGION:
            options["CreateBucketConfiguration"] = {"LocationConstraint": self.location.region}
        try:
            await self._client.create_bucket(**options)
        except ClientError as exc:
            if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    def _name(self, key: str) -> str:
        return self.location.prefix + check_key(key)

    def _require_open(self) -> Any:
        if self._client is None:
            raise RuntimeError("S3BlobStore.open() was not called")
        return self._client

    async def ping(self) -> None:
        """Raise when the bucket cannot be reached."""
        await self._require_open().head_bucket(Bucket=self.location.bucket)

    async def put(self, key: str, data: bytes) -> None:
        await self._require_open().put_object(Bucket=self.location.bucket, Key=self._name(key), Body=bytes(data))

    async def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            answer = await self._require_open().get_object(Bucket=self.location.bucket, Key=self._name(key))
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise BlobNotFoundError(key) from None
            raise
        async with answer["Body"] as body:
            data: bytes = await body.read()
        return data

    async def delete(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        client = self._require_open()
        name = self._name(key)
        try:
            await client.head_object(Bucket=self.location.bucket, Key=name)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                return False
            raise
        await client.delete_object(Bucket=self.location.bucket, Key=name)
        return True

    async def presigned_url(self, key: str, *, expires_seconds: int, filename: str, content_type: str) -> str:
        """A presigned ``GET`` URL of the blob, valid for ``expires_seconds``, that answers with the object's
        content type and an attachment disposition naming ``filename``."""
        disposition = f"attachment; filename*=UTF-8''{quote(filename, safe='')}"
        url: str = await self._require_open().generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.location.bucket,
                "Key": self._name(key),
                "ResponseContentType": content_type,
                "ResponseContentDisposition": disposition,
            },
            ExpiresIn=expires_seconds,
        )
        return url

    async def keys(self) -> list[str]:
        """Every blob key under this store's prefix (a listing through ``ListObjectsV2`` pages)."""
        return [key for key, _ in await self._listing()]

    async def _listing(self) -> list[tuple[str, datetime]]:
        client = self._require_open()
        paginator = client.get_paginator("list_objects_v2")
        found: list[tuple[str, datetime]] = []
        async for page in paginator.paginate(Bucket=self.location.bucket, Prefix=self.location.prefix):
            for item in page.get("Contents", []):
                name = str(item["Key"])[len(self.location.prefix) :]
                if "/" not in name:
                    found.append((name, item["LastModified"]))
        return found

    async def sweep(self, keep: Iterable[str], *, older_than: float = 600.0) -> int:
        """Remove objects under the prefix that no object row references and that are older than
        ``older_than`` seconds (by the storage server's clock of their last write)."""
        wanted = set(keep)
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=older_than)
        client = self._require_open()
        removed = 0
        for name, modified in await self._listing():
            if name in wanted or modified > cutoff:
                continue
            with contextlib.suppress(ValueError):
                await client.delete_object(Bucket=self.location.bucket, Key=self._name(name))
                removed += 1
        return removed

    async def close(self) -> None:
        self._client = None
        await self._stack.aclose()


_SESSIONS: list[Any] = []


def _session() -> Any:
    """One aioboto3 session per process: it loads the S3 service model once (a second or so), and every
    store's client reuses it. Credentials are still resolved per client, from the environment."""
    if not _SESSIONS:
        import aioboto3

        _SESSIONS.append(aioboto3.Session())
    return _SESSIONS[0]


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
