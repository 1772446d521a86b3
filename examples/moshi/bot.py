"""A converged bot on a shared model service: the caller's audio streams to a server speaking Moshi's
protocol (Kyutai's Moshi, NVIDIA's PersonaPlex), which listens and speaks at once.

A Pipecat bot in the shape Pipecat's runner and Pipecat Cloud define (`async def bot(runner_args)`
with `create_transport`), importing nothing from voicefleet: run it with Pipecat's development
runner (`python bot.py`) or with voicefleet (`BOT_FILE=examples/moshi/bot.py`). It reads
MODEL_SERVICE_URL, the service's http(s) base URL (the dispatcher's setting of the same name), and
opens `/api/chat` on it. The service (moshi_service.py) is one stream per call; when the stream
fails, the call ends at once with the service's words as the session's error (docs/converged.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from moshi_service import MoshiService
from ogg_opus import RATE
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker, ProcessorUnusablePolicy
from pipecat.runner.types import DailyRunnerArguments, RunnerArguments
from pipecat.runner.utils import create_transport
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.workers.runner import WorkerRunner


def build_service(env: Mapping[str, str]) -> MoshiService:
    url = env.get("MODEL_SERVICE_URL", "").strip()
    if not url:
        raise RuntimeError("the moshi bot needs MODEL_SERVICE_URL, the model service's base URL "
                           "(locally: LOCAL_BOT_ENV=MODEL_SERVICE_URL on the dispatcher)")
    return MoshiService(url=url)


def _daily_params() -> TransportParams:
    # Imported only for a Daily session: a WebRTC bot never pays for (or needs) the Daily client.
    from pipecat.transports.daily.transport import DailyParams

    return DailyParams(audio_in_enabled=True, audio_out_enabled=True)


def _phone_params() -> TransportParams:
    # A carrier's media stream: its serializer converts the carrier's 8 kHz audio to and from 24 kHz.
    from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams

    return FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True)


transport_params: dict[str, Any] = {
    "webrtc": lambda: TransportParams(audio_in_enabled=True, audio_out_enabled=True),
    "daily": _daily_params,
    **dict.fromkeys(("twilio", "telnyx", "plivo", "exotel"), _phone_params),
}


async def run_bot(transport: BaseTransport, runner_args: RunnerArguments) -> None:
    model = build_service(os.environ)
    worker = PipelineWorker(
        Pipeline([transport.input(), model, transport.output()]),
        params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE),
        idle_timeout_secs=runner_args.pipeline_idle_timeout_secs,
        enable_rtvi=True,
        # A stream that failed cannot be resumed: the call ends now rather than going on deaf and mute.
        processor_unusable_policy=ProcessorUnusablePolicy.CANCEL,
    )

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
