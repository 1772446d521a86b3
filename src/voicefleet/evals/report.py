"""A suite's results for people (a table per scenario, the failing turn with expected and heard)
and for CI (`--json`, JUnit XML that CI systems show as tests)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from xml.etree import ElementTree

from voicefleet.evals.bot_behind import behind_by_part, way_back
from voicefleet.evals.outcome import CallResult
from voicefleet.evals.verdict import DEFAULT_RULES, Rules, verdict_of
from voicefleet.tables import printable


def percentile(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def by_scenario(results: Sequence[CallResult]) -> dict[str, list[CallResult]]:
    grouped: dict[str, list[CallResult]] = {}
    for result in results:
        grouped.setdefault(result.scenario, []).append(result)
    return grouped


def summary(results: Sequence[CallResult], rules: Rules = DEFAULT_RULES) -> dict[str, Any]:
    scenarios = []
    run_began = min((r.phases.began for r in results), default=0.0)
    for name, runs in by_scenario(results).items():
        latencies = [t.latency_ms for r in runs for t in r.turns if t.latency_ms is not None]
        # The bot host's own figures (its VAD's end of the caller's speech → its first audio played), beside
        # the caller's: the canary judge reads these; a gap between the two is the network's and the caller's.
        bot = [ms for r in runs for ms in r.bot_latencies_ms or []]
        scenarios.append({
            "scenario": name,
            "source": runs[0].source,
            "passed": sum(r.passed for r in runs),
            "runs": len(runs),
            "turn_latency_ms": {"p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95)},
            "bot_turn_latency_ms": {"p50": percentile(bot, 0.5), "p95": percentile(bot, 0.95)},
            "failures": [{"session_id": r.session_id, "failure": r.first_failure()} for r in runs
                         if rules.outcome(r) == "failed"],
            # Failed where the bot's host fell behind real time (evals/verdict.py): not counted as failures.
            "inconclusive": [{"session_id": r.session_id, "reason": reason, "failure": r.first_failure()}
                             for r in runs if (reason := rules.reason(r)) is not None],
            "sessions": [r.session_id for r in runs],
            "timings": [{"seconds": round(r.seconds, 3), **r.phases.as_dict(run_began),
                         "bot_behind_s": _most_behind(r), "arrived_late_s": _most_late(r),
                         "turns": _turn_figures(r)} for r in runs],
        })
    return {
        "passed": sum(r.passed for r in results),
        "runs": len(results),
        "scenarios": scenarios,
        "release": next((r.release for r in results if r.release), None),
        "inconclusive": inconclusive(results),
        **verdict_of(results, rules).as_dict(),
    }


def inconclusive(results: Sequence[CallResult]) -> dict[str, Any] | None:
    """The calls whose caller fell behind real time (CallResult.keeps_time), or None when every caller kept it."""
    late = [r for r in results if not r.keeps_time()]
    if not late:
        return None
    return {"calls": len(late), "failed": sum(not r.passed for r in late),
            "caller_behind_s": round(max(r.caller_behind for r in late), 3),
            "sessions": [r.session_id for r in late]}


def inconclusive_line(results: Sequence[CallResult]) -> str | None:
    """The run's inconclusive calls in a sentence, with what to do; None when there are none."""
    if (late := inconclusive(results)) is None:
        return None
    return (f"inconclusive: in {late['calls']} of {len(results)} calls the caller fell behind real time (up to "
            f"{late['caller_behind_s']:.1f} s; {late['failed']} of them failed): their timing, and what the bot heard, "
            "are not the bot's alone. Run the suite where the caller has a core to itself")


