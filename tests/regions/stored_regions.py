"""Regional dispatchers as real processes on loopback, each region with its own redis-server (signed
in as the AWS stack's store user) and one or more replicas on it: shared by the runtime settings'
regions tests and bench/runtime_propagation.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.regions.support import region_env
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.redis_server import RedisServer, redis_server

ADMIN_KEY = "vf-runtime-regions-admin-5d1c3e9a70"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@dataclass
class Region:
    name: str
    store: RedisServer
    env: dict[str, str]
    folder: Path
    replicas: list[DispatcherProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Its `REGIONS` address: its first replica's (a front door would spread them)."""
        return self.replicas[0].base_url


@contextmanager
def stored_regions(folder: Path, names: tuple[str, ...], replicas: int = 1,
                   extra: dict[str, str] | None = None) -> Iterator[tuple[dict[str, Region], ExitStack]]:
    """Each region's store and replicas; the stack they run in, to start a replica again after a kill
    (`start_replica`)."""
    ports = {name: free_port() for name in names}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    with ExitStack() as stack:
        regions: dict[str, Region] = {}
        for name in names:
            (folder / name).mkdir()
            store = stack.enter_context(redis_server(folder / name))
            env = {**region_env(name, urls), **store.env, "DISPATCHER_ADMIN_KEYS": ADMIN_KEY,
                   "REDIS_LEASE_SECONDS": "60", "LOG_LEVEL": "info", **(extra or {})}
            regions[name] = Region(name, store, env, folder / name)
            for n in range(replicas):
                start_replica(stack, regions[name], n, port=ports[name] if n == 0 else None)
        yield regions, stack


def start_replica(stack: ExitStack, region: Region, n: int, port: int | None = None, again: str = "") -> None:
    """Replica `n` of `region` (replica 0 at the region's address), kept in `region.replicas[n]`."""
    env = {**region.env, "REPLICA_ID": f"{region.name}-{n}"}
    running = stack.enter_context(run_dispatcher(region.folder, env, port=port,
                                                 log_name=f"{region.name}-{n}{again}.log"))
    if n < len(region.replicas):
        region.replicas[n] = running
    else:
        region.replicas.append(running)
