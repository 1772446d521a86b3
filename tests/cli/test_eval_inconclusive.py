"""A run whose caller could not keep real time is marked inconclusive: its report says which calls and
how far behind, and a suite smoke does not record a failure the caller's own lag may have made."""

from __future__ import annotations

import pytest

from voicefleet.errors import Failed
from voicefleet.evals.gate import verdict_body
from voicefleet.evals.outcome import CALLER_BEHIND_LIMIT, CallResult, TurnResult
from voicefleet.evals.report import summary, table


def call(session: str, *, passed: bool, behind: float) -> CallResult:
    problems = [] if passed else ["expected an answer, heard nothing"]
    return CallResult("hours", "hours.toml", session_id=session, caller_behind=behind,
                      turns=[TurnResult("What are your opening hours", "", None, problems)])


def test_a_run_whose_caller_kept_time_is_not_marked() -> None:
    results = [call("s1", passed=True, behind=0.0), call("s2", passed=False, behind=CALLER_BEHIND_LIMIT)]
    assert summary(results)["inconclusive"] is None
    assert "inconclusive" not in table(results)
    assert verdict_body("suite", results) == {"suite": "suite", "sessions": ["s1", "s2"], "failed": ["s2"]}


def test_calls_whose_caller_fell_behind_make_the_run_inconclusive() -> None:
    results = [call("s1", passed=True, behind=0.1), call("s2", passed=False, behind=1.26),
               call("s3", passed=True, behind=0.8)]
    assert summary(results)["inconclusive"] == {"calls": 2, "failed": 1, "caller_behind_s": 1.26,
                                                "sessions": ["s2", "s3"]}
    assert table(results).splitlines()[-1].startswith(
        "inconclusive: in 2 of 3 calls the caller fell behind real time (up to 1.3 s; 1 of them failed)")
    with pytest.raises(Failed, match="not recorded: 2 of 3 calls' caller fell behind real time and 1 of them failed"):
        verdict_body("suite", results)


def test_a_late_caller_whose_calls_all_passed_still_records_the_pass() -> None:
    results = [call("s1", passed=True, behind=2.0)]
    assert verdict_body("suite", results)["failed"] == []
    assert summary(results)["inconclusive"]["failed"] == 0
