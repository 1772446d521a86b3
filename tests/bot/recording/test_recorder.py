"""The recorder never delays the audio (bot/recording/recorder.py): past its bounded queue a frame is
dropped and the recording marked degraded; a recording is ended with its last part uploaded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from pipecat.frames.frames import BotStartedSpeakingFrame, BotStoppedSpeakingFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import TransportParams

from bot.recording.recorder import QUEUE_FRAMES, Recorder
from bot.recording.tap import BOT, CALLER
from botchannel.contract import RequestFailed
from botchannel.recording import METHOD_RECORDING_FINISHED, RecordingPlan


@pytest.fixture
async def aiohttp_parts() -> AsyncIterator[tuple[str, dict[int, bytes]]]:
    """An HTTP server that keeps each part PUT to /part/{n} (the newest upload of a number wins)."""
    received: dict[int, bytes] = {}

    async def put(request: web.Request) -> web.Response:
        # A store's signed PUT takes a body of a declared length, never a chunked one (S3 refuses it).
        assert "Transfer-Encoding" not in request.headers and request.content_length is not None
        received[int(request.match_info["n"])] = await request.read()
        assert len(received[int(request.match_info["n"])]) == request.content_length
        return web.Response()

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_put("/part/{n}", put)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/", received
    finally:
        await runner.cleanup()


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


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tone(seconds: float, rate: int, hz: float = 440.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes()


def level(samples: np.ndarray, start: float, end: float, rate: int = 16000) -> float:
    part = samples[int(start * rate):int(end * rate)].astype(np.float64)
    return float(np.sqrt(np.mean(part**2))) if len(part) else 0.0


def stored(server: str) -> Callable[[str, Mapping[str, Any], float], Awaitable[Mapping[str, Any]]]:
    """The dispatcher's answers that send each part to `server`'s /part/{n}."""

    async def ask(method: str, params: Mapping[str, Any], timeout: float) -> Mapping[str, Any]:
        return {"url": f"/part/{params['part']}", "expires_in": 300} if method != METHOD_RECORDING_FINISHED else {}

    return ask


def bot_loud(part: bytes) -> list[float]:
    """Where the bot's channel of a 16 kHz WAV part is loud, per 20 ms."""
    right = np.frombuffer(part[44:], dtype="<i2").reshape(-1, 2)[:, 1]
    return [round(at, 2) for at in np.arange(0.0, len(right) / 16000, 0.02) if level(right, at, at + 0.02) > 3000]


async def test_both_sides_at_their_own_rates_are_recorded_at_the_plans_and_uploaded(aiohttp_parts) -> None:
    """8 kHz carrier audio on the left, a 24 kHz burst sent faster than real time on the right: one
    16 kHz two-channel WAV, each side where and as long as it was heard, uploaded through the URL."""
    server, received = aiohttp_parts

    async def ask(method: str, params: Mapping[str, Any], timeout: float) -> Mapping[str, Any]:
        return {"url": f"/part/{params['part']}", "expires_in": 300} if method != METHOD_RECORDING_FINISHED else {}

    clock = Clock()
    recorder = Recorder(RecordingPlan(), ask, server, clock=clock)
    caller, bot = tone(0.02, 8000), tone(0.5, 24000, hz=300)
    for step in range(100):  # two seconds of 20 ms steps
        clock.now += 0.02
        if step < 50:  # the caller speaks for the first second
            recorder.offer(CALLER, caller, 8000, 1, seen_at=clock.now)
        if step == 60:  # the bot's half-second reply arrives at once, at 1.2 s
            recorder.offer(BOT, bot, 24000, 1, seen_at=clock.now)
        for _ in range(20):
            await asyncio.sleep(0)  # the writer takes what is queued
    stats = await recorder.finish(timeout=10.0)
    assert stats["degraded"] == [] and stats["parts"] == 1
    wav = received[1]
    assert wav[:4] == b"RIFF" and int.from_bytes(wav[24:28], "little") == 16000
    stereo = np.frombuffer(wav[44:], dtype="<i2").reshape(-1, 2)
    assert abs(len(stereo) / 16000 - 2.0) < 0.05  # from the first frame to the end
    left, right = stereo[:, 0], stereo[:, 1]
    assert level(left, 0.05, 0.95) > 3000 and level(left, 1.1, 1.9) == 0.0
    assert level(right, 0.0, 1.2) == 0.0
    assert level(right, 1.25, 1.7) > 3000 and level(right, 1.75, 2.0) == 0.0  # laid from when it was played


