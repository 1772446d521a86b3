"""How fast a change of the releases' traffic travels: from the admin's answer at one dispatcher to
`GET /releases` showing it at another.

Two set-ups, each real `python -m dispatcher` processes, with this process as the load generator
(it makes each change and watches for it, polling every `POLL_SECONDS`):

- **replicas**: two replicas on one redis-server, signed in as the AWS stack's store user (its
  access string, tests/support/redis_server.py); a change at one, watched at the other, which
  reads the store once a second.
- **regions**: three regional dispatchers (`REGION`, `REGIONS`, `REGION_SECRET`) on loopback; a
  change at one, watched at the other two (the later of the two counts), pushed signed.

Each round alternates the canary between 10 % and 0 % (`PUT /releases/next`) or rolls back, at a
random moment, so the replicas' one-second read is met at every phase. Printed: the median, 95th
percentile and maximum, in milliseconds, for each set-up.

    uv run python -m bench.release_propagation --rounds 40
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from tests.regions.test_region_peers import region_env
from tests.replicas.conftest import replica_env
from tests.support.ports import free_port
from tests.support.processes import run_dispatcher
from tests.support.redis_server import redis_server
from tests.support.releases import ADMIN, release_env

POLL_SECONDS = 0.005
DEADLINE_SECONDS = 30.0  # a change not seen by then is reported as lost, not waited for


def version_at(client: httpx.Client, base_url: str) -> list[object]:
    return list(client.get(f"{base_url}/releases", headers=ADMIN).json()["version"])


def change(client: httpx.Client, base_url: str, n: int) -> list[object]:
    """The nth change at `base_url`: the canary to 10 %, then rolled back, and again."""
    if n % 2 == 0:
        answer = client.put(f"{base_url}/releases/next", headers=ADMIN, json={"weight": 10})
    else:
        answer = client.post(f"{base_url}/releases/rollback", headers=ADMIN)
    answer.raise_for_status()
    return list(answer.json()["version"])


def seen_after(client: httpx.Client, watchers: list[str], version: list[object], since: float) -> float | None:
    """Seconds from `since` until every watcher shows `version` (None: not within the deadline)."""
    waiting = set(watchers)
    while waiting:
        for base_url in list(waiting):
            if version_at(client, base_url) == version:
                waiting.discard(base_url)
        if time.monotonic() - since > DEADLINE_SECONDS:
            return None
        time.sleep(POLL_SECONDS)
    return time.monotonic() - since


def measure(urls: list[str], rounds: int, seed: int) -> list[float | None]:
    pick = random.Random(seed)
    times: list[float | None] = []
    with httpx.Client(timeout=DEADLINE_SECONDS) as client:
        for n in range(rounds):
            time.sleep(pick.uniform(0.0, 1.0))  # any phase of the replicas' one-second read
            at = urls[n % len(urls)]
            version = change(client, at, n)
            answered = time.monotonic()
            times.append(seen_after(client, [u for u in urls if u != at], version, answered))
    return times


@contextmanager
def replicas(folder: Path) -> Iterator[list[str]]:
    with redis_server(folder) as store, ExitStack() as stack:
        releases = release_env(folder)
        urls = []
        for name in ("r-a", "r-b"):
            logs = folder / name
            logs.mkdir()
            env = {**replica_env(store, str(folder), name), **releases, "RESERVE_MAX_IDLE": "0"}
            urls.append(stack.enter_context(run_dispatcher(logs, env)).base_url)
        yield urls


@contextmanager
def regions(folder: Path) -> Iterator[list[str]]:
    urls = {name: f"http://127.0.0.1:{free_port()}" for name in ("eu", "us", "ap")}
    with ExitStack() as stack:
        for name, url in urls.items():
            env = {**region_env(name, urls), **release_env(folder)}
            stack.enter_context(run_dispatcher(folder, env, port=int(url.rsplit(":", 1)[1]), log_name=f"{name}.log"))
        time.sleep(2.0)  # every region has answered every other's poll (they poll twice a second)
        yield list(urls.values())


def report(name: str, times: list[float | None]) -> None:
    seen = sorted(t * 1000 for t in times if t is not None)
    lost = len(times) - len(seen)
    p95 = seen[min(len(seen) - 1, round(0.95 * (len(seen) - 1)))] if seen else float("nan")
    print(f"{name:9} rounds {len(times):3}  median {statistics.median(seen):7.1f} ms  p95 {p95:7.1f} ms  "
          f"max {max(seen):7.1f} ms  not seen within {DEADLINE_SECONDS:g} s: {lost}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--seed", type=int, default=54)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        for name, setup in (("replicas", replicas), ("regions", regions)):
            folder = Path(root) / name
            folder.mkdir()
            with setup(folder) as urls:
                report(name, measure(urls, args.rounds, args.seed))


if __name__ == "__main__":
    main()
