"""What Python's collector holds in a running process, for bench/dispatcher_garbage.py (bench-only: the
product has no such hook). `python -m bench.gc_probe -m dispatcher` (or `-m bot …`) runs that module as
`python -m` would, with one or both of:

  GC_PROBE_PORT  a loopback port answering one command a line, one JSON line back: `snapshot` (the
                 collector's counts and stats, the objects it tracks by type, malloc's and the kernel's
                 memory), `garbage` (one full collection keeping what it finds: its objects by type and
                 their shallow size, then freed; the collection's milliseconds; memory before and after),
                 `describe MODULE.TYPE` (each tracked object of that type in a line: a timer's callback and due
                 time, a task's coroutine, or what refers to it), `trace_mark` then `trace_diff` (with
                 GC_PROBE_TRACE: what was allocated since the mark and is still held, by line)
  GC_PROBE_FILE  a file the process appends a `snapshot` to (types left out) every GC_PROBE_EVERY s (5)
  GC_PROBE_TRACE set: Python's allocations traced from the start (tracemalloc), their bytes in each snapshot
  GC_PROBE_SET   `package.module.NAME=NUMBER`: a module constant changed before the module runs (how long
                 the local provider keeps an ended bot's record, so that what stays past it shows)

Every collection the process makes is counted by generation (`gc.callbacks`), with what it found. The
commands run on the probe's own thread, beside the event loop: the collector's work holds the GIL either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import importlib
import inspect
import json
import os
import runpy
import socketserver
import sys
import tempfile
import threading
import time
import tracemalloc
import types
from collections import Counter
from typing import Any


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


_LIBC = ctypes.CDLL(None)
_LIBC.mallinfo2.restype = _Mallinfo2
_COLLECTIONS = [0, 0, 0]  # the process's own, by generation
_FOUND = [0, 0, 0]  # what those found unreachable
_STARTED = time.monotonic()


def _counted(phase: str, info: dict[str, int]) -> None:
    if phase == "stop":
        _COLLECTIONS[info["generation"]] += 1
        _FOUND[info["generation"]] += info["collected"]


def _memory() -> dict[str, int]:
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon"):
                fields[name] = int(value.split()[0])
    info = _LIBC.mallinfo2()
    return {"rss_kb": fields["VmRSS"], "anon_kb": fields["RssAnon"], "malloc_in_use": info.uordblks,
            "malloc_mmapped": info.hblkhd, "python_blocks": sys.getallocatedblocks(),
            "traced_bytes": tracemalloc.get_traced_memory()[0]}


def _type_name(obj: object) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def snapshot(with_types: bool = True) -> dict[str, Any]:
    tracked = gc.get_objects()  # the unfrozen ones: gc.freeze() moves the rest out of every generation
    taken: dict[str, Any] = {
        "uptime_s": round(time.monotonic() - _STARTED, 1), "count": gc.get_count(), "threshold": gc.get_threshold(),
        "frozen": gc.get_freeze_count(), "tracked": len(tracked), "collections": list(_COLLECTIONS),
        "found": list(_FOUND), **_memory(),
    }
    if with_types:
        taken["types"] = Counter(map(_type_name, tracked))
    return taken


def garbage() -> dict[str, Any]:
    """One full collection, its finds kept long enough to be counted, then freed."""
    before = _memory()
    gc.set_debug(gc.DEBUG_SAVEALL)
    began = time.perf_counter()
    try:
        found = gc.collect()
    finally:
        collect_ms = (time.perf_counter() - began) * 1000
        gc.set_debug(0)
    kept = list(gc.garbage)
    gc.garbage.clear()
    by_type = Counter(map(_type_name, kept))
    shallow = sum(map(sys.getsizeof, kept))
    # Where a cycle through a frame was made: each frame's function and line; each exception's type
    frames = Counter(f"{f.f_code.co_qualname} ({os.path.basename(f.f_code.co_filename)}:{f.f_lineno})"
                     for f in kept if isinstance(f, types.FrameType))
    errors = Counter(_type_name(e) for e in kept if isinstance(e, BaseException))
    del kept
    gc.collect()  # now nothing keeps them: frees what the first found
    return {"found": found, "collect_ms": round(collect_ms, 2), "shallow_bytes": shallow, "types": by_type,
            "frames": frames, "exceptions": errors,
            "before": before, "after": _memory()}


def _what(obj: Any) -> str:
    """A line on one object: a timer's callback and when it is due, a task's or a coroutine's function."""
    if isinstance(obj, asyncio.TimerHandle):
        held = getattr(obj, "_callback", None)  # asyncio's own attribute: a handle says no more of itself
        callback = getattr(held, "__qualname__", repr(held))
        due = f"{callback}, due in {obj.when() - time.monotonic():,.0f} s"
        return due + (" (cancelled)" if obj.cancelled() else "")
    if isinstance(obj, asyncio.Task):
        return f"task {obj.get_coro().__qualname__}"  # type: ignore[union-attr]
    if inspect.iscoroutine(obj):
        return f"coroutine {obj.__qualname__}"
    return f"held by {sorted({_type_name(r) for r in gc.get_referrers(obj)})}"[:300]


