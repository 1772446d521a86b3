"""Claims of idle pods by one JSON Patch, with replicas racing for the same pods: how many tries a claim
takes and how long, and the dispatcher's CPU per claim.

The fake API server (tests/fakes/k8s.py: strict Pod validation, JSON Patch through `jsonpatch`) runs
in a process of its own. This process creates `--pods` idle pods with the provider's `launch_idle`,
then `--replicas` providers (each its own client and connection pool, as replicas are) claim them at
once, `--pods` claims in all: each claim walks the idle pods in its own random order and moves to
the next on a 422 (another replica won). Every pod must be claimed exactly once; the figures are
the tries per claim, each claim's wall time (p50, p95) and this process's CPU per claim.

    uv run python -m bench.k8s_claims --pods 60 --replicas 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def serve(token_file: str) -> None:
    """The fake API server in this process; prints its URL, runs until stdin closes."""
    from tests.fakes.k8s import TOKEN, FakeKubernetes
    from tests.fakes.server import serve as serve_fake

    Path(token_file).write_text(TOKEN + "\n")
    fake = FakeKubernetes()
    fake.token_file = token_file
    with serve_fake(fake):
        print(json.dumps(fake.env), flush=True)
        sys.stdin.read()


async def measure(env: dict[str, str], pods: int, replicas: int) -> dict[str, float]:
    from dispatcher.machines.base import LaunchSpec, MachinesError
    from dispatcher.machines.k8s.reserve import K8sWarmMachines

    def provider() -> K8sWarmMachines:
        return K8sWarmMachines.from_env({**env, "BOT_CHANNEL_URL": "wss://d.example/bots/channel"},
                                        transport="webrtc", max_idle_seconds=900, max_session_seconds=600)

    owner = provider()
    bots = [f"rsv-{secrets.token_hex(6)}" for _ in range(pods)]
    await asyncio.gather(*(owner.launch_idle(bot, "c") for bot in bots))
    await owner.aclose()
    fleet = [provider() for _ in range(replicas)]
    for machines in fleet:
        await machines.status("0" * 24)  # connections open
    claimed: list[str] = []
    tries: list[int] = []
    walls: list[float] = []

    async def claim(machines: K8sWarmMachines) -> None:
        order = random.sample(bots, len(bots))
        spec = LaunchSpec(session_id=secrets.token_hex(12), body_digest="d" * 32, max_session_seconds=600)
        began = time.perf_counter()
        for attempt, bot in enumerate(order, 1):
            try:
                await machines.adopt(bot, spec)
            except MachinesError as exc:
                if exc.reason != "reserve_bot_taken":
                    raise
                continue
            claimed.append(bot)
            tries.append(attempt)
            walls.append(time.perf_counter() - began)
            return

    cpu = time.process_time()
    await asyncio.gather(*(claim(fleet[i % replicas]) for i in range(pods)))
    cpu = time.process_time() - cpu
    for machines in fleet:
        await machines.aclose()
    assert sorted(claimed) == sorted(bots), "a pod claimed twice, or one left"
    walls.sort()
    return {"claims": len(claimed), "tries_mean": statistics.mean(tries), "tries_max": max(tries),
            "wall_p50_ms": 1000 * walls[len(walls) // 2], "wall_p95_ms": 1000 * walls[int(len(walls) * 0.95)],
            "cpu_per_claim_ms": 1000 * cpu / len(claimed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=60)
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    with tempfile.TemporaryDirectory() as directory:
        fake = subprocess.Popen([sys.executable, "-m", "bench.k8s_claims", "--serve", f"{directory}/token"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert fake.stdout is not None
            env = json.loads(fake.stdout.readline())
            result = asyncio.run(measure(env, args.pods, args.replicas))
        finally:
            assert fake.stdin is not None
            fake.stdin.close()
            fake.wait(timeout=30)
    print(json.dumps({"pods": args.pods, "replicas": args.replicas, **{k: round(v, 2) for k, v in result.items()}}))


if __name__ == "__main__":
    main()
