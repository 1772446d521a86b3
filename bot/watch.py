"""What the host sees of a session the user's bot runs: its first audio, its idle timeout, its workers.

The user's `bot()` builds its own pipeline worker and runner, and the host must still report the
first audio the caller hears, tell an idle timeout from other endings and stop the session when
it ends for the host's reasons (max duration, a signal, the peer gone). The process serves one
session, so the host attaches itself to every `PipelineWorker` built in it: an observer that sees
the output transport push `BotStartedSpeakingFrame` (the bot's speech starting to play: observed,
not inferred from a queued frame), the worker's own `on_idle_timeout` and `on_pipeline_error`
events, and the crash of a task a processor started or of an event handler (seen in Pipecat's log:
bot/pipeline_errors.py, bot/handler_errors.py), and the services' usage metrics (bot/usage_meter.py).
A converged bot's vendor is watched too: its end told to the caller (bot/vendor_end.py), a slow answer
(bot/slow_answer.py), an answer a resumption cut (bot/answer_again.py).
The user's code is unchanged and sees nothing of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from loguru import logger
from pipecat.frames.frames import BotStartedSpeakingFrame, Frame
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection

from bot.answer_again import AnswerAgain
from bot.pipeline_errors import transport_failed
from bot.slow_answer import SlowAnswers
from bot.usage_meter import UsageMeter, with_usage_metrics
from bot.vendor_end import GEMINI_LOGGER, VendorEnd, VendorWatch
from bot.vendor_goodbye import Goodbye
from bot.warm_speech import SpeechWatch

if TYPE_CHECKING:  # aiortc's: a phone-only bot host may not have it
    from bot.transport_meter import TransportMeter

Callback = Callable[[], Awaitable[None]]
ErrorCallback = Callable[[str, str], Awaitable[None]]  # (reason, detail)
MAX_ERROR_REPORTS = 10  # a service failing in a loop: the first few say it all


class SessionWatch:
    def __init__(self) -> None:
        self.workers: list[PipelineWorker] = []
        self.first_audio: asyncio.Event = asyncio.Event()
        self.on_first_audio: Callback | None = None
        self.on_idle_timeout: Callback | None = None
        self.on_error: ErrorCallback | None = None  # a pipeline error (bot/pipeline_errors.py describes it)
        # A transport whose set-up failed: the session (bot/user_session.py) ends at once, failed.
        self.on_transport_failed: Callable[[str], None] | None = None
        self.errors = 0
        self.observers: list[BaseObserver] = []  # the host's own, added to each worker (the recording's tap)
        self.speech = SpeechWatch()  # the bot's speaking, for a warm transfer's lines (bot/warm_speech.py)
        self.usage = UsageMeter()  # the services' usage metrics, summed for the `ended` report
        self.transport: TransportMeter | None = None  # a WebRTC call's connection (bot/transport_meter.py)
        self._reports: set[asyncio.Task[None]] = set()  # crash reports under way, held until done
        # A converged bot's vendor gone for good (bot/vendor_end.py): the caller is told, then the
        # session ends (bot/user_session.py) with the end as its reason's detail.
        self.vendor = VendorWatch()
        self.goodbye = Goodbye()
        self.slow = SlowAnswers()  # a converged model's slow answers, for the timeline (`slow_answer`)
        self.again = AnswerAgain(self._queue)  # an answer Gemini's connection cut, asked for once resumed
        self.on_vendor_end: Callable[[VendorEnd], None] | None = None
        self.collapsed = 0  # the vendor's end's later errors, left out of the reports

    def install(self) -> None:
        """Attaches this watch to every `PipelineWorker` built from now on (the class is patched once
        per process; a later watch takes over from an earlier one)."""
        global _current
        _current = self
        _watch_task_crashes()
        original = PipelineWorker.__init__
        if getattr(original, "watched", False):
            return

        @functools.wraps(original)
        def init(worker: PipelineWorker, *args: Any, **kwargs: Any) -> None:
            watch = _current
            if watch is None:
                original(worker, *args, **kwargs)
                return
            kwargs["observers"] = [*(kwargs.get("observers") or []), _FirstAudio(watch), watch.usage,
                                   watch.goodbye, watch.slow, watch.again, watch.speech, *watch.observers]
            with_usage_metrics(kwargs)  # the services count their use (bot/usage_meter.py)
            original(worker, *args, **kwargs)
            watch.workers.append(worker)
            worker.add_event_handler("on_idle_timeout", watch._idle)
            worker.add_event_handler("on_pipeline_error", watch._error)

        init.watched = True  # type: ignore[attr-defined]
        PipelineWorker.__init__ = init  # type: ignore[method-assign,assignment]

    async def queue(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        """`frame` into each of the session's pipelines (a warm transfer's line: bot/warm_speech.py), or at
        their ends, upstream (its interruption)."""
        for worker in self.workers:
            await worker.queue_frame(frame, direction)

    async def _queue(self, frame: Frame) -> None:
        for worker in self.workers:
            await worker.queue_frame(frame)

    async def _idle(self, worker: object) -> None:
        if self.on_idle_timeout is not None:
            await self.on_idle_timeout()

    async def _error(self, worker: object, frame: object) -> None:
        """Pipecat's pipeline error: reported over the channel (`error`), so the dispatcher shows it in
        the session's timeline and status; a processor that can no longer do its job (`is_usable`
        False: a refused key, a provider gone for good) leaves the session running, as Pipecat lets
        the bot decide, but deaf or mute, and its status says so instead of a plain `joined`."""
        from bot.pipeline_errors import describe_error

        await self._report(*describe_error(frame))

    def task_crashed(self, detail: str) -> None:
        """A processor's background task or an event handler raised (bot/pipeline_errors.py,
        bot/handler_errors.py): reported as an error; the session goes on, as under Pipecat."""
        report = asyncio.get_running_loop().create_task(self._report("error", detail))
        self._reports.add(report)
        report.add_done_callback(self._reports.discard)

    async def _report(self, reason: str, detail: str) -> None:
        ended = self.vendor.ended
        if ended is not None and detail.split(":", 1)[0].startswith(ended.processor):
            self.collapsed += 1  # one cause: each send to a closed socket fails after it
            return
        if (end := self.vendor.judge(detail)) is not None:
            self.vendor.ended = end
            reason, detail = end.kind.value, end.detail
            self._vendor_gone(end)
        self.errors += 1
        if self.on_error is not None and self.errors <= MAX_ERROR_REPORTS:
            if reason == "unusable":  # deaf or mute from now on: the session's own log says so too
                logger.warning(f"session degraded: {detail}")
            try:  # before the session's end below: the dispatcher sees the error, then the end
                await self.on_error(reason, detail)
            except Exception:  # a report must never break the user's pipeline
                logger.exception("error report failed")
        if reason == "unusable" and transport_failed(detail):  # no media at all: end it now, not at the join deadline
            self._transport_failed(detail)

    def _vendor_gone(self, end: VendorEnd) -> None:
        """The caller hears that the assistant is gone, then the session ends: never a silent line."""
        logger.error(f"session cannot go on: {end.detail}")

        async def goodbye() -> None:
            try:
                await self.goodbye.say(end.unreachable)
            except Exception:  # the session still ends: silence is what the caller had anyway
                logger.exception("the vendor's end could not be said to the caller")
            if self.on_vendor_end is not None:
                self.on_vendor_end(end)

        ending = asyncio.get_running_loop().create_task(goodbye(), name="vendor-goodbye")
        self._reports.add(ending)
        ending.add_done_callback(self._reports.discard)

    def _transport_failed(self, detail: str) -> None:
        """Nobody can join a session whose transport failed its set-up: the session ends now, failed
        (with or without a dispatcher's channel), and its workers are cancelled."""
        logger.error(f"session cannot go on: {detail}")
        if self.on_transport_failed is not None:
            self.on_transport_failed(detail)
        ending = asyncio.get_running_loop().create_task(self.cancel_workers(f"transport failed: {detail}"))
        self._reports.add(ending)
        ending.add_done_callback(self._reports.discard)

    async def _heard(self) -> None:
        if self.first_audio.is_set():
            return
        self.first_audio.set()
        if self.on_first_audio is not None:
            await self.on_first_audio()

    async def cancel_workers(self, reason: str) -> None:
        """Cancels the user's workers (their pipelines stop; `bot()` returns from its runner)."""
        for worker in self.workers:
            with contextlib.suppress(Exception):
                await worker.cancel(reason=reason)


_current: SessionWatch | None = None  # the session's watch: one session per process


def current() -> SessionWatch | None:
    """The watch installed for this process's session (None before one is)."""
    return _current


_crash_sink: int | None = None


def _watch_task_crashes() -> None:
    """A loguru sink (once per process) that hands the crash lines of Pipecat's task manager and of its
    event handlers (bot/handler_errors.py) to the watch."""
    global _crash_sink
    if _crash_sink is not None:
        return
    from bot.handler_errors import EVENT_HANDLER_LOGGER, describe_handler_crash
    from bot.pipeline_errors import TASK_MANAGER_LOGGER, describe_task_crash

    def sink(message: Any) -> None:
        record = message.record
        if record["name"] == TASK_MANAGER_LOGGER:
            detail = describe_task_crash(record["message"])
        else:  # logged inside Pipecat's `except`: the exception being handled is the handler's
            detail = describe_handler_crash(record["message"], sys.exc_info()[1])
        watch = _current
        if detail is not None and watch is not None:
            with contextlib.suppress(RuntimeError):  # logged outside the event loop: nothing to report to
                watch.task_crashed(detail)

    watched = (TASK_MANAGER_LOGGER, EVENT_HANDLER_LOGGER)
    _crash_sink = logger.add(sink, level="ERROR", format="{message}", filter=lambda record: record["name"] in watched)

    def gemini(message: Any) -> None:  # its connections' story: a refused resumption, a cut answer
        if (watch := _current) is not None:
            watch.vendor.logged(str(message.record["message"]))
            watch.again.logged(str(message.record["message"]))

    logger.add(gemini, level="INFO", format="{message}", filter=lambda record: record["name"] == GEMINI_LOGGER)


class _FirstAudio(BaseObserver):
    def __init__(self, watch: SessionWatch) -> None:
        super().__init__()
        self._watch = watch

    async def on_push_frame(self, data: FramePushed) -> None:
        if isinstance(data.frame, BotStartedSpeakingFrame) and not self._watch.first_audio.is_set():
            try:
                await self._watch._heard()
            except Exception:  # a report must never break the user's pipeline
                logger.exception("first_audio report failed")
