"""What each p95 costs where the reserve cannot be frozen: the idle-cost / p95 frontier.

    uv run --all-groups python -m bench.reserve_frontier --stack aws-prod --levels 0.5 10 60 --jobs 2

Runs the simulator (bench/reserve_sim.py, same model, same seed) over a grid of the two knobs
that buy warm starts with running idle machines, RESERVE_MIN_IDLE and RESERVE_SERVICE_LEVEL,
on top of the stack's settings (and `--env`), and prints per level the runs no other run beats on
both idle cost and p95 (then on the warm share): the frontier. The stack's own setting is run
too and marked, on the frontier or not.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from bench.reserve_sim import Run, build_runs, parser
from bench.reserve_sim_report import Row, seconds
from bench.reserve_sim_stack import StackError
from dispatcher.settings import SettingsError

MIN_IDLE = (0, 1, 2, 3, 4, 6)
SERVICE_LEVELS = (0.8, 0.9, 0.95, 0.99, 0.999)


@dataclass(frozen=True)
class Point:
    label: str
    row: Row

    def beats(self, other: Point) -> bool:
        """At most the cost and the p95 of `other`, at least its warm share, and better in one."""
        a, b = self.row, other.row
        no_worse = a.hot_month <= b.hot_month and a.p95 <= b.p95 and a.warm >= b.warm
        return no_worse and (a.hot_month < b.hot_month or a.p95 < b.p95 or a.warm > b.warm)


def frontier(points: list[Point]) -> list[Point]:
    """The points nothing beats, cheapest first; of settings that did exactly as well, the first."""
    best: dict[tuple[float, float, float], Point] = {}
    for p in points:
        if not any(q.beats(p) for q in points):
            best.setdefault((round(p.row.hot_month, 2), p.row.p95, p.row.warm), p)
    return sorted(best.values(), key=lambda p: p.row.hot_month)


def grid(args: argparse.Namespace, extra: dict[str, str]) -> dict[str, list[Run]]:
    """Label → its runs (one per level): the stack's own setting first."""
    runs = {"stack": build_runs(args, extra)}
    for min_idle in MIN_IDLE:
        for level in SERVICE_LEVELS:
            env = {**extra, "RESERVE_MIN_IDLE": str(min_idle), "RESERVE_SERVICE_LEVEL": str(level)}
            runs[f"min {min_idle}, level {level:g}"] = build_runs(args, env)
    return runs


def main(argv: list[str] | None = None) -> None:
    p = parser()
    p.description = (__doc__ or "").splitlines()[0]
    args = p.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.env if "=" in item)
    try:
        runs = grid(args, extra)
    except (SettingsError, StackError) as exc:
        p.error(str(exc))
    flat = [(label, run) for label, level_runs in runs.items() for run in level_runs]
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(Run.__call__, [run for _, run in flat]))
    print(f"{args.day} day, seed {args.seed}, {args.hours:g} h per run; stack: {args.stack or 'none'}; "
          f"--env: {' '.join(args.env) or 'none'}")
    for provider in dict.fromkeys(run.provider.name for _, run in flat):
        for level in args.levels:
            points = [Point(label, row) for (label, run), row in zip(flat, rows, strict=True)
                      if run.provider.name == provider and run.per_minute == level]
            stack = next(point for point in points if point.label == "stack")
            best = frontier(points)
            on = not any(point.beats(stack) for point in points)
            print(f"\n{provider} at {level:g}/min: the stack's setting is {'on' if on else 'OFF'} the frontier\n")
            print("| setting | idle $/month | mean hot idle | p95 s | warm |\n|---|---|---|---|---|")
            for point in best if stack in best else [*best, stack]:  # the stack's row last when off it
                r = point.row
                print(f"| {point.label} | ${r.hot_month:,.0f} | {r.mean_hot:.1f} | {seconds(r.p95)} | {r.warm:.1%} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])

