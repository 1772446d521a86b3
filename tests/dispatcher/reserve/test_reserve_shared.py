"""The reserve with several replicas sharing a store (a real redis-server): a bot launched here that
dialled another replica (a load balancer chose) is not retired as never connected, and a bot
already claimed for one session is never offered to another."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from botchannel.contract import Hello
from dispatcher.channel.access import ChannelAccess
from dispatcher.channel.bots import BotChannels, BotLink
from dispatcher.channel.credentials import BotCredentials
from dispatcher.channel.identity import Unverified
from dispatcher.machines.base import IdleMachine, LaunchResult, LaunchSpec, Machine, MachineState
from dispatcher.observability.metrics import Metrics
from dispatcher.outbound.ratelimit import Rate
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.reserve import Reserve
from dispatcher.store.claims import BotClaims
from dispatcher.store.client import DEFAULT_PREFIX, Store, StoreSettings
from dispatcher.store.coordination import PoolBot, ReplicaPool
from dispatcher.store.redis_coordination import RedisCoordination
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer, redis_server


class Machines:
    """A provider that launches and retires reserve machines on paper (no bot dials in)."""

    name = "paper"
    bot_image = "img"

    def __init__(self) -> None:
        self.launched: list[str] = []
        self.retired: list[str] = []

    async def launch_idle(self, bot_id: str, channel_token: str | None = None, *, image: str | None = None,
                          release: str = "default") -> None:
        self.launched.append(bot_id)

    def reported_image(self, image: str | None) -> str:
        return image or self.bot_image

    async def idle_machines(self) -> list[IdleMachine]:
        return [IdleMachine(b, 0.0) for b in self.launched if b not in self.retired]

    async def retire(self, bot_id: str) -> None:
        self.retired.append(bot_id)

    async def adopt(self, bot_id: str, spec: LaunchSpec) -> LaunchResult:
        raise AssertionError("not claimed here")

    async def launch(self, spec: LaunchSpec) -> LaunchResult:
        machine = Machine(spec.session_id, "m", MachineState.STARTING, 0.0)
        return LaunchResult(machine, created=True)

    async def wait_started(self, session_id: str, timeout: float) -> Machine: ...
    async def status(self, session_id: str) -> Machine | None: ...
    async def stop(self, session_id: str) -> bool: ...
    async def list(self) -> list[Machine]: ...
    async def aclose(self) -> None: ...
    def attach_channel(self, access: ChannelAccess) -> None: ...

    @property
    def create_rate(self) -> Rate | None:
        return None

    def exit_detail(self, bot_id: str) -> str | None:
        return None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as running:
        yield running


@pytest.fixture
async def stores(server: RedisServer, request: pytest.FixtureRequest) -> AsyncIterator[tuple[Store, Store]]:
    prefix = f"{DEFAULT_PREFIX}{request.node.name[:20]}:"  # the stack user's keys
    pair = tuple(Store(StoreSettings(url=server.url, password=server.password, replica_id=f"r-{n}", prefix=prefix,
                                     timeout_seconds=5.0, message_secret=server.message_secret))
                 for n in range(2))
    yield pair  # type: ignore[misc]
    for store in pair:
        await store.aclose()


def reserve(store: Store, machines: Machines, clock: list[float], channels: BotChannels | None = None) -> Reserve:
    settings = ReserveSettings.from_env({"RESERVE_MIN_IDLE": "1", "RESERVE_BUFFER": "0", "RESERVE_BURST": "0",
                                         "RESERVE_COLD_START_SECONDS": "1"})
    coordination = RedisCoordination(store.settings)
    channels = channels or BotChannels(BotCredentials("t" * 40), claims=coordination.claims,
                                       identity=Unverified("test"))
    return Reserve(settings, machines, channels, ReserveMetrics(Metrics("paper").registry, "paper"),
                   clock=lambda: clock[0], coordination=coordination)


@pytest.fixture
async def cut_off(server: RedisServer) -> AsyncIterator[Store]:
    """A replica's store that does not answer: nothing listens at its address."""
    store = Store(StoreSettings(url=f"redis://127.0.0.1:{free_port()}", replica_id="r-cut-off", timeout_seconds=1.0,
                                message_secret=server.message_secret))
    yield store
    await store.aclose()


