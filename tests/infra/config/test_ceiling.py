"""The concurrency ceiling's arithmetic per provider (stacks/config/ceiling.py): launches a second ×
the expected call length, and each cap ÷ what a bot takes of it, less the reserve's bots. A session is
counted as maxConcurrentSessions counts it (the dispatcher's admission): from its machine's launch, its
boot included, so a cap holds maxConcurrentSessions + the reserve's bots however long each boots.

A peak of calls is planned with `held_through_boot` instead (each call in progress holds 1 + the mean
cold start ÷ the call of machines): Fargate's mean cold start by hand, 40 · exp(0.35²/2) = 42.53 s."""

from __future__ import annotations

import pytest

from dispatcher.machines.cold_start import ColdStart
from stacks.config import ceiling
from stacks.config.ceiling_notes import said

ONE_DISPATCHER = ceiling.Dispatchers(1, 256)  # aws-dev's: 0.25 vCPU, 0.5 during a deploy


def test_fargate_holds_its_vcpu_quota_over_the_bots_vcpu_and_launches_twenty_a_second() -> None:
    found = ceiling.fargate("us-east-1", 512, 4, dispatchers=ONE_DISPATCHER)
    launches, vcpus = found.limits
    assert launches.bots == 20 * 4 * 60 == 4800 and launches.rate
    assert (vcpus.code, vcpus.figure, vcpus.bots) == ("L-3032A538", 6, 11)  # (6 - 0.5 vCPUs) ÷ 0.5 vCPU
    assert found.sessions(reserve=0) == 11 and found.sessions(reserve=10) == 1
    assert "boot" not in vcpus.how  # a session's machine counts once, booting or in its call
    assert found.binding(reserve=0) is vcpus
    raised = ceiling.fargate("us-east-1", 1024, 4, ceiling.FargateQuotas(10_000, origin=ceiling.READ),
                             dispatchers=ceiling.Dispatchers(3, 512))
    assert raised.sessions(reserve=400) == 4800  # the launch rate binds once the quota is raised
    assert raised.binding(reserve=400).rate


def test_the_dispatchers_own_fargate_tasks_and_their_deploy_surge_come_off_the_bots_vcpus() -> None:
    """aws-prod: 3 dispatchers of 512 CPU units run 6 during a rolling deploy (deploymentMaximumPercent 200)."""
    found = ceiling.fargate("us-east-1", 1024, 4, ceiling.FargateQuotas(4000), dispatchers=ceiling.Dispatchers(3, 512))
    vcpus = found.limits[1]
    assert ceiling.Dispatchers(3, 512).vcpus == 3 and vcpus.bots == 3997
    assert vcpus.sessions(reserve=400) == 3597 and vcpus.needed(3597, 400) == "4000"
    assert vcpus.needed(3600, 400) == "4003"  # the bots' 4,000 and the dispatchers' 3
    assert "(4000 vCPUs - 3 vCPUs for the dispatcher (3 × 512 CPU units × 200 % during a deploy))" in vcpus.how
    assert "every Fargate task in the account and region takes from it" in vcpus.how
    too_small = ceiling.fargate("us-east-1", 1024, 4, ceiling.FargateQuotas(2), dispatchers=ceiling.Dispatchers(3, 512))
    assert too_small.sessions(reserve=0) == 0  # the dispatchers alone pass it


def test_a_longer_call_holds_more_sessions_at_the_same_launch_rate() -> None:
    longer = ceiling.fargate("eu-west-1", 256, 10, ceiling.FargateQuotas(1e6), dispatchers=ONE_DISPATCHER)
    assert longer.sessions(reserve=0) == 20 * 600
    assert ceiling.sustained(1 / 36, 4) == 6  # 6.67 sessions: a whole session only


def test_cloud_run_is_its_run_pace_and_its_running_executions() -> None:
    found = ceiling.cloud_run("p", "europe-west1", 4, 1000)
    runs, executions = found.limits
    assert runs.bots == 240  # the dispatcher's 1 run a second × 240 s
    assert executions.bots == 1000 and executions.sessions(reserve=400) == 600
    assert found.sessions(reserve=0) == 240


