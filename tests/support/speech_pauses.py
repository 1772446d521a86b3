"""Speech fixtures with a pause of known length in them (tests/fixtures/README.md says how they were made).

`speech_pause300ms16k.wav` is one sentence with a 300 ms pause in the middle; `two_sentences16k.wav`
is two sentences 600 ms apart. Each pause is digital silence (exact zeros, no dither), the only
long run of zeros in the file, so `with_pause` can make the same speech with any other pause, and
`first_phrase` can cut the sentence's first phrase out of it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.support.audio import Pcm, read_wav

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PAUSED_SENTENCE = FIXTURES / "speech_pause300ms16k.wav"
TWO_SENTENCES = FIXTURES / "two_sentences16k.wav"


def pause_span(samples: np.ndarray) -> tuple[int, int]:
    """[start, end) sample indexes of the longest run of zeros (the spliced pause)."""
    edges = np.diff(np.concatenate([[0], (samples == 0).astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if not len(starts):
        raise ValueError("no pause in this audio")
    longest = int(np.argmax(ends - starts))
    return int(starts[longest]), int(ends[longest])


def with_pause(pcm: Pcm, seconds: float) -> Pcm:
    """The same audio with its pause made `seconds` long."""
    start, end = pause_span(pcm.samples)
    pause = np.zeros(round(seconds * pcm.sample_rate), dtype=np.int16)
    return Pcm(np.concatenate([pcm.samples[:start], pause, pcm.samples[end:]]), pcm.sample_rate)


def load(path: Path, pause_seconds: float | None = None) -> Pcm:
    pcm = read_wav(path)
    return pcm if pause_seconds is None else with_pause(pcm, pause_seconds)


def first_phrase() -> Pcm:
    """Real speech, one short turn: the paused sentence's first phrase, up to its pause (1.5 s). A test
    that needs a turn answered, not a long one, saves its length twice: spoken, then echoed."""
    sentence = read_wav(PAUSED_SENTENCE)
    return Pcm(sentence.samples[:pause_span(sentence.samples)[0]], sentence.sample_rate)
