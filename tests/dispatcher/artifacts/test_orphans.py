"""A dispatcher that stopped mid-call leaves its sessions' uploads open: the next one completes them."""

from __future__ import annotations

import json
from pathlib import Path

from botchannel.recording import wav_header
from dispatcher.artifacts.local_store import LocalFolderStore
from dispatcher.artifacts.orphans import WHY, OrphanSweep
from dispatcher.artifacts.recordings import SessionRecordings
from dispatcher.artifacts.settings import ArtifactSettings
from dispatcher.artifacts.signed_paths import PART_PATH, SignedPaths

SESSION = "0123456789abcdef01234567"


def replica(store: LocalFolderStore, notes: list[tuple[str, str]]) -> SessionRecordings:
    async def events(session_id: str) -> list[dict]:
        return []

    return SessionRecordings(ArtifactSettings(policy="on"), store, note=lambda s, e, **_: notes.append((s, e)),
                             events=events, region="eu", provider="local")


async def test_an_upload_its_dispatcher_left_open_is_completed_by_the_next_one(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path, SignedPaths(b"k" * 32))
    notes: list[tuple[str, str]] = []
    stopped = replica(store, notes)  # the dispatcher that stops mid-call
    await stopped.plan_for(SESSION, transport="websocket", release="v3", key_name="support")
    url = (await stopped.part_url(SESSION, {"part": 1}))["url"]
    assert await store.accept_part(url.removeprefix(PART_PATH), wav_header(8000) + b"\1\0" * 16000)

    next_one = replica(store, notes)
    assert await OrphanSweep(next_one, older_than_seconds=3600).sweep() == 0  # it may still be in a call
    assert await OrphanSweep(next_one, older_than_seconds=0).sweep() == 1

    assert await store.open_uploads("") == []
    folder = next(tmp_path.glob(f"retain-forever/*/*/*/{SESSION}"))
    report = json.loads((folder / "report.json").read_text())
    assert report["recording"]["status"] == "partial" and report["recording"]["seconds"] == 1.0
    assert report["recording"]["sample_rate"] == 8000  # the index kept it
    assert (report["release"], report["key_name"], report["ended"]["how"]) == ("v3", "support", WHY)
    assert (folder / "recording.wav").read_bytes()[40:44] == (32000).to_bytes(4, "little")
    assert notes[-1] == (SESSION, "recording_partial")
    assert await OrphanSweep(next_one, older_than_seconds=0).sweep() == 0  # nothing left to take


async def test_a_recording_whose_end_was_never_told_is_closed_once_no_session_could_still_run(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path, SignedPaths(b"k" * 32))
    notes: list[tuple[str, str]] = []
    now = [1_795_000_000.0]

    async def events(session_id: str) -> list[dict]:
        return []

    here = SessionRecordings(ArtifactSettings(policy="on"), store, note=lambda s, e, **_: notes.append((s, e)),
                             events=events, region="eu", provider="local", clock=lambda: now[0])
    await here.plan_for(SESSION, transport="webrtc", release="v3", key_name=None)  # its bot never dials
    assert await OrphanSweep(here, older_than_seconds=3600, clock=lambda: now[0]).sweep() == 0
    assert here.recorded(SESSION)
    now[0] += 3601
    assert await OrphanSweep(here, older_than_seconds=3600, clock=lambda: now[0]).sweep() == 1
    assert not here.recorded(SESSION)  # its place is free, its erasure no longer refused
    assert notes[-1] == (SESSION, "recording_missing")
