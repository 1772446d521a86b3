"""The reserve simulator's bookkeeping on short runs (its figures are benchmarks, not tested here)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.reserve_sim_model import THAW_REDIAL_SECONDS, WARM_CLAIM_SECONDS, GivenColdStarts, Result, Simulation
from bench.reserve_sim_providers import BY_NAME, Provider
from bench.reserve_sim_traffic import SHAPES, Day
from dispatcher.outbound.ratelimit import Rate
from dispatcher.reserve.planner import PlannerSettings
from dispatcher.reserve.policy import ReserveSettings

HOUR = 3600.0
PLANNER = PlannerSettings()
SETTINGS = ReserveSettings(min_idle=1, buffer=0.1, max_idle=40)
FARGATE, GCE, FLY = BY_NAME["ecs-fargate"], BY_NAME["gce"], BY_NAME["fly"]
# Creates far slower than starts, and admission that waits at most 1 s: starts get refused.
STARVED = replace(FLY, name="starved", resume_median_seconds=0.0,
                  create_rate=Rate(per_second=0.02, burst=1, max_wait=1.0))


def run(provider: Provider, per_minute: float = 10.0, settings: ReserveSettings = SETTINGS, seed: int = 3,
        planner: PlannerSettings = PLANNER, day: str = "flat", **kwargs: object) -> Result:
    return Simulation(provider, settings, planner, per_minute, seed=seed, shape=SHAPES[day], seconds=HOUR,
                      history_days=2, **kwargs).run()  # type: ignore[arg-type]


@pytest.mark.parametrize("provider", [FARGATE, GCE, FLY, STARVED], ids=lambda p: p.name)
def test_every_start_is_warm_cold_or_refused_exactly_once(provider: Provider) -> None:
    result = run(provider)
    assert result.arrivals > 0
    assert result.warm + result.cold + result.refused + result.refused_cap == result.arrivals
    assert len(result.served) == result.warm + result.cold == len(result.time_to_ready)
    assert result.served <= set(range(result.arrivals))


def test_a_starved_provider_refuses_starts_instead_of_queueing_them() -> None:
    assert run(STARVED).refused > 0


def test_the_session_cap_refuses_starts_past_it() -> None:
    result = run(FARGATE, per_minute=30.0, max_sessions=20)
    assert result.refused_cap > 0 and result.peak_sessions <= 20


@pytest.mark.parametrize("provider", [FARGATE, FLY], ids=lambda p: p.name)
def test_each_machine_serves_at_most_one_session(provider: Provider) -> None:
    result = run(provider)
    assert len(result.machines_served) == result.warm + result.cold
    assert result.launches >= len(result.machines_served)


def test_hot_claims_take_the_claim_time_and_cold_starts_longer() -> None:
    result = run(FARGATE)
    hot = [t for t in result.time_to_ready if t == WARM_CLAIM_SECONDS]
    assert len(hot) == result.hot_claims > 0
    assert all(t > 10.0 for t in result.time_to_ready if t != WARM_CLAIM_SECONDS)


def test_a_frozen_claim_takes_a_resume_and_the_claim() -> None:
    # One bot kept running: in bursts the next starts resume frozen ones.
    result = run(FLY, per_minute=30.0, planner=PlannerSettings(min_hot=1, service_level=0.5))
    frozen = sorted(result.frozen_waits)
    assert len(frozen) == result.frozen_claims > 0
    assert frozen[len(frozen) // 2] == pytest.approx(WARM_CLAIM_SECONDS + THAW_REDIAL_SECONDS + 0.4, abs=0.15)
    assert all(t > WARM_CLAIM_SECONDS + THAW_REDIAL_SECONDS for t in frozen)  # the resume, the re-dial, the claim


def test_providers_without_a_frozen_tier_freeze_nothing() -> None:
    result = run(GCE, per_minute=30.0)
    assert result.frozen_claims == 0 and result.machine_seconds["frozen"] == 0.0


def test_no_session_gets_a_bot_of_an_old_image_after_the_deploy() -> None:
    # The day's deploy happens half way through: one hour of simulation crosses it at 30 min.
    for provider in (GCE, FLY):
        result = run(provider, per_minute=30.0)
        assert result.stale_claims == 0
        assert result.retired > 0


def test_the_reserve_never_holds_more_running_bots_than_its_maximum() -> None:
    settings = ReserveSettings(min_idle=2, buffer=0.5, max_idle=7)
    result = run(FARGATE, per_minute=30.0, settings=settings)
    assert 0 < result.peak_hot <= 7


def test_a_reserve_turned_off_makes_every_start_cold_and_nothing_idle() -> None:
    result = run(FLY, settings=ReserveSettings(min_idle=0, max_idle=0))
    assert result.warm == 0 and result.cold == result.arrivals
    assert result.machine_seconds["hot"] == result.machine_seconds["frozen"] == 0.0


def test_machine_time_adds_up_to_its_parts() -> None:
    result = run(GCE)
    assert all(seconds >= 0 for seconds in result.machine_seconds.values())
    assert result.machine_seconds["busy"] > result.machine_seconds["hot"] > 0
    assert 0 < result.idle_share < 1


def test_the_same_seed_replays_the_same_day() -> None:
    first, second = run(FLY, seed=11, day="seasonal"), run(FLY, seed=11, day="seasonal")
    assert first.time_to_ready == second.time_to_ready
    assert first.machine_seconds == second.machine_seconds


def test_another_seed_gives_another_day() -> None:
    assert run(FLY, seed=11).arrivals != run(FLY, seed=12).arrivals


def test_every_provider_replays_the_same_starts() -> None:
    assert len({run(p).arrivals for p in (FARGATE, GCE, FLY)}) == 1


NO_TRAFFIC = 1e-6  # starts/min: not one in an hour


def test_an_idle_reserve_is_paid_for_until_the_end_of_the_day() -> None:
    settings = ReserveSettings(min_idle=3, buffer=0.0, max_idle=3, max_idle_seconds=7200.0)
    result = run(FARGATE, per_minute=NO_TRAFFIC, settings=settings)
    assert result.arrivals == 0 and result.machine_seconds["busy"] == 0.0
    # Three bots idle from their first cold start (< 5 min) to the end of the hour, and their
    # replacements after the deploy at 30 min (at most one more cold start each).
    assert 3 * (HOUR - 600.0) <= result.machine_seconds["hot"] <= 3 * HOUR


def test_the_deploy_half_way_retires_every_idle_bot_of_the_old_image() -> None:
    settings = ReserveSettings(min_idle=3, buffer=0.0, max_idle=3, max_idle_seconds=7200.0)
    result = run(GCE, per_minute=NO_TRAFFIC, settings=settings)
    assert result.retired == 3 and result.launches == 6


def test_todays_per_replica_policy_replays_the_same_day_without_tiers() -> None:
    today, fleet = run(FLY, per_minute=30.0, replica=True), run(FLY, per_minute=30.0)
    assert today.arrivals == fleet.arrivals
    assert today.warm + today.cold + today.refused == today.arrivals
    assert today.frozen_claims == 0 and today.machine_seconds["frozen"] == 0.0
    assert today.quotes_told == 0 and fleet.quotes_told == fleet.cold > 0


def test_a_told_wait_is_kept_about_nine_times_in_ten() -> None:
    result = run(FARGATE, per_minute=30.0, settings=ReserveSettings(min_idle=0, max_idle=0))
    assert result.quotes_told == result.cold > 100
    assert 0.8 <= result.quotes_kept / result.quotes_told <= 0.97


def test_each_fly_app_has_its_own_create_limit_not_a_share_of_their_sum() -> None:
    # Every start cold (no reserve), creates near the starts' rate: a start waits in the app its
    # session hashes to, so N apps refuse more than one bucket of N times the rate would.
    off = ReserveSettings(min_idle=0, max_idle=0)
    per_app = Rate(per_second=0.02, burst=1, max_wait=1.0)
    apps = replace(STARVED, create_rate=per_app, apps=4)
    pooled = replace(STARVED, create_rate=Rate(per_second=0.08, burst=4, max_wait=1.0))
    separate, one_bucket = run(apps, per_minute=4.0, settings=off), run(pooled, per_minute=4.0, settings=off)
    assert separate.arrivals == one_bucket.arrivals
    assert separate.refused > one_bucket.refused > 0


def test_a_cold_start_goes_to_the_app_its_session_hashes_to() -> None:
    simulation = Simulation(replace(FLY, apps=5), SETTINGS, PLANNER, 10.0, seed=3, shape=SHAPES["flat"],
                            seconds=HOUR, history_days=0)
    picks = [simulation.app_of(n) for n in range(500)]
    assert picks == [simulation.app_of(n) for n in range(500)]  # stable, as a retry needs
    assert set(picks) == set(range(5)) and max(picks.count(a) for a in range(5)) < 0.3 * len(picks)


def test_the_aws_forms_beyond_fargate_start_sooner_and_price_the_same_bot() -> None:
    from bench.reserve_sim_providers import prices

    zstd, pool = BY_NAME["ecs-fargate-zstd"], BY_NAME["ecs-ec2-warm-pool"]
    assert zstd.cold_median_seconds == pytest.approx(FARGATE.cold_median_seconds * 0.73)  # "up to 27 %"
    assert pool.cold_median_seconds < zstd.cold_median_seconds and not pool.frozen  # a faster cold start
    stack = {"botCpu": 1024, "botMemory": 2048}
    assert prices(zstd, stack) == prices(pool, stack) == prices(FARGATE, stack)
    cold = [t for t in run(pool).time_to_ready if t > WARM_CLAIM_SECONDS]
    assert cold and max(cold) < 60.0 and sorted(cold)[len(cold) // 2] < FARGATE.cold_median_seconds


def test_modal_is_simulated_with_its_modelled_cold_start_its_create_pacing_and_its_sandbox_price() -> None:
    from bench.reserve_sim_providers import prices
    from dispatcher.machines import modal
    from dispatcher.machines.modal.settings import DEFAULT_CREATE_RATE
    from dispatcher.reserve.prices import modal_monthly

    provider = BY_NAME["modal"]
    assert (provider.cold_median_seconds, provider.cold_sigma) == (modal.COLD_START.median_seconds,
                                                                   modal.COLD_START.sigma)
    assert provider.create_rate == DEFAULT_CREATE_RATE and not provider.frozen
    # the simulator's hourly price is the dispatcher's monthly gauge for the same Sandbox, per hour
    assert prices(provider, {}).running_per_hour * 730 == pytest.approx(modal_monthly(1, 2, None), abs=0.01)


def test_cerebrium_is_simulated_cold_as_the_dispatcher_runs_it_holding_no_reserve_there() -> None:
    """voicefleet holds no idle runs on Cerebrium (docs/providers.md): its rows are the cold path."""
    import argparse

    from bench.reserve_sim import build_runs

    args = argparse.Namespace(stack=None, providers=["cerebrium", "modal"], max_sessions=0, fly_apps=1, levels=[10.0],
                              seed=7, day="seasonal", hours=1.0, history_days=1, planner="fleet")
    cerebrium, modal = build_runs(args, {})
    assert cerebrium.settings.max_idle == 0 and cerebrium.settings.min_idle == 0
    assert modal.settings.max_idle > 0  # Modal's reserve Sandboxes are the dispatcher's own


class Launches(Simulation):
    """The model, noting when it launches a reserve bot."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.reserve_launches: list[float] = []
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def launch(self, now: float, app: int, serves: int | None = None) -> None:
        if serves is None:
            self.reserve_launches.append(now)
        super().launch(now, app, serves)


