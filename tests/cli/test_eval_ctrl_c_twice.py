"""Ctrl-C in a suite's run (voicefleet/evals/ctrl_c.py), in a process of its own as a user's terminal runs
it: the first press cancels the run, which then reports what it stopped; a second press ends the
process at once with what can still be written, even while the first press's stops hang (a dispatcher
that never answers a stop), where asyncio.run's own second press waited for them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.support.terminal import from_a_terminal

# A run whose stop, once cancelled, never ends (cancelled again, it keeps stopping), or, "returns",
# one that reports once cancelled. Its report on a second press is what `at_once` writes.
RUN = """
import asyncio, contextlib, sys
from voicefleet.evals.ctrl_c import run_with_ctrl_c

async def run():
    print("placed", flush=True)
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        print("stopping", flush=True)
        if sys.argv[1] == "returns":
            return "the report of the interrupted run"
        while True:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

def at_once():
    print("the report of the calls over so far", flush=True)
    return 130

print(run_with_ctrl_c(run(), at_once), flush=True)
"""


def pressed(times: int, mode: str) -> tuple[int, str]:
    """The run's exit status and output, Ctrl-C pressed `times` times, each once the run has taken the last."""
    command = from_a_terminal([sys.executable, "-c", RUN, mode])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        try:
            assert process.stdout is not None
            lines = [process.stdout.readline()]
            for _ in range(times):
                assert lines[-1].strip() in ("placed", "stopping"), lines
                process.send_signal(signal.SIGINT)
                lines.append(process.stdout.readline())
            # The rest through the same buffered reader: communicate() reads the pipe's descriptor and would
            # miss a line readline() had already taken into its buffer with the last one (seen on a busy host).
            out = process.stdout.read()  # to the process's end; the suite's own timeout bounds a hang
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    return process.returncode, "".join(lines) + out


def test_a_second_ctrl_c_ends_the_run_at_once_with_its_report_while_the_stops_hang() -> None:
    status, output = pressed(2, "hangs")
    assert status == 130, output
    assert output.splitlines() == ["placed", "stopping", "the report of the calls over so far"], output


def test_a_first_ctrl_c_lets_the_run_report_what_it_stopped() -> None:
    status, output = pressed(1, "returns")
    assert status == 0, output
    assert output.splitlines() == ["placed", "stopping", "the report of the interrupted run"], output
