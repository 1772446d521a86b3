"""The bot's own turn latency beside the caller's: the table and `--json` show the figures its bot
host reported with the session's end (the canary judge's), next to the caller's own."""

from __future__ import annotations

from voicefleet.evals.outcome import CallResult, TurnResult
from voicefleet.evals.report import summary, table


def call(caller_ms: list[float], bot_ms: list[float] | None) -> CallResult:
    return CallResult("hours", "hours.toml", session_id="s1", bot_latencies_ms=bot_ms,
                      turns=[TurnResult("What are your opening hours", "We open at nine", ms, []) for ms in caller_ms])


def test_the_bots_own_figures_are_shown_beside_the_callers() -> None:
    results = [call([1250.0, 1410.0], [820.0, 910.0]), call([1300.0], [870.0])]
    assert summary(results)["scenarios"][0]["bot_turn_latency_ms"] == {"p50": 870.0, "p95": 910.0}
    header, row = table(results).splitlines()
    assert header.split() == ["SCENARIO", "PASSED", "TURN", "P50", "TURN", "P95", "BOT", "P50", "BOT", "P95",
                              "FIRST", "FAILURE"]
    assert row.split() == ["hours", "2/2", "1300", "ms", "1410", "ms", "870", "ms", "910", "ms"]


def test_a_bot_that_reported_no_figures_shows_none() -> None:
    results = [call([1250.0], None)]
    assert summary(results)["scenarios"][0]["bot_turn_latency_ms"] == {"p50": None, "p95": None}
    assert table(results).splitlines()[1].split() == ["hours", "1/1", "1250", "ms", "1250", "ms", "-", "-"]
