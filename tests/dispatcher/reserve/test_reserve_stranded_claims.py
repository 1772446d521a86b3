"""The sweep and a claim that never landed (a real redis-server): a machine still listed idle whose bot's
claim record names a session that ended after the claim, or whose claim is long past with nothing
holding its bot for longer than a bot takes to be held again, is retired (`claim_stranded`) instead of
waiting for the record to run out (up to a day); a live session's machine, a claim that may still be
landing, a claim given back and taken again meanwhile, and a session the store says nothing about now
keep theirs. Times are set as a store that ran that long would hold them: a claim's and a first verdict's
record written back in time."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.channel_client import CONNECT_TIMEOUT_SECONDS
from bot.channel_session import RECONNECT_DELAYS_SECONDS
from dispatcher.channel.bots import BotChannels
from dispatcher.channel.credentials import BotCredentials
from dispatcher.channel.identity import Unverified
from dispatcher.observability.metrics import Metrics
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.reserve import Reserve
from dispatcher.reserve.stranded import BOT_REDIAL_SECONDS, CLOCK_SLACK_SECONDS, LANDS_WITHIN_SECONDS
from dispatcher.store.client import Store
from dispatcher.store.redis_coordination import RedisCoordination
from tests.dispatcher.reserve.test_reserve_shared import Machines, cut_off, server, stores
from tests.support.redis_server import RedisServer

__all__ = ["cut_off", "server", "stores"]  # the shared module's fixtures: a redis-server, replicas' stores

BOT, SESSION = "rsv-stranded", "session-there"
MAX_SESSION = 1800  # the sessions' cap (MAX_SESSION_SECONDS' default)
LONG_AGO = LANDS_WITHIN_SECONDS + MAX_SESSION + 100.0  # seconds before now: past any claim and call it began
LEASE = 15.0  # the sweeping replica's owner lease (REDIS_LEASE_SECONDS' default)
HELD_LONG_ENOUGH = LEASE + BOT_REDIAL_SECONDS + 10.0  # a first abandoned verdict this long ago is confirmed


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
                               clock=lambda: 1000.0, coordination=coordination, max_session_seconds=MAX_SESSION)

    def stranded(self) -> float:
        value = self.metrics.registry.get_sample_value("voicefleet_reserve_retired_total",
                                                       {"provider": "paper", "reason": "claim_stranded"})
        return value or 0.0


@pytest.fixture
async def there(server: RedisServer, stores: tuple[Store, Store]) -> AsyncIterator[RedisCoordination]:
    """The replica whose start claimed the bot: its claim record is written, its session's timeline
    is the store's; its owner records outlive any slow test. Tests named alike share a prefix: whatever
    the one before left under it goes first."""
    with server.admin() as admin:
        for key in admin.scan_iter(match=f"{stores[1].key('*')}"):
            admin.delete(key)
    coordination = RedisCoordination(dataclasses.replace(stores[1].settings, lease_seconds=300.0))
    assert await coordination.claims.claim(BOT, SESSION)
    yield coordination
    await coordination.aclose()


async def timeline(coordination: RedisCoordination, *events: tuple[str, float, dict[str, Any]]) -> None:
    """`SESSION`'s events, each (event, seconds before now, fields)."""
    now = time.time()
    for event, ago, fields in events:
        await coordination.timelines.append(SESSION, {"event": event, "at": round(now - ago, 3), **fields})


async def claimed_ago(store: Store, seconds: float, session_id: str = SESSION) -> None:
    """The bot's claim was taken `seconds` ago (its time as store/claims.py records it)."""
    await store.redis.set(store.key("claimed-at", BOT), f"{int((time.time() - seconds) * 1000)} {session_id}")


async def first_found_abandoned_ago(store: Store, seconds: float) -> None:
    """A sweep first found the claim abandoned `seconds` ago (as store/stranded_claims.py records it)."""
    await store.redis.set(store.key("abandoned", BOT), f"{int((time.time() - seconds) * 1000)} {SESSION}")


