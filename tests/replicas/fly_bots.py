"""Runs a real bot process for every machine the fake Fly API creates, as Fly runs the bot image:
the process outlives any dispatcher replica (unlike the local provider's bots, which die with
their parent), gets only what a Machine's process gets (fly.io/docs/machines/runtime-environment):
the image's env (`PATH`, and `BOT_CHANNEL_URL`, which a cold machine's config does not carry), the
machine's config env and Fly's own variables, never the test's environment; and its Machine's API
socket (its OIDC token). It is stopped
(SIGTERM) when its machine is stopped or destroyed, and its machine is stopped and destroyed
(`auto_destroy`) when it exits. A suspended machine keeps its process: paused (SIGSTOP) when Fly
suspends the machine and continued (SIGCONT) when it resumes, as a snapshot keeps a process; a
machine stopped or destroyed while suspended loses its process outright (SIGKILL: no snapshot runs
again).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests.fakes.fly import FakeFly
from tests.fakes.server import IMAGE_PATH

REPO = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "tests.replicas.redialling_bot"]
MARK = "FLY_BOTS_MARK"


class FlyBots:
    def __init__(self, fly: FakeFly, image_env: Mapping[str, str], log_dir: Path) -> None:
        self.fly = fly
        self.image_env = dict(image_env)
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}  # Fly machine id → its bot
        self._stopped: set[str] = set()  # machines whose bot was told to stop (once, as Fly does)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fly-bots", daemon=True)
        self.paused: set[str] = set()  # machines whose bot is paused (suspended)
        fly.on_suspend = self._pause
        fly.on_resume = self._continue

    def _pause(self, machine: dict) -> None:  # type: ignore[type-arg]
        process = self.processes.get(machine["id"])
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGSTOP)
            self.paused.add(machine["id"])

    def _continue(self, machine: dict) -> None:  # type: ignore[type-arg]
        process = self.processes.get(machine["id"])
        if process is not None and machine["id"] in self.paused:
            self.paused.discard(machine["id"])
            process.send_signal(signal.SIGCONT)

    def pid_of(self, machine_id: str) -> int:
        return self.processes[machine_id].pid

    def _run(self) -> None:
        while not self._stop.wait(0.02):  # the fake's records change on its own thread: look again
            for machine in list(self.fly.machines.values()):
                self._follow(machine)

    def _follow(self, machine: dict) -> None:  # type: ignore[type-arg]
        machine_id = machine["id"]
        process = self.processes.get(machine_id)
        if process is None:
            if machine["state"] == "created":
                self._boot(machine)
            return
        if machine["state"] in ("stopped", "destroyed") and machine_id not in self._stopped:
            self._stopped.add(machine_id)
            with contextlib.suppress(ProcessLookupError):  # Fly stops a machine with a signal
                process.send_signal(signal.SIGKILL if machine_id in self.paused else signal.SIGTERM)
        elif machine["state"] == "started" and process.poll() is not None:
            self.fly.set_state(machine["name"], "stopped", exit_code=process.returncode)
            self.fly.set_state(machine["name"], "destroyed")  # auto_destroy

    def _boot(self, machine: dict) -> None:  # type: ignore[type-arg]
        machine["state"] = "started"  # before its bot runs: it asks its Machine's socket for its OIDC token
        fly = {"FLY_APP_NAME": machine["_app"], "FLY_MACHINE_ID": machine["id"], "FLY_ALLOC_ID": machine["id"],
               "FLY_REGION": machine["region"], "FLY_IMAGE_REF": machine["config"]["image"]}
        env = {**IMAGE_PATH, **self.image_env, **machine["config"]["env"], **fly,
               "BOT_FLY_API_SOCKET": self.fly.machine_socket(machine["id"]), MARK: str(self.log_dir)}
        with open(self.log_dir / f"{machine['id']}.log", "wb") as log:
            self.processes[machine["id"]] = subprocess.Popen(COMMAND, env=env, cwd=REPO, stdout=log, stderr=log)

    def alive(self) -> list[int]:
        return [p.pid for p in self.processes.values() if p.poll() is None]

    def log(self, machine_id: str) -> str:
        return (self.log_dir / f"{machine_id}.log").read_text(errors="replace")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait(10)


@contextlib.contextmanager
def fly_bots(fly: FakeFly, image_env: Mapping[str, str], log_dir: Path) -> Iterator[FlyBots]:
    bots = FlyBots(fly, image_env, log_dir)
    bots._thread.start()
    try:
        yield bots
    finally:
        bots.stop()
