"""Cells (dispatcher/machines/cells.py): which cell a start goes to, how a throttling cell is set
aside and comes back, and that each cell's launch bucket is counted once for the deployment, in
this process (LocalCoordination) and across replicas on a real redis-server.
"""

from __future__ import annotations

import pytest

from dispatcher.machines.base import MachinesError
from dispatcher.machines.cells import CELLS_NAMED, DRAIN_BASE_SECONDS, DRAIN_CAP_SECONDS, Cells
from dispatcher.outbound.ratelimit import Rate
from dispatcher.store.coordination import CreateLimits
from dispatcher.store.local import LocalCoordination
from dispatcher.store.redis_coordination import RedisCoordination
from tests.dispatcher.store.conftest import prefix, redis, replica_pair  # noqa: F401 - the store's fixtures

NAMES = ("a", "b", "c")
PLENTY = Rate(per_second=100, burst=100, max_wait=0)
SLOW = Rate(per_second=0.01, burst=2, max_wait=0)  # two launches, then the next token 100 s later


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cells(rate: Rate = PLENTY, names: tuple[str, ...] = NAMES, *, coordination: CreateLimits | None = None,
          clock: Clock | None = None, **kw: object) -> Cells:
    return Cells("ecs", coordination or LocalCoordination(), rate, names, clock=clock or Clock(),
                 wall=lambda: 5000.0, jitter=lambda low, high: high, **kw)  # type: ignore[arg-type]


def session_homed_in(group: Cells, name: str) -> str:
    return next(s for s in (f"s-{i}" for i in range(1000)) if group.home(s) == name)


@pytest.mark.parametrize("home", NAMES)
async def test_a_cold_launch_goes_to_its_home_cell_and_a_retry_meets_it_again(home: str) -> None:
    group = cells()
    session = session_homed_in(group, home)
    assert await group.cold_turn(session) == home
    assert await group.cold_turn(session) == home
    assert cells().home(session) == home  # another replica agrees


def test_home_cells_spread_sessions_over_every_cell() -> None:
    group = cells()
    homes = [group.home(f"s-{i}") for i in range(300)]
    assert {name: homes.count(name) for name in NAMES} == {name: pytest.approx(100, abs=30) for name in NAMES}


@pytest.mark.parametrize(("drained", "expected"), [
    ((), "a"), (("a",), "b"), (("a", "b"), "c"), (("b",), "a"), (("a", "c"), "b")])
async def test_a_drained_cell_sends_its_starts_to_the_next_open_one(drained: tuple[str, ...], expected: str) -> None:
    group = cells()
    for name in drained:
        group.drain(name, "ThrottlingException")
    assert await group.cold_turn(session_homed_in(group, "a")) == expected


async def test_a_cell_this_launch_found_throttling_is_not_tried_again() -> None:
    group = cells()
    assert await group.cold_turn(session_homed_in(group, "a"), tried=("a", "b")) == "c"


async def test_every_cell_drained_is_a_503_naming_each_cell_and_its_backoff() -> None:
    clock = Clock()
    group = cells(clock=clock)
    group.drain("a", "ThrottlingException")
    group.drain("b", "RunTask: Capacity is unavailable at this time")
    group.drain("c", "ThrottlingException", retry_after=30)
    with pytest.raises(MachinesError) as refused:
        await group.cold_turn("s-1")
    assert refused.value.reason == "ecs_cells_drained"
    assert refused.value.retry_after == DRAIN_BASE_SECONDS
    assert refused.value.public_message == (
        "every ecs cell is drained: a for 2s (ThrottlingException); b for 2s (RunTask: Capacity is unavailable "
        "at this time); c for 30s (ThrottlingException)")
    clock.now += DRAIN_BASE_SECONDS + 0.1  # a and b's backoffs are over
    assert await group.cold_turn(session_homed_in(group, "b")) == "b"


