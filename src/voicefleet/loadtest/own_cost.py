"""What the load generator itself costs, so a figure it reports is known not to be its own
slowness: its CPU seconds (per session, and as a share of one core), where they go, and its event
loop's lag, the time a 50 ms timer fires late (a loop too busy to read audio on time shows here first).

Where the CPU goes is split without a profiler. The event loop's thread does all the Python work;
aiortc decodes each received track in a thread of its own. So the process's CPU (`process_time`,
exited threads included) less the loop thread's (`thread_time` on the loop) is the decoders' (and any
executor's). On the loop thread, the per-frame work the generator itself adds is charged to
`LEDGER` by name, around synchronous code only, where no other task can run in between: what
remains of the loop thread is aiortc's RTP, SRTP, RTCP and ICE, the HTTP calls and asyncio itself.
The SIP caller places each call from a process of its own (sip_agent.py): their CPU, once each has
exited, is the callers' processes' figure beside this process's."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from voicefleet.loadtest.summary import percentile

TICK = 0.05
MIC = "mic"  # the caller's speech and silence: 20 ms blocks built and encoded to Opus
HEARD = "heard"  # each received frame of bot audio: read out, its loudness, kept
DECODERS = "other_threads"  # aiortc's decoder threads (Opus → PCM), and any executor thread
LOOP_REST = "loop_rest"  # the rest of the loop thread: aiortc's transport, HTTP, asyncio
PHASES = (MIC, HEARD, DECODERS, LOOP_REST)


class CpuLedger:
    """CPU seconds of the calling thread spent in named slices of synchronous code."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def charge(self, phase: str) -> Iterator[None]:
        began = time.thread_time()
        try:
            yield
        finally:
            self.seconds[phase] += time.thread_time() - began

    def snapshot(self) -> dict[str, float]:
        return dict(self.seconds)


LEDGER = CpuLedger()  # one per process: the callers charge it wherever they are created


class OwnCost:
    """Created, and `figures()` read, on the thread that runs the event loop."""

    def __init__(self, ledger: CpuLedger = LEDGER) -> None:
        self.ledger = ledger
        self.cpu_began = time.process_time()
        self.loop_cpu_began = time.thread_time()
        self.ledger_began = ledger.snapshot()
        self.wall_began = time.monotonic()
        self.children_began = _children_cpu()
        self.lags: list[float] = []

    async def watch_loop(self) -> None:
        """Runs until cancelled: each tick's lateness."""
        while True:
            asked = time.monotonic()
            await asyncio.sleep(TICK)
            self.lags.append(max(0.0, time.monotonic() - asked - TICK))

    def phases(self) -> dict[str, float]:
        """CPU seconds since the start, by PHASES; they add up to the process's CPU seconds."""
        cpu = time.process_time() - self.cpu_began
        loop = time.thread_time() - self.loop_cpu_began
        now = self.ledger.snapshot()
        charged = {name: now.get(name, 0.0) - self.ledger_began.get(name, 0.0) for name in (MIC, HEARD)}
        return {**charged, DECODERS: max(0.0, cpu - loop), LOOP_REST: max(0.0, loop - sum(charged.values()))}

    def figures(self, sessions: int) -> dict[str, Any]:
        cpu = time.process_time() - self.cpu_began
        wall = time.monotonic() - self.wall_began
        phases = self.phases()
        children = _children_cpu() - self.children_began
        return {
            "cpu_seconds": round(cpu, 3),
            "wall_seconds": round(wall, 3),
            "cpu_seconds_per_session": round(cpu / sessions, 3) if sessions else None,
            "cpu_seconds_per_session_by_phase": {name: round(seconds / sessions, 4) for name, seconds in phases.items()}
            if sessions else None,
            "cpu_share_of_one_core": round(cpu / wall, 4) if wall else None,
            "loop_lag_p99_seconds": round(percentile(self.lags, 99), 4) if self.lags else None,
            "loop_lag_max_seconds": round(max(self.lags), 4) if self.lags else None,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "caller_processes_cpu_seconds": round(children, 3),
            "caller_processes_cpu_seconds_per_session": round(children / sessions, 3) if sessions else None,
        }


def _children_cpu() -> float:
    """CPU seconds of this process's children that have exited and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
