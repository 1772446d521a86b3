"""Session owners and the relay between replicas, against a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from botchannel.answered_by import METHOD_ANSWERED_BY
from dispatcher.channel.bots import REQUEST_TIMEOUT_SECONDS
from dispatcher.channel.ownership import Ownership
from dispatcher.errors import ApiError
from dispatcher.store.relay import NotHere, RelayRefused
from tests.dispatcher.store.conftest import LEASE_SECONDS
from tests.dispatcher.store.store_time import advance


def bot_of(held: dict[str, str]):
    """A replica's local channel as the relay sees it: sessions → a bot's answer."""

    async def handler(session_id: str, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        if session_id not in held:
            raise NotHere(session_id)
        if params.get("sdp") == "bad":
            raise ApiError(400, "bad_offer", "the bot refused the offer")
        return {"answered_by": held[session_id], "method": method, "sdp": params.get("sdp")}

    return handler


async def started(pair, held_a: dict[str, str], held_b: dict[str, str]):
    a, b = pair
    await a.start(bot_of(held_a), held=lambda: held_a)
    await b.start(bot_of(held_b), held=lambda: held_b)
    assert await a.relay.wait_subscribed(60) and await b.relay.wait_subscribed(60)
    return a, b


async def test_a_request_at_another_replica_reaches_the_owner_and_its_answer_comes_back(replica_pair):
    a, b = await started(replica_pair, {"s1": "bot-1"}, {})
    await a.owner_records.claim("s1")
    assert await b.owner_records.owner_of("s1") == "r-a"
    answer = await b.relay.ask("r-a", "s1", "webrtc.offer", {"sdp": "v=0"}, timeout=10)
    assert answer == {"answered_by": "bot-1", "method": "webrtc.offer", "sdp": "v=0"}


async def test_the_bots_refusal_passes_through_with_its_status(replica_pair):
    _, b = await started(replica_pair, {"s1": "bot-1"}, {})
    with pytest.raises(RelayRefused) as refused:
        await b.relay.ask("r-a", "s1", "webrtc.offer", {"sdp": "bad"}, timeout=10)
    assert (refused.value.status, refused.value.code) == (400, "bad_offer")


async def test_an_owner_without_the_sessions_channel_says_not_here(replica_pair):
    _, b = await started(replica_pair, {}, {})
    with pytest.raises(NotHere):
        await b.relay.ask("r-a", "s1", "webrtc.offer", {"sdp": "v=0"}, timeout=10)


async def test_asking_a_replica_nobody_listens_for_answers_none_at_once(replica_pair):
    _, b = await started(replica_pair, {}, {})
    assert await b.relay.ask("r-gone", "s1", "webrtc.offer", {}, timeout=10) is None


async def test_owner_records_are_renewed_by_the_heartbeat_and_run_out_without_it(replica_pair, admin):
    a, b = await started(replica_pair, {"s1": "bot-1"}, {})
    await a.owner_records.claim("s1")
    await a.owner_records.claim("s2")  # its bot left this replica: no longer held, not renewed
    for _ in range(4):  # a heartbeat every third of a lease: 4 of them outlast the first lease
        await advance(admin, a.store, LEASE_SECONDS / 3)
        await a.beat()
    assert await b.owner_records.owner_of("s1") == "r-a"
    assert await b.owner_records.owner_of("s2") is None


async def test_a_renewal_never_takes_back_a_session_another_replica_took_over(replica_pair):
    a, b = await started(replica_pair, {"s1": "bot-1"}, {"s1": "bot-1"})
    await a.owner_records.claim("s1")
    await b.owner_records.claim("s1")  # the bot re-dialled to b
    assert await a.owner_records.renew(["s1"]) == ["s1"]
    assert await a.owner_records.owner_of("s1") == "r-b"


async def test_a_replica_announces_serving_then_draining_and_leaves(replica_pair):
    a, b = await started(replica_pair, {}, {})
    assert await b.replicas.live() == {"r-a": "serving", "r-b": "serving"}
    await a.drain()
    assert await b.replicas.state_of("r-a") == "draining"
    await a.aclose()
    assert await b.replicas.state_of("r-a") is None


class SlowBotLinks:
    """A replica's bot channels as the relay's handler (`Ownership.answer`) reads them: one session's link, whose
    bot never answers within the time it is given (the time is recorded)."""

    def __init__(self, session_id: str) -> None:
        self.session_id, self.given = session_id, []
        self.session_listeners, self.close_listeners, self.unbind_listeners = [], [], []

    def link_for(self, session_id: str):
        return self if session_id == self.session_id else None

    async def request(self, method: str, params: Mapping[str, Any],
                      timeout: float = REQUEST_TIMEOUT_SECONDS) -> Mapping[str, Any]:  # BotLink.request's default
        self.given.append(timeout)
        await asyncio.sleep(timeout)
        raise ApiError(502, "bot_timeout", "the bot did not answer in time")


async def test_a_relayed_bot_request_is_bounded_by_the_askers_own_wait(replica_pair):
    """A verdict told to a bot at another replica waits 3 s at the asker: the owner gives the bot as long, not its
    own 15 s default, so nothing is still asked of the bot after the asker gave up."""
    a, b = replica_pair
    links = SlowBotLinks("s1")
    await a.start(Ownership(links, a).answer, held=lambda: ["s1"])  # type: ignore[arg-type]
    await b.start(bot_of({}), held=lambda: [])
    assert await a.relay.wait_subscribed(60) and await b.relay.wait_subscribed(60)
    with pytest.raises(TimeoutError):
        await b.relay.ask("r-a", "s1", METHOD_ANSWERED_BY, {"answered_by": "human", "carrier": "twilio"}, timeout=0.5)
    for _ in range(200):
        if links.given:
            break
        await asyncio.sleep(0.05)
    assert links.given == [0.5], links.given
