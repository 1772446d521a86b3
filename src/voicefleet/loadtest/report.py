"""`voicefleet loadtest --report RESULT.json`: a saved run's chart and tables again, without a run.
The summary is computed again from the sessions' records, so a result written before a table
changed is shown as the command shows one now; the generator's own cost is the run's, as saved."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from voicefleet.loadtest.record import SessionRecord

RECORD_FIELDS = frozenset(f.name for f in fields(SessionRecord))
NEEDED = ("settings", "load_generator", "sessions")


def read_result(path: Path) -> tuple[dict[str, Any], list[SessionRecord], dict[str, Any]]:
    """`(settings, records, the generator's own cost)`; ValueError saying what is wrong with the file."""
    try:
        body = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not a load test's result.json ({error})") from None
    if not isinstance(body, dict) or any(not isinstance(body.get(k), (dict, list)) for k in NEEDED):
        raise ValueError(f"not a load test's result.json: it needs {', '.join(NEEDED)}")
    records = []
    for number, session in enumerate(body["sessions"]):
        try:
            records.append(SessionRecord(**{k: v for k, v in session.items() if k in RECORD_FIELDS}))
        except (TypeError, AttributeError):
            raise ValueError(f"session {number} of the result is not a session's record") from None
    return body["settings"], records, body["load_generator"]


def title(settings: dict[str, Any], placed: int) -> str:
    """The chart's title: what was run, when."""
    return (f"voicefleet loadtest: {settings.get('transport')}, {_number(settings.get('rate_per_minute'))}/min for "
            f"{_number(settings.get('duration_seconds'))} s, {placed} sessions, {settings.get('started_at')}")


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)
