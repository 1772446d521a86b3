"""The agent-sandbox pool rows keep the invariants of the code and the controller they model, on
short runs; each check is shown to catch a model that breaks it (its figures are benchmarks, not
tested here)."""

from __future__ import annotations

import math

import pytest

from bench.reserve_sim import arguments
from bench.reserve_sim_model import WARM_CLAIM_SECONDS, Machine
from bench.reserve_sim_pool import (
    ADOPTION_MEDIAN_SECONDS,
    POOL_ROWS,
    PoolLog,
    PoolRow,
    PoolSandbox,
    PoolSimulation,
)
from bench.reserve_sim_pool_sizing import SimulatedSizing
from bench.reserve_sim_traffic import DAY_START_EPOCH, SHAPES
from dispatcher.reserve.planner import PlannerSettings
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.pool_sizing import FALL_RETRY_SECONDS, POOL_SCALEDOWN_SECONDS, TAKING_SECONDS
from dispatcher.reserve.scale_window import ScaleDownWindow

HOUR = 3600.0
SETTINGS = ReserveSettings(min_idle=2, buffer=0.1, max_idle=40)
WINDOW = 60.0  # RESERVE_POOL_SCALEDOWN_SECONDS: short, so that an hour holds many falls
ROOM, NODE = POOL_ROWS["k8s-pool"], POOL_ROWS["k8s-pool-node-scale-up"]


