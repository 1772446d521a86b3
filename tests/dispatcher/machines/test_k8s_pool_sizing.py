"""The reserve's planner sizing a pool the platform keeps warm (agent-sandbox's SandboxWarmPool), through the
real provider against the strict fake API server with agent-sandbox's controller: the floor written at the
first tick, a burst's demand at once, a fall only after the scale-down window and never while a claim is
being bound, a refused call logged once and retried with backoff, the starts counted as demand, a hand's
size undone; across replicas (a real redis-server between them) only a lease the store grants writes, a
new holder keeps the size it finds for a window, and nothing is written while the store is away."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest

from dispatcher.channel.bots import BotChannels
from dispatcher.channel.credentials import BotCredentials
from dispatcher.machines.k8s.sandbox import SandboxClaims
from dispatcher.observability.metrics import Metrics
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.reserve.planner import PlannerSettings
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.pool_sizing import FALL_RETRY_SECONDS, REREAD_SECONDS, PoolSizing
from dispatcher.store.client import StoreSettings
from dispatcher.store.coordination import Coordination
from dispatcher.store.local import LocalCoordination
from dispatcher.store.redis_coordination import RedisCoordination
from tests.dispatcher.machines.test_k8s import spec
from tests.dispatcher.machines.test_k8s_pool_replicas import store_prefix
from tests.dispatcher.machines.test_k8s_sandbox import add_pool, env
from tests.fakes.k8s_sandbox import POOL, FakeAgentSandbox
from tests.support.redis_server import RedisServer

START = 1_800_000_000.0  # an epoch: the forecast's buckets are times of day
LEASE_SECONDS = 5.0  # long enough that a busy machine does not lose it between two ticks


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def machines(fake_k8s_sandbox: FakeAgentSandbox) -> AsyncIterator[SandboxClaims]:
    claims = SandboxClaims.from_env(env(fake_k8s_sandbox))
    yield claims
    await claims.aclose()


def sizing(machines: SandboxClaims, clock: Callable[[], float], coordination: Coordination | None = None,
           window: float = 120.0, **settings: str) -> PoolSizing:
    reserve_env = {"RESERVE_FORECAST": "0", "RESERVE_BURST": "0", "RESERVE_BUFFER": "0", **settings}
    coordination = coordination or LocalCoordination()
    channels = BotChannels(BotCredentials("d" * 40), claims=coordination.claims, identity=machines.identity)
    metrics = Metrics(machines.name)
    return PoolSizing(ReserveSettings.from_env(reserve_env, "k8s"), PlannerSettings.from_env(reserve_env), machines,
                      channels, ReserveMetrics(metrics.registry, metrics.provider), coordination=coordination,
                      scaledown_seconds=window, wall=clock)


def size(fake: FakeAgentSandbox) -> int:
    return int(fake.warm_pools[POOL]["spec"]["replicas"])


def scale_calls(fake: FakeAgentSandbox, method: str) -> int:
    return len(fake.calls_to(method, f"/sandboxwarmpools/{POOL}/scale"))


async def ticks(pool: PoolSizing, clock: Clock, seconds: int) -> list[int]:
    """A tick a second for `seconds`; the planner's targets."""
    targets = []
    for _ in range(seconds):
        clock.now += 1.0
        await pool.tick()
        assert pool.target is not None
        targets.append(pool.target)
    return targets


async def starts(pool: PoolSizing, clock: Clock, count: int, every: float) -> None:
    """`count` starts, `every` seconds apart, as the store records them at any replica; a tick each."""
    for _ in range(count):
        await pool.planning._pool.arrived(clock.now, cold=False)
        clock.now += every
        await pool.tick()


