"""What a run leaves: `result.json` (every session's measurements, the summary, the generator's
own cost, the command's settings) and the summary as tables for people."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from voicefleet.loadtest.record import SessionRecord
from voicefleet.tables import table

FORMAT = 1  # the result's shape; raised when a field changes meaning
CALLER = "caller's"  # from the moment its POST /start was sent, on this machine's clock
DISPATCHER = "dispatcher's"  # from the timeline's `requested`, on the replica's clock
INTERVALS = {"start_answer": "POST /start sent → its answer", "ready": "POST /start sent → bot known running",
             "connected": "POST /start sent → media connected",
             "first_audio": "POST /start sent → first bot audio heard",
             "turn": "end of caller's speech → reply heard"}
# A SIP call is its own start (sip_session.py): its times run from its INVITE, and its 200 OK is the answer.
SIP_INTERVALS = {**{name: label.replace("POST /start sent", "INVITE sent") for name, label in INTERVALS.items()},
                 "start_answer": "INVITE sent → 200 OK"}
TIMELINE_INTERVALS = {"joined": "requested → bot's joined report", "ready": "requested → bot's ready report",
                      "first_audio": "requested → bot's first audio"}
PHASE_HEADERS = {"mic": "MIC (ENCODE)", "heard": "BOT AUDIO (READ)", "other_threads": "DECODER THREADS",
                 "loop_rest": "LOOP REST (RTP, ICE, HTTP)"}  # own_cost.PHASES
# What result.json says of its clocks, for a reader who has only the file.
CLOCKS = {"caller": "start_answer, ready, connected, first_frame, first_audio: seconds from the session's "
                    "POST /start being sent (a SIP call's: its INVITE, answered by its 200 OK), on the load "
                    "generator's monotonic clock; turns: end of the caller's "
                    "speech → the reply heard",
          "dispatcher": "timeline: seconds from the timeline's `requested` event to the bot's `joined`, `ready` "
                        "and `first_audio` reports, on the replica's clock"}


def write_result(path: Path, settings: dict[str, Any], records: Sequence[SessionRecord], summary: dict[str, Any],
                 own_cost: dict[str, Any]) -> Path:
    body = {"format": FORMAT, "clocks": CLOCKS, "settings": settings, "summary": summary, "load_generator": own_cost,
            "sessions": [r.as_json() for r in records]}
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path


def tables(summary: dict[str, Any], own_cost: dict[str, Any], transport: str | None = None) -> str:
    """The summary as people read it: outcomes, percentiles on each clock, the two clocks side by side
    where they time the same interval; a SIP run's caller's times named from its INVITE."""
    intervals = SIP_INTERVALS if transport == "sip" else INTERVALS
    sessions = summary["sessions"]
    parts = [table(["DUE", "PLACED", "OK", "REFUSED", "FAILED", "DROPPED"],
                   [[str(sessions[k]) for k in ("due", "placed", "ok", "refused", "failed", "dropped")]])]
    if first := sessions.get("caller_spoke_first"):  # an older result has no such count
        parts.append(f"the bot said nothing first in {first} session{'s' if first > 1 else ''}: the caller spoke first")
    codes = [[outcome, code, str(n)] for outcome in ("refused", "failed")
             for code, n in summary[f"{outcome}_by_code"].items()]
    if codes:
        parts.append(table(["OUTCOME", "CODE", "SESSIONS"], codes))
    rows = [[CALLER, intervals[name], *_figures(figures)] for name, figures in summary["seconds"].items()]
    rows += [[DISPATCHER, TIMELINE_INTERVALS[name], *_figures(figures)]
             for name, figures in summary.get("timeline_seconds", {}).items()]
    parts.append(table(["CLOCK", "SECONDS", "N", "P50", "P90", "P95", "P99", "MAX"], rows))
    compared = [[a["interval"], str(a["n"]), f"{a['caller_p50']:.3f}", f"{a['timeline_p50']:.3f}",
                 f"{a['difference_p50']:+.3f}", _share(a.get("relative_difference_p50")),
                 _share(a["relative_difference_max"])]
                for a in summary["timeline_agreement"].values() if a is not None and "interval" in a]
    if compared:
        parts.append(table(["SAME INTERVAL", "N", "CALLER'S CLOCK P50", "DISPATCHER'S CLOCK P50", "DIFF P50",
                            "REL DIFF P50", "MAX REL DIFF"], compared))
    generator = [["this process", str(own_cost["cpu_seconds"]), str(own_cost["cpu_seconds_per_session"]),
                  str(own_cost["cpu_share_of_one_core"]), str(own_cost["loop_lag_p99_seconds"])]]
    if callers := own_cost.get("caller_processes_cpu_seconds"):  # the SIP caller's, a process a call
        generator.append(["its callers' processes", str(callers),
                          str(own_cost.get("caller_processes_cpu_seconds_per_session")), "-", "-"])
    parts.append(table(["LOAD GENERATOR", "CPU S", "CPU S/SESSION", "SHARE OF A CORE", "LOOP LAG P99 S"], generator))
    if by_phase := own_cost.get("cpu_seconds_per_session_by_phase"):  # a result written before it was split has none
        parts.append(table(["GENERATOR CPU S/SESSION", *(PHASE_HEADERS[name] for name in by_phase)],
                           [["by phase", *(f"{seconds:.3f}" for seconds in by_phase.values())]]))
    return "\n\n".join(parts)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _figures(figures: dict[str, float | int] | None) -> list[str]:
    if figures is None:
        return ["0", "-", "-", "-", "-", "-"]
    return [str(figures["n"]), *(f"{figures[k]:.3f}" for k in ("p50", "p90", "p95", "p99", "max"))]
