"""The fleet planner sizes the frozen tier where the provider can freeze a machine: the reserve
hands it the provider's tiers, so a quiet deployment keeps RESERVE_MIN_HOT running and freezes the
rest, and more stay hot when starts come fast enough to claim one within a freeze's round trip (a
bot frozen and thawed again at once only adds a resume to its start)."""

from __future__ import annotations

import pytest

from dispatcher.channel.bots import BotChannels
from dispatcher.channel.identity import Unverified
from dispatcher.errors import ApiError
from dispatcher.machines.base import LaunchResult, LaunchSpec
from dispatcher.machines.fly.frozen import FlyFrozenMachines
from dispatcher.machines.fly.provider import FlySettings
from dispatcher.observability.metrics import Metrics
from dispatcher.reserve import elsewhere
from dispatcher.reserve.claim import WarmClaim
from dispatcher.reserve.demand import Demand
from dispatcher.reserve.elsewhere import ClaimsElsewhere, TakenFrozen
from dispatcher.reserve.fleet import count_fleet
from dispatcher.reserve.frozen import FrozenTier
from dispatcher.reserve.idle import FrozenBot, IdleRecords
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.reserve.planner import Fleet, PlannerSettings, plan_fleet
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.reserve import Reserve
from dispatcher.reserve.retirement import Retirements
from dispatcher.store.coordination import ReplicaPool
from dispatcher.store.local import LocalCoordination
from tests.fakes.fly import FakeFly


async def test_the_plan_keeps_the_minimum_hot_when_quiet_and_more_as_the_rate_grows(fake_fly: FakeFly) -> None:
    machines = FlyFrozenMachines(FlySettings.from_env(fake_fly.env), LocalCoordination(), channel_url="ws://10.0.0.2/bots/channel")
    coordination = LocalCoordination()
    settings = ReserveSettings(min_idle=4, max_idle=50, buffer=0.0, burst=0.0)
    planner = PlannerSettings(min_hot=1)
    reserve = Reserve(settings, machines, BotChannels(None, claims=coordination.claims, identity=Unverified("test")),
                      ReserveMetrics(Metrics("fly").registry, "fly"), coordination=coordination, planner=planner)
    tiers = reserve.planning.sizer.tiers
    assert tiers.frozen  # the provider can suspend: the planner plans a frozen tier

    def hot_target(per_second: float) -> int:
        plan = plan_fleet(Fleet([], []), demand=Demand(rate=per_second, base_rate=per_second,
                                                       lead_arrivals=per_second * 3),
                          settings=settings, planner=planner, tiers=tiers, now=0.0, cold_start_seconds=3.0,
                          resume_seconds=tiers.resume_seconds, spare_launches=100, utc_minute=0)
        assert plan.ready_target >= 4
        return plan.hot_target

    try:
        assert hot_target(0.0) == 1  # a quiet deployment: one hot, the rest frozen
        assert hot_target(1 / 60) == 1  # 1/min: a start within a round trip is rare
        busy = hot_target(1.0)  # 60/min: ~2.4 starts in a round trip
        assert busy >= 4
        assert hot_target(10.0) > busy
    finally:
        await reserve.aclose()
        await machines.aclose()


async def test_frozen_bots_are_in_the_deployments_pool_and_the_plan_knows_where(fake_fly: FakeFly) -> None:
    """A replica's frozen bots are pool records in state frozen, so the planner counts them and
    retires its surplus ones at the replica that holds them."""
    machines = FlyFrozenMachines(FlySettings.from_env(fake_fly.env), LocalCoordination(), channel_url="ws://10.0.0.2/bots/channel")
    coordination = LocalCoordination()
    channels = BotChannels(None, claims=coordination.claims, identity=Unverified("test"))
    metrics = ReserveMetrics(Metrics("fly").registry, "fly")
    records, retirements = IdleRecords(), Retirements(machines, metrics)
    image = machines.bot_image
    claim = WarmClaim(machines, channels, coordination.claims, records, retirements, {}, lambda spec: image,
                      lambda: 100.0)
    tier = FrozenTier(machines, channels, coordination.claims, records, retirements, metrics, claim,
                      PlannerSettings(), lambda: 100.0, elsewhere=ClaimsElsewhere(coordination, lambda spec: image),
                      replica_id=coordination.replica_id, resumed=lambda seconds: None)
    records.froze(FrozenBot("rsv-old", 40.0, image, ("webrtc",), None))
    records.froze(FrozenBot("rsv-new", 90.0, image, ("webrtc",), None))
    try:
        bots = tier.pool_bots(epoch=1_000.0, now=100.0)
        assert {(b.bot_id, b.state, b.since) for b in bots} == {("rsv-old", "frozen", 940.0),
                                                                 ("rsv-new", "frozen", 990.0)}
        _, frozen, fleet = count_fleet([ReplicaPool("r-1", tuple(bots), 0)], image)
        assert [(b.replica_id, b.bot_id) for b in frozen] == [("r-1", "rsv-old"), ("r-1", "rsv-new")]
        assert list(fleet.frozen_since) == [940.0, 990.0]
    finally:
        await retirements.aclose()
        await machines.aclose()


class Holder:
    """What a replica holding bots answers the relay with, recording the orders it is given."""

    def __init__(self) -> None:
        self.orders: list[tuple[str, str]] = []

    async def claim(self, spec: LaunchSpec) -> LaunchResult | None:
        self.orders.append(("claim", spec.session_id))
        return None

    async def claim_returned(self, bot_id: str, spec: LaunchSpec) -> LaunchResult | None:
        self.orders.append(("claim_returned", f"{bot_id}/{spec.session_id}"))
        return None

    async def retire(self, bot_id: str) -> bool:
        raise AssertionError("not a retirement")

    def freeze(self, bot_id: str) -> bool:
        self.orders.append(("freeze", bot_id))
        return True

    def resume(self, bot_id: str) -> bool:
        self.orders.append(("resume", bot_id))
        return True

    def take_frozen(self, image: str, transport: str) -> TakenFrozen | None:
        self.orders.append(("take_frozen", f"{image}/{transport}"))
        return TakenFrozen("rsv-cold", 1_900_000_000)

    def came_back_at(self, bot_id: str, replica: str) -> bool:
        self.orders.append(("back", f"{bot_id}@{replica}"))
        return True


async def test_the_planners_freeze_order_reaches_the_replica_holding_the_bot() -> None:
    """The lease holder freezes a hot bot held at another replica through the relay
    (`reserve.freeze`), as it retires one; an order that names no bot is a clear 400."""
    holder = Holder()
    assert await elsewhere.answer(holder, "rsv-1", elsewhere.FREEZE, {"bot_id": "rsv-1"}) == {"frozen": True}
    assert holder.orders == [("freeze", "rsv-1")]
    with pytest.raises(ApiError) as refused:
        await elsewhere.answer(holder, "rsv-1", elsewhere.FREEZE, {})
    assert refused.value.status == 400
