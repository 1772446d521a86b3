"""The booking line: a voice bot that understands speech and answers by voice with no API keys and
nothing downloaded — PocketSphinx hears (listening.py), a booking flow answers where an LLM would
be (booking_flow.py, responder.py), eSpeak NG speaks (voice.py); all three ship in packages.

A Pipecat bot in the shape Pipecat's runner and Pipecat Cloud define: one `async def bot(runner_args)`
that builds its transport with `create_transport`, importing nothing from voicefleet, so it runs the
same under Pipecat's development runner (`python bot.py`) and under voicefleet
(`BOT_FILE=examples/booking/bot.py`), web and phone. Its pipeline is an LLM bot's: transport in →
VAD → speech to text → user aggregator → responder → text to speech → transport out → assistant
aggregator, with RTVI on, so what a caller hears is also sent as the bot's text events.

The pipeline is booking_line.py's; the recogniser and the voice load when it is imported, so a warm
bot has paid for them before its session is assigned.
"""

from __future__ import annotations

from typing import Any

from booking_line import build_pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.runner.types import RunnerArguments, SmallWebRTCRunnerArguments, WebSocketRunnerArguments
from pipecat.runner.utils import create_transport
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.workers.runner import WorkerRunner
from responder import BookingResponder

WEB_RATE, PHONE_RATE = 16000, 8000


def _daily() -> TransportParams:
    from pipecat.transports.daily.transport import DailyParams  # a Daily session only

    return DailyParams(audio_in_enabled=True, audio_out_enabled=True)


def _stream(protobuf: bool) -> TransportParams:
    # A carrier's media stream (create_transport picks its serializer from the call's first
    # messages) or Pipecat's own websocket clients (protobuf frames).
    from pipecat.serializers.protobuf import ProtobufFrameSerializer
    from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams

    serializer = {"serializer": ProtobufFrameSerializer()} if protobuf else {}
    return FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True, **serializer)


# Pipecat sends 2 s of silence after the bot's last words before it hangs up, so the words are not cut.
# Over WebRTC each chunk's write returns only once the track has handed it to the sender, so the
# silence need only cover the network and the caller's jitter buffer (tens of ms): 1 s (whole seconds
# only), a second sooner off every call the bot ends (docs/performance.md, "The booking suite").
WEBRTC_END_SILENCE_SECONDS = 1

transport_params: dict[str, Any] = {
    "webrtc": lambda: TransportParams(audio_in_enabled=True, audio_out_enabled=True,
                                      audio_out_end_silence_secs=WEBRTC_END_SILENCE_SECONDS),
    "daily": _daily,
    "websocket": lambda: _stream(protobuf=True),
    **dict.fromkeys(("twilio", "telnyx", "plivo", "exotel"), lambda: _stream(protobuf=False)),
}


def line_rate(runner_args: RunnerArguments) -> int:
    """A carrier's call runs at the line's 8 kHz (no resampling before its serializer), else 16 kHz."""
    stream = isinstance(runner_args, WebSocketRunnerArguments)
    return PHONE_RATE if stream and runner_args.transport_type not in (None, "websocket") else WEB_RATE


async def run_bot(transport: BaseTransport, runner_args: RunnerArguments) -> None:
    responder = BookingResponder()
    rate = line_rate(runner_args)
    worker = PipelineWorker(
        build_pipeline(transport.input(), transport.output(), responder),
        params=PipelineParams(audio_in_sample_rate=rate, audio_out_sample_rate=rate),
        idle_timeout_secs=runner_args.pipeline_idle_timeout_secs,
        enable_rtvi=True,
    )

    async def greet(*_: Any) -> None:
        await responder.greet()

    async def leave(*_: Any) -> None:
        await worker.cancel()

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
    """Pipecat's entry point: one call, on whatever transport the runner arguments name."""
    transport = await create_transport(runner_args, transport_params)
    await run_bot(transport, runner_args)


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
