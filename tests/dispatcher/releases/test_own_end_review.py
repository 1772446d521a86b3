"""Review of the release judge against the bot host's new end reasons (bot/lifecycle.py `bot_blocked`,
dispatcher/sessions/release_outcome.py): a canary whose own code blocks its loop and drops its callers
mid-call passes. Strict xfail: fails on the code as merged, passes once fixed."""

from __future__ import annotations

import random
from typing import Any

from tests.dispatcher.releases.test_caller_hang_ups import FIGURES, _drawn, _judge, _timeline

T0 = 1_800_000_000.0
# The host's report of a session its bot's own code blocked for 31 s, through which the caller's consent
# checks went unanswered and the connection expired (bot/connection_end.py): after two exchanges, nothing
# pending when the block began.
BLOCKED = {**FIGURES, "blocked": [[T0 + 12.0, 31.2, 30.9]]}


def _canary_dropping(reason: str) -> list[list[dict[str, Any]]]:
    rng = random.Random(11)
    sessions = []
    for release in _drawn(rng, 3000):
        if release == "next" and rng.random() < 0.3:  # 30 % of the canary's callers dropped 45 s in
            sessions.append(_timeline(release, rng.choice(["a", "b", "c"]), end=45.0, reason=reason,
                                      figures=BLOCKED))
        else:
            sessions.append(_timeline(release, rng.choice(["a", "b", "c"])))
    return sessions


def test_the_same_canary_ending_its_sessions_as_an_error_is_rolled_back() -> None:
    """The setup can breach: the same drops reported as the bot's `error` roll the canary back."""
    breach = _judge(_canary_dropping("error")).verdict("next", "stable")
    assert breach is not None and breach.signal == "failures"


def test_a_canary_whose_own_blocks_drop_its_callers_is_rolled_back() -> None:
    breach = _judge(_canary_dropping("bot_blocked")).verdict("next", "stable")
    assert breach is not None and breach.signal == "failures", breach


# What the host reports for a bot that closed its own connection before answering anyone: its closes
# count as "left within the first turn" (botchannel CALLER_ENDS now holds `bot_closed`), a caller-led signal.
CLOSED_FIRST = {**FIGURES, "caller_turns": 1, "bot_turns": 0, "latencies": [], "left_in_first_turn": True}


def test_a_canary_that_hangs_up_on_one_keys_callers_before_answering_is_rolled_back() -> None:
    rng = random.Random(13)
    sessions = []
    for release in _drawn(rng, 3000):
        key = "big" if rng.random() < 0.4 else rng.choice(["a", "b", "c"])
        if release == "next" and key == "big":  # the canary's bot closes on every one of that key's calls
            sessions.append(_timeline(release, key, end=8.0, reason="bot_closed", figures=CLOSED_FIRST))
        else:
            sessions.append(_timeline(release, key))
    breach = _judge(sessions).verdict("next", "stable")
    assert breach is not None, "a canary that hung up on 40 % of its callers before answering passed"
