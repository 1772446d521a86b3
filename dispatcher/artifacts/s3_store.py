"""S3 and S3-compatible stores (MinIO, R2, …) through botocore, which the dispatcher already ships.

The dispatcher opens, completes and aborts each multipart upload and signs the bot one
`UploadPart` URL per part (SigV4 query signing: the URL names the bucket, the key, the upload id
and the part number, and expires): the bot never holds a credential. botocore's client is
synchronous: each call runs in a thread, bounded by its timeouts and retries (standard mode, 3
attempts). `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`) points it at another store; then paths
are addressed path-style, which every S3-compatible server takes. Objects are tagged with the
session's key name and release (a team searches its bucket by them); a legal hold is S3 Object
Lock's, which the bucket must have enabled (the stacks' `recordingHold`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlencode

from dispatcher.artifacts.store import (
    STORE_ACCESS_DENIED,
    STORE_FAILED,
    STORE_FULL,
    STORE_HELD,
    STORE_MISSING,
    STORE_UNREACHABLE,
    OpenUpload,
    Part,
    StoredObject,
    StoreError,
)

log = logging.getLogger("dispatcher.artifacts")
T = TypeVar("T")
MAX_COPY_BYTES = 5 * 1024**3  # UploadPartCopy's largest part
NO_OBJECT_LOCK = ("InvalidRequest", "ObjectLockConfigurationNotFoundError")
HOLD_NEEDS = "the bucket has no S3 Object Lock: legal holds need it (set the stack's `recordingHold: true`, " \
             "which turns Object Lock on for the bucket)"


def tagging(tags: Mapping[str, str] | None) -> dict[str, str]:
    """`Tagging` for PutObject/CreateMultipartUpload: a URL-encoded query string (S3's own form)."""
    return {"Tagging": urlencode(dict(tags))} if tags else {}


def split_destination(destination: str) -> tuple[str, str]:
    """`s3://bucket/prefix` → (bucket, prefix without slashes at its ends)."""
    bucket, _, prefix = destination.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


class S3Store:
    part_urls_outlive_uploads = False  # a part URL is its upload's alone
    versioned: bool | None = None

    def __init__(self, bucket: str, prefix: str, env: Mapping[str, str], client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.where = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self._client = client if client is not None else _client(env)

    async def check(self) -> None:
        probe = _joined(self.prefix, ".voicefleet-write-check")
        answer = await self._call(lambda: self._client.put_object(Bucket=self.bucket, Key=probe, Body=b""), "write")
        # A write answered with a version id is a versioned bucket's (Object Lock turns versioning on).
        self.versioned = answer.get("VersionId") not in (None, "null")
        try:
            await self.delete([probe])
        except StoreError as exc:  # the write is what is checked; an erasure would say what deleting lacks
            log.warning("the recordings store's write check %s was left in place: %s", probe, exc)

    async def open_upload(self, key: str, content_type: str, tags: Mapping[str, str] | None = None) -> str:
        answer = await self._call(lambda: self._client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type, **tagging(tags)), "open an upload")
        return str(answer["UploadId"])

    def part_url(self, key: str, upload_id: str, part: int, seconds: float) -> str:
        url: str = self._client.generate_presigned_url(
            "upload_part", Params={"Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": part},
            ExpiresIn=int(seconds))
        return url

    async def parts(self, key: str, upload_id: str) -> list[Part]:
        def listed() -> list[Part]:
            found: list[Part] = []
            marker = 0
            while True:
                page = self._client.list_parts(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                               PartNumberMarker=marker)
                found += [Part(p["PartNumber"], p["Size"], p["ETag"]) for p in page.get("Parts", [])]
                if not page.get("IsTruncated"):
                    return found
                marker = page["NextPartNumberMarker"]

        return await self._call(listed, "list the parts")

    async def complete(self, key: str, upload_id: str, parts: list[Part]) -> None:
        done = {"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]}
        await self._call(lambda: self._client.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload=done), "complete the upload")

    async def abort(self, key: str, upload_id: str) -> None:
        await self._call(lambda: self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id),
                         "abort the upload")

    async def open_uploads(self, prefix: str) -> list[OpenUpload]:
        answer = await self._call(lambda: self._client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix),
                                  "list open uploads")
        return [OpenUpload(u["Key"], u["UploadId"], u["Initiated"].timestamp()) for u in answer.get("Uploads", [])]

    async def patch(self, key: str, writes: list[tuple[int, bytes]], first_part: int,
                    tags: Mapping[str, str] | None = None) -> None:
        """S3 cannot change bytes in place: the first part is read, patched and uploaded again as part 1
        of a new upload of the same key, the rest copied server-side behind it (UploadPartCopy)."""
        def rewrite() -> None:
            size = int(self._client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
            head_end = min(size, first_part)
            head = bytearray(self._client.get_object(Bucket=self.bucket, Key=key,
                                                     Range=f"bytes=0-{head_end - 1}")["Body"].read())
            for offset, data in writes:
                head[offset:offset + len(data)] = data
            if size <= first_part:
                self._client.put_object(Bucket=self.bucket, Key=key, Body=bytes(head), ContentType="audio/wav",
                                        **tagging(tags))
                return
            upload = self._client.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType="audio/wav",
                                                          **tagging(tags))["UploadId"]
            try:
                parts = [{"PartNumber": 1, "ETag": self._client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload, PartNumber=1, Body=bytes(head))["ETag"]}]
                start = head_end
                while start < size:
                    end = min(size, start + MAX_COPY_BYTES) - 1
                    copied = self._client.upload_part_copy(
                        Bucket=self.bucket, Key=key, UploadId=upload, PartNumber=len(parts) + 1,
                        CopySource={"Bucket": self.bucket, "Key": key}, CopySourceRange=f"bytes={start}-{end}")
                    parts.append({"PartNumber": len(parts) + 1, "ETag": copied["CopyPartResult"]["ETag"]})
                    start = end + 1
                self._client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload,
                                                       MultipartUpload={"Parts": parts})
            except Exception:
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
                raise

        await self._call(rewrite, "write the WAV header")

    async def put(self, key: str, data: bytes, content_type: str, tags: Mapping[str, str] | None = None) -> None:
        await self._call(lambda: self._client.put_object(Bucket=self.bucket, Key=key, Body=data,
                                                         ContentType=content_type, **tagging(tags)), "write an object")

    async def put_new(self, key: str, data: bytes, content_type: str) -> bool:
        def create() -> bool:
            try:
                self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type,
                                        IfNoneMatch="*")
            except self._client.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                    return False  # another writer's came first (or is being written): that one stands
                raise
            return True

        return await self._call(create, "write an object")

    async def hold(self, keys: list[str], on: bool) -> None:
        def mark() -> None:
            for key in keys:
                self._client.put_object_legal_hold(Bucket=self.bucket, Key=key,
                                                   LegalHold={"Status": "ON" if on else "OFF"})

        await self._locked(mark, "set a legal hold")

    async def held(self, keys: list[str]) -> list[str]:
        def read() -> list[str]:
            found = []
            for key in keys:
                try:
                    answer = self._client.get_object_legal_hold(Bucket=self.bucket, Key=key)
                except self._client.exceptions.ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code")
                    if code in NO_OBJECT_LOCK or code in ("NoSuchObjectLockConfiguration", "NoSuchKey"):
                        continue  # no lock on the bucket, or none ever set on the object: not held
                    raise
                if answer.get("LegalHold", {}).get("Status") == "ON":
                    found.append(key)
            return found

        return await self._call(read, "read the legal holds")

    async def _locked(self, work: Callable[[], T], what: str) -> T:
        try:
            return await self._call(work, what)
        except StoreError as exc:
            if any(code in str(exc) for code in NO_OBJECT_LOCK) or "Object Lock" in str(exc):
                raise StoreError(f"s3://{self.bucket}: cannot {what}: {HOLD_NEEDS}", exc.reason) from None
            raise

    async def get(self, key: str) -> bytes | None:
        def read() -> bytes | None:
            try:
                body: bytes = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except self._client.exceptions.NoSuchKey:
                return None
            return body

        return await self._call(read, "read an object")

    async def objects_under(self, prefix: str) -> list[StoredObject]:
        def listed() -> list[StoredObject]:
            found: list[StoredObject] = []
            token: dict[str, str] = {}
            while True:
                page = self._client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, **token)
                found += [StoredObject(o["Key"], int(o["Size"])) for o in page.get("Contents", [])]
                if not page.get("IsTruncated"):
                    return found
                token = {"ContinuationToken": page["NextContinuationToken"]}

        return await self._call(listed, "list objects")

    async def delete(self, keys: list[str]) -> None:
        def remove() -> None:
            for start in range(0, len(keys), 1000):
                batch = [{"Key": key} for key in keys[start:start + 1000]]
                answer = self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    raise StoreError(f"cannot delete {first.get('Key')}: {first.get('Code')} {first.get('Message')}",
                                     STORE_HELD if "hold" in str(first.get("Message", "")).lower()
                                     else _reason(str(first.get("Code", "")), None))

        await self._call(remove, "delete objects")

    def download_url(self, key: str, seconds: float) -> str:
        url: str = self._client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                                       ExpiresIn=int(seconds))
        return url

    async def _call(self, work: Callable[[], T], what: str) -> T:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await asyncio.to_thread(work)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "error")
            needs = "s3:PutObject, s3:GetObject, s3:DeleteObject, s3:ListBucket, s3:AbortMultipartUpload and " \
                    "s3:ListMultipartUploadParts"
            hint = f" (the dispatcher's role needs {needs} on it)" if code in ("AccessDenied", "403") else ""
            raise StoreError(f"s3://{self.bucket}: cannot {what}: {code} {error.get('Message', '')}{hint}",
                             _reason(code, exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))) from None
        except BotoCoreError as exc:
            raise StoreError(f"s3://{self.bucket}: cannot {what}: {exc}", STORE_UNREACHABLE) from None


DENIED = ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
          "AllAccessDisabled", "AccountProblem")
MISSING = ("NoSuchBucket", "NoSuchUpload")


def _reason(code: str, status: object) -> str:
    """The stable reason of an S3 error code (what a client is told instead of the store's words)."""
    if code in DENIED:
        return STORE_ACCESS_DENIED
    if code in MISSING:
        return STORE_MISSING
    if code in ("QuotaExceeded", "EntityTooLarge"):
        return STORE_FULL
    if code in ("SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout") or \
            (isinstance(status, int) and status >= 500):
        return STORE_UNREACHABLE
    return STORE_FAILED


def _joined(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def _client(env: Mapping[str, str]) -> Any:
    import botocore.session
    from botocore.config import Config

    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"},
                    signature_version="s3v4", s3={"addressing_style": "path" if endpoint else "auto"})
    session = botocore.session.get_session()
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    return session.create_client("s3", region_name=region, endpoint_url=endpoint, config=config)
