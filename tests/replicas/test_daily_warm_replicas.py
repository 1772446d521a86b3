"""A Daily dial-in call's warm transfer across two dispatcher replicas on one real redis-server: the transfer waits
at replica A, Daily's signed `dialout.*` webhooks reach replica B, as a load balancer may send them (Daily's webhook
is one URL for the whole domain). The store carries the person's answer from B to A. Daily is the strict fake
(tests/fakes/daily.py), its webhooks signed as Daily signs them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
from fastapi import FastAPI

from dispatcher.app import create_app
from dispatcher.media.daily import DailyRooms, DailySettings
from dispatcher.settings import Settings, hash_api_key
from dispatcher.store.first_claims import StoreFirstClaims
from tests.dispatcher.api.test_daily_dialin_transfer import ADMIN, ADMIN_KEY, CALL, KEY, SECRET, TARGETS
from tests.dispatcher.machines.harness import fly_harness
from tests.fakes.daily import FakeDaily
from tests.fakes.fixtures import fake_daily, fake_fly  # noqa: F401 - the fakes' fixtures, used below
from tests.fakes.fly import FakeFly
from tests.support.daily_hooks_app import SECRET as WEBHOOK_SECRET
from tests.support.redis_server import RedisServer

DESK = "+14155550123"


@pytest.fixture
async def replicas(store: RedisServer, fake_fly: FakeFly,  # noqa: F811 - the fixtures imported above
                   fake_daily: FakeDaily) -> AsyncIterator[tuple[FastAPI, FastAPI]]:  # noqa: F811
    settings = Settings(machines="fly", api_key_hashes=frozenset({hash_api_key(KEY)}),
                        admin_key_hashes=frozenset({hash_api_key(ADMIN_KEY)}))
    env = {**store.env, "DAILY_DIALIN_SECRET": SECRET, "PHONE_TRANSFER_TARGETS": TARGETS,
           "DAILY_WEBHOOK_SECRET": WEBHOOK_SECRET}
    apps = tuple(create_app(settings, env={**env, "REPLICA_ID": name}, machines=fly_harness(fake_fly).make(),
                            rooms=DailyRooms(DailySettings.from_env(fake_daily.env))) for name in ("r-a", "r-b"))
    async with AsyncExitStack() as stack:
        for app in apps:
            stack.push_async_callback(app.state.voicefleet.aclose)
        yield apps[0], apps[1]


async def test_a_daily_warm_transfer_waiting_at_one_replica_hears_the_answer_at_another(
        replicas: tuple[FastAPI, FastAPI], fake_daily: FakeDaily) -> None:  # noqa: F811
    a, b = replicas
    fake_daily.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=b), timeout=10)
    await fake_daily.subscribe("https://calls.example.com/phone/daily/webhook", WEBHOOK_SECRET,
                               retry_type="exponential")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="https://calls.example.com") as http:
        started = await http.post(f"/phone/daily/dialin/{SECRET}", json=CALL)
        assert started.status_code == 201, started.text
        session_id = started.json()["sessionId"]
        room = next(iter(fake_daily.rooms))
        fake_daily.join(room, f"bot-{session_id}")
        fake_daily.dial_in(room)

        async def person_answers() -> str:
            assert await fake_daily.eventually(lambda: bool(fake_daily.ringing(room)))
            return fake_daily.answer_dial_out(fake_daily.ringing(room)[0])

        answering = asyncio.create_task(person_answers())
        answer = await http.post(f"/sessions/{session_id}/transfer", json={"to": DESK, "mode": "warm"}, headers=ADMIN)
        person = await answering
    assert answer.status_code == 200, answer.text
    assert answer.json()["carrier_status"] == "warm"
    assert ("dialout.answered", 200) in fake_daily.sent_webhooks  # heard at B, read at A
    legs = b.state.voicefleet.phone.daily_hooks.legs
    assert isinstance(legs._records, StoreFirstClaims)  # noqa: SLF001 - the redis-server's, not B's memory
    assert await a.state.voicefleet.phone.daily_hooks.legs.answered(person)
    assert fake_daily.dial_outs[person]["state"] == "answered"  # still on: bridged, not stopped by B
