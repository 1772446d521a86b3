"""Fixtures for the fault tests: the fakes (tests/fakes), one cloud provider at a time behind the
dispatcher app, the fake Daily, and a reaper sweep as it would run once every deadline has passed."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from dispatcher.api.auth import Authenticator
from dispatcher.app import create_app
from dispatcher.machines.base import Machines
from dispatcher.media.daily import DailyRooms, DailySettings
from dispatcher.observability.metrics import Metrics
from dispatcher.sessions.ids import new_session_id
from dispatcher.sessions.reaper import Reaper, ReaperSettings
from dispatcher.settings import Settings, hash_api_key
from tests.dispatcher.machines.harness import ecs_harness, fly_harness, gce_harness, modal_harness
from tests.fakes.daily import FakeDaily
from tests.fakes.ecs import EcsProxy, own_cluster
from tests.fakes.fixtures import fake_daily, fake_fly, moto_ecs
from tests.fakes.fly import FakeFly
from tests.fakes.gce import FakeGce
from tests.fakes.modal_server import FakeModal
from tests.fakes.server import FakeApi, serve
from tests.faults.fleet import Fleet, fault_env, settle
from tests.support.dispatcher_server import in_process

__all__ = ["fake_daily", "fake_fly", "moto_ecs"]

KEY = "faults-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
MAX_SESSION = 600


# One server per fake for the whole run (every test has its own session ids): starting and
# stopping two uvicorn servers per test cost more than most of these tests.
def _served(fake: FakeApi, suffix: str = "") -> Iterator[FakeApi]:
    with serve(fake, suffix):
        yield fake


def _fresh(fake: FakeApi) -> FakeApi:
    """Before a test: no knobs left from the last one, and nothing it left in flight."""
    fake.reset_knobs()  # releases whatever the last test still held
    settle(fake, 10)
    return fake


@pytest.fixture(scope="session")
def served_fly() -> Iterator[FakeApi]:
    fly = FakeFly()
    # One fake for the whole run, its tests back to back, each looking machines up often and
    # retrying held creates: Fly's app-wide 1/s list and create limits are not what these tests are
    # about (tests/dispatcher/machines/test_fly_lists.py, test_fly_fake_limits.py). Spent by earlier
    # tests, they would answer a held create's retry 429 at once instead of holding it.
    fly.list_per_second, fly.list_burst = 1000, 1000
    fly.create_per_second, fly.create_burst = 1000, 1000
    yield from _served(fly)


@pytest.fixture(scope="session")
def served_gce() -> Iterator[FakeApi]:
    yield from _served(FakeGce(), "/compute/v1")


@pytest.fixture(scope="session")
def served_daily() -> Iterator[FakeApi]:
    yield from _served(FakeDaily(), "/v1")


@pytest.fixture(scope="session")
def served_ecs(moto_ecs: dict[str, str]) -> Iterator[FakeApi]:
    proxy = EcsProxy(moto_ecs["MOTO_URL"])
    for served in _served(proxy):
        env = {k: v for k, v in moto_ecs.items() if k != "MOTO_URL"}
        served.env = {**env, "AWS_ENDPOINT_URL": served.url}  # type: ignore[attr-defined]
        yield served


@pytest.fixture(scope="session")
def served_modal() -> Iterator[FakeModal]:
    fake = FakeModal().start()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def daily(served_daily: FakeDaily) -> FakeDaily:
    return _fresh(served_daily)  # type: ignore[return-value]


@pytest.fixture(params=["fly", "gce", "ecs", "modal"])
def fleet(request: pytest.FixtureRequest) -> Fleet:
    """The provider against its fake, which the session shares. Where the provider looks at all its
    machines (an unknown session's status, the admission's recount, the reaper's list), the test has
    a scope of its own, an ECS cluster or a Modal App: over every earlier test's machines those looks
    grew with each test, loading the fake (in this process) until a create's answer missed its timeout."""
    name = request.param
    fake = _fresh(request.getfixturevalue(f"served_{name}"))
    if isinstance(fake, EcsProxy):
        return ecs_harness(fake, own_cluster(fake.moto_url)).with_env(**fault_env(name))
    harness: Fleet = {"fly": fly_harness, "gce": gce_harness, "modal": modal_harness}[name](fake)  # type: ignore[operator]
    own = {"MODAL_APP": f"voicefleet-{uuid.uuid4().hex[:12]}"} if name == "modal" else {}
    return harness.with_env(**fault_env(name), **own)


@dataclass(repr=False)
class Stack:
    http: httpx.AsyncClient
    fleet: Fleet
    daily: FakeDaily
    machines: Machines
    rooms: DailyRooms
    # Unique per test: the fakes are shared by the whole run, and ECS remembers a clientToken for 24 h.
    key: str = ""

    def __post_init__(self) -> None:
        self.key = self.key or f"call-{uuid.uuid4().hex}"

    def __repr__(self) -> str:
        return f"Stack({self.fleet.name}, session {self.session_id})"

    @property
    def session_id(self) -> str:
        """The session `key` names, derived as the dispatcher does (any replica agrees on it)."""
        caller = Authenticator(frozenset({hash_api_key(KEY)})).identify(AUTH["Authorization"])
        return new_session_id(caller.owner_key, self.key)

    @property
    def room(self) -> str:
        return f"vf-{self.session_id}"

    async def start(self) -> httpx.Response:
        """`POST /start` with this test's Idempotency-Key (a client's first try or its retry)."""
        headers = {**AUTH, "Idempotency-Key": self.key}
        return await self.http.post("/start", json={"body": {"persona": "x"}}, headers=headers)

    async def sweep(self) -> Counter[str]:
        """One reaper pass by another replica, run after every session's deadline has passed."""
        replica = self.fleet.make()
        # Daily allows ~2 deletes/s; the sweep also ends rooms of every earlier test's sessions.
        rooms = daily_rooms(self.daily, DAILY_DELETE_RATE="1000", DAILY_DELETE_BURST="1000")
        later = time.time() + MAX_SESSION + 1
        reaper = Reaper(
            replica,
            rooms,
            Metrics(self.fleet.name),
            max_session_seconds=MAX_SESSION,
            settings=ReaperSettings(grace_seconds=0),
            clock=lambda: later,
        )
        try:
            return await reaper.sweep()
        finally:
            await replica.aclose()
            await rooms.aclose()


def daily_rooms(daily: FakeDaily, **overrides: str) -> DailyRooms:
    env = {
        **overrides,
        **daily.env,
        **fault_env("daily"),
    }
    return DailyRooms(DailySettings.from_env(env))


@pytest.fixture
async def stack(fleet: Fleet, daily: FakeDaily) -> AsyncIterator[Stack]:
    settings = Settings(
        machines=fleet.name,
        api_key_hashes=frozenset({hash_api_key(KEY)}),
        max_session_seconds=MAX_SESSION,
        max_concurrent_sessions=100_000,
        reaper_interval_seconds=0,  # the tests sweep when they mean to
    )
    machines = fleet.make()
    rooms = daily_rooms(daily)
    app = create_app(settings, env={}, machines=machines, rooms=rooms)
    async with in_process(app, served=False, timeout=30) as running:
        yield Stack(running.client, fleet, daily, machines, rooms)
