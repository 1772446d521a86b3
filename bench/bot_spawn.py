"""Spawn → `ready` of fresh `python -m bot` processes, with and without compiled bytecode.

Whether `.pyc` files exist decides start-up more than anything in the bot: compiling Pipecat,
numpy, aiortc & co. from source costs about as much CPU as running them. The bot image compiles
its venv at build time (images/bot.Dockerfile); a dev venv has bytecode once Python could write
it — unless `PYTHONDONTWRITEBYTECODE` is set and the venv was installed without
`--compile-bytecode`, in which case every bot start compiles everything again.

So that the figures do not depend on the state of whoever's venv runs them, each arm runs the
bots with its own `PYTHONPYCACHEPREFIX` (Python then reads and writes `.pyc` only in that tree):

- `compiled`: a tree filled by one unmeasured start, as the image's build fills it;
- `source`: the same tree holding only the standard library's bytecode, so everything else (the
  venv, bot/) is compiled from source on every start.

Used by bench/bot_import_steps.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.pinning import cpu_seconds

REPO = Path(__file__).resolve().parents[1]
READY_ARGS = ("--port", "0", "--connect-timeout", "60")
ARMS = ("compiled", "source")


@dataclass(frozen=True)
class Start:
    wall_s: float  # spawn → the `ready` line read by the parent
    cpu_s: float  # the bot's user + system time (all its threads) when the line was read
    queued_s: float  # how long its main thread was runnable but waiting for a core (schedstat)

    @property
    def unqueued_s(self) -> float:
        """The wall time less the wait for a core: about what a free core would give."""
        return self.wall_s - self.queued_s


def bot_env(pycache: Path | None = None, *, write_bytecode: bool = False) -> dict[str, str]:
    """The environment the local provider gives a bot, minus keys (the keyless pipeline)."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("DAILY_")}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    if pycache is not None:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    if write_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def queued_seconds(pid: int) -> float:
    """The main thread's run-queue wait (/proc/<pid>/schedstat: run time, wait time, slices; ns)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


def spawn_until_ready(python: str, env: dict[str, str]) -> Start:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [python, "-m", "bot", *READY_ARGS],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        wall = time.perf_counter() - started
        cpu, queued = cpu_seconds(proc.pid), queued_seconds(proc.pid)
        if json.loads(line or "{}").get("event") != "ready":
            raise RuntimeError(f"expected the bot's ready line, got {line!r}")
    finally:
        proc.terminate()
        proc.wait(15)
    return Start(wall, cpu, queued)


def prepare_caches(python: str, root: Path) -> dict[str, Path]:
    """One unmeasured start fills the `compiled` tree; `source` gets its standard-library part."""
    compiled, source = root / "compiled", root / "source"
    spawn_until_ready(python, bot_env(compiled, write_bytecode=True))
    stdlib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    relative = Path(stdlib).relative_to(Path(stdlib).anchor)
    if (compiled / relative).is_dir():
        # Not a site-packages inside the standard library's tree (a system Python's): that is
        # third-party code, which this arm compiles from source.
        ignore = shutil.ignore_patterns("site-packages", "dist-packages")
        shutil.copytree(compiled / relative, source / relative, ignore=ignore)
    source.mkdir(exist_ok=True)
    return {"compiled": compiled, "source": source}
