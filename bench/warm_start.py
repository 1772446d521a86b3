"""Warm vs cold: `POST /start` → the bot's first audio at the client, locally, in one run.

    uv run python -m bench.warm_start --runs 7

Two real dispatchers (`python -m dispatcher`), each spawning real `python -m bot` processes: one
with the warm reserve (`RESERVE_MIN_IDLE=1`, the local default), one without
(`RESERVE_MAX_IDLE=0`: every start is a cold process). Runs alternate between them. Each run does
what a client does: `POST /start`, then connect with an aiortc client through the dispatcher
(offer over the bot's control channel), and wait for the bot's first non-silent audio (the
greeting). Reported, medians [min–max]:

- `POST /start → first bot audio` (the user-visible figure), warm and cold;
- `POST /start` answer time at the client, warm and cold (HTTP round trip included);
- the dispatcher's own share of a warm claim: `voicefleet_reserve_claim_seconds` (take an idle bot,
  assign it over the channel, re-tag it), mean over the run from the dispatcher's histogram;
- `POST /start → bot-reported ready` from `voicefleet_start_to_ready_seconds` (mean).

Before each warm run it waits until the reserve holds an idle bot again (the previous claim
started a replacement), so each warm start is a claim; the wait is not part of any figure.
Asserts nothing; prints the load average with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.audio import loud_segments
from tests.support.processes import run_dispatcher
from tests.support.webrtc_client import WebRTCClient

FIRST_AUDIO_TIMEOUT = 30.0


async def metric_values(api: httpx.AsyncClient) -> dict[str, float]:
    values = {}
    for line in (await api.get("/metrics")).text.splitlines():
        if line.startswith("voicefleet_") and " " in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


async def wait_for_idle_bot(api: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 120
    while (await metric_values(api)).get('voicefleet_reserve_bots{provider="local",state="idle"}', 0) < 1:
        if time.monotonic() > deadline:
            raise RuntimeError("the reserve never refilled")
        await asyncio.sleep(0.1)


async def one_start(api: httpx.AsyncClient, base_url: str) -> dict[str, float]:
    began = time.monotonic()
    response = await api.post("/start", json={})
    answered = time.monotonic()
    response.raise_for_status()
    session = response.json()
    async with WebRTCClient(base_url + session["offer_url"], connect_timeout=FIRST_AUDIO_TIMEOUT) as client:
        deadline = time.monotonic() + FIRST_AUDIO_TIMEOUT
        while not (segments := loud_segments(client.recording.times, client.recording.levels)):
            if time.monotonic() > deadline:
                raise RuntimeError("no bot audio")
            await asyncio.sleep(0.005)
        first_audio = segments[0].start
    await api.delete(f"/sessions/{session['session_id']}")
    return {"start_to_first_audio_s": first_audio - began, "start_answer_ms": (answered - began) * 1000}


def mean(values: dict[str, float], name: str, label: str) -> float:
    total = values.get(f"{name}_sum{{{label}}}", 0.0)
    count = values.get(f"{name}_count{{{label}}}", 0.0)
    return total / count if count else float("nan")


def report(name: str, rows: list[dict[str, float]]) -> None:
    for key in rows[0]:
        values = [row[key] for row in rows]
        spread = f"[{min(values):.3f}–{max(values):.3f}]"
        print(f"{name:5} {key:28} {statistics.median(values):9.3f}  {spread}  n={len(values)}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as logs:
        warm_logs, cold_logs = Path(logs) / "warm", Path(logs) / "cold"
        warm_logs.mkdir()
        cold_logs.mkdir()
        with (
            run_dispatcher(warm_logs, {"RESERVE_MIN_IDLE": "1"}) as warm,
            run_dispatcher(cold_logs, {"RESERVE_MAX_IDLE": "0"}) as cold,
        ):
            async with (
                httpx.AsyncClient(base_url=warm.base_url, timeout=60) as warm_api,
                httpx.AsyncClient(base_url=cold.base_url, timeout=60) as cold_api,
            ):
                rows: dict[str, list[dict[str, float]]] = {"warm": [], "cold": []}
                for _ in range(args.runs):
                    await wait_for_idle_bot(warm_api)
                    rows["warm"].append(await one_start(warm_api, warm.base_url))
                    rows["cold"].append(await one_start(cold_api, cold.base_url))
                warm_metrics = await metric_values(warm_api)
                cold_metrics = await metric_values(cold_api)
    load_after = os.getloadavg()
    print(f"load avg (1/5/15 min) before {'/'.join(f'{x:.2f}' for x in load_before)}, "
          f"after {'/'.join(f'{x:.2f}' for x in load_after)}")
    print(f"{'path':5} {'metric':28} {'median':>9}  [min–max]")
    report("warm", rows["warm"])
    report("cold", rows["cold"])
    hits = warm_metrics.get('voicefleet_reserve_claims_total{outcome="warm_hit",provider="local",release="default"}', 0)
    claim_ms = mean(warm_metrics, "voicefleet_reserve_claim_seconds", 'provider="local"') * 1000
    print(f"warm claims: {hits:.0f}/{args.runs}; dispatcher's share of a warm claim (mean): {claim_ms:.1f} ms")
    for path, values in (("warm", warm_metrics), ("cold", cold_metrics)):
        ready = mean(values, "voicefleet_start_to_ready_seconds", f'path="{path}",provider="local",release="default"')
        print(f"{path}: POST /start → bot-reported ready (mean, from the dispatcher): {ready:.3f} s")


if __name__ == "__main__":
    asyncio.run(main())
