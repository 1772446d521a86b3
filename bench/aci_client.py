"""Which ARM client the aci provider should use: the Azure SDK or the dispatcher's own aiohttp client.

The fake ARM (tests/fakes/arm_aci.py, TLS) runs in a process of its own; this process reads one
container group `--requests` times at `--concurrency` with each client and measures its own CPU per
call (`time.process_time`), arms alternating per round. The SDK arm is
`azure.mgmt.containerinstance.aio.ContainerInstanceManagementClient.container_groups.get` on
azure-core's aiohttp transport (a fixed token: token fetching is not what is measured); the other is
`dispatcher.outbound.http_client.HttpClient` with the same bearer header and `json.loads`. It then
reports what installing the SDK (with azure-identity) would add to the dispatcher image: the size on
disk of every distribution it pulls in that the dispatcher's closure (`uv export --no-default-groups`)
does not already hold.

    uv run --all-groups --with azure-mgmt-containerinstance --with azure-identity python -m bench.aci_client
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

GROUP = "vf-" + "0" * 24
TOKEN = "bench-token"  # noqa: S105 - the fake's fixed test token


def serve() -> None:
    """The fake ARM in this process, its throttling off, one group in it; prints its URL and certificate."""
    from tests.fakes.arm_aci import CLIENT_ID, RESOURCE_GROUP, SUBSCRIPTION, Bucket, FakeArmAci, serve_tls

    fake = FakeArmAci()
    fake.writes = fake.reads = Bucket(10**9, 10**9)
    with serve_tls(fake):
        fake.tokens[TOKEN] = fake.url + "/.default"  # a token for ARM's scope
        fake.principals[TOKEN] = CLIENT_ID  # issued to the dispatcher's client, whose role is the resource group's
        from tests.fakes.arm_aci import IMAGE, LOCATION

        fake.groups[GROUP] = {"id": f"{fake.groups_path}/{GROUP}", "name": GROUP, "location": LOCATION,
                              "type": "Microsoft.ContainerInstance/containerGroups",
                              "tags": {"voicefleet-session": "0" * 24}, "properties": {
                                  "provisioningState": "Succeeded", "restartPolicy": "Never", "osType": "Linux",
                                  "instanceView": {"state": "Running"}, "containers": [{"name": "bot", "properties": {
                                      "image": IMAGE, "resources": {"requests": {"cpu": 1, "memoryInGB": 2}},
                                      "environmentVariables": [{"name": f"V{i}"} for i in range(8)],
                                      "instanceView": {"currentState": {"state": "Running"}}}}]}}
        print(json.dumps({"url": fake.url, "cert": fake.cert_path, "sub": SUBSCRIPTION, "rg": RESOURCE_GROUP}),
              flush=True)
        sys.stdin.read()  # until the parent closes it


async def _drive(call: Callable[[], Awaitable[Any]], requests: int, concurrency: int) -> float:
    """CPU seconds per call in this process."""
    remaining = iter(range(requests))

    async def worker() -> None:
        for _ in remaining:
            await call()

    for _ in range(20):
        await call()  # connections open, caches warm
    began = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - began) / requests


async def run_aiohttp(info: dict[str, str], requests: int, concurrency: int) -> float:
    from dispatcher.outbound.http_client import HttpClient

    client = HttpClient(info["url"], timeout=10, ca_file=info["cert"])
    path = (f"/subscriptions/{info['sub']}/resourceGroups/{info['rg']}"
            f"/providers/Microsoft.ContainerInstance/containerGroups/{GROUP}")

    async def call() -> None:
        response = await client.request("GET", path, params={"api-version": "2023-05-01"},
                                        headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200, response.status_code
        response.json()

    try:
        return await _drive(call, requests, concurrency)
    finally:
        await client.aclose()


async def run_sdk(info: dict[str, str], requests: int, concurrency: int) -> float:
    from azure.core.credentials import AccessToken
    from azure.core.pipeline.transport import AioHttpTransport
    from azure.mgmt.containerinstance.aio import ContainerInstanceManagementClient

    class Fixed:
        async def get_token(self, *scopes: str, **kw: Any) -> AccessToken:
            return AccessToken(TOKEN, int(time.time()) + 3600)

        async def close(self) -> None:
            pass

    client = ContainerInstanceManagementClient(Fixed(), info["sub"], base_url=info["url"],
                                               transport=AioHttpTransport(connection_verify=info["cert"]))

    async def call() -> None:
        await client.container_groups.get(info["rg"], GROUP)

    try:
        return await _drive(call, requests, concurrency)
    finally:
        await client.close()


def added_megabytes() -> tuple[float, list[str]]:
    """What the SDK and azure-identity add to the dispatcher's closure, on disk."""
    closure = subprocess.run(["uv", "export", "--frozen", "--no-default-groups", "--no-hashes", "--no-header"],
                             capture_output=True, text=True, check=True).stdout
    have = {line.split("=", 1)[0].lower() for line in closure.splitlines() if line and line[0].isalnum()}
    wanted, seen = ["azure-mgmt-containerinstance", "azure-identity"], set()
    while wanted:
        name = wanted.pop().lower().replace("_", "-")
        if name in seen or name in have:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a requirement under a marker this Python does not meet
        seen.add(name)
        for requirement in dist.requires or []:
            if "extra ==" not in requirement:
                wanted.append(re.match(r"[A-Za-z0-9_.-]+", requirement).group(0))  # type: ignore[union-attr]
    total = sum(f.size or 0 for name in seen for f in importlib.metadata.distribution(name).files or [])
    return total / 1e6, sorted(seen)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.serve:
        return serve()
    fake = subprocess.Popen([sys.executable, "-m", "bench.aci_client", "--serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert fake.stdout is not None and fake.stdin is not None
    info = json.loads(fake.stdout.readline())
    results: dict[str, list[float]] = {"aiohttp (HttpClient)": [], "azure-mgmt-containerinstance (aio)": []}
    try:
        for _ in range(args.rounds):
            results["aiohttp (HttpClient)"].append(asyncio.run(run_aiohttp(info, args.requests, args.concurrency)))
            results["azure-mgmt-containerinstance (aio)"].append(
                asyncio.run(run_sdk(info, args.requests, args.concurrency)))
    finally:
        fake.stdin.close()
        fake.wait(timeout=10)
    for arm, values in results.items():
        print(f"{arm:40s} CPU per GET: median {statistics.median(values) * 1e3:.3f} ms "
              f"(rounds: {', '.join(f'{v * 1e3:.3f}' for v in values)})")
    megabytes, names = added_megabytes()
    print(f"installing the SDK + azure-identity adds {megabytes:.1f} MB to the dispatcher: {', '.join(names)}")


if __name__ == "__main__":
    main()
