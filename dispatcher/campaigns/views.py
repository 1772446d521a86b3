"""What `GET /campaigns/{id}` and its results show: a campaign's progress (rows in all, calls placed, rows in
progress, each outcome, skipped, retrying) and a row per number (to, outcome, session id, attempts,
duration, cost where the session's usage prices it), as JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

from dispatcher.store.campaign_book import CampaignBook, CampaignRecord

RESULT_COLUMNS = ("to", "outcome", "status", "session_id", "attempts", "duration_seconds", "cost_usd", "detail")
PAGE = 1000  # rows read from the store at a time


def progress(campaign_id: str, record: CampaignRecord) -> dict[str, Any]:
    meta, counts = record.meta, record.counts
    spec = json.loads(meta["spec"])
    outcomes = {k.removeprefix("outcome:"): v for k, v in sorted(counts.items()) if k.startswith("outcome:")}
    return {
        "id": campaign_id, "name": spec.get("name"), "status": meta["status"],
        "created": float(meta["created"]), "finished": float(meta["finished"]) if meta.get("finished") else None,
        "from": spec["from"], "carrier": spec.get("carrier"), "trunk": spec.get("trunk"),
        "voicemail": spec.get("voicemail"), "concurrency": int(meta["concurrency"]), "pace": spec["pace"],
        "retry": spec.get("retry"),
        "rows": int(meta.get("total", 0)), "placed": counts.get("placed", 0), "in_progress": record.in_progress,
        "pending": record.pending, "retrying": record.retrying, "skipped": counts.get("skipped", 0),
        "done": sum(outcomes.values()), "retries": counts.get("retries", 0), "outcomes": outcomes,
    }


def result_row(call: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    return {"to": call["to"], "outcome": state.get("outcome") if state.get("status") in ("done", "skipped") else None,
            "status": state.get("status", "pending"), "session_id": state.get("session_id"),
            "attempts": int(state.get("attempts", 0)), "duration_seconds": state.get("duration_seconds"),
            "cost_usd": state.get("cost_usd"), "detail": state.get("detail")}


async def results(book: CampaignBook, campaign_id: str, start: int, count: int) -> list[dict[str, Any]]:
    return [result_row(call, state) for call, state in await book.rows(campaign_id, start, count)]


async def results_csv(book: CampaignBook, campaign_id: str, total: int) -> AsyncIterator[str]:
    """Every row, a page read at a time, as CSV with a header."""
    yield _line(RESULT_COLUMNS)
    for start in range(0, total, PAGE):
        for row in await results(book, campaign_id, start, PAGE):
            yield _line(tuple("" if row[c] is None else row[c] for c in RESULT_COLUMNS))


def _line(values: tuple[Any, ...]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([_safe(v) for v in values])
    return out.getvalue()


def _safe(value: Any) -> Any:
    """A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, or a tab or carriage return before
    one, first: OWASP's CSV-injection list) is quoted as text with a `'`; a number (`+14155550100` included)
    stays as it is written."""
    text = str(value)
    if text[:1] in ("=", "@", "\t", "\r") or (text[:1] in ("+", "-") and not text[1:].replace(".", "", 1).isdigit()):
        return "'" + text
    return value
