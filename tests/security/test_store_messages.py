"""Finding: what crosses the store was trusted blindly. Anyone who may PUBLISH on the replicas' store
(its password, a neighbour on a shared Redis) sent `webrtc.offer` on `relay:<replica>` for another
key's session, named its own channel for the reply, and got the bot's answer: it became the
session's peer. A captured genuine offer could be published again, too.

Two replicas (real apps, their channels on loopback ports, stand-in bot processes) share a real
redis-server with the stack's access rules; the attacker signs in as the replicas' own store user.
Its forged offer and its replay of a genuine one are refused (and counted); the caller's own offer
at the other replica still reaches the bot, through the store."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import shlex
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from dispatcher.app import create_app
from dispatcher.machines.base import LaunchSpec
from dispatcher.reserve.elsewhere import CLAIM, spec_params
from dispatcher.settings import Settings, hash_api_key
from dispatcher.store.client import DEFAULT_PREFIX
from dispatcher.store.media_bus import BINARY, TEXT
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_LOCAL_BOT_ENV
from tests.security.conftest import DEPLOYMENT_SECRET, KEY_A, WAIT
from tests.support.dispatcher_server import in_process
from tests.support.redis_server import RedisServer, redis_server
from tests.support.session_api import METRICS_AUTH, METRICS_KEY

RELAY = DEFAULT_PREFIX + "relay:"
ATTACKER = "r-attacker"  # the reply channel the attacker names and listens on
QUIET = 3.0  # how long the attacker waits for an answer that must not come (a bot answers in ms)


@dataclass
class Replica:
    app: Any
    client: httpx.AsyncClient

    async def refused(self, reason: str) -> float:
        metrics = (await self.client.get("/metrics", headers=METRICS_AUTH)).text
        line = f'voicefleet_store_messages_refused_total{{channel="relay",reason="{reason}"}} '
        return next((float(row.split()[-1]) for row in metrics.splitlines() if row.startswith(line)), 0.0)


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[tuple[Replica, Replica, RedisServer]]:
    with redis_server(tmp_path) as store:
        async with contextlib.AsyncExitStack() as running:
            pair = []
            for name in ("r-a", "r-b"):
                settings = Settings(max_concurrent_sessions=50, bot_channel_token=DEPLOYMENT_SECRET,
                                    api_key_hashes=frozenset({hash_api_key(KEY_A)}),
                                    admin_key_hashes=frozenset({hash_api_key(METRICS_KEY)}))
                # The replicas' own local machines: each finds the other's bots through the store.
                env = {**store.env, "REPLICA_ID": name, "RESERVE_MAX_IDLE": "0",
                       "LOCAL_BOT_COMMAND": shlex.join(STANDIN_BOT), **STANDIN_LOCAL_BOT_ENV}
                app = create_app(settings, env=env, rooms=None)
                served = await running.enter_async_context(
                    in_process(app, headers={"Authorization": f"Bearer {KEY_A}"}))
                await app.state.voicefleet.replication.start()  # the app's lifespan does this; `serving` runs none
                pair.append(Replica(app, served.client))
            yield pair[0], pair[1], store


async def listening(store: RedisServer, channel: str) -> tuple[Redis, Any]:
    """The attacker's subscription, signed in as the replicas' own store user (it has the password)."""
    client = Redis.from_url(store.url, password=store.password, decode_responses=True)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel)
    return client, pubsub


async def heard(pubsub: Any, seconds: float) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        message = await pubsub.get_message(timeout=left)
        if message is not None:
            got.append(message["data"])
    return got


async def started_at(replica: Replica) -> str:
    started = await replica.client.post("/start?wait=started", json={"body": {}})
    assert started.status_code in (200, 201), started.text
    session_id: str = started.json()["session_id"]
    channels = replica.app.state.voicefleet.channels
    assert await channels.wait_until(lambda: channels.link_for(session_id) is not None, WAIT)
    return session_id


async def test_a_forged_relayed_offer_gets_no_answer_and_is_counted(replicas) -> None:
    a, b, store = replicas
    session_id = await started_at(a)
    client, replies = await listening(store, RELAY + ATTACKER)
    forged = {"id": "x1", "reply_to": ATTACKER, "session_id": session_id, "method": "webrtc.offer",
              "params": {"sdp": "v=0 attacker", "type": "offer"}}
    body = json.dumps(forged)
    mac = hmac.new(b"a key the attacker made up", body.encode(), hashlib.sha256).hexdigest()
    guessed = f"v2.{'a' * 16}.1.{int(time.time() * 1000)}.{mac}.{body}"  # a sealed message's shape, no key
    try:
        assert await client.publish(RELAY + "r-a", body) == 1  # r-a listens: it got it
        assert await client.publish(RELAY + "r-a", guessed) == 1
        answers = await heard(replies, QUIET)
    finally:
        await replies.aclose()
        await client.aclose()

    assert answers == [], f"the bot answered the attacker: {answers}"
    assert await a.refused("malformed") == 1 and await a.refused("forged") == 1
    # Control: the caller's own offer, made at the other replica, reaches the bot through the store.
    offered = await b.client.post(f"/sessions/{session_id}/api/offer", json={"sdp": "v=0 caller", "type": "offer"})
    assert offered.status_code == 200, offered.text
    assert offered.json()["sdp"] == "answer-to:v=0 caller"


async def test_a_captured_genuine_offer_published_again_is_refused(replicas) -> None:
    a, b, store = replicas
    session_id = await started_at(a)
    client, captured = await listening(store, RELAY + "r-a")  # what r-b asks of r-a
    _, replies = await listening(store, RELAY + "r-b")  # and what r-a answers it
    try:
        offered = await b.client.post(f"/sessions/{session_id}/api/offer", json={"sdp": "v=0 caller", "type": "offer"})
        assert offered.status_code == 200, offered.text  # control: the genuine offer went through the store
        # What crosses the relay is encrypted: the attacker cannot pick the offer out, so it sends
        # everything it captured while the caller's offer passed, again.
        requests = await heard(captured, 1.0)
        assert requests and await heard(replies, 1.0)  # the offer and its answer
        for request in requests:
            assert await client.publish(RELAY + "r-a", request) == 2  # the same message again (r-a and our capture)
        again = await heard(replies, QUIET)
    finally:
        await captured.aclose()
        await replies.aclose()
        await client.aclose()

    assert again == [], "the replayed offer reached the bot again"
    assert await a.refused("replayed") == len(requests)


async def test_a_message_sealed_for_one_replica_is_refused_at_another(replicas) -> None:
    a, b, store = replicas
    session_id = await started_at(a)
    client, captured = await listening(store, RELAY + "r-a")
    try:
        offered = await b.client.post(f"/sessions/{session_id}/api/offer", json={"sdp": "v=0 caller", "type": "offer"})
        assert offered.status_code == 200, offered.text
        requests = await heard(captured, 1.0)
        for request in requests:
            assert await client.publish(RELAY + "r-b", request) == 1  # r-a's offer, sent to r-b
        await asyncio.sleep(0.5)
    finally:
        await captured.aclose()
        await client.aclose()
    assert requests and await b.refused("forged") == len(requests)  # the channel is part of what is signed


async def test_a_store_reader_learns_no_session_secret_from_a_claim_relayed_to_another_replica(replicas) -> None:
    """Finding: `reserve.claim` carries a session's launch values (the bot's Daily token, its TURN
    credentials, the caller's `body`) over the store's pub/sub, signed but readable. Those are the
    values the design seals at rest in the store (dispatcher/store/secrets_vault.py); whoever may
    SUBSCRIBE there (the store's password, a read-only user, a neighbour) read them in passing and
    could join the caller's room as its bot. Now what crosses a replica's relay channel is
    encrypted as well as signed; the other replica still reads the claim and answers it."""
    a, b, store = replicas
    secrets_in_it = ("daily-bot-token-1f2e3d", "turn-password-9a8b7c", "patient-4711")
    spec = LaunchSpec(session_id="s-claimed", body_digest="d", max_session_seconds=60,
                      body={"secret_note": secrets_in_it[2]}, room_url="https://x.daily.co/room",
                      bot_token=secrets_in_it[0], transport="webrtc",
                      ice_config={"iceServers": [{"urls": "turn:relay.example:3478", "username": "u",
                                                  "credential": secrets_in_it[1]}]})
    client = Redis.from_url(store.url, password=store.password, decode_responses=True)
    everything = client.pubsub(ignore_subscribe_messages=True)
    # What a holder of the store's password sees of the replicas' talk (its rules allow no PSUBSCRIBE).
    await everything.subscribe(RELAY + "r-a", RELAY + "r-b")
    try:
        answer = await a.app.state.voicefleet.replication.coordination.ask_replica(
            "r-b", spec.session_id, CLAIM, spec_params(spec), 10.0)
        seen = await heard(everything, 1.0)
    finally:
        await everything.aclose()
        await client.aclose()
    assert answer == {"machine": None}  # r-b read the claim (it holds no idle bot) and answered
    assert len(seen) == 2  # the claim and its answer crossed the store
    leaked = [secret for secret in secrets_in_it if any(secret in message for message in seen)]
    assert leaked == [], f"a store reader saw {leaked} in a relayed claim"


async def test_a_store_reader_hears_no_caller_on_a_call_relayed_between_replicas(replicas) -> None:
    """The same for a phone call whose carrier socket and bot are at two replicas: its audio and its
    frames cross the store's media channels, signed, and were readable as sent."""
    a, b, store = replicas
    media_a = a.app.state.voicefleet.replication.coordination.media
    media_b = b.app.state.voicefleet.replication.coordination.media
    carrier_side = await media_a.open("s-call")
    bot_side = await media_b.open("s-call", peer="r-a")
    voice, words = b"caller-voice-pcm-" + bytes(range(64)), b'{"event":"media","payload":"secret-words"}'
    client = Redis.from_url(store.url, password=store.password)
    listener = client.pubsub(ignore_subscribe_messages=True)
    await listener.subscribe(media_a.channel("r-a"), media_a.channel("r-b"))
    try:
        assert await bot_side.send(BINARY, voice, confirmed=True)
        assert await bot_side.send(TEXT, words, confirmed=True)
        assert await carrier_side.next(5.0) == BINARY + voice  # control: the call hears it
        assert await carrier_side.next(5.0) == TEXT + words
        seen = await heard(listener, 1.0)
    finally:
        carrier_side.close()
        bot_side.close()
        await listener.aclose()
        await client.aclose()
    assert len(seen) >= 2
    assert not any(voice in message or b"secret-words" in message for message in seen), "a store reader heard the call"
