"""A call's audio between PJSIP's conference bridge and Python: 20 ms frames of 16-bit PCM at 8 kHz,
called from PJSIP's media clock thread. What the caller says goes to `heard` (which hands it to the
event loop); what the bot says is taken from its Playout, silence when it has none."""

from __future__ import annotations

from collections.abc import Callable

import pjsua2 as pj

from sipedge import frame_trace
from sipedge.byte_vector import FrameBuffer
from sipedge.clock_thread import keep_thread_state
from sipedge.media_frame import audio_in, mark_audio
from sipedge.playout import RATE, SAMPLE_BYTES, Playout

FRAME_USEC = 20_000
FRAME_BYTES = RATE * FRAME_USEC // 1_000_000 * SAMPLE_BYTES


def audio_format() -> pj.MediaFormatAudio:
    fmt = pj.MediaFormatAudio()
    fmt.type = pj.PJMEDIA_TYPE_AUDIO
    fmt.clockRate = RATE
    fmt.channelCount = 1
    fmt.bitsPerSample = SAMPLE_BYTES * 8
    fmt.frameTimeUsec = FRAME_USEC
    return fmt


class MediaPort(pj.AudioMediaPort):  # type: ignore[misc]  # SWIG's class has no type information
    def __init__(self, heard: Callable[[bytes], None], playout: Playout) -> None:
        super().__init__()
        self._heard = heard
        self._playout = playout
        self._frames = FrameBuffer(FRAME_BYTES)

    def release(self) -> None:
        """Takes the port out of the bridge now, while this object is whole (on the SIP thread). PJSIP's
        clock calls the port on its own thread: a port left for Python to free had its C++ side
        destroyed from inside the object's own deallocation, and a frame callback let in meanwhile
        found an object with no attributes (AttributeError) or revived it and freed it twice (the
        worker crashed). PJSUA2's methods on it raise TypeError after."""
        if getattr(self, "this", None) is not None:
            pj.AudioMediaPort.__swig_destroy__(self)
            self.this = None

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:  # noqa: N802  (PJSUA2's name)
        keep_thread_state()
        if pcm := audio_in(frame):
            frame_trace.heard(pcm)
            self._heard(pcm)

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:  # noqa: N802
        keep_thread_state()
        # PJSUA2 has set the frame's size to what the bridge asks for (a frame of this port's format) and
        # copies min(size, the buffer's) back: the size needs no SWIG call here.
        mark_audio(frame)
        if self._playout.empty():
            self._frames.silence(frame)
        else:
            self._frames.fill(frame, self._playout.take(FRAME_BYTES))