def test_gce_paces_inserts_below_the_projects_mutation_rate_and_names_the_cpu_quota_it_needs() -> None:
    found = ceiling.gce("p", "us-central1", "e2-standard-2", 4, 110)
    (inserts,) = found.limits
    assert inserts.figure == 25 and inserts.bots == 10 * 240  # 1,500/min documented, 10/s paced
    assert inserts.unit == "mutations a second"
    faster = ceiling.gce("p", "us-central1", "e2-standard-2", 4, 110, paced=20).limits[0]
    assert faster.bots == 3000  # 25 mutations a second, an insert and a delete a session: 12.5 sessions a second
    assert "(the provider's 25 mutations a second ÷ 2, a session's)" in faster.how
    assert faster.needed(3000, 0) == "25"  # in the quota's own unit
    (need,) = found.needs
    assert "CPUS quota in us-central1" in need
    assert "110 VMs × 2 vCPUs (e2-standard-2) = 220" in need
    (_, need) = ceiling.gce("p", "us-central1", "e2-standard-2", 4, 110, reserve=5).needs[0].split("must hold ")
    assert need.startswith("115 VMs (110 sessions + 5 reserve) × 2 vCPUs")
    read = ceiling.gce("p", "us-central1", "e2-standard-2", 4, 110, cpu_quota=1000).limits[1]
    assert read.bots == 500 and read.sessions(reserve=0) == 500  # 1,000 ÷ 2 vCPUs
    assert ceiling.gce_cpu_metric("n2-standard-4") == "N2_CPUS" and ceiling.gce_vcpus("n2-standard-4") == 4
    assert ceiling.gce_vcpus("e2-small") == 2 and ceiling.gce_vcpus("custom-6-8192") is None


def test_aci_counts_a_create_and_a_delete_a_session_and_its_groups_and_cores() -> None:
    found = ceiling.aci("westeurope", 2048, 4)
    creates, groups, cores = found.limits
    assert creates.bots == 6  # the dispatcher's 1 per 18 s, shared by creates and deletes: 1 session per 36 s
    assert groups.bots == 100 and cores.bots == 50  # 100 cores ÷ 2 a bot
    assert groups.sessions(reserve=10) == 90 and cores.sessions(reserve=10) == 40
    assert found.sessions(reserve=0) == 6
    # Microsoft lists the create and delete limits as changeable, by the same support request as the groups
    assert creates.origin == ceiling.ACCOUNT_DEFAULT and "fixed" not in creates.raise_it
    assert creates.raise_it.startswith("a support request in the Azure portal")


# 11 bots fit (6 - 0.5 vCPUs) ÷ 0.5. The vCPUs asked: (sessions + reserve) × 0.5 + the dispatcher's 0.5 in a
# deploy, rounded up: 12 sessions 6.5 → 7; 3 sessions and 10 reserve 7.
@pytest.mark.parametrize(("sessions", "reserve", "needed"), [(11, 0, None), (12, 0, 7), (3, 10, 7)])
def test_a_warning_names_the_quota_its_code_the_figure_and_how_to_raise_it(sessions: int, reserve: int,
                                                                          needed: int | None) -> None:
    note, warnings = said(ceiling.fargate("us-east-1", 512, 4, dispatchers=ONE_DISPATCHER), sessions, reserve)
    assert note.startswith("concurrency ceiling (Fargate, us-east-1): ")
    assert "documented default, not your account's" in note
    if needed is None:
        assert warnings == []
        return
    (warning,) = warnings
    assert "Fargate On-Demand vCPU resource count (L-3032A538) of 6 vCPUs" in warning
    assert f"--quota-code L-3032A538 --desired-value {needed} --region us-east-1" in warning
    assert "aws service-quotas get-service-quota --service-code fargate" in warning


@pytest.mark.parametrize(("providers", "share"), [
    ("FARGATE", 0), ("FARGATE_SPOT", 1), ("FARGATE_SPOT:1,FARGATE:1", 0.5), ("FARGATE_SPOT:3,FARGATE:1", 0.75),
    ("FARGATE:2,FARGATE_SPOT", 1 / 3), ("FARGATE_SPOT:0,FARGATE:0", 0.5)])
def test_the_spot_share_is_ecs_capacity_providers_weights(providers: str, share: float) -> None:
    assert ceiling.spot_share(providers) == pytest.approx(share)


def test_bots_on_fargate_spot_count_against_the_spot_vcpu_quota_by_their_share() -> None:
    split = ceiling.fargate("us-east-1", 512, 4, spot=0.5, dispatchers=ONE_DISPATCHER)
    launches, on_demand, spot = split.limits
    assert (on_demand.code, on_demand.bots) == ("L-3032A538", 22)  # (6 - 0.5) ÷ (0.5 × half the bots)
    assert (spot.quota, spot.code, spot.figure, spot.bots) == ("Fargate Spot vCPU resource count", "L-36FBB829", 6, 24)
    assert spot.taken == 0 and "the 50% of bots ecsCapacityProviders puts on FARGATE_SPOT" in spot.how
    assert launches.quota == "Fargate On-Demand and Spot (each) task launch rate"
    all_spot = ceiling.fargate("us-east-1", 512, 4, spot=1, dispatchers=ONE_DISPATCHER)
    assert [limit.code for limit in all_spot.limits] == ["", "L-36FBB829"]  # the dispatcher fits On-Demand's 6
    assert all_spot.sessions(reserve=0) == 12
    _, (warning,) = said(all_spot, 13, 0)
    assert "--quota-code L-36FBB829 --desired-value 7 --region us-east-1" in warning  # 13 × 0.5 = 6.5
    starved = ceiling.fargate("us-east-1", 512, 4, ceiling.FargateQuotas(on_demand=0.25), spot=1,
                              dispatchers=ONE_DISPATCHER)
    assert starved.sessions(reserve=0) == 0  # no dispatcher, no session, whatever Spot holds


