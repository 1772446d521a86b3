"""A phone call's recording is on the call's own clock: the dispatcher holds the carrier's frames
while the bot is claimed (warm) or started (cold, seconds) and hands them over at once, and the
recording still has each reply as far after the caller's words as the caller heard it, and every
word the caller said, the last ones included: at the call's own rate, caller left and bot right, as
long as the call. Real dispatcher, real bot host running the parrot, the Twilio fake as the caller,
timed on both sides."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from pipecat.transports.base_output import BOT_VAD_STOP_SECS

from tests.e2e.call_timeline import STEP, Windows, channel, heard, said
from tests.e2e.recorded_call import recorded_call
from tests.e2e.recording_checks import read_stereo
from tests.phone.conftest import phone_env, speech_8k
from tests.support.audio import BOT_AUDIO_RMS
from tests.support.examples import PARROT
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = pytest.mark.slow  # a real dispatcher, a real bot process importing Pipecat and Silero

TOLERANCE = 0.1  # seconds between a gap in the recording and the same gap as the caller lived it
RATE = 8000
COLD_SILENCE = 4.0  # a cold call speaks after this: within the dispatcher's 10 s of held frames
SLOW_PARROT = Path(__file__).parents[1] / "bots" / "slow_parrot.py"  # the parrot, 4 s to import
# The speech fixture's first words, to the pause between two at 1.68 s: the parrot echoes each utterance
# whole, so a turn lasts about twice its words, and the whole fixture (3.6 s) only made each call longer.
WORDS_SECONDS = 1.68


@pytest.fixture(scope="module", params=["warm", "cold"])
def phone_call(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, DispatcherProcess]]:
    folder = tmp_path_factory.mktemp("recordings")
    env = {**phone_env(tmp_path_factory.mktemp("calls")), "BOT_FILE": str(PARROT / "bot.py"),
           "RECORDING": "on", "RECORDING_DESTINATION": str(folder)}
    if request.param == "cold":  # no reserve: the call's bot is launched when the carrier connects, and is slow
        env |= {"RESERVE_MIN_IDLE": "0", "RESERVE_MAX_IDLE": "0", "BOT_FILE": str(SLOW_PARROT)}
    with run_dispatcher(tmp_path_factory.mktemp(f"phone-{request.param}"), env) as running:
        yield request.param, running


async def test_each_reply_is_as_far_after_the_callers_words_as_heard_and_no_word_is_cut(
        phone_call: tuple[str, DispatcherProcess]) -> None:
    kind, dispatcher = phone_call
    # Warm, the first words are said while the bot is claimed; cold, while it starts: held, then handed over at once.
    words = speech_8k()[: 2 * int(WORDS_SECONDS * RATE)]
    recorded = await recorded_call(dispatcher, [words] * 3, warm=kind == "warm",
                                   silence_first=COLD_SILENCE if kind == "cold" else 0.0)
    call, report = recorded.call, recorded.report
    assert report["recording"]["status"] == "complete", (kind, report["recording"])  # its why names a cause
    assert report["transport"] == "websocket", (kind, report["transport"])
    stereo = read_stereo(recorded.wav)
    assert stereo.sample_rate == RATE, "a phone call is kept at its own rate, not resampled"
    sent, lived = said(call), heard(call)
    if kind == "warm":  # as long as the call: the caller's stream, a frame every STEP from connect to hang-up
        streamed = len(sent.times) * STEP
        assert abs(stereo.seconds - streamed) <= 1.0, ("the recording is as long as the call", stereo.seconds,
                                                       streamed)
    left, right = channel(stereo.left, RATE), channel(stereo.right, RATE)
    kept = left.utterances()
    # The caller's words as its stream had them, 20 ms a frame: the test's own caller held up on a loaded
    # machine sends its backlog at once, and its words, timed as sent, would pause where the caller did not.
    spoken = Windows([index * STEP for index in range(len(sent.times))], sent.levels).utterances()
    stalled = f"the test's caller held up {max(b - a for a, b in pairwise(sent.times)):.2f} s at most"
    assert len(spoken) == 3 and len(kept) == 3, (kind, spoken, kept, stalled)
    for said_it, in_recording in zip(spoken, kept, strict=True):  # every word, the last ones too
        assert in_recording.seconds >= said_it.seconds - TOLERANCE, (kind, spoken, kept, stalled)
    for said_it, in_recording in zip(spoken[:2], kept[:2], strict=True):
        # When its last word was said: on its stream's clock, as the recording lays it. A test caller held
        # up sends it late, as a network would deliver it late: the reply comes that much later, and the
        # caller, who spoke on time, hears it that much later after their words (docs/recording.md).
        said_end = said_it.end
        sent_late = sent.times[round(said_it.end / STEP) - 1] + STEP - said_end
        answered, in_wav = lived.first_loud_after(said_end), right.first_loud_after(in_recording.end)
        assert answered is not None and in_wav is not None, (kind, said_it, in_recording)
        gap_heard, gap_kept = answered - said_end, in_wav - in_recording.end
        assert abs(gap_kept - gap_heard) <= TOLERANCE, (kind, f"heard {gap_heard:.3f}s after the caller's words, "
                                                              f"{gap_kept:.3f}s in the recording", spoken, kept,
                                                        f"{stalled}; its last word went out {sent_late:.2f} s late")
    # The transcript's bot lines point at the bot's audio in the recording: from its first sound to where
    # Pipecat's output said the bot stopped, BOT_VAD_STOP_SECS of silence after its last sound (the parrot
    # ends each sound with silence for it).
    bot_lines = [line for line in recorded.turns if line["who"] == "bot"]
    assert bot_lines, recorded.turns
    # What each clock said, for a failure: the transcript's bot lines, and the bot's sounds in the WAV.
    sounds = [(round(u.start, 2), round(u.end, 2)) for u in right.utterances(BOT_AUDIO_RMS)]
    clocks = ([(line["start"], line["end"]) for line in bot_lines], sounds)
    for line, after in zip(bot_lines, [*bot_lines[1:], None], strict=True):
        # Its sound: to a second after its end, never into the next bot line's (a cold bot's late greeting
        # can end less than a second before its first reply).
        until = line["end"] + 1.0 if after is None else min(line["end"] + 1.0, after["start"] - TOLERANCE)
        loud = [t for t, level in zip(right.times, right.levels, strict=True)
                if line["start"] - TOLERANCE <= t < until and level > BOT_AUDIO_RMS]
        assert loud and abs(loud[0] - line["start"]) <= TOLERANCE, (kind, line, loud[:1], clocks)
        ended = line["end"] - (loud[-1] + STEP)
        assert -TOLERANCE <= ended <= BOT_VAD_STOP_SECS + 2 * TOLERANCE, (kind, line, loud[-1], clocks)
