"""How often the booking line's recogniser hears each caller phrase right, as a call delivers it.

    python -m bench.booking_asr [--renderings 50] [--ref main] [--phrase "Yes please" ...]

Each phrase is every `say` of bench/eval_steadiness_suite/*.toml, examples/booking/scenarios/*.toml
and docs/evals.md, plus a few of the same domain the language model was not built from. Each is
spoken `--renderings` times by the eval's caller voice (eSpeak NG en-us+f3, which renders the same
text a little differently each time), sent the way the eval's WebRTC caller sends it (its mic's
20 ms blocks through the mic's own Opus encoding, silence as its one silent packet, decoded at
48 kHz as the bot's aiortc does and brought back to 16 kHz mono by PyAV's resampler, the one
Pipecat's SmallWebRTC input transport uses), cut as Pipecat's segmented STT cuts a turn, and decoded
by a fresh `Recogniser` (a call's first turn is its bot's first utterance).

Prints, per phrase: renderings heard exactly, renderings whose key words (numbers, days, yes/no,
the intents' words, in order) were heard, and the decode's CPU per turn. `--ref` decodes with the
booking line's recogniser as it is at that git ref (its listening.py, language_model.py and
booking_flow.py), to compare before and after a change. Asserts nothing; prints the load average.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BOOKING = ROOT / "examples" / "booking"
SOURCES = ("bench/eval_steadiness_suite/*.toml", "examples/booking/scenarios/*.toml", "docs/evals.md")
# Same domain, not among the language model's sentences: heard no worse after a change.
UNSEEN = (
    "A table for five saturday at seven",
    "Can I book for two on sunday at eight",
    "Book a table for two monday at six",
    "I would like to book a table for eight thursday at seven",
)
INTENT_WORDS = {"yes", "no", "right", "cancel", "hours", "open", "book", "booking", "table", "goodbye", "bye", "at"}
BLOCK = 320  # 20 ms at 16 kHz, the caller's block
# The segment Pipecat's SegmentedSTTService hands the recogniser: it keeps the second before the VAD
# fires (about 0.2 s into the speech), and ends after the VAD's stop (0.2 s, booking_line.py) plus
# the trailing silence it appends (0.2 s, listening.py).
LEAD_BLOCKS, TAIL_BLOCKS, TRAILING_SILENCE = 40, 20, 3200


def phrases() -> list[str]:
    found: set[str] = set()
    for pattern in SOURCES:
        for path in ROOT.glob(pattern):
            found.update(re.findall(r'say\s*=\s*"([^"]+)"', path.read_text()))
    return sorted(found)


def through_webrtc(samples: np.ndarray) -> np.ndarray:
    """16 kHz PCM as the bot's recogniser gets it from a call's first turn: sent by the eval's mic
    (`PacedMic`: 20 ms blocks, a fresh Opus encoder whose start-up swallows the speech's first block,
    digital silence sent as the one packet it encodes to, so the encoder's tail is never flushed),
    decoded at 48 kHz as the bot's aiortc does and brought back to 16 kHz mono by PyAV's resampler (the
    one Pipecat's SmallWebRTC input uses), cut as Pipecat's segmented STT cuts it: the second before
    the VAD's start, the speech, the VAD's stop and the trailing silence the service appends."""
    from aiortc.codecs.opus import OpusDecoder
    from aiortc.jitterbuffer import JitterFrame
    from av import AudioFrame, AudioResampler

    from voicefleet.loadtest.webrtc import PacedMic

    mic, decoder, resampler = PacedMic(), OpusDecoder(), AudioResampler("s16", "mono", 16000)
    speech = np.concatenate([samples.astype(np.int16), np.zeros(-len(samples) % BLOCK, np.int16)])
    silence = np.zeros(BLOCK, np.int16)
    out: list[np.ndarray] = []
    for block in [*[silence] * LEAD_BLOCKS, *speech.reshape(-1, BLOCK), *[silence] * TAIL_BLOCKS]:
        mic._encode(block)  # what its recv() hands aiortc's sender, without the real-time pacing
        while mic._packets:
            for decoded in decoder.decode(JitterFrame(data=bytes(mic._packets.popleft()), timestamp=0)):
                assert isinstance(decoded, AudioFrame)  # an audio decoder's frames
                out += [piece.to_ndarray().reshape(-1) for piece in resampler.resample(decoded)]
    return np.concatenate([*out, np.zeros(TRAILING_SILENCE, np.int16)]).astype(np.int16)


def booking_modules(ref: str | None) -> Path:
    """The folder to import the booking line's recogniser from: this tree's, or `ref`'s."""
    if ref is None:
        return BOOKING
    folder = Path(tempfile.mkdtemp(prefix="booking-asr-ref-"))
    for name in ("listening.py", "language_model.py", "booking_flow.py"):
        text = subprocess.run(
            ["git", "show", f"{ref}:examples/booking/{name}"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
        (folder / name).write_text(text)
    return folder


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z ]", " ", text.lower()).split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--renderings", type=int, default=50)
    parser.add_argument("--ref", help="decode with the booking line's recogniser at this git ref")
    parser.add_argument("--phrase", action="append", help="only these phrases (repeatable)")
    args = parser.parse_args()

    sys.path[:0] = [str(booking_modules(args.ref)), str(ROOT / "src")]
    flow, listening = importlib.import_module("booking_flow"), importlib.import_module("listening")
    from voicefleet.evals.voice import caller_voice

    key_words = INTENT_WORDS | set(flow.NUMBERS) | set(flow.DAYS)
    voice = caller_voice()
    print(f"ref: {args.ref or 'working tree'}; {args.renderings} renderings a phrase; load {os.getloadavg()}")
    print(f"{'phrase':58} {'exact':>7} {'key words':>9}  misheard as (first two)")
    totals = [0, 0, 0]
    cpu = 0.0
    for phrase in args.phrase or [*phrases(), *UNSEEN]:
        truth = words(phrase)
        exact = keyed = 0
        misheard: list[str] = []
        for _ in range(args.renderings):
            audio = through_webrtc(voice.speak(phrase).samples)
            recogniser = listening.Recogniser(flow.CALLER_PHRASES)  # fresh: a call's first utterance
            started = time.process_time()
            heard = words(recogniser.transcribe(audio.tobytes(), 16000))
            cpu += time.process_time() - started
            exact += heard == truth
            keyed += [w for w in heard if w in key_words] == [w for w in truth if w in key_words]
            if heard != truth and len(misheard) < 2:
                misheard.append(" ".join(heard))
        totals = [totals[0] + exact, totals[1] + keyed, totals[2] + args.renderings]
        n = args.renderings
        print(f"{phrase[:58]:58} {exact:>3}/{n:<3} {keyed:>4}/{n:<3}  {misheard}", flush=True)
    count = totals[2]
    print(f"all: exact {totals[0]}/{count}, key words {totals[1]}/{count}; decode CPU {cpu / count:.3f} s a turn")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
