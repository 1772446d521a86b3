"""Cerebrium with two replicas on one store (a real redis-server, the stack's user): a run's state
is known at the replica that does not hold its bot's channel, and a stop there reaches the bot
through the store's relay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from botchannel.contract import METHOD_STOP, Request, parse_frame
from dispatcher.channel.bots import BotChannels
from dispatcher.channel.credentials import BotCredentials, BotGrant
from dispatcher.channel.identity import Unverified
from dispatcher.channel.ownership import Ownership
from dispatcher.machines.base import MachineState
from dispatcher.machines.cerebrium.provider import CerebriumMachines, CerebriumSettings
from dispatcher.store.client import DEFAULT_PREFIX, StoreSettings
from dispatcher.store.redis_coordination import RedisCoordination
from tests.dispatcher.channel.test_ownership import BotSocket
from tests.dispatcher.machines.harness import CEREBRIUM_CHANNEL
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.cerebrium import FakeCerebrium
from tests.support.redis_server import RedisServer


class Replica:
    def __init__(self, server: RedisServer, name: str, prefix: str, fake: FakeCerebrium) -> None:
        self.coordination = RedisCoordination(StoreSettings(url=server.url, password=server.password, replica_id=name,
                                                       prefix=prefix, message_secret=server.message_secret,
                                                       timeout_seconds=5.0, lease_seconds=3.0))
        self.channels = BotChannels(BotCredentials(CEREBRIUM_CHANNEL["BOT_CHANNEL_TOKEN"]),
                                    claims=self.coordination.claims, identity=Unverified("test"))
        self.ownership = Ownership(self.channels, self.coordination)
        self.machines = CerebriumMachines(CerebriumSettings.from_env({**fake.env, **CEREBRIUM_CHANNEL}),
                                          self.coordination)
        self.machines.watch_channels(self.channels)

    async def start(self) -> None:
        await self.coordination.start(self.ownership.answer, held=self.ownership.held)
        assert self.coordination.relay is not None and await self.coordination.relay.wait_subscribed(60)


class StoppableBot(BotSocket):
    """The bot's end of its channel: records what it is asked (it answers every request)."""

    def __init__(self, name: str, session_id: str) -> None:
        super().__init__(name, session_id)
        self.asked: list[str] = []

    async def send_text(self, data: str) -> None:
        frame = parse_frame(data)
        if isinstance(frame, Request):
            self.asked.append(frame.method)
        await super().send_text(data)

    async def close(self, code: int = 1000) -> None:
        self.closed.set()


@pytest.fixture
async def pair(server: RedisServer, fake_cerebrium: FakeCerebrium,
               request: pytest.FixtureRequest) -> AsyncIterator[tuple[Replica, Replica]]:
    prefix = f"{DEFAULT_PREFIX}{request.node.name[:24]}:"  # the stack user's keys
    a, b = (Replica(server, name, prefix, fake_cerebrium) for name in ("r-a", "r-b"))
    await a.start()
    await b.start()
    yield a, b
    for replica in (a, b):
        await replica.machines.aclose()
        await replica.ownership.aclose()
        await replica.coordination.aclose()


async def eventually(replica: Replica, session_id: str, state: MachineState) -> None:
    for _ in range(200):
        machine = await replica.machines.status(session_id)
        if machine is not None and machine.state is state:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{session_id} never {state} at {replica.coordination.replica_id}")


async def test_a_run_is_known_and_stopped_from_the_replica_without_its_channel(
    pair: tuple[Replica, Replica], fake_cerebrium: FakeCerebrium
) -> None:
    a, b = pair
    s = spec()
    await a.machines.launch(s)
    assert (await b.machines.launch(s)).created is False  # claimed once in the store: one call
    assert len(fake_cerebrium.of(s.session_id)) == 1
    assert (await b.machines.status(s.session_id)).state is MachineState.STARTING  # type: ignore[union-attr]

    bot = StoppableBot("r-a", s.session_id)  # its bot dials r-a
    serving = asyncio.create_task(a.channels.serve(bot, BotGrant("session", s.session_id, 2**40)))
    await eventually(b, s.session_id, MachineState.STARTED)  # r-b reads what r-a's channel wrote

    for _ in range(200):  # r-a's owner record is written in the background
        if await b.coordination.owner_records.owner_of(s.session_id) == "r-a":
            break
        await asyncio.sleep(0.02)
    assert await b.machines.stop(s.session_id) is True
    assert bot.asked == [METHOD_STOP]  # told over its channel, through the relay
    machine = await a.machines.status(s.session_id)
    assert machine is not None and (machine.state, machine.detail) == (MachineState.ENDED, "stopped")
    bot.closed.set()
    await serving
