"""The sweep and a claim that never landed (a real redis-server): a machine still listed idle whose bot's
claim record names a session that ended, failed, or whose start is long past with nothing holding its
bot, is retired (`claim_stranded`) instead of waiting for the record to run out (up to a day); a live
session's machine, a claim that may still be landing, and a session the store says nothing about now
keep theirs."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dispatcher.channel.bots import BotChannels
from dispatcher.channel.credentials import BotCredentials
from dispatcher.channel.identity import Unverified
from dispatcher.observability.metrics import Metrics
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.reserve import Reserve
from dispatcher.reserve.stranded import LANDS_WITHIN_SECONDS
from dispatcher.store.client import Store
from dispatcher.store.redis_coordination import RedisCoordination
from tests.dispatcher.reserve.test_reserve_shared import Machines, cut_off, server, stores

__all__ = ["cut_off", "server", "stores"]  # the shared module's fixtures: a redis-server, replicas' stores

BOT, SESSION = "rsv-stranded", "session-there"
LONG_AGO = LANDS_WITHIN_SECONDS + 100.0  # seconds before now: past any claim still landing


class Sweeper:
    """A replica's reserve that holds no bot: every machine it sweeps is held elsewhere, or nowhere."""

    def __init__(self, store: Store, coordination: RedisCoordination | None = None) -> None:
        self.machines = Machines()
        self.machines.launched.append(BOT)  # idle past its age (listed as created at the epoch)
        self.metrics = Metrics("paper")
        settings = ReserveSettings.from_env({"RESERVE_MIN_IDLE": "1", "RESERVE_BUFFER": "0", "RESERVE_BURST": "0",
                                             "RESERVE_COLD_START_SECONDS": "1"})
        coordination = coordination or RedisCoordination(store.settings)
        channels = BotChannels(BotCredentials("t" * 40), claims=coordination.claims, identity=Unverified("test"))
        self.reserve = Reserve(settings, self.machines, channels, ReserveMetrics(self.metrics.registry, "paper"),
                               clock=lambda: 1000.0, coordination=coordination)

    def stranded(self) -> float:
        value = self.metrics.registry.get_sample_value("voicefleet_reserve_retired_total",
                                                       {"provider": "paper", "reason": "claim_stranded"})
        return value or 0.0


@pytest.fixture
async def there(stores: tuple[Store, Store]) -> AsyncIterator[RedisCoordination]:
    """The replica whose start claimed the bot: its claim record is written, its session's timeline
    is the store's; its owner records outlive any slow test."""
    coordination = RedisCoordination(dataclasses.replace(stores[1].settings, lease_seconds=300.0))
    assert await coordination.claims.claim(BOT, SESSION)
    yield coordination
    await coordination.aclose()


async def timeline(coordination: RedisCoordination, *events: tuple[str, float, dict[str, Any]]) -> None:
    """`SESSION`'s events, each (event, seconds before now, fields)."""
    now = time.time()
    for event, ago, fields in events:
        await coordination.timelines.append(SESSION, {"event": event, "at": round(now - ago, 3), **fields})


async def kept(store: Store) -> None:
    """A sweep at a replica on `store` leaves the claimed bot's machine."""
    sweeper = Sweeper(store)
    assert await sweeper.reserve.sweep() == 0
    assert sweeper.machines.retired == []


@pytest.mark.parametrize("end", [
    ("ended", {"reason": "caller_hung_up"}),
    ("machine_ended", {"state": "stopped"}),
    ("stop_requested", {}),
    ("failed", {"code": "session_setup_failed"}),  # the re-tag failed, and so did the cold launch
])
async def test_a_machine_listed_idle_whose_claims_session_is_over_is_retired(
        stores: tuple[Store, Store], there: RedisCoordination, end: tuple[str, dict[str, Any]]) -> None:
    event, fields = end
    await timeline(there, ("requested", 30.0, {}), (event, 20.0, fields))
    sweeper = Sweeper(stores[0])
    assert await sweeper.reserve.sweep() == 1
    assert sweeper.machines.retired == [BOT]
    assert sweeper.stranded() == 1


