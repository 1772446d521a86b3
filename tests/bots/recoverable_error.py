"""A bot whose service has one passing failure (a timed-out request it retries): the processor
pushes a non-fatal `ErrorFrame` when the caller's audio first arrives (so the caller is there to be
told, as an RTVI `error` message), and the bot goes on echoing."""

from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from testbot_kit import Echo, run_pipeline, transport_params


class FlakySTT(FrameProcessor):
    def __init__(self) -> None:
        super().__init__()
        self._failed_once = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame) and not self._failed_once:
            self._failed_once = True
            await self.push_error("speech service request timed out; retrying")


async def bot(runner_args: RunnerArguments) -> None:
    transport = await create_transport(runner_args, transport_params)
    await run_pipeline(transport, runner_args, [FlakySTT(), Echo()])


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
