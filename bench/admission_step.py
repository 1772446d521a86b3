"""The dispatcher's CPU for a start's admission with the replicas' store: the key's share and the
session cap taken one after the other (two round trips, as before) against both in one script.

    uv run --all-groups python -m bench.admission_step [--starts 3000] [--rounds 6]

One process, one redis-server (tests/support/redis_server.py, signed in as the AWS stack's store
user), the two ways alternating in rounds, `concurrency` starts at once; each start is admitted and
its launch lands (as a start's admission does, less the provider). CPU is this process's own time
per start, not the store's. docs/performance.md has the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from dispatcher.sessions.admission import Admission
from dispatcher.sessions.key_share import KeyShare
from dispatcher.settings import Settings
from dispatcher.store.client import DEFAULT_PREFIX, StoreSettings
from dispatcher.store.redis_coordination import RedisCoordination
from tests.support.redis_server import RedisServer, redis_server

CAP = 10**9


async def burst(server: RedisServer, together: bool, starts: int, concurrency: int) -> float:
    """CPU ms per start of `starts` admissions, `concurrency` at once."""
    settings = Settings.from_env({"MAX_CONCURRENT_SESSIONS": str(CAP), "KEY_SESSION_SHARE": "0.5"})
    store = StoreSettings(url=server.url, password=server.password, replica_id="bench",
                          prefix=f"{DEFAULT_PREFIX}bench-{secrets.token_hex(4)}:", message_secret=server.message_secret,
                          timeout_seconds=5.0)
    coordination = RedisCoordination(store)

    async def no_machine(_: str) -> None:
        return None

    async def count() -> int:
        return 0

    share = KeyShare(settings, coordination.key_sessions, no_machine, api_keys=2)
    cap = Admission(CAP, count, launches=coordination.launches(keep_seconds=10.0), refresh_seconds=3600.0)
    gate = asyncio.Semaphore(concurrency)

    async def start(n: int) -> None:
        caller, session_id = f"caller-{n % 20}", f"s-{n}"
        async with gate:
            if together:
                admitted = share.slot_with_cap(caller, session_id, internal=False, cap=cap.slot)
            else:
                admitted = one_then_other(share, cap, caller, session_id)
            async with admitted:
                pass

    try:
        await asyncio.gather(*(start(n) for n in range(concurrency)))  # first uses: connections, scripts
        began = time.process_time()
        await asyncio.gather(*(start(n) for n in range(concurrency, concurrency + starts)))
        return (time.process_time() - began) * 1000 / starts
    finally:
        await cap.aclose()
        await coordination.aclose()


@contextlib.asynccontextmanager
async def one_then_other(share: KeyShare, cap: Admission, caller: str, session_id: str) -> AsyncIterator[None]:
    async with share.slot(caller, session_id, internal=False), cap.slot():
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    figures: dict[str, list[float]] = {"one after the other": [], "in one script": []}
    with tempfile.TemporaryDirectory() as folder, redis_server(Path(folder)) as server:
        for n in range(args.rounds):
            ways = [False, True] if n % 2 == 0 else [True, False]
            for together in ways:
                ms = asyncio.run(burst(server, together, args.starts, args.concurrency))
                figures["in one script" if together else "one after the other"].append(ms)
                print(f"round {n + 1}: {'in one script' if together else 'one after the other'}: {ms:.3f} ms")
    for way, values in figures.items():
        print(f"{way:22} {statistics.median(values):.3f} ms a start [{min(values):.3f}–{max(values):.3f}]")


if __name__ == "__main__":
    main()
