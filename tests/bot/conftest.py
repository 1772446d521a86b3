"""Spawning the bot as the machines provider does: `python -m bot ...`, JSON events on stdout.

`spawn_bot(*args, env=...)` starts a bot process and returns a `BotProcess` once its `ready` line
arrived (or the process exited, for error cases: pass `wait_ready=False`). Every process a test
spawns is killed at teardown, so a failing test leaves no bot behind.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.fakes.fixtures import fake_gce  # noqa: F401 (a fixture: the identity tests' Compute Engine)

REPO = Path(__file__).resolve().parents[2]
SPEECH_WAV = REPO / "tests" / "fixtures" / "speech16k.wav"
# A safety net, never what a test checks: start-up is 1-2 s on an idle machine, and a process
# importing Pipecat took 26 s beside a CPU hog at a load average of 14 (tests/support/processes.py).
READY_TIMEOUT = 90.0
NOT_JSON = "<not json>"  # marks a stdout line that was not JSON

# Variables of the bot's contract that must not leak from the developer's shell into tests.
BOT_VARIABLES = (
    "DAILY_ROOM_URL",
    "DAILY_TOKEN",
    "VOICEFLEET_SESSION_ID",
    "VOICEFLEET_BODY",
    "MAX_SESSION_SECONDS",
    "BOT_IDLE_TIMEOUT_SECONDS",
    "BOT_CONNECT_TIMEOUT_SECONDS",
    "DEEPGRAM_API_KEY",
    "OPENAI_API_KEY",
    "CARTESIA_API_KEY",
    "DEEPGRAM_API_URL",
    "OPENAI_BASE_URL",
    "CARTESIA_API_URL",
    "BOT_FILE",
)


def bot_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in BOT_VARIABLES}
    env["PYTHONPATH"] = str(REPO)
    env.update(overrides)
    return env


@dataclass
class BotProcess:
    proc: subprocess.Popen[str]
    events: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    all_events: list[dict[str, Any]] = field(default_factory=list)  # every line, in order, never consumed
    stderr_lines: list[str] = field(default_factory=list)
    ready: dict[str, Any] | None = None

    @property
    def base_url(self) -> str:
        assert self.ready is not None and self.ready["port"], "the bot is not ready"
        return f"http://127.0.0.1:{self.ready['port']}"

    @property
    def offer_url(self) -> str:
        return f"{self.base_url}/api/offer"

    def next_event(self, name: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            if event.get("event") == name:
                return event
        raise AssertionError(f"no {name!r} event within {timeout}s; stderr tail:\n{self.stderr_tail()}")

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stderr_tail(self, lines: int = 25) -> str:
        return "".join(self.stderr_lines[-lines:])


def start_bot(args: list[str], env: dict[str, str], *, prefix: list[str] | None = None) -> BotProcess:
    command = [*(prefix or []), sys.executable, "-m", "bot", *args]
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdin=subprocess.DEVNULL,  # as the dispatcher and a container start it
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    bot = BotProcess(proc)

    def read_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": NOT_JSON, "line": line}
            bot.all_events.append(event)
            bot.events.put(event)

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            bot.stderr_lines.append(line)

    threading.Thread(target=read_stdout, daemon=True).start()
    threading.Thread(target=read_stderr, daemon=True).start()
    return bot


class SpawnBot(Protocol):
    def __call__(
        self, *args: str, env: dict[str, str] | None = None, wait_ready: bool = True, prefix: list[str] | None = None
    ) -> BotProcess: ...


@pytest.fixture
def spawn_bot() -> Iterator[SpawnBot]:
    started: list[BotProcess] = []

    def spawn(
        *args: str, env: dict[str, str] | None = None, wait_ready: bool = True, prefix: list[str] | None = None
    ) -> BotProcess:
        bot = start_bot(list(args), env or bot_env(), prefix=prefix)
        started.append(bot)
        if wait_ready:
            bot.ready = bot.next_event("ready", READY_TIMEOUT)
        return bot

    yield spawn
    for bot in started:
        if bot.proc.poll() is None:
            bot.proc.send_signal(signal.SIGKILL)
            bot.proc.wait(5)
    # stdout is the machine-readable channel: every test that spawns a bot also checks that.
    strays = [e["line"] for bot in started for e in bot.all_events if e["event"] == NOT_JSON]
    assert not strays, f"the bot printed non-JSON lines on stdout: {strays[:3]}"


def unshare_network_prefix() -> list[str]:
    """`unshare -n` runs a command with no network at all (root only); skip if unavailable."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare(1) is not installed: cannot run the bot without network")
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -n is not permitted here: {probe.stderr.strip()}")
    return [unshare, "-n"]
