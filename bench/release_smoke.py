"""How long a release's smoke session takes, from `POST /releases/{name}/smoke` to `passed` in
`GET /releases`: a real `python -m dispatcher` (local machines, `BOT_RELEASES` of the parrot, no warm
reserve, so each smoke starts its bot cold) in a process of its own, and the caller in this one (an
aiortc client that connects to the answer's `offer_url` and listens). Each round smokes a release of
its own, since a release is smoked once.

    uv run --all-groups python -m bench.release_smoke --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import run_dispatcher
from tests.support.webrtc_client import WebRTCClient

PARROT = Path(__file__).resolve().parents[1] / "examples" / "parrot" / "bot.py"
ADMIN_KEY = "bench-smoke-admin-key-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
WAIT = 300.0


async def smoke(api: httpx.AsyncClient, name: str) -> dict[str, float | str]:
    began = time.monotonic()
    started = await api.post(f"/releases/{name}/smoke", headers=ADMIN)
    started.raise_for_status()
    answered = time.monotonic() - began
    answer = started.json()
    async with WebRTCClient(f"{api.base_url}{answer['offer_url']}", headers=ADMIN,
                            ice_config=answer.get("iceConfig")) as client:
        connected = time.monotonic() - began
        while time.monotonic() - began < WAIT:
            state = await _smoke_state(api, name)
            if state["status"] != "running":
                break
            await asyncio.sleep(0.05)
        verdict = time.monotonic() - began
        for _ in range(100):  # the bot reports its first audio as it sends it: the caller hears it just after
            if (heard := client.result().connect_to_first_audio) is not None:
                break
            await asyncio.sleep(0.05)
    return {"status": str(state["status"]), "answered_s": answered, "connected_s": connected,
            "verdict_s": verdict, "connect_to_first_audio_s": heard if heard is not None else -1.0}


async def _smoke_state(api: httpx.AsyncClient, name: str) -> dict[str, Any]:
    listed = (await api.get("/releases", headers=ADMIN)).json()["releases"]
    return dict(next(r for r in listed if r["name"] == name)["smoke"])


async def rounds(base_url: str, count: int) -> list[dict[str, float | str]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=WAIT) as api:
        return [await smoke(api, f"r{n}") for n in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    names = ",".join([f"stable={PARROT}", *(f"r{n}={PARROT}" for n in range(args.rounds))])
    env = {"BOT_RELEASES": names, "DISPATCHER_ADMIN_KEYS": ADMIN_KEY, "DISPATCHER_API_KEYS": "bench-client-key-0123",
           "RESERVE_MAX_IDLE": "0", "VOICEFLEET_ICE_LOOPBACK": "1", "LOG_LEVEL": "warning"}
    with tempfile.TemporaryDirectory() as tmp, run_dispatcher(Path(tmp), env) as dispatcher:
        results = asyncio.run(rounds(dispatcher.base_url, args.rounds))
    verdicts = sorted(float(r["verdict_s"]) for r in results)
    print(json.dumps({"rounds": results, "passed": sum(r["status"] == "passed" for r in results),
                      "verdict_median_s": round(statistics.median(verdicts), 2),
                      "verdict_max_s": round(verdicts[-1], 2)}, indent=2))


if __name__ == "__main__":
    main()
