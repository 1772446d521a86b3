"""The daily usage files, built for the app from `USAGE_FILES` (dispatcher/usage/daily_files.py):
beside the recordings, in a store of their own, or none."""

from __future__ import annotations

from collections.abc import Mapping

from dispatcher.artifacts.building import build_store
from dispatcher.artifacts.settings import ArtifactSettings, checked_destination
from dispatcher.artifacts.store import ArtifactStore
from dispatcher.store.client import Store
from dispatcher.usage.daily_files import MemoryDayMarks, StoreDayMarks, UsageFiles
from dispatcher.usage.rollups import Rollups
from voicefleet_settings.read import setting_float, setting_text

BESIDE_RECORDINGS = "recordings"


def build_usage_files(env: Mapping[str, str], rollups: Rollups, coordination: object,
                      recordings: ArtifactStore, region: str = "") -> UsageFiles | None:
    """None when `USAGE_FILES` is `off`; `recordings`: the recordings' own store (`recordings`);
    `region`: with several regions, this one's (its files are its own: `usage/<region>/<day>.csv`)."""
    where = setting_text(env, "USAGE_FILES")
    if where == "off":
        return None
    if where == BESIDE_RECORDINGS:
        store = recordings
    else:
        store = build_store(ArtifactSettings(destination=checked_destination("USAGE_FILES", where)), env)
    shared = getattr(coordination, "store", None)
    marks = StoreDayMarks(shared) if isinstance(shared, Store) else MemoryDayMarks()
    return UsageFiles(rollups, store, marks, setting_float(env, "USAGE_FILE_SECONDS"),
                      own_store=store is not recordings, region=region)
