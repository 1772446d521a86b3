"""The reserve simulator's agent-sandbox rows: a SandboxWarmPool whose size the planner writes.

    uv run --all-groups python -m bench.reserve_sim --stack aws-prod --providers k8s-pool k8s-pool-node-scale-up

With `K8S_MODE=agent-sandbox` the dispatcher only writes the pool's `spec.replicas`
(dispatcher/reserve/pool_sizing.py); kubernetes-sigs/agent-sandbox's controllers keep the pool and
serve the claims. This replays the simulator's day (bench/reserve_sim_model.py: its traffic, the
forecast's history, the lease hand-over at 10:00, the deploy at noon, the session cap) with:

- **the dispatcher's sizing**, the same code: `FleetSizer` with `POOL_TIERS` once a tick, told the
  pool's ready Sandboxes and the sessions, as `PoolSizing.tick` tells it; its ready target kept by
  the dispatcher's own `PoolSizing` (bench/reserve_sim_pool_sizing.py: the window
  `RESERVE_POOL_SCALEDOWN_SECONDS`, the fall held while a claim younger than `TAKING_SECONDS` is not
  bound, re-asked every `FALL_RETRY_SECONDS`), whose calls the model answers: the pool's
  `spec.replicas`, and the claims made and not yet bound (Ready with a Sandbox: a warm one once its
  adoption is written, one that adopted a booting Sandbox once that is Ready too, a cold one once its
  own is Ready). The sizer never learns the pool's pod start (the dispatcher does not see the
  platform's creates): its lead time stays the prior, `RESERVE_COLD_START_SECONDS`. At the hand-over
  the next lease holder is a new `PoolSizing`, which reads the pool's size and seeds its window with it.
- **the pool controller** (kubernetes-sigs/agent-sandbox at v0.5.6-12-g2fd412d5,
  extensions/controllers/sandboxwarmpool_controller.go `reconcilePool`), reconciling on every
  change: it creates Sandboxes while its members plus the deleted ones its cache still sees are
  below `spec.replicas` (no `ReplenishDelay`, no `MaxRefillRate`: their defaults in
  cmd/agent-sandbox-controller/main.go, so an adoption is replaced at once), at most
  `MaxBatchSize` (300) a pass; past `spec.replicas` it deletes the
  excess, not-ready ones first, then the newest, and not while a delete of its own is unseen (its
  expectations gate). A new image is its `updateStrategy: Recreate` (the one the dispatcher
  requires): every unclaimed Sandbox of the old template is deleted and replaced.
- **the claim controller** (sandboxclaim_controller.go `getCandidate`, `adoptSandboxFromCandidates`,
  `getOrCreateSandbox`): a claim adopts a Ready pool Sandbox if there is one; else one that is not
  Ready but has a pod IP (its start waits for that pod's bot, and is not counted warm); else, while
  some have no pod IP yet, it looks again every 0.5 s until 2 s after the claim was made
  (`warmCandidateRetryInterval`, `warmCandidateGracePeriod`); else it creates a Sandbox cold. The
  adopted Sandbox leaves the pool when its adoption is written, and the pool controller replaces it.

Times (each a lognormal draw or a constant; why in each comment below): a pool Sandbox's pod start
is its row's pods-mode start (bench/reserve_sim_providers.py, `k8s` or `k8s-node-scale-up`:
reused, not copied); a claim's adoption is the field's measured p50 92 ms, p99 376 ms at 45 claims/s.
A pool Sandbox counts as Ready when its bot is up (the template's readiness probe: an assumption;
without one the controller could hand out a pod whose bot still imports, 1.3-2.9 s more).
Not modelled: a pool's refill ceiling (~70-85 Sandboxes/s, the kube-scheduler's; these days' bursts
ask 5/s at most), a Sandbox not Ready after 5 min replaced, and the nodes a cold claim's pod and the
pool's pods could share while the autoscaler adds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from bench.reserve_sim_model import WARM_CLAIM_SECONDS, Machine, Simulation
from bench.reserve_sim_pool_sizing import SimulatedSizing
from bench.reserve_sim_providers import BY_NAME, Provider
from bench.reserve_sim_traffic import DAY_START_EPOCH
from dispatcher.machines import k8s
from dispatcher.reserve.fleet import UNPACED
from dispatcher.reserve.planner import Fleet, Tiers
from dispatcher.reserve.pool_sizing import POOL_SCALEDOWN_SECONDS, POOL_TIERS
from dispatcher.reserve.releases import DEFAULT_ONLY
from dispatcher.reserve.sizer import FleetSizer

# A warm adoption, claim made → claim Ready: p50 92 ms, p90 182 ms, p99 376 ms at 45 claims/s over 4
# pools (agent-sandbox's docs/performance-tuning.md, as shared/reference/field_2026-11-24.md §1.1
# reports it): lognormal median 0.092 s, σ 0.6 (p90 0.20 s, p99 0.37 s). The dispatcher's own part
# (the claim's create, the watch's event, the session handed to the bot over the channel) is the
# model's claim time on top, WARM_CLAIM_SECONDS.
ADOPTION_MEDIAN_SECONDS, ADOPTION_SIGMA = 0.092, 0.6
# sandboxclaim_controller.go: `warmCandidateGracePeriod = 2 * time.Second`, `warmCandidateRetryInterval
# = 500 * time.Millisecond`, counted from the claim's creation (`warmCandidateRetryAfter`).
GRACE_SECONDS, RETRY_SECONDS = 2.0, 0.5
# sandboxwarmpool_controller.go: `sandboxCreateDeleteMaxBatchSize = 300` creates or deletes a pass.
MAX_BATCH = 300
# A pod placed on a node with room has its IP before it is Ready, and create → Ready is 0.8-0.9 s on
# a warm EKS node (field_2026-11-24.md §1.1): its IP by 0.9 s, an upper bound. A pod waiting for a
# node the cluster autoscaler adds gets its IP once that node has joined: modelled as its start less
# a pods-mode start on a node with room (the dispatcher's k8s prior, 8 s: the image pull, the bot's
# imports), an assumption.
ADDRESS_SECONDS = 0.9
ON_A_NODE_SECONDS = k8s.COLD_START.median_seconds
# The pool controller deletes a Sandbox in the background (no finalizer on it); its cache sees the
# delete a moment later (modelled 0.1 s), while the pod's idle bot exits on SIGTERM and is billed
# until then (modelled 2 s): both assumptions, neither measured.
DELETE_SEEN_SECONDS, POD_EXIT_SECONDS = 0.1, 2.0


@dataclass(frozen=True)
class PoolRow:
    """A simulator row: the warm pool of the pods-mode row `pods`, whose pod start its Sandboxes take."""

    name: str
    pods: str
    waits_for_node: bool  # every pool pod waits for a node the cluster autoscaler adds

    @property
    def provider(self) -> Provider:
        return replace(BY_NAME[self.pods], name=self.name)


POOL_ROWS = {row.name: row for row in (PoolRow("k8s-pool", "k8s", waits_for_node=False),
                                       PoolRow("k8s-pool-node-scale-up", "k8s-node-scale-up", waits_for_node=True))}


@dataclass
class PoolSandbox(Machine):
    """A Sandbox the pool controller made. `serves` is set once a claim takes it."""

    addressed_at: float = math.inf  # its pod has an IP from then
    ready_at: float = math.inf  # Ready from then (its bot up)
    adopted_at: float = math.inf  # its claim's adoption written then


@dataclass
class SizingTick:
    """One tick of the dispatcher's sizing: its target, and what it asked and wrote (None: nothing)."""

    epoch: float
    target: int
    found: int | None = None  # the pool's size it read
    taking: int | None = None  # the claims being bound it was told of, asked before a fall
    wrote: int | None = None  # the spec.replicas it wrote


