"""What a run leaves: `result.json` (every session's measurements, the summary, the generator's
own cost, the command's settings) and the summary as tables for people."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cli.loadtest.record import SessionRecord
from cli.tables import table

FORMAT = 1  # the result's shape; raised when a field changes meaning


def write_result(path: Path, settings: dict[str, Any], records: Sequence[SessionRecord], summary: dict[str, Any],
                 own_cost: dict[str, Any]) -> Path:
    body = {"format": FORMAT, "settings": settings, "summary": summary, "load_generator": own_cost,
            "sessions": [r.as_json() for r in records]}
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path


def tables(summary: dict[str, Any], own_cost: dict[str, Any]) -> str:
    """The summary as people read it: outcomes, percentiles, the timeline's figures beside ours."""
    sessions = summary["sessions"]
    parts = [table(["DUE", "PLACED", "OK", "REFUSED", "FAILED", "DROPPED"],
                   [[str(sessions[k]) for k in ("due", "placed", "ok", "refused", "failed", "dropped")]])]
    codes = [[outcome, code, str(n)] for outcome in ("refused", "failed")
             for code, n in summary[f"{outcome}_by_code"].items()]
    if codes:
        parts.append(table(["OUTCOME", "CODE", "SESSIONS"], codes))
    rows = []
    for name, figures in summary["seconds"].items():
        if figures is None:
            rows.append([name, "0", "-", "-", "-", "-", "-"])
        else:
            rows.append([name, str(figures["n"]), *(f"{figures[k]:.3f}" for k in ("p50", "p90", "p95", "p99", "max"))])
    parts.append(table(["SECONDS", "N", "P50", "P90", "P95", "P99", "MAX"], rows))
    agreement = [[name, str(a["n"]), f"{a['caller_p50']:.3f}", f"{a['timeline_p50']:.3f}",
                  f"{a['difference_p50']:+.3f}", "-" if a["relative_difference_max"] is None
                  else f"{a['relative_difference_max']:.1%}"]
                 for name, a in summary["timeline_agreement"].items() if a is not None]
    if agreement:
        parts.append(table(["VS TIMELINE", "N", "CALLER P50", "TIMELINE P50", "DIFF P50", "MAX REL DIFF"], agreement))
    parts.append(table(["LOAD GENERATOR", "CPU S", "CPU S/SESSION", "SHARE OF A CORE", "LOOP LAG P99 S"],
                       [["this process", str(own_cost["cpu_seconds"]), str(own_cost["cpu_seconds_per_session"]),
                         str(own_cost["cpu_share_of_one_core"]), str(own_cost["loop_lag_p99_seconds"])]]))
    return "\n\n".join(parts)