async def test_the_first_tick_reads_the_pool_and_raises_it_to_the_reserves_floor(
        machines: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    add_pool(fake, 0)
    clock = Clock()
    pool = sizing(machines, clock, RESERVE_MIN_IDLE="2", RESERVE_MAX_IDLE="5")
    await pool.tick()
    assert size(fake) == 2 and pool.known == 2
    [patch] = fake.calls_to("PATCH", "/scale")
    assert patch.json() == {"spec": {"replicas": 2}}
    await ticks(pool, clock, 10)  # the same target: nothing written, nothing read until REREAD_SECONDS
    assert scale_calls(fake, "PATCH") == 1 and scale_calls(fake, "GET") == 1


async def test_reserve_max_idle_zero_empties_the_pool_at_once(machines: SandboxClaims,
                                                              fake_k8s_sandbox: FakeAgentSandbox) -> None:
    add_pool(fake_k8s_sandbox, 3)
    pool = sizing(machines, Clock(), RESERVE_MAX_IDLE="0")
    await pool.tick()
    assert size(fake_k8s_sandbox) == 0


async def test_demand_raises_the_size_at_once_and_it_falls_only_after_the_scaledown_window(
        machines: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    add_pool(fake, 0)
    clock = Clock()
    pool = sizing(machines, clock, window=120.0, RESERVE_MIN_IDLE="1", RESERVE_MAX_IDLE="20",
                  RESERVE_COLD_START_SECONDS="10")
    await pool.tick()
    assert size(fake) == 1
    await starts(pool, clock, 40, every=0.5)  # two starts a second, over a 10 s lead
    peak = size(fake)
    assert 10 < peak <= 20  # about 20 starts in a lead time, at the service level, capped by RESERVE_MAX_IDLE

    await ticks(pool, clock, 60)  # a quiet minute: the target falls, the size holds for the window
    assert pool.target is not None and pool.target < peak and size(fake) == peak

    targets = await ticks(pool, clock, 240)
    # The window forgot the peak: the size fell, never below the window's highest target.
    assert max(targets[-121:]) <= size(fake) < peak


async def test_a_fall_waits_while_a_claim_is_being_bound(machines: SandboxClaims,
                                                         fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    add_pool(fake, 0)  # no warm pod: the claim goes cold, and no kubelet here runs its pod
    clock = Clock()
    pool = sizing(machines, clock, window=30.0, RESERVE_MAX_IDLE="5")
    with fake._pods_lock:
        fake.warm_pools[POOL]["spec"]["replicas"] = 3  # by hand, before the dispatcher came
    await pool.tick()
    assert size(fake) == 3  # kept for a window: a new holder lowers nothing at once
    session = spec()
    await machines.launch(session)  # a claim not yet bound
    await ticks(pool, clock, 40)
    assert size(fake) == 3 and scale_calls(fake, "PATCH") == 0
    await machines.stop(session.session_id)
    await ticks(pool, clock, int(FALL_RETRY_SECONDS) + 1)
    assert size(fake) == 1 and pool.known == 1  # RESERVE_MIN_IDLE's default, once no claim is being bound


async def test_a_refused_call_is_logged_once_and_retried_with_backoff(
        machines: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox, caplog: pytest.LogCaptureFixture) -> None:
    fake = fake_k8s_sandbox
    clock = Clock()
    pool = sizing(machines, clock, RESERVE_MIN_IDLE="2", RESERVE_MAX_IDLE="5")
    with caplog.at_level(logging.WARNING, logger="dispatcher.reserve.pool"):
        await pool.tick()
        await ticks(pool, clock, 9)  # no pool yet: 404 at each try
    assert 2 <= scale_calls(fake, "GET") <= 4  # at 0, 1, 3 and 7 s: backing off, not once a tick
    [warning] = [r.getMessage() for r in caplog.records]
    assert "could not be sized" in warning and POOL in warning
    assert pool.known is None

    add_pool(fake, 0)
    await ticks(pool, clock, 20)
    assert size(fake) == 2 and pool.known == 2


async def test_a_size_set_by_hand_is_undone_at_the_next_read(machines: SandboxClaims,
                                                             fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    add_pool(fake, 0)
    clock = Clock()
    pool = sizing(machines, clock, window=30.0, RESERVE_MIN_IDLE="2", RESERVE_MAX_IDLE="5")
    await pool.tick()
    with fake._pods_lock:  # a `kubectl scale` by hand
        fake.warm_pools[POOL]["spec"]["replicas"] = 4
    await ticks(pool, clock, int(REREAD_SECONDS) + 1)
    assert size(fake) == 2


async def test_a_start_goes_to_the_provider_and_counts_as_demand(
        machines: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    add_pool(fake_k8s_sandbox, 0)
    coordination = LocalCoordination()
    pool = sizing(machines, Clock(), coordination, RESERVE_MAX_IDLE="5")
    result = await pool.launch(spec(session_id="s1"))
    assert result.created and result.machine.machine_id == "vf-s1" and "vf-s1" in fake_k8s_sandbox.claims
    await pool.launch(spec(session_id="s2", counted_elsewhere=True))  # a start another region counted
    assert "vf-s2" in fake_k8s_sandbox.claims
    await pool.aclose()  # the arrivals' records are written, or given up, before this returns
    assert [cold for _, cold in await coordination.pool.arrivals()] == [False]


@pytest.fixture
async def coordinations(server: RedisServer, request: pytest.FixtureRequest) -> AsyncIterator[list[RedisCoordination]]:
    prefix = store_prefix(request)
    both = [RedisCoordination(StoreSettings(url=server.url, password=server.password, replica_id=name, prefix=prefix,
                                            message_secret=server.message_secret, timeout_seconds=5.0,
                                            lease_seconds=LEASE_SECONDS))
            for name in ("r-a", "r-b")]
    yield both
    for coordination in both:
        await coordination.aclose()


async def test_only_the_lease_holder_sizes_the_pool_and_a_new_holder_keeps_what_it_finds(
        coordinations: list[RedisCoordination], machines: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    add_pool(fake, 0)
    # The replicas' settings differ only so that the size says which one wrote it.
    a = sizing(machines, time.time, coordinations[0], RESERVE_MIN_IDLE="3", RESERVE_MAX_IDLE="5")
    b = sizing(machines, time.time, coordinations[1], RESERVE_MIN_IDLE="2", RESERVE_MAX_IDLE="5")
    await a.tick()
    assert size(fake) == 3 and a.known == 3
    await b.tick()
    assert b.known is None and size(fake) == 3 and scale_calls(fake, "PATCH") == 1

    deadline = time.monotonic() + 60  # a stalls; b takes the lease once it lapses
    while b.known is None:
        assert time.monotonic() < deadline, "b never took the planning lease over"
        await asyncio.sleep(0.5)
        await b.tick()
    assert size(fake) == 3 and scale_calls(fake, "PATCH") == 1  # found 3: kept a window, not lowered to 2
    with fake._pods_lock:
        fake.warm_pools[POOL]["spec"]["replicas"] = 4  # as if b had raised it
    await b.drain()

    await a.tick()  # back after its stall: its own size stands, and nothing is written until it reads the pool
    assert a.planning.holding and size(fake) == 4 and scale_calls(fake, "PATCH") == 1


async def test_nothing_is_written_while_the_store_does_not_answer(
        machines: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox, server: RedisServer, unused_tcp_port: int) -> None:
    fake = fake_k8s_sandbox
    add_pool(fake, 0)
    silent = RedisCoordination(StoreSettings(url=f"redis://127.0.0.1:{unused_tcp_port}", password=server.password,
                                             replica_id="r-silent", message_secret=server.message_secret,
                                             timeout_seconds=1.0, lease_seconds=LEASE_SECONDS))
    try:
        pool = sizing(machines, time.time, silent, RESERVE_MIN_IDLE="2", RESERVE_MAX_IDLE="5")
        for _ in range(3):
            await pool.tick()
        assert pool.planning.holding  # its stand-in lease plans on (the reserve's way)...
        assert scale_calls(fake, "GET") == 0 and scale_calls(fake, "PATCH") == 0  # ...but sizes nothing shared
    finally:
        await silent.aclose()
