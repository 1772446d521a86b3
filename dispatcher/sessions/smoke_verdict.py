"""A smoke session's verdict, from its timeline as the machine itself reported it: passed when the
bot's `first_audio` follows the caller's `joined`; failed when the session errs, ends or fails to
start before that (or its machine ends, the provider's word, before its bot could say why), or when
the deadline passes first. None: not decided yet."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str  # for people: what the caller got, or the bot's own error


HEARD = Verdict(True, "a caller heard the bot")


def verdict_of(events: Iterable[Mapping[str, Any]], *, overdue_after: float | None = None) -> Verdict | None:
    """The verdict on these events (in time order); `overdue_after`: the deadline has passed, after
    this many seconds, so a session that has not answered yet has failed."""
    seen: set[str] = set()
    for event in events:
        kind = event.get("event")
        if kind == "first_audio" and "joined" in seen:
            return HEARD
        if kind == "error":
            return Verdict(False, f"the bot reported an error: {event.get('detail') or 'no detail'}")
        if kind == "failed":
            return Verdict(False, f"the session did not start: {event.get('code', 'failed')}: "
                           f"{event.get('message') or 'no message'}")
        if kind == "machine_ended":  # it died before its bot could say why: the provider's word
            return Verdict(False, f"the machine {event.get('state') or 'ended'} before a caller heard the bot "
                           f"({event.get('detail') or 'no detail'})")
        if kind == "ended":
            ended = ": ".join(str(part) for part in (event.get("reason"), event.get("detail")) if part)
            return Verdict(False, f"the session ended before a caller heard the bot ({ended or 'no reason given'})")
        seen.add(str(kind))
    if overdue_after is None:
        return None
    step = ("the caller joined, but no audio of the bot's reached them" if "joined" in seen
            else "the bot was ready, but no caller joined" if "ready" in seen
            else "the bot never reported ready")
    return Verdict(False, f"no audio within {overdue_after:g} s: {step}")
