"""What `voicefleet usage --since 30d` costs over many sessions' rollups in a real redis-server: the
time of `GET /usage` (what the command calls) by key, by day and by model, and the store's memory
for the sums, against the number of sessions they hold.

Three processes: redis-server (signed in as the AWS stack's store user, tests/support/redis_server.py),
one `python -m dispatcher` (with `REDIS_URL`) and this one. The sessions are added first with the
dispatcher's own rollups (`StoreRollups.add`: the script each ended session runs), spread over 30
days, `--keys` key names, 3 releases and 4 service models each; a real call per session would
measure the bots. Then each query runs `--rounds` times, one at a time: median, 95th percentile and
maximum in milliseconds, and the store's `used_memory` before and after.

    uv run python -m bench.usage_rollups --sessions 100000 --rounds 100
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from dispatcher.store.client import Store, StoreSettings
from dispatcher.usage.rollups import Amount, SessionUse, StoreRollups
from tests.replicas.conftest import replica_env
from tests.support.processes import run_dispatcher
from tests.support.redis_server import RedisServer, redis_server

ADMIN_KEY = "bench-admin-key-0123456789abcdef"
MODELS = ("llm:gpt-4o-mini", "tts:tts-1", "stt:nova-3", "llm:gpt-4o")
CONCURRENCY = 64


def use(n: int, keys: int, today: datetime, pick: random.Random) -> SessionUse:
    model = pick.choice(MODELS)
    amounts = (Amount("", "sessions", 1.0), Amount("", "seconds", 120.0 + n % 60), Amount("", "machine_usd", 0.002),
               Amount(model, "usd", 0.0004), Amount(model, "prompt_tokens", 2000.0),
               Amount(MODELS[1], "characters", 600.0), Amount(MODELS[2], "unpriced", 1.0))
    day = (today - timedelta(days=pick.randrange(30))).date()
    return SessionUse(f"{n:024x}", day, f"team-{pick.randrange(keys)}", pick.choice(("stable", "next", "canary")),
                      amounts)


async def seed(server: RedisServer, sessions: int, keys: int) -> float:
    store = Store(StoreSettings(url=server.url, password=server.password, replica_id="bench",
                                message_secret=server.message_secret, timeout_seconds=10.0))
    rollups, today, pick = StoreRollups(store, keep_days=400), datetime.now(UTC), random.Random(7)
    began = time.perf_counter()
    try:
        for first in range(0, sessions, CONCURRENCY):
            await asyncio.gather(*(rollups.add(use(n, keys, today, pick))
                                   for n in range(first, min(sessions, first + CONCURRENCY))))
    finally:
        await store.aclose()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=40, help="key names the sessions are spread over")
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, redis_server(Path(workdir)) as server:
        admin = server.admin()
        before = int(admin.info("memory")["used_memory"])
        seconds = asyncio.run(seed(server, args.sessions, args.keys))
        after = int(admin.info("memory")["used_memory"])
        markers = len(admin.keys("{voicefleet}:usage:counted:*"))
        days = admin.keys("{voicefleet}:usage:2*")
        fields = sum(admin.hlen(day) for day in days)
        sums_bytes = sum(int(admin.memory_usage(day) or 0) for day in days)
        env = replica_env(server, workdir, "bench", DISPATCHER_ADMIN_KEYS=ADMIN_KEY, RESERVE_MAX_IDLE="0",
                          READ_RATE_PER_KEY="100000", READ_BURST_PER_KEY="100000")
        with run_dispatcher(Path(workdir), env) as dispatcher, httpx.Client(timeout=30) as client:
            print(f"{args.sessions} sessions over 30 days, {args.keys} keys: added in {seconds:.1f} s "
                  f"({args.sessions / seconds:.0f}/s, {CONCURRENCY} at once); {len(days)} day hashes, {fields} fields; "
                  f"the sums {sums_bytes / 1e6:.2f} MB; store used_memory {(after - before) / 1e6:.1f} MB more in all, "
                  f"the rest the {markers} per-session markers (kept 3 days)")
            print(f"{'query':28} {'rows':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
            for label, query in (("usage --since 30d (by key)", "?since=30d"), ("--by day", "?since=30d&by=day"),
                                 ("--by model", "?since=30d&by=model"), ("--since 400d", "?since=400d")):
                took, rows = [], 0
                for _ in range(args.rounds):
                    start = time.perf_counter()
                    answer = client.get(f"{dispatcher.base_url}/usage{query}",
                                        headers={"Authorization": f"Bearer {ADMIN_KEY}"})
                    took.append((time.perf_counter() - start) * 1000)
                    answer.raise_for_status()
                    rows = len(answer.json()["rows"])
                took.sort()
                p95 = took[min(len(took) - 1, int(len(took) * 0.95))]
                print(f"{label:28} {rows:5d} {statistics.median(took):8.1f} {p95:8.1f} {took[-1]:8.1f}")


if __name__ == "__main__":
    main()
