"""Replay a day of starts against each provider through the dispatcher's own reserve sizing.

    uv run --all-groups python -m bench.reserve_sim --stack aws-prod        # the shipped stack
    uv run --all-groups python -m bench.reserve_sim --stack aws-prod --providers fly --levels 10
    uv run --all-groups python -m bench.reserve_sim --day flat --env RESERVE_MAX_IDLE=500
    uv run --all-groups python -m bench.reserve_sim --providers fly --levels 60 --fly-apps 8
    uv run --all-groups python -m bench.reserve_sim --regions 3 --stack aws-prod --levels 60 200 --jobs 2
    uv run --all-groups python -m bench.reserve_sim --stack aws-prod --providers k8s-pool k8s-pool-node-scale-up
    uv run --all-groups python -m bench.reserve_sim --providers k8s-pool --env RESERVE_POOL_SCALEDOWN_SECONDS=60

Prints a Markdown table, per provider and level (starts/min outside bursts; bursts run at 5×):
the warm share (hot or frozen claims), refused starts, p50/p95 time from POST /start to a ready
bot, the idle share of running machine time, the mean idle running ("hot") and frozen bots, their
peaks, what each tier costs a month, the machines deleted before their bot was up (a warm pool's
scale-down; none elsewhere), and the goals it meets. The model is bench/reserve_sim_model.py
(and _traffic, _providers); the sizing is the dispatcher's (dispatcher/reserve/sizer.py), with
the stack's settings (`--stack`, read from its Pulumi files) or the dispatcher's defaults, and
`--env` passing dispatcher variables on top (RESERVE_*, a provider's FLY_CREATE_RATE, ...).
`--regions 2|3` runs that many regions instead, in each mode (bench/reserve_sim_regions.py).
The `k8s-pool` rows are agent-sandbox's warm pool, which the planner sizes and the platform keeps
(bench/reserve_sim_pool.py).
bench/reserve_sim_releases.py runs the same days with a canary rolled out over them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import partial

from bench.reserve_sim_model import Simulation
from bench.reserve_sim_pool import POOL_ROWS, PoolRow, PoolSimulation
from bench.reserve_sim_providers import BY_NAME, CLOUD_PROVIDER, PROVIDERS, Provider, prices
from bench.reserve_sim_regions import MODES, RegionsRun, regions_header, regions_line
from bench.reserve_sim_report import Row, header, line, summarise
from bench.reserve_sim_stack import StackError, load_stack
from bench.reserve_sim_traffic import SHAPES
from dispatcher.reserve.planner import PlannerSettings
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.pool_sizing import POOL_SCALEDOWN_SECONDS, pool_window
from dispatcher.settings import SettingsError


@dataclass(frozen=True)
class Run:
    provider: Provider
    settings: ReserveSettings
    planner: PlannerSettings
    per_minute: float
    seed: int
    day: str
    hours: float
    history_days: int
    max_sessions: int | None
    stack: Mapping[str, object]
    replica: bool = False
    pool: PoolRow | None = None  # agent-sandbox's warm pool instead of the dispatcher's own reserve
    pool_window: float = POOL_SCALEDOWN_SECONDS  # its RESERVE_POOL_SCALEDOWN_SECONDS

    def __call__(self) -> Row:
        model = partial(PoolSimulation, self.pool, window_seconds=self.pool_window) if self.pool \
            else partial(Simulation, replica=self.replica)
        result = model(self.provider, self.settings, self.planner, self.per_minute, seed=self.seed,
                       shape=SHAPES[self.day], seconds=self.hours * 3600, history_days=self.history_days,
                       max_sessions=self.max_sessions).run()
        return summarise(result, prices(self.provider, self.stack))


def build_runs(args: argparse.Namespace, extra: dict[str, str]) -> list[Run]:
    """Every (provider, level) run the arguments ask for; bad settings raise SettingsError/StackError."""
    stack_values: Mapping[str, object] = {}
    env, max_sessions = dict(extra), args.max_sessions
    names = args.providers or [p.name for p in PROVIDERS]
    if args.stack:
        stack = load_stack(args.stack)
        stack_values, env = stack.values, {**stack.reserve_env(), **extra}
        # a GCP stack's bots are Compute Engine VMs or, with botRuntime cloudrun, Cloud Run executions
        names = args.providers or ["cloudrun" if stack.values.get("botRuntime") == "cloudrun"
                                   else CLOUD_PROVIDER[stack.cloud]]
        if max_sessions is None:
            max_sessions = stack.max_sessions
    planner = PlannerSettings.from_env(env)
    window = pool_window(env)
    runs = []
    for name in names:
        pool = POOL_ROWS.get(name)
        base = pool.provider if pool else BY_NAME[name]
        provider = replace(base, create_rate=base.rate_from(env),
                           apps=args.fly_apps if base.machines == "fly" else 1)
        # a provider without a reserve in the dispatcher: every start cold, as it runs today
        told = {"RESERVE_COLD_START_SECONDS": repr(provider.prior_seconds), **env}  # the stack's prior, as deployed
        settings = ReserveSettings.from_env(told if base.reserve else {**told, "RESERVE_MIN_IDLE": "0",
                                                                         "RESERVE_MAX_IDLE": "0"}, provider.machines)
        runs += [Run(provider, settings, planner, level, args.seed, args.day, args.hours, args.history_days,
                     max_sessions or None, stack_values, args.planner == "replica", pool, window)
                 for level in args.levels]
    return runs


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--stack", help="read the reserve settings, bot size and session cap of stacks/Pulumi.<stack>.yaml")
    p.add_argument("--providers", nargs="+", choices=[*BY_NAME, *POOL_ROWS],
                   help="default: the stack's cloud, else all")
    p.add_argument("--levels", type=float, nargs="+", default=[0.5, 10.0, 60.0], help="starts/min outside bursts")
    p.add_argument("--day", choices=list(SHAPES), default="seasonal")
    p.add_argument("--planner", choices=("fleet", "replica"), default="fleet",
                   help="fleet: the tiered fleet planner; replica: the per-replica policy the dispatcher runs today")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--history-days", type=int, default=14, help="days of starts the forecast learnt from")
    p.add_argument("--max-sessions", type=int,
                   help="refuse starts past this many sessions (default: the stack's; 0: no cap)")
    p.add_argument("--fly-apps", type=int, default=1,
                   help="Fly apps the creates are spread over (FLY_APPS), each with its own create limit")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (processes)")
    p.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE", help="dispatcher variables on top")
    p.add_argument("--regions", type=int, choices=(2, 3), help="regions eight hours apart, each mode of planning")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="with --regions: which modes")
    p.add_argument("--deploy-gap", type=float, default=0.0, metavar="MINUTES",
                   help="with --regions: deploy the regions one after another, this many minutes apart from noon "
                        "UTC (0: every region at noon at once)")
    p.add_argument("--tick-only", action="store_true",
                   help="with --regions: plan on the tick only, not also after every claim and hello as the "
                        "dispatchers do (the single-region runs always plan on the tick only)")
    return p


def arguments(argv: list[str] | None) -> tuple[argparse.Namespace, list[Run]]:
    """The command line and the runs it asks for; a bad one exits with the parser's message."""
    p = parser()
    args = p.parse_args(argv)
    if bad := [item for item in args.env if "=" not in item]:
        p.error(f"--env takes NAME=VALUE, not {bad[0]!r}")
    if args.seed < 0 or args.hours <= 0 or args.history_days < 0 or args.jobs < 1 or args.fly_apps < 1:
        p.error("--seed, --history-days must be ≥ 0, --hours > 0, --jobs and --fly-apps ≥ 1")
    if (pooled := [n for n in args.providers or () if n in POOL_ROWS]) and (args.regions or args.planner == "replica"):
        p.error(f"{pooled[0]} is sized by the fleet planner in one region: drop --regions and --planner replica")
    try:
        return args, build_runs(args, dict(item.split("=", 1) for item in args.env))
    except (SettingsError, StackError) as exc:
        p.error(str(exc))