async def late_warming_bot(here: Store, machines: Machines, clock: list[float],
                          channels: BotChannels | None = None) -> tuple[Reserve, str]:
    launcher = reserve(here, machines, clock, channels)
    await launcher.refill()
    (bot_id,) = machines.launched
    clock[0] += 3 * 1 + 60 + 1  # past the warming deadline: cold start × 3 + grace
    return launcher, bot_id


async def test_a_bot_that_said_hello_at_another_replica_is_not_retired_as_never_connected(stores) -> None:
    here, there = stores
    machines, clock = Machines(), [1000.0]
    launcher, bot_id = await late_warming_bot(here, machines, clock)
    await BotClaims(there).hello(bot_id)  # it dialled the other replica through the load balancer
    await launcher.refill()
    assert bot_id not in machines.retired


async def test_a_bot_that_said_hello_at_another_replica_stops_counting_as_warming_at_the_next_tick(stores) -> None:
    """Claimed there at once, it serves a session: still published as warming here until its hello
    was late, it made the deployment's reserve look a bot fuller than it was, and the planner held
    a launch back for it (in a burst, for every bot the load balancer sent elsewhere)."""
    here, there = stores
    machines, clock = Machines(), [1000.0]
    launcher = reserve(here, machines, clock)
    await launcher.refill()
    (bot_id,) = machines.launched
    clock[0] += 0.5  # long before its hello would be late (1.5 cold starts)
    await BotClaims(there).hello(bot_id)
    await launcher.refill()
    warming = {b.bot_id for view in await RedisCoordination(here.settings).pool.views() for b in view.bots
               if b.state == "warming"}
    assert bot_id not in warming
    assert len(machines.launched) == 2  # its place in the reserve refilled at once, not a cold start later


async def test_a_bot_no_replica_heard_from_is_retired_as_never_connected(stores) -> None:
    here, _ = stores
    machines, clock = Machines(), [1000.0]
    launcher, bot_id = await late_warming_bot(here, machines, clock)
    await launcher.refill()
    assert bot_id in machines.retired


async def test_a_bot_claimed_for_one_session_is_claimed_for_no_other(stores) -> None:
    here, there = stores
    assert await BotClaims(here).claim("rsv-1", "session-a")
    assert not await BotClaims(there).claim("rsv-1", "session-b")


