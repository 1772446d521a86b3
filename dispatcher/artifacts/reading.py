"""Reading, holding and erasing a session's artifacts (`/sessions/{id}/artifacts`).

The session's index object names its folder (keys.py: it is found under one of the retention
folders the rules give, without listing the bucket); every object under it is listed with a
short-lived download URL. A legal hold is set on every object of the session and its index; an
erasure of a held session is refused. Erasure writes an audit record (who, when, which objects)
under `erasures/`, which holds no content of the call, then deletes them all and the index."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from dispatcher.artifacts.keys import RECORDING, erasure_key, index_keys
from dispatcher.artifacts.store import ArtifactStore, StoredObject, StoreError

VERSIONS_KEPT = ("this store keeps versions: the erased objects' earlier versions stay readable, by version id, to "
                 "whoever may read versions, until the bucket's lifecycle removes them (the stacks' rule: a day "
                 "after); the dispatcher deletes by key alone, without the right to delete versions, by design")
VERSIONS_UNKNOWN = ("this store does not say whether it keeps versions: where it does (a versioned bucket, or Cloud "
                    "Storage's soft delete), the erased objects stay recoverable until its lifecycle or soft-delete "
                    "window removes them")


def versions_note(versioned: bool | None) -> str | None:
    """What an erasure leaves in the store's versions, or None where it keeps none."""
    return None if versioned is False else VERSIONS_KEPT if versioned else VERSIONS_UNKNOWN


class StillUploading(Exception):
    """The session's recording is still being uploaded (by whichever replica holds its bot): an erasure
    now would be undone when the upload is completed, and the objects it wrote would have no index."""


class Held(Exception):
    """The session's artifacts are under a legal hold: lift it before they can be erased."""


class ArtifactReader:
    def __init__(self, store: ArtifactStore, download_seconds: float, clock: Callable[[], float] = time.time,
                 retention_days: Iterable[int] = (0,)) -> None:
        self.store = store
        self._seconds = download_seconds
        self._clock = clock
        # Every retention the rules can give, where an index may be, and always `retain-forever`: no
        # lifecycle rule ever deletes those, so a session kept until erased stays erasable once the
        # deployment's retention has changed to a day count.
        self._days = tuple(sorted({0, *retention_days}))

    async def indexed(self, session_id: str) -> tuple[str, str] | None:
        """(the index's key, the folder it names), or None when the session has no index."""
        for key in index_keys(self.store.prefix, session_id, self._days):
            raw = await self.store.get(key)
            if raw is None:
                continue
            try:
                folder = json.loads(raw).get("folder")
            except (ValueError, AttributeError):
                return None
            if not isinstance(folder, str) or not folder.rstrip("/").endswith(session_id):
                return None  # an index that names another folder is not followed
            return key, folder
        return None

    async def folder(self, session_id: str) -> str | None:
        found = await self.indexed(session_id)
        return found[1] if found is not None else None

    async def objects(self, session_id: str) -> tuple[str, list[StoredObject]] | None:
        folder = await self.folder(session_id)
        if folder is None:
            return None
        return folder, await self.store.objects_under(folder)

    async def _every_key(self, session_id: str) -> tuple[str, list[str]] | None:
        """(the index's key, every key of the session: its objects and its index)."""
        found = await self.indexed(session_id)
        if found is None:
            return None
        index, folder = found
        return index, [o.key for o in await self.store.objects_under(folder)] + [index]

    async def hold(self, session_id: str, on: bool) -> list[str] | None:
        """Sets (or lifts) a legal hold on every object of the session and its index; the keys, or None.
        StillUploading when a hold is asked while its recording is under way (what its end writes would
        not be held)."""
        found = await self.indexed(session_id)
        if found is None:
            return None
        index, folder = found
        if on and await self.store.open_uploads(folder):
            raise StillUploading(session_id)
        keys = [o.key for o in await self.store.objects_under(folder)] + [index]
        await self.store.hold(keys, on)
        return keys

    async def held(self, session_id: str) -> list[str]:
        found = await self._every_key(session_id)
        return await self.store.held(found[1]) if found is not None else []

    async def listing(self, session_id: str) -> dict[str, Any] | None:
        found = await self.objects(session_id)
        if found is None:
            return None
        folder, listed = found
        # An empty recording is no recording (a join a full disk cut short): never offered as one.
        objects = [o for o in listed if o.size or o.key.removeprefix(folder) != RECORDING]
        # In a thread: a store may sign through a call of its own (GCS without a key: IAM signBlob).
        urls = await asyncio.to_thread(lambda: [self.store.download_url(o.key, self._seconds) for o in objects])
        return {"session_id": session_id, "folder": folder, "where": self.store.where,
                "expires_in": self._seconds,
                "artifacts": [{"name": o.key.removeprefix(folder), "key": o.key, "size": o.size, "url": url}
                              for o, url in zip(objects, urls, strict=True)]}

    async def erase(self, session_id: str, by: str) -> dict[str, Any] | None:
        index = await self.indexed(session_id)
        if index is None:
            return None
        folder = index[1]
        if await self.store.open_uploads(folder):
            raise StillUploading(session_id)
        # Listed after the check, not before: what an upload completed meanwhile wrote is among them.
        keys = [o.key for o in await self.store.objects_under(folder)]
        if await self.store.held([*keys, index[0]]):
            raise Held(session_id)
        now = self._clock()
        record: dict[str, Any] = {"session_id": session_id, "erased_at": now, "by": by, "folder": folder,
                                  "objects": keys}
        if (note := versions_note(self.store.versioned)) is not None:
            record["versions"] = note
        # The record first: an erasure that fails after it is asked again (the index goes last, so the
        # session is still found); one whose record could not be written erases nothing.
        audit = erasure_key(self.store.prefix, session_id, now)
        await self.store.put(audit, json.dumps(record).encode(), "application/json")
        # Listed again once the record is there: an object written since the first listing is erased here,
        # and one written later is deleted by the replica that writes it, which looks for this record after.
        again = sorted({*keys, *(o.key for o in await self.store.objects_under(folder))})
        if again != sorted(keys):
            keys = record["objects"] = again
            await self.store.put(audit, json.dumps(record).encode(), "application/json")
        try:
            await self.store.delete(keys)
        except StoreError:
            # A hold placed since it was checked (an admin on another replica): the store refused, and
            # the record says the erasure stopped rather than that the objects are gone.
            if not await self.store.held([*keys, index[0]]):
                raise
            stopped = {**record, "stopped": "a legal hold was placed during the erasure: nothing more erased"}
            await self.store.put(audit, json.dumps(stopped).encode(), "application/json")
            raise Held(session_id) from None
        await self.store.delete([index[0]])
        return record
