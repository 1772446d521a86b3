"""A pipeline error reaches the host (and, over the channel, the session's timeline) with its processor
and whether that processor can go on: a real Pipecat worker, the user's code unaware of the host."""

from __future__ import annotations

import asyncio

from pipecat.frames.frames import EndFrame, Frame, StartFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from bot.watch import SessionWatch


def watched_errors() -> list[tuple[str, str]]:
    """A session's watch, installed: the (reason, detail) of each error it reports."""
    watch = SessionWatch()
    watch.install()
    reported: list[tuple[str, str]] = []

    async def on_error(reason: str, detail: str) -> None:
        reported.append((reason, detail))

    watch.on_error = on_error
    return reported


class RefusedKey(FrameProcessor):
    """A speech service whose provider refused its key as the pipeline started."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_error("the API key was rejected (401)", force_treat_as_permanent=True)


async def test_a_pipeline_error_is_reported_with_its_processor_and_that_it_cannot_go_on():
    reported = watched_errors()
    worker = PipelineWorker(Pipeline([RefusedKey(name="stt")]))
    await worker.queue_frame(EndFrame())
    await asyncio.wait_for(WorkerRunner(handle_sigint=False).run(worker), 30)
    assert reported == [("unusable", "stt: the API key was rejected (401)")]


class UnresolvableService(FrameProcessor):
    """A realtime service whose connection task raises, as Gemini Live's does when its host does not
    resolve: Pipecat's task manager only logs it, no ErrorFrame is pushed."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self.create_task(self._connect(), "_connection_task_handler")

    async def _connect(self) -> None:
        raise OSError(-2, "Name or service not known")


async def test_a_crashed_service_task_is_reported_as_an_error_of_the_session():
    reported = watched_errors()
    worker = PipelineWorker(Pipeline([UnresolvableService(name="llm")]))
    runner = asyncio.create_task(WorkerRunner(handle_sigint=False).run(worker))
    for _ in range(600):  # a deadline, not a measure
        if reported:
            break
        await asyncio.sleep(0.05)
    await worker.queue_frame(EndFrame())
    await asyncio.wait_for(runner, 30)
    assert reported == [("error", "llm::_connection_task_handler: [Errno -2] Name or service not known")]


async def test_a_daily_transport_given_no_room_is_reported_saying_where_the_room_is():
    """A bot that reads its room from the request body (pipecat-examples' ivr-navigation) builds a real
    DailyTransport with room_url None: its set-up fails, the error the session reports names where the
    room is (runner_args.room_url, runner_args.token), and the host's watch ends the workers."""
    from pipecat.transports.daily.transport import DailyParams, DailyTransport

    reported = watched_errors()
    transport = DailyTransport(None, None, "bot", DailyParams(audio_in_enabled=True, audio_out_enabled=True))
    worker = PipelineWorker(Pipeline([transport.input(), transport.output()]))
    await asyncio.wait_for(WorkerRunner(handle_sigint=False).run(worker), 20)  # no EndFrame: the host ends it
    assert reported, "no error reported"
    reason, detail = reported[0]
    assert reason == "unusable" and detail.startswith("DailyInputTransport#0: the Daily transport was given no room")
    assert "runner_args.room_url" in detail and "runner_args.token" in detail


async def test_an_exception_in_an_event_handler_is_reported_with_its_line_and_the_way_out():
    """Pipecat catches and logs what a handler raises; the watch reports it, with the exception's type
    and the advice a bot's own failure gets (here: a key the bot's environment lacks)."""
    reported = watched_errors()
    processor = FrameProcessor(name="stt")
    processor._register_event_handler("on_connected")

    async def on_connected(processor: FrameProcessor) -> None:
        raise KeyError("VOICEFLEET_HANDLER_TEST_API_KEY")

    processor.add_event_handler("on_connected", on_connected)
    await processor._call_event_handler("on_connected")
    for _ in range(100):  # the report is a task of its own
        if reported:
            break
        await asyncio.sleep(0.01)
    line = on_connected.__code__.co_firstlineno + 1
    assert reported == [("error", f"{__file__}:{line}: event handler 'on_connected' of stt raised KeyError: "
                         "'VOICEFLEET_HANDLER_TEST_API_KEY' (VOICEFLEET_HANDLER_TEST_API_KEY is not in the bot's "
                         "environment: pass it with LOCAL_BOT_ENV=VOICEFLEET_HANDLER_TEST_API_KEY to a local "
                         "dispatcher, or set botSecrets.VOICEFLEET_HANDLER_TEST_API_KEY on a stack)")]  # fmt: skip
