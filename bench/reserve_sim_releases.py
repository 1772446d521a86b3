"""The reserve simulator with releases: a canary rolled out over the day, each release warm by itself.

    uv run --all-groups python -m bench.reserve_sim_releases --stack aws-prod --levels 10 60
    uv run --all-groups python -m bench.reserve_sim_releases --stack aws-prod --providers fly --levels 10 60

The day of bench/reserve_sim_model.py, with two releases: `stable` has all the traffic until 09:00
UTC, then a canary takes 5 %, 50 % at noon and 100 % at 15:00 (promoted: `stable` then has none).
Each start is drawn a release by the weights at its arrival. The planner is the dispatcher's per
release (dispatcher/reserve/sizer.py `plan_releases`, split.py): each release with traffic its own
idle bots over its share of the demand, a claim only a bot of its start's release, and a release
that falls to 0 % loses its idle bots at once (booting ones on landing). The model's noon deploy is
off (the canary is the day's change). The same day with a single release (no deploy either) is the
baseline: the table prints each release's p95 time from POST /start to a ready bot, and the idle
share of running machine time beside the baseline's.
"""

from __future__ import annotations

import random
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bench.reserve_sim import Run, arguments
from bench.reserve_sim_model import Machine, Result, Simulation
from bench.reserve_sim_report import seconds
from bench.reserve_sim_traffic import DAY_START_EPOCH, SHAPES
from dispatcher.reserve.planner import Fleet
from dispatcher.reserve.sizer import FleetSizer

STABLE, CANARY = 1, 2  # each release's image
# (from, canary percent): the rollout of the figures.
ROLLOUT = ((9 * 3600.0, 5), (12 * 3600.0, 50), (15 * 3600.0, 100))
GOAL_P95_SECONDS, GOAL_EXTRA_IDLE_POINTS = 3.0, 2.0


@dataclass
class Pool:
    hot: list[int] = field(default_factory=list)
    hot_since: list[float] = field(default_factory=list)
    frozen: list[int] = field(default_factory=list)
    frozen_since: list[float] = field(default_factory=list)
    warming: int = 0  # reserve launches booting
    resuming: int = 0


class ReleasesSimulation(Simulation):
    def __init__(self, *args: Any, rollout: tuple[tuple[float, int], ...] = ROLLOUT, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "deploy": False})
        self.rollout = rollout
        self.weights = {STABLE: 100, CANARY: 0}
        self.pools = {STABLE: Pool(), CANARY: Pool()}
        self.release_draw = random.Random(f"{self.seed}/releases")
        self.release_of: dict[int, int] = {}  # start → its release
        self.ready_by_release: dict[int, list[float]] = {STABLE: [], CANARY: []}
        self.refused_by_release = {STABLE: 0, CANARY: 0}  # never ready: they count in the release's p95
        self.first_canary: list[float] = []  # the canary's starts while it had 5 %: the hardest to keep warm
        self.first_canary_refused = 0

    def schedule(self) -> None:
        super().schedule()
        for at, percent in self.rollout:
            if at < self.seconds:
                self.at(at, "weights", percent)

    def handle(self, now: float, kind: str, ref: int) -> None:
        if kind == "weights":
            self.set_canary(ref)
        else:
            super().handle(now, kind, ref)

    def set_canary(self, percent: int) -> None:
        """An admin's weight change: a release at 0 % loses its idle bots at once."""
        self.weights = {STABLE: 100 - percent, CANARY: percent}
        for release, pool in self.pools.items():
            if self.weights[release] == 0:
                for machine_id in pool.hot + pool.frozen:
                    self.retire(self.machines[machine_id])
                self.pools[release] = Pool(warming=pool.warming, resuming=pool.resuming)

    def arrive(self, now: float, n: int) -> None:
        self.release_of[n] = CANARY if self.release_draw.random() * 100 < self.weights[CANARY] else STABLE
        super().arrive(now, n)

    def place(self, now: float, n: int, patient: bool = True) -> None:
        """As the model's, with the start's release's own bots only."""
        release = self.release_of[n]
        pool = self.pools[release]
        self.use(pool)
        self.image = release  # a cold launch for it runs its release
        refused = self.result.refused + self.result.refused_cap
        super().place(now, n, patient)
        refused = self.result.refused + self.result.refused_cap - refused
        self.refused_by_release[release] += refused
        if release == CANARY and self.weights[CANARY] == self.rollout[0][1]:
            self.first_canary_refused += refused

    def use(self, pool: Pool) -> None:
        """The model's claims and landings act on `self.hot` and `self.frozen`: a release's own lists."""
        self.hot, self.hot_since = pool.hot, pool.hot_since
        self.frozen, self.frozen_since = pool.frozen, pool.frozen_since

    def serve(self, now: float, n: int, machine: Machine, after: float) -> None:
        if machine.image != self.release_of[n]:
            raise AssertionError(f"start {n} of release {self.release_of[n]} served by a bot of {machine.image}")
        super().serve(now, n, machine, after)
        self.ready_by_release[self.release_of[n]].append(self.result.time_to_ready[-1])
        if self.release_of[n] == CANARY and self.day.arrival_times[n] < self.rollout[1][0]:
            self.first_canary.append(self.result.time_to_ready[-1])

    def launch(self, now: float, app: int, serves: int | None = None) -> None:
        if serves is None:
            self.pools[self.image].warming += 1
        super().launch(now, app, serves)

    def ready(self, now: float, machine_id: int) -> None:
        machine = self.machines[machine_id]
        if machine.serves is None:
            self.pools[machine.image].warming -= 1
        super().ready(now, machine_id)

    def resumed(self, now: float, machine_id: int) -> None:
        machine = self.machines[machine_id]
        if machine.serves is None:
            self.pools[machine.image].resuming -= 1
        super().resumed(now, machine_id)

    def land_idle(self, now: float, machine: Machine, state: str) -> None:
        """A bot of a release at 0 % is retired as it lands; else it joins its release's pool."""
        pool = self.pools[machine.image]
        if self.weights[machine.image] == 0:
            self.retire(machine)
            return
        self.image = machine.image
        self.use(pool)
        super().land_idle(now, machine, state)
        self.result.peak_hot = max(self.result.peak_hot, sum(len(p.hot) for p in self.pools.values()))

    def plan(self, now: float) -> None:
        """The dispatcher's plan per release with traffic, carried out in each release's pool."""
        assert isinstance(self.sizer, FleetSizer)
        live = [r for r in (STABLE, CANARY) if self.weights[r] > 0]
        fleets = [Fleet(self.pools[r].hot_since, self.pools[r].frozen_since, warming=self.pools[r].warming,
                        freezing=self.count["freezing"], resuming=self.pools[r].resuming, active=self.count["busy"])
                  for r in live]
        shared = [(self.weights[r] / 100, fleet) for r, fleet in zip(live, fleets, strict=True)]
        plans = self.sizer.plan_releases(DAY_START_EPOCH + now, shared, sum(t.spare(now) for t in self.tokens))
        for release, plan in zip(live, plans, strict=True):
            self.use(self.pools[release])
            self.image = release
            self.carry_out(now, plan)
            self.pools[release].resuming += plan.resume

