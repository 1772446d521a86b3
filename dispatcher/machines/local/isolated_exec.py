"""How every local bot starts: `python -I -S isolated_exec.py PARENT_PID LANDLOCK_ABI -- COMMAND…`.

The dispatcher spawns this script, not the bot, so that no Python runs between its fork and exec:
it has threads (an OTLP gRPC exporter's among them), and a forked child of a threaded process may
only make async-signal-safe calls; a `preexec_fn` there ran gRPC's fork handlers half-done and the
bot died of SIGSEGV before it started. Here, in a process of its own, it asks for the
parent-death signal, enters a Landlock domain of its own (ABI ≥ 1), then becomes the bot with
`execv`: same pid and descriptors, the signal and the domain kept across the exec, so no bot code
runs outside either. `-I -S`: nothing from the environment, a user site or a `.pth` file runs
first. A refusal ends it with one line on stderr, which the dispatcher forwards with the session.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # Run by path: its two neighbours as top-level modules, not through the package, whose
    # __init__ (and what that imports) would cost every bot's start tens of milliseconds.
    sys.path[0] = os.path.dirname(os.path.abspath(__file__))
    from landlock import bot_ruleset, restrict_self  # type: ignore[import-not-found,unused-ignore]
    from parent_death import die_with_parent  # type: ignore[import-not-found,unused-ignore]
else:
    from dispatcher.machines.local.landlock import bot_ruleset, restrict_self
    from dispatcher.machines.local.parent_death import die_with_parent

ISOLATION_REFUSED = "voicefleet: the kernel refused this bot's Landlock domain; not starting it"
PATH = os.path.abspath(__file__)


def launch_command(command: list[str], parent_pid: int, abi: int) -> list[str]:
    """The argv that starts `command` (its program already an absolute path) through this script."""
    return [sys.executable, "-I", "-S", PATH, str(parent_pid), str(abi), "--", *command]


def become_bot(argv: list[str]) -> None:
    """`argv` as `launch_command` made it. Never returns: the bot replaces this process, or it exits 1."""
    parent_pid, abi, command = int(argv[1]), int(argv[2]), argv[4:]
    die_with_parent(parent_pid)
    if abi >= 1:
        try:
            ruleset = bot_ruleset(abi)
        except OSError:
            _refuse(ISOLATION_REFUSED)
            return
        if not restrict_self(ruleset):
            _refuse(ISOLATION_REFUSED)
        os.close(ruleset)
    try:
        os.execv(command[0], command)  # noqa: S606 - the dispatcher's own command, never a shell's
    except OSError as exc:
        _refuse(f"voicefleet: could not start the bot ({command[0]}): {exc.strerror or exc}")


def _refuse(line: str) -> None:
    os.write(2, f"{line}\n".encode())
    os._exit(1)


if __name__ == "__main__":
    become_bot(sys.argv)
