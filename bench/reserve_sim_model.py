"""The reserve simulator's model: a discrete-event replay of one day against one provider.

It drives the dispatcher's own sizing code (dispatcher/reserve/policy.py, reserve_rates.py,
reserve_pacing.py) on a simulated clock, so what it measures is the policy that runs in
production, with the provider's create limit from the provider's own module. bench/reserve_sim.py
prints the figures; tests/dispatcher/reserve/test_reserve_sim.py checks the bookkeeping on short runs.

Model, and why each choice:
- Arrivals: Poisson at the base rate, and at 5× the base rate during bursts. Bursts start as a
  Poisson process (one per 90 min on average) and last 5–20 min (uniform): about 12 % of the day
  is in a burst and carries about 40 % of the day's sessions. A burst is a step (a campaign email
  or a push notification arrives all at once), the hardest case for a reserve.
- Session length: lognormal, median 3 min, σ 0.9 (mean ≈ 4.5 min, 5 % over 13 min), capped at
  30 min (MAX_SESSION_SECONDS' default). Contact-centre calls average 4–6 min with a long right
  tail; short web voice sessions pull the median lower.
- Cold start (launch call → bot ready): lognormal, because a start is a product of factors
  (placement, image pull at the host's bandwidth, boot) and reported starts are skewed right.
  Fargate median 40 s, σ 0.35 (p95 ≈ 71 s: AWS re:Post "30–45 s normal", 60–90 s reports);
  Compute Engine median 30 s, σ 0.3 (p95 ≈ 49 s: ~10 s to RUNNING + image pull + boot);
  Fly median 3 s, σ 0.6 (p95 ≈ 8 s, p99 ≈ 12 s: "1–10 s", low double digits with an image
  fetch). docs/reference/field_2026.md has the sources.
- A warm claim is ready 0.3 s after the start (claim + assignment over the channel + join).
- A cold start waits for the provider's create token first (the same mirror bucket the refills
  spend from, at the provider module's documented limit), and is refused, as admission refuses
  it (503 + Retry-After), when that wait would pass the limit's `max_wait`: a refused start
  counts as never ready in the percentiles.
- One deploy at noon: every idle bot of the old image is retired and replaced.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from dispatcher.machines.ecs.provider import DEFAULT_RUN_TASK_RATE
from dispatcher.machines.fly.provider import DEFAULT_CREATE_RATE
from dispatcher.machines.gce.provider import DEFAULT_INSERT_RATE
from dispatcher.outbound.ratelimit import Rate
from dispatcher.reserve.pacing import IdleBot, LaunchTokens, claim_order, plan_reserve
from dispatcher.reserve.policy import DEFAULT_COLD_START_SECONDS, ReserveSettings, reserve_size
from dispatcher.reserve.rates import ArrivalRate, ColdStartEstimate

DAY = 24 * 3600.0
WARM_CLAIM_SECONDS = 0.3
TICK_SECONDS = 1.0  # the reserve re-plans on every event and at least once a second
BURST_FACTOR = 5.0
SESSION_MEDIAN_SECONDS, SESSION_SIGMA, SESSION_CAP_SECONDS = 180.0, 0.9, 1800.0


@dataclass(frozen=True)
class Provider:
    name: str
    machines: str  # the dispatcher's MACHINES value
    cold_median_seconds: float
    cold_sigma: float
    create_rate: Rate
    rate_prefix: str  # the dispatcher's variables that override `create_rate` (<prefix>_RATE, _BURST)

    def cold_start(self, draw: random.Random) -> float:
        return self.cold_median_seconds * math.exp(draw.gauss(0.0, self.cold_sigma))


PROVIDERS = (
    Provider("ecs-fargate", "ecs", 40.0, 0.35, DEFAULT_RUN_TASK_RATE, "ECS_RUN_TASK"),
    Provider("gce", "gce", 30.0, 0.30, DEFAULT_INSERT_RATE, "GCE_INSERT"),
    Provider("fly", "fly", 3.0, 0.60, DEFAULT_CREATE_RATE, "FLY_CREATE"),
)


def bursts(draw: random.Random, seconds: float) -> list[tuple[float, float]]:
    """(start, end) of each burst in the day."""
    spans: list[tuple[float, float]] = []
    t = 0.0
    while True:
        t += draw.expovariate(1 / 5400.0)
        if t >= seconds:
            return spans
        end = min(seconds, t + draw.uniform(300.0, 1200.0))
        spans.append((t, end))
        t = end


def arrivals(
    spans: list[tuple[float, float]], draw: random.Random, per_minute: float, seconds: float
) -> Iterator[float]:
    """Arrival times: Poisson at `per_minute`, ×5 inside bursts (thinning of the peak rate)."""
    peak = per_minute * BURST_FACTOR / 60.0
    t, i = 0.0, 0
    while True:
        t += draw.expovariate(peak)
        if t >= seconds:
            return
        while i < len(spans) and spans[i][1] <= t:
            i += 1
        in_burst = i < len(spans) and spans[i][0] <= t
        if in_burst or draw.random() < 1 / BURST_FACTOR:
            yield t


def session_length(draw: random.Random) -> float:
    return min(SESSION_CAP_SECONDS, SESSION_MEDIAN_SECONDS * math.exp(draw.gauss(0.0, SESSION_SIGMA)))


@dataclass
class Machine:
    machine_id: int
    state: str  # warming | idle | busy
    since: float
    launched: float
    image: str
    cold_for: int | None = None  # the arrival a cold launch serves


@dataclass
class Result:
    provider: str
    per_minute: float
    arrivals: int = 0
    warm: int = 0
    cold: int = 0
    time_to_ready: list[float] = field(default_factory=list)
    machine_seconds: dict[str, float] = field(default_factory=lambda: {"warming": 0.0, "idle": 0.0, "busy": 0.0})
    retired_boot_seconds: float = 0.0  # warming time of reserve machines retired unused
    launches: int = 0
    retired: int = 0
    peak_idle: int = 0
    peak_total: int = 0  # idle + warming reserve machines at once
    served: set[int] = field(default_factory=set)  # arrivals that got a bot
    machines_served: set[int] = field(default_factory=set)  # machines that served a session
    stale_claims: int = 0  # warm claims of a bot of an image older than the current one
    refused: int = 0  # cold starts refused by admission: the create token was further than max_wait

    seconds: float = DAY

    @property
    def mean_idle(self) -> float:
        return self.machine_seconds["idle"] / self.seconds

    @property
    def overhead_share(self) -> float:
        """The reserve's whole cost: idle time plus the boot time of machines retired unused."""
        total = sum(self.machine_seconds.values())
        return (self.machine_seconds["idle"] + self.retired_boot_seconds) / total if total else 0.0

    @property
    def idle_share(self) -> float:
        total = sum(self.machine_seconds.values())
        return self.machine_seconds["idle"] / total if total else 0.0

    def percentile(self, p: float) -> float:
        """Of every start; a refused one counts as never ready."""
        ordered = sorted(self.time_to_ready) + [math.inf] * self.refused
        return ordered[min(len(ordered) - 1, math.ceil(p * len(ordered)) - 1)] if ordered else math.nan


