"""The edge's stop without cutting its callers (docs/sip.md#draining): the first stop signal drains, the second
(past REPEAT_SECONDS) stops at once. Draining, the edge refuses new calls (an INVITE `503` with Retry-After, so the
carrier tries its next route; a call or a person's leg asked of its control API `503 edge_draining`, so the
dispatcher tries its next edge) while the calls in flight go on until they end or `drain_seconds` pass; whatever is
left then is hung up as an edge stopped at once hangs up. The dispatcher's own drain (PHONE_DRAIN_SECONDS) works
the same way."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterable

log = logging.getLogger("sipedge")

# A release, a restart or a node drain waits this long for the calls in flight by default: past a few minutes'
# call (a caller cut at 5 minutes has had most of theirs), within the 10 minutes a cluster autoscaler's scale-down
# waits before it kills a pod, and short enough that replacing several edges one at a time takes minutes.
DEFAULT_DRAIN_SECONDS = 300
# The longest the file may ask for: past any session under the dispatcher's own cap (MAX_SESSION_SECONDS, 1800 s
# by default); more is taken for a slip (minutes written as seconds) rather than held for hours at each stop.
MAX_DRAIN_SECONDS = 7200
DRAINING_CODE = "edge_draining"  # the control API's refusal of a new call or leg while the edge drains
DRAINING = ("the edge is draining (stopping once its calls in flight end, docs/sip.md#draining): it takes no new "
            "call; the carrier's next route, or the dispatcher's next edge, takes it")
# A supervisor's word to its workers (sipedge/supervisor.py): drain. Not SIGTERM, which stops a worker at once, as
# every other stop of a worker means (a start abandoned, a failing edge, the drain's end); two signals of one kind
# sent together may reach a process as one.
DRAIN_SIGNAL = signal.SIGUSR2
# A worker's line to its supervisor once its calls have ended: it then stays up, refusing new calls, until the
# supervisor stops it.
DRAINED_LINE = "sipedge: drained"
CHECK_SECONDS = 0.2  # how often the calls left are counted while draining (each count reads a few sets)
# A second SIGTERM this soon after a first is the same stop told twice, not a person's "stop now": a host's
# shutdown or a `systemctl kill` can signal the container's processes itself beside the unit's `podman stop`
# (docs/sip.md#draining). A terminal sends SIGINT once a key press, so a quick second Ctrl-C is never taken
# for a repeat.
REPEAT_SECONDS = 1.0


class FirstSignal:
    """When the first stop signal came, and which, so that a SIGTERM repeating a SIGTERM within REPEAT_SECONDS is
    told from a second stop."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._at: float | None = None
        self._first: int | None = None

    def repeated(self, signum: int) -> bool:
        """Called at each stop signal: whether it repeats the first (a SIGTERM within REPEAT_SECONDS of a first
        SIGTERM), to be ignored."""
        now = self._clock()
        if self._at is None:
            self._at, self._first = now, signum
            return False
        if signum != signal.SIGTERM or self._first != signal.SIGTERM or now - self._at >= REPEAT_SECONDS:
            return False
        log.warning("sipedge: SIGTERM again within %.0f s of the first: the same stop, ignored", REPEAT_SECONDS)
        return True


class StopSignals:
    """The stop signals a process takes: the first asks for its stop (`asked`), a second for it at once (`now`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.asked = asyncio.Event()
        self.now = asyncio.Event()
        self._first = FirstSignal(clock)

    def take(self, loop: asyncio.AbstractEventLoop, signals: Iterable[signal.Signals],
             at_once: Iterable[signal.Signals] = ()) -> None:
        """`signals` drain, a second of them stops at once; `at_once` stops at once the first time."""
        for signum in signals:
            loop.add_signal_handler(signum, self.signalled, signum)
        for signum in at_once:
            loop.add_signal_handler(signum, self.stop_now)

    def signalled(self, signum: int = signal.SIGTERM) -> None:
        if self._first.repeated(signum):
            return
        if self.asked.is_set():
            self.now.set()
        self.asked.set()

    def stop_now(self) -> None:
        self.now.set()
        self.asked.set()


async def drained(left: Callable[[], int], seconds: float, now: asyncio.Event) -> int:
    """Waits until `left()` is 0, `seconds` have passed or `now` is set, whichever comes first; what `left()` was
    then: 0 when the drain ended by itself."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (count := left()) > 0 and not now.is_set() and (wait := deadline - loop.time()) > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(now.wait(), min(CHECK_SECONDS, wait))
    return count
