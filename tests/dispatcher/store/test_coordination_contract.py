"""The coordination contract (dispatcher/store/coordination.py), the same tests for each of its
implementations: one process, several replicas on a real redis-server, and those replicas with
their store gone, which must answer as one process does (dispatcher/store/forgiving.py), except
for the four calls that are never forgiven."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from dispatcher.channel.credentials import BotCredentials
from dispatcher.store.client import StoreSettings, StoreUnavailable
from dispatcher.store.coordination import AtCapacity, Coordination
from dispatcher.store.local import LocalCoordination
from dispatcher.store.redis_coordination import RedisCoordination
from dispatcher.store.timelines import HEAD_EVENTS, KIND_BOUNDS, MAX_EVENTS, MAX_REPEATED, StoreTimelines
from dispatcher.store.weighted_rates import StoreRefused
from tests.dispatcher.store.conftest import settings_for, two_replicas
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer
from tests.support.waiting import within

ONE_PROCESS, REDIS, REDIS_DOWN = "one-process", "redis", "redis-store-down"
VALUES = {"session_id": "s-1", "token": "bot-token"}
SEALING_KEY = BotCredentials("c" * 40).sealing_key


def build(kind: str, request: pytest.FixtureRequest) -> Coordination:
    if kind == ONE_PROCESS:
        return LocalCoordination()
    if kind == REDIS:
        server: RedisServer = request.getfixturevalue("redis")
        return RedisCoordination(settings_for(server, "r-a", request.getfixturevalue("prefix")))

    # A port nothing listens on.
    return RedisCoordination(StoreSettings(url=f"redis://127.0.0.1:{free_port()}/0", replica_id="r-a",
                                           prefix="{down}:", timeout_seconds=0.5,
                                           message_secret="s" * 32))


@pytest.fixture(params=[ONE_PROCESS, REDIS, REDIS_DOWN])
async def coordination(request: pytest.FixtureRequest) -> AsyncIterator[Coordination]:
    one = build(request.param, request)
    yield one
    await one.aclose()


@pytest.fixture(params=[ONE_PROCESS, REDIS])
async def answering(request: pytest.FixtureRequest) -> AsyncIterator[Coordination]:
    """An implementation whose every call answers: one process, or a store that is up."""
    one = build(request.param, request)
    yield one
    await one.aclose()


# --- what every implementation answers alike, a store that is down included -------------------

async def test_an_idle_bot_is_claimed_for_a_session_and_the_claims_own_retry_still_holds(coordination) -> None:
    assert await coordination.claims.claim("bot-1", "s-1", until=int(time.time()) + 60)
    assert await coordination.claims.claim("bot-1", "s-1")


async def test_a_claim_that_failed_leaves_its_bot_bound_to_no_session(coordination) -> None:
    await coordination.claims.claim("bot-1", "s-1")
    await coordination.claims.unclaim("bot-1", "s-1")
    assert await coordination.claims.claimed_for("bot-1") is None


async def test_an_idle_credentials_first_hello_is_admitted(coordination) -> None:
    assert await coordination.claims.first_idle_hello("bot-1", int(time.time()) + 60)
    await coordination.claims.record_hello("bot-1")


async def test_a_bot_no_replica_heard_from_was_not_greeted(coordination) -> None:
    assert await coordination.claims.greeted(["never-dialled"]) == set()
    assert await coordination.claims.greeted([]) == set()


async def test_a_bot_no_session_took_is_not_among_the_claimed(coordination) -> None:
    await coordination.claims.claim("taken", "s-1")
    assert "never-claimed" not in await coordination.claims.claimed_among(["never-claimed", "taken"])
    assert await coordination.claims.claimed_among([]) == set()


async def test_a_bot_is_taken_for_its_retirement_and_taken_again_by_a_retirement_tried_again(answering) -> None:
    """Whoever took it first, a session or a retirement, holds it: tests/dispatcher/reserve/test_reserve_shared.py."""
    assert await answering.claims.retiring("bot-1")
    assert await answering.claims.retiring("bot-1")


async def test_owner_records_are_written_without_failing_the_caller(coordination) -> None:
    await coordination.owners.claim("s-1")
    await coordination.owners.reclaim("s-1")
    await coordination.owners.release("s-1")


async def test_a_sessions_owner_is_read_back_until_it_lets_go(answering) -> None:
    """One process holds every session's bot itself; with a store, the replica that wrote the record."""
    alone = isinstance(answering, LocalCoordination)
    assert await answering.owners.holder("s-1") == ("local" if alone else None)
    await answering.owners.claim("s-1")
    assert await answering.owners.holder("s-1") == ("local" if alone else "r-a")
    await answering.owners.release("s-1")
    assert await answering.owners.holder("s-1") == ("local" if alone else None)


