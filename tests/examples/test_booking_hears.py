"""The booking line's recogniser hears the caller voice's renderings that its decoder's best guess
alone got wrong: saved as they arrive over a WebRTC call (eSpeak NG en-us+f3 at 16 kHz, through Opus
at 48 kHz and back, `python -m bench.booking_asr`), each decoded by a fresh recogniser as a call's
first turn is. The `_heard` ones were heard right before and must stay so. The "friday" ones
turned on where the decoder's frames began: heard only since the recogniser decodes again from a few
offsets inside the first frame when its first decode allows no sentence. `_4` to `_6` were misheard
from every offset inside the frame ("… three i", "… three tonight at nine"): heard only since the
recogniser decodes such a turn at two other frame lengths too."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest
from booking_flow import CALLER_PHRASES
from listening import MODEL_RATE, Recogniser

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "booking_heard"
SAID = {
    "yes_please": "yes please",
    "yes_that_is_right": "yes that is right",
    "book_for_three_friday_at_nine": "book a table for three friday at nine",
}


def pcm(path: Path) -> bytes:
    with wave.open(str(path)) as audio:
        assert audio.getframerate() == MODEL_RATE and audio.getnchannels() == 1
        frames: bytes = audio.readframes(audio.getnframes())
    return frames


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.wav")), ids=lambda path: path.stem)
def test_a_rendering_is_heard_as_said(path: Path) -> None:
    said = SAID[path.stem.rsplit("_", 1)[0]]
    assert Recogniser(CALLER_PHRASES).transcribe(pcm(path), MODEL_RATE) == said


def test_every_fixture_is_one_of_the_phrases() -> None:
    assert len(list(FIXTURES.glob("*.wav"))) == 13
    assert all(path.stem.rsplit("_", 1)[0] in SAID for path in FIXTURES.glob("*.wav"))
