"""A suite's calls, `concurrency` at a time, each scenario `repeat` times, with a progress line; cut
short by Ctrl-C, the calls that ran, those under way stopped and marked interrupted."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any

import httpx

from voicefleet.evals.call import run_call
from voicefleet.evals.judge import Judge
from voicefleet.evals.outcome import SPEAK_FIRST_AFTER, CallResult, Target
from voicefleet.evals.scenario import Scenario
from voicefleet.evals.voice import caller_voice

HTTP_TIMEOUT = 30.0
INTERRUPTED = 130  # the exit code of a run cut short by Ctrl-C, as a shell reports SIGINT's


async def run_suite(base_url: str, api_key: str | None, release: str | None, scenarios: Sequence[Scenario],
                    repeat: int, concurrency: int, *, progress: bool, run_id: str,
                    judge: Judge | None = None, speak_first_after: float = SPEAK_FIRST_AFTER,
                    finished: list[CallResult] | None = None) -> list[CallResult]:
    """The calls' results in the suite's order; `finished` gets each as its call ends (a second Ctrl-C
    reports those)."""
    caller_voice()  # loaded before the first call: a voice that cannot load fails the run, not each call
    target = Target(base_url.rstrip("/"), api_key, release, judge, speak_first_after)
    queue = [scenario for scenario in scenarios for _ in range(repeat)]
    results: list[CallResult | None] = [None] * len(queue)
    slots = asyncio.Semaphore(concurrency)
    done = 0

    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:

        async def one(index: int, scenario: Scenario) -> None:
            nonlocal done
            await slots.acquire()
            slot = _Slot(slots)
            try:  # the slot is the next call's once this one is over (run_call's `talked`), not judged
                results[index] = result = await run_call(target, scenario, http, run_id, talked=slot.free)
                if finished is not None:
                    finished.append(result)
            finally:
                slot.free()
            done += 1
            if progress:
                passed = sum(bool(r and r.passed) for r in results)
                print(f"\r{done}/{len(queue)} calls, {passed} passed", end="", file=sys.stderr, flush=True)

        try:
            await asyncio.gather(*(one(i, s) for i, s in enumerate(queue)))
        except asyncio.CancelledError:  # Ctrl-C: the calls under way were stopped and say so; the rest never ran
            if (task := asyncio.current_task()) is not None:
                task.uncancel()
            asyncio.get_running_loop().set_exception_handler(_abandoned)
    if progress:
        print(file=sys.stderr)
    return [r for r in results if r is not None]


def _abandoned(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """After Ctrl-C, a library's task that an interrupted call left behind (aioice gathering its ICE
    candidates) can end in an error nobody awaits: not printed as a traceback under the run's report,
    which says what happened. Anything else is reported as asyncio reports it."""
    if context.get("message") != "Task exception was never retrieved":
        loop.default_exception_handler(context)


def interrupted(results: Sequence[CallResult], scenarios: Sequence[Scenario], repeat: int) -> bool:
    """Whether the run was cut short (Ctrl-C): a call says it was, or some were never placed."""
    return any(r.interrupted for r in results) or len(results) < len(scenarios) * repeat


class _Slot:
    """One call's hold on the semaphore, given back once whichever comes first frees it."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots, self._held = slots, True

    def free(self) -> None:
        if self._held:
            self._held = False
            self._slots.release()
