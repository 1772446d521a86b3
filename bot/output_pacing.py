"""The bot's outbound WebRTC audio keeps real time from where it is, not from where it began.

Pipecat's SmallWebRTC output track (`RawAudioTrack`) hands aiortc 10 ms of audio per `recv`, each
at its place on a clock started when the track was made, and 10 ms of silence whenever its queue is
empty. A track behind that clock (made long before its first `recv`, or in a process held up by a
busy host) does not wait at all until it has caught up: it sends silence as fast as aiortc asks, and
the pipeline's next chunk, which comes only after the last was taken, lands between silences. The
caller hears the greeting and every reply chopped (a loaded machine's echo test heard 0.8 s of a
4 s echo, spread over 8 s). So a track more than `MAX_BEHIND_SECONDS` behind moves its clock to
now: the time lost is skipped, as a real-time sender does, and what follows is paced again.

The pipeline's next chunk also comes only after the last was taken, a few task hops later: on a busy
host, later than the 10 ms the track waits, and the track filled the gap with silence in the middle of
a word. A track that has just sent the pipeline's audio waits up to `HOLD_SECONDS` for more before it
sends silence (the bot's speech then ends with a pause of that much in its packets, once).

Once the output transport says the bot stopped speaking (`BotStoppedSpeakingFrame`, pushed after its
last chunk was taken), no chunk is coming: `SpeechEnd` ends the hold then, and silence follows the
speech at once. Held to its end, the track sent nothing for 0.2 s after every answer, and a caller's
jitter buffer (aiortc's holds 4 packets) kept the answer's last 80 ms until the stream resumed.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

from pipecat.frames.frames import BotStoppedSpeakingFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed

MAX_BEHIND_SECONDS = 0.1  # a late wake-up this short is caught up, as Pipecat does; past it, skipped
HOLD_SECONDS = 0.2  # how long a track that is sending the bot's speech waits for its next chunk
POLL_SECONDS = 0.002
_MARK = "voicefleet_paced"
_SPEAKING = "_voicefleet_speaking"
_tracks: weakref.WeakSet[Any] = weakref.WeakSet()  # the process's tracks that have sent (one session's)


def install() -> None:
    """Wraps `RawAudioTrack.recv` for this process (a bot process runs one session); idempotent."""
    from pipecat.transports.smallwebrtc.transport import RawAudioTrack

    original = RawAudioTrack.recv
    if getattr(original, _MARK, False):
        return

    async def recv(track: RawAudioTrack) -> Any:
        _tracks.add(track)
        keep_real_time(track)
        await until_due(track)
        if getattr(track, _SPEAKING, False) and not track._chunk_queue:
            await hold(track)
            keep_real_time(track)
        setattr(track, _SPEAKING, bool(track._chunk_queue))
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


async def until_due(track: Any) -> None:
    """Waits, as Pipecat's `recv` would, until the track's next 10 ms is due."""
    if track._timestamp > 0:
        wait = track._start + track._timestamp / track._sample_rate - time.time()
        if wait > 0:
            await asyncio.sleep(wait)


async def hold(track: Any) -> None:
    # Pipecat's queue is a deque that signals nothing: polled, as Pipecat's own recv polls it.
    deadline = time.monotonic() + HOLD_SECONDS
    while not track._chunk_queue and getattr(track, _SPEAKING, False) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(POLL_SECONDS)


def speech_ended() -> None:
    """The bot's speech is all sent: a track holding for its next chunk sends silence instead."""
    for track in _tracks:
        setattr(track, _SPEAKING, False)


class SpeechEnd(BaseObserver):
    """Ends the hold when the output transport pushes `BotStoppedSpeakingFrame` (observed on every
    hop of its way: ending it again is harmless)."""

    async def on_push_frame(self, data: FramePushed) -> None:
        if isinstance(data.frame, BotStoppedSpeakingFrame):
            speech_ended()
