"""A phone call's media between two replicas, against a real redis-server: the call's record (its
one-time media secret spent once across replicas) and its frames over the call's channels."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import Message

from dispatcher.phone.store_hop import MAX_FRAME_BYTES, StoreHop
from dispatcher.store import media_bus
from dispatcher.store.media_bus import BINARY, HELLO, MAX_QUEUED, TEXT, CallLine
from dispatcher.store.publisher import Publisher
from dispatcher.store.redis_coordination import RedisCoordination
from tests.dispatcher.store.conftest import settings_for, two_replicas
from tests.support.redis_server import RedisServer, redis_server
from tests.support.waiting import until

LEASE = 2.0  # the pair's lease (tests/dispatcher/store/conftest.py)
PATIENT = 600.0
Pair = tuple[RedisCoordination, RedisCoordination]


async def test_a_media_secret_is_spent_once_across_replicas_and_names_the_calls_replica(replica_pair: Pair) -> None:
    a, b = replica_pair
    await a.call_records.record("s1", "the-secret")
    assert await b.call_records.spend("s1", "a-wrong-one") is None
    assert await b.call_records.spend("s1", "the-secret") == "r-a"
    # A replay, even at the call's own replica:
    assert await a.call_records.spend("s1", "the-secret") is None
    assert await b.call_records.spend("s1", "the-secret") is None
    assert await b.call_records.spend("no-such-call", "the-secret") is None


async def test_only_the_calls_replica_renews_or_releases_its_record(replica_pair: Pair) -> None:
    a, b = replica_pair
    await a.call_records.record("s1", "x")
    assert not await b.call_records.renew("s1")
    await b.call_records.release("s1")
    assert await a.call_records.renew("s1")
    await a.call_records.release("s1")
    assert await b.call_records.spend("s1", "x") is None


async def connected(a: RedisCoordination, b: RedisCoordination, session_id: str = "s1") -> tuple[StoreHop, StoreHop]:
    """The carrier's replica a and the bot's media replica b, as the call's two ends."""
    carrier_side = await a.media.open(session_id)
    bot_side = await b.media.open(session_id, peer="r-a")
    assert await bot_side.send(HELLO, b"r-b", confirmed=True)
    assert await carrier_side.hello == "r-b"
    # Silence is given up only after a long while here: an end that did not wake the other side hangs the test.
    return StoreHop(carrier_side, PATIENT), StoreHop(bot_side, PATIENT)


def frame(message: Message) -> Message:
    return {"type": "websocket.send", **{k: v for k, v in message.items() if k in ("text", "bytes")}}


async def test_frames_cross_verbatim_and_in_order_both_ways(replica_pair: Pair) -> None:
    to_bot, to_carrier = await connected(*replica_pair)
    sent: list[Message] = [
        {"text": '{"event":"media","media":{"payload":"f/8="}}'},
        {"bytes": b"\xff\x00\xfe not utf-8"},
        {"text": "ünïcode ✓"},
        {"bytes": b""},
        *({"text": f'{{"n":{n}}}'} for n in range(200)),
    ]
    for message in sent:
        await to_bot.send(frame(message))
    for message in sent:
        assert await to_carrier.receive() == {"type": "websocket.receive", **message}
    for message in sent:
        await to_carrier.send(frame(message))
    for message in sent:
        assert await to_bot.receive() == {"type": "websocket.receive", **message}


async def test_a_hang_up_on_either_side_ends_the_other(replica_pair: Pair) -> None:
    a, b = replica_pair
    to_bot, to_carrier = await connected(a, b, "s1")
    await to_carrier.close(reason="bot_hung_up")
    assert (await to_bot.receive())["type"] == "websocket.disconnect"
    assert to_bot.line.ended == "bot_hung_up"
    assert not await to_bot.line.send(TEXT, b"too late")  # nothing more goes out on an ended line
    to_bot, to_carrier = await connected(a, b, "s2")
    await to_bot.close(reason="carrier_hung_up")
    assert (await to_carrier.receive())["type"] == "websocket.disconnect"


async def test_a_replica_that_is_gone_ends_the_call_at_the_other(replica_pair: Pair) -> None:
    a, b = replica_pair
    to_bot, _ = await connected(a, b)
    await b.aclose()  # its connection to the store closes, as a killed process's does
    await to_bot.send(frame({"text": "anyone?"}))
    assert (await to_bot.receive())["type"] == "websocket.disconnect"
    assert to_bot.line.ended == "peer_gone"