def one_start(at: float, **kwargs: object) -> Launches:
    """A minute with one start at `at` and a reserve of one bot, every cold start 1 s."""
    no_frozen = replace(FLY, resume_median_seconds=0.0, create_rate=Rate(per_second=10.0, burst=10))
    simulation = Launches(no_frozen, ReserveSettings(min_idle=1, buffer=0.0, max_idle=1), PLANNER, 1.0, seed=3,
                          shape=SHAPES["flat"], seconds=60.0, history_days=0, deploy=False, handover=False,
                          day=Day([at], [30.0], []), cold_starts=GivenColdStarts([1.0] * 5, [1.0] * 5), **kwargs)
    simulation.run()
    return simulation


def test_with_wakes_a_claimed_bot_is_replaced_at_once_as_the_dispatchers_reserve_does() -> None:
    # The dispatcher refills after every start, claim and idle hello, not only on its 1 s tick.
    ticking, woken = one_start(10.3), one_start(10.3, wakes=True)
    assert ticking.result.hot_claims == woken.result.hot_claims == 1
    assert ticking.reserve_launches[:2] == [0.0, 11.0]  # the next tick after the claim
    assert woken.reserve_launches[:2] == [0.0, 10.3]  # at the claim
    # And the next tick comes a tick after the wake: none at 11.0.
    assert 11.0 not in woken.reserve_launches


