"""A bot whose service can no longer do its job (as Deepgram's STT when it cannot reach Deepgram):
the processor reports a permanent error as the pipeline starts, and the pipeline keeps running."""

from pipecat.frames.frames import Frame, StartFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from testbot_kit import run_pipeline, transport_params


class UnreachableSTT(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_error("cannot reach the speech service", force_treat_as_permanent=True)


async def bot(runner_args: RunnerArguments) -> None:
    transport = await create_transport(runner_args, transport_params)
    await run_pipeline(transport, runner_args, [UnreachableSTT()])
