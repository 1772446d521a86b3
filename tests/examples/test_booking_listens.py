"""The booking line hears speech and answers it by voice, offline: its real recogniser, responder
and voice in its own pipeline, fed a caller's sentence spoken by another eSpeak NG voice."""

from __future__ import annotations

from booking_line import build_pipeline
from pipecat.frames.frames import (
    EndWorkerFrame,
    LLMContextAssistantTurnFrame,
    LLMContextUserTurnFrame,
    TTSAudioRawFrame,
)
from pipecat.processors.filters.identity_filter import IdentityFilter
from pipecat.tests.utils import run_test
from responder import BookingResponder
from voice import Espeak

from tests.support.booking_caller import RATE, RealTime, caller_says


async def converse(*sentences: str) -> list[object]:
    pipeline = build_pipeline(RealTime(), IdentityFilter(), BookingResponder())  # no transport
    down, _ = await run_test(pipeline, frames_to_send=caller_says(*sentences))
    return down


def heard(frames: list[object]) -> str:
    """The caller's turns as the user aggregator put them in the context."""
    return " | ".join(f.text for f in frames if isinstance(f, LLMContextUserTurnFrame))


def spoken(frames: list[object]) -> str:
    """The bot's turns as the assistant aggregator put them in the context (what the TTS spoke)."""
    return " ".join(f.text for f in frames if isinstance(f, LLMContextAssistantTurnFrame))


async def test_a_spoken_request_is_heard_and_answered_by_voice() -> None:
    down = await converse("I would like to book a table for two people tomorrow at seven")
    assert "table" in heard(down) and "two" in heard(down), heard(down)
    assert spoken(down) == "A table for two tomorrow at seven. Shall I book it?"
    audio = b"".join(f.audio for f in down if isinstance(f, TTSAudioRawFrame))
    assert len(audio) / 2 / RATE > 1.5, "the reply is spoken, not only written"


async def test_goodbye_ends_the_call_after_its_reply() -> None:
    down = await converse("What are your opening hours", "Thank you, goodbye")
    assert spoken(down).startswith("We are open every day")
    assert spoken(down).endswith("Thank you for calling. Goodbye.")
    end = next(i for i, f in enumerate(down) if isinstance(f, EndWorkerFrame))
    assert any(isinstance(f, TTSAudioRawFrame) for f in down[:end])


def test_the_bots_voice_still_speaks_after_another_espeak_user_loads_in_the_process() -> None:
    """eSpeak's callback, voice and rate are the library's, not an instance's: a caller voice loaded
    after the bot's took every sample the bot synthesised, and the bot heard and said nothing."""
    from voicefleet.evals.voice import CallerVoice

    bot_voice = Espeak()
    alone = bot_voice.synthesise("Shall I book it?")
    caller = CallerVoice(words_per_minute=120)
    assert caller.speak("Tomorrow at seven").seconds > 0.5
    again = bot_voice.synthesise("Shall I book it?")  # eSpeak varies by a few samples run to run
    assert abs(len(again) - len(alone)) < 0.05 * len(alone), "its own audio at its own pace"
    assert caller.speak("Tomorrow at seven").seconds > 0.5
