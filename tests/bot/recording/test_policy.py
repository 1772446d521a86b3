"""What the bot keeps under its session's policy (bot/recording/recorder.py): no audio uploaded
when the plan keeps none, nothing before a consent announcement has played, and the turns through
the team's redaction hook (a real function in a project folder) or withheld when it fails; the bot's
own log lines likewise (they can quote the call)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from pipecat.frames.frames import TranscriptionFrame
from pipecat.processors.frame_processor import FrameDirection

from bot.log_tail import LogTail
from bot.recording import redaction
from bot.recording.recorder import TRANSCRIPT_BYTES, Recorder
from bot.recording.redaction import RedactionError, resolve
from bot.recording.turns import MAX_TEXT
from botchannel.recording import METHOD_RECORDING_FINISHED, METHOD_RECORDING_LOGS, RecordingPlan

PROJECT = Path(__file__).with_name("redact_project")


@pytest.fixture
def project() -> Iterator[None]:
    sys.path.insert(0, str(PROJECT))  # the bot file's folder, as the host imports it
    try:
        yield
    finally:
        sys.path.remove(str(PROJECT))
        sys.modules.pop("team_redact", None)


class Dispatcher:
    def __init__(self) -> None:
        self.asked: list[tuple[str, dict[str, Any]]] = []

    async def ask(self, method: str, params: Mapping[str, Any], timeout: float) -> Mapping[str, Any]:
        self.asked.append((method, dict(params)))
        return {} if method == METHOD_RECORDING_FINISHED else {"url": "/part", "expires_in": 300}


def said(recorder: Recorder, text: str, at: float) -> None:
    recorder.offer(0, b"\1\0" * 320, 16000, 1, seen_at=at)
    recorder.turn(TranscriptionFrame(text, "caller", "t"), object(), FrameDirection.DOWNSTREAM, at)


async def test_the_turns_leave_the_bot_redacted_by_the_teams_function(project: None) -> None:
    dispatcher = Dispatcher()
    recorder = Recorder(RecordingPlan(audio=False), dispatcher.ask, "http://127.0.0.1:1/",
                        redact=resolve({"RECORDING_REDACT": "team_redact:scrub"}))
    said(recorder, "my card is 4111 1111 1111 1111", 1.0)
    stats = await recorder.finish(timeout=2.0)
    assert [line["text"] for line in stats["transcript"]] == ["my card is [number]"]
    assert [method for method, _ in dispatcher.asked] == [METHOD_RECORDING_FINISHED]  # no audio asked for
    assert (stats["parts"], stats["bytes"]) == (0, 0)


@pytest.mark.parametrize(("name", "why"), [("broken", "raised ValueError on turn 1"),
                                           ("not_text", "returned list, not str, on turn 1")])
async def test_a_hook_that_fails_withholds_the_transcript_and_says_why(project: None, name: str, why: str) -> None:
    recorder = Recorder(RecordingPlan(), Dispatcher().ask, "http://127.0.0.1:1/",
                        redact=resolve({"RECORDING_REDACT": f"team_redact:{name}"}))
    said(recorder, "call me on 555 123 4567", 1.0)
    stats = await recorder.finish(timeout=2.0)
    assert stats["transcript"] == [] and why in stats["transcript_why"]
    assert "555" not in repr(stats)


async def test_a_hook_that_hangs_withholds_the_transcript_and_the_session_ends(
        project: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redaction, "REDACT_SECONDS", 0.5)
    dispatcher = Dispatcher()
    # On a clock of its own: the turn said at 1.0 on the process's monotonic clock put the call's start
    # hours back, and the writer, run first by wait_for, laid hours of silence (GBs) before the end.
    recorder = Recorder(RecordingPlan(audio=False), dispatcher.ask, "http://127.0.0.1:1/", clock=Clock(1.0),
                        redact=resolve({"RECORDING_REDACT": "team_redact:hangs"}))
    said(recorder, "call me on 555 123 4567", 1.0)
    stats = await asyncio.wait_for(recorder.finish(timeout=2.0), 30)  # not held by the hook
    assert stats["transcript"] == [] and "did not return within 0.5 s" in stats["transcript_why"]
    assert [method for method, _ in dispatcher.asked] == [METHOD_RECORDING_FINISHED]


async def test_a_session_that_keeps_no_audio_uploads_no_part_at_its_checkpoints() -> None:
    """The plan keeps no audio: the part cutter still holds the WAV header, and no checkpoint may send it."""
    clock, dispatcher = Clock(1.0), Dispatcher()
    recorder = Recorder(RecordingPlan(audio=False, checkpoint_seconds=1.0), dispatcher.ask, "http://127.0.0.1:1/",
                        clock=clock)
    for step in range(40):  # 4 s of the caller's line: checkpoints at 0, 1, 2 and 3 s
        clock.now = 1.0 + 0.1 * step
        said(recorder, f"turn {step}", clock.now)
        for _ in range(5):
            await asyncio.sleep(0)
    stats = await recorder.finish(timeout=2.0)
    assert stats["transcript"] and (stats["parts"], stats["bytes"]) == (0, 0)
    assert [method for method, _ in dispatcher.asked] == [METHOD_RECORDING_FINISHED]


async def test_a_hook_that_returns_huge_text_is_cut_to_a_turn_and_the_transcript_still_fits(project: None) -> None:
    recorder = Recorder(RecordingPlan(audio=False), Dispatcher().ask, "http://127.0.0.1:1/",
                        redact=resolve({"RECORDING_REDACT": "team_redact:huge"}))
    for at in range(1, 150):
        said(recorder, f"turn {at}", float(at))
    stats = await recorder.finish(timeout=2.0)
    assert stats["transcript"] and all(len(line["text"]) <= MAX_TEXT for line in stats["transcript"])
    assert len(json.dumps(stats["transcript"])) <= TRANSCRIPT_BYTES  # within the channel's frame


@pytest.mark.parametrize(("spec", "message"), [("team_redact", "write it module:function"),
                                               ("nowhere:scrub", "module nowhere cannot be imported"),
                                               ("team_redact:absent", "has no function absent")])
def test_a_hook_that_cannot_be_found_is_named_with_the_way_forward(project: None, spec: str, message: str) -> None:
    with pytest.raises(RedactionError, match=message):
        resolve({"RECORDING_REDACT": spec})


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_consent_session_keeps_nothing_before_its_announcement_has_played() -> None:
    clock = Clock(2.0)
    recorder = Recorder(RecordingPlan(audio=False, consent=True), Dispatcher().ask, "http://127.0.0.1:1/", clock=clock)
    said(recorder, "before the announcement", 0.5)
    recorder.consented()  # at 2.0
    said(recorder, "after it", 3.0)
    clock.now = 3.5
    stats = await recorder.finish(timeout=2.0)
    assert [line["text"] for line in stats["transcript"]] == ["after it"]
    assert stats["transcript"][0]["end"] == pytest.approx(1.0)  # from the announcement's end


async def test_what_was_said_before_consent_is_not_kept_when_its_frames_come_after_it() -> None:
    """The gate is the frame's time on the call's clock, not when the recorder got round to it: a
    caller's words from during the announcement, handed over late, stay out."""
    clock = Clock(2.0)
    recorder = Recorder(RecordingPlan(audio=False, consent=True), Dispatcher().ask, "http://127.0.0.1:1/", clock=clock)
    said(recorder, "hello", 0.5)
    recorder.consented()  # at 2.0, before the frames of 1.5 reached the recorder
    said(recorder, "during the announcement", 1.5)
    said(recorder, "after it", 3.0)
    clock.now = 3.5
    stats = await recorder.finish(timeout=2.0)
    assert [line["text"] for line in stats["transcript"]] == ["after it"]