async def test_a_replica_that_goes_silent_ends_the_call_at_the_other_after_a_lease(replica_pair: Pair) -> None:
    a, b = replica_pair
    carrier_side = await a.media.open("s1")
    silent = await b.media.open("s1", peer="r-a")  # subscribed, but no keepalive: a host that froze
    assert await silent.send(HELLO, b"r-b", confirmed=True)
    to_bot = StoreHop(carrier_side, LEASE)
    assert (await to_bot.receive())["type"] == "websocket.disconnect"
    assert carrier_side.ended == "peer_silent"


async def test_a_frame_larger_than_the_relays_buffer_is_dropped_and_the_call_goes_on(replica_pair: Pair) -> None:
    to_bot, to_carrier = await connected(*replica_pair)
    await to_bot.send(frame({"bytes": b"x" * (MAX_FRAME_BYTES + 1)}))
    await to_bot.send(frame({"text": "after"}))
    assert await to_carrier.receive() == {"type": "websocket.receive", "text": "after"}
    assert to_bot.dropped == 1


async def test_what_a_slow_side_has_not_taken_is_bounded_oldest_dropped_first(replica_pair: Pair) -> None:
    a, _ = replica_pair
    line: CallLine = await a.media.open("s1")
    for n in range(MAX_QUEUED + 10):
        line.deliver(TEXT + str(n).encode())
    line.deliver(BINARY + b"last")
    assert line.dropped == 11
    assert await line.next(LEASE) == TEXT + b"11"


async def test_a_store_that_stops_answering_ends_the_call_rather_than_hanging_it(tmp_path: Path, prefix: str) -> None:
    with redis_server(tmp_path) as server:
        a, b = (RedisCoordination(settings_for(server, name, prefix, lease_seconds=60.0)) for name in ("r-a", "r-b"))
        try:
            to_bot, _ = await connected(a, b)
            server.stop()
            await to_bot.send(frame({"text": "anyone?"}))
            assert (await to_bot.receive())["type"] == "websocket.disconnect"  # long before the 60 s lease
            assert to_bot.line.ended == "store_unavailable"
        finally:
            await a.aclose()
            await b.aclose()


async def a_new_call_carries(a: RedisCoordination, b: RedisCoordination) -> None:
    """A call started after the store came back relays its first frame between the replicas."""
    to_bot, to_carrier = await connected(a, b, "s2")
    await to_bot.send(frame({"bytes": b"\x00back"}))
    assert await to_carrier.receive() == {"type": "websocket.receive", "bytes": b"\x00back"}


async def subscribed_again(server: RedisServer, a: RedisCoordination) -> None:
    """Until the restarted store counts both replicas' media channels subscribed."""
    media_channels = [a.media.channel(name) for name in ("r-a", "r-b")]

    def both() -> bool:
        with contextlib.suppress(RedisError), server.admin() as admin:
            return all(n == 1 for _, n in admin.pubsub_numsub(*media_channels))
        return False

    await until(both, "both replicas' media subscriptions at the restarted store", timeout=PATIENT)


async def test_after_the_store_comes_back_a_new_call_publishes_again(tmp_path: Path, prefix: str) -> None:
    with redis_server(tmp_path) as server:
        a, b = (RedisCoordination(settings_for(server, name, prefix, lease_seconds=60.0)) for name in ("r-a", "r-b"))
        try:
            to_bot, _ = await connected(a, b, "s1")
            server.stop()
            await to_bot.send(frame({"text": "lost"}))
            assert (await to_bot.receive())["type"] == "websocket.disconnect"
            server.start()  # same port: both replicas' subscriptions and the publisher connect again
            await subscribed_again(server, a)
            await a_new_call_carries(a, b)
        finally:
            await a.aclose()
            await b.aclose()


async def test_a_store_back_before_the_replicas_noticed_its_outage_carries_the_next_call(tmp_path: Path,
                                                                                          prefix: str) -> None:
    """The store restarts while the replicas' loop is busy elsewhere: each finds its subscription's
    connection dead only once the store is back, and must still make the next call's publishes on
    a new connection, not on the one that died."""
    with redis_server(tmp_path) as server:
        a, b = (RedisCoordination(settings_for(server, name, prefix, lease_seconds=60.0)) for name in ("r-a", "r-b"))
        try:
            await connected(a, b, "s1")
            server.stop()
            server.start()  # no await in between: no replica ran while the store was away
            await subscribed_again(server, a)
            await a_new_call_carries(a, b)
        finally:
            await a.aclose()
            await b.aclose()


