"""Lines passed on to the edge's own output without the event loop ever waiting on it: a thread of
its own writes them from a bounded queue, at most `bytes_per_second`. What is over that (a flood of
malformed requests, each of which Kamailio's parser logs in full) is left out, and said so in one
line a second (after the lines queued before, or while a flood keeps the queue from emptying), so a
sender cannot make the edge's log grow faster than that, nor slow its loop. At the edge's stop, and at
its exit whatever ends it (atexit), what is queued is written within CLOSE_SECONDS in all; what a stalled
output keeps back past that, and what is put after the stop, is said left out, never lost without a word."""

from __future__ import annotations

import atexit
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

BYTES_PER_SECOND = 65536
QUEUED_LINES = 1024  # a writer slower than the budget (a stalled terminal): lines past these are left out
SAID_SECONDS = 1.0  # while lines are left out, how often at least the summary is written
CLOSE_SECONDS = 5.0  # at the stop, how long the queued lines have to be written (a full queue: about 1 s)
SUMMARY_SECONDS = 1.0  # of those, kept at most for the last summary when the output stalled
_CLOSED = b""  # put by `close`: the writer writes what is queued before it, then its last summary, and ends


class LogRelay:
    def __init__(self, out: Callable[[], BinaryIO], name: str, bytes_per_second: int = BYTES_PER_SECOND,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`out`: where lines go (read at each write: a test may swap sys.stderr); `name` starts the summary."""
        self._out, self._name, self._budget, self._clock = out, name, bytes_per_second, clock
        self._queue: queue.Queue[bytes] = queue.Queue(QUEUED_LINES)
        self._lock = threading.Lock()  # the loop counts, the writer reports
        self._second, self._spent = -1, 0
        self._left_lines, self._left_bytes = 0, 0
        self._said_at = clock()  # the writer's last summary
        self._closed = False
        # A daemon, so that a stalled output never holds the process; drained at exit by `close` instead.
        self._writer = threading.Thread(target=self._write, name=f"{name} log", daemon=True)
        self._writer.start()
        atexit.register(self.close)

    def close(self, seconds: float = CLOSE_SECONDS) -> None:
        """Writes what is queued, within `seconds` in all; what is still queued then is said left out (if the
        output takes even that line). Safe to call again: a later call (atexit's) says how many lines were put
        after the first, so none is lost without a word."""
        with self._lock:
            first, self._closed = not self._closed, True
        if not first:
            self._say_left_out()
            return
        deadline = time.monotonic() + seconds
        last = min(SUMMARY_SECONDS, seconds / 5)  # kept for the summary of what a stalled output held back
        with contextlib.suppress(queue.Full):
            self._queue.put(_CLOSED, timeout=max(0.0, deadline - last - time.monotonic()))
        self._writer.join(max(0.0, deadline - last - time.monotonic()))
        if not self._writer.is_alive():
            return
        while True:  # the output stalled: what is still queued is counted, so the writer says so if it can
            try:
                left = self._queue.get_nowait()
            except queue.Empty:
                break
            with self._lock:
                if left != _CLOSED:
                    self._left_out(left)
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_CLOSED)
        self._writer.join(max(0.0, deadline - time.monotonic()))

    def _say_left_out(self) -> None:
        """Once the writer has ended: says how many lines were put since, if any (this thread writes it)."""
        if self._writer.is_alive():
            return  # still stalled on our output: it says its own count if it ever gets through
        with self._lock:
            left, self._left_lines = self._left_lines, 0
            left_bytes, self._left_bytes = self._left_bytes, 0
        if left:
            with contextlib.suppress(OSError, ValueError):  # our own output closed: nothing to tell
                out = self._out()
                out.write(self._summary(left, left_bytes, "put after the stop"))
                out.flush()

    def put(self, line: bytes) -> None:
        """Queues `line` (never blocks); past this second's budget, with the queue full or once closed, only
        counts it."""
        if not line:
            return
        second = int(self._clock())
        with self._lock:
            if self._closed:
                self._left_out(line)
                return
            if second != self._second:
                self._second, self._spent = second, 0
            if self._spent + len(line) > self._budget:
                self._left_out(line)
                return
            self._spent += len(line)
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            with self._lock:
                self._left_out(line)

    def _left_out(self, line: bytes) -> None:
        self._left_lines += 1
        self._left_bytes += len(line)

    def _write(self) -> None:
        while True:
            try:
                line: bytes | None = self._queue.get(timeout=1.0)
            except queue.Empty:
                line = None
            closing = line == _CLOSED
            if closing:
                line = None
            left = left_bytes = 0
            # Said after the lines queued before those left out, or at least each SAID_SECONDS under a flood.
            if closing or self._queue.empty() or self._clock() - self._said_at >= SAID_SECONDS:
                self._said_at = self._clock()
                with self._lock:
                    left, self._left_lines = self._left_lines, 0
                    left_bytes, self._left_bytes = self._left_bytes, 0
            if not left and line is None:
                if closing:
                    return
                continue
            out = self._out()
            try:
                if line is not None:
                    out.write(line)
                if left:
                    out.write(self._summary(left, left_bytes, f"over {self._budget} bytes a second, or our output "
                                                                  "stalled"))
                out.flush()
            except (OSError, ValueError):  # our own output closed: nothing to tell, and the loop must not wait
                pass
            if closing:
                return

    def _summary(self, left: int, left_bytes: int, why: str) -> bytes:
        return f"{self._name}: {left} lines ({left_bytes} bytes) of its log left out: {why}\n".encode()
