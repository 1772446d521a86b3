"""A local folder store's retention (dispatcher/artifacts/folder_retention.py): no lifecycle rule
expires a folder, so the dispatcher deletes each session past its `retain-<N>d` itself, with its
index; a held one, one still within its days, and one kept until erased stay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dispatcher.artifacts.folder_retention import expire_folder_store
from dispatcher.artifacts.local_store import LocalFolderStore
from dispatcher.artifacts.reading import ArtifactReader
from dispatcher.artifacts.recordings import SessionRecordings
from dispatcher.artifacts.settings import ArtifactSettings
from dispatcher.artifacts.signed_paths import SignedPaths

STARTED = 1_795_000_000.0  # 2026-11-18, 11:06 UTC
DAY = 86_400.0


async def kept(store: LocalFolderStore, session_id: str, key_name: str) -> None:
    async def events(_: str) -> list[dict[str, Any]]:
        return []

    recordings = SessionRecordings(ArtifactSettings(policy="on", rules_text="key:week days=7; key:day days=1"),
                                   store, note=lambda *_, **__: None, events=events, region="eu", provider="local",
                                   clock=lambda: STARTED)
    await recordings.plan_for(session_id, transport="webrtc", release="v1", key_name=key_name)
    assert await recordings.finish(session_id, "the bot ended the session") is not None  # its report and index


async def test_a_folder_stores_sessions_past_their_retention_are_deleted_with_their_index(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path, SignedPaths(b"k" * 32))
    reader = ArtifactReader(store, 300, retention_days=(1, 7))
    gone, held, week, forever = ("a" * 24, "b" * 24, "c" * 24, "d" * 24)
    for session_id, key_name in ((gone, "day"), (held, "day"), (week, "week"), (forever, "other")):
        await kept(store, session_id, key_name)
    assert await reader.hold(held, True) is not None
    assert await expire_folder_store(store, now=STARTED + DAY) == 0  # the day is not over yet
    assert await expire_folder_store(store, now=STARTED + 2 * DAY) == 1
    assert await reader.listing(gone) is None and not list(tmp_path.glob(f"**/{gone}*"))
    for still in (held, week, forever):
        assert await reader.listing(still) is not None
    assert await reader.hold(held, False) is not None  # lifted: its retention applies again
    assert await expire_folder_store(store, now=STARTED + 9 * DAY) == 2
    assert await reader.listing(forever) is not None  # retain-forever: until erased
    assert [p.name for p in tmp_path.glob("retain-1d/*")] == ["sessions"]  # empty day folders gone too
