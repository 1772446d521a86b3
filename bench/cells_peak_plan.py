"""What the plan says of one cell for bench/cells_peak.py: its ceiling (stacks/config/ceiling.py, the
arithmetic `python -m stacks.plan` and `voicefleet config check` print), the caps an operator raises to
the figure the plan's warning names, and the cells a region's peak needs.

A cell's ceiling is its binding limit once each cap quota is raised to what that launch rate holds (the
launch rate is fixed per account or project; a cap is a support request away): so the cells a peak
needs are its calls ÷ the rate-set ceiling, rounded up. The rate holds calls (launches a second × the
call), and the machines those calls hold at once count each one's boot too (`held_through_boot`): the
simulator offers calls, with no admission cap counting booting machines as maxConcurrentSessions does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from bench import cells_peak_quotas as quotas
from bench.reserve_sim_providers import BY_NAME, Provider
from dispatcher.machines import ecs
from dispatcher.machines import gce as gce_machines
from dispatcher.machines.aci.settings import DEFAULT_CREATE_RATE as ACI_CREATE_RATE
from dispatcher.machines.cloudrun.settings import DEFAULT_RUN_RATE as CLOUD_RUN_RUN_RATE
from dispatcher.machines.ecs.settings import DEFAULT_RUN_TASK_RATE
from dispatcher.machines.fly.provider import DEFAULT_CREATE_RATE as FLY_CREATE_RATE
from dispatcher.machines.gce.settings import DEFAULT_INSERT_RATE
from dispatcher.outbound.ratelimit import Rate
from stacks.config import ceiling

CALL_MINUTES = ceiling.DEFAULT_CALL_MINUTES
FARGATE_BOT_CPU_UNITS = 512  # botCpu, as the simulators price a bot (0.5 vCPU)
GCE_MACHINE_TYPE = "e2-small"  # 2 vCPUs against CPUS (a shared-core type)
ACI_BOT_CPU_UNITS = 1024  # one core a bot
FLY_DOCUMENTED_PER_SECOND = 1.0  # about 1 create a second per app (docs/operations.md)


@dataclass(frozen=True)
class PlannedCell:
    provider: Provider  # cold start figures (bench/reserve_sim_providers.py)
    rate: Rate  # the dispatcher's create limit per cell (its default)
    spread: bool  # False: a start never leaves its home cell (Fly)
    sessions: int  # the plan's ceiling for one cell
    how: str  # what sets it, as the plan says
    quotas: Callable[[], quotas.CellQuotas]  # a fresh cell's provider quotas
    deletes_spend: bool = False  # a session's delete takes a token of its cell's create limit (ACI counts both)

    def cells_for(self, peak_sessions: float) -> int:
        return max(1, math.ceil(peak_sessions / self.sessions - 1e-9))


def _said(found: ceiling.Ceiling) -> tuple[int, str]:
    binding = found.binding(0)
    return found.sessions(0), f"{binding.quota}: {binding.how}"


def fargate() -> PlannedCell:
    vcpus = FARGATE_BOT_CPU_UNITS / ceiling.FARGATE_CPU_UNITS
    none = ceiling.Dispatchers(0, 0)  # a cell's account runs bots only: the dispatcher is elsewhere
    launches, vcpu_quota = ceiling.fargate("<region>", FARGATE_BOT_CPU_UNITS, CALL_MINUTES, dispatchers=none).limits
    machines = ceiling.held_through_boot(ecs.COLD_START, CALL_MINUTES).machines(launches.sessions(0))
    quota = int(vcpu_quota.needed(machines, 0))  # the figure the plan's warning asks for those machines
    sessions, how = _said(ceiling.fargate("<region>", FARGATE_BOT_CPU_UNITS, CALL_MINUTES,
                                          ceiling.FargateQuotas(on_demand=quota), dispatchers=none))
    return PlannedCell(BY_NAME["ecs-fargate"], DEFAULT_RUN_TASK_RATE, True, sessions,
                       f"{how}; vCPU quota raised to {quota:,}", lambda: quotas.fargate(quota, vcpus))


def cloud_run() -> PlannedCell:
    sessions, how = _said(ceiling.cloud_run("<project>", "<region>", CALL_MINUTES, 1000))
    return PlannedCell(BY_NAME["cloudrun"], CLOUD_RUN_RUN_RATE, True, sessions, how, quotas.cloud_run)


def gce() -> PlannedCell:
    vcpus = ceiling.gce_vcpus(GCE_MACHINE_TYPE) or 2
    launches, cpus = ceiling.gce("<project>", "<region>", GCE_MACHINE_TYPE, CALL_MINUTES, 0, cpu_quota=0).limits
    machines = ceiling.held_through_boot(gce_machines.COLD_START, CALL_MINUTES).machines(launches.sessions(0))
    quota = int(cpus.needed(machines, 0))  # the figure the plan's warning asks for those machines
    sessions, how = _said(ceiling.gce("<project>", "<region>", GCE_MACHINE_TYPE, CALL_MINUTES, 0, cpu_quota=quota))
    return PlannedCell(BY_NAME["gce"], DEFAULT_INSERT_RATE, True, sessions, f"{how}; CPUS quota stated at {quota:,}",
                       lambda: quotas.gce(quota, vcpus))


def aci() -> PlannedCell:
    sessions, how = _said(ceiling.aci("<location>", ACI_BOT_CPU_UNITS, CALL_MINUTES))
    cores = ACI_BOT_CPU_UNITS / ceiling.ACI_CPU_UNITS
    return PlannedCell(BY_NAME["aci"], ACI_CREATE_RATE, True, sessions, how, lambda: quotas.aci(cores),
                       deletes_spend=True)


def fly() -> PlannedCell:
    per_second = min(FLY_DOCUMENTED_PER_SECOND, FLY_CREATE_RATE.per_second)
    sessions = ceiling.sustained(per_second, CALL_MINUTES)
    return PlannedCell(BY_NAME["fly"], FLY_CREATE_RATE, False, sessions,
                       f"Fly creates per app: {per_second:g} a second × {CALL_MINUTES}-minute calls", quotas.fly)


PLANS: dict[str, Callable[[], PlannedCell]] = {"ecs": fargate, "cloudrun": cloud_run, "gce": gce, "aci": aci,
                                               "fly": fly}
