"""How fast a runtime change of capacity travels: from the admin's answer to `PATCH /capacity` at one
replica to `GET /capacity` showing it applied at each other replica.

Three real `python -m dispatcher` replicas on one redis-server, signed in as the AWS stack's store
user (its access string, tests/support/redis_server.py), with this process as the load generator: it
makes each change at the replicas in turn (the session cap, alternating) and polls the two others
every `POLL_SECONDS` until each shows the change's version. Each replica reads the record at the
writer's nudge (pub/sub) and once a second anyway, so a change is applied at the nudge; a round
starts at a random moment so the one-second re-read is met at every phase. Runtime settings are a
region's own (each region has its own store), so there is no cross-region figure to measure.

The same for API keys: a key created at one replica (`POST /keys`) until `GET /sessions` with its
secret answers 200 at each other replica (its first check there pays one scrypt), and revoked
(`DELETE /keys/NAME`) until it answers 401 there (its verified secret remembered, then forgotten).

Printed: the median, 95th percentile and maximum in milliseconds, over every (change, other replica).

    uv run python -m bench.runtime_propagation --rounds 40 --key-rounds 10
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

from tests.replicas.conftest import replica_env
from tests.support.processes import run_dispatcher
from tests.support.redis_server import redis_server

POLL_SECONDS = 0.005
DEADLINE_SECONDS = 30.0  # a change not seen by then is reported as lost, not waited for
ADMIN_KEY = "vf-bench-runtime-admin-41d0e9c2b7"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
DEPLOYMENT_SECRET = "bench-runtime-deployment-secret-0123456789"  # binds a key name's sessions to it


def version_at(client: httpx.Client, base_url: str) -> int:
    return int(client.get(f"{base_url}/capacity", headers=ADMIN).json()["version"])


def seen_by_each(client: httpx.Client, watchers: list[str], version: int, since: float) -> list[float | None]:
    """Seconds from `since` until each watcher shows `version` or a later one (None: not within the deadline)."""
    times: dict[str, float | None] = {}
    while len(times) < len(watchers):
        for base_url in watchers:
            if base_url not in times and version_at(client, base_url) >= version:
                times[base_url] = time.monotonic() - since
        if time.monotonic() - since > DEADLINE_SECONDS:
            times.update({u: None for u in watchers if u not in times})
        time.sleep(POLL_SECONDS)
    return [times[u] for u in watchers]


def measure(urls: list[str], rounds: int, seed: int) -> list[float | None]:
    pick = random.Random(seed)
    times: list[float | None] = []
    with httpx.Client(timeout=DEADLINE_SECONDS) as client:
        for n in range(rounds):
            time.sleep(pick.uniform(0.0, 1.0))  # any phase of the replicas' one-second re-read
            at = urls[n % len(urls)]
            answer = client.patch(f"{at}/capacity", headers=ADMIN, json={"sessions": 100 + n % 2})
            answer.raise_for_status()
            answered = time.monotonic()
            times += seen_by_each(client, [u for u in urls if u != at], int(answer.json()["version"]), answered)
    return times


def key_status(client: httpx.Client, base_url: str, secret: str) -> int:
    return client.get(f"{base_url}/sessions", headers={"Authorization": f"Bearer {secret}"}).status_code


def answered_by_each(client: httpx.Client, watchers: list[str], secret: str, status: int,
                     since: float) -> list[float | None]:
    """Seconds from `since` until each watcher answers the secret with `status` (None: not within the deadline)."""
    times: dict[str, float | None] = {}
    while len(times) < len(watchers):
        for base_url in watchers:
            if base_url not in times and key_status(client, base_url, secret) == status:
                times[base_url] = time.monotonic() - since
        if time.monotonic() - since > DEADLINE_SECONDS:
            times.update({u: None for u in watchers if u not in times})
        time.sleep(POLL_SECONDS)
    return [times[u] for u in watchers]


def measure_keys(urls: list[str], rounds: int, seed: int) -> tuple[list[float | None], list[float | None]]:
    pick = random.Random(seed)
    created: list[float | None] = []
    revoked: list[float | None] = []
    with httpx.Client(timeout=DEADLINE_SECONDS) as client:
        for n in range(rounds):
            time.sleep(pick.uniform(0.0, 1.0))
            at, name = urls[n % len(urls)], f"bench-{n}"
            made = client.post(f"{at}/keys", headers=ADMIN, json={"name": name})
            made.raise_for_status()
            others = [u for u in urls if u != at]
            created += answered_by_each(client, others, made.json()["secret"], 200, time.monotonic())
            time.sleep(pick.uniform(0.0, 1.0))
            client.delete(f"{at}/keys/{name}", headers=ADMIN).raise_for_status()
            revoked += answered_by_each(client, others, made.json()["secret"], 401, time.monotonic())
    return created, revoked


@contextmanager
def replicas(folder: Path, count: int) -> Iterator[list[str]]:
    with redis_server(folder) as store, ExitStack() as stack:
        urls = []
        for n in range(count):
            logs = folder / f"r-{n}"
            logs.mkdir()
            env = {**replica_env(store, str(folder), f"r-{n}"), "RESERVE_MAX_IDLE": "0",
                   "DISPATCHER_ADMIN_KEYS": ADMIN_KEY, "BOT_CHANNEL_TOKEN": DEPLOYMENT_SECRET}
            urls.append(stack.enter_context(run_dispatcher(logs, env)).base_url)
        yield urls


def report(what: str, times: list[float | None]) -> None:
    seen = sorted(t * 1000 for t in times if t is not None)
    lost = len(times) - len(seen)
    p95 = seen[min(len(seen) - 1, round(0.95 * (len(seen) - 1)))] if seen else float("nan")
    print(f"{what:12} applied {len(times):3}  median {statistics.median(seen):7.1f} ms  p95 {p95:7.1f} ms  "
          f"max {max(seen):7.1f} ms  not seen within {DEADLINE_SECONDS:g} s: {lost}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--key-rounds", type=int, default=10)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--seed", type=int, default=54)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root, replicas(Path(root), args.replicas) as urls:
        report("capacity", measure(urls, args.rounds, args.seed))
        created, revoked = measure_keys(urls, args.key_rounds, args.seed)
        report("key created", created)
        report("key revoked", revoked)


if __name__ == "__main__":
    main()
