"""The parrot: a voice bot that needs no API keys. It answers each utterance with a beep and the
utterance itself, greets with a short tone, and takes a reply back when the user goes on speaking.

A Pipecat bot in the shape Pipecat's runner and Pipecat Cloud define: one `async def bot(runner_args)`
that builds its transport with `create_transport`. It imports nothing from voicefleet, so it runs
the same way under Pipecat's development runner (`python bot.py`, then open
http://localhost:7860/client; `python bot.py -t twilio -x your.host` for phone calls) and under
voicefleet, which runs this file by default (`BOT_FILE`, docs/bring-your-bot.md), phone calls
included (docs/phone.md). Its sibling modules (parrot.py, turn_vad.py,
user_speaking.py, turn_trace.py) are found beside it, as any bot's own modules are.

Pipeline: transport in → VAD (with speech-onset frames) → user-turn frames → parrot → transport out,
with RTVI on so Pipecat's JS client sees bot-ready, speaking and user-turn events.
`VOICEFLEET_TRACE` adds the turn-latency trace points (turn_trace.py); off, it adds nothing.
"""

from __future__ import annotations

from typing import Any

from parrot import PARROT_STOP_SECS, Parrot, greeting_frame
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.runner.types import RunnerArguments, SmallWebRTCRunnerArguments, WebSocketRunnerArguments
from pipecat.runner.utils import create_transport
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.workers.runner import WorkerRunner
from turn_trace import TraceAfterReply, TraceBeforeReply, Tracer
from turn_vad import OnsetVADProcessor
from user_speaking import UserSpeakingFrames

SAMPLE_RATE = 16000
# A phone call runs at the line's own rate, as Pipecat's telephony examples do: a carrier's
# serializer then sends each sound as it comes, where resampling 16 kHz down would hold back the
# tail of a short one (half the greeting) until more audio follows.
PHONE_SAMPLE_RATE = 8000



def _daily_params() -> TransportParams:
    # Imported only for a Daily session: a WebRTC bot never pays for (or needs) the Daily client.
    from pipecat.transports.daily.transport import DailyParams

    return DailyParams(audio_in_enabled=True, audio_out_enabled=True)


def _phone_params() -> TransportParams:
    # A carrier's media stream (Twilio, Telnyx, Plivo, Exotel): `create_transport` reads the call's
    # first messages and sets the carrier's serializer, which converts its 8 kHz audio to and from
    # the pipeline's rate. Imported only for a call, so a project without the websocket extra runs.
    from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams

    return FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True)


def _websocket_params() -> TransportParams:
    # Any other WebSocket client (Pipecat's `websocket` transport): Pipecat's clients speak protobuf frames.
    from pipecat.serializers.protobuf import ProtobufFrameSerializer
    from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams

    return FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True, serializer=ProtobufFrameSerializer())


transport_params: dict[str, Any] = {
    "webrtc": lambda: TransportParams(audio_in_enabled=True, audio_out_enabled=True),
    "daily": _daily_params,
    **dict.fromkeys(("twilio", "telnyx", "plivo", "exotel"), _phone_params),
    "websocket": _websocket_params,
}


def build_pipeline(transport: BaseTransport, vad: SileroVADAnalyzer, tracer: Tracer | None = None) -> Pipeline:
    before: list[FrameProcessor] = [TraceBeforeReply(tracer)] if tracer is not None else []
    after: list[FrameProcessor] = [TraceAfterReply(tracer)] if tracer is not None else []
    # The parrot retracts a reply when the user goes on speaking (parrot.py), which lets it end
    # turns sooner than Pipecat's default VAD stop.
    return Pipeline(
        [
            transport.input(),
            OnsetVADProcessor(vad_analyzer=vad, stop_secs=PARROT_STOP_SECS),
            UserSpeakingFrames(),
            *before,
            Parrot(),
            *after,
            transport.output(),
        ]
    )


def sample_rate(runner_args: RunnerArguments) -> int:
    """The pipeline's rate: a phone line's for a carrier's call (`create_transport` has named the
    carrier in `transport_type` by now), 16 kHz otherwise."""
    on_a_phone_line = isinstance(runner_args, WebSocketRunnerArguments) and runner_args.transport_type not in (
        None, "websocket")
    return PHONE_SAMPLE_RATE if on_a_phone_line else SAMPLE_RATE


def build_worker(pipeline: Pipeline, runner_args: RunnerArguments) -> PipelineWorker:
    rate = sample_rate(runner_args)
    return PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=rate, audio_out_sample_rate=rate),
        idle_timeout_secs=runner_args.pipeline_idle_timeout_secs,
        # RTVI serves Pipecat's JS client (bot-ready, bot-speaking events over the data channel).
        enable_rtvi=True,
    )


async def run_bot(transport: BaseTransport, runner_args: RunnerArguments) -> None:
    vad = SileroVADAnalyzer()
    tracer = Tracer.from_env()
    if tracer is not None:
        tracer.watch_vad(vad)
        if isinstance(runner_args, SmallWebRTCRunnerArguments):
            tracer.watch_connection(runner_args.webrtc_connection)
    worker = build_worker(build_pipeline(transport, vad, tracer), runner_args)

    async def greet(*_: Any) -> None:
        await worker.queue_frames([greeting_frame(sample_rate(runner_args))])

    async def leave(*_: Any) -> None:
        await worker.cancel()

    # The first user in (the caller, on a phone call): a short tone tells them the bot is
    # listening. The user gone (hung up): done.
    if isinstance(runner_args, (SmallWebRTCRunnerArguments, WebSocketRunnerArguments)):
        transport.add_event_handler("on_client_connected", greet)
        transport.add_event_handler("on_client_disconnected", leave)
    else:
        transport.add_event_handler("on_first_participant_joined", greet)
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