async def kept(store: Store) -> None:
    """A sweep at a replica on `store` leaves the claimed bot's machine."""
    sweeper = Sweeper(store)
    assert await sweeper.reserve.sweep() == 0
    assert sweeper.machines.retired == []


async def retired(store: Store) -> None:
    sweeper = Sweeper(store)
    assert await sweeper.reserve.sweep() == 1
    assert sweeper.machines.retired == [BOT]
    assert sweeper.stranded() == 1


async def abandoned(stores: tuple[Store, Store], there: RedisCoordination) -> None:
    """The claiming replica died between the claim and the re-tag: no end is ever told, and the owner
    record it wrote ran out with it."""
    await claimed_ago(stores[1], LONG_AGO)
    await timeline(there, ("requested", LONG_AGO + 1.0, {}))


# --- over: the session ended after the claim ---------------------------------------------------------


@pytest.mark.parametrize("end", [
    ("ended", {"reason": "not_placed"}),  # the dispatcher's own end of a call never placed
    ("ended", {"reason": "caller_hung_up", "machine_id": BOT}),  # this bot's: it served the session, and ended
    ("machine_ended", {"state": "stopped", "machine_id": BOT}),
    ("stop_requested", {}),
    ("failed", {"code": "session_setup_failed"}),  # the re-tag failed, and so did the cold launch
])
async def test_a_machine_listed_idle_whose_claims_session_ended_after_the_claim_is_retired(
        stores: tuple[Store, Store], there: RedisCoordination, end: tuple[str, dict[str, Any]]) -> None:
    event, fields = end
    await claimed_ago(stores[1], 100.0)
    await timeline(there, ("requested", 101.0, {}), (event, 20.0, fields))
    await retired(stores[0])


