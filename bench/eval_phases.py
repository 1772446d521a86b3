"""Where the booking suite's wall time went: each call's phases (the `--json` summary's `timings`,
src/voicefleet/evals/phases.py) summed over the suite, divided by the calls under way at once (what a
phase adds to the wall time when every slot is busy), beside the slots' idle time and the process's
own start and exit. The speech floor is the caller's and the bot's speech, played in real time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from voicefleet.evals.phases import PHASES

REAL_TIME = {"speaking": "real-time audio", "greeting": "real-time audio", "bot_speaking": "real-time audio"}


def timings(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [timing for scenario in summary["scenarios"] for timing in scenario.get("timings", [])]


def breakdown(summary: Mapping[str, Any], wall: float, concurrency: int) -> list[str]:
    """Lines of the table: phase, seconds over all calls, seconds of wall time at `concurrency`."""
    calls = timings(summary)
    if not calls:
        return ["  (no timings in the summary)"]
    totals = {phase: sum(c["phases"].get(phase, 0.0) for c in calls) for phase in PHASES}
    span = max(c["began_s"] + c["seconds"] for c in calls) - min(c["began_s"] for c in calls)
    # A call holds its slot until `slot_s`; what follows (`after`) overlaps the slot's next call.
    freed = all(c.get("slot_s") is not None for c in calls)
    busy = sum(c["slot_s"] if freed else c["seconds"] for c in calls)
    outside = {"after", "stop"} if freed else set()
    unaccounted = busy - sum(seconds for phase, seconds in totals.items() if phase not in outside)
    lines = [f"  {'phase':<14} {'all calls':>10} {'÷ ' + str(concurrency) + ' slots':>10}"]
    for phase, seconds in [*totals.items(), ("(unaccounted)", unaccounted)]:
        note = "overlaps the next call" if phase in outside else REAL_TIME.get(phase, "")
        lines.append(f"  {phase:<14} {seconds:>9.1f}s {seconds / concurrency:>9.1f}s  {note}".rstrip())
    idle = concurrency * span - busy
    lines.append(f"  {'idle slots':<14} {idle:>9.1f}s {idle / concurrency:>9.1f}s  between and after calls")
    lines.append(f"  {'process':<14} {'':>10} {wall - span:>9.1f}s  the eval process's start-up and exit")
    floor = sum(c["caller_speech_s"] + c["bot_speech_s"] for c in calls)
    lines.append(f"  calls {span:.1f} s of {wall:.1f} s wall; speech floor (caller + bot speech) "
                 f"{floor:.1f} s over all calls = {floor / concurrency:.1f} s at {concurrency} at once")
    return lines


def mean_call(summary: Mapping[str, Any]) -> float:
    calls: Iterable[dict[str, Any]] = timings(summary)
    seconds = [c["seconds"] for c in calls]
    return sum(seconds) / len(seconds) if seconds else float("nan")
