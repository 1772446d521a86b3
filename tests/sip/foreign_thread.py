"""A function run on a thread Python did not start, as PJSIP's media clock calls the edge's port: libc's
pthread_create runs a ctypes callback, which (as SWIG's directors) takes a Python thread state with
PyGILState_Ensure on entry and lets it go with PyGILState_Release on return. Also the interpreter's thread
states counted, a dead thread's held one included."""

from __future__ import annotations

import ctypes
from collections.abc import Callable

_libc = ctypes.CDLL(None, use_errno=True)  # a CDLL's calls let go of the GIL: a join waits without it
_Start = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)
_libc.pthread_create.argtypes = (ctypes.POINTER(ctypes.c_ulong), ctypes.c_void_p, _Start, ctypes.c_void_p)
_libc.pthread_join.argtypes = (ctypes.c_ulong, ctypes.c_void_p)


class ForeignThread:
    """`work` run once on a new native thread; `join` waits for that thread's end."""

    def __init__(self, work: Callable[[], object]) -> None:
        def start(_: int | None) -> None:
            work()

        self._start = _Start(start)  # kept: the thread calls it after this returns
        self._thread = ctypes.c_ulong()
        if error := _libc.pthread_create(ctypes.byref(self._thread), None, self._start, None):
            raise OSError(error, "pthread_create failed")

    def join(self) -> None:
        if error := _libc.pthread_join(self._thread, None):
            raise OSError(error, "pthread_join failed")


def run_on_foreign_thread(work: Callable[[], object]) -> None:
    ForeignThread(work).join()


def thread_states() -> list[int]:
    """The interpreter's thread states (their addresses), a dead thread's held one included."""
    api = ctypes.pythonapi
    api.PyInterpreterState_Get.restype = api.PyInterpreterState_ThreadHead.restype = ctypes.c_void_p
    api.PyInterpreterState_ThreadHead.argtypes = (ctypes.c_void_p,)
    api.PyThreadState_Next.restype, api.PyThreadState_Next.argtypes = ctypes.c_void_p, (ctypes.c_void_p,)
    states, state = [], api.PyInterpreterState_ThreadHead(api.PyInterpreterState_Get())
    while state:
        states.append(state)
        state = api.PyThreadState_Next(state)
    return states
