"""`python -m stacks.tools.one_shot MODULE ARGS…`: run `python -m MODULE ARGS…` as a process that answers
once and ends (`voicefleet config check --stack` runs its stack tool this way).

Two costs of such a process are Python's, not the command's. The cyclic garbage collector walks the
millions of objects the clouds' Pulumi SDKs import hundreds of times over (about a sixth of a first
check's CPU), and the interpreter's tear-down at exit frees them one by one and collects again
(another sixth). Neither buys anything here: the run makes few cycles (a first check's peak memory
grows by some 4 MB without the collector) and the system takes a process's memory back whole. So
the collector is off for the run, and once the command has answered (its output flushed, logging's
handlers closed) the process ends without the tear-down, with the command's exit status. A command
that fails with an exception other than SystemExit ends as Python ends it, traceback and all.
"""

from __future__ import annotations

import gc
import logging
import os
import runpy
import sys
from typing import NoReturn

USAGE = "usage: python -m stacks.tools.one_shot MODULE [ARGS...]"


def exit_status(code: object) -> int:
    """What Python exits with for `SystemExit(code)`: None is 0, a number itself, anything else is
    printed to stderr and is 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run(argv: list[str]) -> int:
    """`python -m argv[0] argv[1:]` in this process, the collector off; its exit status."""
    gc.disable()
    sys.argv = list(argv)  # runpy puts the module's file in argv[0], as `python -m` does
    try:
        runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return exit_status(exc.code)
    return 0


def end(status: int) -> NoReturn:
    """Exit with `status` once what the command wrote is out, skipping the interpreter's tear-down."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: as Python's own exit, which then ends with 120
            status = status or 120
    os._exit(status)


def main() -> NoReturn:
    if len(sys.argv) < 2:
        print(USAGE, file=sys.stderr)
        end(2)
    end(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
