"""The docs' tables of `voicefleet loadtest` runs, from their saved result.json files: per run the
sessions and failures, both clocks' p50/p95 where they time the same interval and how far apart they
are, and the generator's own CPU per session (by phase when the result has it). Asserts nothing.

    uv run python -m bench.voice_load_table cold=/tmp/voice-load-x warm=/tmp/voice-load-y

Each argument is LABEL=DIR, DIR holding `bench.voice_load`'s per-rate folders (`1-per-min`, ...).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from voicefleet.loadtest.report import read_result
from voicefleet.loadtest.summary import percentile, summarise, timeline_values, values_of

RATES = ("1-per-min", "5-per-min", "20-per-min")
SHARED = (("connected", "joined"), ("first_audio", "first_audio"))  # caller's measurement, timeline's


def _p(values: list[float]) -> str:
    return f"{percentile(values, 50):.2f} / {percentile(values, 95):.2f}" if values else "-"


def rows(label: str, folder: Path) -> tuple[list[str], list[str]]:
    outcomes, clocks = [], []
    for rate in RATES:
        path = folder / rate / "result.json"
        if not path.exists():
            continue
        settings, records, own = read_result(path)
        summary = summarise(records)
        counts = summary["sessions"]
        failed = ", ".join(f"{code} {n}" for code, n in summary["failed_by_code"].items()) or "-"
        phases = own.get("cpu_seconds_per_session_by_phase") or {}
        split = " / ".join(f"{phases[k]:.2f}" for k in ("mic", "heard", "other_threads", "loop_rest")) if phases \
            else "-"
        name = f"{label} | {settings['rate_per_minute']:g}/min | {settings['duration_seconds']:g} s"
        outcomes.append(f"| {name} | {counts['ok']} / {counts['placed']} | {failed} | "
                        f"{own['cpu_seconds_per_session']:.2f} s | {split} | {own['cpu_share_of_one_core']:.1%} | "
                        f"{own['loop_lag_p99_seconds'] * 1000:.0f} ms |")
        for mine, theirs in SHARED:
            agreed: dict[str, Any] | None = summary["timeline_agreement"].get(mine)
            if agreed is None:
                continue
            caller = values_of(records, mine)
            timeline = timeline_values(records, theirs)
            clocks.append(f"| {name} | {agreed['interval']} | {agreed['n']} | {_p(caller)} | {_p(timeline)} | "
                          f"{agreed['difference_p50'] * 1000:+.0f} ms | {agreed['relative_difference_p50']:.1%} "
                          f"({agreed['relative_difference_max']:.1%}) |")
    return outcomes, clocks


def main() -> None:
    outcomes, clocks = [], []
    for argument in sys.argv[1:]:
        label, folder = argument.split("=", 1)
        more, shared = rows(label, Path(folder))
        outcomes += more
        clocks += shared
    print("| start | rate | placed for | ok / placed | failed | generator CPU per session | by phase: mic / heard / "
          "decoder threads / loop rest | share of a core | loop lag p99 |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(outcomes))
    print()
    print("| start | rate | placed for | interval | n | caller's p50 / p95 | dispatcher's p50 / p95 | difference p50 | "
          "relative difference p50 (max) |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(clocks))


if __name__ == "__main__":
    main()
