"""The shared audio helpers judge correctly (other suites rely on them to say "the bot replied")."""

from __future__ import annotations

import numpy as np

from tests.bot.conftest import SPEECH_WAV
from tests.support.audio import echo_similarity, loud_segments, read_wav


def test_loud_segments_split_on_quiet_frames_and_on_arrival_gaps() -> None:
    times = [0.00, 0.02, 0.04, 0.06, 0.50, 0.52]  # a 0.44 s hole in arrivals between 0.06 and 0.50
    levels = [900, 900, 10, 900, 900, 900]
    segments = loud_segments(times, levels, threshold=500, gap=0.15)
    assert [(s.start, s.end) for s in segments] == [(0.00, 0.06), (0.50, 0.52)]


def test_echo_similarity_recognises_the_fixture_inside_a_longer_48k_recording() -> None:
    sent = read_wav(SPEECH_WAV)
    upsampled = np.repeat(sent.samples, 3)
    received = np.concatenate([np.zeros(48000, dtype=np.int16), upsampled // 2, np.zeros(4800, dtype=np.int16)])
    assert echo_similarity(sent, received, 48000) > 0.95


def test_echo_similarity_rejects_noise_and_tones() -> None:
    sent = read_wav(SPEECH_WAV)
    n = 3 * len(sent.samples) + 48000
    noise = np.random.default_rng(7).integers(-4000, 4000, n).astype(np.int16)
    tone = (np.sin(np.arange(n) * 2 * np.pi * 880 / 48000) * 5000).astype(np.int16)
    assert echo_similarity(sent, noise, 48000) < 0.1
    assert echo_similarity(sent, tone, 48000) < 0.1


def _drop_and_delay_frames(samples: np.ndarray, rate: int) -> np.ndarray:
    """What a real-time path does under CPU contention: a lost 20 ms frame, a 40 ms late one."""
    frame = rate // 50
    quarter, half = len(samples) // 4, len(samples) // 2
    return np.concatenate(
        [samples[:quarter], samples[quarter + frame : half], np.zeros(2 * frame, dtype=np.int16), samples[half:]]
    )


def test_echo_similarity_forgives_a_lost_frame_and_a_late_one() -> None:
    sent = read_wav(SPEECH_WAV)
    upsampled = np.repeat(_drop_and_delay_frames(sent.samples, sent.sample_rate), 3)
    received = np.concatenate([np.zeros(24000, dtype=np.int16), upsampled, np.zeros(4800, dtype=np.int16)])
    assert echo_similarity(sent, received, 48000) > 0.8


def test_echo_similarity_counts_only_the_part_of_the_utterance_that_came_back() -> None:
    sent = read_wav(SPEECH_WAV)
    silence = np.zeros(4 * 48000, dtype=np.int16)
    whole = np.concatenate([silence, np.repeat(sent.samples, 3), silence])
    first_half = np.concatenate([silence, np.repeat(sent.samples[: len(sent.samples) // 2], 3), silence])
    # The fixture's first half holds 58 % of its energy, and the score is weighted by energy.
    assert echo_similarity(sent, first_half, 48000) < 0.65 < 0.95 < echo_similarity(sent, whole, 48000)


def test_echo_similarity_judges_an_echo_with_trimmed_edges_by_what_it_holds() -> None:
    """A parrot whose VAD heard the speech start late and end early says back less than was sent:
    the recording is shorter than the template, and still the utterance."""
    sent = read_wav(SPEECH_WAV)
    trim = sent.sample_rate // 5  # 0.2 s off each edge
    trimmed = np.repeat(sent.samples[trim:-trim], 3)
    assert len(trimmed) < 3 * len(sent.samples)
    assert echo_similarity(sent, trimmed, 48000) > 0.8
    noise = (np.random.default_rng(7).standard_normal(len(trimmed)) * 3000).astype(np.int16)
    assert echo_similarity(sent, noise, 48000) < 0.2


def test_echo_similarity_judges_an_echo_without_its_start_between_a_beep_and_silence() -> None:
    """The parrot's reply as a client records it: a beep, the utterance as heard (its first 0.2 s
    missed), then silence; longer than the utterance, so the template fits whole only off its start."""
    sent = read_wav(SPEECH_WAV)
    beep = (np.sin(np.arange(sent.sample_rate // 8) * 2 * np.pi * 880 / sent.sample_rate) * 8000).astype(np.int16)
    late = sent.samples[sent.sample_rate // 5 :]
    reply = np.repeat(np.concatenate([beep, late, np.zeros(sent.sample_rate // 2, dtype=np.int16)]), 3)
    assert len(reply) > 3 * len(sent.samples)
    assert echo_similarity(sent, reply, 48000) > 0.8


def _with_silences(samples: np.ndarray, rate: int, gaps: list[float]) -> np.ndarray:
    """Silence slipped into the utterance at even intervals: a playout that ran dry while the speech
    was late (a starved process), then played the rest after it, `gaps` seconds each."""
    parts = np.array_split(samples, len(gaps) + 1)
    out = [parts[0]]
    for gap, part in zip(gaps, parts[1:], strict=True):
        out += [np.zeros(int(gap * rate), dtype=np.int16), part]
    return np.concatenate(out)


def test_echo_similarity_follows_an_echo_that_silences_pushed_later_and_later() -> None:
    """Gaps as a SIP caller heard them from a parrot on a host at a load average of 8 to 10: short
    ones that together push the end of the echo 0.8 s past where it began, or one of half a second.
    The words all came back, in order: each half second of them is found after the one before."""
    sent = read_wav(SPEECH_WAV)
    lead = np.zeros(sent.sample_rate, dtype=np.int16)
    for gaps in ([0.1, 0.12, 0.2, 0.04, 0.2, 0.14], [0.06, 0.04, 0.06, 0.5, 0.02]):
        stretched = _with_silences(sent.samples, sent.sample_rate, gaps)
        assert echo_similarity(sent, np.repeat(np.concatenate([lead, stretched]), 3), 48000) > 0.8, gaps
    # Its first half alone, stretched the same way, is still half the utterance.
    half = _with_silences(sent.samples[: len(sent.samples) // 2], sent.sample_rate, [0.1, 0.12, 0.2])
    assert echo_similarity(sent, np.repeat(half, 3), 48000) < 0.65
