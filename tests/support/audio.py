"""Audio helpers for voice tests: read a WAV, measure loudness, find loud segments.

Loudness is the RMS of int16 samples. Speech from tests/fixtures/speech16k.wav peaks in the
thousands; the parrot's beep is ~5600; WebRTC comfort/auto silence is ~0. Thresholds are module
constants so every test and benchmark judges "non-silent" the same way.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPEECH_RMS = 300  # a 20 ms mic block louder than this counts as user speech
BOT_AUDIO_RMS = 500  # a received frame louder than this counts as bot audio
SEGMENT_GAP_SECONDS = 0.15  # quieter (or no) audio for longer than this splits two segments


@dataclass(frozen=True)
class Pcm:
    samples: np.ndarray  # int16, mono
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


def read_wav(path: str | Path) -> Pcm:
    """A 16-bit PCM WAV as mono int16 (multi-channel input keeps the first channel)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit PCM, got {8 * wav.getsampwidth()}-bit")
        channels, rate = wav.getnchannels(), wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    return Pcm(samples=samples[::channels].copy(), sample_rate=rate)


def rms(samples: np.ndarray) -> float:
    if len(samples) == 0:
        return 0.0
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


@dataclass(frozen=True)
class Segment:
    start: float  # arrival time of the first loud frame (same clock as the input times)
    end: float  # arrival time of the last loud frame
    peak_rms: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def loud_segments(
    times: list[float], levels: list[float], *, threshold: float = BOT_AUDIO_RMS, gap: float = SEGMENT_GAP_SECONDS
) -> list[Segment]:
    """Groups loud frames into segments; a gap in arrival time also splits them (a transport that
    sends nothing between replies has no quiet frames to split on, see local_e2e.md §5.7)."""
    segments: list[Segment] = []
    start = last = peak = None
    for t, level in zip(times, levels, strict=True):
        if level <= threshold:
            continue
        if last is not None and t - last > gap:
            segments.append(Segment(start, last, peak))  # type: ignore[arg-type]
            start = peak = None
        start = t if start is None else start
        peak = level if peak is None else max(peak, level)
        last = t
    if start is not None:
        segments.append(Segment(start, last, peak))  # type: ignore[arg-type]
    return segments
