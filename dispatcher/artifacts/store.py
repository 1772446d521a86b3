"""The one contract every artifact store follows (a local folder, S3 and S3-compatible stores;
GCS and Azure Blob slot in beside them).

A recording is written as a multipart upload the dispatcher opens and completes, whose parts the
bot puts through URLs the store signs for exactly one part of one upload, for a short time: the
bot never holds a credential of the store. Everything else (the report, erasure, legal holds,
download URLs) is the dispatcher's own call. Keys are `/`-separated paths under the store's prefix.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

STORE_ACCESS_DENIED = "store_access_denied"  # the store refused the dispatcher's credentials or grants
STORE_UNREACHABLE = "store_unreachable"  # no answer: the network, a timeout, a 5xx, the sign-in service
STORE_FULL = "store_full"  # no space or over a quota
STORE_HELD = "store_held"  # the object is under a legal hold
STORE_MISSING = "store_missing"  # the bucket, container or folder does not exist
STORE_FAILED = "store_failed"  # any other refusal
CLIENT_WORDS = {STORE_ACCESS_DENIED: "the recording store refused the dispatcher's access",
                STORE_UNREACHABLE: "the recording store did not answer",
                STORE_FULL: "the recording store is full",
                STORE_HELD: "the recording store holds the objects under a legal hold",
                STORE_MISSING: "the recording store's bucket or folder does not exist",
                STORE_FAILED: "the recording store refused the request"}


class StoreError(Exception):
    """The store refused or could not be reached; the message says what to fix where it can.

    The message may quote the store (an AWS refusal names the account and the role): it goes to the
    log and the admin's `GET /status` only. What an API client is shown is `client_text`: the stable
    `reason` and words of the dispatcher's own."""

    def __init__(self, message: str, reason: str = STORE_FAILED) -> None:
        super().__init__(message)
        self.reason = reason if reason in CLIENT_WORDS else STORE_FAILED

    @property
    def client_text(self) -> str:
        return f"{CLIENT_WORDS[self.reason]} ({self.reason}): the dispatcher's log and GET /status say why"


def http_reason(status: int) -> str:
    """The stable reason of a store's HTTP refusal (GCS and Azure Blob alike)."""
    if status in (401, 403):
        return STORE_ACCESS_DENIED
    if status == 404:
        return STORE_MISSING
    if status in (408, 429) or status >= 500:
        return STORE_UNREACHABLE
    return STORE_FAILED


def os_reason(exc: OSError) -> str:
    """The stable reason of a folder store's OSError."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return STORE_FULL
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return STORE_ACCESS_DENIED
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return STORE_MISSING
    return STORE_FAILED


@dataclass(frozen=True)
class Part:
    number: int
    size: int
    etag: str = ""


@dataclass(frozen=True)
class OpenUpload:
    key: str
    upload_id: str
    started_at: float  # epoch seconds


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int


class ArtifactStore(Protocol):
    where: str  # for people: the folder or s3://bucket/prefix
    prefix: str  # every key of this deployment starts with it ("" for the whole store)
    # A part's URL can still write its object once the upload is completed (an Azure SAS takes Put Blob):
    # the session's objects are not erased before its last part URL has expired.
    part_urls_outlive_uploads: bool
    # Whether the store keeps an object's earlier versions (an erasure then hides the current objects; their
    # versions stay readable by version id until the bucket's lifecycle removes them): None until checked, or
    # where the store does not say.
    versioned: bool | None

    async def check(self) -> None:
        """Raises StoreError when the store cannot be written (checked at start-up and shown in status);
        the object it writes to find out is deleted again, and `versioned` learnt where the store says."""

    async def open_upload(self, key: str, content_type: str, tags: Mapping[str, str] | None = None) -> str:
        """Starts a multipart upload to `key` (tagged with `tags` where the store has tags); its upload id."""

    def part_url(self, key: str, upload_id: str, part: int, seconds: float) -> str:
        """A URL that takes one PUT of `part` of that upload for `seconds` (absolute, or a path on this dispatcher)."""

    async def parts(self, key: str, upload_id: str) -> list[Part]:
        """The parts that arrived, in order."""

    async def complete(self, key: str, upload_id: str, parts: list[Part]) -> None:
        """Joins `parts` into the object `key`."""

    async def abort(self, key: str, upload_id: str) -> None:
        """Drops the upload and every part of it."""

    async def open_uploads(self, prefix: str) -> list[OpenUpload]:
        """The uploads still open under `prefix` (nothing should stay open after a session)."""

    async def patch(self, key: str, writes: list[tuple[int, bytes]], first_part: int,
                    tags: Mapping[str, str] | None = None) -> None:
        """Overwrites bytes at offsets of an existing object, all of them inside its first `first_part` bytes;
        `tags`: the object's, for a store whose rewrite would drop them (S3's tags are not copied)."""

    async def put(self, key: str, data: bytes, content_type: str, tags: Mapping[str, str] | None = None) -> None:
        """Writes a small object, tagged with `tags` where the store has tags (the key name, the release)."""

    async def put_new(self, key: str, data: bytes, content_type: str) -> bool:
        """Writes a small object only if there is none (a conditional create: of two writers at
        once, one wins); False when one was there already."""

    async def get(self, key: str) -> bytes | None:
        """A small object (a report, an index), or None when there is none."""

    async def objects_under(self, prefix: str) -> list[StoredObject]: ...

    async def delete(self, keys: list[str]) -> None:
        """Deletes `keys`; a held one is refused by the store itself (StoreError)."""

    async def hold(self, keys: list[str], on: bool) -> None:
        """Puts a legal hold on `keys` (on) or lifts it: a held object is never deleted, by erasure or lifecycle."""

    async def held(self, keys: list[str]) -> list[str]:
        """Those of `keys` under a legal hold."""

    def download_url(self, key: str, seconds: float) -> str:
        """A URL that reads `key` for `seconds` (absolute, or a path on this dispatcher)."""
