"""The emulated cloud, in a process of its own: Fly's Machines API and the machines it runs.

The API is the test fake (tests/fakes/fly.py) with what a fleet at load meets on Fly:
- each machine starts after a cold start drawn from the simulator's own Fly model
  (bench/reserve_sim_providers.py: lognormal, median 3 s, σ 0.6), seeded;
- each resume of a suspended machine takes a time drawn from the simulator's resume model;
- creates are limited per app as Fly documents (1/s, burst 3: the fake's own limit): past it,
  429; `--apps N` serves N apps (FLY_APPS), each with its own limit;
and on every started machine a light bot (light_bot.py) dials the channel, as the bot image
would. A machine whose bot ends is stopped and destroyed (`auto_destroy`); a machine the
dispatcher stops loses its bot at once.

    python -m bench.fleet_emulator.cloud --channel-url ws://… --ready-file F --seed 7
prints `port N` once the API listens, then serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bench.fleet_emulator.light_bot import light_bot
from bench.reserve_sim_providers import BY_NAME
from bot.config import ENV_SESSION_ID
from tests.fakes.fly import APP, CHANNEL_AUDIENCE, FakeFly
from tests.fakes.server import serve

SCAN_SECONDS = 0.02


def app_names(count: int) -> tuple[str, ...]:
    """The emulated deployment's apps: FLY_APP first."""
    return (APP, *(f"{APP}-{n}" for n in range(2, count + 1)))


# A suspend in the emulated cloud: a second, what the dispatcher's planner is told of Fly's
# (dispatcher/reserve/frozen.py SUSPEND_SECONDS). The simulator's Fly takes longer (its suspend_seconds):
# a model compared with a run here is given this one.
SUSPEND_SECONDS = 1.0


class EmulatedFly(FakeFly):
    def __init__(self, seed: int, apps: int = 1) -> None:
        super().__init__(other_apps=app_names(apps)[1:])
        self._draw = random.Random(f"{seed}/emulated-fly")
        self._provider = BY_NAME["fly"]
        # Fly's suspend and resume as the simulator models them: each resume drawn from its resume
        # model (lognormal, median 0.4 s), as each cold start is; a second's suspend. The fake's own
        # fixed resume time is never reached: `_tick` below starts a resumed machine.
        self.resume_seconds = math.inf
        self.suspend_seconds = SUSPEND_SECONDS
        # Machines whose state may move without an API call (booting, suspending, resuming) or whose
        # bot is not yet dialling: the farm scans these, not every machine ever created (a scan of
        # every machine 50 times a second was the harness's own CPU, growing with the run).
        self.pending: set[str] = set()
        # Every create's drawn cold start, in creation order (booted or not), and whether it was
        # for a session (else the reserve's): the simulator replays these rather than a stream of
        # its own (bench/fleet_emulator/regions.py).
        self.cold_starts: list[tuple[float, bool]] = []

    def _set(self, machine: dict[str, Any], state: str) -> None:
        super()._set(machine, state)
        self.pending.add(machine["id"])

    async def create(self, request: Request) -> Response:
        before = len(self.machines)
        response = await super().create(request)
        if len(self.machines) > before:  # created: the newest machine (dicts keep insertion order)
            machine = self.machines[next(reversed(self.machines))]
            machine["_boot_after"] = self._provider.cold_start(self._draw)
            env = machine["config"].get("env") or {}
            self.cold_starts.append((machine["_boot_after"], bool(env.get(ENV_SESSION_ID))))
            machine["_created_at"] = time.time()
            self.pending.add(machine["id"])
        return response

    def _tick(self, machine: dict[str, Any]) -> dict[str, Any]:
        boot_after = machine.get("_boot_after")
        if machine["state"] == "created" and boot_after is not None:
            if time.monotonic() - machine["_created"] >= boot_after:
                machine["state"] = "started"
        if machine["state"] == "starting":  # resumed (or a stopped one started): its own resume time
            changed = machine.get("_changed", 0.0)
            if machine.get("_resume_for") != changed:
                machine["_resume_for"], machine["_resume_after"] = changed, self._provider.resume(self._draw)
            if time.monotonic() - changed >= machine["_resume_after"]:
                machine["state"] = "started"
        return super()._tick(machine)  # suspends and resumes as the fake times them


