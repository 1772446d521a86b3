"""A start's refusals with the replicas' store, through `POST /start` on a real redis-server: the key's
start rate answers first, then the key's share, then the session cap, then Fly's create bucket; each
refusal is its own answer (code, Retry-After), and what an earlier decision took is as it was before
(the key's share and the cap decided in one round trip now, dispatcher/store/share_ask.py): the key's
recorded sessions and the launches' record hold only the starts that were admitted.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from dispatcher.app import create_app
from dispatcher.settings import Settings
from dispatcher.store.client import DEFAULT_PREFIX
from tests.fakes.daily import FakeDaily
from tests.fakes.fly import FakeFly
from tests.support.redis_server import RedisServer, redis_server

A, B = "order-key-a-0123456789abcdef", "order-key-b-0123456789abcdef"
HIGH = "100000"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as server:
        yield server


class Deployment:
    def __init__(self, client: httpx.AsyncClient, admin: Redis, prefix: str, fly: FakeFly) -> None:
        self.client, self.admin, self.prefix, self.fly = client, admin, prefix, fly

    async def start(self, key: str) -> httpx.Response:
        return await self.client.post("/start", json={"body": {}}, headers={"Authorization": f"Bearer {key}"})

    async def held(self) -> tuple[int, list[int]]:
        """The launches' record, and each key's recorded sessions: members in each."""
        launches, keys = 0, []
        async for key in self.admin.scan_iter(match=f"{self.prefix}launches*"):
            if await self.admin.type(key) != "zset":
                continue
            if key == f"{self.prefix}launches":
                launches = await self.admin.zcard(key)
            elif key.startswith(f"{self.prefix}launches:key:"):  # a key's sessions (dispatcher/store/key_sessions.py)
                keys.append(await self.admin.zcard(key))
        return launches, sorted(keys)

    def created(self) -> int:
        return sum(1 for call in self.fly.calls if call.method == "POST")


@pytest.fixture
async def deployment(request: pytest.FixtureRequest, store: RedisServer, fake_fly: FakeFly, fake_daily: FakeDaily,
                     tmp_path: Path) -> AsyncIterator[Deployment]:
    prefix = f"{DEFAULT_PREFIX}t-{secrets.token_hex(4)}:"
    env = {
        **fake_fly.env, **fake_daily.env, **store.env, "REDIS_KEY_PREFIX": prefix, "REDIS_TIMEOUT_SECONDS": "5",
        "MACHINES": "fly", "DISPATCHER_API_KEYS": f"{A},{B}", "MAX_CONCURRENT_SESSIONS": "4",
        "START_RATE_PER_KEY": HIGH, "START_BURST_PER_KEY": HIGH, "FLY_CREATE_RATE": HIGH, "FLY_CREATE_BURST": HIGH,
        "DAILY_RATE": HIGH, "DAILY_BURST": HIGH, "REAPER_INTERVAL_SECONDS": "0", **request.param,
    }
    for action in ("create", "list"):  # Fly's own limits out of the way: the dispatcher's are under test
        setattr(fake_fly, f"{action}_per_second", 1e6)
        setattr(fake_fly, f"{action}_burst", 10**6)
    app = create_app(Settings.from_env(env), env=env)
    admin = Redis.from_url(store.admin_url, decode_responses=True)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", timeout=30
    ) as client:
        try:
            yield Deployment(client, admin, prefix, fake_fly)
        finally:
            await app.state.voicefleet.aclose()
            await admin.aclose()


def refused(answer: httpx.Response, status: int, code: str) -> float:
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code, answer.text
    return float(answer.headers["Retry-After"])


@pytest.mark.parametrize("deployment", [{"START_RATE_PER_KEY": "0.01", "START_BURST_PER_KEY": "1",
                                         "KEY_SESSION_SHARE": "0.25"}], indirect=True)
async def test_the_start_rate_answers_first(deployment: Deployment) -> None:
    assert (await deployment.start(A)).status_code == 201
    # The key's share (1) is held as well: the rate, taken first, is the answer.
    assert refused(await deployment.start(A), 429, "rate_limited") > 0
    assert await deployment.held() == (1, [1])
    assert deployment.created() == 1


@pytest.mark.parametrize("deployment", [{"MAX_CONCURRENT_SESSIONS": "2"}], indirect=True)
async def test_the_keys_share_answers_before_the_cap(deployment: Deployment) -> None:
    assert (await deployment.start(A)).status_code == 201
    assert (await deployment.start(B)).status_code == 201  # the cap (2) is full, and A holds its share (1)
    assert refused(await deployment.start(A), 429, "key_at_capacity") == 5
    assert await deployment.held() == (2, [1, 1])
    assert deployment.created() == 2


@pytest.mark.parametrize("deployment", [{"KEY_SESSION_SHARE": "0.75"}], indirect=True)
async def test_the_cap_refuses_and_the_key_keeps_its_room(deployment: Deployment) -> None:
    for key in (A, A, B, B):
        assert (await deployment.start(key)).status_code == 201
    assert refused(await deployment.start(A), 429, "at_capacity") == 5  # A holds 2 of its 3
    assert await deployment.held() == (4, [2, 2])
    assert deployment.created() == 4


@pytest.mark.parametrize("deployment", [{"FLY_CREATE_RATE": "0.001", "FLY_CREATE_BURST": "1",
                                         "FLY_CREATE_MAX_WAIT": "0"}], indirect=True)
async def test_flys_create_bucket_refuses_last_and_gives_the_share_and_the_cap_back(deployment: Deployment) -> None:
    assert (await deployment.start(A)).status_code == 201
    answer = await deployment.start(A)
    assert answer.json()["error"]["code"] == "fly_rate_limited", answer.text
    assert float(answer.headers["Retry-After"]) > 0
    assert await deployment.held() == (1, [1])
    assert deployment.created() == 1