def p95(values: list[float], refused: int = 0) -> float:
    ordered = sorted(values) + [float("inf")] * refused
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)] if ordered else float("nan")


def run(run: Run) -> str:
    """One (provider, level): the day with a single release, then with the canary's rollout."""
    def day(simulation: type[Simulation]) -> Simulation:
        return simulation(run.provider, run.settings, run.planner, run.per_minute, seed=run.seed,
                          shape=SHAPES[run.day], seconds=run.hours * 3600, history_days=run.history_days,
                          max_sessions=run.max_sessions, deploy=False)

    single = day(Simulation).run()
    sim = day(ReleasesSimulation)
    assert isinstance(sim, ReleasesSimulation)
    both: Result = sim.run()
    stable, canary = (p95(sim.ready_by_release[r], sim.refused_by_release[r]) for r in (STABLE, CANARY))
    first = p95(sim.first_canary, sim.first_canary_refused)
    extra = (both.idle_share - single.idle_share) * 100
    refused = both.refused + both.refused_cap
    goals = [name for name, missed in (("p95 stable", stable > GOAL_P95_SECONDS),
                                       ("p95 canary", max(canary, first) > GOAL_P95_SECONDS),
                                       ("idle share", extra > GOAL_EXTRA_IDLE_POINTS),
                                       ("refusals", refused > 0)) if missed]
    cells = (run.provider.name, f"{run.per_minute:g}", str(both.arrivals), str(len(sim.ready_by_release[CANARY])),
             seconds(stable), seconds(canary), seconds(first), seconds(single.percentile(0.95)),
             f"{both.idle_share:.1%}", f"{single.idle_share:.1%}", f"{extra:+.1f}", str(refused),
             "meets" if not goals else "misses " + ", ".join(goals))
    return "| " + " | ".join(cells) + " |"


HEADER = ("provider", "/min", "starts", "canary starts", "p95 stable s", "p95 canary s", "p95 canary at 5 % s",
          "p95 one release s",
          "idle", "idle one release", "idle +points", "refused", "goals")


def main(argv: list[str] | None = None) -> None:
    """The simulator's own options (bench/reserve_sim.py: --stack, --providers, --levels, --env, --jobs …)."""
    args, runs = arguments(argv)
    print(f"fleet planner per release, {args.day} day, seed {args.seed}, {args.hours:g} h per run, "
          f"{args.fly_apps} Fly app(s); canary 5 % "
          f"from 09:00, 50 % at noon, 100 % at 15:00 UTC; stack: {args.stack or 'none (dispatcher defaults)'}; "
          f"--env: {' '.join(args.env) or 'none'}")
    print("| " + " | ".join(HEADER) + " |\n|" + "---|" * len(HEADER), flush=True)
    with ProcessPoolExecutor(args.jobs) as pool:
        for row in pool.map(run, runs):
            print(row, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
