"""What replicas say to each other through the store is sealed: only a replica's message, for this
channel, fresh and new, is opened (dispatcher/store/message_seal.py); the media bus and the relay
act on nothing else, and the relay's incoming work is bounded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher.sessions.webhook_outbox import KINDS, StoreOutbox
from dispatcher.settings import SettingsError
from dispatcher.store.client import StoreSettings
from dispatcher.store.media_bus import BINARY, HELLO, TEXT, _addressed
from dispatcher.store.message_seal import REPLAY_BITS, WINDOW_SECONDS, MessageSeal
from dispatcher.store.redis_coordination import RedisCoordination
from dispatcher.store.relay import MAX_WORKING
from tests.dispatcher.store.conftest import settings_for, two_replicas
from tests.support.redis_server import RedisServer
from tests.support.waiting import within

SECRET = "the-replicas-message-secret-" + "k" * 20
CHANNEL = "{voicefleet}:relay:r-a"
PATIENT = 600.0  # an ask's wait for its reply: longer than the whole test, however busy the machine


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def refused(seal: MessageSeal, reason: str, channel: str = "relay") -> float:
    value = seal.refused.labels(channel, reason)._value.get()
    return float(value)


def test_a_sealed_message_opens_once_on_its_own_channel_only() -> None:
    sender, receiver = MessageSeal(SECRET), MessageSeal(SECRET)
    sealed = sender.seal(CHANNEL, b'{"method":"webrtc.offer"}')
    assert receiver.open(CHANNEL, "relay", sealed) == b'{"method":"webrtc.offer"}'
    assert receiver.open(CHANNEL, "relay", sealed) is None  # the same message again
    assert refused(receiver, "replayed") == 1
    other = MessageSeal(SECRET)
    assert other.open("{voicefleet}:relay:r-b", "relay", sender.seal(CHANNEL, b"{}")) is None  # sent to r-a
    assert refused(other, "forged") == 1


@pytest.mark.parametrize("tamper", [
    lambda m: m.replace(b"offer", b"offeR"),  # the body
    lambda m: m[:-1] + b"!",
    lambda m: b"v2." + b"b" * 16 + m[19:],  # another sender
])  # fmt: skip
def test_a_changed_message_is_forged(tamper) -> None:
    sender, receiver = MessageSeal(SECRET), MessageSeal(SECRET)
    assert receiver.open(CHANNEL, "relay", tamper(sender.seal(CHANNEL, b'{"offer":1}'))) is None
    assert refused(receiver, "forged") == 1


def test_another_key_and_no_seal_are_refused() -> None:
    receiver = MessageSeal(SECRET)
    assert receiver.open(CHANNEL, "relay", MessageSeal("x" * 40).seal(CHANNEL, b"{}")) is None
    assert receiver.open(CHANNEL, "relay", b'{"id":"1","method":"webrtc.offer"}') is None
    assert receiver.open(CHANNEL, "relay", b"v2.a.b.c.d.e") is None
    assert (refused(receiver, "forged"), refused(receiver, "malformed")) == (1, 2)


def test_a_message_older_or_newer_than_the_window_is_stale() -> None:
    clock = Clock()
    sender, receiver = MessageSeal(SECRET, clock=clock), MessageSeal(SECRET, clock=clock)
    old = sender.seal(CHANNEL, b"{}")
    clock.now += WINDOW_SECONDS + 1
    assert receiver.open(CHANNEL, "relay", old) is None
    early = sender.seal(CHANNEL, b"{}")
    clock.now -= 2 * (WINDOW_SECONDS + 1)
    assert receiver.open(CHANNEL, "relay", early) is None
    assert refused(receiver, "stale") == 2


def test_messages_out_of_order_open_once_each_within_the_replay_window() -> None:
    sender, receiver = MessageSeal(SECRET), MessageSeal(SECRET)
    first, second, third = (sender.seal(CHANNEL, b"%d" % n) for n in range(3))
    assert [receiver.open(CHANNEL, "relay", m) for m in (third, first, second)] == [b"2", b"0", b"1"]
    assert receiver.open(CHANNEL, "relay", first) is None
    # Further behind the newest than the window remembers: refused, as a replay would be.
    late = sender.seal(CHANNEL, b"late")
    for n in range(REPLAY_BITS):
        assert receiver.open(CHANNEL, "relay", sender.seal(CHANNEL, b"%d" % n)) is not None
    assert receiver.open(CHANNEL, "relay", late) is None
    assert refused(receiver, "replayed") == 2


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32"):
        MessageSeal("short")
    with pytest.raises(ValueError, match="32"):
        MessageSeal(SECRET, accepted="short")


OLD, NEW = SECRET, "the-next-message-secret-" + "n" * 24
WHERE = "{voicefleet}:webhooks:outbox m-1"


def exchanged(sender: MessageSeal, receiver: MessageSeal) -> bool:
    """Whether `receiver` takes what `sender` says: a relayed message, its body and an outbox record."""
    sealed = sender.seal(CHANNEL, sender.conceal(CHANNEL, b'{"method":"webrtc.offer"}'))
    body = receiver.open(CHANNEL, "relay", sealed)
    revealed = receiver.reveal(CHANNEL, "relay", body) if body is not None else None
    record = receiver.open_record("outbox", WHERE, sender.seal_record(WHERE, b'{"kind":"x"}'))
    assert (revealed is None) == (record is None)  # one key set for messages and records alike
    return revealed == b'{"method":"webrtc.offer"}' and record == b'{"kind":"x"}'


def test_an_old_replicas_message_and_outbox_record_open_only_where_its_secret_is_accepted() -> None:
    old_replica = MessageSeal(OLD)
    assert exchanged(old_replica, MessageSeal(NEW, accepted=OLD))
    assert not exchanged(old_replica, MessageSeal(NEW))
    # The accepted secret opens, never seals: the old replica does not read the new one's.
    assert not exchanged(MessageSeal(NEW, accepted=OLD), old_replica)


def test_each_deploy_of_a_rotation_understands_the_one_it_replaces_both_ways() -> None:
    # docs/pulumi.md: the new secret accepted; then sealing with it, the old accepted; then alone.
    deploys = [MessageSeal(OLD), MessageSeal(OLD, accepted=NEW), MessageSeal(NEW, accepted=OLD), MessageSeal(NEW)]
    for before, after in zip(deploys, deploys[1:], strict=False):
        assert exchanged(before, after) and exchanged(after, before)
    assert not exchanged(deploys[0], deploys[3])  # why one deploy cannot change it


async def test_replicas_mid_rotation_relay_to_each_other_and_take_each_others_outbox_entries(
        redis: RedisServer, prefix: str) -> None:
    def replica(name: str, secret: str, accepted: str = "") -> RedisCoordination:
        settings = settings_for(redis, name, prefix, lease_seconds=60.0)
        return RedisCoordination(replace(settings, message_secret=secret, accepted_message_secret=accepted))

    a, b, c = replica("r-a", OLD, accepted=NEW), replica("r-b", NEW, accepted=OLD), replica("r-c", NEW)

    async def bot(session_id: str, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"answered": session_id}

    try:
        for one in (a, b):
            await one.start(bot, held=tuple)
        assert a.relay is not None and b.relay is not None
        assert await a.relay.wait_subscribed(60) and await b.relay.wait_subscribed(60)
        assert await b.relay.ask("r-a", "s1", "webrtc.ice", {}, timeout=10) == {"answered": "s1"}
        assert await a.relay.ask("r-b", "s2", "webrtc.ice", {}, timeout=10) == {"answered": "s2"}
        # An outbox entry an old-secret replica left is delivered by one that accepts that secret,
        # and refused (not sent under the deployment's webhook key) by one that does not.
        entry = {"kind": sorted(KINDS)[0], "data": {"session_id": "s1"}, "attempts": 0, "expires": time.time() + 600}
        await StoreOutbox(a.store, a.seal).put("m-1", entry, 0.0, 100, 600.0)  # type: ignore[arg-type]
        await StoreOutbox(a.store, a.seal).put("m-2", entry, 0.0, 100, 600.0)  # type: ignore[arg-type]
        assert [m for m, _ in await StoreOutbox(c.store, c.seal).claim(time.time(), 30.0, 1)] == []
        assert [m for m, _ in await StoreOutbox(b.store, b.seal).claim(time.time(), 30.0, 1)] == ["m-2"]
    finally:
        for one in (a, b, c):
            await one.aclose()


def test_the_accepted_secret_is_read_checked_and_handed_to_the_seal() -> None:
    env = {"REDIS_URL": "redis://app:store-password@127.0.0.1:6379", "REDIS_MESSAGE_SECRET": NEW}
    settings = StoreSettings.from_env({**env, "REDIS_ACCEPTED_MESSAGE_SECRET": OLD})
    assert settings is not None and settings.accepted_message_secret == OLD
    assert OLD not in repr(settings)
    for bad in ("short", NEW):
        with pytest.raises(SettingsError, match="REDIS_ACCEPTED_MESSAGE_SECRET"):
            StoreSettings.from_env({**env, "REDIS_ACCEPTED_MESSAGE_SECRET": bad})


async def test_a_forged_media_frame_reaches_no_call(replica_pair: tuple[RedisCoordination, RedisCoordination],
                                                    admin: Redis) -> None:
    a, b = replica_pair
    carrier_side = await a.media.open("s1")
    bot_side = await b.media.open("s1", peer="r-a")
    channel = a.media.channel("r-a")
    # Anyone on the store: a hello naming its own replica, and a frame of its own, unsealed.
    await admin.publish(channel, _addressed("s1", HELLO + b"r-attacker"))
    await admin.publish(channel, _addressed("s1", TEXT + b'{"event":"media"}'))
    assert await bot_side.send(HELLO, b"r-b", confirmed=True)  # control: the genuine hello gets there
    assert await carrier_side.hello == "r-b"
    assert await bot_side.send(BINARY, b"audio", confirmed=True)
    assert await carrier_side.next(5.0) == BINARY + b"audio"  # the forged text frame was never queued
    assert refused(a.seal, "malformed", "media") == 2
    carrier_side.close()
    bot_side.close()


async def test_a_flood_of_relayed_requests_is_bounded_newest_dropped(redis: RedisServer, prefix: str) -> None:
    # 1,020 asks publish at once through one process's pool: on a busy machine the last of them may
    # wait past the usual 5 s for a connection, and an ask that fails to publish is never dropped.
    async with two_replicas(redis, prefix, timeout_seconds=120.0) as (a, b):
        release = asyncio.Event()
        answered: list[str] = []

        async def slow_bot(session_id: str, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
            await release.wait()
            answered.append(session_id)
            return {"ok": True}

        await a.start(slow_bot, held=tuple)
        await b.start(slow_bot, held=tuple)
        assert a.relay is not None and b.relay is not None
        assert await a.relay.wait_subscribed(60) and await b.relay.wait_subscribed(60)
        extra = 20
        asks = [asyncio.create_task(b.relay.ask("r-a", f"s{n}", "webrtc.ice", {}, timeout=PATIENT))
                for n in range(MAX_WORKING + extra)]
        await within(lambda: refused(a.seal, "busy") >= extra, 120)
        assert refused(a.seal, "busy") == extra
        assert len(a.relay._working) == MAX_WORKING
        release.set()
        # The kept ones are answered; a dropped one never is (its asker times out, after PATIENT): one
        # kept back by mistake would be answered as soon as a slot frees, well within the second given here.
        assert await within(lambda: sum(task.done() for task in asks) >= MAX_WORKING, 120)
        _, pending = await asyncio.wait(asks, timeout=1)
        assert len(answered) == MAX_WORKING and len(pending) == extra
        for task in pending:
            task.cancel()


async def test_bytes_that_are_not_text_on_the_relay_channel_are_refused_and_keep_the_subscription(
        replica_pair: tuple[RedisCoordination, RedisCoordination], admin: Redis,
        caplog: pytest.LogCaptureFixture) -> None:
    a, b = replica_pair

    async def bot(session_id: str, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"answered": session_id}

    await a.start(bot, held=tuple)
    await b.start(bot, held=tuple)
    assert a.relay is not None and b.relay is not None
    assert await a.relay.wait_subscribed(60) and await b.relay.wait_subscribed(60)
    for _ in range(3):  # anyone on the store; a lost subscription would miss what comes next
        assert await admin.publish(a.relay.channel("r-a"), b"\xff\xfe not utf-8") == 1
    assert await b.relay.ask("r-a", "s1", "webrtc.ice", {}, timeout=10) == {"answered": "s1"}
    assert refused(a.seal, "malformed") == 3
    assert "subscription lost" not in caplog.text
