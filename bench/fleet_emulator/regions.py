"""The fleet emulator with three regions on loopback, against the regional simulator.

    uv run --all-groups python -m bench.fleet_emulator.regions --per-minute 20 --minutes 3

Each region is a deployment of its own, as one region is in the emulator (bench/fleet_emulator):
its store, its emulated Fly cloud with its light bots, and a real dispatcher (`python -m
dispatcher`) with `REGION`, `REGIONS` and `REGION_SECRET`. Regions reach each other through
user-space delaying relays (tests/support/delay_relay.py), a link per pair: eu–us 75 ms, eu–ap
120 ms, us–ap 150 ms, the simulator's round trips. Each region's callers send the simulator's own
arrivals to their region's dispatcher with `maxWaitSeconds` 3, so a start that finds no warm bot
at home spills to the nearest region with one; eu's carry a 5× burst (`--burst-at`,
`--burst-seconds`), past Fly's create limit there.

Prints both sides' starts, refusals, warm share, p50/p95 time from `POST /start` to a ready bot
(over every region; a refused start counts as never ready), the share served outside the region
the caller reached, and the p95's difference; the simulator runs `sun` (what the dispatchers do:
spill-over by the peers' polled answers, the planners reading each other, planning after every
claim and hello) on the same arrivals, given the run's warm claim, its callers' time to ask again
after a refusal, how long each dispatcher planned before its first start, and each region's cold
starts as its emulated cloud drew them (sessions' and reserve's apart, each in creation order),
over `--model-draws` streams of resumes (its median compared); for context, spilling by
the peers' state at once, and over streams of cold starts of its own. `--keep` keeps the run's
folder; `--compare FOLDER` with the run's own arguments compares it again without a run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.fleet_emulator.__main__ import (
    COLD_STARTS,
    KEY,
    READY_GRACE_SECONDS,
    difference,
    dispatcher_measures,
    measures_line,
    over_draws,
    percentile,
    replica_env,
    run_timing,
    start_cloud,
    tail_mean,
)
from bench.fleet_emulator.cloud import SUSPEND_SECONDS
from bench.reserve_sim_model import GivenColdStarts
from bench.reserve_sim_providers import BY_NAME
from bench.reserve_sim_regions import ROUND_TRIPS, World
from bench.reserve_sim_traffic import SHAPES, Day, measured_day
from dispatcher.regions.peers import POLL_SECONDS
from dispatcher.reserve.planner import PlannerSettings
from dispatcher.reserve.policy import ReserveSettings
from tests.support.delay_relay import delayed
from tests.support.ports import free_port
from tests.support.processes import run_dispatcher
from tests.support.redis_server import redis_server

NAMES = ("eu", "us", "ap")
MAX_WAIT_SECONDS = 3.0
SECRET = "emulated-regions-secret-0123456789abcdef"
MEASURES = "measures.json"  # the dispatchers' own measures, kept with the run (--compare)


def days(seed: int, per_minute: float, seconds: float, burst: tuple[float, float] | None) -> list[Day]:
    """Each region's starts: its own stream (seed × 10 + its index, as the regional simulator
    draws it), a flat day, eu's with the burst."""
    return [measured_day(seed * 10 + i, per_minute, seconds, SHAPES["flat"], [burst] if burst and i == 0 else [])
            for i in range(len(NAMES))]


def emulated(folder: Path) -> dict[str, Any]:
    ready: dict[str, dict[str, Any]] = {}
    for name in NAMES:
        for line in (folder / name / "ready.jsonl").read_text().splitlines():
            record = json.loads(line)
            ready[record["session_id"]] = record
    waits, refused, failed, warm, spilled, asked_again = [], 0, 0, 0, 0, []
    for name in NAMES:
        for line in (folder / f"starts-{name}.jsonl").read_text().splitlines():
            start = json.loads(line)
            if "refused_after" in start:
                asked_again.append(start["refused_after"])
            landed = ready.get(start.get("session_id") or "")
            if not 200 <= start["status"] < 300 or landed is None:
                refused += not 200 <= start["status"] < 300
                failed += 200 <= start["status"] < 300
                continue
            waits.append(landed["ready"] - start["sent"])
            warm += not landed["cold"]
            spilled += start.get("region") not in (None, name)
    never = [math.inf] * (refused + failed)
    starts = len(waits) + refused + failed
    return {"starts": starts, "refused": refused, "never_ready": failed, "warm": warm,
            "p50": percentile(waits + never, 0.5), "p95": percentile(waits + never, 0.95),
            "tail": tail_mean(waits), "spilled": spilled / max(1, starts),
            "refused_after": statistics.median(asked_again) if asked_again else None}


