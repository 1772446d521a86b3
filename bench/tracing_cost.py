"""What exporting traces costs a warm start: two local dispatchers, one with OTEL_* unset and one
exporting every span (its bots too) to an OTLP/HTTP receiver on loopback (a process of its own),
runs alternating.

    uv run --all-groups python -m bench.tracing_cost --runs 7

Each run is bench/warm_start.py's: `POST /start` (a warm claim), the aiortc client's offer through
the dispatcher, the bot's first audio at the client. Prints medians [min–max] and how many spans
the receiver decoded. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from bench.warm_start import one_start, report, wait_for_idle_bot
from tests.support.ports import free_port
from tests.support.processes import run_dispatcher


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    load_before = os.getloadavg()
    port = free_port()
    # The receiver in a process of its own: decoding in this one would slow the client being timed.
    receiver = subprocess.Popen([sys.executable, "-m", "tests.support.otlp_receiver", str(port)],  # noqa: ASYNC220
                                stdout=subprocess.PIPE, text=True)
    endpoint = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as logs:
        plain_logs, traced_logs = Path(logs) / "plain", Path(logs) / "traced"
        plain_logs.mkdir()
        traced_logs.mkdir()
        with (
            run_dispatcher(plain_logs, {"RESERVE_MIN_IDLE": "1"}) as plain,
            run_dispatcher(traced_logs, {"RESERVE_MIN_IDLE": "1", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}) as traced,
        ):
            async with (
                httpx.AsyncClient(base_url=plain.base_url, timeout=60) as plain_api,
                httpx.AsyncClient(base_url=traced.base_url, timeout=60) as traced_api,
            ):
                rows: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
                for _ in range(args.runs):
                    await wait_for_idle_bot(plain_api)
                    rows["off"].append(await one_start(plain_api, plain.base_url))
                    await wait_for_idle_bot(traced_api)
                    rows["on"].append(await one_start(traced_api, traced.base_url))
        await asyncio.sleep(1)  # the last bots' batches
    receiver.terminate()
    spans = int((receiver.communicate(timeout=10)[0] or "0").strip() or 0)
    load_after = os.getloadavg()
    print(f"load avg (1/5/15 min) before {'/'.join(f'{x:.2f}' for x in load_before)}, "
          f"after {'/'.join(f'{x:.2f}' for x in load_after)}")
    print(f"{'OTEL':5} {'metric':28} {'median':>9}  [min–max]")
    report("off", rows["off"])
    report("on", rows["on"])
    print(f"spans the receiver decoded from the exporting dispatcher and its bots: {spans}")


if __name__ == "__main__":
    asyncio.run(main())