def logs_of(*messages: str) -> LogTail:
    tail = LogTail()
    for message in messages:
        tail.add({"time": "2026-11-27T02:00:00.000+00:00", "level": "debug", "logger": "pipecat.stt",
                  "message": message})
    return tail


def handed_over(dispatcher: Dispatcher) -> list[str]:
    return [line["message"] for method, params in dispatcher.asked if method == METHOD_RECORDING_LOGS
            for line in params["lines"]]


async def test_the_bots_log_lines_leave_it_through_the_teams_hook_as_its_turns_do(project: None) -> None:
    dispatcher = Dispatcher()
    recorder = Recorder(RecordingPlan(audio=False), dispatcher.ask, "http://127.0.0.1:1/",
                        logs=logs_of("Transcription: [my card is 4111 1111 1111 1111]"),
                        redact=resolve({"RECORDING_REDACT": "team_redact:scrub"}))
    await recorder.finish(timeout=2.0)
    assert handed_over(dispatcher) == ["Transcription: [my card is [number]]"]


@pytest.mark.parametrize(("plan", "redact"), [
    (RecordingPlan(audio=False, transcript=False), None),  # RECORDING_TRANSCRIPT=off
    (RecordingPlan(audio=False, consent=True), None),  # the caller left during the announcement
    (RecordingPlan(audio=False), "team_redact:broken"),  # the hook failed: the transcript is withheld
])
async def test_no_log_lines_leave_the_bot_where_its_transcript_would_not(
        project: None, plan: RecordingPlan, redact: str | None) -> None:
    dispatcher = Dispatcher()
    recorder = Recorder(plan, dispatcher.ask, "http://127.0.0.1:1/", logs=logs_of("Transcription: [4111 1111 1111]"),
                        redact=resolve({"RECORDING_REDACT": redact}) if redact else None)
    said(recorder, "my card is 4111 1111 1111 1111", 1.0)
    await recorder.finish(timeout=2.0)
    assert handed_over(dispatcher) == []
