"""The bot's outbound WebRTC audio keeps real time from where it is, not from where it began.

Pipecat's SmallWebRTC output track (`RawAudioTrack`) hands aiortc 10 ms of audio per `recv`, each
at its place on a clock started when the track was made, and 10 ms of silence whenever its queue is
empty. A track behind that clock (made long before its first `recv`, or in a process held up by a
busy host) does not wait at all until it has caught up: it sends silence as fast as aiortc asks, and
the pipeline's next chunk, which comes only after the last was taken, lands between silences. The
caller hears the greeting and every reply chopped (a loaded machine's echo test heard 0.8 s of a
4 s echo, spread over 8 s). So a track more than `MAX_BEHIND_SECONDS` behind moves its clock to
now: the time lost is skipped, as a real-time sender does, and what follows is paced again.
"""

from __future__ import annotations

import time
from typing import Any

MAX_BEHIND_SECONDS = 0.1  # a late wake-up this short is caught up, as Pipecat does; past it, skipped
_MARK = "voicefleet_paced"


def install() -> None:
    """Wraps `RawAudioTrack.recv` for this process (a bot process runs one session); idempotent."""
    from pipecat.transports.smallwebrtc.transport import RawAudioTrack

    original = RawAudioTrack.recv
    if getattr(original, _MARK, False):
        return

    async def recv(track: RawAudioTrack) -> Any:
        keep_real_time(track)
        return await original(track)

    setattr(recv, _MARK, True)
    RawAudioTrack.recv = recv  # type: ignore[method-assign]


def keep_real_time(track: Any, now: float | None = None) -> None:
    """Moves the track's clock (`_start`, on `time.time()` as Pipecat's) so its next 10 ms is due now,
    when it is more than `MAX_BEHIND_SECONDS` late."""
    if track._timestamp <= 0:  # its first recv: Pipecat does not wait for it
        return
    now = time.time() if now is None else now
    due = track._start + track._timestamp / track._sample_rate
    if now - due > MAX_BEHIND_SECONDS:
        track._start = now - track._timestamp / track._sample_rate
