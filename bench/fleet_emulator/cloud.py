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
from tests.fakes.fly import APP, CHANNEL_AUDIENCE, FakeFly
from tests.fakes.server import serve

SCAN_SECONDS = 0.02


def app_names(count: int) -> tuple[str, ...]:
    """The emulated deployment's apps: FLY_APP first."""
    return (APP, *(f"{APP}-{n}" for n in range(2, count + 1)))


class EmulatedFly(FakeFly):
    def __init__(self, seed: int, apps: int = 1) -> None:
        super().__init__(other_apps=app_names(apps)[1:])
        self._draw = random.Random(f"{seed}/emulated-fly")
        self._provider = BY_NAME["fly"]
        # Fly's suspend and resume as the simulator models them: each resume drawn from its resume
        # model (lognormal, median 0.4 s), as each cold start is; a second's suspend. The fake's own
        # fixed resume time is never reached: `_tick` below starts a resumed machine.
        self.resume_seconds = math.inf
        self.suspend_seconds = 1.0

    async def create(self, request: Request) -> Response:
        before = set(self.machines)
        response = await super().create(request)
        for machine_id in set(self.machines) - before:
            self.machines[machine_id]["_boot_after"] = self._provider.cold_start(self._draw)
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

    def _record_ready(self, session_id: str, at: float, cold: bool) -> None:
        self._ready.write(json.dumps({"session_id": session_id, "ready": at, "cold": cold}) + "\n")

    async def run(self) -> None:
        while True:
            for machine in list(self.fly.machines.values()):
                self._follow(machine)
            await asyncio.sleep(SCAN_SECONDS)

    def _follow(self, machine: dict[str, Any]) -> None:
        machine_id = machine["id"]
        state = self.fly._tick(machine)["state"]
        bot = self._bots.get(machine_id)
        if bot is None:
            if state == "started":
                env = dict(machine["config"].get("env") or {})
                mint = functools.partial(self.fly.oidc_token, machine_id)
                state = functools.partial(lambda m: self.fly._tick(m)["state"], machine)
                task = asyncio.create_task(light_bot(env, machine_id, self.channel_url, CHANNEL_AUDIENCE, mint,
                                                     self._record_ready, state))
                task.add_done_callback(functools.partial(self._bot_ended, machine))
                self._bots[machine_id] = task
        elif state in ("stopped", "destroyed") and not bot.done():
            bot.cancel()  # the dispatcher stopped the machine: its bot goes with it

    def _bot_ended(self, machine: dict[str, Any], task: asyncio.Task[str]) -> None:
        why = "stopped by the dispatcher" if task.cancelled() else (
            f"error: {task.exception()!r}" if task.exception() else task.result())
        self.ended[why] = self.ended.get(why, 0) + 1
        if machine["state"] not in ("stopped", "destroyed"):
            self.fly.set_state(machine["name"], "stopped", exit_code=0)
            self.fly.set_state(machine["name"], "destroyed")

    def summary(self) -> dict[str, Any]:
        return {"machines": len(self.fly.machines), "refused_creates": self.fly.refused_creates,
                "bots_ended": self.ended}


async def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--channel-url", required=True)
    p.add_argument("--ready-file", type=Path, required=True)
    p.add_argument("--summary-file", type=Path, required=True)
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


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
