"""A diurnal day's peak of concurrent calls through the dispatcher's real cell choice, against each
cell's provider quotas, with the cells the plan computes (or as many as asked).

    .venv/bin/python -m bench.cells_peak --provider ecs --peak 100000 --plan
    .venv/bin/python -m bench.cells_peak --provider ecs --peak 100000 --plan --lose-cell-at-peak
    .venv/bin/python -m bench.cells_peak --provider ecs --peak 100000 --cells 4     # short of the plan

The peak is split evenly over `--regions` regions on the same clock; one region is simulated start by
start (bench/cells_peak_model.py), the one that loses a cell with `--lose-cell-at-peak`, and the fleet's
figures are that region's times the regions (the others carry the same traffic without the loss).
Prints a Markdown table: the peak in calls and launches a second, the cells a region, p50/p95 from a
start to its bot ready, refused starts, the idle share of machine time, and the ceiling the day reached
beside the plan's for those cells (stacks/config/ceiling.py). docs/performance.md has the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass

import numpy as np

from bench.cells_peak_model import CALL_SECONDS, PEAK_SECONDS, Outcome, PeakSimulation
from bench.cells_peak_plan import PLANS, PlannedCell
from bench.reserve_sim_traffic import DAY
from dispatcher.machines.cell_list import MAX_CELLS

GOAL_P95_SECONDS, GOAL_IDLE = 3.0, 0.15


@dataclass(frozen=True)
class Figures:
    peak_calls: int  # calls at once at the day's busiest second, the fleet's
    offered_per_second: float  # starts a second asked at the busiest minute, the fleet's
    launched_per_second: float  # machines created a second at the busiest minute, the fleet's
    p50: float
    p95: float
    refused: int  # the fleet's (the simulated region's × the regions)
    refused_why: str
    dropped: int
    idle: float
    starts: int


def figures(out: Outcome, regions: int) -> Figures:
    served = ~np.isnan(out.created)
    ready, ends, created = out.ready[served], out.ends[served], out.created[served]
    calls = _most_at_once(ready, np.maximum(ends, ready))
    wait = ready - out.starts[served]
    machine = ends - created
    idle = np.minimum(ready, ends) - created
    refused = int((~served).sum())
    why = ", ".join(f"{code} {count * regions:,}" for code, count in out.refused.most_common())
    return Figures(calls * regions, _busiest_minute(out.starts) * regions, _busiest_minute(created) * regions,
                   float(np.percentile(wait, 50)) if len(wait) else float("nan"),
                   float(np.percentile(wait, 95)) if len(wait) else float("nan"), refused * regions, why or "none",
                   out.dropped, float(idle.sum() / machine.sum()) if machine.sum() else 0.0, len(out.starts) * regions)


def _most_at_once(begins: np.ndarray, ends: np.ndarray) -> int:
    """The most intervals [begin, end) open at once, counted per second."""
    if not len(begins):
        return 0
    size = int(max(ends.max(), begins.max())) + 2
    diff = np.zeros(size + 1)
    np.add.at(diff, begins.astype(int), 1)
    np.add.at(diff, ends.astype(int), -1)
    return int(np.cumsum(diff).max())


def _busiest_minute(times: np.ndarray) -> float:
    if not len(times):
        return 0.0
    return float(np.bincount((times // 60).astype(int)).max() / 60.0)


def table(provider: str, plan: PlannedCell, cells: int, planned: int, regions: int, found: Figures, lost: bool) -> str:
    predicted = min(plan.sessions * cells * regions, _asked(found))
    reached = found.peak_calls
    within = abs(reached - predicted) / predicted if predicted else 0.0
    goals = [f"p95 ≤ {GOAL_P95_SECONDS:g} s: {'met' if found.p95 <= GOAL_P95_SECONDS else 'missed'}",
             f"0 refused: {'met' if found.refused == 0 else 'missed'}",
             f"idle ≤ {GOAL_IDLE:.0%}: {'met' if found.idle <= GOAL_IDLE else 'missed'}",
             f"ceiling within 10 % of the plan's: {'met' if within <= 0.10 else 'missed'} ({within:.1%})"]
    rows = [
        ("provider", f"{provider} ({plan.provider.name}); one cell: {plan.sessions:,} sessions ({plan.how})"),
        ("regions × cells", f"{regions} × {cells} (the plan: {planned:,} a region)"
         + (f"; one cell lost at {PEAK_SECONDS / 3600:g}:00, {found.dropped:,} calls with it" if lost else "")),
        ("counted", f"one region start by start, × {regions} for the fleet"
         + (" (as if every region lost a cell: an upper bound on the loss's refusals)" if lost else "")),
        ("starts in the day", f"{found.starts:,}"),
        ("peak concurrent calls", f"{reached:,}"),
        ("starts/s at the busiest minute (asked)", f"{found.offered_per_second:,.1f}"),
        ("launches/s at the busiest minute (made)", f"{found.launched_per_second:,.1f}"),
        ("p50 / p95 start → bot ready", f"{found.p50:.1f} s / {found.p95:.1f} s"),
        ("refused", f"{found.refused:,} ({found.refused_why})"),
        ("idle share of machine time", f"{found.idle:.2%}"),
        ("ceiling reached vs the plan's", f"{reached:,} vs {predicted:,} ({within:.1%} apart)"),
        ("goals", "; ".join(goals)),
    ]
    return "\n".join(["| figure | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)])


def _asked(found: Figures) -> int:
    """The peak the traffic asks for: the offered starts' Little's-law load at its busiest minute."""
    return int(round(found.offered_per_second * CALL_SECONDS))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--provider", choices=list(PLANS), default="ecs")
    p.add_argument("--peak", type=int, default=100_000, help="calls at once at the day's peak, the whole fleet")
    p.add_argument("--regions", type=int, default=3)
    cells = p.add_mutually_exclusive_group()
    cells.add_argument("--cells", type=int, help="cells a region (default: --plan)")
    cells.add_argument("--plan", action="store_true", help="the cells a region the plan computes for the peak")
    p.add_argument("--lose-cell-at-peak", action="store_true", help="one cell stops answering at the day's peak")
    p.add_argument("--hours", type=float, default=24.0, help="of the day, from midnight UTC")
    p.add_argument("--seed", type=int, default=7)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.peak < 1 or args.regions < 1 or not 0 < args.hours <= 24:
        print("--peak and --regions must be at least 1, --hours within (0, 24]", file=sys.stderr)
        return 2
    plan = PLANS[args.provider]()
    planned = plan.cells_for(args.peak / args.regions)
    cells = args.cells if args.cells is not None else planned
    if not 1 <= cells <= MAX_CELLS:
        print(f"{args.provider}: {cells:,} cells a region asked; the dispatcher takes 1 to {MAX_CELLS} "
              f"(ECS_CELLS, CLOUDRUN_CELLS: dispatcher/machines/cell_list.py). The plan's ceiling for one cell is "
              f"{plan.sessions:,} sessions ({plan.how}): run with --cells {MAX_CELLS} to see the most a region "
              f"reaches, or a lower --peak", file=sys.stderr)
        return 2
    sim = PeakSimulation(plan, cells, args.peak / args.regions, seed=args.seed, seconds=min(args.hours * 3600, DAY),
                         lose_at=PEAK_SECONDS if args.lose_cell_at_peak else None)
    out = asyncio.run(sim.run())
    print(table(args.provider, plan, cells, planned, args.regions, figures(out, args.regions), args.lose_cell_at_peak))
    return 0


if __name__ == "__main__":
    sys.exit(main())
