"""A call's first answer through voicefleet with the shared model service, less the model's own share.

    uv run --all-groups python -m bench.moshi_turns [--calls 10] [--delay 0.3] [--direct]

Through the system: a local dispatcher (`python -m dispatcher`, `BOT_FILE=examples/moshi/bot.py`,
`MODEL_SERVICE_URL` set) holding a warm bot, the WebRTC caller of `voicefleet loadtest` here, and the
model server stand-in (tests/fakes/moshi_server.py, its own process), which answers a stream's first
audio after `--delay` seconds with a tone. A full-duplex model has no turns; the figure is the span
from the caller's connection to the first loud audio it hears: the bot's pipeline starting, its
stream opening at `/api/chat`, the caller's first audio reaching the model, the model's delay, and
its audio back through the bot and WebRTC. Less the delay, that is the path.

With `--direct`, the same bot runs under Pipecat's own development runner (`python bot.py -t
webrtc`) and the caller offers to it: the baseline, with no voicefleet in the path. voicefleet's own
share is the difference between the two runs' medians. Asserts nothing; prints p50/p95 and the load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from pathlib import Path

import httpx

from bench.realtime_turns import percentile
from tests.fakes.moshi_server import model_server_process
from tests.support.moshi_pipeline import MOSHI
from tests.support.realtime_turns import runner_process, warm_fleet
from tests.support.waiting import until
from voicefleet.loadtest.rail import offer_url
from voicefleet.loadtest.webrtc import WebRTCClient

BOT = MOSHI / "bot.py"


async def first_answer(offer: str) -> float:
    """Seconds from the caller's connection to the first loud audio it hears."""
    async with WebRTCClient(offer, connect_timeout=60) as client:
        async def heard() -> float | None:
            return client.result().connect_to_first_audio

        return await until(heard, "the model's first audio", timeout=30, interval=0.02)


async def through_voicefleet(base_url: str) -> float:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        answer = (await http.post("/start", json={})).raise_for_status().json()
        try:
            return await first_answer(offer_url(base_url, answer))
        finally:
            await http.delete(f"/sessions/{answer['session_id']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.3, help="the stand-in's scripted delay, seconds")
    parser.add_argument("--direct", action="store_true",
                        help="the baseline: the bot under Pipecat's own runner, no voicefleet")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    spans: list[float] = []
    with tempfile.TemporaryDirectory() as logs, model_server_process(streams=4, delay=args.delay) as model:
        if args.direct:
            with runner_process(Path(logs), BOT, {"MODEL_SERVICE_URL": model.url}) as offer:
                spans = [asyncio.run(first_answer(offer)) for _ in range(args.calls)]
        else:
            env = {"BOT_FILE": str(BOT), "MODEL_SERVICE_URL": model.url, "LOCAL_BOT_ENV": "MODEL_SERVICE_URL",
                   "MODEL_SERVICE_CONNECT_SECONDS": "1"}
            with warm_fleet(Path(logs), env) as dispatcher:
                spans = [asyncio.run(through_voicefleet(dispatcher.base_url)) for _ in range(args.calls)]
    rest = [s - args.delay for s in spans]
    print(f"{len(spans)} calls (p50 / p95 / mean, ms):")
    for name, values in {"connected → first answer": spans, "less the model's delay": rest}.items():
        print(f"  {name:26} {percentile(values, 0.5) * 1000:6.0f} / {percentile(values, 0.95) * 1000:6.0f} / "
              f"{statistics.fmean(values) * 1000:6.0f}")  # fmt: skip
    print(f"load average {load_before:.2f} → {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