async def test_a_drain_grows_exponentially_with_jitter_up_to_its_cap_and_resets_after_a_launch() -> None:
    seen: list[tuple[float, float]] = []

    def jitter(low: float, high: float) -> float:
        seen.append((low, high))
        return low

    group = Cells("ecs", LocalCoordination(), PLENTY, NAMES, clock=Clock(), jitter=jitter)
    backoffs = [group.drain("a", "ThrottlingException") for _ in range(9)]
    assert backoffs == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert seen[:3] == [(1, 2), (2, 4), (4, 8)]  # the upper half of the exponential ceiling
    assert max(high for _, high in seen) == DRAIN_CAP_SECONDS
    group.launched("a")
    assert group.drain("a", "ThrottlingException") == 1
    assert group.drain("b", "x", retry_after=10 * DRAIN_CAP_SECONDS) == DRAIN_CAP_SECONDS  # bounded


async def test_a_home_only_provider_never_spreads_a_session_elsewhere() -> None:
    group = cells(spread=False)
    session = session_homed_in(group, "a")
    group.drain("a", "ThrottlingException")
    with pytest.raises(MachinesError) as refused:
        await group.cold_turn(session)
    assert refused.value.reason == "ecs_cells_drained"
    assert "a for 2s" in str(refused.value.public_message) and "b " not in str(refused.value.public_message)


async def test_a_full_cell_is_passed_over_and_every_cell_full_is_a_capacity_refusal() -> None:
    group = cells(room={"a": 1, "b": 2})
    session = session_homed_in(group, "a")
    group.counted("a", 1)
    assert await group.cold_turn(session) == "b"
    group.counted("b", 2)
    group.drain("c", "ThrottlingException")
    with pytest.raises(MachinesError) as refused:
        await group.cold_turn(session)
    assert refused.value.reason == "ecs_capacity" and refused.value.retry_after


async def test_a_cell_without_a_token_passes_the_start_to_one_with_a_token() -> None:
    group = cells(SLOW)
    session = session_homed_in(group, "a")
    assert [await group.cold_turn(session) for _ in range(5)] == ["a", "a", "b", "b", "c"]
    await group.cold_turn(session)
    with pytest.raises(MachinesError) as refused:
        await group.cold_turn(session)
    assert refused.value.reason == "ecs_rate_limited" and (refused.value.retry_after or 0) > 50


async def test_views_show_launches_a_second_running_count_and_drains() -> None:
    clock = Clock()
    group = cells(clock=clock)
    for _ in range(5):
        group.launched("a")
    group.counted("b", 7)
    group.drain("c", "ThrottlingException", retry_after=20)
    views = {view.name: view for view in group.views()}
    assert (views["a"].launches_per_second, views["a"].running, views["a"].drained_until) == (0.5, 5, None)
    assert views["b"].running == 7
    assert (views["c"].drained_until, views["c"].reason) == (5020.0, "ThrottlingException")
    clock.now += 21
    views = {view.name: view for view in group.views()}
    assert views["a"].launches_per_second == 0 and views["c"].drained_until is None and views["c"].reason is None


def test_one_cell_keeps_the_providers_own_bucket_name() -> None:
    seen: list[str] = []

    class Recording(LocalCoordination):
        def create_limit(self, name: str, per_second: float, burst: int):  # type: ignore[no-untyped-def]
            seen.append(name)
            return super().create_limit(name, per_second, burst)

    Cells("ecs", Recording(), PLENTY, ("main",), groups=False)
    Cells("ecs", Recording(), PLENTY, ("a", "b"))
    assert seen == ["ecs", "ecs:a", "ecs:b"]



async def test_a_cell_with_its_own_rate_takes_its_own_burst_and_the_others_the_providers() -> None:
    """ACI_CELLS' own budgets: b's bucket holds 3 and a and c the provider's 1 (c sharing b's bucket takes
    b's); a cold start still waits no longer than the provider's max wait, in any cell."""
    one = Rate(per_second=0.01, burst=1, max_wait=0)
    group = cells(one, rates={"b": Rate(per_second=0.01, burst=3, max_wait=60)})
    granted = {name: [(await group.creates.cold_in(name, 0)).granted for _ in range(4)] for name in NAMES}
    assert granted == {"a": [True, False, False, False], "b": [True, True, True, False],
                       "c": [True, False, False, False]}
    with pytest.raises(MachinesError) as refused:
        await group.cold_turn(session_homed_in(group, "b"))
    assert refused.value.reason == "ecs_rate_limited" and "(more than 0s)" in refused.value.message
    shared = cells(one, shared={"c": "b"}, rates={"b": Rate(per_second=0.01, burst=3)})
    assert [(await shared.creates.cold_in("c", 0)).granted for _ in range(4)] == [True, True, True, False]
    assert not (await shared.creates.cold_in("b", 0)).granted

