"""The recording policy applied per session (dispatcher/artifacts/recordings.py `plan_for`): the
rules for its key name and release, lowered by its start, the retention in its objects' keys, a
transcript kept without audio, and a store that cannot be written refusing the session only when
the deployment requires a recording. On the local folder store, the test playing the bot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from botchannel.contract import RequestFailed
from dispatcher.artifacts.local_store import LocalFolderStore
from dispatcher.artifacts.reading import ArtifactReader
from dispatcher.artifacts.recordings import SessionRecordings
from dispatcher.artifacts.settings import ArtifactSettings
from dispatcher.artifacts.signed_paths import SignedPaths
from dispatcher.artifacts.wanted import Wanted, raised
from dispatcher.errors import ApiError
from tests.dispatcher.artifacts.test_recordings import SESSION, Timeline

RULES = "key:acme audio=consent days=30; release:v7 audio=off days=7"


def kept(tmp_path: Path, timeline: Timeline, **settings: object) -> SessionRecordings:
    return SessionRecordings(ArtifactSettings(**settings), LocalFolderStore(tmp_path, SignedPaths(b"k" * 32)),  # type: ignore[arg-type]
                             note=timeline.note, events=timeline.read, region="eu", provider="local",
                             clock=lambda: 1_795_000_000.0)


async def test_each_session_keeps_what_its_key_and_release_allow_for_as_long_as_they_allow(
        tmp_path: Path) -> None:
    timeline = Timeline()
    recordings = kept(tmp_path, timeline, policy="on", retention_days=90, rules_text=RULES)
    acme = await recordings.plan_for(SESSION, transport="webrtc", release="v1", key_name="acme")
    assert acme is not None and (acme.audio, acme.transcript, acme.consent) == (True, True, True)
    assert recordings._open[SESSION].folder == f"retain-30d/2026/11/18/{SESSION}/"

    other = "fedcba9876543210fedcba98"
    plan = await recordings.plan_for(other, transport="webrtc", release="v7", key_name="acme")
    # The key's consent was for the audio, which the release keeps none of: nothing to announce.
    assert plan is not None and (plan.audio, plan.transcript, plan.consent) == (False, True, False)
    assert recordings._open[other].folder == f"retain-7d/2026/11/18/{other}/"
    assert recordings.status()["rules"] == RULES


async def test_audio_off_and_transcript_on_keeps_the_transcript_and_report_and_uploads_nothing(
        tmp_path: Path) -> None:
    timeline = Timeline()
    recordings = kept(tmp_path, timeline, policy="on", retention_days=14)
    plan = await recordings.plan_for(SESSION, transport="webrtc", release="v1", key_name=None,
                                     wanted=Wanted(audio="off", transcript="on"))
    assert plan is not None and not plan.audio and plan.transcript
    with pytest.raises(RequestFailed, match="audio is not being recorded"):
        await recordings.part_url(SESSION, {"part": 1})
    await recordings.bot_finished(SESSION, {"parts": 0, "bytes": 0, "degraded": [],
                                            "transcript": [{"who": "caller", "text": "hi", "start": 0, "end": 1}]})
    report = await recordings.finish(SESSION, "the bot ended the session")
    assert report is not None and report["recording"]["status"] == "off"
    assert report["transcript"]["kept"] is True and report["retention_days"] == 14
    folder = tmp_path / "retain-14d/2026/11/18" / SESSION
    assert sorted(p.name for p in folder.iterdir()) == ["report.json", "transcript.jsonl"]
    index = json.loads((tmp_path / f"retain-14d/sessions/{SESSION}.json").read_text())
    assert index["folder"] == f"retain-14d/2026/11/18/{SESSION}/"
    # Found again without a listing: the reader tries the retention folders the rules can give.
    reader = ArtifactReader(recordings.store, 60, retention_days=recordings.settings.rules.retention_days())
    assert await reader.folder(SESSION) == index["folder"]
    assert await ArtifactReader(recordings.store, 60, retention_days=[30]).folder(SESSION) is None


async def test_a_session_kept_until_erased_is_still_erasable_once_the_retention_became_a_day_count(
        tmp_path: Path) -> None:
    recordings = kept(tmp_path, Timeline(), policy="on")  # RECORDING_RETENTION_DAYS=0: kept until erased
    await recordings.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    await recordings.finish(SESSION, "the bot ended the session")
    assert list(tmp_path.glob(f"retain-forever/*/*/*/{SESSION}/report.json"))
    # The deployment now keeps sessions 90 days: no lifecycle rule will ever delete the old ones.
    reader = ArtifactReader(recordings.store, 60, retention_days=ArtifactSettings(
        policy="on", retention_days=90).rules.retention_days())
    record = await reader.erase(SESSION, "support")
    assert record is not None and record["objects"]
    assert not list(tmp_path.glob(f"retain-forever/*/*/*/{SESSION}/*")) and await reader.folder(SESSION) is None


async def test_a_transcript_the_bot_could_not_redact_is_not_kept_and_the_report_says_why(tmp_path: Path) -> None:
    recordings = kept(tmp_path, Timeline(), policy="on")
    await recordings.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    await recordings.bot_finished(SESSION, {"parts": 0, "bytes": 0, "degraded": [], "transcript": [],
                                            "transcript_why": "RECORDING_REDACT raised ValueError"})
    report = await recordings.finish(SESSION, "the bot ended the session")
    assert report is not None and report["transcript"] == {"kept": False, "why": "RECORDING_REDACT raised ValueError"}
    assert not list(tmp_path.rglob("transcript.jsonl"))


def test_a_start_may_lower_either_field_and_never_raise_one() -> None:
    policy = ArtifactSettings(policy="consent", transcript="on").rules.for_session(None, None)
    assert raised(policy, Wanted(audio="off", transcript="consent")) == []
    assert raised(policy, Wanted(audio="on")) == ["audio=on (policy: consent)"]
    assert raised(ArtifactSettings().rules.default, Wanted.of("on")) == ["audio=on (policy: off)",
                                                                         "transcript=on (policy: off)"]


async def test_a_store_that_cannot_be_written_refuses_the_session_only_when_recording_is_required(
        tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    timeline = Timeline()
    relaxed = kept(blocked / "recordings", timeline, policy="on")
    assert await relaxed.plan_for(SESSION, transport="webrtc", release="v1", key_name=None) is None
    assert timeline.notes[-1][1] == "recording_skipped"
    required = kept(blocked / "recordings", Timeline(), policy="on", required=True)
    with pytest.raises(ApiError) as refused:
        await required.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    assert refused.value.status == 503 and refused.value.code == "recording_unavailable"
    assert "(store_missing)" in refused.value.message and "RECORDING_REQUIRED" in refused.value.message
    assert refused.value.extra == {"reason": "store_missing"}  # the folder's path stays in the log and status


async def test_a_played_announcement_is_noted_on_the_timeline_and_in_the_report(tmp_path: Path) -> None:
    timeline = Timeline()
    recordings = kept(tmp_path, timeline, policy="consent")
    plan = await recordings.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    assert plan is not None and plan.consent
    with pytest.raises(RequestFailed, match="numbers of seconds"):
        await recordings.consent(SESSION, {"announced_at": "now", "seconds": 2.5})
    await recordings.consent(SESSION, {"announced_at": 1_795_000_001.5, "seconds": 2.5})
    assert timeline.notes[-1] == (SESSION, "recording_consent", {"announced_at": 1_795_000_001.5, "seconds": 2.5})
    report = await recordings.finish(SESSION, "the bot ended the session")
    assert report is not None and report["consent"] == {"announced_at": 1_795_000_001.5, "seconds": 2.5}


async def test_a_session_the_rules_keep_nothing_of_says_so_on_its_timeline(tmp_path: Path) -> None:
    timeline = Timeline()
    recordings = kept(tmp_path, timeline, policy="on", rules_text="release:v7 audio=off transcript=off")
    assert await recordings.plan_for(SESSION, transport="webrtc", release="v7", key_name=None) is None
    assert timeline.notes[-1][1] == "recording_off" and "RECORDING_RULES" in timeline.notes[-1][2]["reason"]
