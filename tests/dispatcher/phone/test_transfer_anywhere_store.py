"""A relayed transfer when the store misbehaves between the asking replica and the call's: a real
redis-server, B reaching it through a proxy that delays or loses what B sends (tests/support/store_proxy.py),
the call's `Transfers` at A against the strict fake of Twilio's Calls resource.

What B may say depends on what it knows: before its request can have been sent, "nothing was
transferred, try again" (503); after, only "the outcome is unknown" (504), never a retry advice."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from dispatcher.channel.bots import BotChannels
from dispatcher.channel.credentials import BotCredentials
from dispatcher.channel.identity import Unverified
from dispatcher.channel.ownership import Ownership
from dispatcher.phone.transfer_anywhere import TransfersAnywhere
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.phone.transfers import Transfers
from dispatcher.store.redis_coordination import RedisCoordination
from tests.dispatcher.phone.test_transfer_anywhere import answering, refusal
from tests.dispatcher.phone.test_transfers import DESK, Setup, make, twilio  # noqa: F401 (fixtures)
from tests.dispatcher.store.conftest import prefix, redis, settings_for, two_replicas  # noqa: F401 (fixtures)
from tests.fakes.twilio import FakeTwilio
from tests.support.redis_server import RedisServer
from tests.support.store_proxy import StoreProxy, store_proxy

UNKNOWN = (504, "transfer_outcome_unknown", None, {"outcome": "unknown"})


@contextlib.asynccontextmanager
async def a_direct_b_proxied(redis: RedisServer, prefix: str, setup: Setup, b_timeout: float,  # noqa: F811
                             ) -> AsyncIterator[tuple[StoreProxy, TransfersAnywhere]]:
    """A holds `setup`'s call and reaches the store directly; B, holding no call, through the proxy
    with `b_timeout` as its REDIS_TIMEOUT_SECONDS. Yields the proxy and B's transfers (relaying 3 s)."""
    async with store_proxy(redis) as proxy:
        a = RedisCoordination(settings_for(redis, "r-a", prefix, lease_seconds=60.0))
        b = RedisCoordination(settings_for(proxy, "r-b", prefix, lease_seconds=60.0,  # type: ignore[arg-type]
                                           timeout_seconds=b_timeout))
        try:
            await a.start(answering(TransfersAnywhere(setup.transfers, a)), held=tuple)
            await b.start(answering(None), held=tuple)
            assert a.relay is not None and b.relay is not None
            assert await a.relay.wait_subscribed(60) and await b.relay.wait_subscribed(60)
            await a.call_records.record(setup.call.session_id, "media-secret")
            yield proxy, TransfersAnywhere(Transfers(None, None, None), b, relay_seconds=3.0)
        finally:
            await a.aclose()
            await b.aclose()


def told(error: Any) -> tuple[Any, ...]:
    return (error.status, error.code, error.retry_after, error.extra)


async def test_a_publish_whose_reply_is_late_is_an_unknown_outcome_never_try_again_and_the_call_was_transferred(
    redis: RedisServer, prefix: str, make: Callable[..., Setup], twilio: FakeTwilio,  # noqa: F811
) -> None:
    setup = make(settle_seconds=0.3)
    async with a_direct_b_proxied(redis, prefix, setup, b_timeout=1.0) as (proxy, at_b):
        proxy.late_publish_replies(2.5)  # B's PUBLISH runs in the store and reaches A; B hears of it too late
        unknown = await refusal(at_b, setup.call.session_id)
        assert told(unknown) == UNKNOWN, unknown.message
        assert "try again" not in unknown.message
        assert await FakeTwilio.eventually(lambda: setup.call.transferred is not None, timeout=30)
        assert len(twilio.calls_to("POST", setup.at_carrier.sid)) == 1


