"""When the WebRTC caller takes a bot's answer to be over, from the bot's RTVI events since the turn:
once it stopped speaking and stayed quiet, for less time when its events say nothing more is coming,
and for longer while its LLM has said words its voice has not yet spoken (a starved bot's pause
between two sentences is not the answer's end). The turn's `listen_ms` bounds the wait for an answer,
not an answer under way: one its events say is still coming at that point is heard out."""

from __future__ import annotations

from typing import Any

from voicefleet.evals.checks import words

QUIET_AFTER = 0.7  # an answer ends this long after the bot stopped speaking with nothing more said
# ... or this long, once the bot's events say it has nothing more to say: its LLM's response ended and
# its TTS synthesised all of it (RTVI's bot-llm-stopped and bot-tts-stopped), so the quiet is the end of
# the answer, not a pause between sentences. What is left to wait for is the answer's last packets
# (RTVI comes over the data channel, the audio over RTP through the caller's 80 ms jitter buffer).
QUIET_WHEN_DONE = 0.1
# ... or this long while the response's text (bot-llm-text) holds words no spoken bot-output has said:
# the voice has more to say, however long it pauses for a core (a pause of 1-2 s at a load of 13-40).
QUIET_UNSPOKEN = 5.0
# An answer under way when the turn's listen_ms is up is heard out for at most this much longer: a bot
# that never stops speaking, or never speaks the words its LLM gave, still ends the turn.
LONGEST_ANSWER = 30.0


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


def under_way(messages: list[dict[str, Any]]) -> bool:
    """Whether the bot's answer is still coming by its own RTVI events since the turn: it is speaking,
    its LLM is generating or its TTS synthesising, or its response holds words not spoken yet. A
    starved bot plays its answer slower than real time (a 2 s sentence took 9 s at a load of 15, its
    processes stalled up to 0.5 s at a time: bench/answer_split.py), so an answer begun in time may
    still be playing when the turn's wait is up."""
    kinds = [str(m.get("type")) for m in messages]

    def open_(begun: str, ended: str) -> bool:
        return kinds.count(begun) > kinds.count(ended)

    return (open_("bot-started-speaking", "bot-stopped-speaking") or open_("bot-llm-started", "bot-llm-stopped")
            or open_("bot-tts-started", "bot-tts-stopped") or unspoken(messages))


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
