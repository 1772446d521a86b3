"""A day's usage file for billing pipelines: one CSV per UTC day, `usage/<day>.csv` under a store's
prefix, one line per key and a `TOTAL` line, in the columns and number formats of
`voicefleet usage --by key --csv` for that one day (src/voicefleet/usage.py), so a job reads either alike.

It is rendered from the day's rollups (dispatcher/usage/rollups.py), never from the sessions: the same
sums give the same bytes at every replica, so two replicas writing one day write one file.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from dispatcher.usage.rollups import Grouped
from dispatcher.usage.summary import summarise

COLUMNS = ("key", "sessions", "minutes", "cost_usd", "not_priced")
FOLDER = "usage"
CONTENT_TYPE = "text/csv"


def day_key(prefix: str, day: date, region: str = "") -> str:
    """The file's key in the store (its keys are full paths under `prefix`). With several regions each
    keeps its own sums, so each writes its own file (`usage/<region>/<day>.csv`), never over another's."""
    name = f"{FOLDER}/{region}/{day.isoformat()}.csv" if region else f"{FOLDER}/{day.isoformat()}.csv"
    return f"{prefix}/{name}" if prefix else name


def day_csv(grouped: Grouped) -> bytes:
    """The day's file from its sums grouped by key."""
    summary = summarise(grouped, "key")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(_line(str(row["key"]), row) for row in summary["rows"])
    writer.writerow(_line("TOTAL", summary["totals"]))
    return out.getvalue().encode()


def _line(name: str, sums: dict[str, Any]) -> list[str]:
    return [name, str(sums.get("sessions", 0)), f"{sums.get('minutes', 0):.2f}", f"{sums.get('cost_usd', 0):.6f}",
            str(sums.get("not_priced", 0))]