def cloud_cold_starts(folder: Path) -> list[GivenColdStarts]:
    """Each region's emulated cloud's drawn cold starts, the reserve's and the sessions', each in
    creation order."""
    out = []
    for name in NAMES:
        creates = json.loads((folder / name / COLD_STARTS).read_text())
        out.append(GivenColdStarts([s for s, session in creates if not session],
                                   [s for s, session in creates if session]))
    return out


def head_starts(folder: Path) -> list[float]:
    """How long each region's dispatcher planned before its callers' first start: from its first
    reserve launch (its planner's first tick) to when its load generator began (its first start's
    send less that start's offset). The dispatchers start one after another and poll their peers a
    few seconds before the load, so each region's first bots are up, or on their way, when the
    first caller comes."""
    out = []
    for name in NAMES:
        sent = min(json.loads(line)["sent"] for line in (folder / f"starts-{name}.jsonl").read_text().splitlines())
        began = sent - json.loads((folder / f"schedule-{name}.json").read_text())[0][0]
        machines = [json.loads(line) for line in (folder / name / "machines.jsonl").read_text().splitlines()]
        first = min((m["created"] for m in machines if m["reserve"]), default=began)
        out.append(max(0.0, began - first))
    return out


def simulated(env: Mapping[str, str], regional_days: list[Day], per_minute: float, seconds: float, seed: int,
              measured: Mapping[str, tuple[float, float]] | None, draws: int,
              cold_starts: list[GivenColdStarts] | None = None, polled: bool = True,
              refusal_seconds: float | None = None, head_start: list[float] | None = None) -> dict[str, Any]:
    """`sun` on the regions' arrivals; `cold_starts` (cloud_cold_starts): each region's cold starts
    as its emulated cloud drew them, instead of the model's stream `draws`;
    `polled`: a start spills by the peers' answers to the dispatcher's polls (every POLL_SECONDS),
    as the dispatchers do, else by the peers' state at once; `refusal_seconds`: how long the
    callers took to ask again after a refusal (the run's median), else at once; `head_start`: how
    long each region's planner ran before its first start (head_starts), else none."""
    base = BY_NAME["fly"]
    # Bots frozen in the run's cloud's time, the dispatchers' planners told the same (cloud.py).
    provider = replace(base, create_rate=base.rate_from(env),
                       suspend_seconds=SUSPEND_SECONDS)
    if env.get("FLY_FROZEN_FORM", "").strip() == "off":
        provider = replace(provider, resume_median_seconds=0.0)
    claim, redial = run_timing(measured, base) if measured is not None else (0.3, 0.3)
    world = World("sun", provider, ReserveSettings.from_env(env, "fly"), PlannerSettings.from_env(env), per_minute,
                  seed=seed, seconds=seconds, history_days=0, max_sessions=None, days=regional_days,
                  handover=False, deploy=False, claim_seconds=claim, redial_seconds=redial, draws=draws,
                  cold_starts=cold_starts, poll_seconds=POLL_SECONDS if polled else None,
                  refusal_seconds=refusal_seconds, head_starts=head_start, wakes=True,
                  ready_at_peer=True)
    results = world.run()
    times = sorted(t for r in results for t in r.time_to_ready)
    refused = sum(r.refused + r.refused_cap for r in results)
    every = times + [math.inf] * refused
    starts = sum(r.arrivals for r in results)
    return {"starts": starts, "refused": refused, "warm": sum(r.warm for r in results),
            "p50": percentile(every, 0.5), "p95": percentile(every, 0.95), "tail": tail_mean(times),
            "spilled": sum(region.spilled_out for region in world.regions) / max(1, starts),
            "drawn_cold_starts": sum(r.drawn_cold_starts for r in results),
            "spill_refused": sum(region.spill_refused for region in world.regions)}


