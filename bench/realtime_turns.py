"""A converged bot's turn latency through voicefleet, less the model's own share.

    uv run --all-groups python -m bench.realtime_turns [--turns 10] [--calls 2] [--delay 0.3]

Through the system: a local dispatcher (`python -m dispatcher`, `BOT_FILE=examples/realtime/bot.py`)
holding a warm bot, the WebRTC caller of `voicefleet loadtest` here, and the OpenAI Realtime fake
(tests/fakes/openai_realtime.py) as the model, answering each turn after `--delay` seconds. Each
call speaks `--turns` turns of tests/fixtures/speech16k.wav. Per turn (tests/support/realtime_turns.py):

- heard: the caller's end of speech → the first loud answer its audio track receives;
- model: the fake's span, the turn's last loud audio in → the answer's first audio out (its VAD's
  500 ms quiet wait plus the scripted delay), on the same clock;
- beyond the model: heard − model: the caller's audio through WebRTC and the bot to the model, and
  the answer back (Opus, both jitter buffers, Pipecat's resampling and output pacing, voicefleet's host).

With `--direct`, the same bot runs under Pipecat's own development runner (`python bot.py -t webrtc`)
and the caller offers to it: the baseline, with no voicefleet in the path. voicefleet's own share of a
turn is the difference between the two runs' "beyond the model" medians.

Asserts nothing; prints p50/p95 and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from pathlib import Path

from tests.fakes.openai_realtime import FakeOpenAIRealtime
from tests.support.realtime_turns import KEY, Turn, call, direct_call, pipecat_runner, realtime_fleet
from voicefleet.loadtest.audio import read_wav

SPEECH_WAV = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "speech16k.wav"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=10, help="turns per call")
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.3, help="the fake model's scripted delay, seconds")
    parser.add_argument("--direct", action="store_true",
                        help="the baseline: the bot under Pipecat's own runner, no voicefleet")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    fake = FakeOpenAIRealtime(KEY, delay_seconds=args.delay, answer_seconds=0.6)
    speech = read_wav(SPEECH_WAV)
    turns: list[Turn] = []
    with tempfile.TemporaryDirectory() as logs:
        if args.direct:
            with pipecat_runner(Path(logs), fake) as offer:
                for _ in range(args.calls):
                    turns += asyncio.run(direct_call(offer, fake, speech, args.turns))
        else:
            with realtime_fleet(Path(logs), fake) as dispatcher:
                for _ in range(args.calls):
                    turns += asyncio.run(call(dispatcher.base_url, fake, speech, args.turns))
    print(f"{len(turns)}/{args.turns * args.calls} turns measured (p50 / p95 / mean, ms):")
    columns = {"heard by the caller": [t.heard for t in turns], "model (the fake)": [t.model for t in turns],
               "beyond the model": [t.beyond_model for t in turns]}  # fmt: skip
    for name, values in columns.items():
        print(f"  {name:22} {percentile(values, 0.5) * 1000:6.0f} / {percentile(values, 0.95) * 1000:6.0f} / "
              f"{statistics.fmean(values) * 1000:6.0f}")  # fmt: skip
    print(f"load average {load_before:.2f} → {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