def table(results: Sequence[CallResult], rules: Rules = DEFAULT_RULES) -> str:
    rows = [("SCENARIO", "PASSED", "TURN P50", "TURN P95", "BOT P50", "BOT P95", "FIRST FAILURE")]
    for entry in summary(results, rules)["scenarios"]:
        caller, bot = entry["turn_latency_ms"], entry["bot_turn_latency_ms"]
        failure = entry["failures"][0]["failure"] if entry["failures"] else ""
        if not failure and entry["inconclusive"]:
            failure = f"inconclusive: {entry['inconclusive'][0]['reason']}: {entry['inconclusive'][0]['failure']}"
        # A failure quotes what a bot said and an LLM judge's reason: shown, never run by the terminal.
        rows.append((printable(entry["scenario"]), f"{entry['passed']}/{entry['runs']}", _ms(caller["p50"]),
                     _ms(caller["p95"]), _ms(bot["p50"]), _ms(bot["p95"]), printable(failure)))
    columns = len(rows[0]) - 1
    widths = [max(len(row[i]) for row in rows) for i in range(columns)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row[:columns], widths, strict=True)), row[columns]]).rstrip()
             for row in rows]
    return "\n".join([*lines, *filter(None, [inconclusive_line(results), verdict_of(results, rules).line(rules)])])


def junit(results: Sequence[CallResult], rules: Rules = DEFAULT_RULES) -> str:
    verdict = verdict_of(results, rules)
    suite = ElementTree.Element("testsuite", name="voicefleet eval", tests=str(len(results)),
                                failures=str(verdict.failed), skipped=str(verdict.inconclusive),
                                time=f"{sum(r.seconds for r in results):.1f}")
    for index, result in enumerate(results):
        case = ElementTree.SubElement(suite, "testcase", classname=_xml_text(result.source or "scenario"),
                                      name=_xml_text(f"{result.scenario} [{index}]"), time=f"{result.seconds:.1f}")
        if (reason := rules.reason(result)) is not None:  # CI shows it skipped, with why
            ElementTree.SubElement(case, "skipped", message=_xml_text(f"inconclusive: {reason}: "
                                                                      f"{result.first_failure()}"))
        elif not result.passed:
            failure = ElementTree.SubElement(case, "failure", message=_xml_text(result.first_failure()))
            failure.text = _xml_text("\n".join([*result.problems, *(f"turn {i}: {p}" for i, t in
                                                                   enumerate(result.turns, 1) for p in t.problems),
                                                f"session {result.session_id}"]))
    return ElementTree.tostring(suite, encoding="unicode")


# What XML 1.0 can hold (its `Char`); ElementTree writes anything else as is, and no parser reads the file.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    """`text` with each character XML 1.0 cannot hold (NUL, ESC, a lone surrogate) as its Python escape."""
    return _NOT_XML.sub(lambda found: repr(found.group())[1:-1], text)


def _most_behind(result: CallResult) -> float | None:
    """The most the call's bot host fell behind real time in a part of it (bot_behind.py); None without figures."""
    return None if result.bot_stalls is None else round(max(behind_by_part(result)), 3)


def _most_late(result: CallResult) -> float | None:
    """The most behind real time the bot's audio reached the caller in a turn (loadtest/arrival_lag.py); None
    where no turn measured it (a phone call's)."""
    late = [t.arrived_late for t in result.turns if t.arrived_late is not None]
    return round(max(late), 3) if late else None


def _turn_figures(result: CallResult) -> list[dict[str, Any]]:
    """Each turn's figures a verdict weighed: how far its bot host was held behind in it (`null` without
    its figures), how late the bot's audio reached the caller and the way back's share of that (`null`
    where not measured), the caller's wait for the answer, and the bot's own transcript of the caller."""
    behind = None if result.bot_stalls is None else behind_by_part(result)
    return [{"behind_s": None if behind is None else round(behind[n], 3),
             "arrived_late_s": None if t.arrived_late is None else round(t.arrived_late, 3),
             "way_back_s": None if t.arrived_late is None else round(way_back(result, n), 3),
             "latency_ms": None if t.latency_ms is None else round(t.latency_ms), "bot_heard": t.bot_heard}
            for n, t in enumerate(result.turns, 1)]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"
