"""A draining replica giving a recording to the replica its bot dialled (`take_over`): its answer
lost, the giver asks again and is answered the same, and never finishes it too; a replica that is
draining itself takes nothing. Replicas on one folder store and one timeline, the relay a direct call."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from botchannel.contract import RequestFailed
from dispatcher.artifacts import recordings
from dispatcher.artifacts.hand_over import METHOD_HAND_OVER, METHOD_TAKE_OVER
from dispatcher.artifacts.local_store import LocalFolderStore
from dispatcher.artifacts.recordings import SessionRecordings
from dispatcher.artifacts.settings import ArtifactSettings
from dispatcher.artifacts.signed_paths import SignedPaths
from tests.dispatcher.artifacts.test_hand_over import SharedTimeline

SESSION = "0123456789abcdef01234567"
ENDS = ("recording_ready", "recording_partial", "recording_missing")


class Owners:
    """The replica each session's bot dialled, and how many of the next answers the relay loses
    (served by the owner, never delivered: it stalled past the giver's wait)."""

    def __init__(self) -> None:
        self.of: dict[str, str] = {}
        self.lost = 0


def fleet(tmp_path: Path, owners: Owners) -> tuple[dict[str, SessionRecordings], SharedTimeline]:
    store, timeline = LocalFolderStore(tmp_path, SignedPaths(b"k" * 32)), SharedTimeline()
    replicas: dict[str, SessionRecordings] = {}

    async def ask(replica: str, session_id: str, method: str, params: Mapping[str, Any],
                  timeout: float) -> Mapping[str, Any]:
        assert method == METHOD_HAND_OVER
        return await replicas[replica].hand_over(session_id, params.get("asker", ""),
                                                 bot_here=owners.of.get(session_id) == replica)

    def asker(me: str) -> Any:
        async def ask_owner(session_id: str, method: str, params: Mapping[str, Any],
                            timeout: float) -> Mapping[str, Any] | None:
            owner = owners.of.get(session_id)
            if owner is None or owner == me:
                return None
            assert method == METHOD_TAKE_OVER
            answer = await replicas[owner].take_over(session_id, params)
            if owners.lost:
                owners.lost -= 1
                raise TimeoutError
            return answer
        return ask_owner

    for name in ("a", "b"):
        replicas[name] = SessionRecordings(ArtifactSettings(policy="on"), store, note=timeline.noter(name),
                                           events=timeline.read, region="eu", provider="local", replica_id=name,
                                           ask=ask, ask_owner=asker(name))
    return replicas, timeline


def ends(timeline: SharedTimeline) -> list[tuple[str, str]]:
    return [(e["event"], e["replica"]) for e in timeline.events if e["event"] in ENDS]


@pytest.fixture(autouse=True)
def quick_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recordings, "HAND_OVER_BACKOFF_SECONDS", 0.001)


async def test_a_take_over_whose_answer_is_lost_is_asked_again_and_ended_once_by_the_taker(tmp_path: Path) -> None:
    owners = Owners()
    replicas, timeline = fleet(tmp_path, owners)
    await replicas["a"].plan_for(SESSION, transport="webrtc", release="v1", key_name="acme")
    owners.of[SESSION], owners.lost = "b", 1
    await replicas["a"].aclose()  # a drains: b takes the recording, its answer lost; a asks again
    assert not replicas["a"].recorded(SESSION) and replicas["b"].recorded(SESSION)
    assert ends(timeline) == []
    await replicas["b"].finish_here(SESSION, "the bot ended the session")
    await replicas["b"].aclose()
    assert ends(timeline) == [("recording_missing", "b")]  # no part arrived: one end, by the bot's replica


async def test_a_take_over_with_every_answer_lost_is_not_finished_by_the_giver(tmp_path: Path) -> None:
    owners = Owners()
    replicas, timeline = fleet(tmp_path, owners)
    await replicas["a"].plan_for(SESSION, transport="webrtc", release="v1", key_name="acme")
    owners.of[SESSION], owners.lost = "b", recordings.HAND_OVER_ASKS
    await replicas["a"].aclose()
    assert ends(timeline) == []  # unclear whether b took it: a writes no end that could overwrite b's
    await replicas["b"].finish_here(SESSION, "the bot ended the session")
    await replicas["b"].aclose()
    assert ends(timeline) == [("recording_missing", "b")]


async def test_a_refused_take_over_is_finished_by_the_giver(tmp_path: Path) -> None:
    owners = Owners()
    replicas, timeline = fleet(tmp_path, owners)
    await replicas["a"].plan_for(SESSION, transport="webrtc", release="v1", key_name="acme")
    await replicas["b"].plan_for(SESSION, transport="webrtc", release="v1", key_name="acme")  # b holds one already
    owners.of[SESSION] = "b"
    await replicas["a"].aclose()
    assert ("recording_missing", "a") in ends(timeline)


async def test_a_replica_draining_takes_no_recording_from_another_draining_after_it(tmp_path: Path) -> None:
    owners = Owners()
    replicas, timeline = fleet(tmp_path, owners)
    await replicas["a"].plan_for(SESSION, transport="webrtc", release="v1", key_name="acme")
    owners.of[SESSION] = "b"  # its bot dialled b, which drains first, then a
    await replicas["b"].aclose()
    await replicas["a"].aclose()  # b refuses it: a ends it, rather than b after its own stop (never)
    assert ends(timeline) == [("recording_missing", "a")] and not replicas["b"].recorded(SESSION)
    assert list(tmp_path.glob(f"**/{SESSION}/report.json"))


async def test_a_replica_draining_does_not_take_a_recording_for_its_bots_request(tmp_path: Path) -> None:
    owners = Owners()
    replicas, _ = fleet(tmp_path, owners)
    await replicas["a"].plan_for(SESSION, transport="webrtc", release="v1", key_name="acme")
    await replicas["b"].aclose()
    with pytest.raises(RequestFailed) as refused:
        await replicas["b"].part_url(SESSION, {"part": 1})  # a late request over b's closing channel
    assert (refused.value.status, refused.value.code) == (503, "replica_stopping")  # the bot asks again, re-dialled
    assert replicas["a"].recorded(SESSION) and not replicas["b"].recorded(SESSION)
