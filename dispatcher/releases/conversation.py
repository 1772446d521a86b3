"""What the release judge keeps of one session's conversation, from the figures its bot host reported
with `ended` (botchannel/conversation.py): one value per signal, since a session, not a turn, is the
unit the judge samples (a session's turns are not independent of each other: one slow provider slows
them all).

- `turn_latency`: the session's median answer latency (end of the caller's speech → the bot's first
  audio), None when no caller turn was answered;
- `unanswered`: whether the bot left at least one caller turn unanswered;
- `cut_off`: the share of the bot's turns the caller cut off, None when the bot never spoke;
- `left_early`: whether the caller hung up before any of their turns was answered to its end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import astuple, dataclass
from typing import Any

from botchannel.conversation import conversation_figures


@dataclass(frozen=True)
class Talk:
    turn_latency: float | None
    unanswered: bool
    cut_off: float | None
    left_early: bool

    def stored(self) -> list[Any]:
        """As the deployment's sample records it (dispatcher/sessions/release_sample.py)."""
        return list(astuple(self))

    @classmethod
    def from_stored(cls, raw: object) -> Talk | None:
        """A recorded one, or None for anything that is not one."""
        if not isinstance(raw, list) or len(raw) != 4:
            return None
        latency, unanswered, cut_off, left_early = raw
        if not all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in (latency, cut_off)):
            return None
        if not isinstance(unanswered, bool) or not isinstance(left_early, bool):
            return None
        return cls(None if latency is None else float(latency), unanswered,
                   None if cut_off is None else float(cut_off), left_early)


def talk_of(raw: Mapping[str, Any] | None) -> Talk | None:
    """One session's `Talk` from its reported figures; None when there are none (or not of the shape)."""
    figures = conversation_figures(dict(raw)) if raw is not None else None
    if figures is None:
        return None
    latencies = sorted(figures["latencies"])
    median = latencies[len(latencies) // 2] if latencies else None
    bot_turns = figures["bot_turns"]
    return Talk(turn_latency=median, unanswered=figures["unanswered"] > 0,
                cut_off=figures["cut_off"] / bot_turns if bot_turns else None,
                left_early=figures["left_in_first_turn"])
