"""What one timeline append costs the store (dispatcher/store/timelines.py), under and past the 64-event
bound, with this release's two lists and with the previous release's one list trimmed to its newest 64
(tests/support/previous_timeline.py), on a redis-server with one replica attached, appended as
the AWS stack's store user.

For each event size (its sealed form ~300 B, ~1.5 KB, just under MAX_EVENT_BYTES) a fresh session
takes its `requested` then 63 events (under the bound), then `--past` more (past it). Printed per
append: the server's time in the script (INFO commandstats, `cmdstat_evalsha`) and the bytes it
sent to the replica (`master_repl_offset`: the same commands go to the AOF); then one read's time.

    uv run --all-groups python -m bench.timeline_append --past 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis

from dispatcher.store.client import DEFAULT_PREFIX, Store, StoreSettings
from dispatcher.store.message_seal import MessageSeal
from dispatcher.store.timelines import KEEP_SECONDS, MAX_EVENT_BYTES, MAX_EVENTS, StoreTimelines
from tests.support.ports import free_port
from tests.support.previous_timeline import PREVIOUS_APPEND
from tests.support.redis_server import RedisServer, redis_server

SEALED_OVERHEAD = 65  # the record MAC (64 hex) and its dot
SIZES = {"300 B": 300, "1.5 KB": 1536, "16 KB": MAX_EVENT_BYTES}


def event(n: int, sealed_bytes: int) -> dict[str, Any]:
    shape = {"event": "report" if n else "requested", "at": 1.7e9 + n, "n": n, "text": ""}
    pad = sealed_bytes - SEALED_OVERHEAD - len(json.dumps(shape, separators=(",", ":")))
    return {**shape, "text": "x" * pad}


class Figures:
    def __init__(self, admin: redis.Redis) -> None:
        self._admin = admin
        self._at = self._now()

    def _now(self) -> tuple[int, int, int]:
        stat = self._admin.info("commandstats").get("cmdstat_evalsha", {"calls": 0, "usec": 0})
        return int(stat["calls"]), int(stat["usec"]), int(self._admin.info("replication")["master_repl_offset"])

    def since(self) -> tuple[float, float]:
        """Microseconds of script and bytes replicated per script call since the last one."""
        now = self._now()
        calls, usec, sent = (a - b for a, b in zip(now, self._at, strict=True))
        self._at = now
        return usec / calls, sent / calls


class Previous:
    """The previous release's append: one list, trimmed to its newest past the bound."""

    def __init__(self, store: Store, seal: MessageSeal) -> None:
        self._store, self._seal = store, seal
        self._script = store.redis.register_script(PREVIOUS_APPEND)

    async def append(self, session_id: str, one: dict[str, Any]) -> None:
        key = self._store.key("timeline", session_id)
        sealed = self._seal.seal_record(key, json.dumps(one, separators=(",", ":")).encode()).decode()
        opens = "1" if one["event"] == "requested" else "0"
        args: list[str | int] = [sealed, MAX_EVENTS, int(KEEP_SECONDS * 1000), opens]
        await self._store.call(lambda: self._script(keys=[key], args=args))


def with_replica(server: RedisServer, work: Path) -> subprocess.Popen[bytes]:
    work.mkdir()
    port = free_port()
    replica = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(work), "--replicaof", "127.0.0.1", str(server.port),
                                "--masteruser", "admin", "--masterauth", str(urlsplit(server.admin_url).password)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with server.admin() as admin:
        deadline = time.monotonic() + 30
        while "slave0" not in admin.info("replication") or "online" not in str(admin.info("replication")["slave0"]):
            if time.monotonic() > deadline:
                raise RuntimeError("the replica did not attach")
            time.sleep(0.1)
    return replica


async def measured(server: RedisServer, past: int) -> list[str]:
    settings = StoreSettings(url=server.url, password=server.password, replica_id="bench",
                             prefix=f"{DEFAULT_PREFIX}bench:", timeout_seconds=10.0,
                             message_secret=server.message_secret)
    store, seal = Store(settings), MessageSeal(server.message_secret)
    rows = []
    try:
        current = StoreTimelines(store, seal)
        for name, size in SIZES.items():
            for release, timelines in (("previous", Previous(store, seal)), ("this", current)):
                session = f"{release}-{name}"
                await timelines.append(session, event(0, size))  # loads the script: not counted
                with server.admin() as admin:
                    figures = Figures(admin)
                    for n in range(1, MAX_EVENTS):
                        await timelines.append(session, event(n, size))
                    under = figures.since()
                    for n in range(MAX_EVENTS, MAX_EVENTS + past):
                        await timelines.append(session, event(n, size))
                    over = figures.since()
                    reads = 20
                    for _ in range(reads):
                        assert len(await current.read(session)) >= MAX_EVENTS
                    read_usec, _ = figures.since()
                rows.append(f"| {name} | {release} | {under[0]:.1f} µs, {under[1] / 1024:.1f} KiB "
                            f"| {over[0]:.1f} µs, {over[1] / 1024:.1f} KiB | {read_usec:.0f} µs |")
    finally:
        await store.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--past", type=int, default=500, help="appends measured past the bound, per size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, redis_server(Path(work)) as server:
        replica = with_replica(server, Path(work) / "replica")
        try:
            rows = asyncio.run(measured(server, args.past))
        finally:
            replica.kill()
            replica.wait(10)
    print("| event (sealed) | release | per append under the bound: server time, replicated "
          "| past the bound | one read (server) |\n|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
