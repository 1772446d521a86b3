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


ECHO_CHUNK_SECONDS = 0.5  # long enough that noise rarely matches a chunk, short enough to realign after a gap
ECHO_MAX_DRIFT_SECONDS = 0.3  # how far a chunk may sit from where the whole template fits best


def echo_similarity(sent: Pcm, received: np.ndarray, received_rate: int) -> float:
    """How much of `sent` is played back in `received`, 0..1 (~0.9 for a clean echo).

    Tells "the bot played back what it heard" apart from "the bot made some noise": ~0.9 for the
    parrot's echo after two Opus passes (docs/reference/local_e2e.md §3), near 0 for tones or silence.
    Judged per half-second chunk of the template, each found near where the whole template fits
    best: a real-time path that drops or conceals a 20 ms frame under CPU contention shifts what
    follows by a frame, which would halve a whole-template correlation, yet the echo is still the
    utterance. The chunks' scores are averaged by their energy, so only complete copies score high:
    half the utterance scores about half. Record until the whole echo has arrived.
    """
    if received_rate % sent.sample_rate:
        raise ValueError(f"cannot compare {sent.sample_rate} Hz with {received_rate} Hz")
    # Opus output is band-limited, so plain decimation to the sent rate aliases very little.
    heard = received[:: received_rate // sent.sample_rate].astype(np.float64)
    template = sent.samples.astype(np.float64)
    if len(heard) < len(template) or not template.any():
        return 0.0
    scores = _peak_correlations(template, heard)
    anchor = int(np.argmax(scores))
    chunk = int(ECHO_CHUNK_SECONDS * sent.sample_rate)
    drift = int(ECHO_MAX_DRIFT_SECONDS * sent.sample_rate)
    weighted = total_energy = 0.0
    for start in range(0, len(template), chunk):
        piece = template[start : start + chunk]
        energy = float(np.sum(piece**2))
        if not energy:
            continue
        low = max(0, anchor + start - drift)
        window = heard[low : anchor + start + len(piece) + drift]
        best = float(np.max(_peak_correlations(piece, window))) if len(window) >= len(piece) else 0.0
        weighted += energy * best
        total_energy += energy
    return weighted / total_energy


def _peak_correlations(template: np.ndarray, heard: np.ndarray) -> np.ndarray:
    """|normalised cross-correlation| of `template` at every offset where it fits inside `heard`."""
    size = 1 << int(np.ceil(np.log2(len(heard) + len(template))))
    correlation = np.fft.irfft(np.fft.rfft(heard, size) * np.conj(np.fft.rfft(template, size)), size)
    # Energy of every window of the template's length, by running sums: O(n), where
    # np.convolve(..., mode="valid") is O(n·m) and takes minutes on a 15 s recording.
    running = np.concatenate(([0.0], np.cumsum(heard**2)))
    window_energy = running[len(template) :] - running[: -len(template)]
    valid = correlation[: len(window_energy)]
    template_energy = float(np.sum(template**2))
    # Where the recording is (near) silent the ratio is rounding noise over nothing: no match.
    audible = window_energy > 1e-6 * template_energy
    denominator = np.sqrt(np.where(audible, window_energy, 1.0) * template_energy)
    return np.where(audible, np.abs(valid) / denominator, 0.0)
