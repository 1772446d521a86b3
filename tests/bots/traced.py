"""Traced: a Pipecat bot with Pipecat's tracing on (`enable_tracing`), as pipecat-examples' open-telemetry
bots are written, and nothing of voicefleet: its pipeline starts, runs its one turn, then ends on its own.

A bare `FrameProcessor` never pushes what it is given (a processor's `process_frame` decides), so the
pipeline's one processor passes every frame on: the StartFrame must reach the pipeline's end for the
worker to start, and the EndFrame for it to finish."""

from pipecat.frames.frames import EndFrame, Frame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner


class PassThrough(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


async def bot(runner_args) -> None:
    worker = PipelineWorker(Pipeline([PassThrough()]), enable_tracing=True, conversation_id="traced-1")
    await worker.queue_frame(EndFrame())
    await WorkerRunner(handle_sigint=False).run(worker)
