"""Google Cloud Storage (`RECORDING_DESTINATION=gs://bucket/prefix`) through its XML API's multipart
uploads, which mirror S3's: one model for both stores.

The shapes (https://cloud.google.com/storage/docs/multipart-uploads and the XML API reference pages
post-object-multipart, put-object-multipart, list-parts (GET ?uploadId), post-object-complete,
delete-multipart, list-multipart-uploads (GET bucket ?uploads)): `POST /<key>?uploads` answers an
`UploadId`; `PUT /<key>?partNumber=N&uploadId=ID` takes a part (1 to 10,000, at least 5 MiB but the
last, one put again replaces it); `POST /<key>?uploadId=ID` with `CompleteMultipartUpload` joins the
parts named; `DELETE` aborts. The bot gets a V4 signed URL for that one PUT (gcs_signing.py).

Why not resumable uploads: a resumable session URL takes the whole object, in order, and a chunk
once persisted cannot be sent again, while the bot re-uploads the part still filling at every
checkpoint; a session URL also stays valid for a week, not minutes.

The object's listing, deletion and holds go through the JSON API (`/storage/v1/b/<bucket>/o`): the
XML API has no holds, and the JSON answers name a hold when a deletion meets one. Every call carries
the dispatcher's own token (gcs_credentials.py), has a timeout and at most 3 tries.
`STORAGE_EMULATOR_HOST` (the variable Google's own clients read) points it at another endpoint.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from dispatcher.artifacts.gcs_credentials import GcsCredentials
from dispatcher.artifacts.gcs_signing import signed_url
from dispatcher.artifacts.store import (
    STORE_HELD,
    STORE_UNREACHABLE,
    OpenUpload,
    Part,
    StoredObject,
    StoreError,
    http_reason,
)
from dispatcher.outbound.http_client import HttpClient, HttpError, HttpResponse

DEFAULT_ENDPOINT = "https://storage.googleapis.com"
REWRITE_CHUNK = 32 * 1024 * 1024  # the header's rewrite streams the rest of the recording in parts this big
# Rewrites at once: each holds its first part (up to the plan's 64 MiB) and a chunk in memory, and
# sessions end together (a campaign's calls, a dispatcher that stops): the rest wait their turn.
REWRITES_AT_ONCE = 4
TRIES = 3
RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
GRANTS = ("roles/storage.objectUser on the bucket (objects: create, get, list, update, delete; multipart "
          "uploads: create, list, listParts, abort)")


def split_destination(destination: str) -> tuple[str, str]:
    """`gs://bucket/prefix` → (bucket, prefix without slashes at its ends)."""
    bucket, _, prefix = destination.removeprefix("gs://").partition("/")
    return bucket, prefix.strip("/")


METADATA = "x-goog-meta-"  # GCS has no object tags: the key name and release go in the custom metadata


def metadata(tags: Mapping[str, str] | None) -> dict[str, str]:
    """`tags` as custom metadata headers, each value quoted (a header holds ASCII only)."""
    return {METADATA + name: quote(value, safe="") for name, value in (tags or {}).items()}


class GcsStore:
    part_urls_outlive_uploads = False  # a part URL is its upload's alone
    versioned: bool | None = None  # a write does not say (versioning, soft delete: storage.buckets.get)

    def __init__(self, bucket: str, prefix: str, env: Mapping[str, str],
                 credentials: GcsCredentials | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.where = f"gs://{bucket}/{prefix}" if prefix else f"gs://{bucket}"
        emulator = env.get("STORAGE_EMULATOR_HOST", "").strip().rstrip("/")
        if emulator and "://" not in emulator:
            emulator = "http://" + emulator
        self.endpoint = emulator or DEFAULT_ENDPOINT
        self._credentials = credentials or GcsCredentials(self.where)
        self._http = HttpClient(self.endpoint, timeout=30.0, connect_timeout=5.0, path_traced=False)
        self._rewriting = asyncio.Semaphore(REWRITES_AT_ONCE)

    async def aclose(self) -> None:
        """Its connections closed (the dispatcher stops)."""
        await self._http.aclose()

    # --- the multipart upload (XML API) ---
    async def check(self) -> None:
        """A write, and a signature: credentials that cannot sign (no signBlob grant, a user's login)
        are said at start-up, not at the first call's first part."""
        probe = _joined(self.prefix, ".voicefleet-write-check")
        await self._xml("PUT", probe, "write", content=b"")
        with contextlib.suppress(StoreError):  # the write is what is checked: not left behind where it can go
            await self.delete([probe])
        await asyncio.to_thread(self._credentials.sign, b"voicefleet: can this dispatcher sign URLs?")
        await asyncio.to_thread(self._credentials.email)

    async def open_upload(self, key: str, content_type: str, tags: Mapping[str, str] | None = None) -> str:
        answer = await self._xml("POST", key, "open an upload", {"uploads": ""}, content=b"",
                                 headers={"Content-Type": content_type, **metadata(tags)}, retried=False)
        return _text(_xml_of(answer), "UploadId")

    def part_url(self, key: str, upload_id: str, part: int, seconds: float) -> str:
        return self._signed(key, "PUT", seconds, {"partNumber": str(part), "uploadId": upload_id})

    async def parts(self, key: str, upload_id: str) -> list[Part]:
        found: list[Part] = []
        after: dict[str, str] = {}
        while True:
            page = _xml_of(await self._xml("GET", key, "list the parts", {"uploadId": upload_id, **after}))
            found += [Part(int(_text(p, "PartNumber")), int(_text(p, "Size")), _text(p, "ETag"))
                      for p in _all(page, "Part")]
            if _text(page, "IsTruncated", "false") != "true":
                return found
            after = {"part-number-marker": _text(page, "NextPartNumberMarker")}

    async def complete(self, key: str, upload_id: str, parts: list[Part]) -> None:
        """Joins the parts. A try whose answer was lost (a timeout) may have completed the upload: the
        next try meets no upload any more, and the object there with the parts' size is that success."""
        body = "".join(f"<Part><PartNumber>{p.number}</PartNumber><ETag>{escape(p.etag)}</ETag></Part>"
                       for p in parts)
        try:
            await self._xml("POST", key, "complete the upload", {"uploadId": upload_id},
                            content=f"<CompleteMultipartUpload>{body}</CompleteMultipartUpload>".encode(),
                            headers={"Content-Type": "application/xml"})
        except StoreError:
            if await self._stored_size(key) != sum(p.size for p in parts):
                raise

    async def _stored_size(self, key: str) -> int | None:
        answer = await self._xml("HEAD", key, "read the recording's size", missing_ok=True)
        length = answer.headers.get("x-goog-stored-content-length") or answer.headers.get("Content-Length") or ""
        return int(length) if answer.status_code != 404 and length.isdigit() else None

    async def abort(self, key: str, upload_id: str) -> None:
        await self._xml("DELETE", key, "abort the upload", {"uploadId": upload_id}, missing_ok=True)

    async def open_uploads(self, prefix: str) -> list[OpenUpload]:
        found: list[OpenUpload] = []
        markers: dict[str, str] = {}
        while True:
            page = _xml_of(await self._xml("GET", None, "list open uploads", {"uploads": "", "prefix": prefix,
                                                                              **markers}))
            found += [OpenUpload(_text(u, "Key"), _text(u, "UploadId"), _epoch(_text(u, "Initiated")))
                      for u in _all(page, "Upload")]
            if _text(page, "IsTruncated", "false") != "true":
                return found
            markers = {"key-marker": _text(page, "NextKeyMarker"),
                       "upload-id-marker": _text(page, "NextUploadIdMarker")}

    async def patch(self, key: str, writes: list[tuple[int, bytes]], first_part: int,
                    tags: Mapping[str, str] | None = None) -> None:
        """GCS changes no byte in place and copies no range inside the store (its multipart upload has
        no UploadPartCopy, compose joins whole objects): the first part is read and patched, and the
        object is written again as a new multipart upload of the same key, the patched first part and
        then the rest streamed through the dispatcher `REWRITE_CHUNK` at a time (memory: the first part
        and one chunk, for `REWRITES_AT_ONCE` recordings at most)."""
        async with self._rewriting:
            await self._rewrite(key, writes, first_part)

    async def _rewrite(self, key: str, writes: list[tuple[int, bytes]], first_part: int) -> None:
        headers = (await self._xml("HEAD", key, "read the recording's size")).headers
        length = headers.get("x-goog-stored-content-length") or headers.get("Content-Length") or ""
        if not length.isdigit():
            raise StoreError(f"{self.where}: cannot write the WAV header: the store told no size of {key}")
        size = int(length)
        head_end = min(size, first_part)
        head = bytearray((await self._xml("GET", key, "read the recording's first part",
                                          headers={"Range": f"bytes=0-{head_end - 1}"})).content)
        for offset, data in writes:
            head[offset:offset + len(data)] = data
        kept = {name: value for name, value in headers.items() if name.lower().startswith(METADATA)}
        if size <= first_part:
            await self._xml("PUT", key, "write the WAV header", content=bytes(head),
                            headers={"Content-Type": "audio/wav", **kept})
            return
        answer = await self._xml("POST", key, "write the WAV header", {"uploads": ""}, content=b"",
                                 headers={"Content-Type": "audio/wav", **kept}, retried=False)
        upload = _text(_xml_of(answer), "UploadId")
        try:
            parts = [await self._put_part(key, upload, 1, bytes(head))]
            start = head_end
            while start < size:
                end = min(size, start + REWRITE_CHUNK) - 1
                chunk = (await self._xml("GET", key, "read the recording", headers={"Range": f"bytes={start}-{end}"}))
                parts.append(await self._put_part(key, upload, len(parts) + 1, chunk.content))
                start = end + 1
            await self.complete(key, upload, parts)
        except BaseException:
            await asyncio.shield(self._abort_quietly(key, upload))
            raise

    async def _put_part(self, key: str, upload: str, number: int, data: bytes) -> Part:
        answer = await self._xml("PUT", key, "write the WAV header", {"partNumber": str(number), "uploadId": upload},
                                 content=data)
        return Part(number, len(data), answer.headers.get("ETag", ""))

    async def _abort_quietly(self, key: str, upload: str) -> None:
        try:
            await self.abort(key, upload)
        except StoreError:
            pass  # the bucket's lifecycle rule for incomplete uploads removes it

    # --- objects ---
    async def put(self, key: str, data: bytes, content_type: str, tags: Mapping[str, str] | None = None) -> None:
        await self._xml("PUT", key, "write an object", content=data,
                        headers={"Content-Type": content_type, **metadata(tags)})

    async def put_new(self, key: str, data: bytes, content_type: str) -> bool:
        answer = await self._xml("PUT", key, "write an object", content=data, exists_ok=True,
                                 headers={"Content-Type": content_type, "x-goog-if-generation-match": "0"})
        return answer.status_code < 300

    async def get(self, key: str) -> bytes | None:
        answer = await self._xml("GET", key, "read an object", missing_ok=True)
        return None if answer.status_code == 404 else answer.content

    async def objects_under(self, prefix: str) -> list[StoredObject]:
        return [StoredObject(item["name"], int(item["size"])) for item in await self._listed(prefix)]

    async def delete(self, keys: list[str]) -> None:
        """One call per object (the JSON API's batch would save round trips, not work). A held object
        stops the erasure before anything is deleted, with an error naming its hold (GCS itself refuses
        the held object's deletion too, should a hold be set meanwhile)."""
        if held := await self.held(keys):
            raise StoreError(f"{self.where}: cannot delete {', '.join(held)}: under a hold (a legal hold: its "
                             "temporaryHold); release it first. Nothing was deleted", STORE_HELD)
        gate = asyncio.Semaphore(8)

        async def remove(key: str) -> None:
            async with gate:
                await self._json("DELETE", key, "delete objects", missing_ok=True)

        await asyncio.gather(*(remove(key) for key in keys))

    def download_url(self, key: str, seconds: float) -> str:
        return self._signed(key, "GET", seconds, {})

    # --- holds ---
    async def hold(self, keys: list[str], on: bool) -> None:
        """A legal hold is the object's `temporaryHold`, not its `eventBasedHold`: releasing an
        event-based hold starts the bucket's retention period over for the object (it is meant for
        "keep N days after the event"), and a bucket may set one on every new object by default, so a
        release would not give the object back to its retention rules as they were. A temporary hold
        only stops deletion and overwriting while it is set, and changes nothing once released."""
        for key in keys:
            await self._json("PATCH", key, "set a hold" if on else "release a hold", body={"temporaryHold": on})

    async def held(self, keys: list[str]) -> list[str]:
        async def is_held(key: str) -> bool:
            answer = await self._json("GET", key, "read a hold", params={"fields": "temporaryHold"}, missing_ok=True)
            return answer.status_code != 404 and answer.json().get("temporaryHold") is True

        found = await asyncio.gather(*(is_held(key) for key in keys))
        return [key for key, on in zip(keys, found, strict=True) if on]

    # --- calls ---
    async def _listed(self, prefix: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        params = {"prefix": prefix, "fields": "items(name,size),nextPageToken"}
        while True:
            page = (await self._call("GET", f"/storage/v1/b/{self.bucket}/o", "list objects", params=params)).json()
            found += page.get("items", [])
            if not page.get("nextPageToken"):
                return found
            params = {**params, "pageToken": page["nextPageToken"]}

    def _signed(self, key: str, method: str, seconds: float, query: dict[str, str]) -> str:
        return signed_url(self.endpoint, self.bucket, key, method, seconds, query, self._credentials.email(),
                          self._credentials.sign)

    async def _xml(self, method: str, key: str | None, what: str, params: Mapping[str, str] | None = None,
                   **kwargs: Any) -> HttpResponse:
        path = f"/{self.bucket}/{quote(key, safe='/~')}" if key is not None else f"/{self.bucket}"
        return await self._call(method, path, what, params=params, **kwargs)

    async def _json(self, method: str, key: str, what: str, *, body: Any = None,
                    params: Mapping[str, str] | None = None, missing_ok: bool = False) -> HttpResponse:
        path = f"/storage/v1/b/{self.bucket}/o/{quote(key, safe='')}"
        return await self._call(method, path, what, params=params, json=body, missing_ok=missing_ok)

    async def _call(self, method: str, path: str, what: str, *, params: Mapping[str, str] | None = None,
                    content: bytes | None = None, json: Any = None, headers: Mapping[str, str] | None = None,
                    missing_ok: bool = False, retried: bool = True, exists_ok: bool = False) -> HttpResponse:
        for attempt in range(1, TRIES + 1):
            sent = {**(headers or {}), "Authorization": f"Bearer {await self._credentials.token()}"}
            try:
                answer = await self._http.request(method, path, params=params, content=content, json=json,
                                                  headers=sent)
            except HttpError as exc:
                if attempt == TRIES or not retried:
                    raise StoreError(f"{self.where}: cannot {what}: {exc}", STORE_UNREACHABLE) from None
            else:
                if answer.status_code < 300 or (missing_ok and answer.status_code == 404) \
                        or (exists_ok and answer.status_code == 412):  # a conditional create that found one
                    return answer
                if answer.status_code not in RETRYABLE or attempt == TRIES or not retried:
                    raise self._refused(answer, what)
            await asyncio.sleep(0.2 * 3 ** (attempt - 1))
        raise AssertionError("unreachable")

    def _refused(self, answer: HttpResponse, what: str) -> StoreError:
        code, message = _error_of(answer)
        if "hold" in message.lower():
            return StoreError(f"{self.where}: cannot {what}: the object is under a hold (a legal hold: its "
                              f"temporaryHold): release it first ({message})", STORE_HELD)
        hint = f" (the dispatcher's service account needs {GRANTS})" if answer.status_code in (401, 403) else ""
        return StoreError(f"{self.where}: cannot {what}: {answer.status_code} {code} {message}{hint}".rstrip(),
                          http_reason(answer.status_code))


def _error_of(answer: HttpResponse) -> tuple[str, str]:
    """(code, message) of an XML (`<Error><Code>`) or a JSON (`{"error": {"message"}}`) refusal."""
    try:
        if answer.content.lstrip().startswith(b"{"):
            error = answer.json().get("error", {})
            reason = (error.get("errors") or [{}])[0].get("reason", "")
            return str(reason or error.get("status", "")), str(error.get("message", ""))[:300]
        root = _xml_of(answer)
        return _text(root, "Code", ""), (_text(root, "Message", "") + " " + _text(root, "Details", "")).strip()[:300]
    except (ValueError, ET.ParseError, AttributeError):
        return "", answer.text[:200]


def _xml_of(answer: HttpResponse) -> ET.Element:
    root = ET.fromstring(answer.content)  # noqa: S314 - the store's own answer to the dispatcher's signed-in call
    for element in root.iter():  # GCS answers in S3's namespace: names are read without it
        element.tag = element.tag.rpartition("}")[2]
    return root


def _all(root: ET.Element, tag: str) -> list[ET.Element]:
    return root.findall(tag)


def _text(root: ET.Element, tag: str, default: str | None = None) -> str:
    found = root.find(tag)
    if found is None or found.text is None:
        if default is None:
            raise StoreError(f"the store's answer has no {tag}")
        return default
    return found.text


def _epoch(stamp: str) -> float:
    """`2026-11-26T10:00:00.000Z` → epoch seconds."""
    return float(calendar.timegm(time.strptime(stamp.split(".")[0].rstrip("Z"), "%Y-%m-%dT%H:%M:%S")))


def _joined(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name