@dataclass
class PoolLog:
    """What the invariants are checked against (tests/bench/test_reserve_sim_pool.py)."""

    ticks: list[SizingTick | None] = field(default_factory=list)  # None: the lease changed hands
    # each controller pass's (now, spec.replicas, members, deletes not yet seen, Sandboxes created)
    passes: list[tuple[float, int, int, int, int]] = field(default_factory=list)
    # each claim's last pass: (start, now, warm|booting|cold, the Sandbox adopted or -1)
    claims: list[tuple[int, float, str, int]] = field(default_factory=list)
    bound: dict[int, float] = field(default_factory=dict)  # start → when its claim was bound (Ready, its Sandbox set)
    deletes: list[tuple[float, bool]] = field(default_factory=list)  # (now, whether the Sandbox was Ready)


class PoolSimulation(Simulation):
    def __init__(self, row: PoolRow, *args: Any, window_seconds: float = POOL_SCALEDOWN_SECONDS,
                 **kwargs: Any) -> None:
        """`window_seconds`: the dispatcher's RESERVE_POOL_SCALEDOWN_SECONDS."""
        self.row = row
        self.window_seconds = window_seconds
        self.replicas = 0  # the pool's spec.replicas (a new pool, as the base model's reserve starts empty)
        self.pool: dict[int, PoolSandbox] = {}  # the controller's members, oldest first (adoptions in flight too)
        self.ready_ids: dict[int, None] = {}  # members Ready and not taken, in the order they became Ready
        self.warming_ids: dict[int, None] = {}  # members not Ready and not taken, oldest first
        self.unseen_deletes = 0
        self.binding: dict[int, float] = {}  # start → when its claim was made, while it is not bound
        self.log = PoolLog()
        super().__init__(*args, **kwargs)
        self.sizing = self.new_holder()
        self.planning_now = 0.0  # the tick the sizing runs at, for the writes it makes

    def planned_tiers(self) -> Tiers:
        return POOL_TIERS

    def handle(self, now: float, kind: str, ref: int) -> None:
        if kind == "adopted":
            self.adopted(now, ref)
        elif kind == "retry":
            self.claim(now, ref)
        elif kind == "seen":
            self.unseen_deletes -= 1
            self.reconcile(now)
        elif kind == "gone":
            self.move(self.machines[ref], None)
        elif kind == "reconcile":
            self.reconcile(now)
        else:
            super().handle(now, kind, ref)

    # --- the dispatcher: the planner writes the pool's size -------------------------------------

    def plan(self, now: float) -> None:
        """`PoolSizing.tick`: the pool bots idle on the channel and the sessions, planned as the one
        release with all the traffic, its ready target kept by the dispatcher's `PoolSizing`."""
        assert isinstance(self.sizer, FleetSizer)  # the pool is sized by the fleet planner alone
        epoch = DAY_START_EPOCH + now
        fleet = Fleet([epoch] * len(self.ready_ids), [], active=self.count["busy"])
        plan = self.sizer.plan_releases(epoch, [(DEFAULT_ONLY[0].share, fleet)], UNPACED.burst)[0]
        self.planning_now = now
        self.log.ticks.append(SizingTick(epoch, plan.ready_target))
        self.sizing.keep_size(epoch, plan.ready_target)

    def new_holder(self) -> SimulatedSizing:
        return SimulatedSizing(self.provider.name, self, self.settings, self.planner, self.window_seconds)

    def hand_over(self, now: float) -> None:
        """The next lease holder is another replica's `PoolSizing`: it reads the pool's size at its
        first tick and keeps it for a window."""
        super().hand_over(now)
        self.sizing = self.new_holder()
        self.log.ticks.append(None)

    # --- what the sizing asks the cluster (`PooledMachines`' pool calls) ------------------------

    def pool_read(self) -> int:
        self.this_tick().found = self.replicas
        return self.replicas

    def scaled(self, replicas: int) -> None:
        self.this_tick().wrote = replicas
        self.replicas = replicas
        self.reconcile(self.planning_now)

    def taking(self, within_seconds: float) -> int:
        """Claims made in the last `within_seconds` and not bound yet."""
        since = DAY_START_EPOCH + self.planning_now - within_seconds
        taking = sum(1 for made in self.binding.values() if DAY_START_EPOCH + made > since)
        self.this_tick().taking = taking
        return taking

    def this_tick(self) -> SizingTick:
        tick = self.log.ticks[-1]
        assert tick is not None
        return tick

    def bind(self, now: float, n: int) -> None:
        """Start `n`'s claim is bound: Ready, its Sandbox named."""
        del self.binding[n]
        self.log.bound[n] = now

    # --- the pool controller -------------------------------------------------------------------

    def reconcile(self, now: float) -> None:
        members = len(self.pool)
        created = 0
        if members + self.unseen_deletes < self.replicas:
            created = min(self.replicas - members - self.unseen_deletes, MAX_BATCH)
            for _ in range(created):
                self.create(now)
            if members + self.unseen_deletes + created < self.replicas:
                self.at(now, "reconcile")  # the next batch, on its creates' watch events
        elif members > self.replicas and not self.unseen_deletes:
            # Not Ready first, then the newest (`reconcilePool`'s sort); an adoption in flight is the claim's.
            victims = [*reversed(self.warming_ids), *sorted(self.ready_ids, reverse=True)]
            for machine_id in victims[:min(members - self.replicas, MAX_BATCH)]:
                self.delete(now, self.pool[machine_id])
        self.log.passes.append((now, self.replicas, len(self.pool), self.unseen_deletes, created))

    def create(self, now: float) -> None:
        start = self.cold_start(False)
        machine = PoolSandbox(next(self.ids), "warming", now, self.image,
                              addressed_at=now + self.address_after(start), ready_at=now + start)
        self.machines[machine.machine_id] = machine
        self.pool[machine.machine_id] = machine
        self.warming_ids[machine.machine_id] = None
        self.count["warming"] += 1
        self.reserve_warming += 1
        self.result.launches += 1
        self.at(machine.ready_at, "ready", machine.machine_id)

    def address_after(self, start: float) -> float:
        """When a pool pod starting in `start` seconds has its IP."""
        if not self.row.waits_for_node:
            return min(start, ADDRESS_SECONDS)
        return min(start, max(ADDRESS_SECONDS, start - ON_A_NODE_SECONDS))

    def delete(self, now: float, machine: PoolSandbox) -> None:
        self.log.deletes.append((now, machine.machine_id in self.ready_ids))
        del self.pool[machine.machine_id]
        if machine.machine_id in self.warming_ids:
            del self.warming_ids[machine.machine_id]
            self.reserve_warming -= 1
            self.result.deleted_booting += 1
            self.result.deleted_boot_seconds += now - machine.launched + POD_EXIT_SECONDS
        self.ready_ids.pop(machine.machine_id, None)
        self.move(machine, "deleting")
        self.result.retired += 1
        self.unseen_deletes += 1
        self.at(now + DELETE_SEEN_SECONDS, "seen", machine.machine_id)
        self.at(now + POD_EXIT_SECONDS, "gone", machine.machine_id)

    def deploy(self) -> None:
        """A new image in the template: `Recreate` deletes every unclaimed Sandbox of the old one."""
        self.image += 1
        for machine_id in [*self.warming_ids, *self.ready_ids]:
            self.delete(self.clock, self.pool[machine_id])
        self.reconcile(self.clock)

    def ready(self, now: float, machine_id: int) -> None:
        machine = self.machines.get(machine_id)
        if machine is None or machine.state == "deleting":
            return
        machine.hello = now
        if machine.serves is not None:  # a cold Sandbox, or one adopted before it was Ready
            after = WARM_CLAIM_SECONDS + max(0.0, machine.adopted_at - now) if isinstance(machine, PoolSandbox) else 0.0
            if not isinstance(machine, PoolSandbox) or machine.adopted_at <= now:
                self.bind(now, machine.serves)  # else once its adoption is written
            self.move(machine, "busy")
            self.serve(now, machine.serves, machine, after)
            return
        del self.warming_ids[machine_id]
        self.reserve_warming -= 1
        self.move(machine, "hot")
        self.ready_ids[machine_id] = None
        self.result.peak_hot = max(self.result.peak_hot, len(self.ready_ids))

    # --- the claim controller ------------------------------------------------------------------

    def place(self, now: float, n: int, patient: bool = True) -> None:
        """Start `n`: refused past the session cap (the dispatcher's admission), else a claim."""
        r = self.result
        sessions = self.sessions()
        if self.max_sessions is not None and sessions >= self.max_sessions:
            r.refused_cap += 1
            return
        r.peak_sessions = max(r.peak_sessions, sessions + 1)
        self.binding[n] = now
        self.claim(now, n)

    def claim(self, now: float, n: int) -> None:
        """One pass of the claim controller over start `n`'s claim."""
        if self.ready_ids:
            self.adopt(now, n, self.pool[next(iter(self.ready_ids))], "warm")
            return
        addressed = next((i for i in self.warming_ids if self.pool[i].addressed_at <= now), None)
        if addressed is not None:
            self.adopt(now, n, self.pool[addressed], "booting")
            return
        made = self.day.arrival_times[n]
        if self.warming_ids and now < made + GRACE_SECONDS:
            self.at(now + min(RETRY_SECONDS, made + GRACE_SECONDS - now), "retry", n)
            return
        self.cold(now, n)

    def adopt(self, now: float, n: int, machine: PoolSandbox, how: str) -> None:
        machine.serves = n
        machine.adopted_at = now + self.adoption()
        self.at(machine.adopted_at, "adopted", machine.machine_id)
        self.log.claims.append((n, now, how, machine.machine_id))
        if how == "warm":
            del self.ready_ids[machine.machine_id]
            self.result.hot_claims += 1
            self.move(machine, "busy")
            self.serve(now, n, machine, machine.adopted_at - now + WARM_CLAIM_SECONDS)
        else:  # its start waits for the bot (`ready`); not warm: no Ready Sandbox was there
            del self.warming_ids[machine.machine_id]
            self.reserve_warming -= 1
            self.result.cold += 1

    def adopted(self, now: float, machine_id: int) -> None:
        """The adoption is written: the Sandbox leaves the pool, which the controller refills."""
        machine = self.pool.pop(machine_id)
        if machine.hello is not None and machine.serves is not None:  # Ready: the claim is bound
            self.bind(now, machine.serves)
        self.reconcile(now)

    def cold(self, now: float, n: int) -> None:
        """A Sandbox created for the claim: its pod starts as a pool pod would, and is no member."""
        start = self.cold_start(True)
        machine = Machine(next(self.ids), "warming", now, self.image, n)
        self.machines[machine.machine_id] = machine
        self.count["warming"] += 1
        self.result.cold += 1
        self.result.launches += 1
        self.result.cold_waits.append(start)
        self.log.claims.append((n, now, "cold", -1))
        self.at(now + start, "ready", machine.machine_id)

    def adoption(self) -> float:
        return ADOPTION_MEDIAN_SECONDS * math.exp(self.draw.gauss(0.0, ADOPTION_SIGMA))