def run_regions(folder: Path, settings: Mapping[str, str], regional_days: list[Day], seed: int,
                ) -> dict[str, tuple[float, float]]:
    """The three regions, loaded; returns the dispatchers' own measures (dispatcher_measures)."""
    with ExitStack() as stack:
        ports = {name: free_port() for name in NAMES}
        by_source: dict[str, dict[int, float]] = {name: {} for name in NAMES}
        relays = {name: stack.enter_context(delayed(ports[name], 0.0, by_source[name])) for name in NAMES}
        listing = ",".join(f"{name}=http://127.0.0.1:{port}" for name, port in relays.items())
        dispatchers = {}
        for i, name in enumerate(NAMES):
            (folder / name).mkdir()
            store = stack.enter_context(redis_server(folder / name))
            channel = f"ws://127.0.0.1:{ports[name]}/bots/channel"
            cloud, fly_url = start_cloud(folder / name, channel, seed * 10 + i, 1)
            stack.callback(cloud.wait, 30)
            stack.callback(cloud.send_signal, signal.SIGTERM)
            env = {**replica_env(name, fly_url, store.env, channel, settings),
                   "REGION": name, "REGIONS": listing, "REGION_SECRET": SECRET}
            dispatchers[name] = stack.enter_context(run_dispatcher(folder / name, env, ready_timeout=60,
                                                                   port=ports[name]))
        for there in NAMES:
            for here in NAMES:
                if here != there:
                    by_source[there][dispatchers[here].process.pid] = ROUND_TRIPS[frozenset((here, there))]
        time.sleep(3)  # a few polls of the peers over their links before the first start
        loads = []
        for name, day in zip(NAMES, regional_days, strict=True):
            schedule = folder / f"schedule-{name}.json"
            schedule.write_text(json.dumps([[t, h] for t, h in zip(day.arrival_times, day.lengths, strict=True)]))
            loads.append(subprocess.Popen(
                [sys.executable, "-m", "bench.fleet_emulator.load", "--schedule", str(schedule),
                 "--out", str(folder / f"starts-{name}.jsonl"), "--key", KEY, "--max-wait", str(MAX_WAIT_SECONDS),
                 "--replica", dispatchers[name].base_url], env=os.environ))
        for load in loads:
            if load.wait() != 0:
                raise RuntimeError(f"a load generator failed; see {folder}")
        time.sleep(READY_GRACE_SECONDS)
        measured = dispatcher_measures([d.base_url for d in dispatchers.values()])
        (folder / MEASURES).write_text(json.dumps(measured))
        return measured


def same_arrivals(folder: Path, regional_days: list[Day]) -> bool:
    """Whether a kept run's folder was sent these arrivals (its schedules)."""
    return all(json.loads((folder / f"schedule-{name}.json").read_text())
               == [[t, h] for t, h in zip(day.arrival_times, day.lengths, strict=True)]
               for name, day in zip(NAMES, regional_days, strict=True))


