"""The recorder never delays the audio (bot/recording/recorder.py): past its bounded queue a frame is
dropped and the recording marked degraded; a recording is ended with its last part uploaded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.recording.recorder import QUEUE_FRAMES, Recorder
from botchannel.contract import RequestFailed
from botchannel.recording import METHOD_RECORDING_FINISHED, RecordingPlan


class Dispatcher:
    """The dispatcher's side of the recording's two methods, as the channel would answer them."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, dict[str, Any]]] = []

    async def ask(self, method: str, params: Mapping[str, Any], timeout: float) -> Mapping[str, Any]:
        self.asked.append((method, dict(params)))
        if method == METHOD_RECORDING_FINISHED:
            return {}
        raise RequestFailed(503, "store_unavailable", "the test's store takes nothing")


async def test_a_writer_that_falls_behind_drops_frames_and_marks_the_recording_degraded() -> None:
    dispatcher = Dispatcher()
    recorder = Recorder(RecordingPlan(), dispatcher.ask, "http://127.0.0.1:1/")
    frame = b"\0\1" * 320  # 20 ms at 16 kHz
    for i in range(QUEUE_FRAMES + 10):  # offered with no await between: the writer cannot run
        recorder.offer(0, frame, 16000, 1, seen_at=i * 0.02)
    assert recorder.dropped == 10
    assert recorder.degraded == ["the writer fell behind: frames dropped"]
    stats = await recorder.finish(timeout=2.0)
    assert stats["dropped_frames"] == 10 and stats["degraded"][0].startswith("the writer fell behind")
    assert dispatcher.asked[-1] == (METHOD_RECORDING_FINISHED, stats)


async def test_a_session_without_audio_uploads_nothing() -> None:
    dispatcher = Dispatcher()
    recorder = Recorder(RecordingPlan(), dispatcher.ask, "http://127.0.0.1:1/")
    stats = await recorder.finish(timeout=2.0)
    assert (stats["parts"], stats["bytes"]) == (0, 0)
