"""When the WebRTC caller takes a bot's answer to be over: once it stopped speaking and stayed quiet,
for less time when its own events say nothing more is coming, for longer while its LLM has said words
its voice has not spoken."""

from __future__ import annotations

from typing import Any

from voicefleet.evals.answer_end import QUIET_AFTER, QUIET_UNSPOKEN, QUIET_WHEN_DONE, quiet_needed

REPLY = ["bot-llm-started", "bot-llm-stopped", "bot-tts-started", "bot-started-speaking", "bot-tts-stopped"]


def events(*kinds: str) -> list[dict[str, Any]]:
    return [{"label": "rtvi-ai", "type": kind} for kind in kinds]


def said(kind: str, text: str) -> dict[str, Any]:
    data: dict[str, Any] = {"text": text} if kind == "bot-llm-text" else {"text": text, "spoken": True}
    return {"label": "rtvi-ai", "type": kind, "data": data}


def test_an_answer_all_generated_and_synthesised_is_over_soon_after_the_bot_stops_speaking() -> None:
    assert quiet_needed(events(*REPLY, "bot-stopped-speaking")) == QUIET_WHEN_DONE < QUIET_AFTER
    assert quiet_needed(events("bot-tts-started", "bot-started-speaking", "bot-tts-stopped",
                               "bot-stopped-speaking")) == QUIET_WHEN_DONE  # a greeting: spoken text, no LLM


def test_a_bot_still_at_work_or_saying_nothing_of_it_gets_the_longer_quiet() -> None:
    assert quiet_needed(events(*REPLY)) is None  # still speaking
    assert quiet_needed([]) is None  # not begun
    # The TTS is on a second sentence: the first one's end is a pause, not the answer's end.
    pause = events("bot-llm-started", "bot-llm-stopped", "bot-tts-started", "bot-started-speaking", "bot-tts-stopped",
                   "bot-tts-started", "bot-stopped-speaking")
    assert quiet_needed(pause) == QUIET_AFTER
    assert quiet_needed(events("bot-llm-started", "bot-tts-started", "bot-started-speaking", "bot-tts-stopped",
                               "bot-stopped-speaking")) == QUIET_AFTER  # the LLM's response goes on
    assert quiet_needed(events("bot-started-speaking", "bot-stopped-speaking")) == QUIET_AFTER  # no TTS events


def test_a_pause_between_two_sentences_is_waited_out_while_words_are_unspoken() -> None:
    """A starved bot: its first sentence spoken and synthesised, its second not yet begun, so the
    events balance in the pause; the LLM's text says a sentence is still to come."""
    first = [said("bot-llm-text", "A table for two today at seven. "), said("bot-llm-text", "Shall I book it?"),
             *events("bot-llm-started", "bot-llm-stopped", "bot-tts-started", "bot-started-speaking"),
             said("bot-output", "A table for two today at seven."), *events("bot-tts-stopped", "bot-stopped-speaking")]
    assert quiet_needed(first) == QUIET_UNSPOKEN > QUIET_AFTER
    whole = [*first, *events("bot-tts-started", "bot-started-speaking"), said("bot-output", "Shall I book it?"),
             *events("bot-tts-stopped", "bot-stopped-speaking")]
    assert quiet_needed(whole) == QUIET_WHEN_DONE
