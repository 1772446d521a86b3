"""Landlock (Linux ≥ 5.13), used for one thing: each local bot in a sandbox domain of its own.

A process in a Landlock domain may ptrace, and so read `/proc/<pid>/environ`, `mem` or `fd`, only
processes in its own domain or one nested in it; with ABI 6 (Linux 6.12) it may also signal, or
connect to the abstract Unix sockets of, only those. A bot restricted right before `exec` therefore
cannot read the dispatcher (no domain) or another bot (a sibling domain), even in the first
milliseconds of its life, and the dispatcher still reads and signals every bot. Landlock needs no
privilege, only `no_new_privs`.

The ruleset restricts no file access: with ABI ≥ 6 it handles only the scopes; an older kernel's
ruleset must handle some file right, so it handles one no bot uses (making block devices), which
also denies `mount` to a bot and anything it runs. Raw syscalls through ctypes (their numbers are
the same on every architecture): the standard library has no binding, and the functions are
resolved here, before any fork, so the child calls nothing that could take a lock.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys

_SYS_CREATE_RULESET, _SYS_RESTRICT_SELF = 444, 446
_CREATE_RULESET_VERSION = 1 << 0
_ACCESS_FS_MAKE_BLOCK = 1 << 11
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1
SCOPES_ABI = 6  # the first ABI that scopes signals and abstract Unix sockets
_PR_SET_NO_NEW_PRIVS = 38


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # the libc this interpreter is linked with
    libc.syscall.restype = ctypes.c_long
    return libc


_LIBC = _libc()


def abi_version() -> int:
    """The kernel's Landlock ABI: 0 when it has none (an old kernel, or Landlock left out of its LSMs)."""
    if _LIBC is None:
        return 0
    version = _LIBC.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(int(version), 0)


def bot_ruleset(abi: int) -> int:
    """A ruleset file descriptor (close-on-exec) that each bot's domain is made from."""
    if _LIBC is None or abi < 1:
        raise OSError("Landlock is not available on this system")
    if abi >= SCOPES_ABI:
        attr = struct.pack("=QQQ", 0, 0, _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL)
    else:
        attr = struct.pack("=Q", _ACCESS_FS_MAKE_BLOCK)
    buffer = ctypes.create_string_buffer(attr, len(attr))
    fd = int(_LIBC.syscall(_SYS_CREATE_RULESET, buffer, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0)))
    if fd < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"landlock_create_ruleset: {os.strerror(error)}")
    return fd


def restrict_self(ruleset_fd: int) -> bool:
    """In the child, before exec: no new privileges, then a new domain of its own. False if refused."""
    assert _LIBC is not None
    if _LIBC.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return False
    return int(_LIBC.syscall(_SYS_RESTRICT_SELF, ruleset_fd, ctypes.c_uint32(0))) == 0