async def test_each_cells_bucket_is_counted_once_for_the_deployment_across_replicas(
        replica_pair: tuple[RedisCoordination, RedisCoordination]) -> None:  # noqa: F811
    one, two = (cells(SLOW, ("a", "b"), coordination=c) for c in replica_pair)
    session = session_homed_in(one, "a")
    # Replica one spends a's burst; replica two's start for the same home finds a spent and goes to b.
    assert [await one.cold_turn(session) for _ in range(2)] == ["a", "a"]
    assert [await two.cold_turn(session) for _ in range(2)] == ["b", "b"]
    with pytest.raises(MachinesError) as refused:
        await one.cold_turn(session)
    assert refused.value.reason == "ecs_rate_limited"


@pytest.mark.parametrize("drained", [tuple(n for i, n in enumerate(NAMES) if mask >> i & 1) for mask in range(8)])
@pytest.mark.parametrize("home", NAMES)
async def test_every_mix_of_drained_cells_sends_a_start_to_the_first_open_one_in_its_order(
        home: str, drained: tuple[str, ...]) -> None:
    group = cells()
    session = session_homed_in(group, home)
    for name in drained:
        group.drain(name, "ThrottlingException")
    open_in_order = [name for name in group.order(session) if name not in drained]
    assert group.order(session)[0] == home and sorted(group.order(session)) == sorted(NAMES)
    if open_in_order:
        assert await group.cold_turn(session) == open_in_order[0]
    else:
        with pytest.raises(MachinesError, match="every ecs cell is drained"):
            await group.cold_turn(session)


async def test_a_session_whose_machine_is_known_elsewhere_goes_back_there_first() -> None:
    group = cells()
    session = session_homed_in(group, "a")
    assert await group.cold_turn(session, prefer="c") == "c"
    assert group.order(session, prefer="c") == ("c", "a", "b")
    assert group.order(session, prefer="gone") == ("a", "b", "c")


async def test_a_sessions_cell_record_is_let_go_only_by_the_cell_holding_it(
        replica_pair: tuple[RedisCoordination, RedisCoordination]) -> None:  # noqa: F811
    for one, two in (replica_pair, (LocalCoordination(),) * 2):
        holders_one, holders_two = one.key_holders, two.key_holders
        assert await holders_two.held("ecs-cell:s-1") is None
        assert await holders_one.first("ecs-cell:s-1", "a", 60) == "a"
        assert await holders_two.held("ecs-cell:s-1") == "a"  # what a look reads: the cell it was sent to
        assert await holders_two.first("ecs-cell:s-1", "b", 60) == "a"  # another replica meets a
        await holders_two.let_go("ecs-cell:s-1", "b")  # not b's to let go
        assert await holders_two.first("ecs-cell:s-1", "b", 60) == "a"
        await holders_one.let_go("ecs-cell:s-1", "a")  # a made nothing: the next launch may go elsewhere
        assert await holders_two.first("ecs-cell:s-1", "b", 60) == "b"


async def test_the_all_drained_answer_names_a_few_cells_and_counts_the_rest() -> None:
    names = tuple(f"c{i}" for i in range(20))
    group = cells(names=names)
    for name in names:
        group.drain(name, "ThrottlingException")
    with pytest.raises(MachinesError) as refused:
        await group.cold_turn("s-1")
    message = refused.value.message
    assert message.count("ThrottlingException") == CELLS_NAMED and message.endswith(f"and {20 - CELLS_NAMED} more")


def test_a_cell_whose_tasks_could_not_be_listed_is_shown_so_by_the_status_and_the_command() -> None:
    from dispatcher.api.schemas import StatusCell
    from voicefleet.status import _cells

    cell = {"name": "b", "launches_per_second": 0.0, "running": 0, "room": None, "drained_until": None,
            "reason": None, "unreadable": "its tasks could not be listed (ecs_unauthorized)"}
    assert StatusCell.model_validate(cell).model_dump() == cell  # GET /status keeps it, not only the view
    shown = "\n".join(_cells([cell]))
    assert "open, unreadable" in shown and "its tasks could not be listed (ecs_unauthorized)" in shown
