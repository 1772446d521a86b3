"""An assistant: Deepgram speech-to-text → OpenAI LLM → Cartesia text-to-speech.

A Pipecat bot in the shape Pipecat's runner and Pipecat Cloud define (`async def bot(runner_args)`
with `create_transport`), importing nothing from voicefleet: run it with Pipecat's development
runner (`python bot.py`) or with voicefleet (`BOT_FILE=examples/assistant/bot.py`).

Keys (all three): DEEPGRAM_API_KEY, OPENAI_API_KEY, CARTESIA_API_KEY. Optional: DEEPGRAM_MODEL,
OPENAI_MODEL, CARTESIA_MODEL, CARTESIA_VOICE_ID, BOT_SYSTEM_PROMPT, and endpoint overrides
DEEPGRAM_API_URL, OPENAI_BASE_URL, CARTESIA_API_URL (a private deployment, or local fakes in tests).
Constructing the services touches no network; they connect when the pipeline starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.runner.types import RunnerArguments, SmallWebRTCRunnerArguments
from pipecat.runner.utils import create_transport
from pipecat.services.cartesia.tts import CartesiaTTSService
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.workers.runner import WorkerRunner

SAMPLE_RATE = 16000
KEY_VARIABLES = ("DEEPGRAM_API_KEY", "OPENAI_API_KEY", "CARTESIA_API_KEY")

DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly voice assistant. Your answers are spoken aloud, so keep them short, "
    "plain sentences without lists, markdown or emoji."
)
# Cartesia has no default voice: without one the TTS cannot speak. This is one of its stock
# English voices; CARTESIA_VOICE_ID overrides it.
DEFAULT_CARTESIA_VOICE_ID = "71a7ad14-091c-4e8e-a314-022ece01c121"
CARTESIA_API_URL = "https://api.cartesia.ai"  # CARTESIA_API_URL overrides it


def cartesia_websocket_url(api_url: str) -> str:
    """CARTESIA_API_URL is the API's base, as Cartesia's SDK takes it (`https://api.cartesia.ai`);
    the streaming TTS lives at `/tts/websocket` on the same host, over ws(s)."""
    scheme, _, rest = api_url.partition("://")
    ws_scheme = {"https": "wss", "http": "ws"}.get(scheme, scheme)
    return f"{ws_scheme}://{rest.rstrip('/')}/tts/websocket"


def _url(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name, "").strip().rstrip("/") or None


def build_services(env: Mapping[str, str]) -> tuple[list[Any], list[Any]]:
    """(the processors between the VAD and the output, those after the output), in pipeline order."""
    missing = [name for name in KEY_VARIABLES if not env.get(name)]
    if missing:
        raise RuntimeError(f"the assistant needs {', '.join(KEY_VARIABLES)}; missing: {', '.join(missing)}")
    stt_settings = DeepgramSTTService.Settings()
    if env.get("DEEPGRAM_MODEL"):
        stt_settings.model = env["DEEPGRAM_MODEL"]
    # Pipecat derives the WebSocket and REST URLs from one base (ws/http keep it unencrypted).
    stt = DeepgramSTTService(
        api_key=env["DEEPGRAM_API_KEY"], settings=stt_settings, base_url=_url(env, "DEEPGRAM_API_URL") or ""
    )
    llm_settings = OpenAILLMService.Settings(system_instruction=env.get("BOT_SYSTEM_PROMPT") or DEFAULT_SYSTEM_PROMPT)
    if env.get("OPENAI_MODEL"):
        llm_settings.model = env["OPENAI_MODEL"]
    llm = OpenAILLMService(api_key=env["OPENAI_API_KEY"], settings=llm_settings, base_url=_url(env, "OPENAI_BASE_URL"))
    tts_settings = CartesiaTTSService.Settings(voice=env.get("CARTESIA_VOICE_ID") or DEFAULT_CARTESIA_VOICE_ID)
    if env.get("CARTESIA_MODEL"):
        tts_settings.model = env["CARTESIA_MODEL"]
    tts = CartesiaTTSService(
        api_key=env["CARTESIA_API_KEY"],
        settings=tts_settings,
        url=cartesia_websocket_url(_url(env, "CARTESIA_API_URL") or CARTESIA_API_URL),
    )
    aggregators = LLMContextAggregatorPair(LLMContext())
    # The assistant aggregator follows the output so the context records what was played.
    return [stt, aggregators.user(), llm, tts], [aggregators.assistant()]


def _daily_params() -> TransportParams:
    # Imported only for a Daily session: a WebRTC bot never pays for (or needs) the Daily client.
    from pipecat.transports.daily.transport import DailyParams

    return DailyParams(audio_in_enabled=True, audio_out_enabled=True)


transport_params: dict[str, Any] = {
    "webrtc": lambda: TransportParams(audio_in_enabled=True, audio_out_enabled=True),
    "daily": _daily_params,
}


async def run_bot(transport: BaseTransport, runner_args: RunnerArguments) -> None:
    before_output, after_output = build_services(os.environ)
    pipeline = Pipeline(
        [transport.input(), VADProcessor(vad_analyzer=SileroVADAnalyzer()), *before_output, transport.output(),
         *after_output]
    )  # fmt: skip
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE),
        idle_timeout_secs=runner_args.pipeline_idle_timeout_secs,
        enable_rtvi=True,
    )

    async def leave(*_: Any) -> None:
        await worker.cancel()

    if isinstance(runner_args, SmallWebRTCRunnerArguments):
        transport.add_event_handler("on_client_disconnected", leave)
    else:
        transport.add_event_handler("on_participant_left", leave)
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
