"""What PJSIP's threads hand the event loop each 20 ms (the callers' audio, their keys), for every
call of the edge at once: one wake-up of the loop per batch, not one per frame per call. Each wake-up
is a write to the loop's self-pipe, a return from its poll and a read: with a call_soon_threadsafe per
frame that was fifty a second for each call. Items are delivered in the order they were put, on the
loop; one put while a batch waits joins it."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Any

Delivery = tuple[Callable[[Any], None], Any]


class Handover:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._waiting: list[Delivery] = []  # put since the loop's last batch, not yet delivered

    def put(self, deliver: Callable[[Any], None], item: Any) -> None:
        """`deliver(item)` on the loop, soon; from any thread. Raises RuntimeError once the loop is closed."""
        with self._lock:
            self._waiting.append((deliver, item))
            if len(self._waiting) > 1:  # a wake-up is on its way already
                return
        try:
            self._loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop is closed: nothing will be delivered, nor kept
            with self._lock:
                self._waiting.clear()
            raise

    def _deliver(self) -> None:
        with self._lock:
            batch, self._waiting = self._waiting, []
        for deliver, item in batch:
            deliver(item)


_handovers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Handover] = weakref.WeakKeyDictionary()
_made = threading.Lock()


def handover(loop: asyncio.AbstractEventLoop) -> Handover:
    """The one Handover of `loop`, which every call's flow on it shares."""
    with _made:
        if (found := _handovers.get(loop)) is None:
            found = _handovers[loop] = Handover(loop)
        return found
