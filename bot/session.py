"""Runs one pipeline worker for the session and stops it when the session ends.

The worker runs under a `WorkerRunner` in a background task; whatever ends the session (peer
gone, idle, max duration, a signal) only sets the lifecycle's reason, and `stop()` then cancels
the worker and waits a bounded time, so the process exits within seconds even mid-utterance.
"""

from __future__ import annotations

import asyncio

from loguru import logger
from pipecat.pipeline.pipeline import Pipeline
from pipecat.workers.runner import WorkerRunner

from bot.lifecycle import EndReason, SessionLifecycle
from bot.pipelines import build_worker

STOP_GRACE_SECONDS = 2.0


class PipelineSession:
    def __init__(self, pipeline: Pipeline, lifecycle: SessionLifecycle, *, idle_timeout: float) -> None:
        self.lifecycle = lifecycle
        self.worker = build_worker(pipeline, idle_timeout=idle_timeout)
        # Signals are the lifecycle's job (they must work before any pipeline exists).
        self._runner = WorkerRunner(handle_sigint=False, handle_sigterm=False)
        self._task: asyncio.Task[None] | None = None

        @self.worker.event_handler("on_idle_timeout")
        async def _on_idle(worker: object) -> None:
            lifecycle.end(EndReason.IDLE_TIMEOUT)

    async def start(self) -> None:
        await self._runner.add_workers(self.worker)
        self._task = asyncio.create_task(self._run(), name="pipeline-session")

    async def _run(self) -> None:
        try:
            await self._runner.run()
        except Exception as exc:  # a crash in the pipeline ends the session, it must not hang it
            logger.exception("pipeline failed")
            self.lifecycle.end(EndReason.ERROR, f"pipeline failed: {type(exc).__name__}")
            return
        self.lifecycle.end(EndReason.PIPELINE_FINISHED)

    async def stop(self) -> None:
        if self._task is None:
            return
        if not self._task.done():
            await self._runner.cancel(reason=str(self.lifecycle.detail or "session ended"))
            try:
                await asyncio.wait_for(asyncio.shield(self._task), STOP_GRACE_SECONDS)
            except TimeoutError:
                # E.g. a Daily join still waiting on the network: it ignores cancellation until
                # it fails. Leave it to the bounded loop shutdown in bot.app rather than hang.
                logger.warning(f"pipeline did not stop within {STOP_GRACE_SECONDS:g}s; cancelling its task")
                self._task.cancel()
                await asyncio.wait([self._task], timeout=0.5)
