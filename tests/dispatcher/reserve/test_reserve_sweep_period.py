"""The warm reserve's sweep lists every idle machine at the provider (the whole fleet where the provider
cannot filter): with the reserve off and nothing idle left, nothing makes new ones, so it waits longer."""

from __future__ import annotations

from dispatcher.channel.bots import BotChannels
from dispatcher.channel.credentials import BotCredentials
from dispatcher.channel.identity import Unverified
from dispatcher.machines.base import IdleMachine
from dispatcher.observability.metrics import Metrics
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.reserve import SWEEP_OFF_SECONDS, SWEEP_SECONDS, Reserve
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.reserve.test_reserve_shared import Machines


class Listed(Machines):
    def __init__(self) -> None:
        super().__init__()
        self.lists = 0

    async def idle_machines(self) -> list[IdleMachine]:
        self.lists += 1
        return await super().idle_machines()


def reserve(machines: Listed, max_idle: int) -> Reserve:
    coordination = LocalCoordination()
    channels = BotChannels(BotCredentials("t" * 40), claims=coordination.claims, identity=Unverified("test"))
    return Reserve(ReserveSettings(min_idle=0, max_idle=max_idle), machines, channels,
                   ReserveMetrics(Metrics("paper").registry, "paper"), coordination=coordination)


async def test_with_the_reserve_off_a_sweep_that_lists_nothing_idle_waits_five_minutes_for_the_next() -> None:
    machines = Listed()
    off = reserve(machines, max_idle=0)
    try:
        assert off._sweep_period() == SWEEP_SECONDS  # nothing listed yet: leftovers are looked for soon
        await off.sweep()
        assert machines.lists == 1 and off._sweep_period() == SWEEP_OFF_SECONDS
        machines.launched.append("left-over")  # a replica of the last configuration made one meanwhile
        await off.sweep()
        assert off._sweep_period() == SWEEP_SECONDS  # retired, and looked for again at the usual pace
    finally:
        await off.aclose()


async def test_with_the_reserve_on_the_sweep_keeps_its_pace() -> None:
    machines = Listed()
    on = reserve(machines, max_idle=4)
    try:
        await on.sweep()
        assert on._sweep_period() == SWEEP_SECONDS
    finally:
        await on.aclose()
