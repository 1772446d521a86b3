"""ECS RunTask and Compute Engine inserts count their create limit once for the deployment, as Fly's
creates do: two replicas' providers on one real redis-server (with the stack's store access rules)
never create more than the limit's burst between them, a reserve refill leaves the last token to
a cold launch, and a launch right after a refill spends that refill's token, not a second one.

The limit is made slow (one token every 100 s, burst 3, no wait) so nothing here depends on timing.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dispatcher.machines.base import LaunchResult, MachinesError, WarmMachines
from dispatcher.machines.creates import Creates
from dispatcher.machines.ecs.provider import EcsSettings
from dispatcher.machines.ecs.reserve import EcsWarmMachines
from dispatcher.machines.gce.provider import GceSettings
from dispatcher.machines.gce.reserve import GceWarmMachines
from dispatcher.outbound.ratelimit import Rate
from dispatcher.reserve.fleet import creates_of
from dispatcher.store.client import DEFAULT_PREFIX, StoreSettings
from dispatcher.store.local import LocalCoordination
from dispatcher.store.redis_coordination import RedisCoordination
from tests.dispatcher.machines.test_contract import spec
from tests.dispatcher.store.conftest import settings_for
from tests.fakes.ecs import EcsProxy
from tests.fakes.gce import FakeGce
from tests.support.redis_server import RedisServer, redis_server

BURST = 3
SLOW = {"RATE": "0.01", "BURST": str(BURST), "MAX_WAIT": "0"}  # the next token 100 s after the burst


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as server:
        yield server


@pytest.fixture
async def replicas(redis: RedisServer) -> AsyncIterator[tuple[RedisCoordination, RedisCoordination]]:
    prefix = f"{DEFAULT_PREFIX}t-{secrets.token_hex(4)}:"
    pair = tuple(RedisCoordination(settings_for(redis, name, prefix)) for name in ("r-a", "r-b"))
    yield pair  # type: ignore[misc]
    for coordination in pair:
        await coordination.aclose()


def provider(kind: str, request: pytest.FixtureRequest, coordination: RedisCoordination) -> WarmMachines:
    if kind == "ecs":
        fake: EcsProxy = request.getfixturevalue("fake_ecs")
        env = {**fake.env, **{f"ECS_RUN_TASK_{k}": v for k, v in SLOW.items()}, "ECS_RETRY_DEADLINE_SECONDS": "3"}
        return EcsWarmMachines(EcsSettings.from_env(env), channel_url="wss://d.example/bots/channel",
                               coordination=coordination)
    gce: FakeGce = request.getfixturevalue("fake_gce")
    env = {**gce.env, **{f"GCE_INSERT_{k}": v for k, v in SLOW.items()}}
    return GceWarmMachines(GceSettings.from_env(env), max_idle_seconds=600, max_session_seconds=600,
                           coordination=coordination)


async def launched(machines: WarmMachines, n: int) -> LaunchResult | MachinesError:
    try:
        return await machines.launch(spec(f"{secrets.token_hex(12)}"[:24]))
    except MachinesError as exc:
        return exc


@pytest.mark.parametrize("kind", ["ecs", "gce"])
async def test_two_replicas_cold_launches_share_one_create_limit(
    kind: str, request: pytest.FixtureRequest, replicas: tuple[RedisCoordination, RedisCoordination]
) -> None:
    here, there = (provider(kind, request, c) for c in replicas)
    try:
        outcomes = [await launched((here, there)[n % 2], n) for n in range(2 * BURST)]
    finally:
        await here.aclose()
        await there.aclose()
    refused = [o for o in outcomes if isinstance(o, MachinesError)]
    assert len(outcomes) - len(refused) == BURST, outcomes  # each replica's own bucket let 2 × the burst through
    assert {e.reason for e in refused} == {f"{kind}_rate_limited"}
    assert all(e.retry_after and e.retry_after > 0 for e in refused)


@pytest.mark.parametrize("kind", ["ecs", "gce"])
async def test_refills_leave_the_last_create_to_a_cold_launch_and_spend_no_second_token(
    kind: str, request: pytest.FixtureRequest, replicas: tuple[RedisCoordination, RedisCoordination]
) -> None:
    machines = provider(kind, request, replicas[0])
    limit = creates_of(machines, replicas[0])  # what the reserve's planner takes its refills from
    try:
        granted = [(await limit.refill()).granted for _ in range(BURST)]
        assert granted == [True] * (BURST - 1) + [False]  # one token stays for a cold start
        for n in range(BURST - 1):  # the refills' launches, each on the token its refill took
            await machines.launch_idle(f"rsv-{secrets.token_hex(4)}-{n}")
        assert isinstance(await launched(machines, 0), LaunchResult)  # the token left: a cold start's
        assert isinstance(await launched(machines, 1), MachinesError)  # and then none
    finally:
        await machines.aclose()


@pytest.mark.parametrize("kind", ["ecs", "gce"])
async def test_with_the_store_down_each_replica_counts_its_creates_alone(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """The documented fallback (dispatcher/store/forgiving.py): a store that does not answer never
    stops a launch; this replica counts the limit by itself, still within the burst."""
    down = RedisCoordination(StoreSettings(url="redis://127.0.0.1:9/0", timeout_seconds=0.2,
                                           message_secret="m" * 32))  # nothing listens there
    machines = provider(kind, request, down)
    try:
        outcomes = [await launched(machines, n) for n in range(BURST + 1)]
    finally:
        await machines.aclose()
        await down.aclose()
    assert [isinstance(o, LaunchResult) for o in outcomes] == [True] * BURST + [False], outcomes
    assert down.health()["status"] == "unreachable"


async def test_a_reserve_launch_not_after_a_refill_waits_for_its_token_as_a_cold_launch_does() -> None:
    creates = Creates("ecs", LocalCoordination(), Rate(per_second=0.01, burst=2, max_wait=0))
    assert await creates.idle_turn() == "ecs"  # no refill took a token for it: it takes one itself
    assert (await creates.refill()).granted is False  # so the last one is left for a cold start
    assert await creates.cold_turn() == "ecs"
    with pytest.raises(MachinesError) as refused:
        await creates.idle_turn()
    assert refused.value.reason == "ecs_rate_limited" and refused.value.retry_after and refused.value.retry_after > 90


def grouped() -> Creates:
    """Fly's shape: one count per app, each with a burst of 3 (two spare for refills, one for a cold start)."""
    return Creates("fly", LocalCoordination(), Rate(per_second=0.01, burst=3, max_wait=0), groups=("a", "b"))


def test_a_sessions_cold_machine_goes_to_the_same_group_at_every_replica() -> None:
    here, there = grouped(), grouped()  # two replicas
    sessions = [f"s-{n}" for n in range(20)]
    assert [here.app_of(s) for s in sessions] == [there.app_of(s) for s in sessions]
    assert {here.app_of(s) for s in sessions} == {"a", "b"}  # and sessions spread over the groups


async def test_a_cold_launch_goes_to_the_group_whose_token_comes_soonest() -> None:
    creates = grouped()
    for _ in range(3):  # group a's whole burst: its next token is 100 s away
        await creates.cold_turn("a")
    assert await creates.soonest_app() == "b"
    assert await creates.cold_turn() == "b"


async def test_a_refill_takes_its_token_from_the_group_with_the_most_spare_and_launches_there() -> None:
    creates = grouped()
    await creates.cold_turn("a")  # a: one spare left, b: two
    turn = await creates.refill()
    assert turn.granted and turn.spare == 2  # the deployment's spare after this one: a's 1 and b's 1
    assert await creates.idle_turn() == "b"  # the launch that follows creates where the token was taken
