"""The bot's inbound audio jitter buffer: aiortc's, with a smaller prefetch (an env knob).

aiortc gives every audio `RTCRtpReceiver` a `JitterBuffer(capacity=16, prefetch=4)` and has no
option for it. `prefetch=4` means a packet is only handed to the decoder once 4 later packets
have arrived: with 20 ms Opus packets, every frame of the user's voice sits 80 ms in the bot
before the VAD sees it. That cushion exists for consumers that play audio out on a clock;
the bot does not play the user's audio, it feeds it to the VAD/STT as fast as it arrives, so
the cushion buys it nothing but delay. What protects against network trouble is unchanged:
- reordering: frames still leave in sequence order (a gap holds later packets back until the
  missing one arrives), whatever the prefetch;
- loss: a missing packet is still given up on when the `capacity` (16 packets = 320 ms) is
  exceeded, as in aiortc.
Trade-off: with prefetch 1 a late packet (network jitter > 20 ms) is not hidden by a cushion:
the frames behind it reach the VAD in a burst once it arrives, instead of on time. For the VAD
that is harmless (it counts audio, not wall time); a burst only shifts the turn's timing by the
jitter. On a very jittery network with a consumer that does care about smooth input timing,
set `VOICEFLEET_AUDIO_JITTER_PREFETCH=4` (aiortc's default) back.

Applied only to the audio receiver(s) of the bot's own peer connection (never process-wide:
the test client in the same interpreter, if any, keeps aiortc's buffer).

The default is 0, which aiortc itself treats as 1: it releases a frame only when the *next*
packet shows that the frame is complete, so every packet waited 20 ms for its successor. For
audio that wait proves nothing: an Opus RTP packet is always one whole frame (RFC 7587 §4.2),
so with 0 the bot's buffer hands over the oldest packet as soon as it is there, in sequence
order. A gap still holds the packets behind it until the missing one arrives or the capacity is
exceeded, exactly as before; what goes is the last 20 ms of cushion (measured in
bench/local_session.py --trace, stage a).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from aiortc.jitterbuffer import JitterBuffer, JitterFrame

PREFETCH_ENV = "VOICEFLEET_AUDIO_JITTER_PREFETCH"
DEFAULT_PREFETCH = 0
AIORTC_AUDIO_CAPACITY = 16  # aiortc's own value: how long a lost packet is waited for
_ATTR = "_RTCRtpReceiver__jitter_buffer"  # aiortc's private (name-mangled) attribute


class BotAudioJitterBuffer(JitterBuffer):
    """aiortc's buffer, marked as ours so installing twice (renegotiation) keeps its packets.

    With prefetch 0 the oldest packet leaves as soon as it has arrived (see the module's doc).
    """

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        if self._prefetch > 0 or self._origin is None:
            return super()._remove_frame(sequence_number)
        packet = self._packets[self._origin % self._capacity]
        if packet is None:
            return None  # a gap at the head: the packets behind it wait for it, as in aiortc
        self.remove(1)
        return JitterFrame(data=packet._data, timestamp=packet.timestamp)  # type: ignore[attr-defined]


def audio_prefetch(environ: Mapping[str, str] = os.environ) -> int:
    raw = environ.get(PREFETCH_ENV, "").strip()
    if not raw:
        return DEFAULT_PREFETCH
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{PREFETCH_ENV} must be an integer 0-{AIORTC_AUDIO_CAPACITY - 1}, not {raw!r}") from None
    if not 0 <= value < AIORTC_AUDIO_CAPACITY:
        raise ValueError(f"{PREFETCH_ENV} must be an integer 0-{AIORTC_AUDIO_CAPACITY - 1}, not {raw!r}")
    return value


def install(pc: Any, prefetch: int, buffer_class: type[JitterBuffer] = BotAudioJitterBuffer) -> int:
    """Gives each audio receiver of `pc` (an aiortc RTCPeerConnection) a buffer with `prefetch`.

    Call it after the remote description is set (the receivers exist) and before media flows.
    Returns how many receivers got a new buffer. A buffer installed earlier is kept.
    """
    installed = 0
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        if transceiver.kind != "audio" or receiver is None or not hasattr(receiver, _ATTR):
            continue
        if isinstance(getattr(receiver, _ATTR), BotAudioJitterBuffer):
            continue
        setattr(receiver, _ATTR, buffer_class(capacity=AIORTC_AUDIO_CAPACITY, prefetch=prefetch))
        installed += 1
    return installed