async def test_an_end_before_the_claim_is_an_earlier_trys_even_when_its_clock_sorts_it_last(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    """A keyed start failed (its replica's clock ahead), was tried again at a replica whose clock is behind,
    and the retry claimed this bot a minute ago: sorted by time, the retry's `requested` comes before the
    failure, but the failure is not after the claim. The call the retry started keeps its machine."""
    await claimed_ago(stores[1], 60.0)
    await timeline(there, ("requested", LONG_AGO, {}), ("requested", 75.0, {}),
                   ("failed", 65.0, {"code": "bot_unreachable"}))
    await kept(stores[0])


async def test_a_retry_whose_requested_event_never_reached_the_timeline_keeps_its_machine(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    """The stored timeline is best-effort: the retry's `requested` was written late, or trimmed. Its claim
    is a minute old; the one failure on the timeline is the first try's."""
    await claimed_ago(stores[1], 60.0)
    await timeline(there, ("requested", LONG_AGO, {}), ("failed", LONG_AGO - 1.0, {"code": "bot_unreachable"}))
    await kept(stores[0])


async def test_an_earlier_trys_machine_ending_after_the_claim_is_no_end_of_this_one(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    """The first try's cold machine is seen ended (by the reaper's listing) long after the retry claimed this
    bot: its end names its own machine."""
    await claimed_ago(stores[1], 100.0)
    await timeline(there, ("requested", LONG_AGO, {}), ("requested", 101.0, {}),
                   ("machine_ended", 10.0, {"state": "failed", "machine_id": "rsv-first-try"}))
    await kept(stores[0])


async def test_an_end_told_within_the_clocks_slack_of_the_claim_is_not_taken_for_one_after_it(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    await claimed_ago(stores[1], 100.0)
    await timeline(there, ("requested", 101.0, {}), ("failed", 100.0 - CLOCK_SLACK_SECONDS + 5.0,
                                                    {"code": "session_setup_failed"}))
    await kept(stores[0])


# --- abandoned: confirmed past a bot's re-dial -----------------------------------------------------


async def test_an_abandoned_claim_is_retired_only_once_found_so_past_an_owner_lease_and_a_bots_redial(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    """The first verdict keeps the machine (its bot may be re-dialling, its replica's owner record just
    lapsed); one found again later than a lease and a bot's longest re-dial retires it."""
    await abandoned(stores, there)
    await kept(stores[0])
    await first_found_abandoned_ago(stores[1], LEASE + BOT_REDIAL_SECONDS - 20.0)  # past the lease, not the re-dial
    await kept(stores[0])
    await first_found_abandoned_ago(stores[1], HELD_LONG_ENOUGH)
    await retired(stores[0])


async def test_a_claim_younger_than_the_sessions_cap_keeps_its_machine_however_long_found_abandoned(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    """Its bot took the call, lost its channel for good (its re-dials all failed), and serves on alone:
    nothing in the store says so, but the call ends by the sessions' cap at the latest."""
    await claimed_ago(stores[1], LANDS_WITHIN_SECONDS + MAX_SESSION / 2)
    await timeline(there, ("requested", LANDS_WITHIN_SECONDS + MAX_SESSION / 2 + 1.0, {}))
    await first_found_abandoned_ago(stores[1], HELD_LONG_ENOUGH)
    await kept(stores[0])


async def test_a_claim_found_alive_in_between_counts_its_abandoned_time_afresh(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    """Found abandoned long ago, then held (its bot re-dialled a replica), now abandoned again (that replica
    died too, and the bot is re-dialling once more): the first verdict is now's."""
    await abandoned(stores, there)
    await first_found_abandoned_ago(stores[1], HELD_LONG_ENOUGH)
    await there.owners.claim(SESSION)
    await kept(stores[0])
    await there.owners.release(SESSION)
    await kept(stores[0])


async def test_a_bot_whose_channel_a_replica_holds_keeps_its_machine(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    """Its reports lost and its session's owner record not written yet, the bot is on a channel (its hold)."""
    await abandoned(stores, there)
    await first_found_abandoned_ago(stores[1], HELD_LONG_ENOUGH)
    assert await there.claims.admit_link(BOT, None, "key-digest", 20.0, 60.0) == "first"
    await kept(stores[0])


def test_the_wait_for_a_verdict_covers_a_bots_longest_redial() -> None:
    """The bot's schedule (bot/channel_session.py) is not the dispatcher's to import: held to it here."""
    longest = sum(RECONNECT_DELAYS_SECONDS) + len(RECONNECT_DELAYS_SECONDS) * CONNECT_TIMEOUT_SECONDS
    assert BOT_REDIAL_SECONDS >= longest


async def test_a_live_session_whose_bot_is_held_at_a_replica_keeps_the_machine(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    """The bot took the session but its replica died before the re-tag; the bot dialled another replica,
    which holds it for the session (its owner record). Its machine still lists idle: never stopped."""
    await abandoned(stores, there)
    await first_found_abandoned_ago(stores[1], HELD_LONG_ENOUGH)
    await there.owners.claim(SESSION)
    await kept(stores[0])


async def test_a_session_this_bot_reported_for_keeps_the_machine_while_no_replica_holds_it(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    """Between two replicas (its own dropped, its next not reached yet) a bot serving the session has no
    owner record; that it reported for the session says the machine may be the session's."""
    await abandoned(stores, there)
    await first_found_abandoned_ago(stores[1], HELD_LONG_ENOUGH)
    await timeline(there, ("ready", LONG_AGO - 5.0, {"machine_id": BOT}))
    await kept(stores[0])


# --- the retirement takes the claim it judged, or none ---------------------------------------------


async def test_a_claim_given_back_and_taken_by_another_session_while_judged_keeps_its_machine(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    """The sweep reads the claim (the session's, over), then the session gives the bot back and another
    session claims it, and its call starts: the retirement takes the record only from the session it judged."""
    await claimed_ago(stores[1], 100.0)
    await timeline(there, ("requested", 101.0, {}), ("ended", 20.0, {"reason": "not_placed"}))
    sweeper = Sweeper(stores[0])
    coordination = sweeper.reserve._coordination
    judged = coordination.timelines.read_shared

    async def read_while_claimed_again(session_id: str) -> list[dict[str, Any]]:
        events = await judged(session_id)
        await there.claims.unclaim(BOT, SESSION)
        assert await there.claims.claim(BOT, "session-next")
        return events

    coordination.timelines.read_shared = read_while_claimed_again  # type: ignore[method-assign]
    assert await sweeper.reserve.sweep() == 0
    assert sweeper.machines.retired == []
    assert await there.claims.claimed_for(BOT) == "session-next"


async def test_a_retired_stranded_claim_keeps_its_records_life_and_refuses_any_later_claim(
        server: RedisServer, stores: tuple[Store, Store], there: RedisCoordination) -> None:
    await claimed_ago(stores[1], 100.0)
    await timeline(there, ("requested", 101.0, {}), ("stop_requested", 20.0, {}))
    key = stores[1].key("claim", BOT)
    with server.admin() as admin:
        life = admin.ttl(key)
        await retired(stores[0])
        assert 0 < admin.ttl(key) <= life
    assert not await there.claims.claim(BOT, SESSION)


# --- what keeps a machine whatever ---------------------------------------------------------------


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
    await claimed_ago(stores[1], 100.0)
    await timeline(there, ("requested", 101.0, {}), ("failed", 20.0, {"code": "start_timeout"}))
    await kept(stores[0])


async def test_a_session_with_no_timeline_keeps_the_machine_until_its_record_runs_out(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    await claimed_ago(stores[1], LONG_AGO)
    await first_found_abandoned_ago(stores[1], HELD_LONG_ENOUGH)
    await kept(stores[0])


async def test_a_claim_written_without_its_time_keeps_the_machine_until_its_record_runs_out(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    """A previous release's claim (no `claimed-at`): its age is not known."""
    await abandoned(stores, there)
    await first_found_abandoned_ago(stores[1], HELD_LONG_ENOUGH)
    await stores[1].redis.delete(stores[1].key("claimed-at", BOT))
    await kept(stores[0])


async def test_a_claims_time_written_for_another_of_its_claims_is_not_this_ones(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    await abandoned(stores, there)
    await first_found_abandoned_ago(stores[1], HELD_LONG_ENOUGH)
    await claimed_ago(stores[1], LONG_AGO, session_id="retired by the reserve")
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


@pytest.mark.parametrize("unreachable", ["timelines", "owners", "stranded_claims"])
async def test_a_session_the_store_says_nothing_about_now_keeps_the_machine_until_the_next_sweep(
        stores: tuple[Store, Store], there: RedisCoordination, cut_off: Store, unreachable: str) -> None:
    """The claim record was read, then the session's timeline (or its owner record, or the claim's own
    records) could not be: the sweep stops there, and the next one asks again."""
    await claimed_ago(stores[1], 100.0)
    await timeline(there, ("requested", 101.0, {}), ("stop_requested", 20.0, {}))  # over, as the store would say
    coordination, down = RedisCoordination(stores[0].settings), RedisCoordination(cut_off.settings)
    setattr(coordination, unreachable, getattr(down, unreachable))
    sweeper = Sweeper(stores[0], coordination)
    try:
        assert await sweeper.reserve.sweep() == 0
    finally:
        await down.aclose()
    assert sweeper.machines.retired == []
    assert await Sweeper(stores[0]).reserve.sweep() == 1  # the store answering again


async def test_a_claim_record_gone_while_it_was_judged_skips_only_its_machine(
        stores: tuple[Store, Store], there: RedisCoordination) -> None:
    """The record was given back (or ran out) between the sweep's two reads: that bot waits for the next
    sweep, and the sweep goes on with the machines listed after it."""
    sweeper = Sweeper(stores[0])
    sweeper.machines.launched.append("rsv-unclaimed")  # idle past its age, claimed by nobody

    async def gone(_bot_id: str) -> None:
        return None

    sweeper.reserve._coordination.stranded_claims.record = gone  # type: ignore[method-assign]
    try:
        assert await sweeper.reserve.sweep() == 1
        assert sweeper.machines.retired == ["rsv-unclaimed"]
    finally:
        await sweeper.reserve.aclose()
