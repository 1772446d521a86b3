"""Each recorded session's upload (dispatcher/artifacts/recordings.py), on the local folder store: the
policy at the start, the parts that arrived completed whatever ended the session, and what the
report says of it."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from botchannel.contract import RequestFailed
from botchannel.recording import MAX_LOG_BYTES, MAX_LOG_LINES, MAX_LOG_MESSAGE, MIN_PART_BYTES, wav_header
from dispatcher.artifacts.local_store import LocalFolderStore
from dispatcher.artifacts.reading import ArtifactReader
from dispatcher.artifacts.recordings import SessionRecordings, kept_parts
from dispatcher.artifacts.settings import ArtifactSettings
from dispatcher.artifacts.signed_paths import PART_PATH, SignedPaths
from dispatcher.artifacts.store import Part, StoreError
from dispatcher.settings import SettingsError

SESSION = "0123456789abcdef01234567"


class Timeline:
    def __init__(self) -> None:
        self.notes: list[tuple[str, str, dict[str, Any]]] = []

    def note(self, session_id: str, event: str, **fields: Any) -> None:
        self.notes.append((session_id, event, fields))

    async def read(self, session_id: str) -> list[dict[str, Any]]:
        return [{"event": "joined", "at": 100.0}, {"event": "ended", "at": 130.0, "reason": "peer_disconnected"}]


@pytest.fixture
def timeline() -> Timeline:
    return Timeline()


def recordings(tmp_path: Path, timeline: Timeline, policy: str = "on") -> tuple[SessionRecordings, LocalFolderStore]:
    store = LocalFolderStore(tmp_path, SignedPaths(b"k" * 32))
    return SessionRecordings(ArtifactSettings(policy=policy), store, note=timeline.note, events=timeline.read,
                             region="eu", provider="local", clock=lambda: 1_795_000_000.0), store


async def upload(store: LocalFolderStore, url: str, data: bytes) -> None:
    assert url.startswith(PART_PATH)
    assert await store.accept_part(url.removeprefix(PART_PATH), data)


async def test_a_session_that_ended_with_its_recording_closed_is_complete(tmp_path: Path, timeline: Timeline) -> None:
    kept, store = recordings(tmp_path, timeline)
    plan = await kept.plan_for(SESSION, transport="webrtc", release="v2", key_name="support")
    assert plan is not None and plan.sample_rate == 16000
    data = wav_header(16000) + b"\1\0" * 32000
    await upload(store, (await kept.part_url(SESSION, {"part": 1}))["url"], data)
    await kept.bot_finished(SESSION, {"parts": 1, "bytes": len(data), "degraded": []})
    report = await kept.finish(SESSION, "the bot ended the session")
    assert report is not None
    assert report["recording"]["status"] == "complete" and report["recording"]["seconds"] == 1.0
    assert (report["release"], report["key_name"], report["region"]) == ("v2", "support", "eu")
    assert report["timings"] == {"joined": 100.0, "ended": 130.0}
    folder = tmp_path / "retain-forever/2026/11/18" / SESSION
    assert json.loads((folder / "report.json").read_text()) == report
    assert (folder / "recording.wav").read_bytes()[40:44] == (64000).to_bytes(4, "little")
    assert timeline.notes[-1][1] == "recording_ready"
    assert await store.open_uploads("") == []


async def test_a_bot_that_died_leaves_a_partial_recording_of_what_it_uploaded(tmp_path: Path,
                                                                              timeline: Timeline) -> None:
    kept, store = recordings(tmp_path, timeline)
    await kept.plan_for(SESSION, transport="websocket", release="v1", key_name=None)
    url = (await kept.part_url(SESSION, {"part": 1}))["url"]
    await upload(store, url, wav_header(8000) + b"\1\0" * 8000)  # a checkpoint, never closed
    report = await kept.finish(SESSION, "its machine ended without the bot's end (killed or lost)")
    assert report is not None and report["recording"]["status"] == "partial"
    assert report["recording"]["sample_rate"] == 8000 and report["recording"]["seconds"] == 0.5
    assert timeline.notes[-1][1] == "recording_partial"


async def test_an_upload_with_no_part_is_aborted(tmp_path: Path, timeline: Timeline) -> None:
    kept, store = recordings(tmp_path, timeline)
    await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    await kept.part_url(SESSION, {"part": 1})
    assert await store.open_uploads("") != []
    report = await kept.finish(SESSION, "the bot ended the session")
    assert report is not None and report["recording"]["status"] == "none"
    assert await store.open_uploads("") == []
    assert timeline.notes[-1][1] == "recording_missing"


@pytest.mark.parametrize(("sent", "kept_of_it"), [
    ({"parts": "all", "bytes": "lots", "seconds": float("nan"), "dropped_frames": -1}, None),
    ({"degraded": 5, "bytes": 10}, {"bytes": 10}),
    ({"upload_errors": [{"nested": "x" * 9000}, "timeout"], "degraded": ["y" * 9000]},
     {"upload_errors": ["timeout"], "degraded": ["y" * 300]}),
])
async def test_a_bots_account_of_the_wrong_shape_still_leaves_a_report(
        tmp_path: Path, timeline: Timeline, sent: dict[str, Any], kept_of_it: dict[str, Any] | None) -> None:
    kept, store = recordings(tmp_path, timeline)
    await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    data = wav_header(16000) + b"\1\0" * 800
    await upload(store, (await kept.part_url(SESSION, {"part": 1}))["url"], data)
    await kept.bot_finished(SESSION, sent)
    report = await kept.finish(SESSION, "the bot ended the session")
    assert report is not None and report["recording"]["bot"] == kept_of_it


class CompletionHeld(LocalFolderStore):
    """The folder store whose `complete` waits until the test lets it go (an S3 call under way)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, SignedPaths(b"k" * 32))
        self.completing, self.go_on = asyncio.Event(), asyncio.Event()

    async def complete(self, key: str, upload_id: str, parts: list[Part]) -> None:
        self.completing.set()
        await self.go_on.wait()
        await super().complete(key, upload_id, parts)