class Farm:
    """A light bot for every started machine; the machine goes when its bot does, and vice versa."""

    def __init__(self, fly: EmulatedFly, channel_url: str, ready_file: Path) -> None:
        self.fly = fly
        self.channel_url = channel_url
        self._ready = ready_file.open("a", buffering=1)
        self._bots: dict[str, asyncio.Task[str]] = {}
        self.ended: dict[str, int] = {}  # why bots ended → how many
        self.timelines: dict[str, dict[str, Any]] = {}  # machine id → its times (wall clock), for the report

    def _record_ready(self, session_id: str, at: float, cold: bool) -> None:
        self._ready.write(json.dumps({"session_id": session_id, "ready": at, "cold": cold}) + "\n")

    async def run(self) -> None:
        while True:
            for machine_id in list(self.fly.pending):
                if self._follow(self.fly.machines[machine_id]):
                    self.fly.pending.discard(machine_id)
            await asyncio.sleep(SCAN_SECONDS)

    def _follow(self, machine: dict[str, Any]) -> bool:
        """Moves a machine's bot along with its state; True once nothing more can happen without an
        API call (its bot is dialling or gone, and its state is settled)."""
        machine_id = machine["id"]
        state = self.fly._tick(machine)["state"]
        bot = self._bots.get(machine_id)
        if bot is None:
            if state != "started":
                return state in ("stopped", "destroyed")
            env = dict(machine["config"].get("env") or {})
            mint = functools.partial(self.fly.oidc_token, machine_id)
            machine_state = functools.partial(lambda m: self.fly._tick(m)["state"], machine)
            timeline = self.timelines[machine_id] = {
                "machine": machine_id, "name": machine["name"], "reserve": not env.get(ENV_SESSION_ID),
                "created": machine.get("_created_at"), "boot_drawn": machine.get("_boot_after"), "booted": time.time()}
            task = asyncio.create_task(light_bot(env, machine_id, self.channel_url, CHANNEL_AUDIENCE, mint,
                                                 self._record_ready, machine_state,
                                                 functools.partial(timeline.setdefault, "connected")))
            task.add_done_callback(functools.partial(self._bot_ended, machine))
            self._bots[machine_id] = task
            return False
        if state in ("stopped", "destroyed") and not bot.done():
            bot.cancel()  # the dispatcher stopped the machine: its bot goes with it
        return state in ("started", "suspended", "stopped", "destroyed")

    def _bot_ended(self, machine: dict[str, Any], task: asyncio.Task[str]) -> None:
        why = "stopped by the dispatcher" if task.cancelled() else (
            f"error: {task.exception()!r}" if task.exception() else task.result())
        self.ended[why] = self.ended.get(why, 0) + 1
        if (timeline := self.timelines.get(machine["id"])) is not None:
            timeline["ended"], timeline["why"] = time.time(), why
        if machine["state"] not in ("stopped", "destroyed"):
            self.fly.set_state(machine["name"], "stopped", exit_code=0)
            self.fly.set_state(machine["name"], "destroyed")

    def summary(self) -> dict[str, Any]:
        return {"machines": len(self.fly.machines), "refused_creates": self.fly.refused_creates,
                "bots_ended": self.ended}

    def write_timelines(self, path: Path) -> None:
        with path.open("w") as out:
            for timeline in self.timelines.values():
                out.write(json.dumps(timeline) + "\n")


async def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--channel-url", required=True)
    p.add_argument("--ready-file", type=Path, required=True)
    p.add_argument("--summary-file", type=Path, required=True)
    p.add_argument("--machines-file", type=Path, help="each machine's times (created, booted, connected, ended)")
    p.add_argument("--cold-starts-file", type=Path,
                   help="every create's drawn cold start and whether it was for a session, in creation order (JSON)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--apps", type=int, default=1)
    args = p.parse_args(argv)
    fly = EmulatedFly(args.seed, args.apps)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    with serve(fly):
        print(f"port {fly.url.rsplit(':', 1)[1]}", flush=True)
        farm = Farm(fly, args.channel_url, args.ready_file)
        running = asyncio.create_task(farm.run())
        await stop.wait()
        running.cancel()
        args.summary_file.write_text(json.dumps(farm.summary()))
        if args.machines_file is not None:
            farm.write_timelines(args.machines_file)
        if args.cold_starts_file is not None:
            args.cold_starts_file.write_text(json.dumps(fly.cold_starts))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
