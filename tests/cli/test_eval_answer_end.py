"""When the WebRTC caller takes a bot's answer to be over: once it stopped speaking and stayed quiet,
for less time when its own events say nothing more is coming."""

from __future__ import annotations

from voicefleet.evals.call import QUIET_AFTER, QUIET_WHEN_DONE, quiet_needed

REPLY = ["bot-llm-started", "bot-llm-stopped", "bot-tts-started", "bot-started-speaking", "bot-tts-stopped"]


def test_an_answer_all_generated_and_synthesised_is_over_soon_after_the_bot_stops_speaking() -> None:
    assert quiet_needed([*REPLY, "bot-stopped-speaking"]) == QUIET_WHEN_DONE < QUIET_AFTER
    assert quiet_needed(["bot-tts-started", "bot-started-speaking", "bot-tts-stopped", "bot-stopped-speaking"]) \
        == QUIET_WHEN_DONE  # a greeting: spoken text, no LLM


def test_a_bot_still_at_work_or_saying_nothing_of_it_gets_the_longer_quiet() -> None:
    assert quiet_needed(REPLY) is None  # still speaking
    assert quiet_needed([]) is None  # not begun
    # The TTS is on a second sentence: the first one's end is a pause, not the answer's end.
    pause = ["bot-llm-started", "bot-llm-stopped", "bot-tts-started", "bot-started-speaking", "bot-tts-stopped",
             "bot-tts-started", "bot-stopped-speaking"]
    assert quiet_needed(pause) == QUIET_AFTER
    assert quiet_needed(["bot-llm-started", "bot-tts-started", "bot-started-speaking", "bot-tts-stopped",
                         "bot-stopped-speaking"]) == QUIET_AFTER  # the LLM's response goes on
    assert quiet_needed(["bot-started-speaking", "bot-stopped-speaking"]) == QUIET_AFTER  # no TTS events at all