async def test_a_claim_is_read_back_with_when_it_was_taken_on_the_stores_clock(answering) -> None:
    """One process keeps no claim record: nothing is ever judged stranded, nor retired from a session."""
    stranded = answering.stranded_claims
    assert await stranded.record("bot-1") is None
    assert await answering.claims.claim("bot-1", "s-1")
    record = await stranded.record("bot-1")
    if isinstance(answering, LocalCoordination):
        assert record is None
        assert not await stranded.retire("bot-1", "s-1")
        return
    assert record is not None and record.session_id == "s-1" and record.claimed_at is not None
    assert 0 <= record.now - record.claimed_at < 60  # a bound on a slow machine, not a timing
    assert abs(record.now - time.time()) < 60


async def test_a_stranded_claim_is_retired_only_from_the_session_it_names(answering) -> None:
    if isinstance(answering, LocalCoordination):
        return  # no claim records: the test above
    stranded = answering.stranded_claims
    assert await answering.claims.claim("bot-1", "s-1")
    await answering.claims.unclaim("bot-1", "s-1")
    assert await answering.claims.claim("bot-1", "s-2")
    assert not await stranded.retire("bot-1", "s-1")
    assert await answering.claims.claimed_for("bot-1") == "s-2"
    assert await stranded.retire("bot-1", "s-2")
    assert not await answering.claims.claim("bot-1", "s-2")  # the retirement's now


async def test_an_abandoned_verdict_counts_from_the_first_for_its_session_until_found_alive(answering) -> None:
    stranded = answering.stranded_claims
    assert await stranded.abandoned_for("bot-1", "s-1") == 0.0
    await asyncio.sleep(0.05)
    if isinstance(answering, LocalCoordination):
        assert await stranded.abandoned_for("bot-1", "s-1") == 0.0  # one process judges nothing stranded
        return
    assert await stranded.abandoned_for("bot-1", "s-1") >= 0.04  # the first verdict's time, kept
    assert await stranded.abandoned_for("bot-1", "s-2") == 0.0  # another session's claim: counted afresh
    await stranded.not_abandoned("bot-1")
    assert await stranded.abandoned_for("bot-1", "s-2") == 0.0


async def test_a_bots_channel_held_at_a_replica_is_seen_by_the_sweep(answering) -> None:
    if isinstance(answering, LocalCoordination):
        assert await answering.stranded_claims.link_held("bot-1")  # never judged: kept
        return
    assert not await answering.stranded_claims.link_held("bot-1")
    assert await answering.claims.admit_link("bot-1", None, "digest", 20.0, 60.0) == "first"
    assert await answering.stranded_claims.link_held("bot-1")


async def test_launches_stay_under_the_cap_and_a_failed_one_frees_its_place(coordination) -> None:
    launches = coordination.launches(keep_seconds=60.0)

    async def two() -> int:
        return 2

    await launches.recount(two, fresh_seconds=1.0)  # the provider runs two sessions
    async with launches.slot(3):
        with pytest.raises(AtCapacity):  # the launch under way counts
            async with launches.slot(3):
                pass
    with pytest.raises(AtCapacity):  # so does the one that landed, until a recount sees it
        async with launches.slot(3):
            pass
    with contextlib.suppress(RuntimeError):
        async with launches.slot(4):
            raise RuntimeError("the provider refused the launch")
    async with launches.slot(4):  # the failed one's place was given back
        pass
    assert launches.current() == 4


