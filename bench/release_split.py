"""How a deployment's starts split between two releases, through the whole path: a real dispatcher
(MACHINES=fly, two releases in RELEASES, the newest entering at a 10 % canary), the load from this
process, and the fast fakes of Fly and Daily in a third (bench/fast_fakes.py), which record the
image each machine was created with. Prints the split by the answers' `release` and by the images
the provider was asked for, its binomial bounds, and that replayed Idempotency-Keys and pinned
starts keep their release.

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


def run(starts: int, replays: int, pins: int) -> dict[str, object]:
    with FakesProcess(latency=0.0) as fakes, tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {**os.environ, **provider_env("fly", fakes.url), "MACHINES": "fly", "HOST": "127.0.0.1",
               "PORT": str(port), "DISPATCHER_API_KEYS": KEY, "RELEASES": json.dumps(RELEASES),
               "MAX_CONCURRENT_SESSIONS": UNLIMITED, "START_RATE_PER_KEY": UNLIMITED,
               "START_BURST_PER_KEY": UNLIMITED, "REAPER_INTERVAL_SECONDS": "0", "LOG_LEVEL": "warning"}
        log = open(Path(tmp) / "dispatcher.log", "wb")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen([sys.executable, "-m", "dispatcher"], env=env, stdout=log, stderr=log)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_up(base)
            # A connection per start: a kept-alive one the dispatcher closes as the next start is sent
            # (KEEP_ALIVE_SECONDS) would fail that start in the client, not in the dispatcher.
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=30,
                              limits=httpx.Limits(max_keepalive_connections=0)) as api:
                drawn = [_start(api, {"Idempotency-Key": f"split-{n}"}, {}) for n in range(starts)]
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
    sigma = math.sqrt(starts * 0.1 * 0.9)
    return {
        "starts": starts, "canary": canary, "stable": split["stable"], "expected": starts * 0.1,
        "within_3_sigma": abs(canary - starts * 0.1) <= 3 * sigma, "sigma": round(sigma, 2),
        "replays_kept_their_release": replayed == drawn[:replays],
        "pinned_all_next": pinned == ["next"] * pins,
        "machines_by_image": {"stable" if image == STABLE else "next" if image == CANARY else image: n
                              for image, n in images.items()},
    }


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
