"""The warm reserve per release, locally: two releases (two bot files), real stand-in bot processes
on the real channel, the admin API to change the traffic. Deterministic as test_reserve.py: the
reserve is refilled by calling `refill()`, every wait is on the channel's own condition."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.reserve.demand import Demand
from dispatcher.reserve.planner import Fleet, PlannerSettings, Tiers
from dispatcher.reserve.poisson import poisson_quantile
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.sizer import FleetSizer
from tests.dispatcher.reserve.test_reserve import WAIT, Dispatcher, make_dispatcher  # noqa: F401 (a fixture)
from tests.support.processes import pid_alive


def bot_files(tmp_path: Path) -> dict[str, str]:
    files = {}
    for name in ("stable", "next"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "bot.py").write_text(f"# {name}\nasync def bot(runner_args): ...\n")
        files[name] = str(folder / "bot.py")
    return {"BOT_RELEASES": f"stable={files['stable']},next={files['next']}"}


def idle_of(d: Dispatcher) -> dict[str, set[str]]:
    """The idle bots on the channel, by the release each was launched for."""
    by_release: dict[str, set[str]] = {}
    for link in d.channels.idle():
        by_release.setdefault(d.machines._idle[link.machine_id].spec.release, set()).add(link.machine_id)
    return by_release


async def fill(d: Dispatcher, wanted: dict[str, int]) -> dict[str, set[str]]:
    await d.reserve.refill()
    ok = await d.channels.wait_until(lambda: {r: len(b) for r, b in idle_of(d).items()} == wanted, WAIT)
    assert ok, f"the reserve never held {wanted}: {idle_of(d)}"
    return idle_of(d)


async def test_at_90_10_both_releases_hold_idle_bots_and_a_canary_session_takes_only_a_canary_bot(
        make_dispatcher, tmp_path):  # noqa: F811
    d = await make_dispatcher(RESERVE_MIN_IDLE="1", RELEASE_WEIGHTS="stable=90,next=10", **bot_files(tmp_path))
    idle = await fill(d, {"stable": 1, "next": 1})  # each release with traffic keeps the floor
    await d.reserve.refill()  # publishes what it holds: GET /releases counts from there
    assert await d.reserve.idle_by_release() == {"stable": 1, "next": 1}
    [canary_bot] = idle["next"]
    canary_pid, stable_pids = d.idle_pid(canary_bot), {d.idle_pid(b) for b in idle["stable"]}

    first = await d.client.post("/start", json={"release": "next"})
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "started"  # warm
    assert d.session_pid(first.json()["session_id"]) == canary_pid

    # No canary bot is idle now: the next canary start is cold, never a stable bot.
    second = await d.client.post("/start", json={"release": "next"})
    assert second.status_code == 201, second.text
    assert second.json()["status"] == "starting" and second.json()["release"] == "next"
    assert d.session_pid(second.json()["session_id"]) not in stable_pids
    assert idle_of(d)["stable"] == idle["stable"]


async def test_a_canary_set_to_0_loses_its_idle_bots_at_once_and_its_live_session_runs_on(
        make_dispatcher, tmp_path):  # noqa: F811
    d = await make_dispatcher(RESERVE_MIN_IDLE="1", RELEASE_WEIGHTS="stable=90,next=10", **bot_files(tmp_path))
    await fill(d, {"stable": 1, "next": 1})
    live = await d.client.post("/start", json={"release": "next"})
    session_id = live.json()["session_id"]
    assert live.json()["status"] == "started"
    idle = await fill(d, {"stable": 1, "next": 1})  # the claimed canary bot replaced
    [canary_bot], [stable_bot] = idle["next"], idle["stable"]
    canary_pid, stable_pid = d.idle_pid(canary_bot), d.idle_pid(stable_bot)

    changed = await d.client.put("/releases", json={"weights": {"stable": 100, "next": 0}})
    assert changed.status_code == 200, changed.text
    await d.reserve.refill()

    assert not pid_alive(canary_pid)
    assert await d.metric("voicefleet_reserve_retired_total", reason="no_traffic", provider="local") == 1
    assert idle_of(d) == {"stable": {stable_bot}} and pid_alive(stable_pid)
    assert pid_alive(d.session_pid(session_id))  # the canary's live session is never touched
    status = await d.client.get(f"/sessions/{session_id}")
    assert status.json()["status"] == "started" and status.json()["release"] == "next"


async def test_a_pinned_start_of_a_release_at_weight_0_starts_cold_and_is_told_the_wait(
        make_dispatcher, tmp_path):  # noqa: F811
    d = await make_dispatcher(RESERVE_MIN_IDLE="1", **bot_files(tmp_path))  # stable 100 %, next 0 %
    idle = await fill(d, {"stable": 1})
    pinned = await d.client.post("/start", json={"release": "next"})
    assert pinned.status_code == 201, pinned.text
    body = pinned.json()
    assert body["status"] == "starting" and body["release"] == "next"
    assert body["ready_in_seconds"] > 0 and body["ready_in_basis"] in ("measured", "default")
    assert idle_of(d) == idle  # the stable bot was not taken
    assert await d.metric("voicefleet_reserve_claims_total", outcome="cold_miss", provider="local") == 1


@pytest.mark.parametrize(("lead_arrivals", "canary_target"), [(0.0, 0), (1.0, 1), (60.0, 6)])
def test_a_5_percent_canary_holds_its_own_stock_and_one_bot_whenever_the_deployment_holds_any(
        lead_arrivals, canary_target):
    """At 1 start per lead time the deployment's stock is 3 and a 5 % canary's own Poisson stock is
    0: it holds 1. At 60, its own stock (3 expected, 95 %: 6) is what it holds."""
    settings = ReserveSettings(min_idle=0, buffer=0.0, burst=0.0, max_idle=100, cold_start_seconds=10.0)
    sizer = FleetSizer(settings, PlannerSettings(forecast=False), Tiers(False, 0.0, 10.0))
    sizer.last_demand, sizer._demand_read_at = Demand(lead_arrivals, lead_arrivals / 11, lead_arrivals / 11), 0.0
    plans = sizer.plan_releases(0.0, [(0.95, Fleet([], [])), (0.05, Fleet([], []))], 100)
    assert plans[1].ready_target == plans[1].launch == canary_target
    assert plans[0].ready_target == poisson_quantile(0.95 * lead_arrivals, 0.95)


def test_each_release_with_traffic_keeps_the_deployments_whole_floor() -> None:
    """RESERVE_MIN_IDLE=3: a 5 % canary keeps 3 bots too, not 5 % of 3 (after each claim, and at
    each burst, a canary with one bot started cold: the simulator's figures, docs/releases.md)."""
    settings = ReserveSettings(min_idle=3, buffer=0.0, burst=0.0, max_idle=100, cold_start_seconds=10.0)
    sizer = FleetSizer(settings, PlannerSettings(forecast=False), Tiers(False, 0.0, 10.0))
    sizer.last_demand, sizer._demand_read_at = Demand(0.5, 0.05, 0.05), 0.0
    plans = sizer.plan_releases(0.0, [(0.95, Fleet([], [])), (0.05, Fleet([], []))], 100)
    assert [plan.ready_target for plan in plans] == [3, 3]