async def test_the_start_rate_lets_the_burst_through_then_says_how_long_to_wait(coordination) -> None:
    rate = coordination.start_rate(per_second=0.1, burst=2)  # one every 10 s after the burst
    assert [await rate.take("caller"), await rate.take("caller")] == [0, 0]
    assert 8.0 <= await rate.take("caller") <= 10.0
    assert await rate.take("another caller") == 0  # each key its own bucket


async def test_a_weighted_rate_takes_each_calls_cost_and_refuses_what_would_pass_its_burst(coordination) -> None:
    days = coordination.weighted_rate("usage-days", per_second=10, burst=800)  # 0.1 s a token after the burst
    assert [await days.take("key", 400), await days.take("key", 399)] == [0, 0]
    waited = await days.take("key", 398)  # nothing taken: 397 of 800 tokens must come back first
    assert 38.0 <= waited <= 39.8, waited
    assert await days.take("key", 1) == 0  # a smaller call still fits (that refusal took nothing)
    assert await days.take("another key", 800) == 0  # each caller its own bucket


async def test_a_weighted_rate_refuses_a_cost_that_is_no_whole_number_from_1_to_its_burst(coordination) -> None:
    days = coordination.weighted_rate("usage-days", per_second=10, burst=800)
    for cost in (0, -1_000_000, 801, 10**20, 1.5, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="from 1 to its burst"):
            await days.take("key", cost)
    assert await days.take("key", 800) == 0  # none of them took or gave back a token
    assert await days.take("key", 1) > 0


async def test_the_store_refusing_a_weighted_rates_script_is_no_outage_and_no_pass(
        redis: RedisServer, prefix: str) -> None:
    coordination = RedisCoordination(settings_for(redis, "r-a", prefix))
    try:
        # A caller's bucket of the wrong type: the store answers, with an error (WRONGTYPE).
        await coordination.store.call(lambda: coordination.store.redis.hset(
            coordination.store.key("usage-days", "key"), "f", "v"))
        days = coordination.weighted_rate("usage-days", per_second=10, burst=800)
        with pytest.raises(StoreRefused, match="WRONGTYPE"):
            await days.take("key", 1)
        assert coordination.health()["status"] == "ok"  # not reported down, nor forgiven with a local pass
    finally:
        await coordination.aclose()


async def test_the_create_limit_keeps_one_token_for_a_cold_start_and_cold_starts_go_first(coordination) -> None:
    creates = coordination.create_limit("fly", per_second=0.01, burst=3)  # the next token 100 s later
    assert coordination.create_limit("fly", per_second=0.01, burst=3) is creates  # the provider's and the reserve's
    assert (await creates.look()).spare == 2
    assert [(await creates.refill()).granted for _ in range(3)] == [True, True, False]  # one left for a cold start
    first = await creates.cold(max_wait=0.0)
    assert first.granted and first.wait == 0.0
    refused = await creates.cold(max_wait=5.0)  # the next is 100 s away: nothing reserved
    assert not refused.granted and 95 <= refused.wait <= 100
    queued = await creates.cold(max_wait=200.0)  # a caller who will wait reserves it
    assert queued.granted and 95 <= queued.wait <= 100
    assert not (await creates.refill()).granted
    assert 195 <= (await creates.look()).wait <= 200  # behind the queued cold start


async def test_a_callers_credentials_are_bounded_until_one_expires_or_is_given_back(coordination) -> None:
    counts = coordination.turn_credentials()
    now = time.time()
    assert await counts.take("key-a", "h1", now, now + 600, 1) == 0
    assert 599 <= await counts.take("key-a", "h2", now, now + 600, 1) <= 600
    assert await counts.take("key-b", "h3", now, now + 600, 1) == 0  # each key its own count
    await counts.give_back("key-a", "h1")
    assert await counts.take("key-a", "h2", now, now + 600, 1) == 0


