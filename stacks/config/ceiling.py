"""The concurrency ceiling a stack's provider sets, known before a deploy.

One fresh machine per session makes launches a second the sessions a second, so the provider's
quotas are the ceiling, in two shapes:

- **A launch rate** holds sessions at once to rate × the expected call length (Little's law:
  `expectedCallMinutes`, 4 by default). The rate is the lower of the provider's documented one and
  the dispatcher's own pacing for it (its defaults; the stacks set no other).
- **A cap on what runs** (executions, container groups, vCPUs or cores ÷ the bot's) holds every
  running bot: each session's and each idle or warming reserve bot's (`reserveMaxIdle`, with the
  bot channel; without it there is no reserve). A session is counted as `maxConcurrentSessions` counts
  it, the dispatcher's admission: from its machine's launch, its boot included, so a cap holds
  `maxConcurrentSessions` + `reserveMaxIdle` machines however long each boots. The calls in progress
  are fewer: at a steady rate each call holds 1 + boot ÷ call machines (`held_through_boot`, which a
  peak of calls is planned with, bench/cells_peak_plan.py).

Offline (the plan, `voicefleet config check`) each quota is the provider's documented default, not
the account's, and says so; a value the stack states (`cloudRunExecutionQuota`, `k8sAllocatableCpu`) is
used as stated, and one a preview read from the account (`accountQuotas`: AWS's Fargate vCPUs, Compute
Engine's CPUS) as read.
Pure arithmetic: no Pulumi here (stacks/config/ceiling_notes.py says it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from dispatcher.machines.aci.settings import DEFAULT_CREATE_RATE as ACI_CREATE_RATE
from dispatcher.machines.cloudrun.settings import DEFAULT_RUN_RATE as CLOUD_RUN_RUN_RATE
from dispatcher.machines.cold_start import ColdStart
from dispatcher.machines.ecs.settings import DEFAULT_RUN_TASK_RATE as ECS_RUN_TASK_RATE
from dispatcher.machines.ecs.settings import parse_capacity_providers
from dispatcher.machines.gce.settings import DEFAULT_INSERT_RATE as GCE_INSERT_RATE

CALL_MINUTES_KEY = "expectedCallMinutes"
DEFAULT_CALL_MINUTES = 4

# AWS: "Fargate Resource rate quota for On Demand Amazon ECS tasks": a bucket of 100 refilled at 20 a
# second per account and region (docs.aws.amazon.com/AmazonECS/latest/developerguide/throttling.html).
FARGATE_LAUNCHES_PER_SECOND = 20.0
# "Fargate On-Demand vCPU resource count | Each supported Region: 6 | Yes", and "New AWS accounts might
# have initial lower quotas" (docs.aws.amazon.com/general/latest/gr/ecs-service.html).
FARGATE_VCPU_QUOTA_CODE = "L-3032A538"
FARGATE_VCPU_DEFAULT = 6
# "Fargate Spot vCPU resource count": Spot tasks' own quota, 6 by default too (same page); Spot launches
# have a bucket of their own, of the same size and rate as On-Demand's (throttling.html).
FARGATE_SPOT_VCPU_QUOTA_CODE = "L-36FBB829"
FARGATE_SPOT_VCPU_DEFAULT = 6
FARGATE_CPU_UNITS = 1024  # CPU units a vCPU
# The dispatcher service's deploymentMaximumPercent (stacks/aws/dispatcher.py): a rolling deploy runs up to
# twice its tasks, and they take the same On-Demand vCPU quota as the bots.
DISPATCHER_MAXIMUM_PERCENT = 200
# GCP: Compute Engine's mutation requests, 1,500 a minute per project
# (cloud.google.com/compute/docs/api-rate-limits): a session's VM is an insert and a delete, two of them,
# so the provider holds half that in sessions. A region's CPUS quota has no fixed documented default
# (it varies by project), so it is named with what the stack needs, not counted.
GCE_MUTATIONS_PER_SECOND = 1500 / 60
GCE_MUTATIONS_PER_SESSION = 2
# Shared-core machine types and the vCPUs each counts against the CPUS quota.
GCE_SHARED_CORE_VCPUS = {"e2-micro": 2, "e2-small": 2, "e2-medium": 2, "f1-micro": 1, "g1-small": 1}
GCE_FAMILIES_ON_CPUS = ("e2", "n1", "f1", "g1")  # the others have a quota of their own (N2_CPUS, …)
# Cloud Quotas' id of the CPUS metric's regional quota, as pulumi_gcp's cloudquota.get_s_quota_info documents
# it; the other families' quotas (N2_CPUS, …) are not read, their ids being undocumented there.
GCE_CPU_QUOTA_IDS = {"CPUS": "CPUS-per-project-region"}
# Cloud Run publishes no rate for jobs.run: the dispatcher's pacing is the one counted. Running job
# executions: 1,000 per project and region (cloud.google.com/run/quotas; stacks/config/cloud_run.py).
# Azure Container Instances, per subscription and region: 100 container groups, 100 standard cores, and
# at most 100 creates per 5 minutes and 300 an hour, deletes the same, all "changeable limits" that a
# support request raises (learn.microsoft.com/azure/container-instances/container-instances-resource-and-quota-limits).
ACI_CREATES_PER_5_MINUTES, ACI_CREATES_PER_HOUR = 100, 300
ACI_CREATES_PER_SECOND = ACI_CREATES_PER_HOUR / 3600
ACI_CONTAINER_GROUPS_DEFAULT = 100
ACI_CORES_DEFAULT = 100
ACI_CPU_UNITS = 1024  # botCpu units a core
ACI_CREATES_QUOTA = "Container Instances container group creates"
ACI_LIMITS_PAGE = "learn.microsoft.com/azure/container-instances/container-instances-resource-and-quota-limits"
ACI_SUPPORT_REQUEST = ("a support request in the Azure portal (Help + support, Service and subscription limits "
                       "(quotas), Container Instances)")


ACCOUNT_DEFAULT = "documented default, not your account's"
FIXED = "documented, the same for every account"
STATED = "as the stack states it"
FARGATE_SHARED = ("every Fargate task in the account and region takes from it, other stacks' and services' too, so "
                  "the stack holds fewer where they run")
READ = "your account's, read from Service Quotas by this preview"
READ_CLOUD_QUOTAS = "your project's, read from Cloud Quotas by this preview"


@dataclass(frozen=True)
class Limit:
    """One quota and the sessions it lets the stack hold at once."""

    quota: str  # the provider's name for it
    code: str  # its code or metric (L-3032A538, CPUS), "" where it has none
    figure: float  # the quota's value
    unit: str  # what the figure counts ("vCPUs", "launches a second")
    bots: int  # running bots it allows at once (a rate: sessions, sustained)
    rate: bool  # a launch rate (holds sessions) rather than a cap (holds sessions and reserve bots)
    origin: str  # where the figure comes from (ACCOUNT_DEFAULT, FIXED, STATED)
    per_bot: float  # what one running bot takes of a cap; a rate: launches a second per session at once
    how: str  # how the figure is reached
    show: str  # the command or page that shows the account's value
    raise_it: str  # how to raise it; `{needed}` stands for the figure the stack needs
    taken: float = 0  # what the stack's other tasks (the dispatcher's) hold of a cap

    def sessions(self, reserve: int) -> int:
        """Sessions at once it allows, beside `reserve` reserve bots (a rate holds no reserve bot)."""
        return self.bots if self.rate else max(0, self.bots - reserve)

    def needed(self, sessions: int, reserve: int) -> str:
        """The figure that would hold `sessions` beside `reserve` reserve bots."""
        if self.rate:
            return f"{sessions * self.per_bot:.3g}"
        return f"{math.ceil((sessions + reserve) * self.per_bot + self.taken - 1e-9)}"

    def figure_said(self) -> str:
        value = f"{self.figure:,g}" if self.figure >= 1 else f"{self.figure:.3g}"
        return f"{self.quota}{f' ({self.code})' if self.code else ''} of {value} {self.unit} ({self.origin})"


@dataclass(frozen=True)
class Ceiling:
    provider: str  # "Fargate", "Cloud Run jobs", …
    where: str  # the account's scope: the region, the project and region
    limits: tuple[Limit, ...]
    # quotas with no documented default: what the stack needs of them; and what the ceiling cannot count
    needs: tuple[str, ...] = ()

    def sessions(self, reserve: int) -> int:
        return min(limit.sessions(reserve) for limit in self.limits)

    def binding(self, reserve: int) -> Limit:
        return min(self.limits, key=lambda limit: limit.sessions(reserve))


@dataclass(frozen=True)
class Boot:
    """What a cold start adds to a peak of calls: each call in progress holds `held` machines at once."""

    held: float

    def machines(self, calls: int) -> int:
        """Machines `calls` in progress at once hold, booting ones included."""
        return math.ceil(calls * self.held - 1e-9)


def held_through_boot(cold_start: ColdStart, call_minutes: float) -> Boot:
    """At a steady rate of cold starts, machines at once = starts a second × (boot + call), so each
    call in progress holds 1 + boot ÷ call of them; the boot is the lognormal's mean, which Little's law
    wants, not its median. For planning a peak of calls (bench/cells_peak_plan.py): the ceiling counts
    sessions as maxConcurrentSessions does, from the launch, whose boot is inside them already
    (docs/operations.md, "Your ceiling and how to raise it")."""
    return Boot(1 + cold_start.mean_seconds / (call_minutes * 60))


def sustained(per_second: float, call_minutes: float) -> int:
    """Sessions at once a launch rate holds when each lasts `call_minutes` (Little's law)."""
    return math.floor(per_second * call_minutes * 60 + 1e-9)


def _rate_limit(quota: str, code: str, per_second: float, paced: float, call_minutes: float, *, show: str,
                raise_it: str, origin: str = FIXED, calls: tuple[int, str] = (1, "launches"),
                by: str | None = None) -> Limit:
    """A launch rate: the lower of the provider's (÷ the calls a session makes of it: `calls`, with what
    they are) and the dispatcher's pacing, × the call's length. `by`: where the rate comes from, said
    in place of which of the two is lower."""
    per_session = per_second / calls[0]
    rate = min(per_session, paced)
    by = by or ("the dispatcher's pacing" if paced < per_session else "the provider's rate" if calls[0] == 1
                else f"the provider's {per_second:.3g} {calls[1]} a second ÷ {calls[0]}, a session's")
    return Limit(quota, code, per_second, f"{calls[1]} a second", sustained(rate, call_minutes), rate=True,
                 origin=origin, per_bot=calls[0] / (call_minutes * 60),
                 how=f"{rate:.3g} launches a second ({by}) × {call_minutes:g}-minute calls "
                     f"({CALL_MINUTES_KEY})", show=show, raise_it=raise_it)


@dataclass(frozen=True)
class Dispatchers:
    """The dispatcher service's Fargate On-Demand tasks, which hold vCPUs of the bots' quota."""

    count: int
    cpu_units: int
    maximum_percent: int = DISPATCHER_MAXIMUM_PERCENT  # a rolling deploy runs up to this share of `count`

    @property
    def vcpus(self) -> float:
        return self.count * self.cpu_units / FARGATE_CPU_UNITS * self.maximum_percent / 100

    def said(self) -> str:
        return (f"{self.vcpus:g} vCPUs for the dispatcher ({self.count} × {self.cpu_units} CPU units × "
                f"{self.maximum_percent} % during a deploy)")


def _cap(figure: float, taken: float, per_bot: float) -> int:
    """Bots a cap holds once the stack's other tasks have `taken` of it."""
    return max(0, math.floor((figure - taken) / per_bot + 1e-9))


def spot_share(capacity_providers: str) -> float:
    """The share of bot tasks `ecsCapacityProviders` (name[:weight], the dispatcher's parsing) puts on
    FARGATE_SPOT. ECS refuses a strategy with no weight above 0, so one counts as even shares."""
    strategy = parse_capacity_providers(capacity_providers)
    weights = [item["weight"] for item in strategy] if any(item["weight"] for item in strategy) else [1] * len(strategy)
    spot = sum(w for item, w in zip(strategy, weights, strict=True) if item["capacityProvider"] == "FARGATE_SPOT")
    return spot / sum(weights)


@dataclass(frozen=True)
class FargateQuotas:
    """The account's vCPU quotas as the ceiling counts them: documented defaults unless read or stated."""

    on_demand: float = FARGATE_VCPU_DEFAULT
    spot: float = FARGATE_SPOT_VCPU_DEFAULT
    origin: str = ""  # where `on_demand` comes from; "": ACCOUNT_DEFAULT
    spot_origin: str = ""  # and `spot`: each read on its own, so one refused leaves the other read


def _vcpu_limit(quota: str, code: str, region: str, figure: float, per_bot: float, held: float, how: str,
                origin: str) -> Limit:
    """A Fargate vCPU quota: `figure` less what the dispatcher holds of it, ÷ what a bot takes of it."""
    return Limit(quota, code, figure, "vCPUs", _cap(figure, held, per_bot) if per_bot else 0, rate=False,
                 origin=origin or ACCOUNT_DEFAULT, per_bot=per_bot, taken=held,
                 how=f"{how}; {FARGATE_SHARED}",
                 show=f"aws service-quotas get-service-quota --service-code fargate --quota-code {code} "
                      f"--region {region}",
                 raise_it=f"`aws service-quotas request-service-quota-increase --service-code fargate --quota-code "
                          f"{code} --desired-value {{needed}} --region {region}` or the Service Quotas console "
                          "(AWS Fargate)")


def fargate(region: str, bot_cpu_units: int, call_minutes: float, quotas: FargateQuotas = FargateQuotas(), *,
            dispatchers: Dispatchers, spot: float = 0.0) -> Ceiling:
    """ECS on Fargate: the account's launch buckets; its On-Demand vCPU quota, less the dispatcher's tasks
    (On-Demand always), ÷ the vCPUs of the bots on FARGATE; and its Spot vCPU quota ÷ those of the `spot`
    share of bots on FARGATE_SPOT. Each quota counts every Fargate task in the account and region."""
    vcpus = bot_cpu_units / FARGATE_CPU_UNITS
    held = dispatchers.vcpus
    kind = "On-Demand" if spot == 0 else "Spot" if spot == 1 else "On-Demand and Spot (each)"
    launches = _rate_limit(
        f"Fargate {kind} task launch rate", "", FARGATE_LAUNCHES_PER_SECOND, ECS_RUN_TASK_RATE.per_second,
        call_minutes, show="docs.aws.amazon.com/AmazonECS/latest/developerguide/throttling.html",
        raise_it="fixed per account and region: spread sessions over more regions (docs/regions.md)")
    bot = f"{vcpus:g} vCPU a bot (botCpu={bot_cpu_units})"
    limits = [launches]
    if spot < 1 or quotas.on_demand < held:  # all on Spot, the dispatcher alone can still pass it
        share = "" if spot == 0 else f" × the {1 - spot:.0%} of bots ecsCapacityProviders puts on FARGATE"
        limits.append(_vcpu_limit("Fargate On-Demand vCPU resource count", FARGATE_VCPU_QUOTA_CODE, region,
                                  quotas.on_demand, vcpus * (1 - spot), held,
                                  f"({quotas.on_demand:g} vCPUs - {dispatchers.said()}) ÷ {bot}{share}", quotas.origin))
    if spot > 0:
        limits.append(_vcpu_limit("Fargate Spot vCPU resource count", FARGATE_SPOT_VCPU_QUOTA_CODE, region, quotas.spot,
                                  vcpus * spot, 0, f"{quotas.spot:g} vCPUs ÷ {bot} × the {spot:.0%} of bots "
                                  "ecsCapacityProviders puts on FARGATE_SPOT", quotas.spot_origin))
    return Ceiling("Fargate", region, tuple(limits))


def cell_cap_counted(machines: str, listed: str) -> str:
    """How a cell's cap (`max_executions`, `max_pods`) holds, as the dispatcher counts it: each replica's
    count of the cell is its listing of the cell's `listed` (the project's, the namespace's), every replica's
    `machines` in it, about once a minute (dispatcher/machines/cell_launches.py `list`), so the cap is the
    deployment's, counted once; between listings a replica adds only its own launches."""
    return (f"counted once, not per dispatcher replica: each replica counts the cell's {machines} from its "
            f"listing of the {listed}, every replica's")


def cell_executions(execution_quota: int, caps: Sequence[int | None]) -> list[int]:
    """The running executions each project holds: its quota, or its cell's `max_executions` below it
    (`caps`, one a `cloudRunCells` cell, None where it sets none; none listed: the stack's own project).
    A cell's `max_executions` counts once, whatever the replicas (`cell_cap_counted`)."""
    return [execution_quota if cap is None else min(cap, execution_quota) for cap in caps] or [execution_quota]


def cloud_run(project: str, region: str, call_minutes: float, execution_quota: int, *, origin: str = "",
              caps: Sequence[int | None] = ()) -> Ceiling:
    """Cloud Run jobs: the dispatcher's pace of runs, and the running executions quota, in each project
    (`caps`: each `cloudRunCells` cell's max_executions, its project with its own quota and the
    dispatcher's own pace of runs; none: the stack's own project)."""
    projects = max(len(caps), 1)
    rate = CLOUD_RUN_RUN_RATE.per_second * projects
    launches = _rate_limit(
        "Cloud Run job runs (no published rate; the dispatcher paces them)", "", rate, rate, call_minutes,
        show="cloud.google.com/run/quotas",
        raise_it="the dispatcher's CLOUDRUN_RUN_RATE, within the Cloud Run Admin API's rate quotas")
    held = cell_executions(execution_quota, caps)
    total = sum(held)
    spread = f" × {projects} projects (cloudRunCells)" if projects > 1 else ""
    if capped := sum(1 for cap in caps if cap is not None and cap < execution_quota):
        spread += (f", {capped} of them held to their cell's max_executions, "
                   f"{cell_cap_counted('executions', 'project')}: {total:,} in all")
    executions = Limit(
        "Cloud Run running job executions", "", total, "executions", total, rate=False,
        origin=origin or ACCOUNT_DEFAULT, per_bot=1,
        how=f"{execution_quota:,} executions per project and region{spread}",
        show=f"Google Cloud console, IAM & Admin > Quotas, Cloud Run Admin API, project {project}, {region}"
             + (" and each cell's project" if projects > 1 else ""),
        raise_it=("a quota increase request there, then `pulumi config set cloudRunExecutionQuota {needed}`"
                  if projects == 1 else "a quota increase request in each project ({needed} executions in all), "
                  "then `pulumi config set cloudRunExecutionQuota` to each project's"
                  + (", and the cells' max_executions" if capped else "")) + ", or more projects in cloudRunCells")
    where = f"project {project}, {region}" if projects == 1 else f"{projects} projects (cloudRunCells), {region}"
    return Ceiling("Cloud Run jobs", where, (launches, executions))


def gce_vcpus(machine_type: str) -> int | None:
    """vCPUs a machine type counts against its CPU quota (None: a custom or unknown shape)."""
    if machine_type in GCE_SHARED_CORE_VCPUS:
        return GCE_SHARED_CORE_VCPUS[machine_type]
    found = re.fullmatch(r"[a-z0-9]+-[a-z]+-(\d+)", machine_type)
    return int(found[1]) if found else None


def gce_cpu_metric(machine_type: str) -> str:
    family = machine_type.split("-", 1)[0]
    return "CPUS" if family in GCE_FAMILIES_ON_CPUS else f"{family.upper()}_CPUS"


def gce(project: str, region: str, machine_type: str, call_minutes: float, sessions: int, *, reserve: int = 0,
        paced: float = GCE_INSERT_RATE.per_second, cpu_quota: float | None = None) -> Ceiling:
    """Compute Engine: the project's mutation rate (an insert and a delete a session) and the dispatcher's
    insert pacing (`paced`); the region's CPU quota has no documented default, so it counts only as a
    preview read it (`cpu_quota`), and otherwise what `sessions` and `reserve`
    reserve VMs need of it is said instead."""
    launches = _rate_limit(
        "Compute Engine API mutation requests", "", GCE_MUTATIONS_PER_SECOND, paced, call_minutes,
        show="cloud.google.com/compute/docs/api-rate-limits", calls=(GCE_MUTATIONS_PER_SESSION, "mutations"),
        raise_it="the dispatcher's GCE_INSERT_RATE, within the project's Compute Engine API rate quotas")
    metric = gce_cpu_metric(machine_type)
    vcpus = gce_vcpus(machine_type)
    show = (f"`gcloud compute regions describe {region} --project {project} --flatten=quotas "
            f"--filter=quotas.metric={metric} --format='value(quotas.limit,quotas.usage)'`")
    raise_it = "a quota increase request in the console, IAM & Admin > Quotas (Compute Engine API, {quota}, {region})"
    where = f"project {project}, {region}"
    if cpu_quota is not None and vcpus is not None:
        cpus = Limit(f"Compute Engine {metric} quota", metric, cpu_quota, "vCPUs", _cap(cpu_quota, 0, vcpus),
                     rate=False, origin=READ_CLOUD_QUOTAS, per_bot=vcpus,
                     how=f"{cpu_quota:,g} vCPUs ÷ {vcpus} vCPUs a bot ({machine_type}); every VM in the project and "
                         "region on this quota takes from it, other stacks' too",
                     show=show, raise_it=raise_it.format(quota=GCE_CPU_QUOTA_IDS.get(metric, metric), region=region)
                     + " for {needed} vCPUs")
        return Ceiling("Compute Engine", where, (launches, cpus))
    bots = sessions + reserve
    count = f"{bots:,} VMs ({sessions:,} sessions + {reserve:,} reserve)" if reserve else f"{bots:,} VMs"
    need = (f"{count} × {vcpus} vCPUs ({machine_type}) = {bots * vcpus:,}" if vcpus is not None
            else f"{count}' vCPUs ({machine_type})")
    needs = (f"Compute Engine's {metric} quota in {region} has no documented default (it varies by project): "
             f"it must hold {need}; yours: {show}; raise it in the console, IAM & Admin > Quotas",)
    return Ceiling("Compute Engine", where, (launches,), needs)


def aci_launches(call_minutes: float, create_rate: float | None = None) -> Limit:
    """A subscription's container group creates in a region (a session costs a create and a delete, and the
    dispatcher's budget counts both): ACI's documented budget or the dispatcher's default pace, the lower;
    or, for a cell whose own budget the stack states (`aciCells`' `create_rate`, its creates and deletes a
    second), that budget's half, counted in place of both (the dispatcher paces the cell at it)."""
    raise_it = (f"{ACI_SUPPORT_REQUEST} for the creates and the deletes an hour and per 5 minutes, then the "
                "dispatcher's ACI_CREATE_RATE, which spends one budget on both; or spread sessions over more regions "
                "(docs/regions.md)")
    if create_rate is None:
        return _rate_limit(ACI_CREATES_QUOTA, "", ACI_CREATES_PER_SECOND, ACI_CREATE_RATE.per_second / 2, call_minutes,
                           show=ACI_LIMITS_PAGE, origin=ACCOUNT_DEFAULT, raise_it=raise_it)
    return _rate_limit(ACI_CREATES_QUOTA, "", create_rate / 2, create_rate / 2, call_minutes, show=ACI_LIMITS_PAGE,
                       origin=STATED, raise_it=raise_it,
                       by=f"its create_rate of {create_rate:.3g} creates and deletes a second ÷ 2, a session's")


def aci(location: str, bot_cpu_units: int, call_minutes: float) -> Ceiling:
    """Azure Container Instances: the region's create budget (`aci_launches`), its container groups and its
    standard cores ÷ the bot's."""
    show = ("`az rest --method get --url https://management.azure.com/subscriptions/<subscription>/providers/"
            f"Microsoft.ContainerInstance/locations/{location}/usages?api-version=2023-05-01`")
    raise_it = ACI_SUPPORT_REQUEST
    launches = aci_launches(call_minutes)
    groups = Limit("Container Instances container groups per region", "ContainerGroups", ACI_CONTAINER_GROUPS_DEFAULT,
                   "groups", ACI_CONTAINER_GROUPS_DEFAULT, rate=False, origin=ACCOUNT_DEFAULT, per_bot=1,
                   how=f"{ACI_CONTAINER_GROUPS_DEFAULT} groups, one a bot", show=show, raise_it=raise_it)
    cores = bot_cpu_units / ACI_CPU_UNITS
    core_limit = Limit("Container Instances standard cores per region", "StandardCores", ACI_CORES_DEFAULT, "cores",
                       math.floor(ACI_CORES_DEFAULT / cores), rate=False, origin=ACCOUNT_DEFAULT, per_bot=cores,
                       how=f"{ACI_CORES_DEFAULT} cores ÷ {cores:g} a bot (botCpu={bot_cpu_units})", show=show,
                       raise_it=raise_it)
    return Ceiling("Azure Container Instances", location, (launches, groups, core_limit))


# Kubernetes: the cluster is its owner's, with no provider quota and no published pod launch rate (the upstream
# SLO is a start latency: sig-scalability/slos/pod_startup_latency.md), so the nodes' allocatable CPU ÷ each bot's
# request is the ceiling, known only where the stack states it.
K8S_ALLOCATABLE_KEY = "k8sAllocatableCpu"
K8S_OVERHEAD_KEY = "k8sPodOverheadCpu"  # a runtime class's Pod Overhead, added to each bot's request
K8S_NODES_CPU = "`kubectl get nodes -o custom-columns=NAME:.metadata.name,CPU:.status.allocatable.cpu`"


def kubernetes(namespace: str, bot_millicores: int, sessions: int, allocatable_millicores: int | None = None, *,
               reserve: int = 0, runtime_class: str | None = None, overhead_millicores: int = 0) -> Ceiling:
    """A cluster its owner runs: `allocatable_millicores` (what the nodes can give the bots, stated in
    k8sAllocatableCpu) ÷ each bot pod's CPU, its request and `runtime_class`'s Pod Overhead (which the
    scheduler adds to it); unstated, what `sessions` and `reserve`
    reserve pods need of it is said instead. A runtime class without its overhead stated is said not
    counted."""
    bots = sessions + reserve
    cores = (bot_millicores + overhead_millicores) / 1000
    a_bot = (f"{cores:g} {'core' if cores == 1 else 'cores'} a bot ("
             + (f"k8sBotCpu {bot_millicores / 1000:g} + {K8S_OVERHEAD_KEY} {overhead_millicores / 1000:g}, "
                f"{runtime_class}'s Pod Overhead)" if overhead_millicores else "k8sBotCpu)"))
    where = f"namespace {namespace}"
    unset = () if runtime_class is None or overhead_millicores else (
        f"k8sRuntimeClass {runtime_class}'s Pod Overhead is not counted: where its RuntimeClass sets "
        f"overhead.podFixed, Kubernetes adds it to each bot pod's CPU for scheduling and the namespace's quota, so "
        f"fewer bots fit; yours: `kubectl get runtimeclass {runtime_class} -o jsonpath='{{.overhead.podFixed}}'`, "
        f"then `pulumi config set {K8S_OVERHEAD_KEY} <its cpu>` (and k8sPodOverheadMemory <its memory>)",)
    if allocatable_millicores is None:
        held = f" ({sessions:,} sessions + {reserve:,} reserve)" if reserve else ""
        needs = (f"Kubernetes sets no quota of its own: the nodes' allocatable CPU must hold {bots:,} bots{held} "
                 f"× {a_bot} "
                 f"= {bots * cores:,g} cores beside what else runs there; yours: {K8S_NODES_CPU}; "
                 f"state what the bots may take in {K8S_ALLOCATABLE_KEY} to have it checked",)
        return Ceiling("Kubernetes", where, (), needs + unset)
    figure = allocatable_millicores / 1000
    nodes = Limit("Kubernetes nodes' allocatable CPU for the bots", "", figure, "cores", _cap(figure, 0, cores),
                  rate=False, origin=STATED, per_bot=cores,
                  how=f"{figure:,g} cores ÷ {a_bot}",
                  show=K8S_NODES_CPU,
                  raise_it=f"more or larger nodes (or a higher autoscaler maximum), then `pulumi config set "
                           f"{K8S_ALLOCATABLE_KEY} {{needed}}`")
    return Ceiling("Kubernetes", where, (nodes,), unset)
