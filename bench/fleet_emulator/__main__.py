"""Run the fleet emulator and compare its p95 with the simulator's on the same arrivals.

    uv run --all-groups python -m bench.fleet_emulator --replicas 3 --per-minute 60 --minutes 5 --apps 8

The load is the simulator's own arrivals at `--per-minute`, with one 5× burst (`--burst-at`,
`--burst-seconds`: from minute 1 for a minute by default; `--burst-seconds 0` for a flat run).

Prints the emulated deployment's starts (2xx, refused), warm share, p50/p95 time from
`POST /start` to a ready bot (a refused start counts as never ready, as in the simulator), the
create calls Fly refused, what the dispatchers measured of their own warm claims and thaws
(`/metrics`: the start → ready mean per path, the claim's and the thaw's), then the simulator's
figures for the same arrivals and settings (no forecast history: the emulated replicas start
with an empty store), and the p95's difference. Settings: the dispatcher's defaults, `--stack`
(the reserve settings of a stack file), and `--env NAME=VALUE` on top, given alike to every
replica and to the simulator.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
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
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.fleet_emulator.cloud import app_names
from bench.pinning import cpu_seconds
from bench.reserve_sim_model import THAW_REDIAL_SECONDS, WARM_CLAIM_SECONDS, Simulation
from bench.reserve_sim_providers import BY_NAME, Provider
from bench.reserve_sim_stack import load_stack
from bench.reserve_sim_traffic import SHAPES, Day, measured_day
from dispatcher.reserve.planner import PlannerSettings
from dispatcher.reserve.policy import ReserveSettings
from tests.fakes.fly import API_TOKEN, APP, BOT_IMAGE, CHANNEL_AUDIENCE, ORG
from tests.replicas.front import front
from tests.support.processes import run_dispatcher
from tests.support.redis_server import redis_server

KEY = "fleet-emulator-key-0123456789abcdef"
ADMIN_KEY = "fleet-emulator-admin-key-0123456789"  # /metrics is an admin key's
CHANNEL_PATH = "/bots/channel"
READY_GRACE_SECONDS = 45.0  # after the last start: the slowest cold start still lands
COLD_STARTS = "cold-starts.json"  # the emulated cloud's drawn cold starts, in creation order
IMAGE = BOT_IMAGE  # one the emulated registry holds (Fly refuses a create of an image it cannot pull)


def replica_env(name: str, fly_url: str, store_env: Mapping[str, str], channel_url: str,
                settings: Mapping[str, str], apps: int = 1) -> dict[str, str]:
    return {
        "MACHINES": "fly", "FLY_API_TOKEN": API_TOKEN, "FLY_APP": APP, "FLY_APPS": ",".join(app_names(apps)),
        "FLY_API_HOST": fly_url, "BOT_IMAGE": IMAGE,
        "FLY_OIDC_ISSUER": f"{fly_url}/oidc/{ORG}", "BOT_IDENTITY_AUDIENCE": CHANNEL_AUDIENCE,
        **store_env, "REPLICA_ID": name, "DISPATCHER_API_KEYS": KEY, "DISPATCHER_ADMIN_KEYS": ADMIN_KEY,
        "BOT_CHANNEL_URL": channel_url, "BOT_CHANNEL_TOKEN": "e" * 40,
        "TRANSPORTS": "webrtc", "TURN_URLS": "turn:127.0.0.1:3478?transport=udp", "TURN_SHARED_SECRET": "t" * 32,
        "MAX_SESSION_SECONDS": "2400", "MAX_CONCURRENT_SESSIONS": "2000",
        "START_RATE_PER_KEY": "1000", "START_BURST_PER_KEY": "1000", "LOG_LEVEL": "warning",
        # One API key drives every start here; its per-key bounds are not what is measured.
        "TURN_CREDENTIALS_PER_KEY": "100000",
        **settings,
    }


def start_cloud(workdir: Path, channel_url: str, seed: int, apps: int) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "bench.fleet_emulator.cloud", "--channel-url", channel_url,
               "--ready-file", str(workdir / "ready.jsonl"), "--summary-file", str(workdir / "cloud.json"),
               "--machines-file", str(workdir / "machines.jsonl"), "--cold-starts-file", str(workdir / COLD_STARTS),
               "--seed", str(seed), "--apps", str(apps)]
    log = (workdir / "cloud.log").open("w")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("port "):
        process.kill()
        raise RuntimeError(f"the emulated cloud did not start: {line!r}; see {workdir / 'cloud.log'}")
    return process, f"http://127.0.0.1:{int(line.split()[1])}"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p * len(ordered)) - 1)] if ordered else math.nan


def tail_mean(values: list[float], share: float = 0.05) -> float:
    """The mean of the slowest `share` of `values` (the starts that got a bot; refusals are counted
    apart): unlike the p95, one start more or less on the warm side moves it by that start's part,
    not from a warm claim's time to a cold start's."""
    ordered = sorted(values, reverse=True)
    slowest = ordered[:max(1, math.ceil(share * len(ordered)))] if ordered else []
    return statistics.fmean(slowest) if slowest else math.nan


def emulated(workdir: Path, starts_file: Path) -> dict[str, Any]:
    ready = {}
    with (workdir / "ready.jsonl").open() as lines:
        for line in lines:
            record = json.loads(line)
            ready[record["session_id"]] = record
    waits, refused, failed, warm = [], 0, 0, 0
    with starts_file.open() as lines:
        for line in lines:
            start = json.loads(line)
            if not 200 <= start["status"] < 300:
                refused += 1
                continue
            landed = ready.get(start["session_id"])
            if landed is None:
                failed += 1  # accepted, never ready: counts as never ready
                continue
            waits.append(landed["ready"] - start["sent"])
            warm += not landed["cold"]
    never = [math.inf] * (refused + failed)
    cloud = json.loads((workdir / "cloud.json").read_text())
    return {"starts": len(waits) + refused + failed, "refused": refused, "never_ready": failed,
            "warm": warm, "p50": percentile(waits + never, 0.5), "p95": percentile(waits + never, 0.95),
            "cloud": cloud}


def simulated(env: Mapping[str, str], day: Day, per_minute: float, seconds: float, seed: int, replica: bool,
              apps: int = 1, measured: Mapping[str, tuple[float, float]] | None = None,
              draws: int = 0) -> dict[str, Any]:
    """The simulator on the same arrivals, with `apps` apps' create limits, each its own; with
    `measured` (the run's `dispatcher_measures`), its warm claim and its thaw's re-dial are the ones
    the dispatchers measured in the run instead of the production assumptions; `draws` picks another
    stream of cold starts and resumes (0: the seed's own)."""
    base = BY_NAME["fly"]
    provider = replace(base, create_rate=base.rate_from(env), apps=apps)
    if env.get("FLY_FROZEN_FORM", "").strip() == "off":  # the replicas keep every idle bot hot: so does the model
        provider = replace(provider, resume_median_seconds=0.0)
    claim, redial = (WARM_CLAIM_SECONDS, THAW_REDIAL_SECONDS) if measured is None else run_timing(measured, base)
    result = Simulation(provider, ReserveSettings.from_env(env, "fly"), PlannerSettings.from_env(env), per_minute,
                        seed=seed, shape=SHAPES["flat"], seconds=seconds, history_days=0, handover=False,
                        replica=replica, deploy=False, day=day, claim_seconds=claim, redial_seconds=redial,
                        draws=draws).run()
    return {"starts": result.arrivals, "refused": result.refused + result.refused_cap, "warm": result.warm,
            "p50": result.percentile(0.5), "p95": result.percentile(0.95)}


def over_draws(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The model's figures over many streams of cold starts and resumes: medians, and the p95's
    5th-95th percentile range. The emulated cloud draws its cold starts from the same model but not
    the same numbers, so one stream of the model is one sample of what the emulator could meet."""
    p95s = sorted(r["p95"] for r in runs)
    return {"starts": runs[0]["starts"], "refused": statistics.median(r["refused"] for r in runs),
            "warm": statistics.median(r["warm"] for r in runs), "p50": statistics.median(r["p50"] for r in runs),
            "p95": statistics.median(p95s), "p95_range": (percentile(p95s, 0.05), percentile(p95s, 0.95))}


def reserve_pipeline(machines_file: Path) -> list[str]:
    """How long the emulated machines took from their create to their bot's admitted hello, beyond
    the cold start drawn for them: what the model's cold start leaves out (the bot's dial, the
    channel's identity check, and this host's scheduling)."""
    if not machines_file.exists():
        return []
    rows = [json.loads(line) for line in machines_file.read_text().splitlines()]
    out = []
    for kind, reserve in (("reserve", True), ("cold", False)):
        dialled = [r for r in rows if r["reserve"] is reserve and r.get("connected") and r.get("created")]
        if not dialled:
            continue
        boot_lag = [r["booted"] - r["created"] - r["boot_drawn"] for r in dialled]
        to_hello = [r["connected"] - r["booted"] for r in dialled]
        out.append(f"{kind} machines ({len(dialled)}): create → hello beyond the drawn cold start: boot seen "
                   f"{1000 * statistics.mean(boot_lag):.0f} ms late (p95 {1000 * percentile(boot_lag, 0.95):.0f}), "
                   f"booted → hello admitted {1000 * statistics.mean(to_hello):.0f} ms "
                   f"(p95 {1000 * percentile(to_hello, 0.95):.0f})")
    return out


def difference(real: Mapping[str, Any], model: Mapping[str, Any], figure: str = "p95") -> str:
    """The emulator's `figure` against the model's, as a share of the model's."""
    if math.isfinite(real[figure]) and math.isfinite(model[figure]) and model[figure] > 0:
        return f"{100 * (real[figure] - model[figure]) / model[figure]:+.0f} %"
    return "–"


def run_timing(measured: Mapping[str, tuple[float, float]], provider: Provider) -> tuple[float, float]:
    """The model's claim and re-dial from a run's own measures: the claim's mean, and the thaw's
    (resume call → back on the channel) beyond the resume model's mean, which the model draws itself.
    A figure the run did not measure keeps the model's assumption."""
    claim, claims = measured["claim"]
    thaw, thaws = measured["thaw"]
    resume_mean = provider.resume_median_seconds * math.exp(provider.resume_sigma ** 2 / 2)
    return (claim if claims else WARM_CLAIM_SECONDS,
            max(0.0, thaw - resume_mean) if thaws else THAW_REDIAL_SECONDS)


MEASURES = {  # what the model's claim and resume times are calibrated from (bench/reserve_sim_model.py)
    "start → ready, warm": ("voicefleet_start_to_ready_seconds", {"provider": "fly", "path": "warm"}),
    "start → ready, cold": ("voicefleet_start_to_ready_seconds", {"provider": "fly", "path": "cold"}),
    "claim": ("voicefleet_reserve_claim_seconds", {"provider": "fly"}),
    "thaw": ("voicefleet_reserve_thaw_seconds", {"provider": "fly"}),
}


def dispatcher_measures(urls: list[str], key: str = ADMIN_KEY) -> dict[str, tuple[float, float]]:
    """name → (mean seconds, count) of the dispatchers' own histograms, summed over the replicas."""
    texts = []
    for url in urls:
        response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        response.raise_for_status()  # /metrics wants an admin key: an empty answer must not read as "none measured"
        texts.append(response.text)
    return measures_of(texts)


def measures_line(measured: Mapping[str, tuple[float, float]]) -> str:
    return ", ".join(f"{name} {value * 1000:.1f} ms (n={count:.0f})" for name, (value, count) in measured.items())


def measures_of(texts: list[str]) -> dict[str, tuple[float, float]]:
    """The MEASURES of the replicas' /metrics texts, summed. Read with Prometheus' own parser and
    matched on the labels as a mapping: the exposition orders a sample's labels its own way (by
    name), so matching the text of a label list misses every sample, and a figure reads nan."""
    sums: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:  # summed over the releases too (one `release` label each)
                at = (sample.name, frozenset((k, v) for k, v in sample.labels.items() if k != "release"))
                sums[at] = sums.get(at, 0.0) + sample.value
    out = {}
    for label, (metric, labels) in MEASURES.items():
        wanted = frozenset(labels.items())
        count = sums.get((f"{metric}_count", wanted), 0.0)
        total = sums.get((f"{metric}_sum", wanted), 0.0)
        out[label] = (total / count if count else math.nan, count)
    return out


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--per-minute", type=float, default=60.0)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--apps", type=int, default=1, help="Fly apps the creates are spread over (FLY_APPS)")
    p.add_argument("--burst-at", type=float, default=60.0, help="seconds into the run its 5× burst starts")
    p.add_argument("--burst-seconds", type=float, default=60.0, help="the burst's length (0: no burst)")
    p.add_argument("--stack", help="the reserve settings of stacks/Pulumi.<stack>.yaml")
    p.add_argument("--planner", choices=("fleet", "replica"), default="fleet",
                   help="what the replicas run, for the simulator to replay alike")
    p.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE", help="dispatcher variables on top")
    p.add_argument("--keep", action="store_true", help="keep the run's folder (logs, records)")
    p.add_argument("--model-draws", type=int, default=40,
                   help="streams of cold starts and resumes the simulator is also run with (its median is compared)")
    args = p.parse_args(argv)
    if not 1 <= args.replicas <= 5 or not 1 <= args.apps <= 10 or args.minutes <= 0 or args.per_minute <= 0:
        p.error("--replicas 1..5, --apps 1..10, --minutes and --per-minute > 0")
    if not 1 <= args.model_draws <= 200:
        p.error("--model-draws 1..200")
    if args.burst_at < 0 or args.burst_seconds < 0:
        p.error("--burst-at and --burst-seconds must be ≥ 0")
    if bad := [item for item in args.env if "=" not in item]:
        p.error(f"--env takes NAME=VALUE, not {bad[0]!r}")
    settings = {**(load_stack(args.stack).reserve_env() if args.stack else {}),
                **dict(item.split("=", 1) for item in args.env)}
    seconds = args.minutes * 60
    spans = [(args.burst_at, min(seconds, args.burst_at + args.burst_seconds))] if args.burst_seconds else []
    day = measured_day(args.seed, args.per_minute, seconds, SHAPES["flat"], spans)
    workdir = Path(tempfile.mkdtemp(prefix="vf-fleet-emulator-"))
    schedule = workdir / "schedule.json"
    schedule.write_text(json.dumps([[t, h] for t, h in zip(day.arrival_times, day.lengths, strict=True)]))
    print(f"{args.replicas} replicas, fly ({args.apps} app(s)), {args.per_minute:g}/min for {args.minutes:g} min "
          f"(seed {args.seed}, "
          f"{len(day.arrival_times)} starts, bursts {[(round(a), round(b)) for a, b in day.bursts]}); "
          f"settings {settings or 'defaults'}; run folder {workdir}", flush=True)

    with ExitStack() as stack:
        store = stack.enter_context(redis_server(workdir))
        balancer = stack.enter_context(front())
        channel_url = f"ws://127.0.0.1:{balancer.port}{CHANNEL_PATH}"
        cloud, fly_url = start_cloud(workdir, channel_url, args.seed, args.apps)
        stack.callback(cloud.wait, 30)
        stack.callback(cloud.send_signal, signal.SIGTERM)
        replicas = []
        for n in range(args.replicas):
            (workdir / f"r-{n}").mkdir()
            env = replica_env(f"r-{n}", fly_url, store.env, channel_url, settings, args.apps)
            replicas.append(stack.enter_context(run_dispatcher(workdir / f"r-{n}", env, ready_timeout=60)))
        balancer.route_to(*(int(urlsplit(r.base_url).port or 0) for r in replicas))
        starts_file = workdir / "starts.jsonl"
        load = [sys.executable, "-m", "bench.fleet_emulator.load", "--schedule", str(schedule), "--out",
                str(starts_file), "--key", KEY, *(x for r in replicas for x in ("--replica", r.base_url))]
        began = time.monotonic()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(load, check=True, env=os.environ)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
        print(f"load sent in {time.monotonic() - began:.0f} s; waiting {READY_GRACE_SECONDS:g} s for the last bots",
              flush=True)
        time.sleep(READY_GRACE_SECONDS)
        measured = dispatcher_measures([r.base_url for r in replicas])
        ran = time.monotonic() - began
        cpu = {"replicas": sum(cpu_seconds(r.process.pid) for r in replicas),
               "cloud and its bots": cpu_seconds(cloud.pid),
               "store": cpu_seconds(store.process.pid) if store.process is not None else 0.0,
               "load generator": load_cpu}
    real = emulated(workdir, starts_file)
    replica_planner = args.planner == "replica"

    def model(draws: int, measures: Mapping[str, tuple[float, float]] | None = measured) -> dict[str, Any]:
        return simulated(settings, day, args.per_minute, seconds, args.seed, replica_planner, args.apps, measures,
                         draws)

    models = {f"seed {args.seed}'s draws, production claim and thaw": model(0, None),
              f"seed {args.seed}'s draws, this run's claim and thaw": model(0),
              f"median of {args.model_draws} draws, this run's claim and thaw":
                  over_draws([model(k) for k in range(1, args.model_draws + 1)])}
    print("| | starts | refused | never ready | warm | p50 | p95 | p95 difference |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| emulator ({args.replicas} replicas) | {real['starts']} | {real['refused']} | {real['never_ready']} | "
          f"{real['warm']} | {real['p50']:.2f} s | {real['p95']:.2f} s | |")
    for name, figures in models.items():
        spread = (f" [{figures['p95_range'][0]:.2f}–{figures['p95_range'][1]:.2f}]" if "p95_range" in figures else "")
        print(f"| simulator ({args.planner} planner, {name}) | {figures['starts']} | {figures['refused']:g} | – | "
              f"{figures['warm']:g} | {figures['p50']:.2f} s | {figures['p95']:.2f} s{spread} | "
              f"{difference(real, figures)} |")
    print(f"cloud: {real['cloud']}")
    print(f"CPU over the run's {ran:.0f} s (the host has {os.cpu_count()} cores): " + ", ".join(
        f"{name} {seconds:.0f} s ({100 * seconds / ran:.0f} % of a core)" for name, seconds in cpu.items()))
    for line in reserve_pipeline(workdir / "machines.jsonl"):
        print(line)
    print(f"the dispatchers' own measures (means over every replica): {measures_line(measured)}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