async def test_a_one_time_token_opens_once(coordination) -> None:
    assert await coordination.spent.first_use("token-1", 60)
    assert not await coordination.spent.first_use("token-1", 60)
    assert await coordination.spent.first_use("token-2", 60)


async def test_a_bots_identity_proof_is_admitted_once(coordination) -> None:
    assert await coordination.identity_proofs.first_use("identity:sigv4:ab12", 60)
    assert not await coordination.identity_proofs.first_use("identity:sigv4:ab12", 60)
    assert await coordination.identity_proofs.first_use("identity:sigv4:cd34", 60)  # a fresh presign


async def test_a_sessions_values_wait_until_taken(coordination) -> None:
    values = coordination.session_values(SEALING_KEY)
    await values.put("s-1", VALUES, ttl_seconds=60)
    assert await values.get("s-1") == VALUES
    assert await values.read("s-1") == VALUES
    await values.delete("s-1")
    assert await values.get("s-1") is None


async def test_a_call_here_is_spent_here_once_opened_and_an_unknown_one_nowhere(coordination) -> None:
    call = await coordination.calls.open("s-1", "the-secret")
    try:
        assert not call.hello.done()  # no other replica took its bot's media socket
        assert await coordination.calls.spend_here("s-1", "the-secret")
        assert await coordination.calls.spend("no-such-call", "the-secret") is None
    finally:
        await call.end("done")


async def test_a_sessions_timeline_reads_back_in_order_keeping_its_opening_then_its_newest(coordination) -> None:
    """Past the bound the opening stays (`requested`, which usage, costs and the release judge read)
    and the oldest event after it goes: a bot that reports in a loop cannot push out how it began."""
    assert await coordination.timelines.read("s-1") == []
    await coordination.timelines.append("s-1", {"event": "requested"})
    for n in range(MAX_EVENTS + 3):
        await coordination.timelines.append("s-1", {"event": "noted", "n": n})
    await coordination.timelines.append("s-2", {"event": "requested"})
    events = await coordination.timelines.read("s-1")
    assert events[0] == {"event": "requested"}
    opening = list(range(HEAD_EVENTS - 1))  # the head: `requested`, then the first events after it
    newest = list(range(MAX_EVENTS + 3 - (MAX_EVENTS - HEAD_EVENTS), MAX_EVENTS + 3))
    assert [e["n"] for e in events[1:]] == opening + newest  # bounded: the oldest after the head go first
    assert len(events) == MAX_EVENTS
    await coordination.timelines.append("s-1", {"event": "ended"})  # and so on, each event past the bound
    again = await coordination.timelines.read("s-1")
    assert again[:HEAD_EVENTS] == events[:HEAD_EVENTS] and again[HEAD_EVENTS:] == events[HEAD_EVENTS + 1:] + [
        {"event": "ended"}]
    assert await coordination.timelines.read("s-2") == [{"event": "requested"}]


@pytest.mark.parametrize("count", [1, HEAD_EVENTS, HEAD_EVENTS + 1, MAX_EVENTS - 1, MAX_EVENTS, MAX_EVENTS + 1,
                                   MAX_EVENTS + 2, 200])
async def test_a_timeline_of_any_length_reads_as_its_first_events_then_its_newest(coordination, count: int) -> None:
    """Up to the bound every event; past it exactly the first `HEAD_EVENTS` and the newest after them."""
    sent = [{"event": "requested"}, *({"event": "noted", "n": n} for n in range(count - 1))]
    for event in sent:
        await coordination.timelines.append("s-1", event)
    kept = sent if count <= MAX_EVENTS else sent[:HEAD_EVENTS] + sent[HEAD_EVENTS - MAX_EVENTS:]
    assert await coordination.timelines.read("s-1") == kept


