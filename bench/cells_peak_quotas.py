"""One cell's provider quotas as the provider enforces them, for bench/cells_peak.py: strict (nothing
borrowed, nothing queued: past a limit the create is refused, as the provider answers it).

Per cell (an AWS account, a GCP project, an Azure subscription, a Fly app), each figure from
shared/reference/machines_apis.md and docs/operations.md ("Your ceiling and how to raise it"):
- **ECS on Fargate**: RunTask, "20 calls per second (burst and sustained)"; Fargate task launches, a
  bucket of 100 refilled at 20 a second; the On-Demand vCPU quota (L-3032A538) over the running bots'
  vCPUs (docs.aws.amazon.com/AmazonECS/latest/developerguide/throttling.html, ecs-service.html).
- **Cloud Run jobs**: 1,000 running job executions per project and region (cloud.google.com/run/quotas);
  `jobs.run` has no published rate, so none is modelled beyond the dispatcher's own pacing.
- **Compute Engine**: 1,500 mutation requests a minute per project (an insert at launch and a delete at
  the end, both counted: cloud.google.com/compute/docs/api-rate-limits), and the region's CPUS quota
  over the running VMs' vCPUs (no documented default: stated).
- **Container Instances**: 100 creates per 5 minutes and 300 an hour, 100 container groups, 100
  standard cores, per subscription and region (learn.microsoft.com/azure/container-instances/
  container-instances-resource-and-quota-limits). Deletes have budgets of their own, not modelled.
- **Fly Machines**: about 1 create a second per app, burst 3 (community.fly.io, "Understanding fly.io API
  rate hard limits"); past it 429, nothing borrowed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


class Bucket:
    """A token bucket that lends nothing: `capacity` at once, refilled at `per_second`."""

    def __init__(self, capacity: float, per_second: float) -> None:
        self.capacity, self.per_second = capacity, per_second
        self._tokens, self._at = capacity, -math.inf

    def take(self, now: float) -> bool:
        # a create due a little later may be asked before one due sooner (tokens reserved ahead): time never runs back
        self._tokens = min(self.capacity, self._tokens + max(0.0, now - self._at) * self.per_second)
        self._at = max(self._at, now)
        if self._tokens < 1.0 - 1e-9:
            return False
        self._tokens -= 1.0
        return True


class Window:
    """At most `limit` calls in any `seconds` (a sliding window, as ARM's and Compute Engine's per-period
    quotas are stated)."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit, self.seconds = limit, seconds
        self._times: deque[float] = deque()

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] <= now - self.seconds:
            self._times.popleft()

    def room(self, now: float) -> bool:
        self._trim(now)
        return len(self._times) < self.limit

    def count(self, now: float) -> None:
        """A call the provider counted whatever the room (a delete at a session's end)."""
        self._trim(now)
        self._times.append(now)


@dataclass
class Refusal:
    reason: str  # the provider's refusal, as the dispatcher shows it when it drains the cell
    retry_after: float | None = None


@dataclass
class CellQuotas:
    """A cell's quotas: the buckets and windows a create must pass, and the caps on what runs (units a
    running bot holds of each: `per_bot`). `lost`: the cell answers nothing any more."""

    buckets: list[tuple[str, Bucket]] = field(default_factory=list)
    windows: list[tuple[str, Window]] = field(default_factory=list)
    caps: list[tuple[str, float, float]] = field(default_factory=list)  # (refusal, quota, per bot)
    cap_retry_after: float | None = None
    mutations: Window | None = None  # Compute Engine: the delete at a session's end counts too
    running: int = 0
    lost: bool = False

    def create(self, now: float) -> Refusal | None:
        """A create at `now`: None when the provider makes the machine (and counts it running)."""
        if self.lost:
            return Refusal("AccessDenied (the cell is lost)")
        for reason, quota, per_bot in self.caps:
            if (self.running + 1) * per_bot > quota + 1e-9:
                return Refusal(reason, self.cap_retry_after)
        for reason, window in self.windows:
            if not window.room(now):
                return Refusal(reason)
        for reason, bucket in self.buckets:  # a bucket's token is spent only once the windows let it through
            if not bucket.take(now):
                return Refusal(reason)
        for _, window in self.windows:
            window.count(now)
        self.running += 1
        return None

    def ended(self, now: float) -> None:
        self.running = max(self.running - 1, 0)
        if self.mutations is not None:
            self.mutations.count(now)


def fargate(vcpu_quota: float, bot_vcpus: float) -> CellQuotas:
    return CellQuotas(buckets=[("ThrottlingException (RunTask 20 calls/s)", Bucket(20, 20.0)),
                               ("ThrottlingException (Fargate launches: bucket 100, 20/s)", Bucket(100, 20.0))],
                      caps=[("TASK_LIMIT_REACHED (Fargate On-Demand vCPUs)", vcpu_quota, bot_vcpus)])


def cloud_run(executions: int = 1000) -> CellQuotas:
    # a QuotaFailure drains the project for at least 30 s (docs/operations.md, "Cells")
    return CellQuotas(caps=[("RESOURCE_EXHAUSTED (running job executions)", executions, 1.0)], cap_retry_after=30.0)


def gce(cpu_quota: float, bot_vcpus: float) -> CellQuotas:
    mutations = Window(1500, 60.0)
    return CellQuotas(windows=[("rateLimitExceeded (1,500 mutations a minute)", mutations)],
                      caps=[("QUOTA_EXCEEDED (CPUS)", cpu_quota, bot_vcpus)], mutations=mutations)


def aci(bot_cores: float, groups: int = 100, cores: float = 100.0) -> CellQuotas:
    return CellQuotas(windows=[("429 (100 creates per 5 minutes)", Window(100, 300.0)),
                               ("429 (300 creates an hour)", Window(300, 3600.0))],
                      caps=[("ContainerGroupQuotaReached", groups, 1.0),
                            ("StandardCoresQuotaReached", cores, bot_cores)])


def fly() -> CellQuotas:
    return CellQuotas(buckets=[("429 (about 1 create/s per app, burst 3)", Bucket(3, 1.0))])