def describe(type_name: str) -> dict[str, Any]:
    """The tracked objects of one type (module.qualname), each said in a line, counted."""
    return {"described": Counter(_what(o) for o in gc.get_objects() if _type_name(o) == type_name)}


_MARK = os.path.join(tempfile.gettempdir(), f"gc-probe-{os.getpid()}.tracemalloc")


def traced_since(mark: bool) -> dict[str, Any]:
    """With tracing: what was allocated and is still held since the last `mark`, by the line that allocated it,
    and in all. The mark waits in a file: held here, it would be what the process holds and the collector walks."""
    now = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    if mark:
        now.dump(_MARK)
        return {}
    grown = now.compare_to(tracemalloc.Snapshot.load(_MARK), "lineno")
    os.remove(_MARK)
    return {"total": sum(stat.size_diff for stat in grown),
            "grown": [(str(stat.traceback), stat.size_diff, stat.count_diff) for stat in grown[:20]]}


def _answer(command: str) -> dict[str, Any]:
    if command == "snapshot":
        return snapshot()
    if command == "garbage":
        return garbage()
    if command in ("trace_mark", "trace_diff"):
        return traced_since(mark=command == "trace_mark")
    if command.startswith("describe "):
        return describe(command.removeprefix("describe "))
    return {"error": f"unknown command {command!r}: send snapshot, garbage or describe TYPE"}


class _Commands(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            answer = _answer(line.decode().strip())
            self.wfile.write(json.dumps(answer).encode() + b"\n")
            self.wfile.flush()


def _sample(path: str, every: float) -> None:
    while True:
        with contextlib.suppress(OSError), open(path, "a") as out:
            out.write(json.dumps({"pid": os.getpid(), "at": time.time(), **snapshot(with_types=False)}) + "\n")
        time.sleep(every)


def install(environ: dict[str, str] | os._Environ[str] = os.environ) -> None:
    gc.callbacks.append(_counted)
    if environ.get("GC_PROBE_TRACE"):
        tracemalloc.start()
    if change := environ.get("GC_PROBE_SET"):
        target, _, number = change.partition("=")
        module, _, name = target.rpartition(".")
        setattr(importlib.import_module(module), name, float(number))
    if port := environ.get("GC_PROBE_PORT"):
        server = socketserver.ThreadingTCPServer(("127.0.0.1", int(port)), _Commands)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="gc-probe", daemon=True).start()
    if path := environ.get("GC_PROBE_FILE"):
        every = float(environ.get("GC_PROBE_EVERY", "5"))
        threading.Thread(target=_sample, args=(path, every), name="gc-probe-file", daemon=True).start()


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] != "-m":  # an interpreter named first, as a command prefix leaves it: this one runs it
        args = args[1:]
    if len(args) < 2 or args[0] != "-m":
        raise SystemExit("usage: python -m bench.gc_probe [PYTHON] -m MODULE [ARGS…] (GC_PROBE_PORT and/or "
                         "GC_PROBE_FILE set)")
    module = args[1]
    sys.argv = [module, *args[2:]]
    install()
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