def test_a_head_start_has_the_planner_launch_before_the_first_start() -> None:
    late, ahead = one_start(0.5), one_start(0.5, head_start=2.0)
    assert late.result.cold == 1 and late.reserve_launches[0] == 0.0  # its bot lands at 1.0: too late
    assert ahead.result.hot_claims == 1 and ahead.reserve_launches[0] == -2.0
    assert ahead.result.time_to_ready == [WARM_CLAIM_SECONDS]


def test_the_cloud_run_row_waits_for_its_network_behind_cloud_nat_and_is_told_the_stacks_prior() -> None:
    """The shipped Cloud Run bots leave through Direct VPC egress and Cloud NAT: each cold start is
    the job's own draw plus the first dial's wait behind Google's documented delay, and the
    dispatcher's reserve is sized with the prior the stack writes."""
    import argparse
    import random

    from bench.reserve_sim import build_runs
    from stacks.config.cloud_run import cold_start_prior

    shipped, direct, minute = BY_NAME["cloudrun"], BY_NAME["cloudrun-no-vpc"], BY_NAME["cloudrun-vpc-60s"]
    assert direct.network_wait_seconds == 0 < shipped.network_wait_seconds < minute.network_wait_seconds
    for seed in range(5):
        assert shipped.cold_start(random.Random(seed)) == pytest.approx(
            direct.cold_start(random.Random(seed)) + shipped.network_wait_seconds)
    args = argparse.Namespace(stack=None, providers=["cloudrun", "cloudrun-no-vpc"], max_sessions=0, fly_apps=1,
                              levels=[10.0], seed=7, day="seasonal", hours=1.0, history_days=1, planner="fleet")
    behind_nat, without = build_runs(args, {})
    assert behind_nat.settings.cold_start_seconds == cold_start_prior(direct_vpc_nat=True)
    assert without.settings.cold_start_seconds == cold_start_prior(direct_vpc_nat=False)
    told = build_runs(args, {"RESERVE_COLD_START_SECONDS": "90"})  # an operator's value still wins
    assert [r.settings.cold_start_seconds for r in told] == [90.0, 90.0]


