"""Speech to text offline: PocketSphinx (its English acoustic model ships inside the wheel) with a
language model and dictionary of the booking line's own words (language_model.py).

A Pipecat `SegmentedSTTService`: the VAD delimits each utterance, and the whole segment is
decoded in a worker thread once the caller stops, so the event loop never waits on the decoder.
Of the decoder's n-best sentences, the first made only of word pairs the phrases have is the
transcript (a near miss the bigram model's back-off let win by a hair loses to it). When none is,
the utterance is decoded again from a few offsets inside its first 10 ms frame (and, when none of
those allows a sentence either, at two other frame lengths), and the allowed sentence most decodes
agree on is taken: the decoder's result can turn on where its frames begin and how long they are
(docs/performance.md, "What the booking line hears").
The decoder is loaded once per process (at import of bot.py), which a warm bot has done before
its session is assigned.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import tempfile
import threading
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from language_model import arpa, vocabulary, word_pairs
from pipecat.frames.frames import Frame, TranscriptionFrame
from pipecat.services.settings import STTSettings
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601
from pocketsphinx import Decoder, get_model_path

MODEL_RATE = 16000  # PocketSphinx's bundled en-us model is wideband
MODEL_DIR = Path(get_model_path()) / "en-us"
MODEL_FRAME_RATE = 100  # frames a second, the rate the acoustic model was trained at
# How many of the decoder's best sentences are looked through for one the booking line's phrases
# allow: past 20 the alternatives only vary the same wrong words.
N_BEST = 20
# Where decoding starts again, in samples at 16 kHz, when the first decode allows nothing: 2.5 ms apart
# across the decoder's 10 ms frame, the step at which its result stopped turning on the frames' start.
FRAME_PHASES = (40, 80, 120)
# The frame rates (frames a second; the model's own is 100) of the decodes of a turn that no start
# inside the frame heard as an allowed sentence: such a rendering is heard at a slightly other frame length.
FRAME_RATES = (90, 110)


class Recogniser:
    """One PocketSphinx decoder for a closed vocabulary; `transcribe` is thread-safe."""

    def __init__(self, phrases: Iterable[str]) -> None:
        phrases = list(phrases)
        words = vocabulary(phrases)
        folder = Path(tempfile.mkdtemp(prefix="booking-asr-"))
        (folder / "words.dict").write_text(_pronunciations(words))
        (folder / "words.arpa").write_text(arpa(phrases))
        self._folder = folder
        self._decoder = _decoder(folder, MODEL_FRAME_RATE)
        self._other_rates: list[Decoder] = []  # built at the first turn that needs them: not at the bot's start
        self._pairs = word_pairs(phrases)
        self._lock = threading.Lock()

    def transcribe(self, pcm: bytes, sample_rate: int) -> str:
        samples = np.frombuffer(pcm, dtype=np.int16)
        if sample_rate != MODEL_RATE and len(samples):
            # A phone line's 8 kHz: linear interpolation is enough for the recogniser's features.
            n = int(len(samples) * MODEL_RATE / sample_rate)
            samples = np.interp(np.linspace(0, len(samples) - 1, n), np.arange(len(samples)), samples).astype(np.int16)
        with self._lock:
            first = self._decode(samples)
            if first.allowed or not first.text:
                return first.text
            decodes = [first, *(self._decode(samples[phase:]) for phase in FRAME_PHASES)]
            if not any(decode.allowed for decode in decodes):  # rare: the common miss costs no more
                if not self._other_rates:
                    self._other_rates = [_decoder(self._folder, rate) for rate in FRAME_RATES]
                decodes += [self._decode(samples, decoder) for decoder in self._other_rates]
        allowed = [decode for decode in decodes if decode.allowed]
        if not allowed:
            return first.text
        votes = collections.Counter(decode.text for decode in allowed)
        return max(allowed, key=lambda decode: (votes[decode.text], decode.score)).text

    def _decode(self, samples: np.ndarray, decoder: Decoder | None = None) -> _Decode:
        """One decode of `samples`: the best of the decoder's n-best sentences made only of word pairs the
        phrases have, or the decoder's own best (not `allowed`) when none is.

        The bigram model backs off to any word after any other, so a near miss like "yes that is
        all eight" (for "yes that is right") can win by a hair; a sentence callers say is often
        close behind it."""
        decoder = decoder or self._decoder
        decoder.start_utt()
        decoder.process_raw(samples.tobytes(), no_search=False, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        if hypothesis is None:
            return _Decode("", allowed=False, score=0)
        for candidate in itertools.islice(decoder.nbest(), N_BEST):
            text: str = candidate.hypstr.strip()
            if text and word_pairs([text]) <= self._pairs:
                return _Decode(text, allowed=True, score=candidate.score)
        return _Decode(hypothesis.hypstr.strip(), allowed=False, score=hypothesis.best_score)


def _decoder(folder: Path, frame_rate: int) -> Decoder:
    """A decoder of the booking line's words (`words.dict`, `words.arpa` in `folder`) at this frame rate."""
    return Decoder(
        hmm=str(MODEL_DIR / "en-us"),
        dict=str(folder / "words.dict"),
        lm=str(folder / "words.arpa"),
        samprate=MODEL_RATE,
        frate=frame_rate,
        loglevel="ERROR",
    )


@dataclass(frozen=True)
class _Decode:
    text: str
    allowed: bool  # made only of word pairs the booking line's phrases have
    score: int  # the decoder's log-likelihood: ties between as many votes go to the likelier


def _pronunciations(words: set[str]) -> str:
    """The bundled CMU dictionary's entries for these words (alternatives `word(2)` included)."""
    wanted = []
    for line in (MODEL_DIR / "cmudict-en-us.dict").read_text().splitlines():
        head = line.split(" ", 1)[0]
        if head.split("(", 1)[0] in words:
            wanted.append(line)
    missing = words - {line.split(" ", 1)[0].split("(", 1)[0] for line in wanted}
    if missing:
        raise ValueError(f"no pronunciation for {', '.join(sorted(missing))} in PocketSphinx's dictionary")
    return "\n".join(wanted) + "\n"


@cache
def recogniser(phrases: tuple[str, ...]) -> Recogniser:
    return Recogniser(phrases)


class PocketSphinxSTTService(SegmentedSTTService):
    """Transcribes each VAD-delimited utterance with a `Recogniser`."""

    def __init__(self, *, recogniser: Recogniser, trailing_silence_secs: float = 0.2, **kwargs: object) -> None:
        super().__init__(
            trailing_silence_secs=trailing_silence_secs,
            settings=STTSettings(model="pocketsphinx-en-us", language=Language.EN_US),
            # What the turn stop waits for at most after the VAD's stop: decoding a turn takes
            # 0.1-0.3 s of a core here, a rare turn no frame offset hears 0.9 s at a load of 10
            # (docs/performance.md); the transcript, final, ends the wait.
            ttfs_p99_latency=0.6,
            **kwargs,  # type: ignore[arg-type]
        )
        self._recogniser = recogniser

    @property
    def wants_wav_segments(self) -> bool:
        return False  # the decoder reads raw 16-bit PCM

    def can_generate_metrics(self) -> bool:
        return True

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        await self.start_processing_metrics()
        text = await asyncio.to_thread(self._recogniser.transcribe, audio, self.sample_rate)
        await self.stop_processing_metrics()
        if text:
            yield TranscriptionFrame(text, self._user_id, time_now_iso8601(), Language.EN_US)
