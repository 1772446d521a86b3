"""Ask Linux to SIGTERM a child when the dispatcher dies, so a killed dispatcher leaves no bots.

Runs in the forked child before exec (`preexec_fn`): it only calls prctl(2), resolved ahead of
time, so nothing that could take a lock runs between fork and exec.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return libc.prctl


_prctl = _load_prctl()
_SIGTERM = int(signal.SIGTERM)


def die_with_parent(parent_pid: int | None = None) -> None:
    """`parent_pid`: the dispatcher's pid, taken before the fork. If the dispatcher died between
    the fork and the prctl call, no signal will ever come: the child exits at once instead."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, _SIGTERM, 0, 0, 0)
        if parent_pid is not None and os.getppid() != parent_pid:
            os._exit(1)
