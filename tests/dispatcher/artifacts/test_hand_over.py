"""A recording handed from the replica that planned it to the one its bot dialled
(dispatcher/artifacts/hand_over.py): two replicas' recordings on one folder store and one timeline,
the relay between them a direct call (tests/replicas/test_recording_elsewhere.py does it with real
processes and a real redis-server)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from botchannel.contract import RequestFailed
from botchannel.recording import wav_header
from dispatcher.artifacts import recordings
from dispatcher.artifacts.hand_over import METHOD_HAND_OVER, holder_of
from dispatcher.artifacts.local_store import LocalFolderStore
from dispatcher.artifacts.recordings import SessionRecordings
from dispatcher.artifacts.settings import ArtifactSettings
from dispatcher.artifacts.signed_paths import PART_PATH, SignedPaths
from dispatcher.store.relay import RelayRefused

SESSION = "0123456789abcdef01234567"


class SharedTimeline:
    """One timeline, noted by each replica under its own id (as dispatcher/sessions/timeline.py does)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def noter(self, replica: str) -> Any:
        def note(session_id: str, event: str, **fields: Any) -> None:
            self.events.append({"event": event, "at": 1.0, "replica": replica, **fields})
        return note

    async def read(self, session_id: str) -> list[dict[str, Any]]:
        return list(self.events)


class Relay:
    """What the store's relay does between replicas: `lost` answers are served but never delivered
    (the holder stalled past the asker's wait); `linked`: the replicas whose bot channel is live."""

    def __init__(self) -> None:
        self.lost = 0
        self.linked: set[str] = set()


def pair(tmp_path: Path, older_planner: bool = False,
         relay: Relay | None = None) -> tuple[SessionRecordings, SessionRecordings, LocalFolderStore]:
    store, timeline = LocalFolderStore(tmp_path, SignedPaths(b"k" * 32)), SharedTimeline()
    replicas: dict[str, SessionRecordings] = {}
    relay = relay or Relay()

    async def ask(replica: str, session_id: str, method: str, params: Mapping[str, Any],
                  timeout: float) -> Mapping[str, Any]:
        assert method == METHOD_HAND_OVER
        if older_planner:  # a replica from before the hand-over: its relay answers the method unknown
            raise RelayRefused(502, "relay_failed", "AttributeError")
        answer = await replicas[replica].hand_over(session_id, params.get("asker", ""),
                                                   bot_here=replica in relay.linked)
        if relay.lost:
            relay.lost -= 1
            raise TimeoutError
        return answer

    for name in ("a", "b"):
        replicas[name] = SessionRecordings(ArtifactSettings(policy="on"), store, note=timeline.noter(name),
                                           events=timeline.read, region="eu", provider="local", replica_id=name,
                                           ask=ask)
    return replicas["a"], replicas["b"], store


async def test_the_replica_its_bot_dialled_takes_the_recording_and_writes_its_end(tmp_path: Path) -> None:
    planner, holder, store = pair(tmp_path)
    await planner.plan_for(SESSION, transport="webrtc", release="v1", key_name="acme")
    url = (await holder.part_url(SESSION, {"part": 1}))["url"]  # the bot's first request, at the other replica
    assert not planner.recorded(SESSION) and holder.recorded(SESSION)
    data = wav_header(16000) + b"\1\0" * 16000
    assert await store.accept_part(url.removeprefix(PART_PATH), data)
    await holder.bot_finished(SESSION, {"parts": 1, "bytes": len(data), "degraded": []})
    await holder.finish_here(SESSION, "the bot ended the session")
    await holder.aclose()
    report = json.loads(next(tmp_path.glob(f"**/{SESSION}/report.json")).read_text())
    assert report["recording"]["status"] == "complete" and report["key_name"] == "acme", report


async def test_a_planner_that_cannot_hand_over_keeps_the_recording(tmp_path: Path) -> None:
    planner, holder, _ = pair(tmp_path, older_planner=True)
    await planner.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    with pytest.raises(RequestFailed) as refused:
        await holder.part_url(SESSION, {"part": 1})
    assert refused.value.status == 404 and not holder.recorded(SESSION)
    assert planner.recorded(SESSION)  # it completes it itself (its grace, its sweep or its stop), as before


async def test_a_hand_over_whose_answer_is_lost_is_asked_again_and_answered_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recordings, "HAND_OVER_BACKOFF_SECONDS", 0.01)
    relay = Relay()
    planner, holder, store = pair(tmp_path, relay=relay)
    await planner.plan_for(SESSION, transport="webrtc", release="v1", key_name="acme")
    relay.lost = 2  # the planner stalled: two asks served after the asker stopped waiting
    url = (await holder.part_url(SESSION, {"part": 1}))["url"]
    assert not planner.recorded(SESSION) and holder.recorded(SESSION)
    assert await store.accept_part(url.removeprefix(PART_PATH), wav_header(16000) + b"\1\0" * 16000)
    await holder.finish_here(SESSION, "the bot ended the session")
    await holder.aclose()
    report = json.loads(next(tmp_path.glob(f"**/{SESSION}/report.json")).read_text())
    assert report["recording"]["status"] == "partial" and report["recording"]["parts"] == 1, report


async def test_a_hand_over_asked_in_vain_pauses_1_2_and_4_s_between_its_asks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    real_sleep = asyncio.sleep
    loop = asyncio.get_running_loop()

    async def noted(seconds: float) -> None:  # the pauses docs/recording.md gives, noted rather than waited
        if asyncio.get_running_loop() is not loop:  # another thread's loop (an earlier test's server): its own
            await real_sleep(seconds)
            return
        pauses.append(seconds)
        await real_sleep(0)
    monkeypatch.setattr(asyncio, "sleep", noted)
    relay = Relay()
    planner, holder, _ = pair(tmp_path, relay=relay)
    await planner.plan_for(SESSION, transport="webrtc", release="v1", key_name="acme")
    relay.lost = recordings.HAND_OVER_ASKS
    with pytest.raises(RequestFailed):
        await holder.part_url(SESSION, {"part": 1})
    assert pauses == [1.0, 2.0, 4.0]  # asked 4 times, no pause after the last


async def test_a_replica_whose_bot_channel_is_live_keeps_the_recording_from_a_stale_close_elsewhere(
        tmp_path: Path) -> None:
    relay = Relay()
    planner, holder, _ = pair(tmp_path, relay=relay)
    await planner.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    await holder.part_url(SESSION, {"part": 1})  # the bot dialled the holder: the recording went there
    relay.linked.add("b")  # its channel is live there; an old one at the planner closes late
    await planner.finish_here(SESSION, "its bot's channel closed without its end")
    assert holder.recorded(SESSION) and not planner.recorded(SESSION)


def test_the_holder_follows_each_move_from_the_replica_it_left_whatever_the_clocks() -> None:
    events = [{"event": "recording_moved", "at": 99.5, "replica": "c", "replica_from": "b"},  # c's clock behind
              {"event": "recording_planned", "at": 100.0, "replica": "a"},
              {"event": "recording_moved", "at": 101.0, "replica": "b", "replica_from": "a"}]
    assert holder_of(events) == "c"
    assert holder_of([*events, {"event": "recording_moved", "at": 98.0, "replica": "c", "replica_from": "c",
                                "replica_to": "a"}]) == "a"
