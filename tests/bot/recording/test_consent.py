"""The consent announcement (bot/recording/announcement.py, consent.py): a WAV that parses is
played, mixed to mono, into the output transport once the caller is on the line, uninterruptible,
and the recording starts only once the transport has played it all, however slowly it plays (a busy
host); one stuck on a write never starts it; a file that is not audio is named with the way
forward."""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from pipecat.frames.frames import Frame, InputAudioRawFrame, OutputAudioRawFrame, StartFrame, TTSStoppedFrame
from pipecat.observers.base_observer import FramePushed
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import TransportParams

from bot.recording import consent
from bot.recording.announcement import DEFAULT, AnnouncementError, announcement_problem, load_announcement
from bot.recording.consent import ConsentAnnouncer
from tests.bot.speaking_pipeline import LINE_SAMPLES, RATE, Speaker, caller_on_the_line, line


class Output(BaseOutputTransport):
    """The output transport, keeping what is queued to it instead of playing it."""

    def __init__(self) -> None:
        super().__init__(TransportParams(audio_out_enabled=True))
        self.queued: list[Frame] = []

    async def queue_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM,
                          callback: object = None) -> None:
        self.queued.append(frame)


def write_wav(path: Path, samples: np.ndarray, rate: int, channels: int) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return path


def pushed(frame: Frame, source: FrameProcessor) -> FramePushed:
    return FramePushed(source=source, destination=FrameProcessor(), frame=frame,
                       direction=FrameDirection.DOWNSTREAM, timestamp=0)


async def test_the_announcement_is_queued_once_the_caller_is_heard_uninterruptible_and_mixed_to_mono(
        tmp_path: Path) -> None:
    stereo = np.tile(np.array([1000, 3000]), 8000 // 10)  # 0.1 s of stereo at 8 kHz
    announcement = load_announcement(write_wav(tmp_path / "notice.wav", stereo, 8000, 2))
    assert announcement.sample_rate == 8000 and announcement.seconds == 0.1
    announcer = ConsentAnnouncer(announcement, lambda at, seconds: None)
    output, caller = Output(), BaseInputTransport(TransportParams())

    await announcer.on_push_frame(pushed(StartFrame(), output))
    assert output.queued == []  # nobody on the line yet
    frame = InputAudioRawFrame(b"\0\0" * 160, 8000, 1)
    await announcer.on_push_frame(pushed(frame, caller))
    await announcer.on_push_frame(pushed(frame, caller))  # once only
    for _ in range(100):
        if output.queued and isinstance(output.queued[-1], TTSStoppedFrame):
            break
        await asyncio.sleep(0.01)
    played = [f for f in output.queued if isinstance(f, OutputAudioRawFrame)]
    assert len(played) == 5 and all(not f.interruptible for f in played)  # 20 ms pieces, never cut
    assert np.all(np.frombuffer(played[0].audio, "<i2") == 2000)  # mixed to mono
    assert isinstance(output.queued[-1], TTSStoppedFrame)  # its end, which the transport passes on once played


@pytest.mark.parametrize("slowness", [1.0, 2.5], ids=["real_time", "slower_than_real_time"])
async def test_the_recording_starts_only_once_the_caller_has_heard_the_whole_announcement(slowness: float) -> None:
    speaker = Speaker(slowness)
    heard_at_consent: list[tuple[int, float]] = []
    ends: list[float] = []  # when the dispatcher counts it ended (it keeps the bot's log lines from then)

    def announced(at: float, seconds: float) -> None:
        heard_at_consent.append((speaker.heard, seconds))
        ends.append(at + seconds)

    announcer = ConsentAnnouncer(line(), announced)
    async with caller_on_the_line(announcer, speaker):
        assert announcer._playing is not None
        await asyncio.wait_for(announcer._playing, 30)
    assert heard_at_consent == [(LINE_SAMPLES, LINE_SAMPLES / RATE)]  # its last part-chunk too
    assert ends[0] >= speaker.written_at  # not before the caller had heard it all


async def test_a_transport_that_never_plays_the_announcement_out_never_starts_the_recording(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consent, "PLAYOUT_LIMIT_SECONDS", 0.5)
    speaker, consented = Speaker(1000.0), []
    announcer = ConsentAnnouncer(line(), lambda at, seconds: consented.append(at))
    async with caller_on_the_line(announcer, speaker):
        began = time.monotonic()
        assert announcer._playing is not None
        await asyncio.wait_for(announcer._playing, 30)  # it gives up, bounded
        assert time.monotonic() - began >= LINE_SAMPLES / RATE + 0.5  # it waited for the transport first
    assert consented == [] and speaker.heard == 0  # the call goes on unrecorded


@pytest.mark.parametrize(("content", "message"), [
    (b"ID3\x04 an mp3, not a WAV", "is not a WAV file"),
    (None, "does not exist"),
])
def test_an_announcement_that_is_not_audio_is_named_with_the_way_forward(tmp_path: Path, content: bytes | None,
                                                                        message: str) -> None:
    path = tmp_path / "notice.wav"
    if content is not None:
        path.write_bytes(content)
    problem = announcement_problem({"RECORDING_ANNOUNCEMENT": "notice.wav"}, tmp_path)
    assert problem is not None and message in problem and "16-bit PCM" in problem and "\n" not in problem


def test_an_8_bit_announcement_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "eight.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(1)
        wav.setframerate(8000)
        wav.writeframes(b"\x80" * 800)
    with pytest.raises(AnnouncementError, match="8-bit audio"):
        load_announcement(path)


def test_the_announcement_voicefleet_ships_plays() -> None:
    assert announcement_problem({}) is None
    assert 1.0 < load_announcement(DEFAULT).seconds < 5.0


def test_the_bots_check_names_an_announcement_that_is_not_audio(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "notice.wav").write_text("not audio")
    env = {**os.environ, "RECORDING_ANNOUNCEMENT": str(tmp_path / "notice.wav")}
    checked = subprocess.run([sys.executable, "-m", "bot", "--check"], env=env, capture_output=True, text=True,
                             timeout=120, cwd=Path(__file__).parents[3])
    assert checked.returncode == 2, checked.stderr
    assert "RECORDING_ANNOUNCEMENT" in checked.stderr and "is not a WAV file" in checked.stderr
