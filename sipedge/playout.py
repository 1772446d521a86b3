"""The bot's audio waiting for PJSIP's media clock, which takes one 20 ms frame at a time from its own
thread. The bot's transport sends ahead of real time over TCP, so this is a bounded queue of bytes,
not a jitter buffer (PJSIP's own handles the caller's RTP): past MAX_SECONDS the oldest is dropped,
and the bot's `clear` (an interruption) empties it."""

from __future__ import annotations

import threading

RATE = 8000
SAMPLE_BYTES = 2
MAX_SECONDS = 30.0


class Playout:
    def __init__(self, max_seconds: float = MAX_SECONDS) -> None:
        self._lock = threading.Lock()
        self._audio = bytearray()
        self._limit = int(max_seconds * RATE) * SAMPLE_BYTES
        self.dropped_bytes = 0

    def add(self, pcm: bytes) -> None:
        with self._lock:
            self._audio += pcm
            excess = len(self._audio) - self._limit
            if excess > 0:
                excess += excess % SAMPLE_BYTES  # whole samples
                del self._audio[:excess]
                self.dropped_bytes += excess

    def clear(self) -> None:
        with self._lock:
            self._audio.clear()

    def seconds(self) -> float:
        """How long what waits plays for."""
        with self._lock:
            return len(self._audio) / (RATE * SAMPLE_BYTES)

    def empty(self) -> bool:
        """Whether nothing waits (no lock: a frame added meanwhile is taken next time)."""
        return not self._audio

    def take(self, size: int) -> bytes:
        """`size` bytes: the bot's audio, padded with silence when it has sent less."""
        with self._lock:
            chunk = bytes(self._audio[:size])
            del self._audio[:size]
        return chunk + bytes(size - len(chunk))
