"""docs/images/dashboard.png: a local dispatcher given a few minutes of sessions, started and stopped
at random with some refused at its cap, then the dashboard in headless Chromium.

    uv run python -m bench.dashboard_screenshot --minutes 5 --out docs/images/dashboard.png
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import SPEECH
from tests.support.browser import Browser, browser_mic
from tests.support.processes import run_dispatcher

ENV = {"RESERVE_MIN_IDLE": "2", "RESERVE_MAX_IDLE": "3", "MAX_CONCURRENT_SESSIONS": "3"}


async def traffic(http: httpx.AsyncClient, minutes: float, live: list[str]) -> None:
    """Bursts of 1 to 3 starts, then all but up to 2 sessions stopped, for `minutes`."""
    rng = random.Random(3)
    end = time.monotonic() + minutes * 60
    while time.monotonic() < end:
        for _ in range(rng.randint(1, 3)):
            answer = await http.post("/start", json={"body": {}})
            if answer.status_code == 201:
                live.append(answer.json()["session_id"])
        await asyncio.sleep(rng.uniform(4, 9))
        while len(live) > rng.randint(0, 2):
            await http.delete(f"/sessions/{live.pop(0)}")
        await asyncio.sleep(rng.uniform(2, 5))


async def main(minutes: float, out: Path) -> None:
    folder = Path(tempfile.mkdtemp())
    with run_dispatcher(folder, ENV) as dispatcher:
        live: list[str] = []
        async with httpx.AsyncClient(base_url=dispatcher.base_url, timeout=60) as http:
            try:
                await traffic(http, minutes, live)
                await asyncio.sleep(8)  # the last counts reach the charts
                mic = browser_mic(SPEECH, folder / "mic.wav")
                async with Browser(dispatcher.base_url + "/dashboard", mic, folder / "profile") as page:
                    await page.send("Emulation.setDeviceMetricsOverride", width=1280, height=1020,
                                    deviceScaleFactor=1, mobile=False)
                    if not await page.wait_for("window.voicefleetStatus?.state === 'ok'", 30):
                        raise SystemExit(f"the dashboard showed nothing:\n{dispatcher.log()}")
                    await asyncio.sleep(1)  # a re-layout at the new width
                    out.parent.mkdir(parents=True, exist_ok=True)
                    await page.screenshot(out)
            finally:
                for session_id in live:
                    await http.delete(f"/sessions/{session_id}")
    print("wrote", out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=Path("bench/out/dashboard.png"))
    args = parser.parse_args()
    asyncio.run(main(args.minutes, args.out))
