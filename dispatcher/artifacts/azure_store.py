"""Azure Blob Storage (`RECORDING_DESTINATION=https://<account>.blob.core.windows.net/<container>/<prefix>`),
through the dispatcher's aiohttp pool and hand-signed SAS (azure_sas.py): no Azure SDK, as for ACI.

A part is one `Put Block` of the recording's blob, its block id naming the upload and the part,
put by the bot through a user delegation SAS for that one blob, write only (`sp=w`, what Put Block
needs; it also takes Put Blob on that blob: a SAS of this version cannot name the operation).
Completion commits the blocks that arrived (`Put Block List`, found with `Get Block List`). Azure
has no upload to list or abort (it discards uncommitted blocks a week after their last `Put
Block`), so each upload is a marker blob under `<prefix>/.uploads/`, deleted at completion or
abort: `open_uploads` lists those. The dispatcher signs in with its Entra identity (`ArmToken`);
no account key is read anywhere. Legal holds are the blob's own, refused by a container without
version-level immutability (and by azurite). docs/recording.md, "Azure Blob Storage", says which
roles and why.

Sources: `w` is "create or write content, properties, metadata, or block list" (learn.microsoft.com
/python/api/azure-storage-blob/azure.storage.blob.blobsaspermissions; azurite maps Put Block to `w`
alone); "uncommitted blocks will expire and be permanently deleted after 7 days"
(learn.microsoft.com/dotnet/api/azure.storage.blobs.specialized.blockblobclient.commitblocklist).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import secrets
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, quote, unquote, urlencode

from dispatcher.artifacts.azure_sas import (
    SAS_VERSION,
    DelegationKey,
    Destination,
    blob_sas,
    key_request,
    split_destination,
)
from dispatcher.artifacts.store import (
    STORE_ACCESS_DENIED,
    STORE_HELD,
    STORE_UNREACHABLE,
    OpenUpload,
    Part,
    StoredObject,
    StoreError,
    http_reason,
)
from dispatcher.machines.aci.auth import ArmToken, ArmTokens
from dispatcher.machines.base import MachinesError
from dispatcher.outbound.http_client import HttpClient, HttpResponse
from dispatcher.outbound.retry import Backoff, Transient, send
from voicefleet_settings.read import setting_text

STORAGE_RESOURCE = "https://storage.azure.com/"
UPLOADS = ".uploads/"
KEY_SECONDS = 7 * 24 * 3600.0 - 600  # Azure's longest user delegation key, less a margin for clock skew
KEY_REFRESH_SECONDS = 3600.0  # a key older than this is replaced at the next call: a new URL gets ~7 days
NEEDS = ("the dispatcher's identity needs Storage Blob Data Contributor on the container and Storage Blob "
         "Delegator on the storage account")


def block_id(upload_id: str, part: int) -> str:
    """Every block of a blob has an id of one length: 16 hex characters of the upload, 5 digits of the part."""
    return base64.b64encode(f"{upload_id}-{part:05d}".encode()).decode()


def _named_part(name: str, upload_id: str) -> int | None:
    try:
        decoded = base64.b64decode(name).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    upload, _, number = decoded.partition("-")
    return int(number) if upload == upload_id and number.isdigit() else None


METADATA = "x-ms-meta-"  # the key name and release as the blob's metadata (index tags need a role of their own)


def metadata(tags: Mapping[str, str] | None) -> dict[str, str]:
    """`tags` as metadata headers, each value quoted (a header holds ASCII only)."""
    return {METADATA + name: quote(value, safe="") for name, value in (tags or {}).items()}


class AzureBlobStore:
    part_urls_outlive_uploads = True  # the part SAS (`sp=w`) also takes Put Blob on the blob
    versioned: bool | None = None

    def __init__(self, destination: str, env: Mapping[str, str], *, client: HttpClient | None = None,
                 tokens: ArmTokens | None = None, clock: Callable[[], float] = time.time) -> None:
        self.place: Destination = split_destination(destination)
        self.prefix = self.place.prefix
        self.where = destination.rstrip("/")
        ca_file = setting_text(env, "RECORDING_CA_BUNDLE") or None  # a private CA (azurite in the tests)
        self._client = client or HttpClient(timeout=30.0, connect_timeout=5.0, ca_file=ca_file)
        self._tokens = tokens or ArmToken(env, resource=STORAGE_RESOURCE,
                                          client=HttpClient(timeout=10.0, ca_file=ca_file))
        self._backoff = Backoff(attempts=3, base=0.5, cap=4.0, deadline=30.0)
        self._https = self.place.base.startswith("https://")
        self._key: DelegationKey | None = None
        self._key_at = 0.0
        self._key_lock = asyncio.Lock()
        self._clock = clock

    # --- the contract -------------------------------------------------------------------------

    async def check(self) -> None:
        probe = _joined(self.prefix, ".voicefleet-write-check")
        answer = await self._call("PUT", probe, "write", content=b"",
                                  headers={"x-ms-blob-type": "BlockBlob", "Content-Type": "application/octet-stream"})
        self.versioned = bool(answer.headers.get("x-ms-version-id"))  # an account with blob versioning on
        with contextlib.suppress(StoreError):  # the write is what is checked: not left behind where it can go
            await self.delete([probe])

    async def open_upload(self, key: str, content_type: str, tags: Mapping[str, str] | None = None) -> str:
        upload_id = secrets.token_hex(8)
        await self._put_blob(self._marker(upload_id), b"", "application/octet-stream", "open an upload",
                             {"x-ms-meta-key": quote(key, safe=""), "x-ms-meta-contenttype": quote(content_type),
                              "x-ms-meta-tags": quote(urlencode(dict(tags or {})), safe="")})
        return upload_id

    def part_url(self, key: str, upload_id: str, part: int, seconds: float) -> str:
        query = f"comp=block&blockid={quote(block_id(upload_id, part), safe='')}"
        return f"{self._url(key)}?{query}&{self._sas(key, 'w', seconds)}"

    async def parts(self, key: str, upload_id: str) -> list[Part]:
        answer = await self._call("GET", key, "list the parts", {"comp": "blocklist", "blocklisttype": "uncommitted"},
                                  missing_ok=True)
        if answer.status_code == 404:
            return []
        found = []
        for block in _xml(answer).iterfind("UncommittedBlocks/Block"):
            name = block.findtext("Name") or ""
            number = _named_part(name, upload_id)
            if number is not None:
                found.append(Part(number, int(block.findtext("Size") or 0), name))
        return sorted(found, key=lambda p: p.number)

    async def complete(self, key: str, upload_id: str, parts: list[Part]) -> None:
        marker = await self._call("HEAD", self._marker(upload_id), "complete the upload", missing_ok=True)
        content_type = unquote(marker.headers.get("x-ms-meta-contenttype", "")) or "application/octet-stream"
        tags = dict(parse_qsl(unquote(marker.headers.get("x-ms-meta-tags", ""))))
        blocks = "".join(f"<Uncommitted>{block_id(upload_id, p.number)}</Uncommitted>" for p in parts)
        await self._commit(key, blocks, content_type, "complete the upload", metadata(tags))
        await self._delete_one(self._marker(upload_id), "complete the upload")

    async def abort(self, key: str, upload_id: str) -> None:
        # Its blocks stay uncommitted until Azure discards them (a week); nothing can read them.
        await self._delete_one(self._marker(upload_id), "abort the upload")

    async def open_uploads(self, prefix: str) -> list[OpenUpload]:
        found = []
        for blob in await self._listed(self._marker(""), "list open uploads", metadata=True):
            key = unquote(blob.findtext("Metadata/key") or "")
            if key and key.startswith(prefix):
                started = blob.findtext("Properties/Creation-Time") or blob.findtext("Properties/Last-Modified") or ""
                found.append(OpenUpload(key, (blob.findtext("Name") or "").rpartition("/")[2],
                                        email.utils.parsedate_to_datetime(started).timestamp()))
        return found

    async def patch(self, key: str, writes: list[tuple[int, bytes]], first_part: int,
                    tags: Mapping[str, str] | None = None) -> None:
        """The first block is read, patched and put again under a new id; the block list is committed
        again with it in the first place and the other blocks as they were (no byte of them moves)."""
        what = "write the WAV header"
        listed = await self._call("GET", key, what, {"comp": "blocklist", "blocklisttype": "committed"})
        committed = [(b.findtext("Name") or "", int(b.findtext("Size") or 0))
                     for b in _xml(listed).iterfind("CommittedBlocks/Block")]
        if not committed:
            raise StoreError(f"{self.where}: cannot {what}: {key} has no blocks")
        head_size = committed[0][1]
        read = await self._call("GET", key, what, headers={"x-ms-range": f"bytes=0-{head_size - 1}"})
        head = bytearray(read.content)
        for offset, data in writes:
            if offset + len(data) > min(first_part, head_size):
                raise StoreError(f"{self.where}: cannot {what}: a write at {offset} is past the first part")
            head[offset:offset + len(data)] = data
        new_id = block_id(secrets.token_hex(8), 1)
        await self._call("PUT", key, what, {"comp": "block", "blockid": new_id}, content=bytes(head))
        blocks = f"<Latest>{new_id}</Latest>" + "".join(f"<Committed>{name}</Committed>" for name, _ in committed[1:])
        kept = {name: value for name, value in read.headers.items() if name.lower().startswith(METADATA)}
        await self._commit(key, blocks, read.headers.get("Content-Type", "application/octet-stream"), what, kept)

    async def put(self, key: str, data: bytes, content_type: str, tags: Mapping[str, str] | None = None) -> None:
        await self._put_blob(key, data, content_type, "write an object", metadata(tags))

    async def put_new(self, key: str, data: bytes, content_type: str) -> bool:
        answer = await self._call("PUT", key, "write an object", content=data, exists_ok=True,
                                  headers={"x-ms-blob-type": "BlockBlob", "Content-Type": content_type,
                                           "If-None-Match": "*"})
        return answer.status_code < 300

    async def get(self, key: str) -> bytes | None:
        answer = await self._call("GET", key, "read an object", missing_ok=True)
        return None if answer.status_code == 404 else answer.content

    async def objects_under(self, prefix: str) -> list[StoredObject]:
        markers = self._marker("")
        return [StoredObject(name, int(blob.findtext("Properties/Content-Length") or 0))
                for blob in await self._listed(prefix, "list objects")
                if not (name := blob.findtext("Name") or "").startswith(markers)]

    async def delete(self, keys: list[str]) -> None:
        held = await self.held(keys)
        if held:
            raise StoreError(f"{self.where}: cannot delete {held[0]}: it is under a legal hold"
                             f"{f' (and {len(held) - 1} more)' if len(held) > 1 else ''}; release the hold first",
                             STORE_HELD)
        for key in keys:
            await self._delete_one(key, "delete objects")

    def download_url(self, key: str, seconds: float) -> str:
        return f"{self._url(key)}?{self._sas(key, 'r', seconds)}"

    async def hold(self, keys: list[str], on: bool) -> None:
        """Sets or clears each blob's legal hold; a container without version-level immutability refuses."""
        for key in keys:
            await self._call("PUT", key, "set a legal hold" if on else "clear a legal hold", {"comp": "legalhold"},
                             headers={"x-ms-legal-hold": "true" if on else "false"})

    async def held(self, keys: list[str]) -> list[str]:
        """The keys whose blob has a legal hold now (a blob that is not there holds nothing)."""
        found = []
        for key in keys:
            answer = await self._call("HEAD", key, "read a legal hold", missing_ok=True)
            if answer.status_code != 404 and answer.headers.get("x-ms-legal-hold", "").lower() == "true":
                found.append(key)
        return found

    # --- the user delegation key -----------------------------------------------------------------

    async def _fresh_key(self) -> None:
        """A key for the SAS this store signs, replaced once it is an hour old: every call to Azure comes
        here first (the orphan sweep makes one every 10 minutes). A failed renewal keeps the key it has
        while more than half its life is left, and tries again a minute later."""
        async with self._key_lock:
            now = self._clock()
            if self._key is not None and now - self._key_at < KEY_REFRESH_SECONDS:
                return
            body = key_request(now - 300, now + KEY_SECONDS)
            try:
                answer = await self._request("POST", self.place.base + "/", "get a user delegation key",
                                             {"restype": "service", "comp": "userdelegationkey"}, content=body,
                                             key_first=False)
                self._key = DelegationKey.from_xml(answer.content)
            except (ElementTree.ParseError, ValueError, StoreError) as exc:
                if self._key is not None and self._key.expires_at - now > KEY_SECONDS / 2:
                    self._key_at = now - KEY_REFRESH_SECONDS + 60
                    return
                if isinstance(exc, StoreError):
                    raise
                raise StoreError(f"{self.where}: cannot get a user delegation key: {exc}", STORE_UNREACHABLE) from None
            self._key_at = now

    def _sas(self, key: str, permissions: str, seconds: float) -> str:
        if self._key is None:
            raise StoreError(f"{self.where}: no user delegation key yet (the store was not reached): {NEEDS}",
                             STORE_UNREACHABLE)
        # A SAS cannot outlive the key that signed it; the key is at most an hour old, so ~7 days remain.
        expires = min(self._clock() + seconds, self._key.expires_at)
        return blob_sas(self._key, self.place, key, permissions, expires, self._https)

    # --- calls --------------------------------------------------------------------------------

    def _url(self, key: str) -> str:
        return f"{self.place.base}/{self.place.container}/{quote(key, safe='/')}"

    def _marker(self, upload_id: str) -> str:
        return _joined(self.prefix, UPLOADS + upload_id)

    async def _put_blob(self, key: str, data: bytes, content_type: str, what: str,
                        headers: Mapping[str, str] | None = None) -> None:
        await self._call("PUT", key, what, content=data,
                         headers={"x-ms-blob-type": "BlockBlob", "Content-Type": content_type, **(headers or {})})

    async def _commit(self, key: str, blocks: str, content_type: str, what: str,
                      kept: Mapping[str, str] | None = None) -> None:
        """Commits the block list; `kept`: the blob's metadata headers (a commit replaces them all)."""
        body = f"<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>{blocks}</BlockList>".encode()
        await self._call("PUT", key, what, {"comp": "blocklist"}, content=body,
                         headers={"x-ms-blob-content-type": content_type, "Content-Type": "application/xml",
                                  **(kept or {})})

    async def _delete_one(self, key: str, what: str) -> None:
        await self._call("DELETE", key, what, missing_ok=True)

    async def _listed(self, prefix: str, what: str, metadata: bool = False) -> list[ElementTree.Element]:
        found: list[ElementTree.Element] = []
        marker = ""
        while True:
            params = {"restype": "container", "comp": "list", "prefix": prefix}
            if metadata:
                params["include"] = "metadata"
            if marker:
                params["marker"] = marker
            answer = await self._request("GET", f"{self.place.base}/{self.place.container}", what, params)
            page = _xml(answer)
            found += page.iterfind("Blobs/Blob")
            marker = page.findtext("NextMarker") or ""
            if not marker:
                return found

    async def _call(self, method: str, key: str, what: str, params: Mapping[str, str] | None = None, *,
                    headers: Mapping[str, str] | None = None, content: bytes | None = None,
                    missing_ok: bool = False, exists_ok: bool = False) -> HttpResponse:
        return await self._request(method, self._url(key), what, params, headers=headers, content=content,
                                   missing_ok=missing_ok, exists_ok=exists_ok)

    async def _request(self, method: str, url: str, what: str, params: Mapping[str, str] | None = None, *,
                       headers: Mapping[str, str] | None = None, content: bytes | None = None,
                       missing_ok: bool = False, key_first: bool = True, exists_ok: bool = False) -> HttpResponse:
        if key_first:  # the SAS this store signs next must find a key; a store that cannot give one is said now
            await self._fresh_key()
        try:
            signed = {**await self._tokens.headers(), "x-ms-version": SAS_VERSION,
                      "x-ms-date": email.utils.formatdate(usegmt=True), **(headers or {})}
            if content is not None or method in ("PUT", "POST"):
                content = content or b""
            answer = await send(self._client, method, url, backoff=self._backoff, params=params, headers=signed,
                                content=content)
        except MachinesError as exc:
            raise StoreError(f"{self.where}: cannot {what}: no Entra token for Azure Storage ({exc})",
                             STORE_ACCESS_DENIED) from None
        except Transient as exc:
            raise StoreError(f"{self.where}: cannot {what}: {exc}", STORE_UNREACHABLE) from None
        if answer.status_code < 300 or (missing_ok and answer.status_code == 404) \
                or (exists_ok and answer.status_code in (409, 412)):  # a conditional create that found one
            return answer
        raise self._refused(answer, what)

    def _refused(self, answer: HttpResponse, what: str) -> StoreError:
        code = answer.headers.get("x-ms-error-code", "")
        message = ""
        if answer.content:
            try:
                root = ElementTree.fromstring(answer.content)  # noqa: S314 - the storage service's answer
                code, message = root.findtext("Code") or code, root.findtext("Message") or ""
            except ElementTree.ParseError:
                pass
        message = message.splitlines()[0] if message else f"HTTP {answer.status_code}"
        if code == "BlobImmutableDueToLegalHold":
            hint = ": the blob is under a legal hold; release the hold first"
        elif answer.status_code == 403:
            hint = f" ({NEEDS})"
        elif what.endswith("legal hold"):
            hint = " (legal holds need version-level immutability support on the container)"
        else:
            hint = ""
        reason = STORE_HELD if code == "BlobImmutableDueToLegalHold" else http_reason(answer.status_code)
        return StoreError(f"{self.where}: cannot {what}: {code or answer.status_code} {message}{hint}", reason)

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._tokens.aclose()


def _xml(answer: HttpResponse) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(answer.content)  # noqa: S314 - the storage service's own answer
    except ElementTree.ParseError as exc:
        raise StoreError(f"Azure Blob Storage answered what is not XML: {exc}") from None


def _joined(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name
