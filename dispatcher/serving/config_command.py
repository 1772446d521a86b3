"""`python -m dispatcher.serving.config_command check | explain NAME | diff`, which `voicefleet config`
runs: the configuration as the dispatcher would read it, from the environment and `VOICEFLEET_CONFIG`,
through the dispatcher's own parsers. It opens no listener and sends nothing; secrets are masked.

With `--stack NAME` (and `--config KEY=VALUE`), the environment is the one a stack of stacks/ gives its
dispatcher container, read offline by `python -m stacks.tools.config_check` with the same functions
(dispatcher/serving/config_report.py): the dispatcher imports nothing of the stacks, so that tool runs as
its own process, which gets the `--config` items on its stdin (`--config-stdin`), never on its command
line. This process then imports none of the reading either.

Exit codes: 0 good, 1 faults (one line each), 2 a usage error (an unknown NAME)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import TextIO

STACK_TOOL = "stacks.tools.config_check"
# The tool answers once and ends: run without Python's garbage collector and exit tear-down, which
# cost a third of a first check's CPU and buy it nothing (stacks/tools/one_shot.py).
ONE_SHOT = "stacks.tools.one_shot"
INFRA_COMMAND = "uv run --group infra voicefleet config"  # what works in a checkout that has not synced that group
# `--config` items travel as a JSON list on the child's stdin: a command line is readable by every
# user of the machine (/proc/<pid>/cmdline, ps), and a mistaken secret must never be on one.
CONFIG_STDIN = "--config-stdin"
# The stack's program runs under mocks: seconds on a busy machine (the clouds' SDKs import), never minutes.
STACK_TIMEOUT_SECONDS = 300


def overrides_apart(argv: list[str], stdin: TextIO) -> tuple[list[str], list[str]]:
    """(the arguments but `--config KEY=VALUE`, the KEY=VALUE items): those given here and, with
    CONFIG_STDIN, those the caller wrote on stdin (a JSON list), so that no value is on a command line."""
    rest: list[str] = []
    items: list[str] = []
    arguments = iter(argv)
    for arg in arguments:
        if arg == "--config":
            items.append(next(arguments, ""))
        elif arg.startswith("--config="):
            items.append(arg.removeprefix("--config="))
        elif arg == CONFIG_STDIN:
            given = json.loads(stdin.read() or "[]")
            if not isinstance(given, list) or not all(isinstance(item, str) for item in given):
                raise ValueError(f"{CONFIG_STDIN} wants a JSON list of KEY=VALUE strings on stdin")
            items += given
        else:
            rest.append(arg)
    return rest, items


def stack_check(argv: list[str], stdin: TextIO = sys.stdin) -> int:
    """`… --stack NAME`: the stack's dispatcher environment, checked by the stacks' tool (its exit code).
    `--config` values (a mistaken secret among them) reach it on its stdin, never on its command line."""
    try:
        rest, items = overrides_apart(argv, stdin)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if importlib.util.find_spec("pulumi") is None:  # the stack program's SDK: the `infra` group's, not the default's
        print(f"a stack's check runs its Pulumi program, whose SDK this environment lacks: {INFRA_COMMAND} "
              f"{' '.join(rest)} (or `uv sync --group infra` once)", file=sys.stderr)
        return 2
    try:
        return subprocess.run([sys.executable, "-m", ONE_SHOT, STACK_TOOL, *rest, CONFIG_STDIN],
                              input=json.dumps(items), text=True, timeout=STACK_TIMEOUT_SECONDS,
                              check=False).returncode
    except subprocess.TimeoutExpired:
        print(f"reading the stack took over {STACK_TIMEOUT_SECONDS} s", file=sys.stderr)
        return 1


def main(argv: list[str], environ: Mapping[str, str] = os.environ) -> int:
    if any(arg == "--stack" or arg.startswith("--stack=") for arg in argv):
        return stack_check(argv)
    # This environment's reading imports the dispatcher's parsers and the settings' catalogue, which a
    # stack's check leaves to the stack tool's process: its own process starts without them.
    from dispatcher.serving.config_report import report

    return report(argv, environ)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
