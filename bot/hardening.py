"""The bot host's first act: its process state stays its own.

A local bot shares its host and its user with the dispatcher and with the other sessions' bots.
Made non-dumpable, no process of that user without CAP_SYS_PTRACE can read its environment (its
channel credential), memory or descriptors, nor attach to it. Run as root, the process is also
stripped of every capability (root's CAP_SYS_PTRACE, CAP_SYS_ADMIN and CAP_PERFMON read any
process, sandboxed or not) and may gain none back (`no_new_privs`: not even by executing a
program as root; its bounding set is emptied too where it may be): it keeps
root's files, not root's power over other processes. The launcher's own sandbox
(dispatcher/machines/local/isolation.py) covers the milliseconds before this runs. Linux only;
elsewhere a no-op. Plain ctypes on the libc already loaded, before anything else is imported.
"""

from __future__ import annotations

import ctypes
import sys

_PR_SET_DUMPABLE, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT = 4, 24, 38, 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAPABILITY_VERSION_3 = 0x20080522
_CAP_SETPCAP = 8


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def harden_process() -> None:
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)  # the libc this interpreter is linked with
    _must(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE, 0)")
    held = (_CapData * 2)()
    _must(libc.capget(ctypes.byref(_CapHeader(_CAPABILITY_VERSION_3, 0)), held), "capget")
    if any(d.permitted or d.effective or d.inheritable for d in held):
        _drop_capabilities(libc, may_empty_bounding_set=bool(held[0].effective & (1 << _CAP_SETPCAP)))


def _drop_capabilities(libc: ctypes.CDLL, *, may_empty_bounding_set: bool) -> None:
    _must(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)  # EINVAL before Linux 4.3: none to clear
    if may_empty_bounding_set:  # belt and braces: with no_new_privs no exec gives any back anyway
        for capability in range(_last_capability() + 1):
            libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0)
    _must(libc.capset(ctypes.byref(_CapHeader(_CAPABILITY_VERSION_3, 0)), (_CapData * 2)()), "capset")


def _last_capability() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as last:
            return int(last.read())
    except (OSError, ValueError):
        return 40  # CAP_CHECKPOINT_RESTORE, the last one Linux 5.9+ knows


def _must(result: int, call: str) -> None:
    if result != 0:
        raise OSError(ctypes.get_errno(), f"{call} failed")
