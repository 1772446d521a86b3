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
ECHO_MAX_DRIFT_SECONDS = 0.3  # how much earlier a chunk may sit than its neighbour puts it (frames lost)
ECHO_MAX_GAP_SECONDS = 1.0  # how much later (silence a starved path played before it)
ECHO_FOUND = 0.5  # a chunk matched this well says where the next one is; a weaker match leaves it where expected


def echo_similarity(sent: Pcm, received: np.ndarray, received_rate: int) -> float:
    """How much of `sent` is played back in `received`, 0..1 (~0.9 for a clean echo).

    Tells "the bot played back what it heard" apart from "the bot made some noise": ~0.9 for the
    parrot's echo after two Opus passes (docs/reference/local_e2e.md §3), near 0 for tones or silence.
    Judged per half-second chunk of the template, in order: a real-time path that drops or conceals a
    20 ms frame under CPU contention shifts what follows by a frame, and a playout that ran dry while
    a starved process was late plays silence, then the rest of the words after it; each gap alone is
    short, but together they push the echo's end far from where the whole template fits best. So the
    chunk that fits best near there is found first, and each other chunk near where its neighbour,
    as found, puts it. The chunks' scores are averaged by their energy, so only complete copies score
    high: half the utterance scores about half. Record until the whole echo has arrived. The
    recording is judged as if silence surrounded it: a bot's VAD that heard the speech start late or
    end early (by a few hundred ms on a busy machine) played back a trimmed utterance, which scores
    what it holds rather than nothing, whether or not other sounds come before and after it.
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
    anchor = int(np.argmax(_peak_correlations(template, heard)))
    chunk = int(ECHO_CHUNK_SECONDS * sent.sample_rate)
    drift, gap = int(ECHO_MAX_DRIFT_SECONDS * sent.sample_rate), int(ECHO_MAX_GAP_SECONDS * sent.sample_rate)
    pieces = [template[start : start + chunk] for start in range(0, len(template), chunk)]
    energies = [float(np.sum(piece**2)) for piece in pieces]
    near_anchor = [_chunk_match(piece, heard, anchor + i * chunk, drift, drift) for i, piece in enumerate(pieces)]
    seed = max(range(len(pieces)), key=lambda i: near_anchor[i][0] * energies[i])
    found = {seed: near_anchor[seed]}
    for step, early, late in ((1, drift, gap), (-1, gap, drift)):  # onwards from the seed, then back from it
        i = seed + step
        while 0 <= i < len(pieces):
            found[i] = _chunk_match(pieces[i], heard, found[i - step][1] + step * chunk, early, late)
            i += step
    return sum(energies[i] * score for i, (score, _) in found.items()) / sum(energies)


def _chunk_match(piece: np.ndarray, heard: np.ndarray, expected: int, early: int, late: int) -> tuple[float, int]:
    """How well `piece` is found in `heard` from `early` samples before `expected` (where it would
    begin) to `late` after, and where: (score, position); a weak match (below ECHO_FOUND) leaves the
    position at `expected`."""
    low = max(0, expected - early)
    window = heard[low : expected + len(piece) + late]
    if len(window) < len(piece) or not piece.any():
        return 0.0, expected
    correlations = _peak_correlations(piece, window)
    best = int(np.argmax(correlations))
    score = float(correlations[best])
    return score, low + best if score >= ECHO_FOUND else expected


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
