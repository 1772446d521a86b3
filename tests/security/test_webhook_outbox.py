"""Attacks on the lifecycle webhooks' outbox in the replicas' store (dispatcher/sessions/webhook_outbox.py).

The project's own rule for the store (dispatcher/store/message_seal.py): whoever may write it (its
password, a read-write neighbour on a shared Redis, a server left open) must not be able to speak
for the replicas. An outbox entry is plain JSON that every replica's deliverer signs with the
deployment's webhook key and POSTs to the receiver, so a store writer who adds one has the
deployment's signature on any event it likes. And an entry whose due time outlives it (a replica
that died between the two removals of `done`) is parked at +inf and counted forever: enough of them
and every new event is dropped. A real redis-server with the stack's access rules, a real receiver
on loopback verifying with the Standard Webhooks library."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook

from dispatcher.sessions.webhook_outbox import KINDS, StoreOutbox
from dispatcher.sessions.webhooks import PUSHED, LifecycleWebhooks, WebhookSettings, secret_key
from dispatcher.store.client import Store
from dispatcher.store.message_seal import MessageSeal
from tests.dispatcher.store.conftest import admin, prefix, redis, store  # noqa: F401 (fixtures)
from tests.support.hook_receiver import hook_receiver
from tests.support.redis_server import RedisServer
from tests.support.waiting import within

SECRET = "whsec_" + base64.b64encode(b"outbox-attack-webhook-secret-32b").decode()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(Webhook(SECRET).verify(await request.read(), dict(request.headers)))  # raises if forged
        return web.Response(status=204)

    async with hook_receiver(hook) as url:
        yield url, received


async def _no_timeline(session_id: str) -> list[dict[str, Any]]:
    return []


async def test_a_store_writer_cannot_get_an_event_signed_with_the_deployments_key(
    store: Store, redis: RedisServer, receiver: tuple[str, list[dict[str, Any]]],  # noqa: F811
) -> None:
    url, received = receiver
    outbox = StoreOutbox(store, MessageSeal(store.settings.message_secret))
    webhooks = LifecycleWebhooks(WebhookSettings(url, secret_key(SECRET)), _no_timeline, outbox)
    writer = Redis.from_url(redis.url, password=redis.password, decode_responses=True)  # the store's password
    try:
        forged = {"kind": "session.ended", "attempts": 0,
                  "data": {"session_id": "s-forged", "reason": "completed", "duration_seconds": 86_400}}
        await writer.hset(store.key("webhooks", "outbox"), "msg_s-forged_session.ended", json.dumps(forged))
        await writer.zadd(store.key("webhooks", "due"), {"msg_s-forged_session.ended": 0})
        webhooks.timeline_event("s-real", {"event": "ready", "at": time.time()})
        assert await within(lambda: any(e["type"] == "session.ready" for e in received), timeout=30)
        # A later event's delivery comes after every batch claimed before it (the forged one, due at 0).
        webhooks.timeline_event("s-real", {"event": "ended", "at": time.time(), "reason": "completed"})
        assert await within(lambda: any(e["type"] == "session.ended" and e["data"]["session_id"] == "s-real"
                                         for e in received), timeout=30)
        forgeries = [e for e in received if e["data"]["session_id"] == "s-forged"]
        assert forgeries == [], "a store writer's event went out signed with the deployment's webhook key"
    finally:
        await writer.aclose()
        await webhooks.aclose()


async def test_entries_lost_between_the_two_removals_do_not_fill_the_outbox_for_good(
    store: Store,  # noqa: F811
) -> None:
    outbox = StoreOutbox(store, MessageSeal(store.settings.message_secret))
    limit = 3
    for n in range(limit):
        assert await outbox.put(f"msg_s{n}_session.ready", {"kind": "session.ready", "data": {}, "attempts": 0},
                                time.time(), limit, 60.0)
        # `done` removes the entry, then its due time: the replica dies (or the store stops
        # answering) between the two, as `done`'s own two calls allow.
        await store.redis.hdel(store.key("webhooks", "outbox"), f"msg_s{n}_session.ready")
    assert await outbox.claim(time.time(), 10.0, 16) == []  # due times without their entry
    kept = await outbox.put("msg_s-new_session.ready", {"kind": "session.ready", "data": {}, "attempts": 0},
                            time.time(), limit, 60.0)
    assert kept, "orphaned due times count against WEBHOOK_MAX_QUEUE forever: every new event is dropped"


# Beyond the two attacks: what the outbox does with an entry it cannot act on, and how long its keys live.
READY = {"kind": "session.ready", "data": {"session_id": "s-1"}, "attempts": 0}
KEEP = 60.0


def _refused(seal: MessageSeal) -> dict[str, float]:
    return {sample.labels["reason"]: sample.value for metric in seal.refused.collect() for sample in metric.samples
            if sample.name.endswith("_total") and sample.labels["channel"] == "webhooks.outbox"}


async def _waiting(admin: Redis, store: Store) -> tuple[int, int]:  # noqa: F811
    return (int(await admin.hlen(store.key("webhooks", "outbox"))),
            int(await admin.zcard(store.key("webhooks", "due"))))


async def test_an_unreadable_entry_is_dropped_alone_and_the_rest_of_its_batch_is_delivered(
    store: Store, admin: Redis,  # noqa: F811
) -> None:
    seal = MessageSeal(store.settings.message_secret)
    outbox = StoreOutbox(store, seal)
    await admin.hset(store.key("webhooks", "outbox"), "msg_s-0_session.ready", "{not json")
    await admin.zadd(store.key("webhooks", "due"), {"msg_s-0_session.ready": 0})
    assert await outbox.put("msg_s-1_session.ready", {**READY, "expires": time.time() + KEEP}, time.time(), 16, KEEP)
    claimed = await outbox.claim(time.time(), 10.0, 16)
    assert [message_id for message_id, _ in claimed] == ["msg_s-1_session.ready"]
    assert await _waiting(admin, store) == (1, 1), "the unreadable entry stays, leased, and counts against the limit"
    assert _refused(seal) == {"malformed": 1.0}


async def test_a_replicas_entry_moved_to_another_id_is_refused_as_forged(
    store: Store, admin: Redis,  # noqa: F811
) -> None:
    seal = MessageSeal(store.settings.message_secret)
    outbox = StoreOutbox(store, seal)
    assert await outbox.put("msg_s-1_session.ended", {**READY, "kind": "session.ended", "expires": time.time() + KEEP},
                            time.time() + KEEP, 16, KEEP)  # due later: not claimed here
    sealed = await admin.hget(store.key("webhooks", "outbox"), "msg_s-1_session.ended")
    await admin.hset(store.key("webhooks", "outbox"), "msg_s-2_session.ended", sealed)
    await admin.zadd(store.key("webhooks", "due"), {"msg_s-2_session.ended": 0})
    assert await outbox.claim(time.time(), 10.0, 16) == []
    assert _refused(seal) == {"forged": 1.0}
    assert await _waiting(admin, store) == (1, 1)  # the moved copy is gone, the replica's own entry stays


@pytest.mark.parametrize(("entry", "reason"), [
    ({**READY, "kind": "billing.charged"}, "malformed"),  # sealed, but not a kind the dispatcher pushes
    ({**READY, "attempts": "0"}, "malformed"),
    ({**READY, "data": {"session_id": 7}}, "malformed"),
    ({**READY, "expires": -1.0}, "stale"),  # outlived its delivery: an old entry put back is no use
])
async def test_a_sealed_entry_is_acted_on_only_if_it_is_one_the_dispatcher_pushes_and_still_alive(
    store: Store, admin: Redis, entry: dict[str, Any], reason: str,  # noqa: F811
) -> None:
    seal = MessageSeal(store.settings.message_secret)
    outbox = StoreOutbox(store, seal)
    assert await outbox.put("msg_s-1_x", {"expires": time.time() + KEEP, **entry}, time.time(), 16, KEEP)
    assert await outbox.claim(time.time(), 10.0, 16) == []
    assert _refused(seal) == {reason: 1.0}
    assert await _waiting(admin, store) == (0, 0)


async def test_the_outbox_expires_once_no_event_was_written_for_as_long_as_one_may_live(
    store: Store, admin: Redis,  # noqa: F811
) -> None:
    outbox = StoreOutbox(store, MessageSeal(store.settings.message_secret))
    assert await outbox.put("msg_s-1_session.ready", {**READY, "expires": time.time() + KEEP}, time.time(), 16, KEEP)
    for key in ("outbox", "due"):
        assert 0 < await admin.pttl(store.key("webhooks", key)) <= KEEP * 1000, f"webhooks:{key} never expires"


async def test_done_removes_an_entry_and_its_due_time(store: Store, admin: Redis) -> None:  # noqa: F811
    outbox = StoreOutbox(store, MessageSeal(store.settings.message_secret))
    assert await outbox.put("msg_s-1_session.ready", {**READY, "expires": time.time() + KEEP}, time.time(), 16, KEEP)
    await outbox.done("msg_s-1_session.ready")
    assert await _waiting(admin, store) == (0, 0)


def test_every_kind_the_dispatcher_pushes_is_one_the_outbox_takes() -> None:
    assert set(PUSHED.values()) == KINDS


async def test_a_releases_event_waits_in_the_store_like_a_sessions(store: Store) -> None:  # noqa: F811
    """The automatic rollback's webhook names no session: with several replicas it was refused as malformed."""
    seal = MessageSeal(store.settings.message_secret)
    outbox = StoreOutbox(store, seal)
    rolled = {"kind": "release.rolled_back", "attempts": 0, "expires": time.time() + KEEP,
              "data": {"release": "next", "reason": "6 of 6 sessions failed", "stable": "stable"}}
    assert await outbox.put("msg_release_next_1", rolled, time.time(), 16, KEEP)
    assert [message_id for message_id, _ in await outbox.claim(time.time(), 10.0, 16)] == ["msg_release_next_1"]
    assert _refused(seal) == {}


