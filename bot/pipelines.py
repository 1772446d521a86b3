"""Pipeline assembly: transport in → VAD → (user turns → parrot | STT → LLM → TTS) → transport out.

Transport-agnostic: the caller passes a constructed transport (SmallWebRTC or Daily) and the
Silero analyzer it loaded before announcing readiness.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameProcessor

from bot.config import ServiceSettings
from bot.parrot import PARROT_STOP_SECS, Parrot
from bot.turn_vad import OnsetVADProcessor
from bot.user_speaking import UserSpeakingFrames

if TYPE_CHECKING:
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.transports.base_transport import BaseTransport

    from bot.trace import Tracer

SAMPLE_RATE = 16000


def load_vad() -> SileroVADAnalyzer:
    """Loads the Silero model shipped inside the pipecat wheel (no download, ~30-50 ms)."""
    from pipecat.audio.vad.silero import SileroVADAnalyzer

    return SileroVADAnalyzer()


def build_pipeline(
    transport: BaseTransport,
    vad: SileroVADAnalyzer,
    services: ServiceSettings | None,
    tracer: Tracer | None = None,
) -> Pipeline:
    processors: list[FrameProcessor] = [transport.input()]
    # Tracing (VOICEFLEET_TRACE) adds two pass-through processors around the reply; off: none.
    before: list[FrameProcessor] = []
    after: list[FrameProcessor] = []
    if tracer is not None:
        from bot.trace import TraceAfterReply, TraceBeforeReply

        before, after = [TraceBeforeReply(tracer)], [TraceAfterReply(tracer)]
    if services is None:
        # The parrot retracts a reply when the user goes on speaking (bot/parrot.py), which lets it
        # end turns sooner; the keyed pipeline keeps Pipecat's own VAD and turn-taking.
        vad_processor: FrameProcessor = OnsetVADProcessor(vad_analyzer=vad, stop_secs=PARROT_STOP_SECS)
        processors += [vad_processor, UserSpeakingFrames(), *before, Parrot(), *after, transport.output()]
    else:
        from bot.services import ServiceProcessors

        keyed = ServiceProcessors(services)
        processors += [VADProcessor(vad_analyzer=vad), *before, *keyed.before_output(), *after]
        processors += [transport.output(), *keyed.after_output()]
    return Pipeline(processors)


def build_worker(pipeline: Pipeline, *, idle_timeout: float) -> PipelineWorker:
    return PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE),
        idle_timeout_secs=idle_timeout,
        # The session decides what idle means for the process (exit 0 with reason idle_timeout);
        # the worker only reports it.
        cancel_on_idle_timeout=False,
        # RTVI serves pipecat's JS client (bot-ready, bot-speaking events over the data channel).
        enable_rtvi=True,
    )
