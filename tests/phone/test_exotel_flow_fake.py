"""The strict Exotel flow fake refuses a Connect answer Exotel's page would not take: a field its sample answer
does not show, or a value of one that its pages do not name (tests/fakes/exotel_flow.py says which)."""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher.phone.exotel_connect import dial, dial_no_one
from dispatcher.phone.transfer_target import TransferTarget
from tests.fakes.exotel_flow import validated

DESK = "+919876500001"


def whisper(**change: Any) -> dict[str, Any]:
    """The sample answer's shape: a tone for the caller while the person rings, a line read to the person."""
    body: dict[str, Any] = {"fetch_after_attempt": False, "destination": {"numbers": [DESK]},
                            "max_ringing_duration": 20, "max_conversation_duration": 3600,
                            "music_on_hold": {"type": "operator_tone"},
                            "start_call_playback": {"playback_to": "callee", "type": "text",
                                                    "value": "A caller about a refund."}}
    body.update(change)
    return body


def test_the_dispatchers_own_answers_are_taken() -> None:
    assert validated(dial(TransferTarget(DESK), 3600)) == ("answered", [DESK])
    assert validated(dial_no_one()) == ("answered", [])


def test_the_sample_answers_fields_are_taken() -> None:
    assert validated(whisper()) == ("answered", [DESK])
    assert validated(whisper(record=True, recording_channels="dual", outgoing_phone_number="+918047491899")) == (
        "answered", [DESK])


@pytest.mark.parametrize(("change", "why"), [
    ({"hold_music_url": "https://example.com/hold.mp3"}, "unknown field hold_music_url"),
    ({"destination": {"numbers": [DESK], "user": "desk"}}, "unknown field destination.user"),
    ({"max_ringing_duration": 0}, "max_ringing_duration invalid"),
    ({"max_ringing_duration": "20"}, "max_ringing_duration invalid"),
    ({"music_on_hold": {"type": "audio_url", "value": "https://example.com/hold.mp3"}}, "music_on_hold invalid"),
    ({"start_call_playback": {"playback_to": "caller", "type": "text", "value": "hi"}},
     "start_call_playback invalid"),
    ({"start_call_playback": {"playback_to": "callee", "type": "audio_url", "value": "http://example.com/a.mp3"}},
     "start_call_playback invalid"),
    ({"start_call_playback": {"playback_to": ["callee"], "type": "text", "value": "hi"}},
     "start_call_playback invalid"),
    ({"start_call_playback": {"playback_to": "callee", "type": "text", "value": "hi", "voice": "f"}},
     "start_call_playback invalid"),
    ({"recording_channels": "stereo"}, "recording_channels invalid"),
])
def test_a_field_or_value_the_pages_do_not_show_is_refused(change: dict[str, Any], why: str) -> None:
    assert validated(whisper(**change)) == (why, [])
