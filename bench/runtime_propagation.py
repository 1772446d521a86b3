"""How fast a runtime change of capacity travels: from the admin's answer to `PATCH /capacity` at one
replica to `GET /capacity` showing it applied at each other replica, and across regions.

Three real `python -m dispatcher` replicas on one redis-server, signed in as the AWS stack's store
user (its access string, tests/support/redis_server.py), with this process as the load generator: it
makes each change at the replicas in turn (the session cap, alternating) and polls the two others
every `POLL_SECONDS` until each shows the change's version. Each replica reads the record at the
writer's nudge (pub/sub) and once a second anyway, so a change is applied at the nudge; a round
starts at a random moment so the one-second re-read is met at every phase.

With `--regions`: three regional dispatchers (`REGION`, `REGIONS`, `REGION_SECRET`) on loopback,
each region with a redis-server of its own and `--replicas` replicas on it
(tests/regions/stored_regions.py); a change made at one region's replica, watched at every other
replica of every region (its own region's included). The change crosses by the region's push (a
signed POST to each peer's address, taken by one replica there, written to its store, nudged to the
others) or, failing that, by the peers' polls twice a second.

The same for API keys: a key created at one replica (`POST /keys`) until `GET /sessions` with its
secret answers 200 at each other replica (with regions, `GET /sessions/<no such id>` 404; its first
check there pays one scrypt), and revoked (`DELETE /keys/NAME`) until it answers 401 there (its
verified secret remembered, then forgotten).

Printed: the median, 95th percentile and maximum in milliseconds, over every (change, other replica).

    uv run python -m bench.runtime_propagation --rounds 40 --key-rounds 10
    uv run python -m bench.runtime_propagation --regions --replicas 2 --rounds 15 --key-rounds 5
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from tests.regions.stored_regions import stored_regions
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


def cap_at(client: httpx.Client, base_url: str) -> int:
    return int(client.get(f"{base_url}/capacity", headers=ADMIN).json()["values"]["sessions"]["value"])


def seen_by_each(watchers: list[str], shows: Callable[[str], bool], since: float) -> list[float | None]:
    """Seconds from `since` until each watcher `shows` the change (None: not within the deadline)."""
    times: dict[str, float | None] = {}
    while len(times) < len(watchers):
        for base_url in watchers:
            if base_url not in times and shows(base_url):
                times[base_url] = time.monotonic() - since
        if time.monotonic() - since > DEADLINE_SECONDS:
            times.update({u: None for u in watchers if u not in times})
        time.sleep(POLL_SECONDS)
    return [times[u] for u in watchers]


def measure(urls: list[str], rounds: int, seed: int, regions: bool = False) -> list[float | None]:
    """Each change at a replica in turn, until every other shows it: by the record's version within
    one region's store, by the value across regions (each region's store numbers its own record)."""
    pick = random.Random(seed)
    times: list[float | None] = []
    with httpx.Client(timeout=DEADLINE_SECONDS) as client:
        for n in range(rounds):
            time.sleep(pick.uniform(0.0, 1.0))  # any phase of the replicas' one-second re-read
            at = urls[n % len(urls)]
            value = 100 + n
            answer = client.patch(f"{at}/capacity", headers=ADMIN, json={"sessions": value})
            answer.raise_for_status()
            answered = time.monotonic()
            version = int(answer.json()["version"])
            shows: Callable[[str], bool] = ((lambda u: cap_at(client, u) == value) if regions  # noqa: B023
                                            else (lambda u: version_at(client, u) >= version))  # noqa: B023
            times += seen_by_each([u for u in urls if u != at], shows, answered)
    return times


def taken(client: httpx.Client, base_url: str, secret: str, regions: bool) -> bool:
    """Whether the replica takes the key. With regions, a session no one has (its 404 comes after the
    key's check): `GET /sessions` would ask every region, so it would time the slowest region."""
    path = "/sessions/no-such-session" if regions else "/sessions"
    answer = client.get(f"{base_url}{path}", headers={"Authorization": f"Bearer {secret}"})
    if answer.status_code not in (401, 404 if regions else 200):
        answer.raise_for_status()
    return answer.status_code != 401


def measure_keys(urls: list[str], rounds: int, seed: int,
                 regions: bool = False) -> tuple[list[float | None], list[float | None]]:
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
            secret = made.json()["secret"]
            created += seen_by_each(others, lambda u: taken(client, u, secret, regions),  # noqa: B023
                                    time.monotonic())
            time.sleep(pick.uniform(0.0, 1.0))
            client.delete(f"{at}/keys/{name}", headers=ADMIN).raise_for_status()
            revoked += seen_by_each(others, lambda u: not taken(client, u, secret, regions),  # noqa: B023
                                    time.monotonic())
    return created, revoked


@contextmanager
def regions(folder: Path, count: int) -> Iterator[list[str]]:
    """Every replica of three regions, each region on its own store, the regions' replicas interleaved
    (so the changes are made at each region in turn)."""
    with stored_regions(folder, ("eu", "us", "ap"), replicas=count,
                        extra={"DISPATCHER_ADMIN_KEYS": ADMIN_KEY, "BOT_CHANNEL_TOKEN": DEPLOYMENT_SECRET,
                               "LOG_LEVEL": "warning"}) as (found, _):
        time.sleep(2.0)  # every region has answered every other's poll (they poll twice a second)
        yield [replica.base_url for n in range(count) for region in found.values()
               for replica in region.replicas[n:n + 1]]


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
    parser.add_argument("--regions", action="store_true", help="three regions, each of --replicas replicas")
    args = parser.parse_args()
    setup = regions if args.regions else replicas
    with tempfile.TemporaryDirectory() as root, setup(Path(root), args.replicas) as urls:
        report("capacity", measure(urls, args.rounds, args.seed, regions=args.regions))
        created, revoked = measure_keys(urls, args.key_rounds, args.seed, regions=args.regions)
        report("key created", created)
        report("key revoked", revoked)


if __name__ == "__main__":
    main()