async def test_a_recording_still_being_written_counts_as_recorded_so_it_is_not_erased_then(
        tmp_path: Path, timeline: Timeline) -> None:
    store = CompletionHeld(tmp_path)
    kept = SessionRecordings(ArtifactSettings(policy="on"), store, note=timeline.note, events=timeline.read,
                             region="eu", provider="local")
    await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    await upload(store, (await kept.part_url(SESSION, {"part": 1}))["url"], wav_header(16000) + b"\1\0" * 800)
    finishing = asyncio.create_task(kept.finish(SESSION, "the bot ended the session"))
    await asyncio.wait_for(store.completing.wait(), timeout=30)
    assert kept.recorded(SESSION)  # an erasure now would be undone by the recording and report written next
    store.go_on.set()
    assert (await asyncio.wait_for(finishing, timeout=30)) is not None
    assert not kept.recorded(SESSION)


async def test_the_report_of_a_session_that_uploaded_nothing_can_be_found_and_erased(tmp_path: Path,
                                                                                      timeline: Timeline) -> None:
    kept, store = recordings(tmp_path, timeline)
    await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)  # its bot never asks for a URL
    report = await kept.finish(SESSION, "the bot ended the session")
    assert report is not None and report["recording"]["status"] == "none"
    reader = ArtifactReader(store, 300)
    assert await reader.erase(SESSION, "support") is not None
    assert [p.name for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(tmp_path / "erasures")] == []


