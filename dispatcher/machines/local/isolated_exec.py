"""What every local bot starts as: `python -I -S -c PROGRAM`, which sets the bot's isolation up, then becomes it.

The dispatcher's forked child only execs this (Python there, in a process with threads, is unsafe).
In order: non-dumpable, the parent-death signal (parent_death.py), the bot's argv and environment
read from its launch channel (so the credential is never in this process's environ), a Landlock
domain of its own (landlock.py), then `execvpe`: same pid and descriptors, signal and domain kept.
A failure is written back on the channel, which the exec closes otherwise (spawn.py). PROGRAM holds
these three modules' sources, read once at import. What it cannot keep out: docs/security.md, "Files".
"""

from __future__ import annotations

import marshal
import os
import sys

TYPE_CHECKING = False  # typing itself would cost every bot's start a few milliseconds
if TYPE_CHECKING:
    from typing import NoReturn

if __name__ == "isolated_exec":  # run from PROGRAM, where its neighbours are top-level modules
    from landlock import bot_ruleset, restrict_self  # type: ignore[import-not-found,unused-ignore]
    from parent_death import die_with_parent  # type: ignore[import-not-found,unused-ignore]
else:
    from dispatcher.machines.local.landlock import bot_ruleset, restrict_self
    from dispatcher.machines.local.parent_death import die_with_parent

_PR_SET_DUMPABLE = 4
_REFUSED = 126  # the launcher's exit code when it refuses (as a shell's for a command it cannot run)


def become_bot(argv: list[str]) -> None:
    """`PROGRAM PARENT_PID LANDLOCK_ABI CHANNEL_FD`. Never returns: the bot replaces this process."""
    parent_pid, abi, channel = int(argv[1]), int(argv[2]), int(argv[3])
    try:
        _become_bot(parent_pid, abi, channel)
    except Exception as exc:  # any failure is the start's error, never a bot that seemed to start
        _refuse(channel, f"its launcher failed ({type(exc).__name__})")


def _become_bot(parent_pid: int, abi: int, channel: int) -> None:
    _not_dumpable(channel)
    die_with_parent(parent_pid)
    payload = bytearray()
    while chunk := os.read(channel, 65536):
        payload += chunk
    command, env = marshal.loads(payload)  # noqa: S302 - the dispatcher's bytes, on a socketpair only it holds
    os.set_inheritable(channel, False)  # closed by the exec: end of file tells the dispatcher it ran
    if abi >= 1:
        try:
            ruleset = bot_ruleset(abi)
        except OSError as exc:
            _refuse(channel, f"the kernel refused this bot's Landlock domain ({exc.strerror or exc})")
        if not restrict_self(ruleset):
            _refuse(channel, "the kernel refused this bot's Landlock domain")
        os.close(ruleset)
    try:
        os.execvpe(command[0], command, env)  # noqa: S606 - the dispatcher's own command, never a shell's
    except OSError as exc:
        _refuse(channel, f"{command[0]}: {exc.strerror or exc}")


def _not_dumpable(channel: int) -> None:
    """Its memory holds the bot's credential until the exec (which makes the bot dumpable again,
    until its own hardening): no process of this user may read it meanwhile."""
    import ctypes

    if ctypes.CDLL(None).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        _refuse(channel, "the kernel refused to make its launcher non-dumpable")


def _refuse(channel: int, reason: str) -> NoReturn:
    os.write(channel, reason.encode())
    os._exit(_REFUSED)


if __name__ != "isolated_exec":
    # Its own source and its neighbours', loaded as top-level modules by a few lines of bootstrap.
    def _source(name: str) -> str:
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py"), encoding="utf-8") as file:
            return file.read()

    _SOURCES = tuple((name, _source(name)) for name in ("landlock", "parent_death", "isolated_exec"))
    PROGRAM = (f"import sys\nfor name, source in {_SOURCES!r}:\n"
               "    module = sys.modules[name] = type(sys)(name)\n"
               "    exec(compile(source, name + '.py', 'exec'), module.__dict__)\n"
               "sys.modules['isolated_exec'].become_bot(sys.argv)\n")


def launcher_argv(parent_pid: int, abi: int, channel_fd: int) -> list[str]:
    """How the dispatcher spawns it: the bot's own argv and environment follow on `channel_fd`."""
    return [sys.executable, "-I", "-S", "-c", PROGRAM, str(parent_pid), str(abi), str(channel_fd)]
