"""When the WebRTC caller takes a bot's answer to be over, from the bot's RTVI events since the turn:
once it stopped speaking and stayed quiet, for less time when its events say nothing more is coming,
and for longer while its LLM has said words its voice has not yet spoken (a starved bot's pause
between two sentences is not the answer's end)."""

from __future__ import annotations

from typing import Any

from voicefleet.evals.checks import words

QUIET_AFTER = 0.7  # an answer ends this long after the bot stopped speaking with nothing more said
# ... or this long, once the bot's events say it has nothing more to say: its LLM's response ended and
# its TTS synthesised all of it (RTVI's bot-llm-stopped and bot-tts-stopped), so the quiet is the end of
# the answer, not a pause between sentences. 0.5 s less per answer: about 2 s of a 4-turn call.
QUIET_WHEN_DONE = 0.2
# ... or this long while the response's text (bot-llm-text) holds words no spoken bot-output has said:
# the voice has more to say, however long it pauses for a core (a pause of 1-2 s at a load of 13-40).
QUIET_UNSPOKEN = 5.0


def quiet_needed(messages: list[dict[str, Any]]) -> float | None:
    """How long a quiet bot must stay quiet for its answer to be over, from the RTVI messages since the
    turn; None while it speaks (or has not begun)."""
    kinds = [str(m.get("type")) for m in messages]
    started, stopped = kinds.count("bot-started-speaking"), kinds.count("bot-stopped-speaking")
    if not started or stopped < started:
        return None
    synthesised = "bot-tts-started" in kinds and kinds.count("bot-tts-stopped") >= kinds.count("bot-tts-started")
    generated = kinds.count("bot-llm-stopped") >= kinds.count("bot-llm-started")
    if generated and unspoken(messages):
        return QUIET_UNSPOKEN
    return QUIET_WHEN_DONE if synthesised and generated else QUIET_AFTER


def unspoken(messages: list[dict[str, Any]]) -> bool:
    """Whether the bot's LLM generated words its voice has not spoken yet: its response's text (the
    bot-llm-text tokens) is not all in what it spoke (bot-output marked spoken), compared as words."""
    generated = words("".join(str((m.get("data") or {}).get("text", "")) for m in messages
                              if m.get("type") == "bot-llm-text"))
    return bool(generated) and generated not in words(" ".join(texts(messages, "bot-output")))


def texts(messages: list[dict[str, Any]], kind: str) -> list[str]:
    """The texts of one kind of RTVI message: for `bot-output`, what was spoken (`spoken: true`), not
    what the bot only meant to say; for `user-transcription`, the final transcripts."""
    datas = [m.get("data") or {} for m in messages if m.get("type") == kind]
    wanted = "spoken" if kind == "bot-output" else "final"
    return [str(d.get("text", "")).strip() for d in datas if d.get(wanted) is True and d.get("text")]
