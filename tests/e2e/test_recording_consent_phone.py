"""A `consent` phone call whose caller talks over the announcement: the recording keeps nothing the
caller said before the announcement's end (`recording_consent` on the timeline), found by locating
the recording's caller channel in what the caller sent, and its two channels stay on the call's
clock after it. Real dispatcher, real bot host running the parrot, the Twilio fake as the caller."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from tests.e2e.call_timeline import STEP, call_start, channel, heard, said
from tests.e2e.recorded_call import recorded_call
from tests.e2e.recording_checks import read_stereo
from tests.phone.conftest import phone_env, speech_8k
from tests.support.examples import PARROT
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = pytest.mark.slow  # a real dispatcher, a real bot process importing Pipecat and Silero

RATE = 8000
TOLERANCE = 0.1  # seconds


@pytest.fixture(scope="module")
def consent_phone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    env = {**phone_env(tmp_path_factory.mktemp("calls")), "BOT_FILE": str(PARROT / "bot.py"),
           "RECORDING": "consent", "RECORDING_DESTINATION": str(tmp_path_factory.mktemp("recordings"))}
    with run_dispatcher(tmp_path_factory.mktemp("consent-phone"), env) as running:
        yield running


def where_in(sent: np.ndarray, piece: np.ndarray) -> int:
    """The offset in `sent` where `piece` fits best (normalised cross-correlation)."""
    size = 1 << int(np.ceil(np.log2(len(sent) + len(piece))))
    sent_f, piece_f = sent.astype(np.float64), piece.astype(np.float64)
    correlation = np.fft.irfft(np.fft.rfft(sent_f, size) * np.conj(np.fft.rfft(piece_f, size)), size)
    running = np.concatenate(([0.0], np.cumsum(sent_f**2)))
    energy = np.sqrt(np.maximum(running[len(piece):] - running[:-len(piece)], 1e-9))
    return int(np.argmax(np.abs(correlation[:len(energy)]) / energy))


async def test_nothing_said_before_the_announcement_ended_is_kept_and_the_channels_stay_aligned(
        consent_phone: DispatcherProcess) -> None:
    epoch_of = time.time() - time.monotonic()  # the test's monotonic times as the dispatcher's epoch ones
    # The caller speaks from its first frame, over the announcement (2.5 s) and past its end.
    speech = speech_8k()
    backwards = np.frombuffer(speech, np.int16)[::-1].tobytes()  # unlike the first, so the first is found once
    recorded = await recorded_call(consent_phone, [speech, backwards, backwards], events=("recording_consent",))
    call, consent = recorded.call, recorded.timeline["recording_consent"]
    stereo = read_stereo(recorded.wav)
    assert recorded.report["consent"]["seconds"] == consent["seconds"]

    # Where the recording's caller channel begins in what the caller sent: its first loud second,
    # found in the sent stream (the first sentence; the others are reversed, so found once).
    sent = np.frombuffer(b"".join(pcm for _, pcm in call.sent), np.int16)
    left = channel(stereo.left, RATE)
    first = next(t for t, level in zip(left.times, left.levels, strict=True) if level > 300)
    begins = round(first * RATE)
    offset = where_in(sent, stereo.left[begins:begins + RATE]) - begins  # the sent sample at the recording's start
    frame = max(0, offset // int(RATE * STEP))
    kept_from = call.sent[frame][0] - STEP + (offset % int(RATE * STEP)) / RATE + epoch_of
    early = consent["at"] - kept_from
    assert early <= TOLERANCE, f"the recording begins with what was said {early:.3f}s before recording_consent"

    # After it, each answer as far after the caller's words in the recording as the caller heard it.
    spoken, lived = said(call).utterances(), heard(call)
    # A busy host may end the announcement after the first sentence is over: none of it is then kept, and
    # the recording's sentences are those the caller ended after it. A sentence ending within 0.5 s of it
    # leaves a tail that may or may not read as an utterance: left out on both sides whichever it did.
    consented = consent["at"] - epoch_of - call_start(call)  # on the caller's clock, from its first frame
    short_tails = [u for u in spoken if consented < u.end <= consented + 0.5]
    spoken = [u for u in spoken if u.end > consented + 0.5]
    right = channel(stereo.right, RATE)
    kept = left.utterances()
    if short_tails and len(kept) == len(spoken) + len(short_tails):
        kept = kept[len(short_tails):]
    assert len(kept) == len(spoken), (spoken, kept)
    for said_it, in_recording in zip(spoken[:-1], kept[:-1], strict=True):
        answered, in_wav = lived.first_loud_after(said_it.end), right.first_loud_after(in_recording.end)
        assert answered is not None and in_wav is not None, (said_it, in_recording)
        gap_heard, gap_kept = answered - said_it.end, in_wav - in_recording.end
        assert abs(gap_kept - gap_heard) <= TOLERANCE, (f"heard {gap_heard:.3f}s after the caller's words, "
                                                        f"{gap_kept:.3f}s in the recording", spoken, kept)
    assert abs((spoken[-1].end - (kept_from - epoch_of - call_start(call))) - kept[-1].end) <= TOLERANCE
