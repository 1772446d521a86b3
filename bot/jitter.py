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
the test client in the same interpreter, if any, keeps aiortc's buffer). 1 is the smallest
useful value: aiortc releases a frame when the next packet shows it is complete (0 acts as 1).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from aiortc.jitterbuffer import JitterBuffer

PREFETCH_ENV = "VOICEFLEET_AUDIO_JITTER_PREFETCH"
DEFAULT_PREFETCH = 1
AIORTC_AUDIO_CAPACITY = 16  # aiortc's own value: how long a lost packet is waited for
_ATTR = "_RTCRtpReceiver__jitter_buffer"  # aiortc's private (name-mangled) attribute


class BotAudioJitterBuffer(JitterBuffer):
    """aiortc's buffer, marked as ours so installing twice (renegotiation) keeps its packets."""


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

