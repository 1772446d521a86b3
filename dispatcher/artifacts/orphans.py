"""Uploads whose dispatcher stopped before their session's end: completed, not left open.

A replica holds the sessions it records in memory; one that stops or crashes mid-call leaves their
uploads open. At start-up and every `SWEEP_SECONDS`, each upload under the deployment's prefix
that no replica could still be writing (begun longer ago than the longest session and its grace)
is completed like any other (its parts kept, its header written, a report, `recording_partial`),
with the facts its index recorded. Several replicas may sweep the same upload: the first completes
it; a later one finds it gone and leaves it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from dispatcher.artifacts.folder_retention import expire_folder_store
from dispatcher.artifacts.keys import RECORDING, index_of_folder
from dispatcher.artifacts.local_store import LocalFolderStore
from dispatcher.artifacts.recordings import SessionRecordings
from dispatcher.artifacts.store import StoreError

log = logging.getLogger("dispatcher.artifacts")
SWEEP_SECONDS = 600.0
WHY = "the dispatcher that held the session stopped before its end: the parts uploaded are kept"
OVERDUE = "its end was never told (its bot never dialled, or its machine's end went unseen): closed after the " \
          "longest a session runs"


class OrphanSweep:
    def __init__(self, recordings: SessionRecordings, older_than_seconds: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._recordings = recordings
        self._older_than = older_than_seconds
        self._clock = clock

    async def sweep(self) -> int:
        """Completes the ends this replica left while the store failed, the orphaned uploads, and this
        replica's recordings whose end it was never told of (else each would hold a place of MAX_OPEN
        and refuse its erasure for ever); how many."""
        store = self._recordings.store
        completed = await self._recordings.finish_left()  # its own ends first, with all it holds of them
        for session_id in self._recordings.overdue(self._older_than):
            await self._recordings.finish(session_id, OVERDUE)
            completed += 1
        for upload in await store.open_uploads(store.prefix):
            folder, _, name = upload.key.rpartition("/")
            session_id = folder.rpartition("/")[2]
            if name != RECORDING or self._recordings.recorded(session_id) or \
                    self._clock() - upload.started_at < self._older_than:
                continue
            self._recordings.adopt(session_id, folder + "/", upload.upload_id, await self._index(folder + "/"),
                                   upload.started_at)
            await self._recordings.finish(session_id, WHY)
            completed += 1
        return completed

    async def _index(self, folder: str) -> dict[str, Any]:
        store = self._recordings.store
        raw = await store.get(index_of_folder(folder))
        try:
            index = json.loads(raw) if raw else {}
        except ValueError:
            index = {}
        return index if isinstance(index, dict) else {}

    async def run(self) -> None:
        """Sweeps now and every SWEEP_SECONDS (a store that fails is tried at the next sweep)."""
        while True:
            try:
                if isinstance(self._recordings.store, LocalFolderStore):  # no lifecycle rule expires a folder
                    await expire_folder_store(self._recordings.store)
                if completed := await self.sweep():
                    log.warning("completed %d recording upload(s) a stopped dispatcher had left open", completed)
            except StoreError as exc:
                log.warning("open recording uploads not swept: %s", exc)
            await asyncio.sleep(SWEEP_SECONDS)