async def test_a_machine_listed_idle_whose_claims_start_is_long_past_and_held_by_nobody_is_retired(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    """The claiming replica died between the claim and the re-tag: no end is ever told, and the owner record
    it wrote ran out with it. Past any claim still landing, the machine goes."""
    await timeline(there, ("requested", LONG_AGO, {}))
    sweeper = Sweeper(stores[0])
    assert await sweeper.reserve.sweep() == 1
    assert sweeper.machines.retired == [BOT]
    assert sweeper.stranded() == 1


async def test_a_live_session_whose_bot_is_held_at_a_replica_keeps_the_machine(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    """The bot took the session but its replica died before the re-tag; the bot dialled another replica,
    which holds it for the session (its owner record). Its machine still lists idle: never stopped."""
    await timeline(there, ("requested", LONG_AGO, {}))
    await there.owners.claim(SESSION)
    await kept(stores[0])


async def test_a_session_this_bot_reported_for_keeps_the_machine_while_no_replica_holds_it(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    """Between two replicas (its own dropped, its next not reached yet) a bot serving the session has no
    owner record; that it reported for the session says the machine may be the session's."""
    await timeline(there, ("requested", LONG_AGO, {}), ("ready", LONG_AGO - 5.0, {"machine_id": BOT}))
    await kept(stores[0])


async def test_a_claim_that_may_still_be_landing_keeps_the_machine(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    await timeline(there, ("requested", 10.0, {}))
    await kept(stores[0])


async def test_a_keyed_start_tried_again_after_its_failure_keeps_the_machine(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    """Its first try failed; the second, just now, may be claiming this very bot (its own record)."""
    await timeline(there, ("requested", LONG_AGO, {}), ("failed", LONG_AGO - 1.0, {"code": "bot_unreachable"}),
                   ("requested", 5.0, {}))
    await kept(stores[0])


async def test_a_start_that_timed_out_waiting_is_no_end(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    """`?wait=started` gave up (`start_timeout`), but the machine may still start: the session is not over."""
    await timeline(there, ("requested", 30.0, {}), ("failed", 20.0, {"code": "start_timeout"}))
    await kept(stores[0])


async def test_a_session_with_no_timeline_keeps_the_machine_until_its_record_runs_out(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    await kept(stores[0])


async def test_a_bot_nobody_claimed_is_retired_as_before(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    """The stranded check only follows a session's claim: a bot nobody claimed is retired as before."""
    await timeline(there, ("requested", 10.0, {}))
    sweeper = Sweeper(stores[0])
    sweeper.machines.launched.append("rsv-unclaimed")
    assert await sweeper.reserve.sweep() == 1
    assert sweeper.machines.retired == ["rsv-unclaimed"]
    assert sweeper.stranded() == 0


@pytest.mark.parametrize("unreachable", ["timelines", "owners"])
async def test_a_session_the_store_says_nothing_about_now_keeps_the_machine_until_the_next_sweep(
        stores: tuple[Store, Store], there: RedisCoordination, cut_off: Store, unreachable: str) -> None:
    """The claim record was read, then the session's timeline (or its owner record) could not be: the
    sweep stops there, and the next one asks again."""
    await timeline(there, ("requested", LONG_AGO, {}))  # abandoned, as the store would say
    coordination, down = RedisCoordination(stores[0].settings), RedisCoordination(cut_off.settings)
    setattr(coordination, unreachable, getattr(down, unreachable))
    sweeper = Sweeper(stores[0], coordination)
    try:
        assert await sweeper.reserve.sweep() == 0
    finally:
        await down.aclose()
    assert sweeper.machines.retired == []
    assert await Sweeper(stores[0]).reserve.sweep() == 1  # the store answering again