class Unanswered(LocalFolderStore):
    """A store whose check failed once, and now does not answer at all (a black-holed endpoint)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, SignedPaths(b"k" * 32))
        self.checks = 0

    async def check(self) -> None:
        self.checks += 1
        if self.checks == 1:
            raise StoreError("s3://calls: cannot write: AccessDenied")
        await asyncio.Event().wait()


async def checked_again(store: Unanswered) -> None:
    while store.checks < 2:
        await asyncio.sleep(0.01)


async def test_a_start_never_waits_on_a_store_that_does_not_answer(tmp_path: Path, timeline: Timeline) -> None:
    store, now = Unanswered(tmp_path), [1_795_000_000.0]
    kept = SessionRecordings(ArtifactSettings(policy="on"), store, note=timeline.note, events=timeline.read,
                             region="eu", provider="local", clock=lambda: now[0])
    await kept.check()  # at start-up: it fails
    now[0] += 61  # its check is due again
    planned = await asyncio.wait_for(kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None), 30)
    assert planned is None and timeline.notes[-1][1] == "recording_skipped"  # unrecorded, not held up
    await asyncio.wait_for(checked_again(store), 30)  # the check again is under way, in the background
    await kept.aclose()


async def test_recording_off_plans_nothing_and_a_bot_asking_anyway_is_refused(tmp_path: Path,
                                                                               timeline: Timeline) -> None:
    kept, _ = recordings(tmp_path, timeline, policy="off")
    assert await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None) is None
    with pytest.raises(RequestFailed) as refused:
        await kept.part_url(SESSION, {"part": 1})
    assert refused.value.code == "not_recorded"


async def test_a_part_number_outside_s3s_range_is_refused(tmp_path: Path, timeline: Timeline) -> None:
    kept, _ = recordings(tmp_path, timeline)
    await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    for part in (0, 10_001, "1", True):
        with pytest.raises(RequestFailed, match="part must be an integer"):
            await kept.part_url(SESSION, {"part": part})


async def test_a_bot_may_ask_only_for_the_parts_its_sessions_longest_call_fills(tmp_path: Path,
                                                                                 timeline: Timeline) -> None:
    kept = SessionRecordings(ArtifactSettings(policy="on"), LocalFolderStore(tmp_path, SignedPaths(b"k" * 32)),
                             note=timeline.note, events=timeline.read, region="eu", provider="local",
                             max_session_seconds=60)
    # 60 s (and 120 s of overrun) of 16 kHz stereo: 11.5 MB, three 5 MiB parts.
    await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    assert "url" in await kept.part_url(SESSION, {"part": 3})
    with pytest.raises(RequestFailed, match="from 1 to 3 "):
        await kept.part_url(SESSION, {"part": 4})


async def test_a_deployment_that_sets_no_checkpoint_has_its_bots_upload_the_filling_part_every_20_s(
        tmp_path: Path, timeline: Timeline) -> None:
    """What a stack leaves unset: a bot killed 40 s into a call keeps at least its first 20 s (the bot's
    checkpoints at the plan's interval are proven end to end in tests/e2e/test_recording.py)."""
    kept = SessionRecordings(ArtifactSettings.from_env({"RECORDING": "on"}),
                             LocalFolderStore(tmp_path, SignedPaths(b"k" * 32)), note=timeline.note,
                             events=timeline.read, region="eu", provider="local")
    plan = await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    assert plan is not None and plan.checkpoint_seconds == 20.0


def test_only_the_run_of_parts_s3_would_join_is_kept() -> None:
    full, small = MIN_PART_BYTES, 1000
    assert kept_parts([Part(2, full), Part(1, full), Part(3, small)]) == [Part(1, full), Part(2, full), Part(3, small)]
    assert kept_parts([Part(1, full), Part(3, small)]) == [Part(1, full)]  # a gap: what follows it is not the call
    assert kept_parts([Part(1, small), Part(2, small)]) == [Part(1, small)]  # only the last may be small
    assert kept_parts([Part(2, full)]) == []
    plan = MIN_PART_BYTES + 4000  # a plan's parts may be larger than S3's floor
    assert kept_parts([Part(1, plan), Part(2, plan + 4), Part(3, small)], plan) == [Part(1, plan)]  # over its plan
    assert kept_parts([Part(1, plan - 4), Part(2, small)], plan) == [Part(1, plan - 4)]  # its full upload never came
    assert kept_parts([Part(1, 5 * 1024**3)], plan) == []  # one part put to fill the bucket


@pytest.mark.parametrize(("env", "message"), [
    ({"RECORDING": "sometimes"}, "RECORDING='sometimes' is not one of off, consent, on"),
    ({"RECORDING": "1"}, "RECORDING='1' is not one of off, consent, on"),  # a YAML file's `true`
    ({"RECORDING_TRANSCRIPT": "yes"}, "RECORDING_TRANSCRIPT='yes' is not one of off, consent, on"),
    ({"RECORDING_RETENTION_DAYS": "a month"}, "RECORDING_RETENTION_DAYS='a month' is not a whole number"),
    ({"RECORDING_RETENTION_DAYS": "-1"}, "RECORDING_RETENTION_DAYS=-1 must be at least 0"),
    ({"RECORDING_RETENTION_DAYS": "36501"}, "RECORDING_RETENTION_DAYS=36501 must be at most 36500"),
    ({"RECORDING_RULES": "acme audio=off"}, "start a rule with key:NAME or release:NAME"),
    ({"RECORDING_REQUIRED": "sure"}, "RECORDING_REQUIRED='sure' is not a boolean"),
    ({"RECORDING_DESTINATION": "ftp://host/calls"}, "a folder, s3://bucket/prefix, gs://bucket/prefix, or "
                                                     "https://<account>.blob."),
    ({"RECORDING_DESTINATION": "gs:///prefix"}, "gs:// needs a bucket"),
    ({"RECORDING_DESTINATION": "s3:///prefix"}, "needs a bucket"),
    ({"RECORDING_DOWNLOAD_URL_SECONDS": "1e9"}, "RECORDING_DOWNLOAD_URL_SECONDS=1e.09 must be at most 604800"),
    ({"RECORDING_PART_URL_SECONDS": "86400"}, "RECORDING_PART_URL_SECONDS=86400 must be at most 3600"),
])
def test_a_bad_setting_names_the_way_forward(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ArtifactSettings.from_env(env)


async def test_the_bots_turns_are_kept_one_a_line_checked_and_bounded(tmp_path: Path, timeline: Timeline) -> None:
    kept, store = recordings(tmp_path, timeline)
    await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    await upload(store, (await kept.part_url(SESSION, {"part": 1}))["url"], wav_header(16000) + b"\1\0" * 320)
    turns = [{"who": "caller", "text": "hello", "start": 0.5, "end": 1.2},
             {"who": "bot", "text": "hi there", "start": 1.9, "end": 2.6, "latency": 0.7, "interrupted": False},
             {"who": "operator", "text": "not a side of the call"}, {"who": "bot", "text": 7},
             {"who": "caller", "text": "x" * 5000, "start": float("nan")}]
    await kept.bot_finished(SESSION, {"parts": 1, "bytes": 684, "degraded": [], "transcript": turns})
    report = await kept.finish(SESSION, "the bot ended the session")
    assert report is not None
    assert report["transcript"] == {"kept": True, "object": "transcript.jsonl", "turns": 3, "caller_lines": 2,
                                    "bot_turns": 1}
    written = next(tmp_path.glob(f"retain-forever/*/*/*/{SESSION}/transcript.jsonl"))
    lines = [json.loads(line) for line in written.read_text().splitlines()]
    assert lines[:2] == turns[:2]
    assert lines[2] == {"who": "caller", "text": "x" * 2000}  # bounded; a time that is no time left out


async def test_a_turn_whose_text_is_no_utf8_is_kept_readable_and_the_sessions_report_is_written(
        tmp_path: Path, timeline: Timeline) -> None:
    kept, store = recordings(tmp_path, timeline)
    await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    await upload(store, (await kept.part_url(SESSION, {"part": 1}))["url"], wav_header(16000) + b"\1\0" * 320)
    turns = json.loads('[{"who": "caller", "text": "a \\ud800 b", "start": 0.5, "end": 1.2}]')  # a lone surrogate
    await kept.bot_finished(SESSION, {"parts": 1, "bytes": 684, "degraded": [], "transcript": turns})
    report = await kept.finish(SESSION, "the bot ended the session")
    assert report is not None and report["transcript"]["kept"] is True
    written = next(tmp_path.glob(f"**/{SESSION}/transcript.jsonl")).read_bytes().decode("utf-8")
    assert json.loads(written) == {"who": "caller", "text": "a \ufffd b", "start": 0.5, "end": 1.2}
    assert next(tmp_path.glob(f"**/{SESSION}/report.json")).is_file()


async def test_a_bot_that_died_hands_over_no_turns_and_the_report_says_so(tmp_path: Path, timeline: Timeline) -> None:
    kept, _ = recordings(tmp_path, timeline)
    await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    report = await kept.finish(SESSION, "its machine ended without the bot's end (killed or lost)")
    assert report is not None and report["transcript"]["kept"] is False
    assert "killed or lost" in report["transcript"]["why"]


class StoppedTimeline(Timeline):
    """A session stopped whose machine ended before its bot handed over its end (its stop's grace ran out)."""

    async def read(self, session_id: str) -> list[dict[str, Any]]:
        return [{"event": "joined", "at": 100.0}, {"event": "stop_requested", "at": 130.0},
                {"event": "machine_ended", "at": 135.0, "state": "ended"}]


async def test_a_bot_stopped_before_it_handed_over_its_end_is_said_so_not_killed_or_lost(tmp_path: Path) -> None:
    kept, store = recordings(tmp_path, StoppedTimeline())
    await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    await upload(store, (await kept.part_url(SESSION, {"part": 1}))["url"], wav_header(16000) + b"\1\0" * 3200)
    report = await kept.finish(SESSION, "its machine ended without the bot's end (killed or lost)")
    assert report is not None and report["recording"]["status"] == "partial"
    for said in (report["ended"]["how"], report["recording"]["why"], report["transcript"]["why"],
                 report["bot_logs"]["why"]):
        assert "killed or lost" not in said and "stop's grace ran out" in said, said


class CrashedAfterStopTimeline(Timeline):
    """A session stopped whose bot crashed before the stop reached it: its machine `failed`."""

    async def read(self, session_id: str) -> list[dict[str, Any]]:
        return [{"event": "joined", "at": 100.0}, {"event": "stop_requested", "at": 130.0},
                {"event": "machine_ended", "at": 131.0, "state": "failed", "detail": "exit code 139"}]


async def test_a_bot_that_crashed_after_its_stop_was_asked_is_not_blamed_on_the_stops_grace(tmp_path: Path) -> None:
    kept, _ = recordings(tmp_path, CrashedAfterStopTimeline())
    await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    report = await kept.finish(SESSION, "its machine ended without the bot's end (killed or lost)")
    assert report is not None
    assert "killed or lost" in report["ended"]["how"] and "grace" not in report["ended"]["how"], report["ended"]


class CannotSign(LocalFolderStore):
    """A store whose signer is refused (GCS's signBlob without its grant), on the thread that signs."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, SignedPaths(b"k" * 32))
        self.signed_on: list[bool] = []

    def part_url(self, key: str, upload_id: str, part: int, seconds: float) -> str:
        self.signed_on.append(threading.current_thread() is threading.main_thread())
        raise StoreError("gs://calls: cannot sign a URL (RefreshError)")


async def test_a_part_url_the_store_cannot_sign_is_the_store_unavailable_never_signed_on_the_event_loop(
        tmp_path: Path, timeline: Timeline) -> None:
    store = CannotSign(tmp_path)
    kept = SessionRecordings(ArtifactSettings(policy="on"), store, note=timeline.note, events=timeline.read,
                             region="eu", provider="local")
    await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    with pytest.raises(RequestFailed) as refused:
        await kept.part_url(SESSION, {"part": 1})
    assert (refused.value.status, refused.value.code) == (503, "store_unavailable")
    assert store.signed_on == [False]  # a signing call of its own never holds the event loop
    assert "cannot sign" in (kept.error or "")


async def test_the_bots_log_lines_are_kept_masked_checked_and_bounded(tmp_path: Path, timeline: Timeline) -> None:
    kept, store = recordings(tmp_path, timeline)
    await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    await upload(store, (await kept.part_url(SESSION, {"part": 1}))["url"], wav_header(16000) + b"\1\0" * 320)
    line = {"time": "2026-11-27T02:00:00.000+00:00", "level": "info", "logger": "bot.app", "message": "ready"}
    leaky = {**line, "level": "warning", "message": "relayed GET /phone/daily/dialin/s3cr3t-dial-in?token=abc&x=1"}
    await kept.bot_logs(SESSION, {"lines": [line, leaky, {**line, "level": "loud"}, "not a line",
                                            {**line, "message": "y" * (MAX_LOG_MESSAGE + 10)}], "dropped": 3})
    await kept.bot_logs(SESSION, {"lines": [line] * (MAX_LOG_LINES + 5)})  # a bot past the bounds
    await kept.bot_finished(SESSION, {"parts": 1, "bytes": 684, "degraded": []})
    report = await kept.finish(SESSION, "the bot ended the session")
    assert report is not None
    written = [json.loads(text) for text in next(tmp_path.glob(f"**/{SESSION}/logs.jsonl")).read_text()
               .splitlines()]
    assert len(written) == MAX_LOG_LINES and written[0] == line
    assert written[1]["message"] == "relayed GET /phone/daily/dialin/[redacted]?token=[redacted]&x=1"
    assert len(written[2]["message"]) == MAX_LOG_MESSAGE
    logs = report["bot_logs"]
    assert (logs["kept"], logs["lines"], logs["dropped_by_bot"], logs["dropped_here"]) == (True, MAX_LOG_LINES, 3, 10)
    assert report["kept"]["logs.jsonl"] is True


async def test_the_bots_log_lines_are_bounded_in_bytes_and_a_line_that_is_no_utf8_is_kept_readable(
        tmp_path: Path, timeline: Timeline) -> None:
    # JSON lets a bot send a lone surrogate (\ud800); UTF-8 has no such character. The line is kept,
    # that character replaced, and the lines after it in the same request are not lost.
    kept, store = recordings(tmp_path, timeline)
    await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    await upload(store, (await kept.part_url(SESSION, {"part": 1}))["url"], wav_header(16000) + b"\1\0" * 320)
    line = {"time": "2026-11-27T02:00:00.000+00:00", "level": "info", "logger": "bot.app", "message": "ready"}
    broken = json.loads('{"time": "\\udfff", "level": "error", "logger": "b\\ud800t", "message": "a \\ud800 b"}')
    await kept.bot_logs(SESSION, {"lines": [line, broken, line]})
    wide = {**line, "message": "é" * MAX_LOG_MESSAGE}  # 8,000 bytes a line: the bytes bound comes first
    await kept.bot_logs(SESSION, {"lines": [wide] * 1000})
    await kept.bot_finished(SESSION, {"parts": 1, "bytes": 684, "degraded": []})
    report = await kept.finish(SESSION, "the bot ended the session")
    assert report is not None
    body = next(tmp_path.glob(f"**/{SESSION}/logs.jsonl")).read_bytes()
    written = [json.loads(text) for text in body.decode("utf-8").splitlines()]
    assert written[:3] == [line, {"time": "\ufffd", "level": "error", "logger": "b\ufffdt", "message": "a \ufffd b"},
                           line]
    assert len(body) <= MAX_LOG_BYTES < len(body) + len(json.dumps(wide, ensure_ascii=False).encode()) + 1
    assert report["bot_logs"]["bytes"] == len(body) and report["bot_logs"]["dropped_here"] == 1003 - len(written)


async def test_a_bot_that_handed_over_no_log_lines_leaves_none_and_the_report_says_why(
        tmp_path: Path, timeline: Timeline) -> None:
    kept, _ = recordings(tmp_path, timeline)
    await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    report = await kept.finish(SESSION, "its machine ended without the bot's end (killed or lost)")
    assert report is not None and report["bot_logs"]["kept"] is False
    assert not list(tmp_path.glob("**/logs.jsonl"))
    assert report["kept"] == {"recording.wav": "the bot uploaded no audio",
                              "transcript.jsonl": report["transcript"]["why"], "logs.jsonl": report["bot_logs"]["why"]}
    assert report["cost"] == {"known": False, "why": "this dispatcher reckons no session's cost"}


async def test_the_report_has_the_sessions_cost_and_each_turns_latency_with_p50_and_p95(
        tmp_path: Path, timeline: Timeline) -> None:
    priced: list[list[dict[str, Any]]] = []

    async def cost(session_id: str, events: list[dict[str, Any]]) -> dict[str, Any] | None:
        assert session_id == SESSION
        priced.append(events)
        return {"currency": "USD", "total": 0.000066, "machine_seconds": 30.0, "provider": "local"}

    store = LocalFolderStore(tmp_path, SignedPaths(b"k" * 32))
    kept = SessionRecordings(ArtifactSettings(policy="on"), store, note=timeline.note, events=timeline.read,
                             region="eu", provider="local", clock=lambda: 1_795_000_000.0, cost=cost)
    await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name="acme")
    latencies = [0.9, 0.4, 1.6, 0.7, 0.5]
    turns = [{"who": "bot", "text": "hi", "start": 2.0 * i + 1, "end": 2.0 * i + 1.5, "latency": latency,
              "interrupted": i == 2} for i, latency in enumerate(latencies)]
    turns.append({"who": "bot", "text": "welcome", "start": 0.1, "end": 0.6, "interrupted": False})  # unprompted
    await kept.bot_finished(SESSION, {"parts": 0, "bytes": 0, "degraded": [], "transcript": turns})
    report = await kept.finish(SESSION, "the bot ended the session")
    assert report is not None
    assert priced == [await timeline.read(SESSION)]  # the session's own timeline
    assert report["cost"]["total"] == 0.000066
    assert (report["turns"]["bot_turns"], report["turns"]["answered"]) == (6, 5)
    assert (report["turns"]["p50"], report["turns"]["p95"]) == (0.7, 1.6)
    assert report["turns"]["latencies"][2] == {"start": 5.0, "latency": 1.6, "interrupted": True}
    assert (report["release"], report["region"], report["key_name"], report["provider"]) == ("v1", "eu", "acme",
                                                                                            "local")
    assert report["timings"] == {"joined": 100.0, "ended": 130.0}


async def test_the_credentials_in_a_bots_own_log_lines_are_masked_before_they_are_kept(
        tmp_path: Path, timeline: Timeline) -> None:
    """logs.jsonl is read by whoever reads the session: a provider's key in a URL an HTTP client's
    error names, a store's signature on a part's URL, an Authorization value never reach it."""
    kept, store = recordings(tmp_path, timeline)
    await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    await upload(store, (await kept.part_url(SESSION, {"part": 1}))["url"], wav_header(16000) + b"\1\0" * 320)
    said = [
        "400, message='Bad Request', url='https://generativelanguage.googleapis.com/upload/v1beta/files?key=AIzaSyLEAK1'",
        "connect wss://api.async.ai/text_to_speech/websocket/ws?api_key=LEAK2&version=v1 failed",
        "part 3: PUT https://storage.googleapis.com/b/r.wav?partNumber=3&X-Goog-Signature=LEAK3 answered 500",
        "PUT https://b.s3.amazonaws.com/r.wav?X-Amz-Security-Token=LEAK4&X-Amz-Signature=LEAK5 answered 500",
        "headers={'Authorization': 'Bearer LEAK6', 'Accept': 'application/json'}",
        "< authorization: Token LEAK7",
    ]
    line = {"time": "2026-11-27T02:00:00.000+00:00", "level": "error", "logger": "pipecat.services"}
    await kept.bot_logs(SESSION, {"lines": [{**line, "message": message} for message in said]})
    await kept.finish(SESSION, "the bot ended the session")
    written = next(tmp_path.glob(f"**/{SESSION}/logs.jsonl")).read_text()
    assert "LEAK" not in written
    assert "partNumber=3&X-Goog-Signature=[redacted]" in written and "version=v1" in written


async def test_a_consent_session_whose_bot_never_said_it_announced_keeps_nothing_it_uploaded(
        tmp_path: Path, timeline: Timeline) -> None:
    kept, store = recordings(tmp_path, timeline, policy="consent")
    plan = await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    assert plan is not None and plan.consent
    data = wav_header(16000) + b"\1\0" * 3200
    await upload(store, (await kept.part_url(SESSION, {"part": 1}))["url"], data)  # a bot that did not wait
    await kept.bot_finished(SESSION, {"parts": 1, "bytes": len(data), "degraded": [],
                                      "transcript": [{"who": "caller", "text": "my card is 4111"}]})
    report = await kept.finish(SESSION, "the bot ended the session")
    assert report is not None and report["recording"]["status"] == "none"
    assert "announcement was never played" in report["recording"]["why"]
    assert report["transcript"]["kept"] is False
    folder = next(tmp_path.glob(f"retain-forever/*/*/*/{SESSION}"))
    assert not (folder / "recording.wav").exists() and not (folder / "transcript.jsonl").exists()
    assert "4111" not in json.dumps(report)
    assert await store.open_uploads("") == []


async def test_a_consent_session_announced_keeps_its_call(tmp_path: Path, timeline: Timeline) -> None:
    kept, store = recordings(tmp_path, timeline, policy="consent")
    await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    await kept.consent(SESSION, {"announced_at": 1_795_000_001.0, "seconds": 4.2})
    data = wav_header(16000) + b"\1\0" * 3200
    await upload(store, (await kept.part_url(SESSION, {"part": 1}))["url"], data)
    await kept.bot_finished(SESSION, {"parts": 1, "bytes": len(data), "degraded": [],
                                      "transcript": [{"who": "caller", "text": "hello"}]})
    report = await kept.finish(SESSION, "the bot ended the session")
    assert report is not None and report["recording"]["status"] == "complete"
    assert report["transcript"]["kept"] is True
    assert ("recording_consent" in [event for _, event, _ in timeline.notes])


class OutlivingUrls(LocalFolderStore):
    """The folder store as Azure's is: a part URL can still write the object once its upload is completed."""

    part_urls_outlive_uploads = True


async def test_an_ended_session_stays_unerasable_until_its_last_part_url_expired_where_urls_outlive_uploads(
        tmp_path: Path, timeline: Timeline) -> None:
    now = [1_795_000_000.0]
    for store, expected in ((OutlivingUrls(tmp_path / "a", SignedPaths(b"k" * 32)), 300.0),
                            (LocalFolderStore(tmp_path / "b", SignedPaths(b"k" * 32)), 0.0)):
        kept = SessionRecordings(ArtifactSettings(policy="on"), store, note=timeline.note, events=timeline.read,
                                 region="eu", provider="local", clock=lambda: now[0])
        await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
        await upload(store, (await kept.part_url(SESSION, {"part": 1}))["url"], wav_header(16000) + b"\1\0" * 320)
        await kept.finish(SESSION, "the bot ended the session")
        assert not kept.recorded(SESSION) and kept.writable_for(SESSION) == expected
        now[0] += 301
        assert kept.writable_for(SESSION) == 0.0
        now[0] -= 301


LINE_AT = "2026-11-18T11:06:{:02d}.000+00:00"  # 1_795_000_000 is 11:06:40 UTC, 2026-11-18


@pytest.mark.parametrize(("policy", "finished", "why"), [
    ({"policy": "consent"}, {}, "announcement was never played"),  # the caller left during it
    ({"policy": "on", "transcript": "off"}, {}, "keeps no transcript"),
    ({"policy": "on"}, {"transcript_why": "RECORDING_REDACT raised ValueError on turn 1"}, "withheld"),
])
async def test_the_bots_log_lines_are_kept_only_where_its_transcript_would_be(
        tmp_path: Path, timeline: Timeline, policy: dict[str, str], finished: dict[str, str], why: str) -> None:
    store = LocalFolderStore(tmp_path, SignedPaths(b"k" * 32))
    kept = SessionRecordings(ArtifactSettings(**policy), store, note=timeline.note, events=timeline.read,
                             region="eu", provider="local", clock=lambda: 1_795_000_000.0)
    await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    await kept.bot_logs(SESSION, {"lines": [{"time": LINE_AT.format(30), "level": "debug", "logger": "pipecat",
                                             "message": "Transcription: [my card is 4111]"}]})
    await kept.bot_finished(SESSION, {"parts": 0, "bytes": 0, "degraded": [], **finished})
    report = await kept.finish(SESSION, "the bot ended the session")
    assert report is not None and report["bot_logs"]["kept"] is False and why in report["bot_logs"]["why"]
    assert not list(tmp_path.glob("**/logs.jsonl"))


async def test_a_consent_sessions_log_lines_from_before_its_announcement_ended_are_not_kept(
        tmp_path: Path, timeline: Timeline) -> None:
    kept, _ = recordings(tmp_path, timeline, policy="consent")
    await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None)
    await kept.consent(SESSION, {"announced_at": 1_795_000_001.0, "seconds": 4.0})  # it ended at 11:06:45
    lines = [{"time": LINE_AT.format(second), "level": "info", "logger": "bot", "message": f"at {second}"}
             for second in (42, 46)]
    await kept.bot_logs(SESSION, {"lines": lines})
    await kept.bot_finished(SESSION, {"parts": 0, "bytes": 0, "degraded": []})
    report = await kept.finish(SESSION, "the bot ended the session")
    assert report is not None and report["bot_logs"]["before_consent"] == 1
    written = next(tmp_path.glob(f"**/{SESSION}/logs.jsonl")).read_text().splitlines()
    assert [json.loads(line)["message"] for line in written] == ["at 46"]
