"""A user's Vonage bot in pipecat-examples' vonage-audio-bot shape: it builds its own
`FastAPIWebsocketTransport` on the runner's socket with Pipecat's `VonageFrameSerializer` (no
`create_transport`), greets with a tone and echoes the caller. Imports nothing from voicefleet."""

import json
import os
from pathlib import Path

from echo_bot import Echo, greet_echo_and_run
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.serializers.vonage import VonageFrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport

VONAGE_RATE = 16000


async def bot(runner_args):
    serializer = VonageFrameSerializer(VonageFrameSerializer.InputParams(vonage_sample_rate=VONAGE_RATE))
    transport = FastAPIWebsocketTransport(
        websocket=runner_args.websocket,
        params=FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False,
                                      serializer=serializer),
    )
    task = PipelineWorker(
        Pipeline([transport.input(), Echo(), transport.output()]),
        params=PipelineParams(audio_in_sample_rate=VONAGE_RATE, audio_out_sample_rate=VONAGE_RATE),
    )
    reports = os.environ.get("PHONE_TEST_REPORTS")
    if reports:
        Path(reports, f"{runner_args.session_id}.json").write_text(json.dumps({"body": runner_args.body or {}}))
    await greet_echo_and_run(transport, task, runner_args)
