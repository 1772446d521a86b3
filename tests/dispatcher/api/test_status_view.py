"""GET /status's counts where a store is shared (a real redis-server, two replicas) and the provider
has a frozen tier (Fly's, against the Fly fake): the reserve by state, release, replica and region,
priced by tier, and counted once per FRESH_SECONDS however often it is asked."""

from __future__ import annotations

import pytest

from dispatcher.api.status_view import FRESH_SECONDS, RETIRING, StatusView
from dispatcher.channel.bots import BotChannels
from dispatcher.channel.identity import Unverified
from dispatcher.machines.fly.frozen import FlyFrozenMachines
from dispatcher.machines.fly.provider import FlySettings
from dispatcher.observability.activity import Activity
from dispatcher.observability.metrics import Metrics
from dispatcher.regions.config import Regions
from dispatcher.regions.peers import Capacity, Peers
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.prices import HOURS_PER_MONTH, BotPrice
from dispatcher.reserve.reserve import Reserve
from dispatcher.store.client import StoreSettings
from dispatcher.store.coordination import PoolBot, ReplicaPool
from dispatcher.store.local import LocalCoordination
from dispatcher.store.redis_coordination import RedisCoordination
from tests.fakes.fly import FakeFly
from tests.support.ports import free_port

HOT_DOLLARS_PER_MONTH = 73.0  # $0.10 an hour
REGIONS = {"REGION": "eu", "REGIONS": "eu=https://eu.example.com,us=https://us.example.com,ap=https://ap.example.com",
           "REGION_SECRET": "s" * 40}


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_the_regions_reserve_is_counted_by_state_release_replica_and_region_and_priced_by_tier(
        fake_fly: FakeFly, replica_pair: list[RedisCoordination]) -> None:
    here, there = replica_pair
    machines = FlyFrozenMachines(FlySettings.from_env(fake_fly.env), LocalCoordination(),
                                 channel_url="ws://10.0.0.2/bots/channel")
    reserve = Reserve(ReserveSettings(min_idle=1, max_idle=10), machines,
                      BotChannels(None, claims=here.claims, identity=Unverified("test")),
                      ReserveMetrics(Metrics("fly").registry, "fly"), coordination=here,
                      hot_dollars_per_month=HOT_DOLLARS_PER_MONTH)
    peers = Peers(Regions.from_env(REGIONS))
    peers.by_name["us"].reachable = True
    peers.by_name["us"].capacity = Capacity(idle=4, warming=1)  # as it last advertised it; ap never answered
    clock = Clock()
    view = StatusView(machines=machines, reserve=reserve, coordination=here, peers=peers, activity=Activity(),
                      region="eu", price=BotPrice(HOT_DOLLARS_PER_MONTH, "test size", "test"), clock=clock)
    image = machines.reported_image(None)  # the default release's bots
    try:
        await here.pool.publish(ReplicaPool("r-1", (PoolBot("a", "idle", 0.0, image),
                                                    PoolBot("b", "warming", 0.0, image),
                                                    PoolBot("c", "frozen", 0.0, image)), sessions=2))
        await there.pool.publish(ReplicaPool("r-2", (PoolBot("d", "resuming", 0.0, image),
                                                     PoolBot("e", "idle", 0.0, "an-old-image")), sessions=1))
        body = await view.snapshot()

        await there.pool.publish(ReplicaPool("r-2", (), sessions=0))  # within FRESH_SECONDS: the same count
        assert (await view.snapshot())["reserve"]["total"] == 5
        clock.now += FRESH_SECONDS
        assert (await view.snapshot())["reserve"]["total"] == 3
    finally:
        await reserve.aclose()
        await peers.aclose()
        await machines.aclose()
    reserve_body = body["reserve"]
    assert reserve_body["by_state"] == {"idle": 2, "warming": 1, "frozen": 1, "resuming": 1}
    assert reserve_body["by_release"] == {"default": 4, RETIRING: 1}
    assert reserve_body["by_region"] == {"eu": 5, "us": 5}
    assert body["replicas"] == [{"id": "r-1", "sessions": 2, "reserve": 3}, {"id": "r-2", "sessions": 1, "reserve": 2}]
    assert body["regions"] == [{"name": "eu", "here": True, "reachable": True, "reserve": 5},
                               {"name": "ap", "here": False, "reachable": False, "reserve": None},
                               {"name": "us", "here": False, "reachable": True, "reserve": 5}]
    frozen_each = machines.frozen_form.frozen_dollars_per_month / HOURS_PER_MONTH
    cost = body["cost"]
    assert (cost["running_machines"], cost["frozen_machines"]) == (4, 1)  # idle, warming, resuming run
    assert cost["dollars_per_hour"] == pytest.approx(4 * 0.1 + frozen_each, abs=1e-4)
    assert body["sessions"] == {"running": 0, "by_status": {}, "by_release": {}, "by_region": {"eu": 0},
                                "evals": {"running": 0, "by_release": {}}}


async def test_a_store_that_does_not_answer_is_said_and_the_reserve_is_this_replicas_own(fake_fly: FakeFly) -> None:
    # Nothing listens at the store's address: the pool answers as one process would.
    down = RedisCoordination(StoreSettings(url=f"redis://127.0.0.1:{free_port()}", replica_id="r-1",
                                           timeout_seconds=0.5, message_secret="m" * 40))
    machines = FlyFrozenMachines(FlySettings.from_env(fake_fly.env), LocalCoordination(),
                                 channel_url="ws://10.0.0.2/bots/channel")
    reserve = Reserve(ReserveSettings(min_idle=1, max_idle=10), machines,
                      BotChannels(None, claims=down.claims, identity=Unverified("test")),
                      ReserveMetrics(Metrics("fly").registry, "fly"), coordination=down)
    view = StatusView(machines=machines, reserve=reserve, coordination=down, peers=Peers(Regions()),
                      activity=Activity(), region="", price=None)
    try:
        await down.pool.publish(ReplicaPool("r-1", (PoolBot("a", "idle", 0.0, machines.reported_image(None)),)))
        body = await view.snapshot()
    finally:
        await reserve.aclose()
        await machines.aclose()
        await down.aclose()
    assert body["reserve"]["problem"].startswith("the store does not answer")
    assert body["reserve"]["by_state"]["idle"] == 1  # this replica's own bot, still shown
    assert body["scope"]["reserve"] == "replica" and body["scope"]["sessions"] == "region"
    assert body["region"] == "default" and body["cost"]["dollars_per_hour"] is None  # no price given
