"""The caller's frames waiting for PJSIP's media clock, the newest few only (sip_agent.py's Line).

Its parent sends one every 20 ms, but a parent short of CPU catches up in a burst, and a clock that takes
one a tick would keep that burst as a standing delay, every later word played (and its answer timed) late
by it. So a frame later than MAX_QUEUED is dropped, as a jitter buffer drops a late packet (the parent's own
lag says when it fell behind). Apart from PJSUA2, whose objects need its library running in the process."""

from __future__ import annotations

import contextlib
import queue

MAX_QUEUED = 3


class LatestFrames:
    """Frames put from the parent's reader thread, taken on PJSIP's media clock."""

    def __init__(self) -> None:
        self._frames: queue.SimpleQueue[bytes] = queue.SimpleQueue()

    def put(self, pcm: bytes) -> None:
        """A frame to play; the oldest dropped past MAX_QUEUED."""
        while self._frames.qsize() >= MAX_QUEUED:
            with contextlib.suppress(queue.Empty):
                self._frames.get_nowait()
        self._frames.put(pcm)

    def take(self) -> bytes | None:
        """The oldest frame kept, or None when none waits."""
        try:
            return self._frames.get_nowait()
        except queue.Empty:
            return None
