"""The bot's inbound audio jitter buffer: aiortc's, without the cushion meant for playback.

aiortc holds every audio packet until 4 later ones arrive (80 ms with 20 ms Opus packets), a
cushion for consumers that play audio on a clock; the bot feeds its VAD as fast as audio arrives.
By default (`VOICEFLEET_AUDIO_JITTER_PREFETCH=0`) a packet is handed on as soon as it is there, in
sequence order: an Opus RTP packet is always one whole frame (RFC 7587 §4.2). Reordering and loss
are handled as in aiortc (a gap holds what is behind it until it fills or 16 packets pass). Only the
bot's own peer connection's receivers are changed, never process-wide. The trade-off and the
measured gain: docs/bot.md ("Turn latency").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from aiortc.jitterbuffer import JitterBuffer, JitterFrame

from voicefleet_settings.read import setting_int

PREFETCH_ENV = "VOICEFLEET_AUDIO_JITTER_PREFETCH"
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
    """Its bounds are the catalogue's: 0 to AIORTC_AUDIO_CAPACITY - 1 (a test holds them equal)."""
    return setting_int(environ, PREFETCH_ENV)


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

