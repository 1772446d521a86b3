"""The bot host reports what the session's services used, from Pipecat's own usage metrics, with its
`ended` report: a real bot process whose stand-in services meter themselves as Pipecat's do, the
team's bot file unchanged (it turns no usage metrics on; the host does)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import pytest
from pipecat.frames.frames import EndFrame, InputAudioRawFrame, STTMuteFrame
from pipecat.metrics.metrics import (
    LLMTokenUsage,
    LLMUsageMetricsData,
    STTUsage,
    STTUsageMetricsData,
    TTSUsageMetricsData,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.services.stt_service import SegmentedSTTService, STTService
from pipecat.workers.runner import WorkerRunner

from bot.usage_meter import UsageMeter, with_usage_metrics
from botchannel.contract import CHANNEL_PATH, ProtocolError, Report, encode, parse_frame
from dispatcher.app import create_app
from dispatcher.channel.credentials import BotCredentials
from dispatcher.settings import Settings
from tests.bot.conftest import READY_TIMEOUT, REPO, bot_env
from tests.support.dispatcher_server import serving
from tests.support.hand_dialled import hand_dialled
from tests.support.webrtc_client import WebRTCClient

TOKEN = "u" * 40
sys.path.insert(0, str(REPO / "tests" / "bots"))
import metered  # noqa: E402  the test bot's own figures


@pytest.fixture
async def dispatcher():
    app = create_app(Settings(bot_channel_token=TOKEN), env={}, machines=hand_dialled(), rooms=None)
    async with serving(app) as port:
        yield app.state.voicefleet.channels, f"ws://127.0.0.1:{port}{CHANNEL_PATH}"
    await app.state.voicefleet.aclose()


async def test_the_ended_report_carries_what_each_service_counted(dispatcher, spawn_bot) -> None:
    channels, url = dispatcher
    reports: list[Report] = []
    channels.report_listeners.append(lambda link, report: reports.append(report))
    credential = BotCredentials(TOKEN).issue("idle", "metered-1", 600)
    bot = spawn_bot(env=bot_env(BOT_CHANNEL_URL=url, BOT_CHANNEL_TOKEN=credential, BOT_MACHINE_ID="metered-1",
                                BOT_FILE=str(REPO / "tests" / "bots" / "metered.py")), wait_ready=False)
    async with channels._changed:
        await asyncio.wait_for(channels._changed.wait_for(lambda: channels.idle()), READY_TIMEOUT)
    link = channels.idle()[0]
    assert channels.take_idle(lambda candidate: candidate is link) is link
    channels.bind(link, "s-metered")
    await link.request("assign", {"session_id": "s-metered", "max_session_seconds": 60})
    async with WebRTCClient("unused", signal=lambda offer: link.request("webrtc.offer", offer)):
        assert await channels.wait_until(lambda: any(r.event == "first_audio" for r in reports), READY_TIMEOUT)
    assert await asyncio.to_thread(bot.wait, 30) == 0
    assert await channels.wait_until(lambda: any(r.event == "ended" for r in reports), READY_TIMEOUT)
    ended = next(r for r in reports if r.event == "ended")
    assert ended.usage is not None
    rows = {row["kind"]: row for row in ended.usage}
    assert rows["llm"]["model"] == "gpt-4o-mini"
    assert rows["llm"]["prompt_tokens"] == sum(t.prompt_tokens for t in metered.LLM_TURNS)
    assert rows["llm"]["completion_tokens"] == sum(t.completion_tokens for t in metered.LLM_TURNS)
    assert rows["llm"]["cache_read_input_tokens"] == sum(t.cache_read_input_tokens or 0 for t in metered.LLM_TURNS)
    assert (rows["tts"]["model"], rows["tts"]["characters"]) == ("tts-1", len(metered.REPLY))
    assert (rows["stt"]["model"], rows["stt"]["audio_seconds"]) == ("standin-stt-1", sum(metered.HEARD_SECONDS))
    assert "StandInLLM" in rows["llm"]["processor"]


def test_the_host_turns_usage_metrics_on_keeping_the_bots_other_params() -> None:
    from pipecat.pipeline.worker import PipelineParams

    kwargs: dict = {"params": PipelineParams(audio_in_sample_rate=8000)}
    with_usage_metrics(kwargs)
    assert kwargs["params"].enable_usage_metrics and kwargs["params"].audio_in_sample_rate == 8000
    bare: dict = {}
    with_usage_metrics(bare)
    assert bare["params"].enable_usage_metrics


def test_the_meter_sums_per_service_and_model_and_is_bounded() -> None:
    meter = UsageMeter()
    for _ in range(2):
        meter.count(LLMUsageMetricsData(processor="LLM#0", model="m", value=LLMTokenUsage(
            prompt_tokens=10, completion_tokens=2, total_tokens=12)))
    for n in range(40):  # a pipeline that builds services in a loop: one overflow row, not 40
        meter.count(TTSUsageMetricsData(processor=f"TTS#{n}", model="t", value=3))
    rows = meter.report()
    assert rows[0] == {"kind": "llm", "processor": "LLM#0", "model": "m", "prompt_tokens": 20, "completion_tokens": 4}
    assert len(rows) == 16 and sum(row.get("characters", 0) for row in rows) == 120
    assert parse_frame(encode(Report("ended", "s1", 1.0, usage=tuple(rows)))).usage == tuple(rows)


class StreamingSTT(STTService):
    """A streaming STT that bills, as a vendor's does, every second of audio streamed to it."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0  # bytes streamed to its vendor

    async def run_stt(self, audio: bytes):
        self.sent += len(audio)
        yield None