async def test_a_greeting_played_before_any_caller_audio_is_the_transcripts_first_bot_line() -> None:
    """Most bots speak first: the call's first audio is the bot's. Its turn starts where that audio was
    laid (the call's origin), not lost for being timed before the clock had one."""
    from pipecat.frames.frames import BotStartedSpeakingFrame, BotStoppedSpeakingFrame
    from pipecat.processors.frame_processor import FrameDirection
    from pipecat.transports.base_output import BaseOutputTransport
    from pipecat.transports.base_transport import TransportParams

    clock, output = Clock(), BaseOutputTransport(TransportParams())
    recorder = Recorder(RecordingPlan(), Dispatcher().ask, "http://127.0.0.1:1/", clock=clock)
    for direction in FrameDirection.DOWNSTREAM, FrameDirection.UPSTREAM:  # each copy, as Pipecat's output pushes it
        recorder.turn(BotStartedSpeakingFrame(), output, direction, seen_at=clock.now)
    for step in range(60):  # the greeting's 0.2 s tone, then the caller's line (silence) from 0.4 s
        clock.now += 0.02
        if step < 10:
            recorder.offer(BOT, tone(0.02, 16000), 16000, 1, seen_at=clock.now)
        elif step >= 20:
            recorder.offer(CALLER, b"\0\0" * 320, 16000, 1, seen_at=clock.now)
        if step == 30:
            for direction in FrameDirection.DOWNSTREAM, FrameDirection.UPSTREAM:
                recorder.turn(BotStoppedSpeakingFrame(), output, direction, seen_at=clock.now)
        for _ in range(5):
            await asyncio.sleep(0)
    await recorder.finish(timeout=2.0)
    (line,) = [line for line in recorder.turns.lines if line["who"] == "bot"]
    assert line["start"] == 0.0 and abs(line["end"] - 0.2) < 0.03, line


async def test_a_greeting_timed_before_a_held_backlog_arrives_moves_with_the_calls_start() -> None:
    """A cold phone call: the bot greets first, then the carrier's 5 s of caller audio held while the bot
    started arrives at once, 0.22 s after the greeting began. The call began 4.78 s before the greeting:
    its line says so."""
    from pipecat.frames.frames import BotStartedSpeakingFrame, BotStoppedSpeakingFrame
    from pipecat.processors.frame_processor import FrameDirection
    from pipecat.transports.base_output import BaseOutputTransport
    from pipecat.transports.base_transport import TransportParams

    clock, output = Clock(), BaseOutputTransport(TransportParams())
    recorder = Recorder(RecordingPlan(), Dispatcher().ask, "http://127.0.0.1:1/", clock=clock)
    recorder.turn(BotStartedSpeakingFrame(), output, FrameDirection.DOWNSTREAM, seen_at=clock.now)
    for _ in range(10):  # the greeting's 0.2 s
        clock.now += 0.02
        recorder.offer(BOT, tone(0.02, 16000), 16000, 1, seen_at=clock.now)
    clock.now += 0.02
    for _ in range(250):  # the held 5 s, handed over at once
        recorder.offer(CALLER, b"\0\0" * 320, 16000, 1, seen_at=clock.now)
    recorder.turn(BotStoppedSpeakingFrame(), output, FrameDirection.DOWNSTREAM, seen_at=clock.now)
    for _ in range(400):
        await asyncio.sleep(0)
    await recorder.finish(timeout=2.0)
    (line,) = [line for line in recorder.turns.lines if line["who"] == "bot"]
    assert abs(line["start"] - 4.78) < 0.03 and abs(line["end"] - 4.98) < 0.03, line


async def test_the_callers_line_stalled_then_caught_up_leaves_no_silence_inside_their_words(aiohttp_parts) -> None:
    """A caller's stream is continuous: 0.7 s of it held up (a loaded bot, the network) and then handed
    over at once is laid end to end, not heard as a pause in the middle of their words."""
    server, received = aiohttp_parts

    async def ask(method: str, params: Mapping[str, Any], timeout: float) -> Mapping[str, Any]:
        return {"url": f"/part/{params['part']}", "expires_in": 300} if method != METHOD_RECORDING_FINISHED else {}

    clock = Clock()
    recorder = Recorder(RecordingPlan(), ask, server, clock=clock)
    caller = tone(0.02, 16000)
    for step in range(120):
        clock.now += 0.02
        if step < 50 or step >= 85:  # from 1 s to 1.7 s the line is held up: the frames come at 1.7 s at once
            for _ in range(36 if step == 85 else 1):
                recorder.offer(CALLER, caller, 16000, 1, seen_at=clock.now)
        if step == 84:
            await asyncio.sleep(0.6)  # the writer, with nothing queued, takes what it holds meanwhile
        for _ in range(20):
            await asyncio.sleep(0)
    await recorder.finish(timeout=10.0)
    left = np.frombuffer(received[1][44:], dtype="<i2").reshape(-1, 2)[:, 0]
    quiet = [round(at, 2) for at in np.arange(0.0, 2.35, 0.05) if level(left, at, at + 0.05) < 3000]
    assert quiet == [], quiet


