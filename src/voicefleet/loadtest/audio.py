"""Audio as the load test's callers hear and speak it: a WAV read, loudness, loud segments.

Loudness is the RMS of int16 samples. Speech from the packaged speech16k.wav peaks in the
thousands; the parrot's beep is ~5600; WebRTC comfort/auto silence is ~0. Thresholds are module
constants so every caller, test and benchmark judges "non-silent" the same way.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPEECH_RMS = 300  # a 20 ms mic block louder than this counts as the caller's speech
BOT_AUDIO_RMS = 500  # a received frame louder than this counts as bot audio
SEGMENT_GAP_SECONDS = 0.15  # quieter (or no) audio for longer than this splits two segments
SPEECH_WAV = Path(__file__).with_name("speech16k.wav")  # ~4 s of one English sentence, 16 kHz mono


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


def resample(pcm: Pcm, rate: int) -> Pcm:
    """`pcm` at `rate`, by linear interpolation: enough for speech a bot's VAD and STT hear."""
    if pcm.sample_rate == rate:
        return pcm
    count = int(len(pcm.samples) * rate / pcm.sample_rate)
    positions = np.arange(count) * pcm.sample_rate / rate
    samples = np.interp(positions, np.arange(len(pcm.samples)), pcm.samples.astype(np.float64))
    return Pcm(samples=samples.astype(np.int16), sample_rate=rate)


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
    sends nothing between replies has no quiet frames to split on, see docs/reference/local_e2e.md §5.7)."""
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


def first_reply(times: list[float], levels: list[float], speech_end: float) -> Segment | None:
    """The first loud segment that began after the caller's speech ended: the bot's reply."""
    return next((s for s in loud_segments(times, levels) if s.start > speech_end), None)


def reply_heard(times: list[float], levels: list[float], speech_end: float | None, now: float,
                quiet_after: float = 1.0) -> bool:
    """A loud segment began after the caller's speech ended, and has been over for `quiet_after`."""
    if speech_end is None:
        return False
    replies = [s for s in loud_segments(times, levels) if s.start > speech_end]
    return bool(replies) and now - replies[-1].end > quiet_after
