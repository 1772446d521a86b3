"""What `GET /sessions` costs with 10,000 sessions in a real redis-server: a page's time, unfiltered
and filtered, as a client key and as an admin key, and the store's memory for the index.

Three processes: redis-server (signed in as the AWS stack's store user, tests/support/redis_server.py),
one `python -m dispatcher` (the system under test, with `REDIS_URL`) and this one, the load
generator. The sessions are written into the store first with the dispatcher's own index
(`StoreSessionIndex.opened` and `closed`: the script and the sealed records a start writes), spread
over `--keys` key names, one in 17 failed and half of the rest ended; 10,000 real starts would
measure the bots, not the listing. Then each query runs `--rounds` times, one at a time, and the
median, 95th percentile and maximum are printed in milliseconds, with the store's `used_memory`
before and after the sessions were written.

    uv run python -m bench.sessions_list --sessions 10000 --rounds 200
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from dispatcher.api.auth import named_caller_id
from dispatcher.store.client import Store, StoreSettings
from dispatcher.store.message_seal import MessageSeal
from dispatcher.store.session_index import StoreSessionIndex
from tests.replicas.conftest import replica_env
from tests.support.processes import run_dispatcher
from tests.support.redis_server import RedisServer, redis_server

ADMIN_KEY = "bench-admin-key-0123456789abcdef"
TOKEN = "bench-sessions-list-deployment-secret-0123456789"


def client_key(n: int) -> str:
    return f"bench-client-key-{n:04d}-0123456789"


async def seed(server: RedisServer, sessions: int, keys: int) -> None:
    store = Store(StoreSettings(url=server.url, password=server.password, replica_id="bench",
                                message_secret=server.message_secret, timeout_seconds=10.0))
    index = StoreSessionIndex(store, MessageSeal(server.message_secret))
    start = time.time() - sessions  # one a second, the newest now
    try:
        for n in range(sessions):
            session_id = f"{n:024x}"
            name = f"team-{n % keys}"
            await index.opened({"session_id": session_id, "caller": named_caller_id(name), "key": name,
                                "created": start + n, "release": "stable" if n % 10 else "next", "region": None,
                                "transport": "webrtc"})
            if n % 17 == 0:
                await index.closed(session_id, {"status": "failed", "ended": start + n + 1, "error": "bot_error"},
                                   failure=True)
            elif n % 2 == 0:
                await index.closed(session_id, {"status": "ended", "ended": start + n + 1, "error": None},
                                   failure=False)
    finally:
        await store.aclose()


def timed(client: httpx.Client, url: str, key: str, rounds: int) -> tuple[list[float], int]:
    took, shown = [], 0
    for _ in range(rounds):
        began = time.perf_counter()
        answer = client.get(url, headers={"Authorization": f"Bearer {key}"})
        took.append((time.perf_counter() - began) * 1000)
        answer.raise_for_status()
        shown = len(answer.json()["sessions"])
    return took, shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=20, help="key names the sessions are spread over")
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, redis_server(Path(workdir)) as server:
        admin = server.admin()
        before = int(admin.info("memory")["used_memory"])
        asyncio.run(seed(server, args.sessions, args.keys))
        after = int(admin.info("memory")["used_memory"])
        keys = ",".join(f"team-{n}:{client_key(n)}" for n in range(args.keys))
        env = replica_env(server, workdir, "bench", DISPATCHER_API_KEYS=keys, DISPATCHER_ADMIN_KEYS=ADMIN_KEY,
                          BOT_CHANNEL_TOKEN=TOKEN, RESERVE_MAX_IDLE="0", READ_RATE_PER_KEY="100000",
                          READ_BURST_PER_KEY="100000")
        queries = (("a key's newest 100", "/sessions?limit=100", client_key(3)),
                   ("a key's failed (1 in 17)", "/sessions?failed=true&limit=100", client_key(3)),
                   ("admin: every key's newest 100", "/sessions?limit=100", ADMIN_KEY),
                   ("admin: failed, release next", "/sessions?failed=true&release=next&limit=100", ADMIN_KEY),
                   ("admin: one key's failed", "/sessions?key=team-3&failed=true&limit=100", ADMIN_KEY))
        with run_dispatcher(Path(workdir), env) as dispatcher, httpx.Client(timeout=30) as client:
            print(f"{args.sessions} sessions over {args.keys} key names; store used_memory "
                  f"{(after - before) / 1e6:.1f} MB more ({(after - before) / args.sessions:.0f} bytes a session)")
            print(f"{'query':34} {'shown':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
            for label, path, key in queries:
                took, shown = timed(client, dispatcher.base_url + path, key, args.rounds)
                took.sort()
                p95 = took[min(len(took) - 1, int(len(took) * 0.95))]
                print(f"{label:34} {shown:5d} {statistics.median(took):8.1f} {p95:8.1f} {took[-1]:8.1f}")


if __name__ == "__main__":
    main()
