"""What a `POST /start` costs the dispatcher, step by step, in CPU: one checkout or two compared.

    uv run --all-groups python -m bench.start_path --rounds 3 [--other /path/to/another/checkout] [--profile]

Each run is a fresh process (bench/start_path_worker.py, run with PYTHONPATH at the checkout
measured) that builds the dispatcher's app from the environment as `python -m dispatcher` does,
runs its lifespan, and calls `POST /start` through ASGI directly, so the figure is the dispatcher's
route and the provider calls it makes, without the HTTP server's parsing (bench.dispatch_burst
measures that side by side with the Fly example). The providers are bench/fast_fakes.py (Daily and
Fly, a few ms per call) in a process of its own, reset before every run so each meets the same
fleet. Runs alternate between checkouts and arms, each pinned to one CPU, the fakes to the other.

Arms:
- `plain`: Fly, one API key, nothing else configured.
- `features`: the same with every start-path feature in use: recording and transcripts kept
  (`RECORDING=on`, a local folder), admin keys and a runtime key as the caller (made through
  `POST /keys`), a runtime capacity value for that key and its four budgets (`PATCH /capacity`),
  a bot channel token (cold secrets held for the bot), the key's session share.
- `unbudgeted`: `features` without the key's budgets (`--arms features,unbudgeted`: what they cost).
- `shared`: `features` with the replicas' store, a redis-server as the AWS stack's store user
  (tests/support/redis_server.py; its own CPU is not the worker's, the store's round trips are).

CPU per start is the worker's own process time over the measured burst (not wall time: the host
is shared); wall per start is printed beside it to show the load. `--profile` adds, for each
checkout, cProfile's breakdown of a further burst: the CPU of each named step (cumulative, what
it calls included), each owner's share of the own time, and the costliest functions. cProfile's
overhead inflates every figure in it alike: read them as shares, and the unprofiled CPU column
as the cost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.fakes_process import FakesProcess
from bench.pinning import pinned
from dispatcher.store.client import DEFAULT_PREFIX
from tests.support.redis_server import redis_server

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("start_path_worker.py")
KEY, ADMIN_KEY, UNLIMITED = "bench-key", "bench-admin", "1000000"
DISPATCHER_CPU, HARNESS_CPU = 0, 1
WORKER_SECONDS = 300  # a run takes well under a minute, two on a loaded host
# The features arm's runtime values: the runtime key's share, and every kind of budget for it (each
# checked at every start; none reached).
CAPACITY = {"key.bench-runtime": 0.9, "budget.bench-runtime.minutes-day": 10**8,
            "budget.bench-runtime.minutes-month": 10**8, "budget.bench-runtime.spend-month": 10**8,
            "budget.bench-runtime.sessions": 10**8}

# The named steps of a start: (label, a fragment of the function's file, its name). Cumulative CPU:
# a step's figure includes the steps inside it (indented).
STEPS = (
    ("the whole request (middleware, routing, the route, the answer)", "/dispatcher/api/cors.py", "__call__"),
    ("  the route (`start`)", "/dispatcher/api/routers/sessions.py", "start"),
    ("    auth: the key's caller", "/dispatcher/api/routers/sessions.py", "authenticated"),
    ("    the key's start rate, region placement", "/dispatcher/api/routers/sessions.py", "_placed"),
    ("    the start's recording wish vs its policy", "/dispatcher/api/routers/sessions.py", "asked_recording"),
    ("    the session service's start", "/dispatcher/sessions/service.py", "start"),
    ("      admission: the key's share", "/dispatcher/sessions/key_share.py", "slot"),
    ("      admission: the session cap", "/dispatcher/sessions/admission.py", "slot"),
    ("      the recording plan", "/dispatcher/artifacts/recordings.py", "plan_for"),
    ("      the room's tokens (HS256)", "/dispatcher/sessions/service.py", "_grant"),
    ("      the bot's values held for its hello", "/dispatcher/sessions/cold_secrets.py", "hold"),
    ("      the room (one Daily call)", "/dispatcher/sessions/service.py", "_create_room"),
    ("      the machine (one Fly call)", "/dispatcher/sessions/service.py", "_traced_launch"),
    ("      the timeline's notes", "/dispatcher/sessions/timeline.py", "note"),
    ("    the answer's fields", "/dispatcher/api/routers/sessions.py", "_session_fields"),
    ("  FastAPI's response check and encoding", "/fastapi/routing.py", "serialize_response"),
    ("admission's recount (once a second, not per start)", "/dispatcher/sessions/admission.py", "_count"),
)


FEATURED = ("features", "unbudgeted", "shared")


def env_for(arm: str, fakes: str, folder: str, store: dict[str, str]) -> dict[str, str]:
    env = {
        "DAILY_API_KEY": "bench-daily", "DAILY_API_URL": f"{fakes}/v1", "DAILY_RATE": UNLIMITED,
        "DAILY_BURST": UNLIMITED, "FLY_API_TOKEN": "bench-fly", "FLY_APP": "bench", "FLY_API_HOST": fakes,
        "BOT_IMAGE": "registry.fly.io/bench@sha256:" + "a" * 64, "FLY_CREATE_RATE": UNLIMITED,
        "FLY_CREATE_BURST": UNLIMITED, "MACHINES": "fly", "HOST": "127.0.0.1", "PORT": "0",
        "DISPATCHER_API_KEYS": KEY, "MAX_CONCURRENT_SESSIONS": UNLIMITED, "START_RATE_PER_KEY": UNLIMITED,
        "START_BURST_PER_KEY": UNLIMITED, "REAPER_INTERVAL_SECONDS": "0", "LOG_LEVEL": "warning",
    }
    if arm in FEATURED:
        env |= {"DISPATCHER_ADMIN_KEYS": ADMIN_KEY, "RECORDING": "on", "RECORDING_TRANSCRIPT": "on",
                "RECORDING_DESTINATION": folder, "BOT_CHANNEL_TOKEN": "bench-channel-" + "c" * 32,
                "BOT_CHANNEL_URL": "wss://dispatcher.bench.invalid/bot", "FLY_ORG": "bench"}
    if arm == "shared":  # each run's keys apart, under the prefix the store's user may touch
        env |= store | {"REDIS_KEY_PREFIX": f"{DEFAULT_PREFIX}bench-{secrets.token_hex(4)}:"}
    return env


def plan_for(arm: str, fakes: str, folder: str, args: argparse.Namespace, profile: bool,
             store: dict[str, str] | None = None) -> dict[str, Any]:
    plan: dict[str, Any] = {"env": env_for(arm, fakes, folder, store or {}), "key": KEY, "body": {"body": {}},
                            "warm_up": args.warm_up, "starts": args.starts, "concurrency": args.concurrency,
                            "repeats": args.repeats, "profile": profile, "top": args.top,
                            "steps": [[file, name] for _label, file, name in STEPS]}
    if arm in FEATURED:
        unbudgeted = {k: v for k, v in CAPACITY.items() if not k.startswith("budget.")}
        capacity = unbudgeted if arm == "unbudgeted" else CAPACITY
        plan |= {"admin_key": ADMIN_KEY, "runtime_key": True, "capacity": capacity}
    return plan


def run_worker(checkout: Path, plan: dict[str, Any]) -> dict[str, Any] | None:
    """The worker's figures; None for a worker that stopped making progress (seen now and then with
    the `shared` arm on a loaded host, not diagnosed): the run is left out and said so."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")} | {"PYTHONPATH": str(checkout)}
    try:
        out = subprocess.run(pinned([sys.executable, str(WORKER)], DISPATCHER_CPU), input=json.dumps(plan),
                             cwd=checkout, env=env, capture_output=True, text=True, timeout=WORKER_SECONDS)
    except subprocess.TimeoutExpired:
        print(f"{checkout}: the worker did not finish in {WORKER_SECONDS} s: its run is left out", file=sys.stderr)
        return None
    if out.returncode != 0:
        raise RuntimeError(f"{checkout}: the worker failed: {out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.3f} [{min(values):.3f}–{max(values):.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--arms", default="plain,features")
    parser.add_argument("--other", type=Path, help="another checkout, measured alternately")
    parser.add_argument("--starts", type=int, default=1000, help="starts per measured burst")
    parser.add_argument("--repeats", type=int, default=2, help="measured bursts per run")
    parser.add_argument("--warm-up", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.005, help="seconds per provider call")
    parser.add_argument("--profile", action="store_true", help="and a profiled burst per checkout and arm")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    checkouts = [ROOT] + ([args.other.resolve()] if args.other else [])
    arms = args.arms.split(",")
    cpu: dict[tuple[str, Path], list[float]] = {}
    wall: dict[tuple[str, Path], list[float]] = {}
    profiles: dict[tuple[str, Path], dict[str, Any]] = {}
    load = [os.getloadavg()[0]]
    with (FakesProcess(latency=args.latency, cpu=HARNESS_CPU) as fakes, tempfile.TemporaryDirectory() as folder,
          contextlib.ExitStack() as stack):
        store = stack.enter_context(redis_server(Path(folder))).env if "shared" in arms else {}
        for round_ in range(args.rounds):
            for arm in arms:
                for checkout in checkouts if round_ % 2 == 0 else checkouts[::-1]:
                    fakes.reset()
                    profile = args.profile and round_ == 0
                    result = run_worker(checkout, plan_for(arm, fakes.url, folder, args, profile, store))
                    if result is None:
                        continue
                    cpu.setdefault((arm, checkout), []).extend(result["cpu_ms"])
                    wall.setdefault((arm, checkout), []).extend(result["wall_ms"])
                    if profile:
                        profiles[(arm, checkout)] = result
                    print(f"round {round_ + 1}: {arm} {checkout} {result['cpu_ms']}", file=sys.stderr, flush=True)
            load.append(os.getloadavg()[0])
    print(f"\n{args.starts} starts a burst at concurrency {args.concurrency}, {args.repeats} bursts a run, "
          f"{args.rounds} rounds; {args.latency * 1000:g} ms per provider call; load average "
          f"{min(load):.1f}–{max(load):.1f}; median [min–max] of every burst")
    print(f"{'arm':9} {'checkout':40} {'CPU ms/start':>24} {'wall ms/start':>24}")
    for (arm, checkout), values in cpu.items():
        print(f"{arm:9} {str(checkout)[-40:]:40} {spread(values):>24} {spread(wall[(arm, checkout)]):>24}")
    for (arm, checkout), result in profiles.items():
        print(f"\n== profile: {arm}, {checkout} (cProfile, µs of CPU per start, cumulative) ==")
        steps = {(file, name): us for us, file, name in result["steps"]}
        for label, file, name in STEPS:
            print(f"{steps.get((file, name), 0.0):9.1f}  {label}")
        print("own time by owner: " + ", ".join(f"{name} {share * 100:.1f} %"
                                                 for name, share in result["shares"].items() if share >= 0.005))
        print("costliest functions (own time, µs per start):")
        for us, where in result["own_us"]:
            print(f"{us:9.1f}  {where}")


if __name__ == "__main__":
    main()
