"""Audio helpers for voice tests: the callers' own (read a WAV, loudness, loud segments: the load
test's src/voicefleet/loadtest/audio.py, re-exported here) and the echo check only tests need.

Loudness is the RMS of int16 samples; thresholds are src/voicefleet/loadtest/audio.py's, so every test,
benchmark and `voicefleet loadtest` judges "non-silent" the same way.
"""

from __future__ import annotations

import numpy as np

from voicefleet.loadtest.audio import (
    BOT_AUDIO_RMS,
    SEGMENT_GAP_SECONDS,
    SPEECH_RMS,
    Pcm,
    Segment,
    loud_segments,
    read_wav,
    rms,
)

__all__ = ["BOT_AUDIO_RMS", "SEGMENT_GAP_SECONDS", "SPEECH_RMS", "Pcm", "Segment", "echo_similarity", "loud_segments",
           "read_wav", "rms"]

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
    half the utterance scores about half. Record until the whole echo has arrived. The recording is
    judged as if silence surrounded it: a bot's VAD that heard the speech start late or end early
    (by a few hundred ms on a busy machine) played back a trimmed utterance, which scores what it
    holds rather than nothing, whether or not other sounds come before and after it.
    """
    if received_rate % sent.sample_rate:
        raise ValueError(f"cannot compare {sent.sample_rate} Hz with {received_rate} Hz")
    # Opus output is band-limited, so plain decimation to the sent rate aliases very little.
    heard = received[:: received_rate // sent.sample_rate].astype(np.float64)
    template = sent.samples.astype(np.float64)
    if not template.any():
        return 0.0
    # The template may hang over either end of the recording: an echo whose start the VAD missed sits
    # right after the bot's beep, so the whole template fits only if it begins before the recording.
    heard = np.pad(heard, (len(template), len(template)))
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
