"""PJSIP's media clock, a thread Python did not start, keeps one Python thread state for as long as it runs.

SWIG wraps each of a port's frame callbacks in PyGILState_Ensure and PyGILState_Release. On a thread with
no Python thread state, each such pair makes one and destroys it again: its frame stack mapped, faulted in
and unmapped (mmap, page faults, munmap), its allocations made and freed, twice a tick for every call: a
fifth of the clock thread's CPU in `perf record`. The first callback on a clock thread takes one more hold
on its state (PyGILState_Ensure, never released), so the state outlives each callback and is reused.

PJSUA closes its sound device after an idle second, ending the clock thread, and opens a new one for the
next call; a state held so would outlive its thread. So each new clock thread frees the held states of
threads that are gone (/proc/self/task lists them no more); one whose thread is still there (ending as
PJSUA joins it, or a second thread calling) stays listed for a later one: a state is left over while its
thread lasts, never one a call. A thread of Python's own keeps its state anyway, and is left alone.

On CPython 3.11 only: from 3.12 on, deleting another thread's state unbinds the calling thread's own from
PyGILState, and that callback's PyGILState_Release then aborts the process; there each callback's state is
made and destroyed as SWIG does. A forked child forgets the states listed: CPython freed them in it."""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from typing import Any

HOLDS = sys.version_info[:2] == (3, 11)
TASKS = "/proc/self/task"
_held = threading.local()  # a thread state's own: gone with a state made for one callback, kept with a held one
_held_before: list[tuple[int, int]] = []  # the states held and not yet freed, each with its thread's native id
_freeing = threading.Lock()  # a look at /proc lets go of the GIL: one thread at a time frees, each state once


def _api(name: str, result: Any, *arguments: Any) -> Any:
    function = getattr(ctypes.pythonapi, name)  # called with the GIL held throughout, as these want
    function.restype, function.argtypes = result, arguments
    return function


_ensure = _api("PyGILState_Ensure", ctypes.c_int)
_current = _api("PyThreadState_Get", ctypes.c_void_p)
_clear = _api("PyThreadState_Clear", None, ctypes.c_void_p)
_delete = _api("PyThreadState_Delete", None, ctypes.c_void_p)


def keep_thread_state() -> None:
    """Called first in each callback PJSIP's threads make into Python: this thread's state is held from now."""
    if not HOLDS or getattr(_held, "kept", False):
        return
    _held.kept = True
    if threading.get_ident() in {thread.ident for thread in threading.enumerate()}:
        return  # a thread Python started (a test's, the SIP thread's) keeps its state until it ends
    _ensure()
    native_id = threading.get_native_id()
    with _freeing:
        if os.path.isdir(f"{TASKS}/{native_id}"):  # else /proc cannot tell which threads are gone: none freed
            for state, thread in list(_held_before):
                if not os.path.exists(f"{TASKS}/{thread}"):  # gone: its state can no longer be used
                    _held_before.remove((state, thread))
                    _clear(state)
                    _delete(state)
        _held_before.append((int(_current()), native_id))


def _forget_in_child() -> None:
    global _freeing
    _freeing = threading.Lock()  # another thread may have held it at the fork
    _held_before.clear()


os.register_at_fork(after_in_child=_forget_in_child)
