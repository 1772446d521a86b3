"""A user's bot file, warm: `POST /start` → the bot's first audio, beside Pipecat's own dev runner.

    uv run python -m bench.user_bot_start --runs 9

Runs, alternating, until each has `--runs` samples:

- `greeter, warm`: a real dispatcher (`python -m dispatcher`, local, `RESERVE_MIN_IDLE=1`) whose
  bots run `BOT_FILE=tests/bots/greeter.py`, a canonical Pipecat bot that speaks first;
- `slow import, warm`: the same with `tests/bots/slow_import.py`, whose module import takes 2 s:
  warm, that import happened before the session, so it must not show;
- `slow import, cold`: the same file with the reserve off (`RESERVE_MAX_IDLE=0`): where it shows;
- `pipecat runner`: Pipecat's development runner, `python greeter.py -t webrtc` (one shared process,
  no isolation, bot module already imported): `POST /start` then the offer, as its client does.

Each sample is what a client sees: the start request, an aiortc offer (through the dispatcher's
offer proxy, or to the runner's `/sessions/{id}/api/offer`), and the first non-silent audio.
Before each warm sample it waits until the reserve holds an idle bot again (not timed). Medians
[min–max]; asserts nothing; prints the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.warm_start import FIRST_AUDIO_TIMEOUT, wait_for_idle_bot
from tests.support.audio import loud_segments
from tests.support.processes import free_port, run_dispatcher, terminate
from tests.support.webrtc_client import WebRTCClient

BOTS = Path(__file__).resolve().parents[1] / "tests" / "bots"


async def first_audio_after(began: float, offer_url: str) -> float:
    async with WebRTCClient(offer_url, connect_timeout=FIRST_AUDIO_TIMEOUT) as client:
        deadline = time.monotonic() + FIRST_AUDIO_TIMEOUT
        while not (segments := loud_segments(client.recording.times, client.recording.levels)):
            if time.monotonic() > deadline:
                raise RuntimeError("no bot audio")
            await asyncio.sleep(0.005)
        return segments[0].start - began


async def dispatcher_sample(api: httpx.AsyncClient, base_url: str, *, warm: bool) -> float:
    if warm:
        await wait_for_idle_bot(api)
    began = time.monotonic()
    response = await api.post("/start", json={})
    response.raise_for_status()
    session = response.json()
    try:
        return await first_audio_after(began, base_url + session["offer_url"])
    finally:
        await api.delete(f"/sessions/{session['session_id']}")


async def runner_sample(api: httpx.AsyncClient, base_url: str) -> float:
    began = time.monotonic()
    response = await api.post("/start", json={"transport": "webrtc"})
    response.raise_for_status()
    session_id = response.json()["sessionId"]
    return await first_audio_after(began, f"{base_url}/sessions/{session_id}/api/offer")


def start_runner(bot_file: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, bot_file.name, "--host", "127.0.0.1", "--port", str(port), "-t", "webrtc"],
            cwd=bot_file.parent, stdout=out, stderr=out,
        )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base_url}/client", timeout=0.5)
            return process, base_url
        except httpx.TransportError:
            time.sleep(0.1)
    terminate(process, grace=5)
    raise RuntimeError(f"Pipecat's runner did not come up: {log.read_text()[-2000:]}")


def report(name: str, values: list[float]) -> None:
    print(f"{name:20} {statistics.median(values):7.3f} s  [{min(values):.3f}–{max(values):.3f}]  n={len(values)}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    load_before = os.getloadavg()
    greeter, slow = str(BOTS / "greeter.py"), str(BOTS / "slow_import.py")
    rows: dict[str, list[float]] = {"greeter, warm": [], "slow import, warm": [], "slow import, cold": [],
                                    "pipecat runner": []}  # fmt: skip
    with tempfile.TemporaryDirectory() as logs:
        folders = {name: Path(logs) / name for name in ("greeter", "slow", "cold")}
        for folder in folders.values():
            folder.mkdir()
        runner, runner_url = start_runner(BOTS / "greeter.py", Path(logs) / "runner.log")
        try:
            with (
                run_dispatcher(folders["greeter"], {"RESERVE_MIN_IDLE": "1", "BOT_FILE": greeter}) as warm,
                run_dispatcher(folders["slow"], {"RESERVE_MIN_IDLE": "1", "BOT_FILE": slow}) as warm_slow,
                run_dispatcher(folders["cold"], {"RESERVE_MAX_IDLE": "0", "BOT_FILE": slow}) as cold_slow,
            ):
                async with (
                    httpx.AsyncClient(base_url=warm.base_url, timeout=60) as warm_api,
                    httpx.AsyncClient(base_url=warm_slow.base_url, timeout=60) as slow_api,
                    httpx.AsyncClient(base_url=cold_slow.base_url, timeout=60) as cold_api,
                    httpx.AsyncClient(base_url=runner_url, timeout=60) as runner_api,
                ):
                    for _ in range(args.runs):
                        rows["greeter, warm"].append(await dispatcher_sample(warm_api, warm.base_url, warm=True))
                        rows["slow import, warm"].append(
                            await dispatcher_sample(slow_api, warm_slow.base_url, warm=True))
                        rows["slow import, cold"].append(
                            await dispatcher_sample(cold_api, cold_slow.base_url, warm=False))
                        rows["pipecat runner"].append(await runner_sample(runner_api, runner_url))
        finally:
            terminate(runner, grace=5)
    load_after = os.getloadavg()
    print(f"load avg (1/5/15 min) before {'/'.join(f'{x:.2f}' for x in load_before)}, "
          f"after {'/'.join(f'{x:.2f}' for x in load_after)}")
    print(f"{'POST /start → first bot audio':20}  median [min–max]")
    for name, values in rows.items():
        report(name, values)


if __name__ == "__main__":
    asyncio.run(main())
