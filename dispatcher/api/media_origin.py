"""Where a session's recording plays from, for the pages' Content Security Policy (`media-src`, and
`connect-src` for its transcript): the dispatcher itself for the local folder store (its signed
paths), the store's own origin for a pre-signed URL, derived here from the configured
RECORDING_DESTINATION and endpoint, never a wildcard.

S3's origin is read off a URL the store signs (signing is local: botocore picks virtual-hosted or
path style, a region's host or an endpoint's, exactly as for a real download); Cloud Storage's is
its endpoint (`STORAGE_EMULATOR_HOST` or Google's), whose paths its signed URLs use; Azure Blob's is
the container's own address, which its SAS URLs name.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit

from dispatcher.artifacts.azure_store import AzureBlobStore
from dispatcher.artifacts.building import Artifacts
from dispatcher.artifacts.gcs_store import GcsStore
from dispatcher.artifacts.s3_store import S3Store
from dispatcher.artifacts.store import ArtifactStore

PROBE_KEY = ".voicefleet-origin-probe"  # never read: only the signed URL's scheme, host and port are kept
_HOST = re.compile(r"^[A-Za-z0-9.\-]+$|^\[[0-9A-Fa-f:.]+\]$")


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of an http(s) URL, or None: no path, no user, nothing a policy could not hold."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.scheme not in ("http", "https") or not _HOST.match(host):
        return None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def recording_origin(artifacts: Artifacts | None) -> str | None:
    """The store's origin when its download URLs are absolute; None when the dispatcher serves them ('self')."""
    return store_origin(artifacts.reader.store) if artifacts is not None else None


def store_origin(store: ArtifactStore) -> str | None:
    """`store`'s download URLs' origin, or None for the folder store (a path on the dispatcher)."""
    if isinstance(store, GcsStore):
        return origin_of(store.endpoint)
    if isinstance(store, AzureBlobStore):
        return origin_of(store.where)
    if isinstance(store, S3Store):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return origin_of(store.download_url(PROBE_KEY, 60))
        except (BotoCoreError, ClientError):  # no credentials to sign with (STS refused or throttled a web
            return None  # identity's refresh: a ClientError): no download URL to play either
    return None


class MediaOrigin:
    """The origin, found on the first page served and then kept (the store does not change while the
    dispatcher runs). Found in a thread: botocore may ask the machine's metadata for credentials.
    An S3 store that could not sign yet (its credentials not there yet) is asked again on a later page:
    a None kept would keep its recordings out of the pages' policy until a restart."""

    def __init__(self) -> None:
        self._found: asyncio.Future[str | None] | None = None

    async def of(self, artifacts: Artifacts | None) -> str | None:
        if self._found is None:
            self._found = asyncio.ensure_future(asyncio.to_thread(recording_origin, artifacts))
        found = self._found
        origin = await asyncio.shield(found)
        if origin is None and artifacts is not None and isinstance(artifacts.reader.store, S3Store):
            if self._found is found:
                self._found = None
        return origin


def sources(origin: str | None, *fixed: str) -> str:
    """`'self'`, the `fixed` sources, and the store's origin when there is one."""
    return " ".join(("'self'", *fixed, *((origin,) if origin else ())))
