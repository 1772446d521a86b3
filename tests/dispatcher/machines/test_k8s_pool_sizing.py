"""The reserve's planner sizing a pool the platform keeps warm (agent-sandbox's SandboxWarmPool), through the
real provider against the strict fake API server with agent-sandbox's controller: the floor written at the
first tick, a burst's demand at once, a fall only after the scale-down window, a refused write logged once
and retried with backoff, the starts counted as demand; across replicas (a real redis-server between them)
only the planning lease's holder writes it, and a holder back from a stall writes its size again at once."""

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
from dispatcher.reserve.pool_sizing import REWRITE_SECONDS, PoolSizing
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
           **settings: str) -> PoolSizing:
    reserve_env = {"RESERVE_FORECAST": "0", "RESERVE_BURST": "0", "RESERVE_BUFFER": "0", **settings}
    coordination = coordination or LocalCoordination()
    channels = BotChannels(BotCredentials("d" * 40), claims=coordination.claims, identity=machines.identity)
    metrics = Metrics(machines.name)
    return PoolSizing(ReserveSettings.from_env(reserve_env, "k8s"), PlannerSettings.from_env(reserve_env), machines,
                      channels, ReserveMetrics(metrics.registry, metrics.provider), coordination=coordination,
                      wall=clock)


def size(fake: FakeAgentSandbox) -> int:
    return int(fake.warm_pools[POOL]["spec"]["replicas"])


async def starts(pool: PoolSizing, clock: Clock, count: int, every: float) -> None:
    """`count` starts, `every` seconds apart, as the store records them at any replica; a tick a second."""
    for _ in range(count):
        await pool.planning._pool.arrived(clock.now, cold=False)
        clock.now += every
        await pool.tick()


async def test_the_first_tick_sizes_the_pool_to_the_reserves_floor(
        machines: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    add_pool(fake_k8s_sandbox, 0)
    pool = sizing(machines, Clock(), RESERVE_MIN_IDLE="2", RESERVE_MAX_IDLE="5")
    await pool.tick()
    assert size(fake_k8s_sandbox) == 2 and pool.written == 2
    [patch] = fake_k8s_sandbox.calls_to("PATCH", "/scale")
    assert patch.json() == {"spec": {"replicas": 2}}
    await pool.tick()  # the same target: nothing written again until REWRITE_SECONDS
    assert len(fake_k8s_sandbox.calls_to("PATCH", "/scale")) == 1


async def test_reserve_max_idle_zero_empties_the_pool(machines: SandboxClaims,
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
    pool = sizing(machines, clock, RESERVE_MIN_IDLE="1", RESERVE_MAX_IDLE="20", RESERVE_SCALEDOWN_SECONDS="120",
                  RESERVE_COLD_START_SECONDS="10")
    await pool.tick()
    assert size(fake) == 1
    await starts(pool, clock, 40, every=0.5)  # two starts a second, over a 10 s lead
    peak = size(fake)
    assert 10 < peak <= 20  # about 20 starts in a lead time, at the service level, capped by RESERVE_MAX_IDLE

    for _ in range(60):  # a quiet minute: the target falls, the size holds for the window
        clock.now += 1.0
        await pool.tick()
    assert pool.target is not None and pool.target < peak and size(fake) == peak

    targets: list[int] = []
    for _ in range(240):
        clock.now += 1.0
        await pool.tick()
        assert pool.target is not None
        targets.append(pool.target)
    # The window forgot the peak: the size is the highest target of its last 120 s.
    assert size(fake) == max(targets[-121:]) < peak


async def test_a_refused_write_is_logged_once_and_retried_with_backoff(
        machines: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox, caplog: pytest.LogCaptureFixture) -> None:
    fake = fake_k8s_sandbox
    clock = Clock()
    pool = sizing(machines, clock, RESERVE_MIN_IDLE="2", RESERVE_MAX_IDLE="5")
    with caplog.at_level(logging.WARNING, logger="dispatcher.reserve.pool"):
        for _ in range(10):  # no pool yet: 404 at each try
            await pool.tick()
            clock.now += 1.0
    tries = fake.calls_to("PATCH", "/scale")
    assert 2 <= len(tries) <= 4  # at 0, 1, 3 and 7 s: backing off, not once a tick
    [warning] = [r.getMessage() for r in caplog.records]
    assert "could not be sized to 2" in warning and POOL in warning
    assert pool.written is None

    add_pool(fake, 0)
    for _ in range(20):
        clock.now += 1.0
        await pool.tick()
    assert size(fake) == 2 and pool.written == 2


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


async def test_the_size_is_written_again_after_rewrite_seconds_and_by_a_new_lease_holder(
        machines: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    add_pool(fake, 0)
    clock = Clock()
    coordination = LocalCoordination()
    pool = sizing(machines, clock, coordination, RESERVE_MIN_IDLE="2", RESERVE_MAX_IDLE="5")
    await pool.tick()
    with fake._pods_lock:  # a `kubectl scale` by hand
        fake.warm_pools[POOL]["spec"]["replicas"] = 4
    clock.now += REWRITE_SECONDS + 1
    await pool.tick()
    assert size(fake) == 2

    await pool.drain()  # the lease goes; the next holder writes the size from scratch
    after = sizing(machines, clock, coordination, RESERVE_MIN_IDLE="3", RESERVE_MAX_IDLE="5")
    clock.now += 1
    await after.tick()
    assert size(fake) == 3


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


async def test_only_the_lease_holder_sizes_the_pool_and_a_holder_back_from_a_stall_writes_again(
        coordinations: list[RedisCoordination], machines: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    add_pool(fake, 0)
    # The replicas' settings differ only so that the size says which one wrote it.
    a = sizing(machines, time.time, coordinations[0], RESERVE_MIN_IDLE="2", RESERVE_MAX_IDLE="5")
    b = sizing(machines, time.time, coordinations[1], RESERVE_MIN_IDLE="3", RESERVE_MAX_IDLE="5")
    await a.tick()
    assert size(fake) == 2 and a.planning.holding
    await b.tick()
    assert not b.planning.holding and size(fake) == 2 and len(fake.calls_to("PATCH", "/scale")) == 1

    deadline = time.monotonic() + 60  # a stalls; b takes the lease once it lapses
    while size(fake) != 3:
        assert time.monotonic() < deadline, "b never took the planning lease over"
        await asyncio.sleep(0.5)
        await b.tick()
    await b.drain()

    await a.tick()  # back after its stall: the lease is free, and its size is written at once
    assert a.planning.holding and size(fake) == 2