async def test_a_publish_while_the_replica_subscribes_again_goes_out_on_a_new_connection(tmp_path: Path,
                                                                                          prefix: str) -> None:
    """The store has this replica's SUBSCRIBE (its peers see it back) before the subscribe returns
    here: a publish in between must not take the publisher's connection from before the outage."""
    with redis_server(tmp_path) as server:
        b = RedisCoordination(settings_for(server, "r-b", prefix, lease_seconds=60.0))
        try:
            await (await b.media.publish("r-a", "s1", HELLO + b"r-b"))
            before = b.media._publisher
            sent = asyncio.Event()

            class SubscribingAgain:  # the store took the SUBSCRIBE; its reply is still on the way
                async def subscribe(self, channel: str) -> None:
                    sent.set()
                    await asyncio.Event().wait()

            resubscribing = asyncio.create_task(b.media._subscribe(SubscribingAgain(), "ch"))  # type: ignore[arg-type]
            await sent.wait()
            await (await b.media.publish("r-a", "s1", HELLO + b"r-b"))
            assert b.media._publisher is not before
            resubscribing.cancel()
        finally:
            await b.aclose()


async def test_publishes_racing_the_publishers_replacement_make_one_new_publisher(
        tmp_path: Path, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two calls publish as the replica's subscription comes back: one new publisher, none left open
    beside it (a second would hold a connection and a reader nobody closes)."""
    made: list[Publisher] = []

    class Counted(Publisher):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(media_bus, "Publisher", Counted)
    with redis_server(tmp_path) as server:
        b = RedisCoordination(settings_for(server, "r-b", prefix, lease_seconds=60.0))
        try:
            await (await b.media.publish("r-a", "s1", HELLO + b"r-b"))
            b.media._subscriptions += 1  # subscribed again after an outage
            replies = await asyncio.gather(*(b.media.publish("r-a", f"s{n}", HELLO + b"r-b") for n in (2, 3)))
            await asyncio.gather(*replies)
            assert len(made) == 2 and b.media._publisher is made[1]
        finally:
            await b.aclose()


async def test_retries_of_one_failed_subscribe_replace_the_publisher_once(tmp_path: Path, prefix: str) -> None:
    with redis_server(tmp_path) as server:
        b = RedisCoordination(settings_for(server, "r-b", prefix, lease_seconds=60.0))
        try:
            before = b.media._subscriptions

            class Refused:  # the store is still away
                async def subscribe(self, channel: str) -> None:
                    raise ConnectionError("refused")

            for _ in range(3):
                with contextlib.suppress(ConnectionError):
                    await b.media._subscribe(Refused(), "ch")  # type: ignore[arg-type]
            assert b.media._subscriptions == before + 1
        finally:
            await b.aclose()


async def test_a_record_that_ran_out_is_written_again_by_its_replica_without_the_spent_once_digest(
    replica_pair: Pair, admin: Redis,
) -> None:
    a, b = replica_pair
    await a.call_records.record("s1", "the-secret")
    await admin.delete(a.store.key("call", "s1"))  # as after a store outage longer than a lease
    assert await a.call_records.renew("s1")
    assert await b.call_records.replica_of("s1") == "r-a"  # a transfer at B finds the call again
    assert await b.call_records.spend("s1", "the-secret") is None  # the secret may have been spent meanwhile
    assert 0 < await admin.pttl(a.store.key("call", "s1")) <= a.call_records.lease_seconds * 1000


async def test_a_renewal_never_takes_over_a_record_naming_another_replica(replica_pair: Pair) -> None:
    a, b = replica_pair
    await a.call_records.record("s1", "x")
    await b.call_records.record("s1", "y")  # a newer call of the session, at B
    assert not await a.call_records.renew("s1")
    assert await a.call_records.replica_of("s1") == "r-b"


async def test_a_live_call_whose_record_ran_out_is_found_again_at_its_next_renewal(
    redis: RedisServer, prefix: str, admin: Redis,  # noqa: F811
) -> None:
    async with two_replicas(redis, prefix, lease_seconds=1.5) as (a, b):
        call = await a.calls.open("s1", "media-secret")  # the carrier's stream opens at A
        try:
            await admin.delete(a.store.key("call", "s1"))

            async def found_at_a() -> None:  # at A's next renewal, a third of a lease later
                while await b.call_records.replica_of("s1") != "r-a":
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(found_at_a(), 30)
        finally:
            await call.end("caller")
        assert await b.call_records.replica_of("s1") is None