async def test_the_bots_audio_that_reaches_the_writer_after_its_moment_was_written_marks_the_recording() -> None:
    """The writer behind the call by more than its hold: the bot's audio is laid later than it was
    played, and the recording says so and by how much (the dispatcher's report: partial, and why)."""
    clock = Clock()
    recorder = Recorder(RecordingPlan(audio=False), Dispatcher().ask, "http://127.0.0.1:1/", clock=clock)
    started = clock.now
    for _ in range(150):  # 3 s of the caller's line: the writer hands out up to 2 s
        clock.now += 0.02
        recorder.offer(CALLER, b"\0\0" * 320, 16000, 1, seen_at=clock.now)
        for _ in range(5):
            await asyncio.sleep(0)
    recorder.offer(BOT, tone(0.1, 16000), 16000, 1, seen_at=started + 0.5)  # played at 0.5 s
    stats = await recorder.finish(timeout=2.0)
    (late,) = [float(why.split("laid up to ")[1].split(" s")[0]) for why in stats["degraded"] if "late" in why]
    assert 0.5 <= late <= 1.5, stats["degraded"]  # its moment (0.5 s) behind the last moment written (1-2 s)


async def test_a_greeting_played_while_a_held_backlog_is_still_arriving_is_where_its_line_says(aiohttp_parts) -> None:
    """A cold phone call on a loaded host: the carrier's 7 s held while the bot started reach the
    recorder over 3.5 s (read at twice real time), and the greeting plays meanwhile, at 0.5 s. Each
    piece says the call began earlier, so the greeting, 4 s into the call, must not be handed out
    before the backlog is laid: the WAV has its tone where its transcript line says."""
    server, received = aiohttp_parts
    clock, output = Clock(), BaseOutputTransport(TransportParams())
    recorder = Recorder(RecordingPlan(), stored(server), server, clock=clock)
    silence, greeting = b"\0\0" * 320, tone(0.02, 16000)
    for step in range(300):  # 6 s, 20 ms a step
        clock.now += 0.02
        for _ in range(2 if step < 175 else 1):  # 350 held frames at twice real time, then live
            recorder.offer(CALLER, silence, 16000, 1, seen_at=clock.now)
        if step == 25:
            recorder.turn(BotStartedSpeakingFrame(), output, FrameDirection.DOWNSTREAM, seen_at=clock.now)
        if 25 <= step < 75:  # the greeting's 0.2 s tone, then its trailing silence
            recorder.offer(BOT, greeting if step < 35 else silence, 16000, 1, seen_at=clock.now)
        if step == 55:
            recorder.turn(BotStoppedSpeakingFrame(), output, FrameDirection.DOWNSTREAM, seen_at=clock.now)
        for _ in range(20):
            await asyncio.sleep(0)
    await recorder.finish(timeout=10.0)
    (line,) = [line for line in recorder.turns.lines if line["who"] == "bot"]
    loud = bot_loud(received[1])
    assert abs(line["start"] - 4.02) < 0.05, line  # the call began 3.5 s before its first frame arrived
    assert loud and abs(loud[0] - line["start"]) < 0.05 and abs(loud[-1] + 0.02 - (line["start"] + 0.2)) < 0.05, \
        (line, loud)


async def test_a_bot_line_already_written_stays_on_its_audio_when_the_calls_start_moves_later(aiohttp_parts) -> None:
    """The caller's line stalls longer than the writer holds the stream back (1.5 s), then catches up:
    the call began half a second earlier than the clock thought, but the greeting, 0.5 s in, was
    written already and cannot move: its transcript line stays where its audio is."""
    server, received = aiohttp_parts
    clock, output = Clock(), BaseOutputTransport(TransportParams())
    recorder = Recorder(RecordingPlan(), stored(server), server, clock=clock)
    silence, greeting = b"\0\0" * 320, tone(0.02, 16000)
    for step in range(250):
        clock.now += 0.02
        if step < 150 or step >= 225:  # from 3 s to 4.5 s the caller's line is held up, then comes at once
            for _ in range(76 if step == 225 else 1):
                recorder.offer(CALLER, silence, 16000, 1, seen_at=clock.now)
        if step == 25:
            recorder.turn(BotStartedSpeakingFrame(), output, FrameDirection.DOWNSTREAM, seen_at=clock.now)
        if 25 <= step < 60:
            recorder.offer(BOT, greeting if step < 35 else silence, 16000, 1, seen_at=clock.now)
        if step == 50:
            recorder.turn(BotStoppedSpeakingFrame(), output, FrameDirection.DOWNSTREAM, seen_at=clock.now)
        if step == 224:
            await asyncio.sleep(0.6)  # the writer, with nothing queued, hands out what it holds meanwhile
        for _ in range(20):
            await asyncio.sleep(0)
    await recorder.finish(timeout=10.0)
    (line,) = [line for line in recorder.turns.lines if line["who"] == "bot"]
    loud = bot_loud(received[1])
    assert loud and abs(loud[0] - line["start"]) < 0.05 and abs(line["end"] - 0.5 - line["start"]) < 0.05, \
        (line, loud)
