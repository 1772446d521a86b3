"""GET /status's sessions come from one list of every machine for the deployment, on a real store with
the stack's user rules: a replica answers from the list another took while it is fresh, and a list
that took long is not taken again for ten times as long."""

from __future__ import annotations

from dispatcher.api.status_view import FRESH_SECONDS, LIST_COST_SHARE, LISTING, StatusView
from dispatcher.machines.base import Machine, MachineState
from dispatcher.observability.activity import Activity
from dispatcher.regions.config import Regions
from dispatcher.regions.peers import Peers
from dispatcher.store.redis_coordination import RedisCoordination
from dispatcher.store.sessions_census import Census


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class CloudFleet:
    """A cloud provider's list of every machine (the same for every replica), counted; each list takes
    `took` seconds of the clock."""

    name = "fly"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.lists = 0
        self.took = 0.01
        self.machines = [Machine("s-1", "m-1", MachineState.STARTED, 0.0, release="stable"),
                         Machine("s-2", "m-2", MachineState.STARTING, 0.0, release="canary")]

    async def list(self) -> list[Machine]:
        self.lists += 1
        self.clock.now += self.took
        return list(self.machines)




def views(replica_pair: list[RedisCoordination],
          took: float = 0.01) -> tuple[Clock, CloudFleet, StatusView, StatusView]:
    """Two replicas' status over one fleet whose list takes `took` seconds of a shared clock."""
    clock = Clock()
    fleet = CloudFleet(clock)
    fleet.took = took
    here, there = (StatusView(machines=fleet, reserve=None, coordination=r,  # type: ignore[arg-type]
                              peers=Peers(Regions()), activity=Activity(), region="", price=None, clock=clock,
                              wall=clock) for r in replica_pair)
    return clock, fleet, here, there


async def test_a_replica_answers_from_the_list_another_took_while_it_is_fresh(
        replica_pair: list[RedisCoordination]) -> None:
    clock, fleet, here, there = views(replica_pair)
    first = await here.snapshot()
    assert fleet.lists == 1 and first["sessions"]["running"] == 2
    assert first["sessions"]["by_release"] == {"canary": 1, "stable": 1}

    fleet.machines.pop()  # one session ends; the other replica answers from the same list meanwhile
    clock.now += FRESH_SECONDS / 2
    assert (await there.snapshot())["sessions"] == first["sessions"]
    assert (await there.snapshot())["counted_at"] == first["counted_at"]
    assert fleet.lists == 1

    clock.now += FRESH_SECONDS
    assert (await there.snapshot())["sessions"]["running"] == 1
    assert (await here.snapshot())["sessions"]["running"] == 1  # the list the other replica took
    assert fleet.lists == 2


async def test_a_list_that_took_long_is_not_taken_again_for_ten_times_as_long(
        replica_pair: list[RedisCoordination]) -> None:
    clock, fleet, here, there = views(replica_pair, took=3.0)  # 100,000 machines: seconds of an event loop
    await here.snapshot()
    clock.now += LIST_COST_SHARE * fleet.took - fleet.took - 1.0  # counted from when the list was asked for
    await there.snapshot()
    await here.snapshot()
    assert fleet.lists == 1
    clock.now += 2.0
    await there.snapshot()
    assert fleet.lists == 2


async def test_while_another_replica_lists_its_last_count_stands(replica_pair: list[RedisCoordination]) -> None:
    clock, fleet, here, there = views(replica_pair)
    first = await here.snapshot()
    clock.now += 30.0  # stale for GET /status, still kept
    turns = replica_pair[0].turns
    assert await turns.take(LISTING, 15.0)  # the first replica lists now
    assert (await there.snapshot())["counted_at"] == first["counted_at"]
    assert fleet.lists == 1
    await turns.give_back(LISTING)
    clock.now += FRESH_SECONDS
    await there.snapshot()
    assert fleet.lists == 2


async def test_a_count_of_another_shape_or_dated_ahead_is_not_believed(replica_pair: list[RedisCoordination]) -> None:
    clock, fleet, here, there = views(replica_pair)
    census = replica_pair[0].sessions_census
    await census.write(Census(at=clock.now, took=0.01, sessions={"running": "many"}, machines=1, whole=True))
    assert (await here.snapshot())["sessions"]["running"] == 2  # listed: the kept one is not GET /status's shape
    assert fleet.lists == 1
    await census.write(Census(at=clock.now + 3600, took=0.01, sessions={"running": 7, "by_status": {},
                              "by_release": {}, "by_region": {"default": 7},
                              "evals": {"running": 0, "by_release": {}}}, machines=7, whole=True))
    clock.now += FRESH_SECONDS
    assert (await there.snapshot())["sessions"]["running"] == 2  # an hour ahead: listed again
    assert fleet.lists == 2
