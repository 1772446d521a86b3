"""The run's figures: percentiles of each measurement over the sessions that have it, on each of the
two clocks (the caller's, from its `POST /start`; the dispatcher's, from its timeline's `requested`),
outcomes counted by code, and the two clocks compared only where they time the same interval."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from voicefleet.loadtest.record import DROPPED, FAILED, OK, REFUSED, SessionRecord

PERCENTILES = (50, 90, 95, 99)
MEASUREMENTS = ("start_answer", "ready", "connected", "first_audio", "turn")  # the caller's clock
TIMELINE_MEASUREMENTS = ("joined", "ready", "first_audio")  # the dispatcher's clock (timeline.py)
# The intervals both clocks time (the caller's measurement: the timeline's, and what it is): the start
# asked for → the media connection up (the caller's peer connection `connected`, the bot's `joined` when
# its side of the same connection came up), and → the bot's first audio. Only for WebRTC,
# where the dispatcher's `requested` is the caller's POST /start; a phone call's session is requested
# when its stream connects, after the start's answer. `ready` is never compared: a warm bot was ready
# before the request came, so the caller's "ready" is the answer's round trip, not the bot's start.
SAME_INTERVAL = {"connected": ("joined", "start asked → media connected"),
                 "first_audio": ("first_audio", "start asked → bot's first audio")}
COMPARED_TRANSPORTS = ("webrtc",)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile, interpolated between the two nearest ranks (numpy's default, "linear")."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * p / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def spread(values: Iterable[float]) -> dict[str, float | int] | None:
    """`{n, min, p50, p90, p95, p99, max}` in seconds, or None for no values."""
    found = list(values)
    if not found:
        return None
    figures: dict[str, float | int] = {"n": len(found), "min": round(min(found), 4)}
    figures.update({f"p{p}": round(percentile(found, p), 4) for p in PERCENTILES})
    figures["max"] = round(max(found), 4)
    return figures


def values_of(records: Iterable[SessionRecord], measurement: str) -> list[float]:
    """Every value of `measurement` (`turn`: each turn's) among the records that have one."""
    found: list[float] = []
    for record in records:
        if measurement == "turn":
            found += [t for t in record.turns if t is not None]
        else:
            value = getattr(record, measurement)
            if value is not None:
                found.append(value)
    return found


def timeline_values(records: Iterable[SessionRecord], measurement: str) -> list[float]:
    """The dispatcher's own `measurement` (from `requested`) for the records whose timeline has it."""
    return [r.timeline[measurement] for r in records if measurement in r.timeline]


def agreement(records: Iterable[SessionRecord], measurement: str) -> dict[str, Any] | None:
    """The caller's `measurement` against the timeline's where both time the same interval (see
    SAME_INTERVAL), for sessions that have both: the medians of each and of their difference, and the
    largest relative difference. None for an interval the clocks do not share."""
    if measurement not in SAME_INTERVAL:
        return None
    theirs, interval = SAME_INTERVAL[measurement]
    pairs = [(getattr(r, measurement), r.timeline[theirs]) for r in records
             if r.transport in COMPARED_TRANSPORTS and getattr(r, measurement) is not None
             and theirs in r.timeline]
    if not pairs:
        return None
    relative = [abs(caller - own) / own for caller, own in pairs if own > 0]
    return {
        "interval": interval,
        "n": len(pairs),
        "caller_p50": round(percentile([c for c, _ in pairs], 50), 4),
        "timeline_p50": round(percentile([o for _, o in pairs], 50), 4),
        "difference_p50": round(percentile([c - o for c, o in pairs], 50), 4),
        "relative_difference_p50": round(percentile(relative, 50), 4) if relative else None,
        "relative_difference_max": round(max(relative), 4) if relative else None,
    }


def summarise(records: Sequence[SessionRecord]) -> dict[str, Any]:
    counted = Counter(r.outcome for r in records)
    return {
        "sessions": {"due": len(records), "placed": len(records) - counted[DROPPED], "ok": counted[OK],
                     "refused": counted[REFUSED], "failed": counted[FAILED], "dropped": counted[DROPPED],
                     "caller_spoke_first": sum(r.caller_spoke_first for r in records)},
        "refused_by_code": dict(Counter(str(r.code) for r in records if r.outcome == REFUSED)),
        "failed_by_code": dict(Counter(str(r.code) for r in records if r.outcome == FAILED)),
        "seconds": {m: spread(values_of(records, m)) for m in MEASUREMENTS},  # the caller's clock
        "timeline_seconds": {m: spread(timeline_values(records, m)) for m in TIMELINE_MEASUREMENTS},
        "timeline_agreement": {m: agreement(records, m) for m in SAME_INTERVAL},
    }