async def test_only_a_requested_event_opens_a_timeline(coordination) -> None:
    """A stop or a report naming a session that never started writes nothing: each such call
    would otherwise keep a record a day (the store) or evict another session's (one process)."""
    await coordination.timelines.append("never-started", {"event": "stop_requested"})
    assert await coordination.timelines.read("never-started") == []
    await coordination.timelines.append("s-3", {"event": "requested"})
    await coordination.timelines.append("s-3", {"event": "stop_requested"})
    assert [e["event"] for e in await coordination.timelines.read("s-3")] == ["requested", "stop_requested"]


async def test_a_timeline_keeps_each_of_the_bots_kinds_up_to_its_bound_and_the_calls_end_after_them(
        coordination) -> None:
    """A bot that reports in a loop, dialling its channel again at replica after replica, is passed on anew at
    each (dispatcher/channel/report_caps.py): its session's timeline keeps 8 errors and 4 ends (the bot's and
    the dispatcher's own) whoever appends them, so the SIP edge's `sip_ended`, which prices the call, stays."""
    await coordination.timelines.append("s-1", {"event": "requested"})
    await coordination.timelines.append("s-2", {"event": "requested"})
    for n in range(100):
        await coordination.timelines.append("s-1", {"event": "error", "n": n})
    for n in range(10):
        await coordination.timelines.append("s-1", {"event": "ended", "n": n})
    await coordination.timelines.append("s-1", {"event": "sip_ended", "answered_seconds": 61})
    events = await coordination.timelines.read("s-1")
    kinds = [e["event"] for e in events]
    assert kinds == ["requested", *["error"] * KIND_BOUNDS["error"], *["ended"] * KIND_BOUNDS["ended"], "sip_ended"]
    assert KIND_BOUNDS["error"] == 8 and KIND_BOUNDS["ended"] == 4
    assert [e["n"] for e in events[1:-1]] == [*range(8), 0, 1, 2, 3]  # the first ones: a later one is dropped
    assert events[-1] == {"event": "sip_ended", "answered_seconds": 61}
    for n in range(3):  # the other session counts its own
        await coordination.timelines.append("s-2", {"event": "error", "n": n})
    await coordination.timelines.append("s-2", {"event": "ended"})
    assert [e["event"] for e in await coordination.timelines.read("s-2")] == ["requested", "error", "error", "error",
                                                                               "ended"]
    # A cold bot's hello notes `machine_started`: one that dials its channel again and again, after its call's end,
    # adds one, and the end stays.
    for _ in range(60):
        await coordination.timelines.append("s-1", {"event": "machine_started"})
    kept = [e["event"] for e in await coordination.timelines.read("s-1")]
    assert kept.count("machine_started") == 1 and kept[-2:] == ["sip_ended", "machine_started"], kept


async def test_the_dispatchers_own_events_are_not_bounded_by_kind(coordination) -> None:
    await coordination.timelines.append("s-1", {"event": "requested"})
    for n in range(30):
        await coordination.timelines.append("s-1", {"event": "paced", "n": n})
    assert [e.get("n") for e in await coordination.timelines.read("s-1")] == [None, *range(30)]


