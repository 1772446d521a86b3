"""`python -m dispatcher` inside a namespace (the relay tests' hub), its bots in another one.

Local mode standing in for a cloud provider: every bot is started through
tests/support/netns_bot.py in the bot namespace, so it can reach the dispatcher only over the
network, dials its control channel like a cloud bot, and listens on nothing.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests.support.netns import wait_listening
from tests.support.netns_procs import REPO
from tests.support.processes import DispatcherProcess, terminate

PORT = 8080  # inside the hub namespace: nothing else can hold it


@contextmanager
def run_dispatcher_in(
    namespace: str, address: str, *, bot_namespace: str, env: Mapping[str, str], log_path: Path
) -> Iterator[DispatcherProcess]:
    full_env = {
        **env,
        "HOST": address,
        "PORT": str(PORT),
        "LOCAL_BOT_COMMAND": f"{sys.executable} -m tests.support.netns_bot {bot_namespace}",
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, "-m", "dispatcher"],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    running = DispatcherProcess(process, f"http://{address}:{PORT}", log_path)
    try:
        wait_listening(
            namespace,
            f"{address}:{PORT}",
            protocols=("tcp",),
            alive=lambda: process.poll() is None,
            describe=running.log,
        )
        yield running
    finally:
        terminate(process, grace=15)  # the dispatcher stops its bots before it exits