class SegmentedSTT(SegmentedSTTService):
    """A segmented STT: its vendor bills only the segments sent."""

    async def run_stt(self, audio: bytes):
        yield None


async def audio_to(meter: UsageMeter, stt: STTService, seconds: int, *, muted: bool = False) -> None:
    """`seconds` of caller audio through a real pipeline into `stt` (muted first, if so), then its end."""
    worker = PipelineWorker(Pipeline([stt]), observers=[meter], enable_rtvi=False)

    async def feed() -> None:
        await wait_for(lambda: "_record_stt_audio_usage" in vars(stt) or isinstance(stt, SegmentedSTTService))
        if muted:  # a mute strategy while the bot speaks: Pipecat's STTService drops the audio
            await worker.queue_frame(STTMuteFrame(mute=True))
        for _ in range(seconds * 50):  # 20 ms frames of 16 kHz mono 16-bit PCM
            await worker.queue_frame(InputAudioRawFrame(b"\0" * 640, 16000, 1))
        await worker.queue_frame(EndFrame())
    await asyncio.wait_for(asyncio.gather(WorkerRunner(handle_sigint=False).run(worker), feed()), 120)


async def wait_for(condition: Callable[[], bool]) -> None:
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the meter never saw the STT started")


async def test_a_streaming_stts_seconds_are_at_least_the_caller_audio_it_sent() -> None:
    meter, stt, segmented = UsageMeter(), StreamingSTT(), SegmentedSTT()
    await audio_to(meter, stt, 5)
    await audio_to(meter, segmented, 5)
    assert stt.sent == 5 * 50 * 640
    # Its metrics counted 2 s at its last final transcript; the 3 s after it had not been counted yet.
    meter.count(STTUsageMetricsData(processor=stt.name, model=None, value=STTUsage(audio_seconds=2.0)))
    meter.count(STTUsageMetricsData(processor=segmented.name, model=None, value=STTUsage(audio_seconds=1.5)))
    seconds = {row["processor"]: row["audio_seconds"] for row in meter.report() if row["kind"] == "stt"}
    assert seconds == {stt.name: 5.0, segmented.name: 1.5}
    # Its stop flushes the 3 s: counted once, not on top of the bound.
    meter.count(STTUsageMetricsData(processor=stt.name, model=None, value=STTUsage(audio_seconds=3.0)))
    assert [row["audio_seconds"] for row in meter.report() if row["processor"] == stt.name] == [5.0]
    # A bot killed before any final transcript: its streamed audio is its row.
    silent, other = UsageMeter(), StreamingSTT()
    await audio_to(silent, other, 2)
    assert silent.report() == [{"kind": "stt", "processor": other.name, "model": None, "audio_seconds": 2.0}]


async def test_audio_a_muted_stt_never_sent_is_not_counted() -> None:
    meter, stt = UsageMeter(), StreamingSTT()
    await audio_to(meter, stt, 5, muted=True)
    assert stt.sent == 0 and meter.report() == []


@pytest.mark.parametrize("usage, says", [
    ([{"kind": "gpu", "processor": "x"}], "kind must be one of"),
    ([{"kind": "llm", "processor": "x", "prompt_tokens": -1}], "prompt_tokens must be a number"),
    ([{"kind": "tts", "processor": "x", "prompt_tokens": 1}], "not a count of a tts service"),
    ([{"kind": "stt", "processor": "x", "audio_seconds": float("inf")}], "audio_seconds must be a number"),
    ({"kind": "stt"}, "must be a list"),
    ([{"kind": "stt", "processor": "x"}] * 17, "at most 16 rows"),
])
def test_a_malformed_usage_is_refused_naming_what_is_wrong(usage, says) -> None:
    import json

    frame = json.dumps({"type": "report", "event": "ended", "session_id": "s1", "t": 1.0, "usage": usage})
    with pytest.raises(ProtocolError, match=says):
        parse_frame(frame)
