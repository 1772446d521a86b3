"""Counts of what a piece of async work does, none of which depends on the machine's speed: Python
lines executed, Python functions called, store round trips, settings and environment reads, HMACs.

Only the work inside `counting()` is counted, and the tasks it starts (they inherit its context),
never what other tasks run meanwhile (the dispatcher's background loops): each event checks a
context variable. The tracer slows the counted code about tenfold, so count few calls.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import sys
from collections import Counter
from collections.abc import Iterator
from contextvars import ContextVar
from types import FrameType
from typing import Any

from dispatcher.store.client import Store
from dispatcher.store.together import Together

_COUNTING: ContextVar[Counter[str] | None] = ContextVar("operation_counts", default=None)
# A settings read: a function of the typed settings' reader (the catalogue, its parsers), or the
# dispatcher's settings built again; and a look-up in the process's environment.
SETTINGS_FILES = ("/voicefleet_settings/",)
SETTINGS_BUILT = ("from_env", "__post_init__")
_ENVIRON_READ = type(os.environ).__getitem__.__code__
_KEYED_HASH = hmac.new.__code__  # an HMAC begun: what a start derives with a secret
TOGETHER = "store, together: "  # a store operation sent in a round trip with others (dispatcher/store/together.py)


def _trace(frame: FrameType, event: str, arg: Any) -> Any:
    counts = _COUNTING.get()
    if counts is None:
        return None  # not this work's frame: no line events for it either
    counts["python calls"] += 1
    code = frame.f_code
    if any(part in code.co_filename for part in SETTINGS_FILES) or (
            "/dispatcher/settings/" in code.co_filename and code.co_name in SETTINGS_BUILT):
        counts["settings reads"] += 1
    elif code is _ENVIRON_READ:
        counts["environment reads"] += 1
    elif code is _KEYED_HASH:
        counts["keyed hashes"] += 1
    return _lines


def _lines(frame: FrameType, event: str, arg: Any) -> Any:
    if event == "line":
        counts = _COUNTING.get()
        if counts is not None:
            counts["python lines"] += 1
    return _lines


@contextlib.contextmanager
def traced() -> Iterator[None]:
    """Installs the tracer (this thread) and the store's counter for the duration."""
    original = Store.call

    async def call(self: Store, make: Any, *, timeout: float | None = None) -> Any:
        counts = _COUNTING.get()
        if counts is not None:
            counts["store round trips"] += 1
            caller = sys._getframe(1).f_code  # which store operation: the failure message names them
            counts[f"store: {caller.co_filename.rsplit('/', 1)[-1]}:{caller.co_name}"] += 1
        return await original(self, make, timeout=timeout)

    joined = Together.run

    worded = Together.set_px

    def named() -> None:
        counts = _COUNTING.get()
        if counts is not None:  # an operation that shares a round trip with others: named too
            caller = sys._getframe(2).f_code
            counts[f"{TOGETHER}{caller.co_filename.rsplit('/', 1)[-1]}:{caller.co_name}"] += 1

    async def run(self: Together, script: Any, keys: Any, args: Any) -> Any:
        named()
        return await joined(self, script, keys, args)

    async def set_px(self: Together, key: str, value: str, ms: int) -> Any:
        named()
        return await worded(self, key, value, ms)

    Store.call = call  # type: ignore[method-assign]
    Together.run = run  # type: ignore[method-assign]
    Together.set_px = set_px  # type: ignore[method-assign]
    previous = sys.gettrace()
    sys.settrace(_trace)
    try:
        yield
    finally:
        sys.settrace(previous)
        Store.call = original  # type: ignore[method-assign]
        Together.run = joined  # type: ignore[method-assign]
        Together.set_px = worded  # type: ignore[method-assign]


@contextlib.contextmanager
def counting(counts: Counter[str]) -> Iterator[Counter[str]]:
    """Counts into `counts` the work done in this context (and the tasks it starts) until the end."""
    token = _COUNTING.set(counts)
    try:
        yield counts
    finally:
        _COUNTING.reset(token)
