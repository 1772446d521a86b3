"""The reserve with several replicas sharing a store (a real redis-server): a bot launched here that
dialled another replica (a load balancer chose) is not retired as never connected, and a bot
already claimed for one session is never offered to another."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dispatcher.channel.access import ChannelAccess
from dispatcher.channel.bots import BotChannels
from dispatcher.channel.credentials import BotCredentials
from dispatcher.machines.base import IdleMachine, LaunchResult, LaunchSpec, Machine, MachineState
from dispatcher.metrics import Metrics
from dispatcher.outbound.ratelimit import Rate
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.reserve import Reserve
from dispatcher.store.claims import BotClaims
from dispatcher.store.client import DEFAULT_PREFIX, Store, StoreSettings
from dispatcher.store.forgiving import ForgivingClaims
from dispatcher.store.local import LocalClaims
from tests.support.redis_server import RedisServer, redis_server


class Machines:
    """A provider that launches and retires reserve machines on paper (no bot dials in)."""

    name = "paper"
    bot_image = "img"

    def __init__(self) -> None:
        self.launched: list[str] = []
        self.retired: list[str] = []

    async def launch_idle(self, bot_id: str, channel_token: str | None = None) -> None:
        self.launched.append(bot_id)

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
                                     timeout_seconds=5.0))
                 for n in range(2))
    yield pair  # type: ignore[misc]
    for store in pair:
        await store.aclose()


def reserve(store: Store, machines: Machines, clock: list[float]) -> Reserve:
    settings = ReserveSettings.from_env({"RESERVE_MIN_IDLE": "1", "RESERVE_BUFFER": "0", "RESERVE_BURST": "0",
                                         "RESERVE_COLD_START_SECONDS": "1"})
    claims = ForgivingClaims(BotClaims(store), LocalClaims())
    channels = BotChannels(BotCredentials("t" * 40), claims=claims)
    return Reserve(settings, machines, channels, ReserveMetrics(Metrics("paper").registry, "paper"),
                   clock=lambda: clock[0], claims=claims)


async def late_warming_bot(here: Store, machines: Machines, clock: list[float]) -> tuple[Reserve, str]:
    launcher = reserve(here, machines, clock)
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
