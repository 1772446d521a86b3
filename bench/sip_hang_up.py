"""How soon a SIP caller gets the edge's BYE once the bot's side of its call ends.

    uv run python -m bench.sip_hang_up [--runs 5]

A real `python -m dispatcher` (MACHINES=local, the echo bot tests/phone/echo_bot.py in voicefleet's
host, a reserve of one, MAX_SESSION_SECONDS=10), `python -m sipedge` in front of it, and SIPp as the
trunk (tests/sip/call_hung_up_by_bot.xml: a caller who stays on the line until the edge's BYE).
Two events, each `--runs` calls on a warm bot:

1. the call's bot process SIGKILLed once the call is answered: kill → BYE at the caller;
2. the call left to its session's cap: the bot's `ended` (reason `max_duration`, on the session's
   timeline) → BYE at the caller.

The BYE's arrival is SIPp's own trace timestamp. Prints the median and the worst with the load
average; asserts nothing. Needs SIPp (Debian's sip-tester).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

from tests.phone.conftest import ended_timeline, phone_env
from tests.sip.conftest import run_edge
from tests.sip.test_hang_ups import CAP_SECONDS, answered_call, bot_pid, bye_received
from tests.support.processes import DispatcherProcess, run_dispatcher


async def measure(dispatcher: DispatcherProcess, edge_workdir: Path, runs: int) -> dict[str, list[float]]:
    seconds: dict[str, list[float]] = {"kill": [], "cap": []}
    with run_edge(dispatcher, edge_workdir) as edge:
        for _ in range(runs):
            async with answered_call(dispatcher, edge) as call:
                killed_at = time.time()
                os.kill(bot_pid(dispatcher, call.session_id), signal.SIGKILL)
                seconds["kill"].append(await bye_received(call.calling, edge) - killed_at)
        for _ in range(runs):
            async with answered_call(dispatcher, edge) as call:
                bye_at = await bye_received(call.calling, edge)
                events = await ended_timeline(call.api, call.session_id)
                ended = next(e for e in events if e["event"] == "ended")
                seconds["cap"].append(bye_at - ended["at"])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "calls").mkdir()
        (root / "edge").mkdir()
        env = {**phone_env(root / "calls"), "MAX_SESSION_SECONDS": str(CAP_SECONDS)}
        print(f"load average before: {os.getloadavg()[0]:.2f}")
        with run_dispatcher(root, env) as dispatcher:
            seconds = asyncio.run(measure(dispatcher, root / "edge", args.runs))
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    for event, values in seconds.items():
        print(f"{event}: BYE at the caller {statistics.median(values):.3f} s after (median of {len(values)}), "
              f"worst {max(values):.3f} s")


if __name__ == "__main__":
    main()
