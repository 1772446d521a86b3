"""A chore that lists every machine (the reaper's sweep, the warm reserve's) is done by one replica of
the deployment a period, on a real store with the stack's user rules: not once per replica."""

from __future__ import annotations

import asyncio

from dispatcher.machines.base import Machine, MachinesError
from dispatcher.machines.chore_turn import HELD_SHARE, ChoreTurn
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.observability.metrics import Metrics
from dispatcher.sessions.reaper import Reaper, ReaperSettings
from dispatcher.store.client import StoreSettings
from dispatcher.store.redis_coordination import RedisCoordination
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer

PERIOD = 60.0


class CloudMachines:
    """A cloud provider's list of the deployment's machines, as the reaper reads it: counted."""

    def __init__(self) -> None:
        self.lists = 0

    async def list(self) -> list[Machine]:
        self.lists += 1
        return []




async def test_the_first_replica_to_ask_in_a_period_has_the_turn_and_holds_it_under_the_period(
        replica_pair: list[RedisCoordination], store_server: RedisServer) -> None:
    a, b = replica_pair
    machines = CloudMachines()
    reaper_a, reaper_b = (ChoreTurn(r.turns, machines, "reaper") for r in replica_pair)  # type: ignore[arg-type]
    assert await reaper_a.mine(PERIOD) is True
    assert await reaper_b.mine(PERIOD) is False
    assert await reaper_a.mine(PERIOD) is False  # once a period, whoever asks
    # Another chore's turn is its own.
    assert await ChoreTurn(b.turns, machines, "reserve-sweep").mine(PERIOD) is True  # type: ignore[arg-type]
    with store_server.admin() as admin:
        held_ms = admin.pttl(a.store.key("spent", "turn:chore:reaper"))
    assert 0 < held_ms <= HELD_SHARE * PERIOD * 1000  # the next period's first asker is not refused by it


async def test_local_bots_are_each_replicas_own_and_every_replica_keeps_its_chores(
        replica_pair: list[RedisCoordination]) -> None:
    local = LocalMachines(LocalSettings(bot_command=["true"]))
    try:
        turns = [ChoreTurn(r.turns, local, "reaper") for r in replica_pair]
        assert [await turn.mine(PERIOD) for turn in turns] == [True, True]
    finally:
        await local.aclose()


async def test_a_store_that_does_not_answer_leaves_the_chore_to_the_replica_that_asks() -> None:
    down = RedisCoordination(StoreSettings(url=f"redis://127.0.0.1:{free_port()}", replica_id="r-1",
                                           timeout_seconds=0.5, message_secret="m" * 40))
    try:
        turn = ChoreTurn(down.turns, CloudMachines(), "reaper")  # type: ignore[arg-type]
        assert await turn.mine(PERIOD) is True
        assert await turn.mine(PERIOD) is False  # still once a period at this replica
    finally:
        await down.aclose()


class Paced:
    """Reapers whose waits between sweeps end when the test says: each period runs to its end (the sweep, or
    the turn refused, and any turn given back) before the test looks, however busy the machine."""

    def __init__(self, replicas: list[RedisCoordination], machines: list[CloudMachines]) -> None:
        self.ticks = [asyncio.Queue[None]() for _ in machines]
        self.waiting = [asyncio.Queue[None]() for _ in machines]
        self.tasks = [asyncio.create_task(self._reaper(n, replicas[n], m).run()) for n, m in enumerate(machines)]

    def _reaper(self, n: int, replica: RedisCoordination, machines: CloudMachines) -> Reaper:
        async def wait_for_tick(_seconds: float) -> None:
            self.waiting[n].put_nowait(None)
            await self.ticks[n].get()
        return Reaper(machines, None, Metrics("fly"), max_session_seconds=3600,  # type: ignore[arg-type]
                      settings=ReaperSettings(interval_seconds=PERIOD, jitter=0.0), sleep=wait_for_tick,
                      turn=ChoreTurn(replica.turns, machines, "reaper"))  # type: ignore[arg-type]

    async def period(self, n: int) -> None:
        """Replica `n`'s interval ends; back once it waits for the next."""
        await asyncio.wait_for(self.waiting[n].get(), 30.0)  # waiting (its first wait, or its last period's)
        self.ticks[n].put_nowait(None)
        await asyncio.wait_for(self.waiting[n].get(), 30.0)
        self.waiting[n].put_nowait(None)  # still waiting: the next period finds it so

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def test_two_replicas_reapers_list_the_fleet_once_a_period_not_once_each(
        replica_pair: list[RedisCoordination], store_server: RedisServer) -> None:
    machines = CloudMachines()
    paced = Paced(replica_pair, [machines, machines])
    try:
        for period in (1, 2):
            await paced.period(0)
            await paced.period(1)  # within the same period: the first replica's turn holds
            assert machines.lists == period
            with store_server.admin() as admin:  # the period's turn runs out
                admin.delete(replica_pair[0].store.key("spent", "turn:chore:reaper"))
    finally:
        await paced.aclose()


class FailingMachines(CloudMachines):
    async def list(self) -> list[Machine]:
        self.lists += 1
        raise MachinesError("fly_unavailable", "the list took longer than FLY_TIMEOUT_SECONDS")


async def test_a_replica_whose_sweep_fails_gives_the_turn_back_and_another_sweeps_that_period(
        replica_pair: list[RedisCoordination]) -> None:
    failing, answering = FailingMachines(), CloudMachines()
    paced = Paced(replica_pair, [failing, answering])
    try:
        await paced.period(0)  # the failing replica asks first, has the turn and gives it back
        await paced.period(1)  # the other replica, within the same period
        assert (failing.lists, answering.lists) == (1, 1)
    finally:
        await paced.aclose()