async def test_a_replica_starts_and_drains_whatever_its_store_does(coordination) -> None:
    async def handler(session_id: str, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        return {}

    await coordination.start(handler, held=list)
    await coordination.drain()


# --- what answers only while the store does ------------------------------------------------

async def test_a_keyed_start_holds_its_lease_and_lets_go(answering) -> None:
    async with answering.starts.held("s-1", wait_seconds=1.0):
        pass
    async with answering.starts.held("s-1", wait_seconds=1.0):  # let go: the next start goes at once
        pass


async def test_a_webhook_is_seen_once_for_as_long_as_it_is_kept(answering) -> None:
    assert await answering.webhooks.first_use("webhook:twilio:CA1", 25 * 3600)
    assert not await answering.webhooks.first_use("webhook:twilio:CA1", 25 * 3600)
    assert await answering.webhooks.first_use("webhook:twilio:CA2", 25 * 3600)


async def test_a_webhook_claim_given_back_counts_again_and_others_stay_spent(answering) -> None:
    """`release` forgets one claim: a warm transfer's callback that could not act gives its claim back."""
    assert await answering.webhooks.first_use("webhook:telnyx:S1", 60)
    assert await answering.webhooks.first_use("webhook:telnyx:S2", 60)
    await answering.webhooks.release("webhook:telnyx:S1")
    await answering.webhooks.release("webhook:telnyx:S3")  # never claimed: nothing to forget, no error
    assert await answering.webhooks.first_use("webhook:telnyx:S1", 60)
    assert not await answering.webhooks.first_use("webhook:telnyx:S1", 60)
    assert not await answering.webhooks.first_use("webhook:telnyx:S2", 60)


async def test_a_webhook_claim_given_back_at_one_replica_counts_again_at_another(
        replica_pair: tuple[RedisCoordination, RedisCoordination]) -> None:
    claimer, retried = replica_pair
    assert await claimer.webhooks.first_use("webhook:telnyx:S1", 60)
    assert not await retried.webhooks.first_use("webhook:telnyx:S1", 60)  # claimed at the other replica
    await claimer.webhooks.release("webhook:telnyx:S1")
    assert await retried.webhooks.first_use("webhook:telnyx:S1", 60)  # the store forgot it: the retry counts
    assert not await claimer.webhooks.first_use("webhook:telnyx:S1", 60)  # and the claimer's own copy too


async def test_a_session_held_by_no_other_replica_is_not_asked_for(answering) -> None:
    await answering.owners.claim("s-1")  # its bot is here
    assert await answering.ask_owner("s-1", "webrtc.offer", {}, timeout=1.0) is None
    assert await answering.ask_owner("s-unknown", "webrtc.offer", {}, timeout=1.0) is None


async def test_a_call_held_by_no_other_replica_is_not_asked_for(answering: Coordination) -> None:
    call = await answering.calls.open("s-1", "media-secret")  # its carrier socket is here
    try:
        assert await answering.ask_call("s-1", "phone.transfer", {}, timeout=1.0) is None
        assert await answering.ask_call("s-unknown", "phone.transfer", {}, timeout=1.0) is None
    finally:
        await call.end("caller")


# --- the store down: never forgiven where one process's answer would be wrong ---------------

async def test_with_the_store_down_the_start_lease_the_owner_and_call_lookups_and_webhooks_say_so(request) -> None:
    down = build(REDIS_DOWN, request)
    try:
        with pytest.raises(StoreUnavailable):
            async with down.starts.held("s-1", wait_seconds=1.0):
                pass
        with pytest.raises(StoreUnavailable):
            await down.ask_owner("s-1", "webrtc.offer", {}, timeout=1.0)
        with pytest.raises(StoreUnavailable):  # where a call's stream is: this replica alone cannot say
            await down.ask_call("s-1", "phone.transfer", {}, timeout=1.0)
        with pytest.raises(StoreUnavailable):  # a security check: this replica alone cannot rule out a replay
            await down.webhooks.first_use("webhook:twilio:CA1", 25 * 3600)
        with pytest.raises(StoreUnavailable):  # nor can it give a webhook's claim back
            await down.webhooks.release("webhook:twilio:CA1")
        with pytest.raises(StoreUnavailable):  # the replica holding the bot grants its own claims meanwhile
            await down.claims.retiring("bot-1")
        with pytest.raises(StoreUnavailable):  # "nobody" would let the reserve's sweep stop a live session's bot
            await down.owners.holder("s-1")
        with pytest.raises(StoreUnavailable):  # nor may the sweep take a claim for stranded on a guess
            await down.stranded_claims.record("bot-1")
        with pytest.raises(StoreUnavailable):
            await down.stranded_claims.link_held("bot-1")
        with pytest.raises(StoreUnavailable):
            await down.stranded_claims.abandoned_for("bot-1", "s-1")
        with pytest.raises(StoreUnavailable):
            await down.stranded_claims.retire("bot-1", "s-1")
        assert down.health()["status"] == "unreachable"
    finally:
        await down.aclose()


async def test_the_replicas_share_one_count_per_refresh_and_its_cap(request) -> None:
    """One replica lists the provider for the deployment; the others, due to recount within the
    refresh window or while it counts, use its count instead of listing again (on Fly every app,
    1 list/s each), and every replica's launches still stay under the cap."""
    server, prefix = request.getfixturevalue("redis"), request.getfixturevalue("prefix")
    replicas = [RedisCoordination(settings_for(server, f"r-{n}", prefix)) for n in range(3)]
    lists = 0
    answer = asyncio.Event()

    async def two() -> int:  # the provider runs two sessions
        nonlocal lists
        lists += 1
        await answer.wait()
        return 2

    try:
        launches = [r.launches(keep_seconds=60.0) for r in replicas]
        counting = [asyncio.create_task(each.recount(two, fresh_seconds=30.0)) for each in launches]
        await asyncio.sleep(0.3)  # one replica lists; the others wait for its count
        answer.set()
        ages = await asyncio.gather(*counting)
        assert lists == 1 and all(0 <= age < 5 for age in ages)
        assert await launches[2].recount(two, fresh_seconds=30.0) < 5 and lists == 1  # still fresh: used
        async with launches[0].slot(4):  # the deployment's 3rd session, at one replica…
            pass
        with pytest.raises(AtCapacity):  # …counted at another, which never listed
            async with launches[1].slot(3):
                pass
        await asyncio.sleep(0.05)
        await launches[1].recount(two, fresh_seconds=0.01)  # past the window: counted again, once
        assert lists == 2
    finally:
        for replica in replicas:
            await replica.aclose()


async def test_a_failed_count_lets_the_next_replica_count_at_once(request) -> None:
    server, prefix = request.getfixturevalue("redis"), request.getfixturevalue("prefix")
    replicas = [RedisCoordination(settings_for(server, f"r-{n}", prefix)) for n in range(2)]

    async def failing() -> int:
        raise RuntimeError("the provider's list failed")

    async def one() -> int:
        return 1

    try:
        first, second = (r.launches(keep_seconds=60.0) for r in replicas)
        with pytest.raises(RuntimeError):
            await first.recount(failing, fresh_seconds=30.0)
        # No lease left: it counts at once, where a lease left behind would hold it for the 60 s kept.
        assert await asyncio.wait_for(second.recount(one, fresh_seconds=30.0), timeout=30) < 2
        assert second.current() == 1
    finally:
        for replica in replicas:
            await replica.aclose()


async def test_a_timeline_written_at_one_replica_is_read_at_another_until_it_expires(request) -> None:
    server: RedisServer = request.getfixturevalue("redis")
    prefix = request.getfixturevalue("prefix")
    writer = RedisCoordination(settings_for(server, "r-a", prefix))
    reader = RedisCoordination(settings_for(server, "r-b", prefix))
    try:
        await writer.timelines.append("s-1", {"event": "requested", "replica": "r-a"})
        assert await reader.timelines.read("s-1") == [{"event": "requested", "replica": "r-a"}]
        short = StoreTimelines(writer.store, writer.seal, keep_seconds=0.3)  # kept a bounded time (a day by default)
        await short.append("s-2", {"event": "requested"})
        assert await reader.timelines.read("s-2") == [{"event": "requested"}]

        async def forgotten() -> bool:
            return await reader.timelines.read("s-2") == []

        assert await within(forgotten)
    finally:
        await writer.aclose()
        await reader.aclose()


async def test_a_bots_kinds_are_bounded_across_replicas(request) -> None:
    """Its errors and ends reported at two replicas (each passes on 8 and 1 of its own): the timeline keeps 8
    and 2, read alike at either."""
    server: RedisServer = request.getfixturevalue("redis")
    async with two_replicas(server, request.getfixturevalue("prefix")) as (a, b):
        await a.timelines.append("s-1", {"event": "requested"})
        for replica in (a, b):
            for n in range(MAX_REPEATED):
                await replica.timelines.append("s-1", {"event": "error", "n": n, "replica": replica.replica_id})
            await replica.timelines.append("s-1", {"event": "ended", "replica": replica.replica_id})
        await b.timelines.append("s-1", {"event": "first_audio"})
        await a.timelines.append("s-1", {"event": "first_audio"})
        await b.timelines.append("s-1", {"event": "sip_ended"})
        kept = [(e["event"], e.get("replica")) for e in await a.timelines.read("s-1")]
        assert kept == [("requested", None), *[("error", "r-a")] * MAX_REPEATED, ("ended", "r-a"), ("ended", "r-b"),
                        ("first_audio", None), ("sip_ended", None)]
        assert await b.timelines.read("s-1") == await a.timelines.read("s-1")


async def test_health_names_the_store_when_there_is_one(answering) -> None:
    health = answering.health()
    if isinstance(answering, LocalCoordination):
        assert health == {}  # one process: nothing shared to be unwell
    else:
        assert health["status"] == "ok" and health["replica"] == "r-a"


async def test_the_create_limit_is_counted_once_for_every_replica(request) -> None:
    server, prefix = request.getfixturevalue("redis"), request.getfixturevalue("prefix")
    replicas = [RedisCoordination(settings_for(server, f"r-{n}", prefix)) for n in range(3)]
    try:
        limits = [r.create_limit("fly", per_second=0.01, burst=3) for r in replicas]
        turns = [await limits[n % 3].cold(max_wait=0.0) for n in range(6)]
        assert [t.granted for t in turns] == [True, True, True, False, False, False]
        assert not (await limits[0].refill()).granted  # the cold starts at the others spent it
    finally:
        for replica in replicas:
            await replica.aclose()


async def test_a_keys_sessions_are_held_up_to_its_share_and_given_back(coordination) -> None:
    assert await coordination.key_sessions.hold("key-1", "s-1", 2, 60.0) is None
    assert await coordination.key_sessions.hold("key-1", "s-2", 2, 60.0) is None
    held = await coordination.key_sessions.hold("key-1", "s-3", 2, 60.0)  # past its share: nothing recorded
    assert held is not None and set(held) == {"s-1", "s-2"} and all(0 <= ago < 30 for ago in held.values())
    assert await coordination.key_sessions.hold("key-2", "s-4", 2, 60.0) is None  # another key's own share
    await coordination.key_sessions.release("key-1", ["s-1"])
    assert await coordination.key_sessions.hold("key-1", "s-3", 2, 60.0) is None
    assert await coordination.key_sessions.hold("key-1", "s-5", 1, 0.000001) is not None  # s-2, s-3 held


async def test_places_held_for_handed_calls_are_bounded_by_the_room_and_given_back(answering) -> None:
    places = answering.held_places
    assert await places.hold("t-1", 2, 60.0) and await places.hold("t-2", 2, 60.0)
    assert not await places.hold("t-3", 2, 60.0)  # the room is taken: nothing held
    assert not await places.hold("t-4", 0, 60.0) and await places.held() == 2
    await places.release("t-1")
    assert await places.held() == 1 and await places.hold("t-3", 2, 60.0) and await places.held() == 2


async def test_places_for_handed_calls_are_never_held_on_one_replicas_count_without_the_store() -> None:
    down = build(REDIS_DOWN, None)  # type: ignore[arg-type]  # needs no fixture
    try:
        with pytest.raises(StoreUnavailable):
            await down.held_places.hold("t-1", 5, 60.0)
        with pytest.raises(StoreUnavailable):
            await down.held_places.held()
    finally:
        await down.aclose()
