"""What keeps a local bot out of the dispatcher's process state and out of the other bots'.

Local bots run as the dispatcher's user, so three cheap layers keep them from reading its
secrets or each other's: an allow-listed environment (bot_env.py), a dispatcher that is not
dumpable (`protect_dispatcher`), and a Landlock domain per bot before its `exec`
(isolated_exec.py, started by spawn.py); the bot host then drops its own dumpability and, as root, every
capability. `LOCAL_BOT_ISOLATION=auto` runs without Landlock (with a warning) where the kernel has
none; `required` refuses. Without Landlock, Yama's `ptrace_scope` is what keeps a bot from tracing
a young sibling, and the start-up error says what to set. What remains: docs/security.md ("Local bots").
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from dataclasses import dataclass

from dispatcher.machines.local import landlock
from dispatcher.settings import SettingsError

log = logging.getLogger("dispatcher.machines.local.isolation")

POLICIES = ("auto", "required")
YAMA_PTRACE_SCOPE = "/proc/sys/kernel/yama/ptrace_scope"
YAMA_ATTACH_DESCENDANTS_ONLY, YAMA_NO_ATTACH = 1, 3
_PR_SET_DUMPABLE = 4


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise SettingsError(f"LOCAL_BOT_ISOLATION={policy!r} is not one of {', '.join(POLICIES)}")
    if policy == "required" and landlock.abi_version() < 1:
        raise SettingsError("LOCAL_BOT_ISOLATION=required, but this kernel has no Landlock (Linux 5.13 or later, "
                            "with landlock in its lsm= list): local bots could read each other's process state")
    return policy


@dataclass(frozen=True)
class BotIsolation:
    """The kernel's Landlock ABI each bot's own domain is made with (0: the kernel has none)."""

    abi: int

    @classmethod
    def for_this_host(cls, policy: str = "auto") -> BotIsolation:
        check_policy(policy)
        abi = landlock.abi_version()
        if abi < 1:
            log.warning("local bots run without a Landlock domain (this kernel has none): a bot can read another "
                        "bot's process state in its first milliseconds, before it makes itself non-dumpable")
            scope, needed = ptrace_scope(), ptrace_scope_needed()
            if scope < needed:
                log.error("local bots can trace each other: without Landlock only Yama keeps a bot from attaching to "
                          "a young sibling and having it prove the launch for the attacker, which is then sent that "
                          "bot's session (the caller's body included); kernel.yama.ptrace_scope is %s here. %s",
                          scope if os.path.exists(YAMA_PTRACE_SCOPE) else "absent (no Yama: 0)", _ptrace_remedy(needed))
            return cls(abi=0)
        os.close(landlock.bot_ruleset(abi))  # the kernel makes one now, or the dispatcher says so at start
        return cls(abi=abi)

    @property
    def sandboxed(self) -> bool:
        return self.abi >= 1


def ptrace_scope() -> int:
    """`kernel.yama.ptrace_scope`, 0 where the kernel has no Yama (any process of a user may attach
    to any other of that user's that is dumpable)."""
    try:
        with open(YAMA_PTRACE_SCOPE) as scope:
            return int(scope.read().strip())
    except (OSError, ValueError):
        return 0


def ptrace_scope_needed() -> int:
    """What keeps a young bot from a sibling's ptrace without Landlock: siblings are not each other's
    ancestors (1), unless the bots start as root, whose CAP_SYS_PTRACE passes Yama below 3."""
    return YAMA_NO_ATTACH if os.geteuid() == 0 else YAMA_ATTACH_DESCENDANTS_ONLY


def _ptrace_remedy(needed: int) -> str:
    if needed < YAMA_NO_ATTACH:
        return (f"Set it to {needed} (sysctl kernel.yama.ptrace_scope={needed}), run on a kernel with Landlock, or "
                "set LOCAL_BOT_ISOLATION=required to refuse to start without it")
    # Run as root, the bots hold CAP_SYS_PTRACE: only 3 stops them, and 3 is a one-way switch.
    return ("The dispatcher runs as root, so its bots may trace despite Yama's 1 and 2: first run it as an "
            f"ordinary (non-root) user, then {YAMA_ATTACH_DESCENDANTS_ONLY} is enough. Otherwise run on a kernel "
            "with Landlock, or set LOCAL_BOT_ISOLATION=required to refuse to start without it. Setting it to "
            f"{YAMA_NO_ATTACH} also closes it, but {YAMA_NO_ATTACH} cannot be lowered again until the host reboots, "
            "and it stops gdb, strace and every other ptrace on the whole host, root's included")


def protect_dispatcher() -> None:
    """No process of this user may read the dispatcher's environment, memory or descriptors (root
    still may); it gives up core dumps for that."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)  # the libc this interpreter is linked with
        if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")