async def test_a_request_lost_in_flight_is_unknown_without_promising_a_refusal_and_the_next_one_transfers(
    redis: RedisServer, prefix: str, make: Callable[..., Setup], twilio: FakeTwilio,  # noqa: F811
) -> None:
    setup = make(settle_seconds=0.3)
    async with a_direct_b_proxied(redis, prefix, setup, b_timeout=5.0) as (proxy, at_b):
        proxy.lose_publishes()  # "one subscriber got it", and nobody did
        unknown = await refusal(at_b, setup.call.session_id)
        assert told(unknown) == UNKNOWN, unknown.message
        # What B knows: the request may not have arrived, so no refusal of a new one is promised.
        assert "refused while its stream lasts" not in unknown.message
        assert "If it did reach" in unknown.message
        assert not setup.call.transferring and not twilio.calls_to("POST", setup.at_carrier.sid)
        proxy.normal()
        done = await at_b.transfer(setup.call.session_id, TransferTarget(DESK))
        assert done is not None and setup.call.transferred is not None
        assert len(twilio.calls_to("POST", setup.at_carrier.sid)) == 1


async def test_a_slow_store_comes_out_of_the_relays_budget_so_the_answer_is_never_later(
    redis: RedisServer, prefix: str, make: Callable[..., Setup], twilio: FakeTwilio,  # noqa: F811
) -> None:
    setup = make(timeout=20.0, settle_seconds=0.3)
    gate = twilio.lose_answer(setup.at_carrier.sid)  # A's transfer waits on Twilio: busy past B's budget
    async with a_direct_b_proxied(redis, prefix, setup, b_timeout=5.0) as (proxy, at_b):
        proxy.slow(1.5)  # each of B's look-up and PUBLISH takes 1.5 s, under B's REDIS_TIMEOUT_SECONDS
        started = time.monotonic()
        unknown = await refusal(at_b, setup.call.session_id)
        waited = time.monotonic() - started
        proxy.normal()
        assert told(unknown) == UNKNOWN, unknown.message
        assert setup.call.transferring  # the request did reach A
        # B's budget is 3 s (a margin for a loaded machine); the store's 3 s on top of it would make it 6 s.
        assert waited < 5.0, waited
        gate.set()
        assert await FakeTwilio.eventually(lambda: not setup.call.transferring, timeout=30)


async def test_a_look_up_that_outlasts_the_budget_sent_nothing_and_says_try_again(
    redis: RedisServer, prefix: str, make: Callable[..., Setup], twilio: FakeTwilio,  # noqa: F811
) -> None:
    setup = make(settle_seconds=0.3)
    async with a_direct_b_proxied(redis, prefix, setup, b_timeout=5.0) as (proxy, at_b):
        proxy.slow(4.0)  # the call's record is read after B's 3 s budget
        down = await refusal(at_b, setup.call.session_id)
        assert (down.status, down.code) == (503, "store_unavailable") and down.retry_after
        proxy.normal()
        await asyncio.sleep(1.5)  # anything B might have sent would have reached A by now
        assert not setup.call.transferring and not twilio.calls_to("POST", setup.at_carrier.sid)


async def test_a_call_at_a_replica_of_the_previous_version_is_a_retryable_503_naming_the_deploy_not_a_bad_request(
    redis: RedisServer, prefix: str, make: Callable[..., Setup], twilio: FakeTwilio,  # noqa: F811
) -> None:
    setup = make(settle_seconds=0.3)
    async with two_replicas(redis, prefix) as (a, b):
        # A as the previous version answers the relay: only its bots' methods, through `Ownership.answer`.
        ownership = Ownership(BotChannels(BotCredentials("o" * 40), claims=a.claims, identity=Unverified("test")), a)
        await a.start(ownership.answer, held=ownership.held)
        await b.start(answering(None), held=tuple)
        assert a.relay is not None and b.relay is not None
        assert await a.relay.wait_subscribed(60) and await b.relay.wait_subscribed(60)
        await a.call_records.record(setup.call.session_id, "media-secret")
        outdated = await refusal(TransfersAnywhere(Transfers(None, None, None), b), setup.call.session_id)
        assert (outdated.status, outdated.code) == (503, "replica_outdated") and outdated.retry_after
        assert "deploy" in outdated.message
        assert not twilio.calls_to("POST", setup.at_carrier.sid)
