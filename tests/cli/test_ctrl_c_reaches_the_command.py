"""A test's SIGINT reaches the command it started however the suite itself was started: a suite run as
a script's background job has SIGINT ignored, and the commands it starts inherited that (the Ctrl-C
test's `voicefleet eval` then ran its held call to the end), unless started as from a terminal."""

from __future__ import annotations

import signal
import subprocess
import sys

from tests.support.terminal import from_a_terminal

TAKES_CTRL_C = [sys.executable, "-c",
                "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"]


def test_a_command_started_as_from_a_terminal_takes_ctrl_c_in_a_suite_that_ignores_it() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as `pytest … &` in a script starts the suite
    try:
        inherited = subprocess.run(TAKES_CTRL_C, capture_output=True, text=True, timeout=60, check=True).stdout
        started = subprocess.run(from_a_terminal(TAKES_CTRL_C), capture_output=True, text=True, timeout=60,
                                 check=True).stdout
    finally:
        signal.signal(signal.SIGINT, previous)
    assert inherited.strip() == "False"  # the cause: the ignored SIGINT is the command's too
    assert started.strip() == "True"
