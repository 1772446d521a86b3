"""The bot's outbound WebRTC audio (bot/output_pacing.py): a track behind its clock sends the
pipeline's audio as it comes, not after the silence it would send to catch up."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from av import AudioFrame
from pipecat.frames.frames import BotStoppedSpeakingFrame
from pipecat.observers.base_observer import FramePushed
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.smallwebrtc.transport import RawAudioTrack

from bot import output_pacing
from bot.output_pacing import MAX_BEHIND_SECONDS, SpeechEnd, install, keep_real_time

RATE = 16000
CHUNK = RATE * 2 // 50  # 20 ms of 16-bit mono, as the output transport writes it


async def received(track: RawAudioTrack) -> AudioFrame:
    """The track's next 10 ms, as aiortc's sender asks for it (Pipecat's `recv` is untyped)."""
    frame: AudioFrame = await track.recv()  # type: ignore[no-untyped-call]
    return frame


async def sent_by(track: RawAudioTrack, chunks: int, hop: float = 0.002) -> list[bool]:
    """What the track hands aiortc while a pipeline writes `chunks` loud 20 ms chunks at its own pace
    (each after the last was taken, as the output transport does): per 10 ms frame, whether it is loud."""
    tone = np.full(CHUNK // 2, 8000, dtype=np.int16).tobytes()

    async def pipeline() -> None:
        for _ in range(chunks):
            await track.add_audio_bytes(tone)
            await asyncio.sleep(hop)  # the hops between the output's tasks

    writer = asyncio.create_task(pipeline())
    loud: list[bool] = []
    # aiortc's sender: one recv after another, a loop turn between; for 3x the audio's length
    for _ in range(chunks * 2 * 3):
        frame = await received(track)
        loud.append(bool(frame.to_ndarray().any()))
        await asyncio.sleep(0)
    writer.cancel()
    return loud


async def test_a_track_two_seconds_behind_sends_the_pipelines_audio_as_it_comes() -> None:
    """Pipecat's track would first send 2 s of silence as fast as it is asked, the pipeline's chunks
    slipping in one by one: 2 of its 50 loud frames were among the first 150 (a busy host chops
    some with silence either way: a chunk that comes after its 10 ms was due)."""
    install()
    track = RawAudioTrack(RATE)
    track._timestamp, track._start = RATE // 100, track._start - 2.0  # made 2 s before its first recv
    sent = await sent_by(track, 25)
    assert sent.count(True) == 50, "".join(".#"[loud] for loud in sent)


async def test_a_chunk_that_comes_after_its_10_ms_was_due_is_sent_next_not_after_a_silence() -> None:
    """Pipecat's track sent 10 ms of silence whenever the pipeline's next chunk came later than that:
    the bot's words chopped, one silence per chunk."""
    install()
    track = RawAudioTrack(RATE)
    sent = await sent_by(track, 25, hop=0.02)
    first, last = sent.index(True), len(sent) - 1 - sent[::-1].index(True)
    assert sent.count(True) == 50 and sent[first:last].count(False) == 0, "".join(".#"[loud] for loud in sent)


def test_a_track_a_little_late_catches_up_and_one_far_behind_skips_the_time() -> None:
    track = RawAudioTrack(RATE)
    track._timestamp, start = RATE, track._start  # 1 s sent
    keep_real_time(track, now=start + 1.0 + MAX_BEHIND_SECONDS / 2)
    assert track._start == start  # a late wake-up: caught up by not waiting
    keep_real_time(track, now=start + 3.0)
    assert track._start == start + 2.0  # its next 10 ms is due now


async def test_a_track_holding_for_more_speech_sends_silence_once_the_bot_stopped_speaking(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """After the last chunk the track held for the next one, which never comes: nothing went out for
    the hold's length after every answer, and a caller's jitter buffer kept the answer's last packets
    until the stream resumed. The output's BotStoppedSpeakingFrame ends the hold (here a hold of 60 s,
    so only that can end it within the test's wait)."""
    monkeypatch.setattr(output_pacing, "HOLD_SECONDS", 60.0)
    install()
    track = RawAudioTrack(RATE)
    await received(track)  # the first recv: the track's clock starts
    writing = asyncio.ensure_future(track.add_audio_bytes(np.full(CHUNK // 4, 8000, dtype=np.int16).tobytes()))
    assert (await received(track)).to_ndarray().any()  # the answer's last 10 ms
    await writing
    after = asyncio.ensure_future(received(track))  # held: the pipeline may have more
    await asyncio.sleep(0.05)
    assert not after.done()
    processor = FrameProcessor()
    await SpeechEnd().on_push_frame(FramePushed(processor, processor, BotStoppedSpeakingFrame(),
                                                FrameDirection.UPSTREAM, 0))
    frame = await asyncio.wait_for(after, 10.0)
    assert not frame.to_ndarray().any()  # silence, at once