class HelloDuringList(Machines):
    """The provider's list call yields to the loop, and the late bot's hello lands meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.during_list: list[Callable[[], object]] = []

    async def idle_machines(self) -> list[IdleMachine]:
        await asyncio.sleep(0)
        for hello in self.during_list:
            hello()
        return await super().idle_machines()


async def test_a_late_bot_whose_hello_lands_during_the_provider_list_is_kept(stores) -> None:
    here, _ = stores
    machines, clock = HelloDuringList(), [1000.0]
    channels = BotChannels(BotCredentials("t" * 40), claims=RedisCoordination(here.settings).claims,
                           identity=Unverified("test"))
    launcher, bot_id = await late_warming_bot(here, machines, clock, channels)
    link = BotLink(Hello(bot_id, image="img"), socket=None, session_id=None)  # type: ignore[arg-type]
    machines.during_list.append(lambda: [listener(link) for listener in channels.idle_listeners])
    await launcher.refill()  # raised KeyError: the hello had taken the bot off the warming list
    assert bot_id not in machines.retired


class ClaimedElsewhereDuringList(Machines):
    """The provider's list call yields to the loop: meanwhile the late bot says hello at another
    replica and a start there claims it, so the provider no longer lists it as idle."""

    def __init__(self, there: Store) -> None:
        super().__init__()
        self.there = BotClaims(there)
        self.claimed: list[str] = []

    async def idle_machines(self) -> list[IdleMachine]:
        for bot_id in self.launched[:1]:
            await self.there.hello(bot_id)
            assert await self.there.claim(bot_id, "session-there")
            self.claimed.append(bot_id)
        return [m for m in await super().idle_machines() if m.bot_id not in self.claimed]


async def test_a_late_bot_claimed_at_another_replica_during_the_provider_list_is_not_retired(stores) -> None:
    here, there = stores
    machines, clock = ClaimedElsewhereDuringList(there), [1000.0]
    launcher, bot_id = await late_warming_bot(here, machines, clock)
    await launcher.refill()  # stopped the machine serving the other replica's session
    assert bot_id in machines.claimed and bot_id not in machines.retired
    assert not launcher.failed_bots.in_a_row  # nor counted as a failed bot


async def test_an_idle_bot_held_at_another_replica_can_be_claimed_if_it_fits(stores) -> None:
    """An impatient caller (`maxWaitSeconds`) is refused at once only when no replica holds a bot
    that could take the session: the deployment's pool is read, not this replica's channel alone."""
    here, there = stores
    machines, clock = Machines(), [1000.0]
    asking = reserve(here, machines, clock)
    assert not await asking.can_claim("webrtc")  # nothing anywhere
    holder = RedisCoordination(there.settings)
    try:
        await holder.pool.publish(ReplicaPool("r-1", (PoolBot("rsv-9", "idle", 999.0, "img", ("webrtc",)),)))
        assert await asking.can_claim("webrtc")
        assert not await asking.can_claim("daily")  # that bot cannot serve a Daily session
        await holder.pool.publish(ReplicaPool("r-1", (PoolBot("rsv-9", "idle", 999.0, "old", ("webrtc",)),)))
        assert not await asking.can_claim("webrtc")  # another image is never claimed
    finally:
        await holder.aclose()


async def test_the_planner_does_not_count_warming_a_bot_claimed_though_its_launcher_still_lists_it(
        stores) -> None:
    """The launcher's view is as old as its last tick: a bot that dialled another replica and was
    claimed there at once is still listed warming in it. The planner reads the claim records and
    refills its place now, not a tick or two later."""
    here, there = stores
    await RedisCoordination(here.settings).pool.publish(
        ReplicaPool("r-0", (PoolBot("dialled-elsewhere", "warming", time.time(), "img"),), 0))
    await BotClaims(here).hello("dialled-elsewhere")  # said hello at a replica…
    await BotClaims(here).claim("dialled-elsewhere", "s-1")  # …and was claimed there
    machines, clock = Machines(), [1000.0]
    planner = reserve(there, machines, clock)
    await planner.refill()
    assert len(machines.launched) == 1  # the minimum of one, not held back for the bot already serving


async def test_a_bot_whose_hello_no_view_shows_yet_is_still_counted(stores) -> None:
    """Its replica published its view just before the hello came, in the very tick that plans: the
    bot is ready, not gone, and counting it nowhere launched one bot too many (three replicas held
    three idle bots for a minimum of two, about one start in six under load)."""
    here, there = stores
    await RedisCoordination(here.settings).pool.publish(
        ReplicaPool("r-0", (PoolBot("just-dialled", "warming", time.time(), "img"),), 0))
    await BotClaims(here).hello("just-dialled")  # idle at its replica, not in any view yet
    machines, clock = Machines(), [1000.0]
    planner = reserve(there, machines, clock)
    await planner.refill()
    assert machines.launched == []  # the minimum of one is there


class CountedLists(Machines):
    def __init__(self) -> None:
        super().__init__()
        self.lists = 0
        self.gone: set[str] = set()  # machines the provider no longer has

    async def idle_machines(self) -> list[IdleMachine]:
        self.lists += 1
        return [m for m in await super().idle_machines() if m.bot_id not in self.gone]


async def test_a_late_bot_costs_one_provider_list_every_ten_seconds_not_one_a_tick(stores) -> None:
    """On Fly a list of every app is each app's whole list budget for a second: a bot late for its
    hello (a long cold start) is looked up at the provider every RELIST_SECONDS, and one whose
    machine is gone is still found and retired."""
    here, _ = stores
    machines, clock = CountedLists(), [1000.0]
    launcher = reserve(here, machines, clock)
    await launcher.refill()
    (bot_id,) = machines.launched
    clock[0] += 2.0  # late (1.5 cold starts of 1 s), alive
    for _ in range(5):
        await launcher.refill()
        clock[0] += 1.0
    assert machines.lists == 1 and bot_id not in machines.retired
    machines.gone.add(bot_id)  # its machine died before its hello
    clock[0] += 5.0  # ten seconds after the last list
    await launcher.refill()
    assert machines.lists == 2 and bot_id in machines.retired


async def test_a_late_bot_still_listed_idle_but_claimed_at_another_replica_is_not_retired(stores) -> None:
    """Past its deadline, the bot said hello at another replica and a start there recorded its claim, and
    is asking it: its machine, not yet re-tagged, still lists idle. The launcher's retirement takes the
    bot's claim record first, and leaves it: it is that session's machine."""
    here, there = stores
    machines, clock = Machines(), [1000.0]
    launcher, bot_id = await late_warming_bot(here, machines, clock)
    assert await BotClaims(there).claim(bot_id, "session-there")
    await launcher.refill()
    assert bot_id not in machines.retired
    assert not launcher.failed_bots.in_a_row


async def test_the_sweep_leaves_a_bot_a_session_claimed_since_its_listing_and_takes_the_others(stores) -> None:
    """The sweep lists the provider's idle machines; a bot held at another replica may be claimed there
    since (its machine not yet re-tagged). Its claim record decides: a session's keeps the machine, and
    a machine the sweep retires can be claimed by no session after."""
    here, there = stores
    machines, clock = Machines(), [1000.0]
    machines.launched += ["rsv-claimed", "rsv-idle"]  # another replica's bots, idle past their age
    assert await BotClaims(there).claim("rsv-claimed", "session-there")
    sweeper = reserve(here, machines, clock)
    assert await sweeper.sweep() == 1
    assert machines.retired == ["rsv-idle"]
    assert not await BotClaims(there).claim("rsv-idle", "session-late")


async def test_with_the_store_not_answering_the_sweep_retires_no_bot_held_at_another_replica(cut_off) -> None:
    """The replica holding the bot grants its own claims while the store does not answer (one process's
    answer), so a retirement taken by itself here could stop the machine a session there has just claimed:
    the sweep leaves the bots it does not hold to a sweep once the store answers."""
    machines, clock = Machines(), [1000.0]
    machines.launched += ["rsv-elsewhere"]  # another replica's bot, idle past its age
    assert await reserve(cut_off, machines, clock).sweep() == 0
    assert machines.retired == []
    # Meanwhile the replica holding it may take it for a session by itself:
    assert await RedisCoordination(cut_off.settings).claims.claim("rsv-elsewhere", "session-there")


async def test_with_the_store_not_answering_a_late_bot_is_judged_again_not_retired_nor_counted_failed(
        cut_off) -> None:
    """A launcher's late bot may have said hello at another replica and be claimed there by that replica alone:
    it stays warming here until the store answers, neither stopped nor counted as a failure of its image."""
    machines, clock = Machines(), [1000.0]
    launcher, bot_id = await late_warming_bot(cut_off, machines, clock)
    await launcher.refill()
    assert bot_id not in machines.retired
    assert not launcher.failed_bots.in_a_row