def main(argv: list[str] | None = None) -> None:
    args, runs = arguments(argv)
    print(f"{args.planner} planner, {args.day} day, seed {args.seed}, {args.hours:g} h per run, "
          f"{args.fly_apps} Fly app(s), "
          f"forecast from {args.history_days} days; "
          f"stack: {args.stack or 'none (dispatcher defaults)'}; --env: {' '.join(args.env) or 'none'}")
    if args.regions:
        return run_regions(args, runs)
    print(header(), flush=True)
    if args.jobs == 1:
        for run in runs:
            print(line(run()), flush=True)
        return
    with ProcessPoolExecutor(args.jobs) as pool:
        for row in pool.map(Run.__call__, runs):
            print(line(row), flush=True)


def regional_runs(args: argparse.Namespace, runs: list[Run]) -> list[RegionsRun]:
    """Each run of `runs` as regions, in each mode asked for."""
    return [RegionsRun(mode, args.regions, run.provider, run.settings, run.planner, run.per_minute, run.seed,
                       run.hours, run.history_days, run.max_sessions, prices(run.provider, run.stack),
                       args.deploy_gap * 60, wakes=not args.tick_only)
            for run in runs for mode in args.modes]


def run_regions(args: argparse.Namespace, runs: list[Run]) -> None:
    regional = regional_runs(args, runs)
    provider = regional[0].provider.name if regional else "-"
    print(f"{args.regions} regions, {provider}, each region's own cap and create limit")
    print(regions_header(), flush=True)
    with ProcessPoolExecutor(args.jobs) as pool:
        for row in pool.map(RegionsRun.__call__, regional):
            print(regions_line(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
