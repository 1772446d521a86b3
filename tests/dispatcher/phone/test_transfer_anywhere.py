"""A transfer asked at a replica that does not hold the call, relayed to the one that does: two replicas'
coordination on a real redis-server, the call's `Transfers` against the strict fake of Twilio's Calls
resource (the whole path through real dispatchers: tests/replicas/test_transfer_replicas.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from dispatcher.errors import ApiError
from dispatcher.phone.transfer_anywhere import METHOD_RELAYED_TRANSFER, TransfersAnywhere
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.phone.transfers import Transfers
from dispatcher.store.local import LocalCoordination
from dispatcher.store.redis_coordination import RedisCoordination
from dispatcher.store.relay import Handler, NotHere
from tests.dispatcher.phone.test_transfers import DESK, Setup, make, twilio  # noqa: F401 (fixtures)
from tests.dispatcher.store.conftest import prefix, redis, settings_for, two_replicas  # noqa: F401 (fixtures)
from tests.fakes.twilio import FakeTwilio
from tests.support.redis_server import RedisServer, redis_server

Pair = tuple[RedisCoordination, RedisCoordination]


def answering(transfers: TransfersAnywhere | None) -> Handler:
    """A replica's relay handler for transfers (dispatcher/api/replication.py's, for this one method)."""

    async def handler(session_id: str, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        if method != METHOD_RELAYED_TRANSFER or transfers is None:
            raise NotHere(session_id)
        return await transfers.answer_relayed(session_id, params)

    return handler


@pytest.fixture
async def pair(redis: RedisServer, prefix: str) -> AsyncIterator[Pair]:  # noqa: F811
    async with two_replicas(redis, prefix) as both:
        yield both


async def call_at_a(pair: Pair, setup: Setup) -> None:
    """A holds the call's stream (its media record names it) and answers relayed transfers."""
    a, b = pair
    await a.start(answering(TransfersAnywhere(setup.transfers, a)), held=tuple)
    await b.start(answering(None), held=tuple)
    assert a.relay is not None and b.relay is not None
    assert await a.relay.wait_subscribed(60) and await b.relay.wait_subscribed(60)
    await a.call_records.record(setup.call.session_id, "media-secret")


async def refusal(at_b: TransfersAnywhere, session_id: str, to: str = DESK) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await at_b.transfer(session_id, TransferTarget(to))
    return caught.value


async def test_a_refusal_at_the_calls_replica_comes_back_unchanged_with_its_retry_and_outcome(
    pair: Pair, make: Callable[..., Setup], twilio: FakeTwilio,  # noqa: F811
) -> None:
    setup = make(settle_seconds=0.3)
    await call_at_a(pair, setup)
    at_b = TransfersAnywhere(Transfers(None, None, None), pair[1])  # B holds no call and no Twilio credential
    off_list = await refusal(at_b, setup.call.session_id, "+882123456789")
    assert (off_list.status, off_list.code) == (403, "target_not_allowed")
    twilio.lose_answer(setup.at_carrier.sid)  # done, unanswered, and its stream goes on: not transferred
    unanswered = await refusal(at_b, setup.call.session_id)
    assert (unanswered.status, unanswered.code) == (504, "carrier_unanswered")
    assert unanswered.retry_after == 1.0 and unanswered.extra == {"outcome": "not_transferred"}
    assert len(twilio.calls_to("POST", setup.at_carrier.sid)) == 1


async def test_a_relay_that_times_out_is_an_unknown_outcome_and_no_second_dial_follows(
    pair: Pair, make: Callable[..., Setup], twilio: FakeTwilio,  # noqa: F811
) -> None:
    setup = make(timeout=2.0, settle_seconds=2.0)  # A's transfer takes seconds: Twilio's answer is lost
    await call_at_a(pair, setup)
    gate = twilio.lose_answer(setup.at_carrier.sid)
    impatient = TransfersAnywhere(Transfers(None, None, None), pair[1], relay_seconds=0.5)
    unknown = await refusal(impatient, setup.call.session_id)
    assert (unknown.status, unknown.code, unknown.extra) == (504, "transfer_outcome_unknown", {"outcome": "unknown"})
    assert setup.call.transferring  # still under way at A
    again = await refusal(TransfersAnywhere(Transfers(None, None, None), pair[1]), setup.call.session_id)
    assert (again.status, again.code) == (409, "already_transferring")
    gate.set()
    assert await FakeTwilio.eventually(lambda: not setup.call.transferring, timeout=30)
    assert len(twilio.calls_to("POST", setup.at_carrier.sid)) == 1  # one update, whatever B was told


async def test_a_call_no_replica_holds_is_none_here_and_in_one_process(pair: Pair) -> None:
    _, b = pair
    await b.start(answering(None), held=tuple)
    target = TransferTarget(DESK)
    assert await TransfersAnywhere(Transfers(None, None, None), b).transfer("no-such-call", target) is None
    assert await TransfersAnywhere(Transfers(None, None, None), LocalCoordination()).transfer("s1", target) is None


async def test_with_the_store_down_the_call_cannot_be_found_and_the_answer_says_try_again(
    tmp_path: Path, prefix: str,  # noqa: F811
) -> None:
    with redis_server(tmp_path) as server:
        b = RedisCoordination(settings_for(server, "r-b", prefix, timeout_seconds=1.0))
        try:
            server.stop()
            down = await asyncio.wait_for(refusal(TransfersAnywhere(Transfers(None, None, None), b), "s1"), 30)
        finally:
            await b.aclose()
    assert (down.status, down.code) == (503, "store_unavailable") and down.retry_after
