"""A converged bot: OpenAI Realtime or Gemini Live hears the caller and speaks back, with no STT or TTS
between.

A Pipecat bot in the shape Pipecat's runner and Pipecat Cloud define (`async def bot(runner_args)`
with `create_transport`), importing nothing from voicefleet: run it with Pipecat's development
runner (`python bot.py`) or with voicefleet (`BOT_FILE=examples/realtime/bot.py`).

The key picks the vendor: OPENAI_API_KEY for OpenAI Realtime (optional: OPENAI_REALTIME_MODEL, and
OPENAI_REALTIME_URL, the WebSocket base `wss://api.openai.com/v1/realtime`), else GOOGLE_API_KEY for
Gemini Live (optional: GEMINI_LIVE_MODEL; the google-genai SDK's own GOOGLE_GEMINI_BASE_URL points it at
another endpoint, always over TLS). BOT_SYSTEM_PROMPT for either. A private endpoint, or a local fake
in tests and benchmarks, takes the URL alone. The model's server VAD finds the end of each turn, so the
bot runs no VAD itself. OpenAI caps a session at 60 minutes; Gemini a connection at about 10, and
Pipecat resumes the session on a new one, and an audio-only session at 15 minutes unless its context
window is compressed, which this bot turns on (docs/converged.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pipecat.frames.frames import LLMContextFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.runner.types import DailyRunnerArguments, RunnerArguments
from pipecat.runner.utils import create_transport
from pipecat.services.google.gemini_live.llm import ContextWindowCompressionParams, GeminiLiveLLMService
from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.workers.runner import WorkerRunner

IN_RATE = 16000
OUT_RATE = 24000  # what the Realtime API speaks: the transport plays it as it comes
REALTIME_URL = "wss://api.openai.com/v1/realtime"
DEFAULT_SYSTEM_PROMPT = "You are a friendly voice assistant. Keep your answers short and plain."


def build_llm(env: Mapping[str, str]) -> OpenAIRealtimeLLMService | GeminiLiveLLMService:
    if not env.get("OPENAI_API_KEY"):
        if env.get("GOOGLE_API_KEY"):
            return build_gemini(env)
        raise RuntimeError("the realtime bot needs OPENAI_API_KEY (OpenAI Realtime) or GOOGLE_API_KEY (Gemini Live)")
    settings = OpenAIRealtimeLLMService.Settings(
        system_instruction=env.get("BOT_SYSTEM_PROMPT") or DEFAULT_SYSTEM_PROMPT
    )
    if env.get("OPENAI_REALTIME_MODEL"):
        settings.model = env["OPENAI_REALTIME_MODEL"]
    base_url = env.get("OPENAI_REALTIME_URL", "").strip().rstrip("/") or REALTIME_URL
    return OpenAIRealtimeLLMService(api_key=env["OPENAI_API_KEY"], settings=settings, base_url=base_url)


def build_gemini(env: Mapping[str, str]) -> GeminiLiveLLMService:
    settings = GeminiLiveLLMService.Settings(
        system_instruction=env.get("BOT_SYSTEM_PROMPT") or DEFAULT_SYSTEM_PROMPT,
        # Without it Gemini ends an audio-only session at 15 minutes, past any resumption.
        context_window_compression=ContextWindowCompressionParams(enabled=True),
    )
    if env.get("GEMINI_LIVE_MODEL"):
        settings.model = env["GEMINI_LIVE_MODEL"]
    return GeminiLiveLLMService(api_key=env["GOOGLE_API_KEY"], settings=settings)


def _daily_params() -> TransportParams:
    # Imported only for a Daily session: a WebRTC bot never pays for (or needs) the Daily client.
    from pipecat.transports.daily.transport import DailyParams

    return DailyParams(audio_in_enabled=True, audio_out_enabled=True)


def _phone_params() -> TransportParams:
    # A carrier's media stream: `create_transport` reads the call's first messages and sets the
    # carrier's serializer, which converts its 8 kHz audio to and from the pipeline's rates.
    from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams

    return FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True)


transport_params: dict[str, Any] = {
    "webrtc": lambda: TransportParams(audio_in_enabled=True, audio_out_enabled=True),
    "daily": _daily_params,
    **dict.fromkeys(("twilio", "telnyx", "plivo", "exotel"), _phone_params),
}


async def run_bot(transport: BaseTransport, runner_args: RunnerArguments) -> None:
    llm = build_llm(os.environ)
    worker = PipelineWorker(
        Pipeline([transport.input(), llm, transport.output()]),
        params=PipelineParams(audio_in_sample_rate=IN_RATE, audio_out_sample_rate=OUT_RATE),
        idle_timeout_secs=runner_args.pipeline_idle_timeout_secs,
        enable_rtvi=True,
    )
    if isinstance(llm, GeminiLiveLLMService):
        # Gemini Live takes the caller's audio only once it has a context: an empty one, nothing to say first.
        await worker.queue_frame(LLMContextFrame(LLMContext()))

    async def leave(*_: Any) -> None:
        await worker.cancel()

    if isinstance(runner_args, DailyRunnerArguments):
        transport.add_event_handler("on_participant_left", leave)
    else:  # WebRTC, or a carrier's media stream
        transport.add_event_handler("on_client_disconnected", leave)
    runner = WorkerRunner(handle_sigint=runner_args.handle_sigint, handle_sigterm=runner_args.handle_sigterm)
    await runner.add_workers(worker)
    await runner.run()


async def bot(runner_args: RunnerArguments) -> None:
    """Pipecat's entry point: one session, on whatever transport the runner arguments name."""
    transport = await create_transport(runner_args, transport_params)
    await run_bot(transport, runner_args)


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
