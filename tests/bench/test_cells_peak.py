"""The cells-at-peak simulator's quota models refuse what each provider refuses, and its short runs reach
the plan's ceiling (its day's figures are benchmarks, in docs/performance.md, not tested here)."""

from __future__ import annotations

import asyncio

import numpy as np

from bench import cells_peak_quotas as quotas
from bench.cells_peak import figures, main
from bench.cells_peak_model import PeakSimulation
from bench.cells_peak_plan import PLANS


def test_a_21st_run_task_in_a_second_is_throttled_and_the_next_second_takes_20_more() -> None:
    cell = quotas.fargate(vcpu_quota=1000, bot_vcpus=0.5)
    assert all(cell.create(0.0) is None for _ in range(20))
    refusal = cell.create(0.0)
    assert refusal is not None and "RunTask" in refusal.reason
    assert [cell.create(0.5) for _ in range(11)].count(None) == 10
    assert [cell.create(1.5) for _ in range(21)].count(None) == 20


def test_fargate_launches_past_the_bucket_of_100_wait_for_its_refill_of_20_a_second() -> None:
    launches = quotas.Bucket(100, 20.0)
    assert all(launches.take(0.0) for _ in range(100))
    assert not launches.take(0.0)
    assert [launches.take(1.0) for _ in range(21)].count(True) == 20


def test_fargate_refuses_a_task_past_its_vcpu_quota_until_one_ends() -> None:
    cell = quotas.fargate(vcpu_quota=2, bot_vcpus=0.5)
    assert [cell.create(float(n)) for n in range(4)] == [None] * 4
    refusal = cell.create(10.0)
    assert refusal is not None and refusal.reason.startswith("TASK_LIMIT_REACHED")
    cell.ended(11.0)
    assert cell.create(12.0) is None


def test_the_1001st_cloud_run_execution_is_refused_for_at_least_30_seconds() -> None:
    cell = quotas.cloud_run()
    assert all(cell.create(n / 1000) is None for n in range(1000))
    refusal = cell.create(5.0)
    assert refusal is not None and "running job executions" in refusal.reason and refusal.retry_after == 30.0
    cell.ended(6.0)
    assert cell.create(7.0) is None


def test_aci_refuses_the_101st_create_in_5_minutes_and_the_301st_in_an_hour() -> None:
    cell = quotas.aci(bot_cores=0.01, groups=10_000, cores=10_000)
    assert all(cell.create(float(n)) is None for n in range(100))
    refused = cell.create(299.0)
    assert refused is not None and "5 minutes" in refused.reason
    assert all(cell.create(400.0 + n) is None for n in range(100))
    assert all(cell.create(800.0 + n) is None for n in range(100))
    refused = cell.create(1300.0)  # the 5 minutes have room again, the hour none
    assert refused is not None and "an hour" in refused.reason
    assert cell.create(3601.0) is None


def test_aci_refuses_the_101st_container_group() -> None:
    cell = quotas.aci(bot_cores=1.0, cores=10_000)
    cell.windows.clear()  # the groups alone
    assert all(cell.create(float(n)) is None for n in range(100))
    refused = cell.create(200.0)
    assert refused is not None and refused.reason == "ContainerGroupQuotaReached"


def test_compute_engine_counts_a_session_s_delete_with_its_inserts() -> None:
    cell = quotas.gce(cpu_quota=10_000, bot_vcpus=2)
    assert all(cell.create(n / 100) is None for n in range(1499))
    cell.ended(20.0)  # a delete: the 1,500th mutation of the minute
    refused = cell.create(30.0)
    assert refused is not None and "mutations" in refused.reason
    assert cell.create(60.5) is None


def test_a_fly_app_takes_3_creates_at_once_then_about_one_a_second() -> None:
    cell = quotas.fly()
    assert [cell.create(0.0) for _ in range(4)].count(None) == 3
    assert cell.create(0.5) is not None
    assert cell.create(1.0) is None


def test_a_lost_cell_refuses_every_create() -> None:
    cell = quotas.cloud_run()
    cell.lost = True
    assert cell.create(0.0) is not None


def test_too_few_fly_apps_hold_the_plan_s_ceiling_and_refuse_the_rest() -> None:
    plan = PLANS["fly"]()
    sim = PeakSimulation(plan, 2, 8000, seconds=900.0)  # asked: far more than two apps hold, even at night
    found = figures(asyncio.run(sim.run()), regions=1)
    assert found.refused > 0 and "fly_rate_limited" in found.refused_why
    assert abs(found.peak_calls - 2 * plan.sessions) <= 0.10 * 2 * plan.sessions


def test_an_aci_cells_deletes_take_its_create_budget_as_the_dispatchers_do() -> None:
    """A session's delete spends its cell's token (aci/provider.py `_delete`): two cells hold the plan's sessions
    over a long run (their bursts spent), not twice that."""
    plan, seconds = PLANS["aci"](), 3 * 3600.0
    sim = PeakSimulation(plan, 2, 400, seconds=seconds)  # far more than two subscriptions hold
    found = figures(asyncio.run(sim.run()), regions=1)
    assert found.refused > 0 and "aci_rate_limited" in found.refused_why
    tokens = 2 * (plan.rate.burst + plan.rate.per_second * seconds)  # both cells' creates and deletes
    assert found.starts - found.refused <= 0.6 * tokens, (found.starts, found.refused, tokens)


def test_a_cell_lost_sends_its_starts_to_the_others_and_drops_its_calls() -> None:
    sim = PeakSimulation(PLANS["ecs"](), 3, 3000, seconds=900.0, lose_at=400.0)
    out = asyncio.run(sim.run())
    assert out.dropped > 0 and sum(out.refused.values()) == 0
    assert sim.quotas["cell-00"].lost and sim.quotas["cell-00"].running == out.dropped
    late = out.created[out.starts > 400.0]
    assert len(late) > 0 and not np.isnan(late).any()  # every later start was made, in the other cells


def test_more_cells_than_the_dispatcher_takes_is_refused_with_the_way_forward(capsys: object) -> None:
    assert main(["--provider", "cloudrun", "--plan"]) == 2
    said = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "1 to 50" in said and "--cells 50" in said


def test_the_plan_raises_each_cap_to_hold_the_launch_rate_s_sessions_and_their_boots() -> None:
    """A cell's cap is raised to what the plan's warning names: the launch rate's sessions × (1 + the mean
    cold start ÷ the call), by hand: Fargate 4,800 × (1 + 42.53 s ÷ 240 s) = 5,650.5 bots × 0.5 vCPU = 2,825.3;
    Compute Engine 2,400 × (1 + 31.38 s ÷ 240 s) = 2,713.8 VMs × 2 vCPUs (e2-small) = 5,427.6; each rounded up."""
    fargate, gce = PLANS["ecs"](), PLANS["gce"]()
    assert fargate.sessions == 4800 and "vCPU quota raised to 2,826" in fargate.how
    assert gce.sessions == 2400 and "CPUS quota stated at 5,428" in gce.how
    assert [quota for _, quota, _ in fargate.quotas().caps] == [2826]  # the cell the simulator runs has it
