"""A local folder store's retention, which no lifecycle rule enforces: every `retain-<N>d/` folder is
swept (at the dispatcher's start and every 10 minutes, with the orphan sweep), each session dated more
than N days ago deleted with its index, as a bucket's expiration rule does. A session with a held
object is left whole (a hold stops retention, as it does in a bucket); `retain-forever/` is never
swept, nor the erasures' records."""

from __future__ import annotations

import asyncio
import calendar
import logging
import re
import shutil
import time
from pathlib import Path

from dispatcher.artifacts.local_store import HOLDS, LocalFolderStore

log = logging.getLogger("dispatcher.artifacts")
RETAINED = re.compile(r"^retain-(\d+)d$")
DAY = 86_400


def _held(root: Path, session: Path, index: Path) -> bool:
    """Whether a hold marker (local_store.py: one per held object, under `.holds/`) names any of it."""
    markers = root / HOLDS / session.relative_to(root)
    return (root / HOLDS / index.relative_to(root)).exists() or any(p.is_file() for p in markers.rglob("*"))


async def expire_folder_store(store: LocalFolderStore, now: float | None = None) -> int:
    """Deletes the sessions whose retention has passed; how many (a folder it cannot read: logged, next time)."""
    try:
        return await asyncio.to_thread(_expired, store.root, time.time() if now is None else now)
    except OSError as exc:
        log.warning("recordings folder: its retention was not swept: %s", exc.strerror or exc)
        return 0


def _expired(root: Path, now: float) -> int:
    gone = 0
    for retained in sorted(root.glob("retain-*d")):
        found = RETAINED.match(retained.name)
        if found is None or not int(found.group(1)):
            continue
        days = int(found.group(1))
        for day in sorted(retained.glob("[0-9][0-9][0-9][0-9]/[0-9][0-9]/[0-9][0-9]")):
            year, month, date = (int(part) for part in day.relative_to(retained).parts)
            if calendar.timegm((year, month, date, 0, 0, 0)) + (days + 1) * DAY > now:
                continue  # a day's sessions go once the whole day is past its retention
            for session in sorted(p for p in day.iterdir() if p.is_dir()):
                if _held(root, session, retained / "sessions" / f"{session.name}.json"):
                    continue  # something of it is held: kept whole until the hold is lifted
                shutil.rmtree(session, ignore_errors=True)
                (retained / "sessions" / f"{session.name}.json").unlink(missing_ok=True)
                gone += 1
            for empty in (day, day.parent, day.parent.parent):
                try:
                    empty.rmdir()
                except OSError:
                    break  # not empty: later sessions, or another day
    if gone:
        log.info("recordings folder: %d session(s) past their retention deleted", gone)
    return gone
