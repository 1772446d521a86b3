"""POST /start latency per cloud provider, against the loopback fakes with an injected latency.

Every fake (Daily, Fly, Compute Engine, the ECS proxy in front of moto) sleeps `--latency`
seconds per call. The dispatcher creates the room and launches the machine at once, and admission counts the
provider's machines at most once a second (not per request), so a start should cost about ONE
of those round trips, not room + launch (+ list):

    uv run python -m bench.start_latency --latency 0.05 --runs 15
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from dispatcher.app import create_app
from dispatcher.machines.base import LaunchSpec, Machines
from dispatcher.media.daily import DailyRooms, DailySettings
from dispatcher.settings import Settings, hash_api_key
from tests.dispatcher.machines.harness import Harness, ecs_harness, fly_harness, gce_harness
from tests.fakes.daily import FakeDaily
from tests.fakes.ecs import EcsProxy, provision
from tests.fakes.fly import FakeFly
from tests.fakes.gce import FakeGce
from tests.fakes.server import FakeApi, FakeServer, free_port

KEY = "bench-key-0123456789"
# The bench measures latency, not our client-side limits: lift them.
UNLIMITED = {
    f"{p}_{k}": v
    for p in ("FLY_CREATE", "FLY_LIST", "ECS_RUN_TASK", "GCE_INSERT")
    for k, v in (("RATE", "1000"), ("BURST", "1000"))
}


@contextlib.contextmanager
def served(fake: FakeApi, suffix: str = "") -> Any:
    with FakeServer(fake.app()) as server:
        fake.url = server.url + suffix  # type: ignore[attr-defined]
        yield fake


@contextlib.asynccontextmanager
async def harness_for(name: str) -> AsyncIterator[Harness]:
    if name == "fly":
        with served(FakeFly()) as fake:
            yield fly_harness(fake)
    elif name == "gce":
        with served(FakeGce(), "/compute/v1") as fake:
            yield gce_harness(fake)
    else:
        from moto.moto_api import state_manager
        from moto.server import ThreadedMotoServer

        state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 10**9})
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")  # moto only
        port = free_port()
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        moto.start()
        try:
            env = provision(f"http://127.0.0.1:{port}")
            with served(EcsProxy(f"http://127.0.0.1:{port}")) as proxy:
                proxy.env = {**env, "AWS_ENDPOINT_URL": proxy.url}  # type: ignore[attr-defined]
                yield ecs_harness(proxy)
        finally:
            moto.stop()


async def timed(runs: int, call: Callable[[int], Awaitable[object]]) -> float:
    samples = []
    for i in range(runs):
        began = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - began)
    return statistics.median(samples) * 1000


async def bench(name: str, latency: float, runs: int) -> dict[str, float]:
    with served(FakeDaily(), "/v1") as daily:
        async with harness_for(name) as harness:
            machines: Machines = harness.make(**UNLIMITED)
            rooms = DailyRooms(DailySettings.from_env(daily.env))
            await rooms.grant("0" * 24, 60)  # the domain config is fetched once per process
            settings = Settings(
                machines=name, api_key_hashes=frozenset({hash_api_key(KEY)}), max_concurrent_sessions=100_000
            )
            app = create_app(settings, env={}, machines=machines, rooms=rooms)
            http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")
            daily.knobs.latency = harness.fake.knobs.latency = latency

            def spec(i: int) -> LaunchSpec:
                return LaunchSpec(session_id=f"{i:024x}", body_digest="0" * 32, max_session_seconds=600)

            async def start(_: int) -> None:
                response = await http.post("/start", json={"body": {}}, headers={"Authorization": f"Bearer {KEY}"})
                assert response.status_code == 201, response.text

            result = {
                "room": await timed(runs, lambda i: rooms.create(f"{i + 10**6:024x}", 600)),
                "launch": await timed(runs, lambda i: machines.launch(spec(i + 10**6))),
                "list": await timed(runs, lambda _: machines.list()),
                "start": await timed(runs, start),
            }
            await http.aclose()
            await app.state.voicefleet.aclose()
            return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every fake API call")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--providers", default="fly,gce,ecs")
    args = parser.parse_args()
    print(f"per-call latency {args.latency * 1000:.0f} ms, {args.runs} runs, medians in ms")
    print("room, launch, list: one provider call each; start: POST /start through the dispatcher;")
    print("in turn: room + launch + list as a naive dispatcher would call them one after another")
    print(f"{'provider':8} {'room':>7} {'launch':>7} {'list':>7} {'start':>7} {'in turn':>8}")
    for name in args.providers.split(","):
        r = asyncio.run(bench(name, args.latency, args.runs))
        serial = r["list"] + r["room"] + r["launch"]
        print(f"{name:8} {r['room']:7.1f} {r['launch']:7.1f} {r['list']:7.1f} {r['start']:7.1f} {serial:8.1f}")


if __name__ == "__main__":
    main()
