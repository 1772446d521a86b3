"""The simulated providers: cold starts, the frozen tier where there is one, create limits, prices.

Cold start (launch call → bot ready; each provider's `COLD_START` in dispatcher/machines/):
lognormal, because a start is a product of factors
(placement, image pull at the host's bandwidth, boot) and reported starts are skewed right.
- Fargate median 40 s, σ 0.35 (p95 ≈ 71 s: AWS re:Post "30–45 s normal", 60–90 s reports);
- Compute Engine median 30 s, σ 0.3 (p95 ≈ 49 s: ~10 s to RUNNING + image pull + boot);
- Fly median 3 s, σ 0.6 (p95 ≈ 8 s: "1–10 s", low double digits with an image fetch);
  docs/reference/field_2026.md has the sources.
- Cerebrium median 8 s, σ 0.4 (p95 ≈ 15 s): "new instances start within 3 seconds" once scaling
  triggers (docs.cerebrium.ai, scaling-apps) plus the bot's init and hello, modelled, not
  measured. voicefleet holds no reserve there (the app's `min_replicas` is Cerebrium's own): its
  rows run with the reserve off (every start cold); its price is one warm replica's.
- Cloud Run jobs median 20 s, σ 0.5 (p95 ≈ 45 s): **no authoritative number exists** (machines_apis.md
  §3.4: Google gives "a few 100ms" of infrastructure for services only); modelled conservatively as
  a container platform that schedules a task and pulls the image, between Fly and Fargate. On top
  of it, the network's wait (`network_wait_seconds`): the stack's bot job leaves by Direct VPC egress
  through a Cloud NAT, for which Google documents "cold-start delays of 30 seconds or more" (and
  "connection establishment delays of a minute or more" for Direct VPC egress at all,
  cloud.google.com/run/docs/configuring/vpc-direct-vpc, Limitations). The bot's first dial gets
  through at its first try after that (stacks/config/cloud_run.py `first_dial_seconds`, on the
  bot's own retry schedule, each early try dropped for its 10 s deadline): 33.5 s behind 30 s,
  65.5 s behind a minute. Rows: `cloudrun` (the stack as shipped, 30 s), `cloudrun-vpc-60s` (a
  minute), `cloudrun-no-vpc` (Google's own egress, no wait, and no egress firewall on the bots:
  docs/providers.md weighs the two). The dispatcher's prior for the shipped row is the stack's
  (`RESERVE_COLD_START_SECONDS`, the job's median plus the wait).
- Kubernetes (`pods` mode) median 8 s, σ 0.5 (p95 ≈ 18 s): the dispatcher's model
  (dispatcher/machines/k8s/__init__.py) of a pod placed on a node with room: create → Ready is
  0.8–0.9 s on a warm EKS node (3.2–3.7 s with a Nitro sandbox RuntimeClass), the bot's imports
  1.3–2.9 s (docs/performance.md), an uncached image pull the tail. `k8s-node-scale-up`: no node
  has room and the cluster autoscaler adds one: p50 41–50 s and p90 74–88 s for a 75-pod burst
  on GKE, modelled as median 45 s, σ 0.45 (p90 ≈ 80 s). Both from
  shared/reference/field_2026-11-24.md §1.1 (the agent-sandbox load tests and the AWS sample page).
  A warm claim is one JSON Patch (docs/kubernetes.md): the model's 0.3 s claim covers it (the
  fake's patches measured 230–370 ms p50 under 60 at once, bench/k8s_claims.py). The dispatcher
  keeps no create limit of its own there (the API server's priority and fairness answers 429):
  this one only keeps the arithmetic finite.
Frozen tier: only Fly's is modelled. A suspended Machine resumes in "a few hundred ms" (Fly's
suspend/resume page): lognormal median 0.4 s, σ 0.5 (p95 ≈ 0.9 s), an assumption inside that
phrase; suspending takes 5 s here (not published: the memory is written out, ≤ 2 GB). Compute
Engine can suspend too, but Google publishes no resume time and warns that resuming can be
slower than creating a VM (docs/reserve.md, "What each provider offers"), so the simulator gives it
no frozen tier.
Create limits are the dispatcher's own mirrors of each provider's (dispatcher/machines/*): the
code that launches is limited by them whatever the provider would allow. Fly's is per app
(1 create/s, burst 3): with several apps (`apps`, the dispatcher's FLY_APPS) each app keeps its own
bucket, a cold start waits in the one app its session hashes to (dispatcher/machines/fly/creates.py
`app_of`) and is refused when that app's wait is too long, however many tokens the other apps hold;
refills take from the app with the most spare tokens. N apps are not one bucket of N/s: a burst's
cold starts land on the apps unevenly.

Prices (what a month of a bot costs; 730 h): see `prices`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace

from botchannel.contract import DIAL_TIMEOUT_SECONDS
from dispatcher.machines import aci, cerebrium, cloudrun, ecs, fly, gce, k8s, modal
from dispatcher.machines.aci.settings import DEFAULT_CREATE_RATE as ACI_CREATE_RATE
from dispatcher.machines.cloudrun.provider import DEFAULT_RUN_RATE as CLOUDRUN_RUN_RATE
from dispatcher.machines.ecs.provider import DEFAULT_RUN_TASK_RATE
from dispatcher.machines.fly.provider import DEFAULT_CREATE_RATE
from dispatcher.machines.gce.provider import DEFAULT_INSERT_RATE
from dispatcher.machines.modal.settings import DEFAULT_CREATE_RATE as MODAL_CREATE_RATE
from dispatcher.outbound.ratelimit import Rate
from dispatcher.reserve.prices import ACI, CEREBRIUM, E2, MODAL_GIB_SECOND, MODAL_SANDBOX_CORE_SECOND
from stacks.config.cloud_run import DIRECT_VPC_NAT_DELAY_SECONDS, first_dial_seconds
from voicefleet_settings.names import by_name

HOURS_PER_MONTH = 730.0


@dataclass(frozen=True)
class Provider:
    name: str
    machines: str  # the dispatcher's MACHINES value
    cold_median_seconds: float
    cold_sigma: float
    create_rate: Rate
    rate_prefix: str  # the dispatcher's variables that override `create_rate` (<prefix>_RATE, _BURST)
    resume_median_seconds: float = 0.0  # 0: no frozen tier
    resume_sigma: float = 0.5
    suspend_seconds: float = 0.0
    # Apps whose create limits are separate (Fly's FLY_APPS): each has `create_rate` of its own, and
    # a session's cold machine goes to the app its session id hashes to (creates.py `app_of`).
    apps: int = 1
    reserve: bool = True  # False: the dispatcher holds no reserve on it (every start cold)
    network_wait_seconds: float = 0.0  # after the machine starts, before its bot's first dial gets through

    def rate_from(self, env: Mapping[str, str]) -> Rate:
        """The create rate the dispatcher would use with `env`: its `<prefix>_RATE`/`_BURST`/`_MAX_WAIT`
        settings (their catalogue defaults unset), or this provider's own where the dispatcher has none
        (Kubernetes, Cerebrium: no create limit of theirs is a setting)."""
        if f"{self.rate_prefix}_RATE" not in by_name():
            return self.create_rate
        return Rate.from_env(env, self.rate_prefix)

    @property
    def prior_seconds(self) -> float:
        """The cold start the dispatcher is told before it measures one (the stack's prior)."""
        return self.cold_median_seconds + self.network_wait_seconds

    @property
    def frozen(self) -> bool:
        return self.resume_median_seconds > 0

    def cold_start(self, draw: random.Random) -> float:
        return self.cold_median_seconds * math.exp(draw.gauss(0.0, self.cold_sigma)) + self.network_wait_seconds

    def resume(self, draw: random.Random) -> float:
        return self.resume_median_seconds * math.exp(draw.gauss(0.0, self.resume_sigma))


def behind_nat(delay_seconds: float) -> float:
    """When a new Cloud Run bot's first dial gets through if nothing leaves its task for `delay_seconds`
    (each try before then dropped: it waits out its deadline)."""
    wait = first_dial_seconds(delay_seconds, failed_dial_seconds=DIAL_TIMEOUT_SECONDS)
    if wait is None:
        raise ValueError(f"a network silent for {delay_seconds:g} s outlasts the bot's first-dial tries")
    return wait


# Each provider's cold start is the dispatcher's own figure (dispatcher/machines/<provider> `COLD_START`).
PROVIDERS = (
    Provider("ecs-fargate", "ecs", ecs.COLD_START.median_seconds, ecs.COLD_START.sigma, DEFAULT_RUN_TASK_RATE,
             "ECS_RUN_TASK"),
    Provider("gce", "gce", gce.COLD_START.median_seconds, gce.COLD_START.sigma, DEFAULT_INSERT_RATE, "GCE_INSERT"),
    Provider("fly", "fly", fly.COLD_START.median_seconds, fly.COLD_START.sigma, DEFAULT_CREATE_RATE, "FLY_CREATE",
             0.4, 0.5, 5.0),
    Provider("cloudrun", "cloudrun", cloudrun.COLD_START.median_seconds, cloudrun.COLD_START.sigma,
             CLOUDRUN_RUN_RATE, "CLOUDRUN_RUN", network_wait_seconds=behind_nat(DIRECT_VPC_NAT_DELAY_SECONDS)),
    # Modal: "~1 s" container start (modal.com/docs/guide/cold-start) + the bot's imports: modelled,
    # not measured (dispatcher/machines/modal/__init__.py).
    Provider("modal", "modal", modal.COLD_START.median_seconds, modal.COLD_START.sigma, MODAL_CREATE_RATE,
             "MODAL_CREATE"),
    # No published create-to-running figure: modelled conservatively (dispatcher/machines/aci). ACI's
    # budget counts deletes with creates; the simulator charges creates only, so it flatters ACI.
    Provider("aci", "aci", aci.COLD_START.median_seconds, aci.COLD_START.sigma, ACI_CREATE_RATE, "ACI_CREATE"),
    Provider("k8s", "k8s", k8s.COLD_START.median_seconds, k8s.COLD_START.sigma, Rate(per_second=100, burst=100),
             "K8S_CREATE"),
)
_CLOUD_RUN = next(p for p in PROVIDERS if p.machines == "cloudrun")
# AWS forms the dispatcher does not run, modelled to decide whether to build them (`--providers`;
# docs/reserve.md, "What AWS offers beyond Fargate"):
# - Fargate with zstd layers: "up to 27 %" shorter task start in AWS's own tests (AWS containers
#   blog, "Reducing AWS Fargate Startup Times with zstd Compressed Container Images", 2022): the
#   median taken 27 % down, 40 s → 29.2 s, the best case the post reports;
# - ECS on EC2 with an Auto Scaling warm pool of stopped or hibernated instances, one bot task per
#   instance: a start is the instance leaving the pool (a stopped, already-hydrated instance in
#   ~5 s at best: depot.dev, "Making EC2 boot time 8x faster", 2024; AWS's launch post says
#   instances serve "in as low as 30 seconds"), the ECS agent registering, the task placed with its
#   ENI, the container from the image the pool pre-pulled, and the bot's imports (1.3–2.9 s measured,
#   docs/performance.md). No end-to-end figure is published: median 12 s, σ 0.4 (p95 ≈ 23 s) is an
#   estimate from those parts. A hibernated instance keeps the OS's memory, not a running bot task
#   (ECS stops a stopped instance's tasks, and ECS_WARM_POOLS_CHECK keeps a pooled instance from
#   registering until it leaves the pool), so both pool states model the same.
VARIANTS = (
    replace(_CLOUD_RUN, name="cloudrun-vpc-60s", network_wait_seconds=behind_nat(60.0)),
    replace(_CLOUD_RUN, name="cloudrun-no-vpc", network_wait_seconds=0.0),
    Provider("ecs-fargate-zstd", "ecs", 40.0 * (1 - 0.27), 0.35, DEFAULT_RUN_TASK_RATE, "ECS_RUN_TASK"),
    Provider("ecs-ec2-warm-pool", "ecs", 12.0, 0.40, DEFAULT_RUN_TASK_RATE, "ECS_RUN_TASK"),
    Provider("k8s-node-scale-up", "k8s", 45.0, 0.45, Rate(per_second=100, burst=100), "K8S_CREATE"),
)
# Cerebrium: no create limit is published and the dispatcher keeps none of its own; this one only
# keeps the simulator's arithmetic finite.
CEREBRIUM_ROW = Provider("cerebrium", "cerebrium", cerebrium.COLD_START.median_seconds, cerebrium.COLD_START.sigma,
                         Rate(per_second=100, burst=100), "CEREBRIUM", reserve=False)
BY_NAME = {p.name: p for p in (*PROVIDERS, *VARIANTS, CEREBRIUM_ROW)}
CLOUD_PROVIDER = {"aws": "ecs-fargate", "gcp": "gce"}


@dataclass(frozen=True)
class Prices:
    running_per_hour: float  # a bot's machine while it runs (idle or busy)
    frozen_per_hour: float  # while it is frozen (0 without a frozen tier)
    size: str


# Fargate, us-east-1, Linux/x86, on-demand (aws.amazon.com/fargate/pricing).
FARGATE_VCPU_HOUR, FARGATE_GB_HOUR = 0.04048, 0.004445
# Compute Engine, us-central1, on-demand (cloud.google.com/compute/vm-instance-pricing):
# E2 at $0.021811 per vCPU-hour and $0.002923 per GB-hour (e2-small: 0.5 vCPU + 2 GB billed).
GCE_HOURLY = {"e2-small": 0.016751, "e2-medium": 0.033503, "e2-standard-2": 0.067006, "e2-standard-4": 0.134012}
# Fly: shared-cpu-1x with 1 GB at $0.0000022/s (fly.io/docs/about/pricing); a stopped or suspended
# Machine bills its root filesystem at $0.15 per GB-month. Counted here: a 1 GB root filesystem
# and a 1 GB memory snapshot (whether Fly bills the snapshot apart is not published: counted).
FLY_SHARED_1X_1GB_HOUR = 0.0000022 * 3600

FLY_FROZEN_HOUR = 2 * 0.15 / HOURS_PER_MONTH


def prices(provider: Provider, stack: Mapping[str, object]) -> Prices:
    """The bot's prices for a stack's bot size (`botCpu`/`botMemory`, `botMachineType`)."""
    if provider.machines == "ecs":
        vcpu = float(str(stack.get("botCpu", 512))) / 1024
        gb = float(str(stack.get("botMemory", 1024))) / 1024
        return Prices(vcpu * FARGATE_VCPU_HOUR + gb * FARGATE_GB_HOUR, 0.0, f"{vcpu:g} vCPU / {gb:g} GB")
    if provider.machines == "gce":
        machine_type = str(stack.get("botMachineType", "e2-small"))
        if machine_type not in GCE_HOURLY:
            raise ValueError(f"no price here for botMachineType {machine_type!r} (known: {', '.join(GCE_HOURLY)})")
        return Prices(GCE_HOURLY[machine_type], 0.0, machine_type)
    if provider.machines == "cerebrium":  # the Pipecat guide's CPU app: 4 vCPU, 18 GB (docs/providers.md)
        vcpu, gb = float(str(stack.get("cerebriumCpu", 4))), float(str(stack.get("cerebriumMemory", 18)))
        return Prices(vcpu * CEREBRIUM.vcpu_hour + gb * CEREBRIUM.gb_hour, 0.0, f"{vcpu:g} vCPU / {gb:g} GB")
    if provider.machines == "cloudrun":  # the bot job's task (stacks/gcp/bot_job.py: 1 vCPU, 2 GiB by default)
        from dispatcher.reserve.prices import CLOUD_RUN_JOBS

        vcpu, gb = float(str(stack.get("botJobCpu", 1))), float(str(stack.get("botJobMemoryGb", 2)))
        return Prices(CLOUD_RUN_JOBS.monthly(vcpu, gb) / HOURS_PER_MONTH, 0.0, f"{vcpu:g} vCPU / {gb:g} GiB")
    if provider.machines == "modal":  # dispatcher/reserve/prices.py: a Sandbox of 1 core and 2 GiB, no GPU
        hourly = (MODAL_SANDBOX_CORE_SECOND + 2 * MODAL_GIB_SECOND) * 3600
        return Prices(hourly, 0.0, "1 core / 2 GiB Sandbox")
    if provider.machines == "aci":
        vcpu, gb = float(str(stack.get("botCpu", 1))), float(str(stack.get("botMemoryGb", 2)))
        # ACI, Linux, pay-as-you-go, per vCPU-second and GB-second (dispatcher/reserve/prices.py ACI)
        return Prices(vcpu * ACI.vcpu_hour + gb * ACI.gb_hour, 0.0, f"{vcpu:g} vCPU / {gb:g} GB")
    if provider.machines == "k8s":  # no stack: the default pod (1 CPU, 1Gi) at a GKE E2 node's prices (prices.py)
        return Prices(E2.vcpu_hour + E2.gb_hour, 0.0, "1 CPU / 1 GiB pod")
    return Prices(FLY_SHARED_1X_1GB_HOUR, FLY_FROZEN_HOUR, "shared-cpu-1x / 1 GB")
