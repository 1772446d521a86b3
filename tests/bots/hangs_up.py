"""Hangs up: greets (a half-second tone) as the caller connects, then ends its own pipeline, which closes
its connection (Pipecat's transport disconnects as its EndFrame passes): the bot's own close."""

from typing import Any

from pipecat.frames.frames import EndFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from pipecat.workers.runner import WorkerRunner
from testbot_kit import SAMPLE_RATE, tone, transport_params


async def bot(runner_args: RunnerArguments) -> None:
    transport = await create_transport(runner_args, transport_params)
    worker = PipelineWorker(Pipeline([transport.input(), transport.output()]),
                            params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE))

    @transport.event_handler("on_client_connected")
    async def on_connected(transport: Any, client: Any) -> None:
        await worker.queue_frames([tone(), EndFrame()])

    runner = WorkerRunner(handle_sigint=runner_args.handle_sigint, handle_sigterm=runner_args.handle_sigterm)
    await runner.add_workers(worker)
    await runner.run()
