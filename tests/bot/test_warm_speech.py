"""A warm transfer's line said through a real Pipecat pipeline (bot/warm_speech.py): a voice standing in for a
TTS service (frames as one sends them: started, audio, stopped) and an output transport that plays in real
time. `say` is done only once the line's own audio has played: not when speech that began before it ends,
not when the person's "Hello?" interrupts it (it is said again); `stop` gives it up and quiets the bot."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    Frame,
    InterruptionWorkerFrame,
    OutputAudioRawFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import TransportParams
from pipecat.workers.runner import WorkerRunner

from bot.warm_speech import SpeechWatch

RATE = 8000
CHUNK_SECONDS = 0.04
BRIEFING = "Ana Lopez, order 1042, wants a refund."


class Voice(FrameProcessor):
    """Speaks each line as `seconds` of one sample value (its number among the lines said, from 1), after
    `latency` (a TTS's time to first byte), in 40 ms frames."""

    def __init__(self, seconds: dict[str, float], latency: dict[str, float]) -> None:
        super().__init__()
        self.seconds, self.latency = seconds, latency
        self.said: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, TTSSpeakFrame):
            await self.push_frame(frame, direction)
            return
        self.said.append(frame.text)
        await asyncio.sleep(self.latency.get(frame.text, 0.0))
        mark = struct.pack("<h", len(self.said))
        await self.push_frame(TTSStartedFrame())
        for _ in range(round(self.seconds.get(frame.text, 0.6) / CHUNK_SECONDS)):
            await self.push_frame(TTSAudioRawFrame(audio=mark * int(RATE * CHUNK_SECONDS), sample_rate=RATE,
                                                   num_channels=1))
        await self.push_frame(TTSStoppedFrame())


class Speaker(BaseOutputTransport):
    """Plays in real time, noting each line's samples played (by the value the voice gave them)."""

    def __init__(self) -> None:
        super().__init__(TransportParams(audio_out_enabled=True, audio_out_sample_rate=RATE))
        self.played: dict[int, int] = {}

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)  # as a transport does once connected

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        for (value,) in struct.iter_unpack("<h", frame.audio):  # sent, as a transport sends it, then its time
            if value:
                self.played[value] = self.played.get(value, 0) + 1
        await asyncio.sleep(len(frame.audio) / 2 / RATE)
        return True


class Speaking(BaseObserver):
    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()

    async def on_push_frame(self, data: FramePushed) -> None:
        if isinstance(data.frame, BotStartedSpeakingFrame):
            self.started.set()


@dataclass
class Bot:
    worker: PipelineWorker
    voice: Voice
    speaker: Speaker
    watch: SpeechWatch
    speaking: Speaking = field(default_factory=Speaking)

    async def queue(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        await self.worker.queue_frame(frame, direction)

    def played_seconds(self, line: int) -> float:
        return self.speaker.played.get(line, 0) / RATE


@pytest.fixture
async def bot(request: pytest.FixtureRequest) -> AsyncIterator[Bot]:
    seconds, latency = request.param
    voice, speaker, watch, speaking = Voice(seconds, latency), Speaker(), SpeechWatch(), Speaking()
    worker = PipelineWorker(Pipeline([voice, speaker]), params=PipelineParams(audio_out_sample_rate=RATE),
                            observers=[watch, speaking])
    running = asyncio.create_task(WorkerRunner(handle_sigint=False).run(worker))
    try:
        yield Bot(worker, voice, speaker, watch, speaking)
    finally:
        await worker.cancel()
        await asyncio.wait_for(running, 10)


@pytest.mark.parametrize("bot", [({"Earlier words.": 0.6, BRIEFING: 0.8}, {BRIEFING: 1.5})], indirect=True)
async def test_the_line_is_said_once_its_own_audio_played_not_when_earlier_speech_ends(bot: Bot) -> None:
    await bot.queue(TTSSpeakFrame("Earlier words."))  # the bot still talking when the step comes
    await asyncio.wait_for(bot.speaking.started.wait(), 5)
    assert await bot.watch.say(bot.queue, BRIEFING, 6.0) is True
    assert bot.voice.said == ["Earlier words.", BRIEFING]
    assert bot.played_seconds(2) == pytest.approx(0.8), "said before the line's own audio had played"


@pytest.mark.parametrize("bot", [({BRIEFING: 0.8}, {}), ], indirect=True)
async def test_a_line_the_person_talks_over_is_said_again_and_done_once_said_through(bot: Bot) -> None:
    saying = asyncio.create_task(bot.watch.say(bot.queue, BRIEFING, 6.0))
    await asyncio.wait_for(bot.speaking.started.wait(), 5)
    await asyncio.sleep(0.3)
    await bot.queue(InterruptionWorkerFrame(), FrameDirection.UPSTREAM)  # as the person's "Hello?" interrupts it
    assert await saying is True
    assert bot.voice.said == [BRIEFING, BRIEFING]
    assert bot.played_seconds(1) < 0.6 and bot.played_seconds(2) == pytest.approx(0.8)


@pytest.mark.parametrize("bot", [({BRIEFING: 0.8}, {}), ], indirect=True)
async def test_a_line_talked_over_with_no_time_to_say_it_again_is_not_said(bot: Bot) -> None:
    saying = asyncio.create_task(bot.watch.say(bot.queue, BRIEFING, 0.9))
    await asyncio.wait_for(bot.speaking.started.wait(), 5)
    await asyncio.sleep(0.3)
    await bot.queue(InterruptionWorkerFrame(), FrameDirection.UPSTREAM)
    assert await saying is False


@pytest.mark.parametrize("bot", [({BRIEFING: 3.0}, {}), ], indirect=True)
async def test_stop_gives_the_line_up_and_quiets_the_bot_at_once(bot: Bot) -> None:
    saying = asyncio.create_task(bot.watch.say(bot.queue, BRIEFING, 6.0))
    await asyncio.wait_for(bot.speaking.started.wait(), 5)
    await asyncio.sleep(0.3)
    assert await asyncio.wait_for(bot.watch.stop(bot.queue, 2.0), 2.5) is True
    assert await asyncio.wait_for(saying, 1) is False
    stopped_at = bot.played_seconds(1)
    await asyncio.sleep(0.5)
    assert bot.played_seconds(1) == stopped_at < 1.0, "the bot went on speaking after `stop`"
    assert bot.voice.said == [BRIEFING]  # not said again


@pytest.mark.parametrize("bot", [({BRIEFING: 0.8}, {}), ], indirect=True)
async def test_a_line_asked_for_before_a_stop_is_not_said_after_it(bot: Bot) -> None:
    """The person hung up while the bot's handler was still naming its briefing: the caller, back with the
    bot after the `stop`, must not hear the briefing start then."""
    asked = bot.watch.stops
    assert await bot.watch.stop(bot.queue, 2.0) is True
    assert await bot.watch.say(bot.queue, BRIEFING, 2.0, asked) is False
    assert await bot.watch.say(bot.queue, "Sorry, the desk left.", 3.0, bot.watch.stops) is True
    assert bot.voice.said == ["Sorry, the desk left."]
