"""Traced: a Pipecat bot with Pipecat's tracing on (`enable_tracing`), as pipecat-examples' open-telemetry
bots are written, and nothing of voicefleet: its pipeline starts, then ends on its own."""

from pipecat.frames.frames import EndFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.workers.runner import WorkerRunner


async def bot(runner_args) -> None:
    worker = PipelineWorker(Pipeline([FrameProcessor()]), enable_tracing=True, conversation_id="traced-1")
    await worker.queue_frame(EndFrame())
    await WorkerRunner(handle_sigint=False).run(worker)