def test_the_kubernetes_rows_are_the_dispatchers_prior_and_a_node_scale_up_priced_as_the_dispatcher_prices_a_pod(
) -> None:
    from bench.reserve_sim_providers import prices
    from dispatcher.machines import k8s
    from dispatcher.machines.k8s.provider import K8sMachines
    from dispatcher.reserve.prices import bot_price

    pods, scale_up = BY_NAME["k8s"], BY_NAME["k8s-node-scale-up"]
    assert (pods.cold_median_seconds, pods.cold_sigma) == (k8s.COLD_START.median_seconds, k8s.COLD_START.sigma)
    assert scale_up.cold_median_seconds > 5 * pods.cold_median_seconds and pods.reserve and not pods.frozen
    default_pod = K8sMachines.from_env({"K8S_NAMESPACE": "bots", "K8S_API_URL": "http://127.0.0.1:9",
                                        "BOT_IMAGE": "bot:1", "K8S_TOKEN_FILE": "/nonexistent"})
    priced = bot_price(default_pod, {})
    assert priced is not None  # the simulator's hour is the dispatcher's month for the same default pod, per hour
    assert prices(pods, {}).running_per_hour * 730 == pytest.approx(priced.dollars_per_month, abs=0.01)
    result = run(scale_up)
    assert result.warm + result.cold + result.refused + result.refused_cap == result.arrivals > 0