class Simulation:
    def __init__(
        self, provider: Provider, settings: ReserveSettings, per_minute: float, *, seed: int, seconds: float = DAY
    ) -> None:
        self.provider, self.settings, self.seconds = provider, settings, seconds
        self.draw = random.Random(f"{seed}/{provider.name}/{per_minute}")
        # Arrivals and session lengths come from their own seeds: every provider replays the same day.
        traffic = random.Random(f"{seed}/traffic/{per_minute}")
        self.bursts = bursts(traffic, seconds)
        self.arrival_times = list(arrivals(self.bursts, traffic, per_minute, seconds))
        self.lengths = [session_length(traffic) for _ in self.arrival_times]
        self.result = Result(provider.name, per_minute, seconds=seconds)
        self.rate = ArrivalRate(settings.rate_sample)
        self.cold = ColdStartEstimate(DEFAULT_COLD_START_SECONDS[provider.machines])
        self.tokens = LaunchTokens(provider.create_rate.per_second, provider.create_rate.burst)
        self.machines: dict[int, Machine] = {}
        self.in_state: dict[str, set[int]] = {"warming": set(), "idle": set(), "busy": set()}
        self.reserve_warming = 0  # warming machines launched for the reserve (not for a cold start)
        self.ids = itertools.count()
        self.events: list[tuple[float, int, str, int]] = []
        self.seq = itertools.count()
        self.image = "v1"

    def at(self, when: float, kind: str, ref: int = -1) -> None:
        heapq.heappush(self.events, (when, next(self.seq), kind, ref))

    def run(self) -> Result:
        for n, t in enumerate(self.arrival_times):
            self.at(t, "arrival", n)
        self.at(0.0, "tick")
        self.at(self.seconds / 2, "deploy")
        while self.events:
            now, _, kind, ref = heapq.heappop(self.events)
            if kind == "tick" and now + TICK_SECONDS < self.seconds:
                self.at(now + TICK_SECONDS, "tick")
            elif kind == "arrival":
                self.arrive(now, ref)
            elif kind == "ready":
                self.ready(now, ref)
            elif kind == "end":
                self.set_state(now, self.machines.pop(ref), None)
            elif kind == "deploy":
                self.image = "v2"
            if now < self.seconds:  # after the day only the last sessions finish; nothing is sized
                self.replan(now)
                self.record_peaks(now)
        for machine in list(self.machines.values()):  # reserve machines left at the end of the day
            self.set_state(self.seconds, machine, None)
        return self.result

    def set_state(self, now: float, machine: Machine, state: str | None) -> None:
        """Move `machine` to `state` (None: destroyed), adding its time in the old state up to the day's end."""
        self.result.machine_seconds[machine.state] += min(now, self.seconds) - min(machine.since, self.seconds)
        self.in_state[machine.state].discard(machine.machine_id)
        if machine.state == "warming" and machine.cold_for is None:
            self.reserve_warming -= 1
        if state is None:
            return
        machine.state, machine.since = state, now
        self.in_state[state].add(machine.machine_id)

    def record_peaks(self, now: float) -> None:
        """After the event and the reserve's response to it (both happen at the same instant)."""
        idle = len(self.in_state["idle"])
        self.result.peak_idle = max(self.result.peak_idle, idle)
        self.result.peak_total = max(self.result.peak_total, idle + self.reserve_warming)

    def launch(self, now: float, cold_for: int | None) -> None:
        """Start a machine; it is ready after its wait for a create token and its cold start."""
        wait = self.tokens.seconds_until_token(now)
        self.tokens.spend(now)
        machine = Machine(next(self.ids), "warming", now, now, self.image, cold_for)
        self.machines[machine.machine_id] = machine
        self.in_state["warming"].add(machine.machine_id)
        self.reserve_warming += cold_for is None
        self.result.launches += 1
        self.at(now + wait + self.provider.cold_start(self.draw), "ready", machine.machine_id)

    def idle_bots(self) -> list[IdleBot]:
        return [IdleBot(str(i), self.machines[i].since, self.machines[i].image) for i in self.in_state["idle"]]

    def arrive(self, now: float, arrival: int) -> None:
        self.result.arrivals += 1
        self.rate.record(now)
        candidates = claim_order(self.idle_bots(), self.image)
        if not candidates:
            if self.tokens.seconds_until_token(now) > self.provider.create_rate.max_wait:
                self.result.refused += 1  # admission answers 503 + Retry-After rather than queue
                return
            self.result.cold += 1
            self.launch(now, cold_for=arrival)
            return
        machine = self.machines[int(candidates[0].bot_id)]
        if machine.state != "idle":
            raise AssertionError(f"machine {machine.machine_id} claimed while {machine.state}")
        self.result.stale_claims += machine.image != self.image
        self.result.warm += 1
        self.set_state(now, machine, "busy")
        self.serve(arrival, waited=WARM_CLAIM_SECONDS, machine=machine, ready_at=now + WARM_CLAIM_SECONDS)

    def serve(self, arrival: int, *, waited: float, machine: Machine, ready_at: float) -> None:
        if arrival in self.result.served or machine.machine_id in self.result.machines_served:
            raise AssertionError(f"arrival {arrival} or machine {machine.machine_id} served twice")
        self.result.served.add(arrival)
        self.result.machines_served.add(machine.machine_id)
        self.result.time_to_ready.append(waited)
        self.at(ready_at + self.lengths[arrival], "end", machine.machine_id)

    def ready(self, now: float, machine_id: int) -> None:
        machine = self.machines[machine_id]
        self.cold.observe(now - machine.launched)
        if machine.cold_for is None:
            self.set_state(now, machine, "idle")
            return
        self.set_state(now, machine, "busy")
        arrival = machine.cold_for
        self.serve(arrival, waited=now - self.arrival_times[arrival], machine=machine, ready_at=now)

    def replan(self, now: float) -> None:
        active = len(self.in_state["busy"]) + len(self.in_state["warming"]) - self.reserve_warming
        size = reserve_size(
            self.settings,
            active=active,
            arrivals_per_second=self.rate.per_second(now),
            cold_start_seconds=self.cold.seconds,
            utc_minute=int(now // 60) % 1440,
        )
        plan = plan_reserve(
            self.idle_bots(),
            warming=self.reserve_warming,
            size=size,
            now=now,
            image=self.image,
            settings=self.settings,
            cold_start_seconds=self.cold.seconds,
            spare_launches=self.tokens.spare(now),
        )
        for bot_id in plan.retire:
            machine = self.machines.pop(int(bot_id))
            self.result.retired += 1
            self.result.retired_boot_seconds += machine.since - machine.launched
            self.set_state(now, machine, None)
        for _ in range(plan.launch):
            self.launch(now, cold_for=None)