def model_line(name: str, model: Mapping[str, Any], real: Mapping[str, Any]) -> str:
    low, high = model["p95_range"]
    return (f"| simulator ({name}) | {model['starts']} | {model['refused']:g} | – | {model['warm']:g} | "
            f"{model['p50']:.2f} s | {model['p95']:.2f} s [{low:.2f}–{high:.2f}] | {model['tail']:.2f} s | "
            f"{model['spilled']:.1%} | {difference(real, model)} | {difference(real, model, 'tail')} |")


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--per-minute", type=float, default=20.0, help="each region's starts a minute outside the burst")
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--burst-at", type=float, default=60.0, help="seconds into the run eu's 5× burst starts")
    p.add_argument("--burst-seconds", type=float, default=60.0, help="its length (0: no burst)")
    p.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE", help="dispatcher variables, every region")
    p.add_argument("--model-draws", type=int, default=20)
    p.add_argument("--keep", action="store_true", help="keep the run's folder (logs, records)")
    p.add_argument("--compare", type=Path, metavar="FOLDER",
                   help="no run: compare a kept run's folder (--keep) again, given the run's own arguments")
    args = p.parse_args(argv)
    if not 0 < args.minutes <= 10 or not 0 < args.per_minute <= 60 or not 1 <= args.model_draws <= 100:
        p.error("--minutes 0..10, --per-minute 0..60 a region (a 2-core host), --model-draws 1..100")
    if bad := [item for item in args.env if "=" not in item]:
        p.error(f"--env takes NAME=VALUE, not {bad[0]!r}")
    settings = dict(item.split("=", 1) for item in args.env)
    seconds = args.minutes * 60
    burst = (args.burst_at, min(seconds, args.burst_at + args.burst_seconds)) if args.burst_seconds else None
    regional_days = days(args.seed, args.per_minute, seconds, burst)
    if args.compare is not None:
        if not (args.compare / MEASURES).exists() or not same_arrivals(args.compare, regional_days):
            p.error(f"{args.compare} is not a kept run (--keep) of these arguments: give the run's own "
                    "--seed, --per-minute, --minutes and burst")
        folder, measured = args.compare, json.loads((args.compare / MEASURES).read_text())
    else:
        folder = Path(tempfile.mkdtemp(prefix="vf-fleet-regions-"))
    print(f"3 regions ({', '.join(NAMES)}), fly, {args.per_minute:g}/min each for {args.minutes:g} min, eu's burst "
          f"{burst}, starts {[len(d.arrival_times) for d in regional_days]}, settings {settings or 'defaults'}; "
          f"run folder {folder}", flush=True)
    if args.compare is None:
        measured = run_regions(folder, settings, regional_days, args.seed)
    real = emulated(folder)
    cloud = cloud_cold_starts(folder)
    ahead = head_starts(folder)

    def model(cold_starts: list[GivenColdStarts] | None, polled: bool = True) -> dict[str, Any]:
        runs = [simulated(settings, regional_days, args.per_minute, seconds, args.seed, measured, k, cold_starts,
                          polled, real["refused_after"], ahead) for k in range(1, args.model_draws + 1)]
        return {**over_draws(runs), **{figure: statistics.median(m[figure] for m in runs)
                                       for figure in ("tail", "spilled", "drawn_cold_starts", "spill_refused")}}

    own, at_once, streams = model(cloud), model(cloud, polled=False), model(None)
    print("| | starts | refused | never ready | warm | p50 | p95 | slowest 5 % of the ready, mean | spilled "
          "| p95 difference | slowest 5 % difference |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| emulator (3 regions) | {real['starts']} | {real['refused']} | {real['never_ready']} | {real['warm']} | "
          f"{real['p50']:.2f} s | {real['p95']:.2f} s | {real['tail']:.2f} s | {real['spilled']:.1%} | | |")
    print(model_line(f"sun, the emulated clouds' own cold starts, median of {args.model_draws} resume draws",
                     own, real))
    print(model_line("the same, spilling by the peers' state at once, not by their polled answers", at_once, real))
    print(model_line(f"sun, median of {args.model_draws} streams of cold starts of its own", streams, real))
    print(f"starts the model spilled to a peer whose warm bots had gone since its answer (refused there, "
          f"asked again at home): {own['spill_refused']:g}")
    print(f"the emulated clouds drew {[(len(c.reserve), len(c.sessions)) for c in cloud]} cold starts (reserve, "
          f"sessions; eu, us, ap); the model launched past them {own['drawn_cold_starts']:g} times (drawing those)")
    print(f"each region's planner ran {', '.join(f'{h:.1f}' for h in ahead)} s before its first start "
          "(eu, us, ap; the model's too)")
    again = real["refused_after"]
    print(f"callers refused for want of a warm bot asked again {again if again is None else f'{again:.3f} s'} after "
          f"(median; the model's callers too)")
    print(f"the dispatchers' own measures (means over the regions): {measures_line(measured)}")
    if not args.keep and args.compare is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
