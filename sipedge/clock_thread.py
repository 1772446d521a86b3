"""PJSIP's media clock, a thread Python did not start, keeps one Python thread state for as long as it runs.

SWIG wraps each of a port's frame callbacks in PyGILState_Ensure and PyGILState_Release. On a thread with
no Python thread state, each such pair makes one and destroys it again: its frame stack mapped, faulted in
and unmapped (mmap, page faults, munmap), its allocations made and freed, twice a tick for every call: a
fifth of the clock thread's CPU in `perf record`. The first callback on a clock thread takes one more hold
on its state (PyGILState_Ensure, never released), so the state outlives each callback and is reused.

PJSUA closes its sound device after an idle second, ending the clock thread, and opens a new one for the
next call; a state held so would outlive its thread. So the state of the thread held before is freed once
a new one is held, if that thread is gone (PJSUA joins the old clock thread before it starts a new one):
one state at most is left over, never one a call. A thread of Python's own keeps its state anyway, and is
left alone."""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Any

_held = threading.local()  # a thread state's own: gone with a state made for one callback, kept with a held one
_held_before: list[tuple[int, int]] = []  # the state held last, and its thread's native id


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
    if getattr(_held, "kept", False):
        return
    _held.kept = True
    if threading.get_ident() in {thread.ident for thread in threading.enumerate()}:
        return  # a thread Python started (a test's, the SIP thread's) keeps its state until it ends
    _ensure()
    held = (int(_current()), threading.get_native_id())
    for state, native_id in _held_before:
        if not os.path.exists(f"/proc/self/task/{native_id}"):  # gone: its state can no longer be used
            _clear(state)
            _delete(state)
    _held_before[:] = [held]
