"""A burst's refills are launched concurrently within the create limit: with a provider whose
create call takes 0.5 s, a tick that needs twelve reserve bots has ten calls in flight at once
(CONCURRENT_LAUNCHES) instead of one after another, and a failure stops the launches not yet begun."""

from __future__ import annotations

import asyncio
import time

from dispatcher.channel.bots import BotChannels
from dispatcher.channel.credentials import BotCredentials
from dispatcher.channel.identity import Unverified
from dispatcher.machines.base import MachinesError
from dispatcher.observability.metrics import Metrics
from dispatcher.outbound.ratelimit import Rate
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.refills import CONCURRENT_LAUNCHES
from dispatcher.reserve.reserve import Reserve
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.reserve.test_reserve_shared import Machines

CREATE_SECONDS = 0.5
WANTED = 12


class SlowCreates(Machines):
    """Each create answers after CREATE_SECONDS, as a RunTask or an insert takes a second or so."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        self.in_flight = self.most_in_flight = self.calls = 0
        self.fail_after = fail_after

    async def launch_idle(self, bot_id: str, channel_token: str | None = None, *, image: str | None = None,
                          release: str = "default") -> None:
        self.calls += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(CREATE_SECONDS)
            if self.fail_after is not None and self.calls > self.fail_after:
                raise MachinesError("paper_capacity", "no capacity", retry_after=10.0)
            self.launched.append(bot_id)
        finally:
            self.in_flight -= 1

    @property
    def create_rate(self) -> Rate | None:
        return Rate(per_second=100, burst=100)  # plenty: the limit is not what is tested


def reserve(machines: SlowCreates, metrics: Metrics | None = None) -> Reserve:
    settings = ReserveSettings.from_env({"RESERVE_MIN_IDLE": str(WANTED), "RESERVE_MAX_IDLE": str(WANTED),
                                         "RESERVE_BUFFER": "0", "RESERVE_BURST": "0",
                                         "RESERVE_COLD_START_SECONDS": "30"})
    coordination = LocalCoordination()
    channels = BotChannels(BotCredentials("t" * 40), claims=coordination.claims, identity=Unverified("test"))
    return Reserve(settings, machines, channels, ReserveMetrics((metrics or Metrics("paper")).registry, "paper"),
                   coordination=coordination)


async def test_a_burst_of_refills_has_its_create_calls_in_flight_together() -> None:
    machines = SlowCreates()
    began = time.monotonic()
    await reserve(machines).refill()
    took = time.monotonic() - began
    assert len(machines.launched) == WANTED
    assert machines.most_in_flight == CONCURRENT_LAUNCHES  # one after another: 1
    assert took < WANTED * CREATE_SECONDS, took  # two rounds of 0.5 s, not twelve


async def test_a_failed_refill_stops_the_launches_not_yet_begun() -> None:
    machines = SlowCreates(fail_after=0)  # every create is refused (no capacity)
    held = reserve(machines)
    await held.refill()
    assert machines.launched == []
    assert machines.calls == CONCURRENT_LAUNCHES  # those already in flight, none begun after the failure
    assert len(held._warming) == 0  # type: ignore[attr-defined]  # none counted as warming


async def test_bots_launched_and_not_yet_dialled_in_are_shown_as_warming() -> None:
    metrics = Metrics("paper")
    await reserve(SlowCreates(), metrics).refill()  # no bot dials in here
    assert metrics.registry.get_sample_value("voicefleet_reserve_bots",
                                             {"provider": "paper", "state": "warming"}) == WANTED
