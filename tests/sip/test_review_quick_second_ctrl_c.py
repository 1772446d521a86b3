"""Review: a person's quick second Ctrl-C is swallowed. sipedge/drain.py FirstSignal ignores any stop signal within
REPEAT_SECONDS (1 s) of the first, SIGINT included, so the usual "press Ctrl-C twice" (two presses a fraction of a
second apart) starts the drain and the second press is logged as "the same stop, ignored": the edge keeps draining
for `drain_seconds` (300 s by default) and the person must press a third time. docs/sip.md#draining says "a
person's second Ctrl-C ... comes later than that", which a double press does not. The supervisor's
`_signalled` has the same filter (sipedge/supervisor.py).

The repeat the filter exists for is SIGTERM told twice (a `systemctl kill`, podman's sig-proxy beside tini's
forward); a terminal's SIGINT is sent once per key press. The clock is held still so that the second press is
always "within the second", however slow this machine is: the result does not depend on timing."""

from __future__ import annotations

import asyncio
import os
import signal

from sipedge.drain import StopSignals


class StillClock:
    def __call__(self) -> float:
        return 1000.0


async def test_a_quick_second_ctrl_c_stops_the_edge_at_once() -> None:
    loop = asyncio.get_running_loop()
    stop = StopSignals(StillClock())
    stop.take(loop, (signal.SIGTERM, signal.SIGINT))
    try:
        os.kill(os.getpid(), signal.SIGINT)  # the first press: the drain
        await asyncio.wait_for(stop.asked.wait(), 30)
        assert not stop.now.is_set()
        os.kill(os.getpid(), signal.SIGINT)  # the second press, as people press Ctrl-C twice
        # Lost, it leaves the edge draining for drain_seconds: TimeoutError here.
        await asyncio.wait_for(stop.now.wait(), 10)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
