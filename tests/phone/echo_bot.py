"""A user's phone bot in Pipecat's canonical shape: imports nothing from voicefleet.

It greets the caller with a short tone as soon as the call connects (the "first bot audio" the
benchmark times), then echoes whatever it hears, so a test can send speech in and find it coming
back out through the carrier's own protocol. It hangs up (ends its pipeline, which closes the
socket) right after the greeting when its body says `hang_up_after_greeting`. A call to the line
`PHONE_TEST_TRANSFER_LINE` (the number dialled, a Twilio `<Parameter>`), or every call of the carrier
`PHONE_TEST_TRANSFER_EVERY` names (Pipecat hands a Plivo bot no number), is handed after the greeting
to `PHONE_TEST_TRANSFER_TO` with voicefleet's `transfer_call` (warm when `PHONE_TEST_TRANSFER_MODE` says
so), as an LLM tool would, its answer written beside the report: the one thing here that imports from
voicefleet, and only for that call.
"""

import asyncio
import json
import math
import os
import struct
from pathlib import Path

from pipecat.frames.frames import EndFrame, Frame, InputAudioRawFrame, OutputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.runner.utils import create_transport
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams
from pipecat.workers.runner import WorkerRunner

RATE = 8000


def greeting() -> bytes:
    samples = (int(8000 * math.sin(2 * math.pi * 440 * n / RATE)) for n in range(RATE // 5))
    return b"".join(struct.pack("<h", s) for s in samples)


class Echo(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            await self.push_frame(
                OutputAudioRawFrame(audio=frame.audio, sample_rate=frame.sample_rate, num_channels=1)
            )
        else:
            await self.push_frame(frame, direction)


def params() -> FastAPIWebsocketParams:
    return FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True)


async def bot(runner_args):
    transport = await create_transport(
        runner_args,
        {"twilio": params, "telnyx": params, "plivo": params, "exotel": params, "websocket": params},
    )
    task = PipelineWorker(
        Pipeline([transport.input(), Echo(), transport.output()]),
        params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE),
    )
    body = runner_args.body or {}
    reports = os.environ.get("PHONE_TEST_REPORTS")
    if reports:  # what the bot was handed, for the test to compare with what the carrier sent
        seen = {"transport_type": runner_args.transport_type, "body": body,
                "call_data": runner_args.call_data.model_dump(by_alias=True) if runner_args.call_data else None}
        Path(reports, f"{runner_args.session_id}.json").write_text(json.dumps(seen))

    custom = (runner_args.call_data.body if runner_args.call_data else None) or {}
    line = os.environ.get("PHONE_TEST_TRANSFER_LINE")
    every = os.environ.get("PHONE_TEST_TRANSFER_EVERY")
    handed = bool(line and custom.get("to_number") == line) or (every and every == runner_args.transport_type)
    transfer = os.environ.get("PHONE_TEST_TRANSFER_TO") if handed else None
    await greet_echo_and_run(transport, task, runner_args, hang_up=bool(body.get("hang_up_after_greeting")),
                             transfer_to=transfer, reports=reports)


async def greet_echo_and_run(transport, task: PipelineWorker, runner_args, hang_up: bool = False,
                             transfer_to: str | None = None, reports: str | None = None) -> None:
    """The greeting once the caller is connected (then the end, with `hang_up`, or the transfer to
    `transfer_to`), the end when the caller leaves, and the worker run until then."""

    @transport.event_handler("on_client_connected")
    async def on_connected(transport, client):
        await task.queue_frame(OutputAudioRawFrame(audio=greeting(), sample_rate=RATE, num_channels=1))
        if hang_up:
            await task.queue_frame(EndFrame())
        if transfer_to:  # in a task of its own, as an LLM tool's call: the pipeline goes on meanwhile
            handing.add(asyncio.create_task(hand_over(transfer_to)))

    handing: set[asyncio.Task[None]] = set()

    async def hand_over(to: str) -> None:
        from bot.transfer import TransferFailed, transfer_call

        try:
            answer = await transfer_call(to, mode=os.environ.get("PHONE_TEST_TRANSFER_MODE") or "cold")
        except TransferFailed as exc:
            answer = {"failed": exc.code, "message": exc.message}
        if reports:
            Path(reports, f"{runner_args.session_id}.transfer.json").write_text(json.dumps(answer))

    @transport.event_handler("on_client_disconnected")
    async def on_disconnected(transport, client):
        await task.cancel()

    runner = WorkerRunner(handle_sigint=runner_args.handle_sigint)
    await runner.add_workers(task)
    await runner.run()
