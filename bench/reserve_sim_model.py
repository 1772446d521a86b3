"""The reserve simulator's model: a discrete-event replay of one day of one deployment.

It drives the dispatcher's own sizing brain (dispatcher/reserve/sizer.py: the forecast, the
demand estimate, the tiered fleet planner, the static policy under it) and its create-limit mirror
(dispatcher/reserve/pacing.py `LaunchTokens`) on a simulated clock. The traffic is
bench/reserve_sim_traffic.py's, the providers bench/reserve_sim_providers.py's.

What happens, and why:
- One planner for the whole deployment, once a second (the lease holder's tick): it launches,
  freezes, resumes and retires. At 10:00 its replica dies: its state goes through JSON (the
  store), nobody plans for `LEASE_GAP_SECONDS`, and a new planner carries on from that state
  with the starts the store counted meanwhile.
- A start claims the oldest hot bot (ready 0.3 s later: claim, assignment over the channel,
  join); else resumes the oldest frozen one and claims it (resume + re-dial + claim); else launches cold:
  it waits for a create token of its app first (one app but on Fly with several: the app its session
  id hashes to, each app its own limit), and is refused (503 + Retry-After, as admission answers)
  when that wait would pass the limit's `max_wait`, or when `max_sessions` sessions already run
  (the stack's maxConcurrentSessions). A refused start counts as never ready.
- A machine's time is counted in its state: warming (booting), hot, freezing, frozen, resuming,
  busy. Booting counts as running machine time (it is billed).
- One deploy at noon: every idle bot of the old image, hot or frozen, is retired; bots of the old
  image still booting or freezing are retired when they land.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.reserve_sim_providers import Provider
from bench.reserve_sim_replica import ReplicaPolicy
from bench.reserve_sim_traffic import DAY, DAY_START_EPOCH, Day, DayShape, history, measured_day
from dispatcher.reserve.forecast import BUCKET_SECONDS
from dispatcher.reserve.pacing import LaunchTokens
from dispatcher.reserve.planner import PLAN_EVERY_SECONDS, Fleet, FleetPlan, PlannerSettings, Tiers
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.sizer import FleetSizer

# A warm claim's time to the bot's `ready`, in production: an assumption, kept at the 0.3 s the
# emulator once measured (voicefleet_reserve_claim_seconds, 310 ms mean at 60/min with a burst, while
# claims of bots another replica launched still listed Fly's apps; since they no longer do it measures
# ~24 ms against a Fly on loopback). A real claim also re-tags its machine at the provider (on Fly
# three metadata writes and a read, one after another, dispatcher/machines/fly/reserve.py `adopt`)
# over the network; one start at a time the dispatcher's own share is 4-8 ms (bench.warm_start). The
# fleet emulator gives the model its own run's measures instead (`Simulation(claim_seconds=…)`).
WARM_CLAIM_SECONDS = 0.3
# A thaw is the provider's resume, then the bot's re-dial and hello, then the claim: added to every
# modelled resume, an assumption of the same kind (the emulator measured voicefleet_reserve_thaw_seconds
# 746.5 ms mean over 60 thaws then, 468 ms now, of which its resume model's mean is 0.45 s).
THAW_REDIAL_SECONDS = 0.3
LEASE_GAP_SECONDS = 15.0
HANDOVER_AT = 10 * 3600.0
# `deleting`: a warm pool's Sandbox deleted while its pod still exits (bench/reserve_sim_pool.py), billed.
STATES = ("warming", "hot", "freezing", "frozen", "resuming", "busy", "deleting")
RUNNING = ("warming", "hot", "freezing", "resuming", "busy", "deleting")


@dataclass(frozen=True)
class GivenColdStarts:
    """Cold starts to launch on instead of the model's draws (the fleet emulator's cloud's own), in
    creation order: the n-th reserve launch takes the n-th of `reserve`, the n-th launch for a start
    the n-th of `sessions`, so a start that goes cold in both meets the same cold start; past them,
    the model draws its own. Which create a duration fell to is the cloud's chance, not the code's."""

    reserve: Sequence[float]
    sessions: Sequence[float]


@dataclass
class Machine:
    machine_id: int
    state: str
    launched: float
    image: int
    serves: int | None = None  # the start a cold launch or a claim's resume serves
    hello: float | None = None
    resumed: float = 0.0  # when its last resume was asked for


@dataclass
class Result:
    provider: str
    per_minute: float
    seconds: float = DAY
    arrivals: int = 0
    hot_claims: int = 0
    frozen_claims: int = 0
    cold: int = 0
    refused: int = 0  # the create limit's wait was past max_wait
    refused_cap: int = 0  # max_sessions sessions were running
    time_to_ready: list[float] = field(default_factory=list)
    cold_waits: list[float] = field(default_factory=list)
    frozen_waits: list[float] = field(default_factory=list)  # start → ready of claims that resumed a bot
    quotes_told: int = 0  # cold starts told how long they would wait (FleetSizer.cold_quote)
    quotes_kept: int = 0  # of those, ready within it
    machine_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STATES, 0.0))
    retired_boot_seconds: float = 0.0  # booting time of reserve machines retired unused
    launches: int = 0
    retired: int = 0
    deleted_booting: int = 0  # machines deleted before their bot was up (a warm pool's fall or deploy)
    deleted_boot_seconds: float = 0.0  # their billed time, from their create until their pod exits
    peak_hot: int = 0
    peak_frozen: int = 0
    peak_sessions: int = 0
    served: set[int] = field(default_factory=set)
    machines_served: set[int] = field(default_factory=set)
    stale_claims: int = 0
    drawn_cold_starts: int = 0  # cold starts the model drew itself (past any it was given)

    @property
    def warm(self) -> int:
        return self.hot_claims + self.frozen_claims

    @property
    def running_seconds(self) -> float:
        return sum(self.machine_seconds[s] for s in RUNNING)

    @property
    def idle_share(self) -> float:
        """Hot idle time over all running machine time (frozen machines are not running)."""
        return self.machine_seconds["hot"] / self.running_seconds if self.running_seconds else 0.0

    def mean(self, state: str) -> float:
        return self.machine_seconds[state] / self.seconds

    def percentile(self, p: float) -> float:
        """Of every start; a refused one counts as never ready."""
        ordered = sorted(self.time_to_ready) + [math.inf] * (self.refused + self.refused_cap)
        return ordered[min(len(ordered) - 1, math.ceil(p * len(ordered)) - 1)] if ordered else math.nan


class Simulation:
    def __init__(self, provider: Provider, settings: ReserveSettings, planner: PlannerSettings, per_minute: float,
                 *, seed: int, shape: DayShape, seconds: float = DAY, history_days: int = 14,
                 max_sessions: int | None = None, handover: bool = True, replica: bool = False,
                 deploy: bool = True, day: Day | None = None, claim_seconds: float = WARM_CLAIM_SECONDS,
                 redial_seconds: float = THAW_REDIAL_SECONDS, draws: int = 0,
                 cold_starts: GivenColdStarts | None = None, deploy_at: float | None = None,
                 head_start: float = 0.0, wakes: bool = False) -> None:
        """`deploy_at`: when the day's deploy comes (default: noon); `head_start`: the planner ticks
        from this many seconds before the day's clock starts (the fleet emulator's dispatchers plan
        from their start, seconds before their first caller), its machine time counted from 0;
        `wakes`: the planner also plans at once after every start claimed or launched here, a peer's
        claim of a bot here and a bot's idle hello, and ticks a tick after that (what the
        dispatcher's reserve does, dispatcher/reserve/reserve.py `Reserve.run`); else once a tick on
        the tick (the day-long figures: slower to refill, by up to a tick)."""
        self.provider, self.settings, self.planner, self.seconds = provider, settings, planner, seconds
        self.claim_seconds, self.redial_seconds = claim_seconds, redial_seconds
        self.max_sessions = max_sessions
        # The cold starts' and resumes' draws; `draws` > 0 picks another stream of them for the same
        # traffic (the fleet emulator, whose cloud draws its own, compares its run with the model's
        # spread over many streams).
        self.draw = random.Random(f"{seed}/{provider.name}/{per_minute}" + (f"/{draws}" if draws else ""))
        self.day = day or measured_day(seed, per_minute, seconds, shape)
        given = cold_starts or GivenColdStarts((), ())
        self.given_cold_starts = {False: iter(given.reserve), True: iter(given.sessions)}
        self.tiers = self.planned_tiers()
        self.sizer: FleetSizer | ReplicaPolicy
        if replica:  # today's per-replica policy: no forecast to train, no state to hand over
            self.sizer, handover = ReplicaPolicy(settings), False
        else:
            self.sizer = FleetSizer(settings, planner, self.tiers)
            for start, count in history(seed, per_minute, shape, history_days, BUCKET_SECONDS):
                self.sizer.forecast.fold(start, count)
        self.result = Result(provider.name, per_minute, seconds=seconds)
        self.seed = seed
        # One create limit per app (Fly's FLY_APPS; one elsewhere), never one pooled bucket.
        self.tokens = [LaunchTokens(provider.create_rate.per_second, provider.create_rate.burst)
                       for _ in range(provider.apps)]
        self.machines: dict[int, Machine] = {}
        self.count = dict.fromkeys(STATES, 0)
        self.hot: list[int] = []  # ids, oldest first (claims and retirements take from the front)
        self.hot_since: list[float] = []
        self.frozen: list[int] = []
        self.frozen_since: list[float] = []
        self.reserve_warming = self.reserve_resuming = 0
        self.ids = itertools.count()
        self.events: list[tuple[float, int, str, int]] = []
        self.seq = itertools.count()
        self.image = 1
        self.clock = 0.0
        self.head_start, self.wakes = head_start, wakes
        self.ticks = 0  # the tick the planner waits for; one a wake planned since is stale
        self.planning_from = -head_start  # no planner until then (a lease changing hands)
        self.unplanned: list[float] = []  # starts the store counted while nobody held the lease
        self.handover = handover and seconds > HANDOVER_AT
        self.deploy_at_noon = deploy  # the fleet emulator's runs have no deploy to replay
        self.deploy_at = seconds / 2 if deploy_at is None else deploy_at

    def planned_tiers(self) -> Tiers:
        """What the planner is told the provider offers: every app's creates together, as the
        dispatcher's Fly provider tells it."""
        p = self.provider
        return Tiers(p.frozen, p.resume_median_seconds, p.create_rate.per_second * p.apps, p.suspend_seconds)

    # --- the event loop ---------------------------------------------------------------------

    def at(self, when: float, kind: str, ref: int = -1) -> None:
        heapq.heappush(self.events, (when, next(self.seq), kind, ref))

    def run(self) -> Result:
        self.schedule()
        while self.events:
            now, _, kind, ref = heapq.heappop(self.events)
            self.account(now)
            self.handle(now, kind, ref)
        self.account(self.seconds)
        return self.result

    def schedule(self) -> None:
        """The day's arrivals, the first tick, the deploy and the hand-over."""
        for n, t in enumerate(self.day.arrival_times):
            self.at(t, "arrival", n)
        self.at(-self.head_start, "tick", self.ticks)
        if self.deploy_at_noon and self.deploy_at < self.seconds:
            self.at(self.deploy_at, "deploy")
        if self.handover:
            self.at(HANDOVER_AT, "handover")

    def handle(self, now: float, kind: str, ref: int) -> None:
        if kind == "tick":
            if ref == self.ticks:
                self.tick(now)
        elif kind == "deploy":
            self.deploy()
        elif kind == "handover":
            self.hand_over(now)
        elif kind == "lease":
            self.take_lease()
        else:
            {"arrival": self.arrive, "ready": self.ready, "resumed": self.resumed,
             "suspended": self.suspended, "end": self.end}[kind](now, ref)

    def tick(self, now: float) -> None:
        """Plans now; the next tick comes a tick later (a wake restarts the dispatcher's wait)."""
        self.ticks += 1
        if now + PLAN_EVERY_SECONDS < self.seconds:
            self.at(now + PLAN_EVERY_SECONDS, "tick", self.ticks)
        if now >= self.planning_from:
            self.plan(now)

    def wake(self, now: float) -> None:
        """A start claimed or launched here, a peer's claim of a bot here or an idle hello: the
        dispatcher refills now, not at the next tick (dispatcher/reserve/reserve.py: `launch`,
        `claim_here` and `_on_idle_hello` set its wake). A start spilled away or refused before
        any claim (dispatcher/sessions/service.py `start`) never reaches the reserve: no wake."""
        if self.wakes:
            self.tick(now)

    def account(self, now: float) -> None:
        """Adds each state's machine time since the last event (up to the end of the day)."""
        until = min(now, self.seconds)
        if until > self.clock:
            elapsed = until - self.clock
            for state, n in self.count.items():
                if n:
                    self.result.machine_seconds[state] += n * elapsed
            self.clock = until

    def move(self, machine: Machine, state: str | None) -> None:
        self.count[machine.state] -= 1
        if state is None:
            del self.machines[machine.machine_id]
            return
        machine.state = state
        self.count[state] += 1

    # --- starts -----------------------------------------------------------------------------

    def arrive(self, now: float, n: int) -> None:
        r = self.result
        r.arrivals += 1
        if now >= self.planning_from:
            self.sizer.arrived(DAY_START_EPOCH + now)
        else:
            self.unplanned.append(DAY_START_EPOCH + now)
        self.place(now, n)

    def place(self, now: float, n: int, patient: bool = True) -> None:
        """Start `n` takes a hot bot, else a frozen one, else another region's (spill), else a cold
        start here. Not `patient`: its caller, refused by the region it spilled to, asked again
        without `maxWaitSeconds`, so it waits here for a cold start rather than spilling."""
        r = self.result
        sessions = self.sessions()
        if self.max_sessions is not None and sessions >= self.max_sessions:
            if not self.spill(now, n):
                r.refused_cap += 1
            return
        r.peak_sessions = max(r.peak_sessions, sessions + 1)
        if self.hot:
            machine = self.machines[self.take(self.hot, self.hot_since)]
            r.hot_claims += 1
            r.stale_claims += machine.image != self.image
            self.move(machine, "busy")
            self.serve(now, n, machine, self.claim_seconds)
            self.wake(now)
        elif self.frozen:
            machine = self.machines[self.take(self.frozen, self.frozen_since)]
            r.frozen_claims += 1
            machine.serves, machine.resumed = n, now
            self.move(machine, "resuming")
            self.at(now + self.provider.resume(self.draw) + self.redial_seconds, "resumed", machine.machine_id)
        elif patient and self.spill(now, n):
            pass  # another region's warm bot took it, or refused it (bench/reserve_sim_regions.py)
        elif self.tokens[app := self.app_of(n)].seconds_until_token(now) > self.provider.create_rate.max_wait:
            r.refused += 1  # its app's limit is spent, whatever the other apps hold
        else:
            r.cold += 1
            self.launch(now, app, serves=n)
            self.wake(now)

    def sessions(self) -> int:
        """Sessions running or starting (not the reserve's own bots)."""
        return self.count["busy"] + self.count["warming"] - self.reserve_warming \
            + self.count["resuming"] - self.reserve_resuming

    def spill(self, now: float, n: int) -> bool:
        """Start `n` found no warm bot here (or no room): another region's takes it? One deployment: no."""
        return False

    def leaning(self) -> dict[str, Any]:
        """What the planner is told of other regions (one deployment: nothing)."""
        return {}

    @staticmethod
    def take(ids: list[int], since: list[float]) -> int:
        del since[0]
        return ids.pop(0)

    def serve(self, now: float, n: int, machine: Machine, after: float) -> None:
        r = self.result
        if n in r.served or machine.machine_id in r.machines_served:
            raise AssertionError(f"start {n} or machine {machine.machine_id} served twice")
        r.served.add(n)
        r.machines_served.add(machine.machine_id)
        r.time_to_ready.append((now - self.day.arrival_times[n]) + after)  # a hot claim: exactly `after`
        self.at(now + after + self.day.lengths[n], "end", machine.machine_id)

    def app_of(self, n: int) -> int:
        """The app start `n`'s cold machine is created in: a stable hash of its session id, as
        dispatcher/machines/fly/creates.py `app_of` picks it (crc32; a session id per start here)."""
        return zlib.crc32(f"{self.seed}/session/{n}".encode()) % len(self.tokens)

    def refill_app(self, now: float) -> int:
        """The app a reserve launch takes its token from: the one with the most spare (creates.py `refill`)."""
        return max(range(len(self.tokens)), key=lambda a: self.tokens[a].spare(now))

    def launch(self, now: float, app: int, serves: int | None = None) -> None:
        wait = self.tokens[app].seconds_until_token(now)
        self.tokens[app].spend(now)
        machine = Machine(next(self.ids), "warming", now, self.image, serves)
        self.machines[machine.machine_id] = machine
        self.count["warming"] += 1
        self.reserve_warming += serves is None
        self.result.launches += 1
        cold = wait + self.cold_start(serves is not None)
        if serves is not None:
            self.result.cold_waits.append(cold)
            quote = self.sizer.cold_quote(wait)
            if not math.isnan(quote):
                self.result.quotes_told += 1
                self.result.quotes_kept += cold <= quote
        self.at(now + cold, "ready", machine.machine_id)

    def cold_start(self, for_a_start: bool) -> float:
        given = next(self.given_cold_starts[for_a_start], None)
        if given is not None:
            return given
        self.result.drawn_cold_starts += 1
        return self.provider.cold_start(self.draw)

    # --- machines landing -------------------------------------------------------------------

    def ready(self, now: float, machine_id: int) -> None:
        machine = self.machines[machine_id]
        machine.hello = now
        self.sizer.cold.observe(now - machine.launched)
        if machine.serves is not None:
            self.move(machine, "busy")
            self.serve(now, machine.serves, machine, 0.0)
            return
        self.reserve_warming -= 1
        self.land_idle(now, machine, "hot")
        self.wake(now)

    def resumed(self, now: float, machine_id: int) -> None:
        machine = self.machines[machine_id]
        self.sizer.resume.observe(now - machine.resumed)
        if machine.serves is not None:  # resumed for a claim
            self.move(machine, "busy")
            self.serve(now, machine.serves, machine, self.claim_seconds)
            self.result.frozen_waits.append(self.result.time_to_ready[-1])
            self.wake(now)  # the start's claim returns once its bot is back
            return
        self.reserve_resuming -= 1
        self.land_idle(now, machine, "hot")
        self.wake(now)

    def suspended(self, now: float, machine_id: int) -> None:
        self.land_idle(now, self.machines[machine_id], "frozen")

    def land_idle(self, now: float, machine: Machine, state: str) -> None:
        if machine.image != self.image:
            self.retire(machine)
            return
        self.move(machine, state)
        ids, since = (self.hot, self.hot_since) if state == "hot" else (self.frozen, self.frozen_since)
        ids.append(machine.machine_id)
        since.append(DAY_START_EPOCH + now)  # the planner reads epoch seconds
        self.result.peak_hot = max(self.result.peak_hot, len(self.hot))
        self.result.peak_frozen = max(self.result.peak_frozen, len(self.frozen))

    def end(self, now: float, machine_id: int) -> None:
        self.move(self.machines[machine_id], None)

    def retire(self, machine: Machine) -> None:
        self.result.retired += 1
        if machine.hello is not None:
            self.result.retired_boot_seconds += machine.hello - machine.launched
        self.move(machine, None)

    # --- the planner ------------------------------------------------------------------------

    def plan(self, now: float) -> None:
        fleet = Fleet(self.hot_since, self.frozen_since, warming=self.reserve_warming,
                      freezing=self.count["freezing"], resuming=self.reserve_resuming,
                      active=self.count["busy"])
        self.carry_out(now, self.sizer.plan(DAY_START_EPOCH + now, fleet, sum(t.spare(now) for t in self.tokens),
                                            **self.leaning()))

    def carry_out(self, now: float, plan: FleetPlan) -> None:
        """The plan on `self.hot` and `self.frozen`, launches of `self.image`."""
        for _ in range(plan.retire_hot):
            self.retire(self.machines[self.take(self.hot, self.hot_since)])
        for _ in range(plan.freeze):
            machine = self.machines[self.take(self.hot, self.hot_since)]
            self.move(machine, "freezing")
            self.at(now + self.provider.suspend_seconds, "suspended", machine.machine_id)
        for _ in range(plan.retire_frozen):
            self.retire(self.machines[self.take(self.frozen, self.frozen_since)])
        for _ in range(plan.resume):
            machine = self.machines[self.take(self.frozen, self.frozen_since)]
            self.move(machine, "resuming")
            machine.resumed = now
            self.reserve_resuming += 1
            self.at(now + self.provider.resume(self.draw) + self.redial_seconds, "resumed", machine.machine_id)
        for _ in range(plan.launch):
            self.launch(now, self.refill_app(now))

    def deploy(self) -> None:
        self.image += 1
        for ids, since in ((self.hot, self.hot_since), (self.frozen, self.frozen_since)):
            for machine_id in ids:
                self.retire(self.machines[machine_id])
            ids.clear()
            since.clear()

    def hand_over(self, now: float) -> None:
        """The planner's replica dies: its last state, through JSON as the store keeps it, goes to
        the next lease holder after the lease has run out."""
        assert isinstance(self.sizer, FleetSizer)
        state = json.loads(json.dumps(self.sizer.to_dict()))
        self.sizer = FleetSizer.from_dict(state, self.settings, self.planner, self.tiers)
        self.planning_from = now + LEASE_GAP_SECONDS
        self.at(self.planning_from, "lease")
        self.unplanned = []

    def take_lease(self) -> None:
        for epoch in self.unplanned:
            self.sizer.arrived(epoch)
        self.unplanned = []
