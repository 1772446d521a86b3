"""A command started as a terminal starts it: with Ctrl-C (SIGINT) at its default.

A test suite started as a script's background job (`pytest … &`, or `( … & )`) has SIGINT ignored,
as a shell without job control sets it for every `&` job; a process inherits an ignored signal across
exec, and Python (asyncio.run with it) leaves an inherited SIG_IGN alone. A command such a suite
starts never sees the test's SIGINT: `voicefleet eval` ran its held call to the end and exited 4.
This starts the command through a one-line exec that sets SIGINT back to its default first."""

from __future__ import annotations

import sys

_RESET = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
          "os.execv(sys.argv[1], sys.argv[1:])")


def from_a_terminal(command: list[str]) -> list[str]:
    """`command` (its program a path, as sys.executable is) run with SIGINT at its default."""
    return [sys.executable, "-c", _RESET, *command]
