"""A bot whose stand-in LLM, TTS and STT count their use as Pipecat's services do (`start_*_usage_metrics`):
two LLM turns, one spoken reply, some heard audio, as the pipeline starts. It turns no usage metrics on
itself (its `PipelineParams` are the kit's): what the host reports is what the host turned on."""

from pipecat.frames.frames import Frame, StartFrame
from pipecat.metrics.metrics import LLMTokenUsage, MetricsData, STTUsage
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from testbot_kit import Echo, run_pipeline, tone, transport_params

# What each stand-in counts; tests/dispatcher/sessions/test_call_usage.py expects the same figures.
LLM_TURNS = (LLMTokenUsage(prompt_tokens=1200, completion_tokens=80, total_tokens=1280, cache_read_input_tokens=200),
             LLMTokenUsage(prompt_tokens=1500, completion_tokens=40, total_tokens=1540, cache_read_input_tokens=1000))
REPLY = "Hello! How can I help you today?"
HEARD_SECONDS = (1.25, 2.5)


class Metered(FrameProcessor):
    """A service's metering, as Pipecat's own services do it: its name and model, then its counts."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self.set_core_metrics_data(MetricsData(processor=self.name, model=model))

    def can_generate_metrics(self) -> bool:
        return True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.use()

    async def use(self) -> None:
        raise NotImplementedError


class StandInSTT(Metered):
    async def use(self) -> None:
        for seconds in HEARD_SECONDS:
            await self.start_stt_usage_metrics(STTUsage(audio_seconds=seconds))


class StandInLLM(Metered):
    async def use(self) -> None:
        for turn in LLM_TURNS:
            await self.start_llm_usage_metrics(turn)


class StandInTTS(Metered):
    async def use(self) -> None:
        await self.start_tts_usage_metrics(REPLY)


async def bot(runner_args: RunnerArguments) -> None:
    transport = await create_transport(runner_args, transport_params)
    services = [StandInSTT("standin-stt-1"), StandInLLM("gpt-4o-mini"), StandInTTS("tts-1"), Echo()]
    await run_pipeline(transport, runner_args, services, greeting=tone())
