"""Erasing and holding a session's artifacts (dispatcher/artifacts/reading.py): never an erasure without its
audit record, never a hold that would miss what the recording's end writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dispatcher.artifacts.keys import index_key
from dispatcher.artifacts.local_store import LocalFolderStore
from dispatcher.artifacts.reading import ArtifactReader, Held, StillUploading
from dispatcher.artifacts.recordings import SessionRecordings
from dispatcher.artifacts.settings import ArtifactSettings
from dispatcher.artifacts.signed_paths import SignedPaths
from dispatcher.artifacts.store import StoreError

SESSION = "0123456789abcdef01234567"
FOLDER = f"retain-forever/2026/11/18/{SESSION}/"


class AuditRefused(LocalFolderStore):
    """The folder store where `erasures/` cannot be written (a bucket policy, a full disk there)."""

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        if key.startswith("erasures/"):
            raise StoreError("the recordings folder: Permission denied")
        await super().put(key, data, content_type)


async def test_an_erasure_whose_audit_record_cannot_be_written_erases_nothing(tmp_path: Path) -> None:
    store = AuditRefused(tmp_path, SignedPaths(b"k" * 32))
    await store.put(index_key("", SESSION, 0), json.dumps({"folder": FOLDER}).encode(), "application/json")
    await store.put(FOLDER + "recording.wav", b"RIFF", "audio/wav")
    reader = ArtifactReader(store, 300)
    with pytest.raises(StoreError):
        await reader.erase(SESSION, "support")
    assert await reader.folder(SESSION) == FOLDER  # still found: the erasure may be asked again
    assert [o.key for o in await store.objects_under(FOLDER)] == [FOLDER + "recording.wav"]


async def test_a_hold_asked_while_another_replica_still_uploads_the_recording_is_refused(tmp_path: Path) -> None:
    recordings = SessionRecordings(ArtifactSettings(policy="on"), LocalFolderStore(tmp_path, SignedPaths(b"k" * 32)),
                                   note=lambda *a, **k: None, events=_no_events, region="eu", provider="local")
    await recordings.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    await recordings.part_url(SESSION, {"part": 1})  # its index written, its upload open (in that replica)
    with pytest.raises(StillUploading):
        await ArtifactReader(recordings.store, 300).hold(SESSION, True)  # this replica's reader
    assert await recordings.store.held([f"retain-forever/sessions/{SESSION}.json"]) == []


async def _no_events(session_id: str) -> list[dict[str, object]]:
    return []


class HeldMeanwhile(LocalFolderStore):
    """The folder store where an admin's hold lands between the erasure's check and its deletes."""

    async def delete(self, keys: list[str]) -> None:
        await self.hold([*keys, index_key("", SESSION, 0)], True)
        await super().delete(keys)


async def test_a_hold_placed_during_an_erasure_stops_it_as_held_and_its_record_says_so(tmp_path: Path) -> None:
    store = HeldMeanwhile(tmp_path, SignedPaths(b"k" * 32))
    await store.put(index_key("", SESSION, 0), json.dumps({"folder": FOLDER}).encode(), "application/json")
    await store.put(FOLDER + "recording.wav", b"RIFF", "audio/wav")
    reader = ArtifactReader(store, 300)
    with pytest.raises(Held):
        await reader.erase(SESSION, "support")
    assert await reader.folder(SESSION) == FOLDER and await store.objects_under(FOLDER)  # all kept
    record = json.loads(next(tmp_path.glob(f"erasures/*/*/*/{SESSION}.json")).read_text())
    assert "legal hold was placed during the erasure" in record["stopped"]
