"""A run's verdict: each call passed, failed, or inconclusive (failed where its bot host fell behind
real time, bot_behind.py, or where its connection was lost, lost_connection.py, unless its bot
blocked its own host's loop there, bot_blocked.py, or closed its connection, call_end.py), and the
run as a whole. Any call that failed fails the run; more inconclusive calls than `max_inconclusive`
of them make it inconclusive (exit 4, and a suite smoke records nothing: the release's gate stays as
it was), and so does a scenario none of whose calls passed (a fault in one scenario fails each of its
calls: a busy machine must not hide it as a few inconclusive ones); otherwise it passes, and the
report says how many were inconclusive.

Both rules are settings (docs/evals.md): `VOICEFLEET_EVAL_BOT_BEHIND` (seconds, default 2.0) and
`VOICEFLEET_EVAL_MAX_INCONCLUSIVE` (a share of the calls, default 0.1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from voicefleet.evals.bot_behind import DEFAULT_BOT_BEHIND_LIMIT, inconclusive_reason
from voicefleet.evals.bot_blocked import blocked_reason
from voicefleet.evals.call_end import own_end
from voicefleet.evals.lost_connection import lost_connection_reason
from voicefleet.evals.outcome import CallResult

INCONCLUSIVE = 4  # the exit code of a run with too many inconclusive calls to say anything
BOT_BEHIND_VARIABLE = "VOICEFLEET_EVAL_BOT_BEHIND"
MAX_INCONCLUSIVE_VARIABLE = "VOICEFLEET_EVAL_MAX_INCONCLUSIVE"
DEFAULT_MAX_INCONCLUSIVE = 0.1

Outcome = Literal["passed", "inconclusive", "failed"]


@dataclass(frozen=True)
class Rules:
    bot_behind_limit: float = DEFAULT_BOT_BEHIND_LIMIT  # seconds a bot host may fall behind in a part of a call
    max_inconclusive: float = DEFAULT_MAX_INCONCLUSIVE  # the share of a run's calls that may be inconclusive

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Rules:
        """The rules the environment sets; ValueError naming the variable and what it takes."""
        return cls(_number(env, BOT_BEHIND_VARIABLE, DEFAULT_BOT_BEHIND_LIMIT, 0.0, 3600.0, "seconds"),
                   _number(env, MAX_INCONCLUSIVE_VARIABLE, DEFAULT_MAX_INCONCLUSIVE, 0.0, 1.0, "a share of the calls"))

    def reason(self, result: CallResult) -> str | None:
        """Why the call is inconclusive, or None when it is not: never when its bot blocked its own loop
        where it failed, whatever else its host saw (bot_blocked.py)."""
        if blocked_reason(result) is not None or any(own_end(t.problems) for t in result.turns):
            return None
        return lost_connection_reason(result) or inconclusive_reason(result, self.bot_behind_limit)

    def outcome(self, result: CallResult) -> Outcome:
        if result.passed:
            return "passed"
        return "failed" if self.reason(result) is None else "inconclusive"


@dataclass(frozen=True)
class Verdict:
    passed: int
    inconclusive: int
    failed: int
    verdict: Outcome

    def as_dict(self) -> dict[str, object]:
        return {"verdict": self.verdict, "calls": {"passed": self.passed, "inconclusive": self.inconclusive,
                                                   "failed": self.failed}}

    def line(self, rules: Rules) -> str | None:
        """The inconclusive calls in a sentence with what to do; None when there are none."""
        if not self.inconclusive:
            return None
        calls = self.passed + self.inconclusive + self.failed
        whole = ("the run is inconclusive (too many of them, or a scenario with no call passed)"
                 if self.verdict == "inconclusive" else
                 f"not counted as failures (up to {rules.max_inconclusive:.0%} of a run's calls may be, while each "
                 "scenario passes a call)")
        return (f"inconclusive: in {self.inconclusive} of {calls} calls the bot's host fell behind real time where "
                f"they failed (by more than {rules.bot_behind_limit:.1f} s), or their connection was lost: {whole}. "
                "Run the suite where the bot's host and the caller have the CPU they need")


DEFAULT_RULES = Rules()


def verdict_of(results: Sequence[CallResult], rules: Rules) -> Verdict:
    outcomes = [rules.outcome(r) for r in results]
    passed, inconclusive, failed = (outcomes.count(o) for o in ("passed", "inconclusive", "failed"))
    unproven = {r.scenario for r in results} - {r.scenario for r, o in zip(results, outcomes, strict=True)
                                                if o == "passed"}
    if failed:
        whole: Outcome = "failed"
    elif inconclusive > rules.max_inconclusive * len(results) or unproven:
        whole = "inconclusive"
    else:
        whole = "passed"
    return Verdict(passed, inconclusive, failed, whole)


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float, unit: str) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # NaN too
        raise ValueError(f"{name}={raw!r} is not a number from {low:g} to {high:g} ({unit}); unset it for "
                         f"the default, {default:g}")
    return value
