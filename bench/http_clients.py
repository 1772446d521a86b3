"""Which async HTTP client costs the dispatcher least under a burst: httpx, aiohttp, or raw asyncio.

Each client sends `--requests` JSON POSTs at `--concurrency` to the fast fakes (another process,
`--latency` per call, like a provider), in this process, and the process's CPU per request is
read around the run. The raw asyncio client (one keep-alive connection per worker, no pool) is
the floor, and also shows how fast the fakes are when driven directly. The dispatcher's own
client and its ECS call (signing included) run the same way. Arms alternate per round.

    uv run --all-groups python -m bench.http_clients --rounds 3   # httpx is a dev dependency now
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

from bench.fakes_process import FakesProcess

BODY = {"name": "", "privacy": "private", "properties": {"exp": 1800000000, "max_participants": 3}}


async def _drive(send: Callable[[int], Awaitable[int]], requests: int, concurrency: int) -> float:
    counter = iter(range(requests))

    async def worker() -> None:
        for i in counter:
            status = await send(i)
            assert status == 200, status

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - began


async def run_httpx(base: str, requests: int, concurrency: int, max_connections: int = 100) -> float:
    import httpx

    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as client:

        async def send(i: int) -> int:
            return (await client.post("/v1/rooms", json={**BODY, "name": f"h{i}"})).status_code

        return await _drive(send, requests, concurrency)


async def run_aiohttp(base: str, requests: int, concurrency: int, limit: int = 100) -> float:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=limit)
    async with aiohttp.ClientSession(base, connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as client:

        async def send(i: int) -> int:
            async with client.post("/v1/rooms", json={**BODY, "name": f"a{i}"}) as response:
                await response.json()
                return response.status

        return await _drive(send, requests, concurrency)


async def run_raw(host: str, port: int, requests: int, concurrency: int) -> float:
    """One keep-alive connection per worker, HTTP/1.1 by hand: what the fakes can take."""
    counter = iter(range(requests))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        for i in counter:
            data = json.dumps({**BODY, "name": f"r{i}"}).encode()
            writer.write(b"POST /v1/rooms HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(data), data))
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            assert head.startswith(b"HTTP/1.1 200"), head[:40]
        writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - began


async def run_dispatcher_client(base: str, requests: int, concurrency: int) -> float:
    """dispatcher/outbound/http_client.py, as Daily, Fly and Compute Engine use it."""
    from dispatcher.outbound.http_client import HttpClient

    client = HttpClient(base, timeout=10)

    async def send(i: int) -> int:
        response = await client.request("POST", "/v1/rooms", json={**BODY, "name": f"d{i}"})
        response.json()
        return response.status_code

    try:
        return await _drive(send, requests, concurrency)
    finally:
        await client.aclose()


async def run_ecs_api(base: str, requests: int, concurrency: int) -> float:
    """dispatcher/machines/ecs/json_api.py: an ECS DescribeTasks, signed (with a session token, as a task role
    signs) and checked by the fake, over the same pool."""
    from botocore.credentials import Credentials

    from bench.fast_fakes import AWS_KEY_ID, AWS_REGION, AWS_SECRET, AWS_TOKEN
    from dispatcher.machines.ecs.credentials import AwsCredentials
    from dispatcher.machines.ecs.json_api import AwsJsonApi
    from dispatcher.machines.ecs.provider import ECS_TARGET_PREFIX

    keys = AwsCredentials(lambda: Credentials(AWS_KEY_ID, AWS_SECRET, AWS_TOKEN))
    api = AwsJsonApi(service="ecs", target_prefix=ECS_TARGET_PREFIX, region=AWS_REGION, endpoint=base, timeout=10,
                     connect_timeout=3, credentials=keys)

    async def send(i: int) -> int:
        arn = f"arn:aws:ecs:{AWS_REGION}:123456789012:task/bench/{i:032x}"
        await api.call("DescribeTasks", {"cluster": "bench", "tasks": [arn], "include": ["TAGS"]})
        return 200

    try:
        return await _drive(send, requests, concurrency)
    finally:
        await api.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", help="run only the arms whose name contains this (e.g. raw)")
    args = parser.parse_args()
    n, c = args.requests, args.concurrency
    with FakesProcess(latency=args.latency) as fakes:
        arms: dict[str, Callable[[], Awaitable[float]]] = {
            "raw asyncio (floor; fakes driven directly)": lambda: run_raw("127.0.0.1", fakes.port, n, c),
            "aiohttp (limit 100)": lambda: run_aiohttp(fakes.url, n, c),
            "aiohttp (no limit)": lambda: run_aiohttp(fakes.url, n, c, limit=0),
            "dispatcher HttpClient (JSON POST)": lambda: run_dispatcher_client(fakes.url, n, c),
            "dispatcher ECS call (signed JSON 1.1)": lambda: run_ecs_api(fakes.url, n, c),
            "httpx (default limits, 100)": lambda: run_httpx(fakes.url, n, c),
            "httpx (limits 1000)": lambda: run_httpx(fakes.url, n, c, max_connections=1000),
        }
        arms = {name: arm for name, arm in arms.items() if args.only is None or args.only in name}
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in arms}
        for _ in range(args.rounds):
            for name, arm in arms.items():
                fakes.reset(args.latency)
                fakes_cpu = fakes.stats()["cpu"]
                cpu = time.process_time()
                wall = asyncio.run(arm())
                cpu = time.process_time() - cpu
                fakes_cpu = fakes.stats()["cpu"] - fakes_cpu
                results[name].append((n / wall, cpu / n * 1000, fakes_cpu / n * 1000))
    print(f"{n} POSTs at concurrency {c}, {args.latency * 1000:g} ms per call; medians of {args.rounds} rounds")
    print(f"{'client':46} {'req/s':>8} {'client CPU ms/req':>18} {'fakes CPU ms/req':>17}")
    for name, rows in results.items():
        rate, cpu, fcpu = (statistics.median(r[i] for r in rows) for i in range(3))
        print(f"{name:46} {rate:8.0f} {cpu:18.3f} {fcpu:17.3f}")


if __name__ == "__main__":
    main()