async def test_an_entry_sealed_under_another_message_secret_is_refused_as_forged(
    store: Store, admin: Redis,  # noqa: F811
) -> None:
    other = StoreOutbox(store, MessageSeal("another-deployments-message-secret-of-32+"))
    assert await other.put("msg_s-1_session.ready", {**READY, "expires": time.time() + KEEP}, time.time(), 16, KEEP)
    seal = MessageSeal(store.settings.message_secret)
    assert await StoreOutbox(store, seal).claim(time.time(), 10.0, 16) == []
    assert _refused(seal) == {"forged": 1.0}
    assert await _waiting(admin, store) == (0, 0)


@pytest.mark.parametrize(("kind", "data", "kept"), [
    ("campaign.finished", {"campaign_id": "cmp_0123456789abcdef", "outcomes": {"busy": 1}}, True),
    ("campaign.finished", {"session_id": "s-1"}, False),  # a campaign's event names its campaign
    ("campaign.started", {"campaign_id": "cmp_0123456789abcdef"}, False),  # no such event is pushed
])
async def test_a_campaign_s_event_comes_back_from_the_store_outbox_and_only_as_pushed(
        store: Store, kind: str, data: dict[str, Any], kept: bool) -> None:  # noqa: F811
    outbox = StoreOutbox(store, MessageSeal(store.settings.message_secret))
    entry = {"kind": kind, "data": data, "attempts": 0, "expires": time.time() + 600}
    assert await outbox.put("m-1", entry, 0.0, 100, 600.0)
    claimed = await outbox.claim(time.time(), 30.0, 10)
    assert [message_id for message_id, _ in claimed] == (["m-1"] if kept else [])
