"""Turn-latency tracing (`VOICEFLEET_TRACE`), off by default and free when off.

`VOICEFLEET_TRACE=1` writes JSON lines to stderr (stdout stays the event contract);
`VOICEFLEET_TRACE=/path/file.jsonl` appends them to that file (handy behind the dispatcher,
which keeps the bot's stdout to itself). Every line is `{"trace": point, "t": epoch seconds, ...}`:

- `vad_stop`: the VAD's `VADUserStoppedSpeakingFrame` reaches the parrot's input; fields:
  `last_loud_in` (epoch time the last loud input frame, RMS > 300, reached the same spot),
  `jitter_hold_ms` (median time an audio packet sat in the bot's inbound jitter buffer over the
  turn), `stop_secs`, `first_quiet_window` (epoch time the VAD analysed the first window of the
  silence that ended the turn: from there on it is the `stop_secs` count);
- `reply_pushed`: the first reply frame leaves the parrot (or the TTS) towards the output;
- `bot_started_speaking`: the output transport reports `BotStartedSpeakingFrame`;
- `out_first_loud`: the output track hands the first loud 10 ms chunk of the reply to aiortc's
  encoder (Opus then waits for a second 10 ms chunk to fill a 20 ms packet).

`bench/local_session.py --trace` joins these with the client's clock into the per-stage breakdown
documented in docs/bot.md. Part of the parrot example: a bot's own instrumentation, which
voicefleet's host neither needs nor provides.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, TextIO

import numpy as np
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    OutputAudioRawFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

TRACE_ENV = "VOICEFLEET_TRACE"
LOUD_RMS = 300.0  # int16 RMS; the test client's threshold for "the user is speaking"
_JITTER_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"  # aiortc's private (name-mangled) attribute


def _rms(audio: bytes) -> float:
    samples = np.frombuffer(audio, dtype=np.int16)
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if samples.size else 0.0


class Tracer:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.last_loud_in: float | None = None
        self.jitter_holds: deque[float] = deque(maxlen=500)
        self.armed = False  # True between vad_stop and the first loud output chunk
        self.vad_windows: deque[tuple[float, float]] = deque(maxlen=64)  # (epoch, confidence)
        self.vad_confidence = 0.7

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Tracer | None:
        target = environ.get(TRACE_ENV, "").strip()
        if target in ("", "0", "false", "no"):
            return None
        if target in ("1", "true", "yes", "stderr"):
            return cls(sys.stderr)
        return cls(open(target, "a", buffering=1))  # noqa: SIM115 (lives as long as the process)

    def emit(self, point: str, t: float | None = None, **fields: Any) -> None:
        line = {"trace": point, "t": round(t if t is not None else time.time(), 4), **fields}
        try:
            self._stream.write(json.dumps(line) + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass

    def watch_vad(self, vad: Any) -> None:
        """Records when each VAD window was analysed and its confidence (wraps this analyzer only)."""
        original = vad.voice_confidence
        self.vad_confidence = vad.params.confidence
        windows = self.vad_windows

        def voice_confidence(buffer: bytes) -> float:
            confidence = float(np.asarray(original(buffer)).ravel()[0])
            windows.append((time.time(), confidence))
            return confidence

        vad.voice_confidence = voice_confidence

    def first_quiet_window(self) -> float | None:
        first = None
        for t, confidence in reversed(self.vad_windows):
            if confidence >= self.vad_confidence:
                break
            first = t
        return first

    def watch_connection(self, connection: Any) -> None:
        """Times the bot's own peer connection: how long each inbound audio packet waits in its
        receiver's jitter buffer (whichever buffer the host installed), and the reply's first loud
        output chunk. Call with the runner's `webrtc_connection`, whose answer is already set."""
        for transceiver in connection.pc.getTransceivers():
            buffer = getattr(transceiver.receiver, _JITTER_ATTRIBUTE, None)
            if transceiver.kind == "audio" and buffer is not None:
                self._time_buffer(buffer)
        self.patch_output_track()

    def _time_buffer(self, buffer: Any) -> None:
        arrivals: dict[int, float] = {}
        add = buffer.add
        holds = self.jitter_holds

        def timed_add(packet: Any) -> Any:
            now = time.monotonic()
            arrivals.setdefault(packet.timestamp, now)
            pli, frame = add(packet)
            if frame is not None:
                arrived = arrivals.pop(frame.timestamp, None)
                if arrived is not None:
                    holds.append((now - arrived) * 1000)
                if len(arrivals) > 64:  # packets given up on: forget them
                    for ts in sorted(arrivals)[:-32]:
                        arrivals.pop(ts, None)
            return pli, frame

        buffer.add = timed_add

    def patch_output_track(self) -> None:
        """Times the first loud reply chunk the SmallWebRTC output track hands to aiortc (bot process only)."""
        from pipecat.transports.smallwebrtc.transport import RawAudioTrack

        if getattr(RawAudioTrack.recv, "traced", False):
            return
        original = RawAudioTrack.recv
        tracer = self

        async def recv(track: RawAudioTrack) -> Any:
            frame = await original(track)
            if tracer.armed and _rms(bytes(frame.planes[0])) > LOUD_RMS:
                tracer.armed = False
                tracer.emit("out_first_loud")
            return frame

        recv.traced = True  # type: ignore[attr-defined]
        RawAudioTrack.recv = recv  # type: ignore[method-assign]


class TraceBeforeReply(FrameProcessor):
    """Between the VAD and the parrot/STT: last loud input frame, VAD stop."""

    def __init__(self, tracer: Tracer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._tracer = tracer

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        tracer = self._tracer
        if isinstance(frame, InputAudioRawFrame):
            if _rms(frame.audio) > LOUD_RMS:
                tracer.last_loud_in = time.time()
        elif isinstance(frame, VADUserStoppedSpeakingFrame) and direction == FrameDirection.DOWNSTREAM:
            holds = list(tracer.jitter_holds)
            tracer.jitter_holds.clear()
            tracer.armed = True
            tracer.emit(
                "vad_stop",
                last_loud_in=tracer.last_loud_in,
                jitter_hold_ms=round(statistics.median(holds), 1) if holds else None,
                stop_secs=getattr(frame, "stop_secs", None),
                first_quiet_window=tracer.first_quiet_window(),
            )
        await self.push_frame(frame, direction)


class TraceAfterReply(FrameProcessor):
    """Between the parrot/TTS and the output transport: reply pushed, bot started speaking."""

    def __init__(self, tracer: Tracer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._tracer = tracer

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, OutputAudioRawFrame) and self._tracer.armed and direction == FrameDirection.DOWNSTREAM:
            if not getattr(self, "_pushed", False):
                self._pushed = True
                self._tracer.emit("reply_pushed", bytes=len(frame.audio))
        elif isinstance(frame, BotStartedSpeakingFrame):
            if getattr(self, "_pushed", False):
                self._tracer.emit("bot_started_speaking")
            self._pushed = False
        await self.push_frame(frame, direction)
