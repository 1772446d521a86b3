"""Reading and erasing a session's artifacts (`GET`/`DELETE /sessions/{id}/artifacts`).

The session's index object names its folder; every object under it is listed with a short-lived
download URL. Erasure writes an audit record (who, when, which objects) under `erasures/`, which
holds no content of the call, then deletes them all and the index."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from dispatcher.artifacts.keys import erasure_key, index_key
from dispatcher.artifacts.store import ArtifactStore, StoredObject


class StillUploading(Exception):
    """The session's recording is still being uploaded (by whichever replica holds its bot): an erasure
    now would be undone when the upload is completed, and the objects it wrote would have no index."""


class ArtifactReader:
    def __init__(self, store: ArtifactStore, download_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._seconds = download_seconds
        self._clock = clock

    async def folder(self, session_id: str) -> str | None:
        raw = await self.store.get(index_key(self.store.prefix, session_id))
        if raw is None:
            return None
        try:
            folder = json.loads(raw).get("folder")
        except (ValueError, AttributeError):
            return None
        if not isinstance(folder, str) or not folder.rstrip("/").endswith(session_id):
            return None  # an index that names another folder is not followed
        return folder

    async def objects(self, session_id: str) -> tuple[str, list[StoredObject]] | None:
        folder = await self.folder(session_id)
        if folder is None:
            return None
        return folder, await self.store.objects_under(folder)

    async def listing(self, session_id: str) -> dict[str, Any] | None:
        found = await self.objects(session_id)
        if found is None:
            return None
        folder, objects = found
        # In a thread: a store may sign through a call of its own (GCS without a key: IAM signBlob).
        urls = await asyncio.to_thread(lambda: [self.store.download_url(o.key, self._seconds) for o in objects])
        return {"session_id": session_id, "folder": folder, "where": self.store.where,
                "expires_in": self._seconds,
                "artifacts": [{"name": o.key.removeprefix(folder), "key": o.key, "size": o.size, "url": url}
                              for o, url in zip(objects, urls, strict=True)]}

    async def erase(self, session_id: str, by: str) -> dict[str, Any] | None:
        found = await self.objects(session_id)
        if found is None:
            return None
        folder, objects = found
        if await self.store.open_uploads(folder):
            raise StillUploading(session_id)
        keys = [o.key for o in objects]
        now = self._clock()
        record = {"session_id": session_id, "erased_at": now, "by": by, "folder": folder, "objects": keys}
        # The record first: an erasure that fails after it is asked again (the index goes last, so the
        # session is still found); one whose record could not be written erases nothing.
        await self.store.put(erasure_key(self.store.prefix, session_id, now), json.dumps(record).encode(),
                             "application/json")
        await self.store.delete(keys)
        await self.store.delete([index_key(self.store.prefix, session_id)])
        return record