class Recorded(PoolSimulation):
    """The model, remembering every Sandbox (a deleted one too) and when the pool had a Ready one."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.machines_seen: dict[int, Machine] = {}
        self.ready_spans: list[tuple[float, float]] = []  # [from, to) with at least one Ready member
        self._ready_from: float | None = None
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def handle(self, now: float, kind: str, ref: int) -> None:
        super().handle(now, kind, ref)
        if self.ready_ids and self._ready_from is None:
            self._ready_from = now
        elif not self.ready_ids and self._ready_from is not None:
            self.ready_spans.append((self._ready_from, now))
            self._ready_from = None

    def create(self, now: float) -> None:
        super().create(now)
        self.machines_seen.update(self.machines)

    def cold(self, now: float, n: int) -> None:
        super().cold(now, n)
        self.machines_seen.update(self.machines)

    def had_ready(self, at: float) -> bool:
        spans = [*self.ready_spans, *([(self._ready_from, math.inf)] if self._ready_from is not None else [])]
        return any(start <= at < end for start, end in spans)


def simulate(model: type[Recorded] = Recorded, row: PoolRow = ROOM, per_minute: float = 20.0,
             seconds: float = HOUR, settings: ReserveSettings = SETTINGS, **kwargs: object) -> Recorded:
    """An hour of a flat day (the deploy at 30 min); the lease changes hands at 10:00, past a longer run."""
    kwargs.setdefault("window_seconds", WINDOW)
    simulation = model(row, row.provider, settings, PlannerSettings(), per_minute,
                       seed=5, shape=SHAPES["flat"], seconds=seconds, history_days=2, **kwargs)
    simulation.run()
    return simulation


def broken(simulation: Recorded) -> list[str]:
    """Every invariant the run broke, named (empty: it kept them all)."""
    return [*served_once(simulation), *warm_only_from_ready(simulation.log, simulation),
            *pool_within_its_size(simulation.log), *sizes_as_the_dispatcher_keeps_them(simulation),
            *bound_once_ready(simulation)]


def served_once(simulation: Recorded) -> list[str]:
    """Each start warm, cold or refused, once; each served one once (the model raises on a second
    serve), and every start but the refused ones served if it came ten minutes before the end."""
    r = simulation.result
    problems = []
    if r.warm + r.cold + r.refused_cap != r.arrivals:
        problems.append(f"{r.arrivals} starts, {r.warm} warm + {r.cold} cold + {r.refused_cap} refused")
    unserved = [n for n, at in enumerate(simulation.day.arrival_times) if at < r.seconds - 600 and n not in r.served]
    if len(r.served) != len(r.time_to_ready) or len(unserved) > r.refused_cap:
        problems.append(f"starts never served: {unserved[:5]}")
    return problems


def warm_only_from_ready(log: PoolLog, simulation: Recorded) -> list[str]:
    """A warm claim took a pool Sandbox Ready then; a booting one, one with a pod IP and not Ready;
    a cold one found no Ready Sandbox in the pool."""
    problems = []
    for n, at, how, machine_id in log.claims:
        machine = simulation.machines_seen.get(machine_id)
        if how == "warm" and not (isinstance(machine, PoolSandbox) and machine.ready_at <= at):
            problems.append(f"start {n} counted warm at {at:.1f} s without a Ready pool Sandbox")
        booting = isinstance(machine, PoolSandbox) and machine.ready_at > at >= machine.addressed_at
        if how == "booting" and not booting:
            problems.append(f"start {n} adopted a Sandbox that was Ready, or had no pod IP, at {at:.1f} s")
        if how == "cold" and simulation.had_ready(at):
            problems.append(f"start {n} went cold at {at:.1f} s beside a Ready pool Sandbox")
    return problems


def pool_within_its_size(log: PoolLog) -> list[str]:
    """After each pass the members are at most `spec.replicas`, and a pass that created left the
    members and the deletes it has not seen at most that (the controller's hard invariant)."""
    problems = []
    for now, replicas, members, unseen, created in log.passes:
        if members > replicas and not unseen:
            problems.append(f"{members} members over spec.replicas {replicas} at {now:.1f} s")
        if created and members + unseen > replicas:
            problems.append(f"created to {members} members and {unseen} deleting over {replicas} at {now:.1f} s")
    return problems


def sizes_as_the_dispatcher_keeps_them(simulation: Recorded) -> list[str]:
    """Each tick's writes are today's rule, replayed on the targets logged: a new lease holder reads
    the pool's size and seeds a fresh ScaleDownWindow with it; a rise is written at once; a fall to
    the window's size only when no claim made in the last TAKING_SECONDS is unbound (counted here from
    the claims' own times), asked again FALL_RETRY_SECONDS after it was held; each read finds the
    size last written (nobody else writes it)."""
    log, settings = simulation.log, simulation.settings
    made = {n: DAY_START_EPOCH + simulation.day.arrival_times[n] for n, *_ in log.claims}
    bound = {n: DAY_START_EPOCH + at for n, at in log.bound.items()}

    def taking(epoch: float) -> int:
        return sum(1 for n, at in made.items() if epoch - TAKING_SECONDS < at <= epoch
                   and bound.get(n, math.inf) > epoch)

    problems: list[str] = []
    window: ScaleDownWindow | None = None
    pool, known, fall_at = 0, 0, -math.inf
    for tick in log.ticks:
        if tick is None:
            window = None
            continue
        if tick.found is not None and tick.found != pool:
            problems.append(f"read {tick.found} at {tick.epoch:.0f}, the pool was at {pool}")
        if window is None:
            if tick.found is None:
                problems.append(f"took the lease at {tick.epoch:.0f} without reading the pool's size")
            window, known, fall_at = ScaleDownWindow(simulation.window_seconds, settings.max_idle), pool, -math.inf
            window.seed(tick.epoch, known)
        size = window.size(tick.epoch, tick.target) if settings.enabled else 0
        expected: int | None = size if size > known else None
        if size < known and tick.epoch >= fall_at:
            if held := taking(tick.epoch):
                fall_at = tick.epoch + FALL_RETRY_SECONDS
                if tick.taking != held:
                    problems.append(f"told {tick.taking} claims being bound at {tick.epoch:.0f}, there were {held}")
            else:
                expected = size
        if tick.wrote != expected:
            problems.append(f"wrote {tick.wrote} at {tick.epoch:.0f}, today's sizing writes {expected}")
        if tick.wrote is not None:
            pool = known = tick.wrote
    return problems


def bound_once_ready(simulation: Recorded) -> list[str]:
    """A claim that took a pool Sandbox is bound once that Sandbox is Ready and adopted, not before."""
    problems = []
    for n, _, how, machine_id in simulation.log.claims:
        at, machine = simulation.log.bound.get(n), simulation.machines_seen.get(machine_id)
        if at is None or how == "cold" or not isinstance(machine, PoolSandbox):
            continue
        if at < max(machine.adopted_at, machine.ready_at):
            problems.append(f"start {n}'s claim bound at {at:.1f} s, before its Sandbox was Ready and adopted")
    return problems


@pytest.mark.parametrize("row", [ROOM, NODE], ids=lambda r: r.name)
def test_the_pool_model_keeps_its_invariants(row: PoolRow) -> None:
    simulation = simulate(Recorded, row)
    assert broken(simulation) == []
    r = simulation.result
    assert r.arrivals > 500 and r.hot_claims > 0 and r.cold > 0  # the deploy's refill goes cold for a while
    assert any(tick is not None and tick.wrote is not None for tick in simulation.log.ticks) and simulation.log.passes


def test_the_invariants_hold_across_the_lease_hand_over() -> None:
    simulation = simulate(Recorded, per_minute=5.0, seconds=10.5 * HOUR, deploy=False)
    ticks = simulation.log.ticks
    handed = ticks.index(None)
    written = [tick.wrote for tick in ticks[:handed] if tick is not None and tick.wrote is not None]
    first = ticks[handed + 1]
    assert first is not None and first.found == written[-1] > 0  # the next holder read the size it keeps
    assert broken(simulation) == []
    lost = simulate(SizesAnEmptyPool, per_minute=5.0, seconds=10.5 * HOUR, deploy=False)
    assert any("the pool was at" in problem for problem in broken(lost))


def test_falls_are_held_while_claims_are_being_bound() -> None:
    simulation = simulate(Recorded, NODE)  # its claims that adopt a booting Sandbox stay unbound for long
    asked = [tick for tick in simulation.log.ticks if tick is not None and tick.taking is not None]
    held = [tick for tick in asked if tick.taking]
    assert held and len(held) < len(asked)  # some falls waited, some were made
    assert all(b.epoch - a.epoch >= FALL_RETRY_SECONDS for a, b in zip(held, held[1:], strict=False))
    assert broken(simulation) == []


def test_reserve_max_idle_zero_keeps_the_pool_empty() -> None:
    simulation = simulate(Recorded, settings=ReserveSettings(min_idle=2, max_idle=0))
    assert simulation.replicas == 0 and not simulation.log.passes[-1][2]
    assert simulation.result.hot_claims == 0 and simulation.result.cold == simulation.result.arrivals > 0
    assert broken(simulation) == []


def test_a_warm_start_takes_the_adoption_and_the_claim() -> None:
    simulation = simulate(Recorded)
    warm = sorted(t for t in simulation.result.time_to_ready if t < 2.0)
    assert len(warm) >= simulation.result.hot_claims > 0
    assert warm[0] > WARM_CLAIM_SECONDS
    assert warm[len(warm) // 2] == pytest.approx(WARM_CLAIM_SECONDS + ADOPTION_MEDIAN_SECONDS, abs=0.03)


def test_the_deploy_replaces_every_unclaimed_sandbox() -> None:
    simulation = simulate(Recorded, per_minute=1e-6, settings=ReserveSettings(min_idle=3, max_idle=3))
    assert simulation.result.arrivals == 0
    assert simulation.result.retired == 3 and simulation.result.launches == 6
    assert [ready for _, ready in simulation.log.deletes] == [True] * 3  # the three Ready ones, at the deploy
    assert {m.image for m in simulation.pool.values()} == {simulation.image}


class NeverShrinks(Recorded):
    """A pool controller that never deletes a Sandbox."""

    def delete(self, now: float, machine: PoolSandbox) -> None:
        pass


class CreatesPastDeletes(Recorded):
    """A pool controller that refills without counting the Sandboxes it deleted and has not seen go."""

    def reconcile(self, now: float) -> None:
        hidden, self.unseen_deletes = self.unseen_deletes, 0
        super().reconcile(now)
        self.unseen_deletes += hidden
        self.log.passes[-1] = (*self.log.passes[-1][:3], self.unseen_deletes, self.log.passes[-1][4])


class WarmWhileBooting(Recorded):
    """A claim controller that takes a pod with an IP for a Ready one."""

    def claim(self, now: float, n: int) -> None:
        addressed = next((i for i in self.warming_ids if self.pool[i].addressed_at <= now), None)
        if not self.ready_ids and addressed is not None:
            del self.warming_ids[addressed]
            self.reserve_warming -= 1
            self.move(self.pool[addressed], "hot")
            self.ready_ids[addressed] = None
        super().claim(now, n)

    def ready(self, now: float, machine_id: int) -> None:
        machine = self.machines.get(machine_id)
        if machine is None or machine.state != "busy":  # else served already, as if it had been Ready
            super().ready(now, machine_id)


class ColdBesideReady(Recorded):
    """A claim controller that creates every seventh start's Sandbox cold, Ready ones in the pool or not."""

    def claim(self, now: float, n: int) -> None:
        if n % 7 == 0:
            self.cold(now, n)
        else:
            super().claim(now, n)


class WritesItsTarget(SimulatedSizing):
    def __init__(self, simulation: Recorded) -> None:
        self.simulation = simulation

    def keep_size(self, epoch: float, target: int) -> None:
        if target != self.simulation.replicas:
            self.simulation.scaled(target)


class RawTarget(Recorded):
    """A planner that writes its target as the pool's size, down at once."""

    def new_holder(self) -> SimulatedSizing:
        return WritesItsTarget(self)


class IgnoresClaims(Recorded):
    """A cluster that never reports a claim being bound, so falls are never held."""

    def taking(self, within_seconds: float) -> int:
        super().taking(within_seconds)
        self.this_tick().taking = 0
        return 0


class BindsAtTheClaim(Recorded):
    """A claim counted bound the moment it adopts, before its adoption is written."""

    def adopt(self, now: float, n: int, machine: PoolSandbox, how: str) -> None:
        super().adopt(now, n, machine, how)
        self.binding.pop(n, None)
        self.log.bound[n] = now

    def bind(self, now: float, n: int) -> None:
        if n in self.binding:
            super().bind(now, n)


class SizesAnEmptyPool(Recorded):
    """A new lease holder that finds no pool: it does not keep the size it was handed."""

    def pool_read(self) -> int:
        if None not in self.log.ticks:
            return super().pool_read()
        self.this_tick().found = 0
        return 0


class CountsTwice(Recorded):
    """A warm start counted cold too, now and then."""

    def adopt(self, now: float, n: int, machine: PoolSandbox, how: str) -> None:
        super().adopt(now, n, machine, how)
        self.result.cold += n % 5 == 0


class ForgetsWaiting(Recorded):
    """A claim controller that drops a claim instead of looking again for a pod IP."""

    def at(self, when: float, kind: str, ref: int = -1) -> None:
        if kind != "retry":
            super().at(when, kind, ref)


@pytest.mark.parametrize(("model", "row", "named"), [
    (NeverShrinks, ROOM, "over spec.replicas"),
    (CreatesPastDeletes, ROOM, "deleting over"),
    (WarmWhileBooting, ROOM, "without a Ready pool Sandbox"),
    (ColdBesideReady, ROOM, "went cold"),
    (RawTarget, ROOM, "today's sizing writes"),
    (IgnoresClaims, NODE, "claims being bound"),
    (BindsAtTheClaim, ROOM, "before its Sandbox was Ready"),
    (CountsTwice, ROOM, "warm +"),
    (ForgetsWaiting, NODE, "never served"),  # its pods wait for a node: claims wait for their IPs
], ids=lambda v: v.__name__ if isinstance(v, type) else getattr(v, "name", ""))
def test_each_invariant_catches_a_model_that_breaks_it(model: type[Recorded], row: PoolRow, named: str) -> None:
    assert any(named in problem for problem in broken(simulate(model, row)))


def test_the_pool_rows_run_from_the_simulators_command_line() -> None:
    args, runs = arguments(["--stack", "aws-prod", "--providers", "k8s-pool", "k8s-pool-node-scale-up",
                            "--levels", "2", "--hours", "0.5", "--history-days", "1"])
    assert [(run.provider.name, run.pool) for run in runs] == [("k8s-pool", ROOM), ("k8s-pool-node-scale-up", NODE)]
    row = runs[0]()
    assert row.provider == "k8s-pool" and row.starts > 0 and 0 < row.warm <= 1


@pytest.mark.parametrize("extra", [["--regions", "2"], ["--planner", "replica"]])
def test_a_pool_row_with_a_mode_it_has_not_is_refused_naming_the_way(
        extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        arguments(["--providers", "k8s-pool", *extra])
    assert "drop --regions and --planner replica" in capsys.readouterr().err


def test_the_pool_window_is_the_dispatchers_variable(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--providers", "k8s-pool", "--levels", "2"]
    assert arguments(base)[1][0].pool_window == POOL_SCALEDOWN_SECONDS
    assert arguments([*base, "--env", "RESERVE_POOL_SCALEDOWN_SECONDS=60"])[1][0].pool_window == 60.0
    with pytest.raises(SystemExit):
        arguments([*base, "--env", "RESERVE_POOL_SCALEDOWN_SECONDS=10"])  # the dispatcher's floor is 30 s
    assert "RESERVE_POOL_SCALEDOWN_SECONDS=10 must be at least 30" in capsys.readouterr().err


def test_a_shorter_window_deletes_more_pool_sandboxes_booting() -> None:
    short, long = (simulate(Recorded, NODE, window_seconds=window) for window in (30.0, 300.0))
    booting = [sum(not ready for _, ready in s.log.deletes) for s in (short, long)]
    assert [short.result.deleted_booting, long.result.deleted_booting] == booting
    assert booting[0] > booting[1] and short.result.deleted_boot_seconds > long.result.deleted_boot_seconds
    assert broken(short) == [] and broken(long) == []
