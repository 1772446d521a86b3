"""Ask Linux to SIGTERM a child when the dispatcher dies, so a killed dispatcher leaves no bots.

Called by isolated_exec.py, the process every local bot starts as, before it becomes the bot: the
signal survives the `exec`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not sys.platform.startswith("linux"):
        return None
    # The libc this interpreter is linked with: ctypes.util's search would cost a bot's start ~15 ms.
    return ctypes.CDLL(None, use_errno=True).prctl


_prctl = _load_prctl()
_SIGTERM = int(signal.SIGTERM)


def die_with_parent(parent_pid: int | None = None) -> None:
    """`parent_pid`: the dispatcher's pid, taken before the spawn. If the dispatcher died between
    the spawn and the prctl call, no signal will ever come: the child exits at once instead."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, _SIGTERM, 0, 0, 0)
        if parent_pid is not None and os.getppid() != parent_pid:
            os._exit(1)
