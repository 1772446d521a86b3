"""Traced: a Pipecat bot with Pipecat's OpenTelemetry tracing on, as pipecat-examples' `open-telemetry/`
bots (jaeger, langfuse, ...) enable it: `enable_tracing=True` on the pipeline's worker, which makes
Pipecat export one `conversation` span per session, a `turn` span per turn and a span per service
call (`stt`, `llm`, `tts`) under it.

It needs no API keys: its "speech service" is a tone synthesiser written as any Pipecat TTS service
is (a `TTSService` whose `run_tts` carries Pipecat's `@traced_tts`, as the bundled services' do), so
its greeting is a real service call with its own `tts` span. Swap it for Cartesia, ElevenLabs, ...
and their spans appear the same way.

Where the spans go:
- under voicefleet (`BOT_FILE=examples/traced/bot.py`), the bot host exports them by the standard
  `OTEL_EXPORTER_OTLP_ENDPOINT`, in the session's own trace (the one `POST /start` answered with),
  below the dispatcher's and the host's spans (docs/operations.md, "Traces");
- under Pipecat's development runner (`python bot.py`, then open http://localhost:7860/client), the
  `__main__` block below installs Pipecat's `setup_tracing` with an OTLP/HTTP exporter when
  `OTEL_EXPORTER_OTLP_ENDPOINT` is set (e.g. Jaeger's `http://localhost:4318`).

It imports nothing from voicefleet.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import numpy as np
from pipecat.frames.frames import Frame, TTSAudioRawFrame, TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from pipecat.services.tts_service import TTSService
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.utils.tracing.service_decorators import traced_tts
from pipecat.workers.runner import WorkerRunner

SAMPLE_RATE = 16000
GREETING = "Hello, this call is traced."

transport_params: dict[str, Any] = {
    "webrtc": lambda: TransportParams(audio_in_enabled=True, audio_out_enabled=True),
}


class ToneTTSService(TTSService):
    """Speaks each word of its text as a short tone: a speech service that needs no network."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(sample_rate=SAMPLE_RATE, push_start_frame=True, push_stop_frames=True, **kwargs)

    def can_generate_metrics(self) -> bool:
        return True

    @traced_tts
    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        await self.start_tts_usage_metrics(text)
        rate = self.sample_rate or SAMPLE_RATE
        t = np.arange(int(0.15 * rate)) / rate
        for i, _word in enumerate(text.split()):
            tone = np.sin(2 * np.pi * (440 + 40 * i) * t) * 0.3 * 32767
            await self.stop_ttfb_metrics()
            yield TTSAudioRawFrame(tone.astype(np.int16).tobytes(), rate, 1, context_id=context_id)


async def bot(runner_args: RunnerArguments) -> None:
    """Pipecat's entry point: greets the caller through its traced speech service, until they leave."""
    transport: BaseTransport = await create_transport(runner_args, transport_params)
    worker = PipelineWorker(
        Pipeline([transport.input(), ToneTTSService(), transport.output()]),
        params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE,
                              enable_metrics=True),
        idle_timeout_secs=runner_args.pipeline_idle_timeout_secs,
        enable_tracing=True,
        # The conversation span carries the session's id: what the platform calls this session.
        conversation_id=runner_args.session_id,
    )

    @transport.event_handler("on_client_connected")
    async def on_client_connected(_transport: BaseTransport, _client: Any) -> None:
        await worker.queue_frames([TTSSpeakFrame(GREETING)])

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(_transport: BaseTransport, _client: Any) -> None:
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=runner_args.handle_sigint, handle_sigterm=runner_args.handle_sigterm)
    await runner.add_workers(worker)
    await runner.run()


if __name__ == "__main__":
    import os

    from pipecat.runner.run import main

    if os.getenv("OTEL_EXPORTER_OTLP_ENDPOINT"):
        # As pipecat-examples' open-telemetry bots do, with OTLP over HTTP: the exporter reads the
        # standard OTEL_EXPORTER_OTLP_* variables itself.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from pipecat.utils.tracing.setup import setup_tracing

        setup_tracing(service_name=os.getenv("OTEL_SERVICE_NAME", "traced-bot"), exporter=OTLPSpanExporter())
    main()
