"""The caller's audio on its way through the edge, each 20 ms frame stamped twice: when PJSIP's media
clock hands it to Python (`heard`) and once its send on the call's stream has returned (`sent`). Off
unless SIPEDGE_FRAME_TRACE names a file, for bench/sip_calls.py and tests/sip/test_media_frames.py
only: a line per stamp, "<epoch ns> heard|sent <the frame's PCM in hex>". Each caller RTP packet's
samples, read off the wire, are found in this audio by their content (nothing else ties a frame to
its packet), to tell what PJSIP's jitter buffer and media clock add from what the hand-over to the
event loop and the send add, and whether a packet's audio went out whole in one frame. The file
holds what callers said: never set it on an edge that takes real calls."""

from __future__ import annotations

import os
import threading
import time
from typing import TextIO

TRACE_ENV = "SIPEDGE_FRAME_TRACE"


def _open(path: str | None) -> TextIO | None:
    return open(path, "a", buffering=1, encoding="ascii") if path else None  # noqa: SIM115  (the process's lifetime)


_trace = _open(os.environ.get(TRACE_ENV))
_lock = threading.Lock()  # PJSIP's media thread and the event loop both write


def heard(pcm: bytes) -> None:
    """PJSIP's media clock just handed the caller's `pcm` to Python."""
    _write("heard", pcm)


def sent(pcm: bytes) -> None:
    """The caller's `pcm` was just sent on the stream."""
    _write("sent", pcm)


def _write(stage: str, pcm: bytes) -> None:
    if _trace is not None:
        line = f"{time.time_ns()} {stage} {pcm.hex()}\n"
        with _lock:
            _trace.write(line)