def test_kubernetes_counts_only_a_stated_allocatable_cpu_and_otherwise_says_what_the_bots_need() -> None:
    unstated = ceiling.kubernetes("voicefleet-bots", 1000, 5, reserve=2)
    assert unstated.limits == ()
    note, warnings = said(unstated, sessions=5, reserve=2)
    assert note.startswith("concurrency ceiling (Kubernetes, namespace voicefleet-bots): not counted. ")
    assert ("must hold 7 bots (5 sessions + 2 reserve) × 1 core a bot "
            "(k8sBotCpu) = 7 cores") in note and "k8sAllocatableCpu" in note
    assert "kubectl get nodes" in note and warnings == []
    stated = ceiling.kubernetes("voicefleet-bots", 500, 7, allocatable_millicores=4000, reserve=2)
    (nodes,) = stated.limits
    assert (nodes.bots, nodes.origin, nodes.rate) == (8, ceiling.STATED, False)  # 4 cores ÷ 0.5
    assert stated.sessions(reserve=2) == 6
    note, (warning,) = said(stated, sessions=7, reserve=2)
    assert "6 sessions at once, set by the Kubernetes nodes' allocatable CPU for the bots" in note
    assert warning.startswith("maxConcurrentSessions=7 + reserveMaxIdle=2 = 9 bots is above the Kubernetes nodes' "
                              "allocatable CPU for the bots of 4 cores (as the stack states it)")
    assert "the stack needs 5 cores" in warning and "`pulumi config set k8sAllocatableCpu 5`" in warning


def test_kubernetes_counts_a_runtime_class_pod_overhead_per_bot_and_says_when_it_is_not_stated() -> None:
    """Kubernetes adds a RuntimeClass's overhead.podFixed to each pod's requests for scheduling (Kata's 250m)."""
    kata = ceiling.kubernetes("voicefleet-bots", 1000, 5, allocatable_millicores=7000, reserve=2,
                              runtime_class="kata-qemu", overhead_millicores=250)
    (nodes,) = kata.limits
    assert (nodes.bots, nodes.per_bot) == (5, 1.25) and kata.sessions(reserve=2) == 3  # 7 ÷ 1.25, less 2 reserve
    note, (warning,) = said(kata, sessions=5, reserve=2)
    assert "1.25 cores a bot (k8sBotCpu 1 + k8sPodOverheadCpu 0.25, kata-qemu's Pod Overhead)" in note
    assert "not counted" not in note and "the stack needs 9 cores" in warning  # 7 bots × 1.25, rounded up
    unstated = ceiling.kubernetes("voicefleet-bots", 1000, 5, allocatable_millicores=7000, reserve=2,
                                  runtime_class="kata-qemu")
    assert unstated.sessions(reserve=2) == 5
    note, _ = said(unstated, sessions=5, reserve=2)
    assert "k8sRuntimeClass kata-qemu's Pod Overhead is not counted" in note
    assert "kubectl get runtimeclass kata-qemu -o jsonpath='{.overhead.podFixed}'" in note
    assert "pulumi config set k8sPodOverheadCpu" in note
    note, _ = said(ceiling.kubernetes("voicefleet-bots", 1000, 5, reserve=2, runtime_class="gvisor",
                                      overhead_millicores=100), sessions=5, reserve=2)
    assert ("must hold 7 bots (5 sessions + 2 reserve) × 1.1 cores a bot "
            "(k8sBotCpu 1 + k8sPodOverheadCpu 0.1, gvisor's Pod Overhead) = 7.7 cores") in note
    assert "not counted" not in note.split("not counted. ", 1)[1]
    plain = ceiling.kubernetes("voicefleet-bots", 1000, 5, reserve=2)
    assert "Pod Overhead" not in said(plain, 5, 2)[0]


def test_a_cold_starts_mean_is_its_lognormals_not_its_median() -> None:
    """Little's law counts machines at once by the mean time each is held: a lognormal's is median·exp(σ²/2);
    a peak of calls holds that many more machines (bench/cells_peak_plan.py)."""
    assert ColdStart(40.0, 0.35).mean_seconds == pytest.approx(42.527, abs=1e-3)  # 40 × e^0.06125
    assert ColdStart(10.0, 0.0).mean_seconds == 10.0
    boot = ceiling.held_through_boot(ColdStart(60.0, 0.0), 4)
    assert boot.held == 1.25 and boot.machines(100) == 125 and boot.machines(3) == 4  # 3.75 machines: 4
