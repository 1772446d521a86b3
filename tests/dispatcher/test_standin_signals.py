"""A test signals a stand-in bot only once its handlers are installed: a busy machine can take long
enough over the stand-in's start that a signal sent right after the launch reaches a process with
the default action (end) still in place."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

from tests.dispatcher.conftest import STANDIN_BOT
from tests.support.processes import signal_once_caught

SESSION = "0123456789abcdef01234567"


async def test_a_standin_still_starting_is_signalled_once_its_handlers_are_set(tmp_path: Path) -> None:
    # The start is held at a gate (a FIFO the shell reads before it execs the stand-in, keeping its
    # pid): the loaded machine's slow start, made certain. The signal is asked for before the gate opens.
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    opening = os.open(gate, os.O_RDWR)  # (Linux: never blocks, whether or not the shell reads yet)
    env = {**os.environ, "STANDIN_MODE": "controlled"}
    env.pop("BOT_CHANNEL_URL", None)
    process = subprocess.Popen(["/bin/sh", "-c", 'read _ < "$0" && exec "$@"', str(gate), *STANDIN_BOT,
                                "--session-id", SESSION], env=env, stdout=subprocess.PIPE, text=True)
    try:
        signalled = asyncio.create_task(signal_once_caught(process.pid, signal.SIGUSR1))
        await asyncio.sleep(0)  # the task runs up to its first wait, the stand-in still at the gate
        os.write(opening, b"go\n")
        await signalled
        assert process.stdout is not None
        line = await asyncio.to_thread(process.stdout.readline)
        assert line, f"the SIGUSR1 ended the stand-in (exit {process.wait()}) instead of making it ready"
        assert (json.loads(line)["event"], json.loads(line)["pid"]) == ("ready", process.pid)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 60) == 0
    finally:
        os.close(opening)
        if process.poll() is None:
            process.kill()
            process.wait()
