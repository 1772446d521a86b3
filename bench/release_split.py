"""How a deployment's starts split between two releases, through the whole path: a real dispatcher
(MACHINES=fly, two releases in RELEASES, the newest entering at a 10 % canary), the load from this
process, and the fast fakes of Fly and Daily in a third (bench/fast_fakes.py), which record the
image each machine was created with. Prints the split by the answers' `release` and by the images
the provider was asked for, its binomial bounds, and that replayed Idempotency-Keys and pinned
starts keep their release.

Fly's list limit (1 list a second per app, burst 3, `FLY_LIST_*`) is lifted here as its create
limit is: a keyed start lists the app to find the machine a replay would have, and the admission's
recount lists it once a second, so at Fly's limit each keyed start waited about 2 s for its turn
(1,000 starts: over half an hour) though the fake answers at once. The split does not depend on it.

    uv run python -m bench.release_split --starts 1000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import httpx

from bench.dispatch_burst import KEY, UNLIMITED, provider_env
from bench.fakes_process import FakesProcess
from tests.fakes.server import free_port

STABLE = "registry.fly.io/bench@sha256:" + "a" * 64
CANARY = "registry.fly.io/bench@sha256:" + "b" * 64
RELEASES = {"releases": [{"name": "stable", "images": {"*": STABLE}}, {"name": "next", "images": {"*": CANARY}}],
            "canaryPercent": 10}
CANARY_SHARE = 0.10


def run(starts: int, replays: int, pins: int) -> dict[str, object]:
    with FakesProcess(latency=0.0) as fakes, tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {**os.environ, **provider_env("fly", fakes.url), "MACHINES": "fly", "HOST": "127.0.0.1",
               "PORT": str(port), "DISPATCHER_API_KEYS": KEY, "RELEASES": json.dumps(RELEASES),
               "MAX_CONCURRENT_SESSIONS": UNLIMITED, "START_RATE_PER_KEY": UNLIMITED,
               "START_BURST_PER_KEY": UNLIMITED, "REAPER_INTERVAL_SECONDS": "0", "LOG_LEVEL": "warning",
               "FLY_LIST_RATE": UNLIMITED, "FLY_LIST_BURST": UNLIMITED}
        log = open(Path(tmp) / "dispatcher.log", "wb")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen([sys.executable, "-m", "dispatcher"], env=env, stdout=log, stderr=log)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_up(base)
            # A connection per start: a kept-alive one the dispatcher closes as the next start is sent
            # (KEEP_ALIVE_SECONDS) would fail that start in the client, not in the dispatcher.
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=30,
                              limits=httpx.Limits(max_keepalive_connections=0)) as api:
                began = time.monotonic()
                drawn = [_start(api, {"Idempotency-Key": f"split-{n}"}, {}) for n in range(starts)]
                drawn_seconds = time.monotonic() - began
                replayed = [_start(api, {"Idempotency-Key": f"split-{n}"}, {}) for n in range(replays)]
                pinned = [_start(api, {}, {"release": "next"}) for _ in range(pins)]
            images = Counter(m["config"]["image"] for m in _fly_machines(fakes.url) if m["name"] != "runner")
        except Exception:
            log.flush()
            sys.stderr.write((Path(tmp) / "dispatcher.log").read_text()[-3000:])
            raise
        finally:
            process.terminate()
            process.wait(timeout=30)
            log.close()
    split = Counter(drawn)
    canary = split["next"]
    sigma = math.sqrt(starts * CANARY_SHARE * (1 - CANARY_SHARE))
    low, high = binomial_range(starts, CANARY_SHARE, 0.99)
    return {
        "starts": starts, "seconds": round(drawn_seconds, 1), "canary": canary, "stable": split["stable"],
        "expected": starts * CANARY_SHARE, "sigma": round(sigma, 2),
        "within_3_sigma": abs(canary - starts * CANARY_SHARE) <= 3 * sigma,
        "binomial_99_percent_range": [low, high], "within_binomial_range": low <= canary <= high,
        "replays_kept_their_release": replayed == drawn[:replays],
        "pinned_all_next": pinned == ["next"] * pins,
        "machines_by_image": {"stable" if image == STABLE else "next" if image == CANARY else image: n
                              for image, n in images.items()},
    }


def binomial_range(n: int, p: float, coverage: float) -> tuple[int, int]:
    """The central range of Binomial(n, p) holding at least `coverage` of it: where a count of n
    draws at share p falls, but (1 − coverage) of the time, if the draw is right."""
    tail = (1.0 - coverage) / 2.0
    pmf = [math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                    + k * math.log(p) + (n - k) * math.log1p(-p)) for k in range(n + 1)]
    below = 0.0
    low = 0
    while below + pmf[low] <= tail:
        below += pmf[low]
        low += 1
    above = 0.0
    high = n
    while above + pmf[high] <= tail:
        above += pmf[high]
        high -= 1
    return low, high


def _start(api: httpx.Client, headers: dict[str, str], body: dict[str, object]) -> str:
    answer = api.post("/start", json=body, headers=headers)
    answer.raise_for_status()
    return str(answer.json()["release"])


def _fly_machines(fakes: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"{fakes}/v1/apps/bench/machines", timeout=30) as response:
        machines: list[dict[str, object]] = json.loads(response.read())
        return machines


def _wait_up(base: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the dispatcher did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=1000)
    parser.add_argument("--replays", type=int, default=100)
    parser.add_argument("--pins", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(run(args.starts, args.replays, args.pins), indent=2))


if __name__ == "__main__":
    main()
