"""Does a shorter VAD `stop_secs` split the speech fixtures' utterances? Offline, no network.

    uv run --all-groups python -m bench.vad_stop_secs [--stop-secs 0.2,0.15,0.1]

Each fixture (tests/fixtures/*.wav, 16 kHz mono) is fed to Pipecat's Silero VAD analyzer in
20 ms chunks, as the bot's input transport does, once per `stop_secs`; prints how many turns the
VAD ends (speaking → quiet) and when the first ends. Fewer turns than at 0.2 s means a
shorter `stop_secs` would cut a user's sentence and answer half of it.

Then the pause fixtures (tests/support/speech_pauses.py) with their pause resized, through the
parrot's whole turn path (`OnsetVADProcessor` + `Parrot`, tests/support/parrot_turns.py): how
many turns the VAD alone ends, how many replies stand and how many were taken back because the
voice came back within the parrot's `resume_secs`. One sentence should get one reply whatever its
pause; two sentences get two once their pause is longer than about 0.45 s.
"""

from __future__ import annotations

import argparse
import asyncio
import wave
from pathlib import Path

from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams, VADState

from tests.support.parrot_turns import converse
from tests.support.speech_pauses import PAUSED_SENTENCE, TWO_SENTENCES, load

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
CHUNK = 320  # 20 ms at 16 kHz


async def turns(pcm: bytes, rate: int, stop_secs: float) -> list[float]:
    """Times (s into the file) at which the VAD reported the end of a turn."""
    vad = SileroVADAnalyzer(sample_rate=rate, params=VADParams(stop_secs=stop_secs))
    vad.set_sample_rate(rate)  # what the input transport does when it starts
    ends: list[float] = []
    previous = VADState.QUIET
    for offset in range(0, len(pcm) - CHUNK * 2, CHUNK * 2):
        state = await vad.analyze_audio(pcm[offset : offset + CHUNK * 2])
        if previous == VADState.SPEAKING and state == VADState.QUIET:
            ends.append(offset / 2 / rate)
        if state in (VADState.SPEAKING, VADState.QUIET):
            previous = state
    return ends


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stop-secs", default="0.2,0.15,0.1")
    parser.add_argument("--pauses", default="0.15,0.2,0.3,0.4,0.5,0.6,0.8")
    args = parser.parse_args()
    print(f"{'fixture':24} {'stop_secs':>9} {'turns':>5}  turn ends (s)")
    for path in sorted(FIXTURES.glob("*.wav")):
        with wave.open(str(path)) as w:
            rate, pcm = w.getframerate(), w.readframes(w.getnframes())
        for stop in (float(s) for s in args.stop_secs.split(",")):
            ends = asyncio.run(turns(pcm + bytes(rate * 2), rate, stop))  # a second of silence after the file
            print(f"{path.name:24} {stop:9.2f} {len(ends):5d}  {', '.join(f'{t:.2f}' for t in ends)}")
    print(f"\n{'fixture':24} {'pause':>5} {'stop_secs':>9} {'VAD turns':>9} {'replies':>7} {'taken back':>10}")
    for path in (PAUSED_SENTENCE, TWO_SENTENCES):
        for pause in (float(p) for p in args.pauses.split(",")):
            speech = load(path, pause)
            for stop in (float(s) for s in args.stop_secs.split(",")):
                padded = speech.samples.tobytes() + bytes(speech.sample_rate * 2)
                vad_turns = len(asyncio.run(turns(padded, speech.sample_rate, stop)))
                echoes, taken_back = asyncio.run(converse(speech, stop_secs=stop))
                print(f"{path.name:24} {pause:5.2f} {stop:9.2f} {vad_turns:9d} {len(echoes):7d} {taken_back:10d}")


if __name__ == "__main__":
    main()
