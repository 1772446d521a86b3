"""What this replica did lately, for `GET /status` and its charts: starts, refused starts by code and
the time to ready, counted in 10-second slots over the last hour, with the sessions and idle bots
sampled beside them. Per replica and in memory: a restart starts it empty.

Bounded: at most SLOTS slots, each with at most MAX_CODES refusal codes (the rest counted as
`other`) and MAX_READY_SAMPLES times to ready (a reservoir sample beyond that)."""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

SLOT_SECONDS = 10
HOUR_SECONDS = 3600
SLOTS = HOUR_SECONDS // SLOT_SECONDS
MINUTE_SLOTS = 60 // SLOT_SECONDS
MAX_CODES = 32
MAX_READY_SAMPLES = 64
OTHER_CODE = "other"
WINDOWS = {"1m": 60, "5m": 300, "15m": 900}


@dataclass
class _Slot:
    start: int  # epoch seconds, a multiple of SLOT_SECONDS
    starts: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    cold: dict[str, int] = field(default_factory=dict)  # starts sent cold though a warm bot waited, by why
    ready: list[float] = field(default_factory=list)
    ready_seen: int = 0  # every time to ready this slot saw, sampled into `ready`
    sessions: int | None = None  # the last sample taken in the slot
    reserve_idle: int | None = None


class Activity:
    def __init__(self, clock: Callable[[], float] = time.time, rng: random.Random | None = None) -> None:
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - a reservoir sample, not a secret
        self._slots: deque[_Slot] = deque(maxlen=SLOTS)

    def started(self) -> None:
        self._slot().starts += 1

    def refused(self, code: str) -> None:
        refusals = self._slot().refusals
        if code not in refusals and len(refusals) >= MAX_CODES:
            code = OTHER_CODE
        refusals[code] = refusals.get(code, 0) + 1

    def went_cold(self, reason: str) -> None:
        """A start launched cold though the reserve had a bot, because of `reason` (`key_warm_share`)."""
        cold = self._slot().cold
        cold[reason] = cold.get(reason, 0) + 1

    def ready_after(self, seconds: float) -> None:
        if not math.isfinite(seconds) or seconds < 0:
            return
        slot = self._slot()
        slot.ready_seen += 1
        if len(slot.ready) < MAX_READY_SAMPLES:
            slot.ready.append(seconds)
        elif (pick := self._rng.randrange(slot.ready_seen)) < MAX_READY_SAMPLES:
            slot.ready[pick] = seconds

    def sampled(self, *, sessions: int, reserve_idle: int | None) -> None:
        slot = self._slot()
        slot.sessions = sessions
        slot.reserve_idle = reserve_idle

    def windows(self) -> dict[str, dict[str, Any]]:
        """Starts and refusals (by code) over each of WINDOWS, to the slot: the last 1, 5, 15 minutes."""
        now = self._clock()
        answer = {}
        for name, seconds in WINDOWS.items():
            inside = [slot for slot in self._slots if slot.start > now - seconds - SLOT_SECONDS]
            refusals = _summed(slot.refusals for slot in inside)
            answer[name] = {"starts": sum(slot.starts for slot in inside), "refused": sum(refusals.values()),
                            "refusals": refusals}
            cold = _summed(slot.cold for slot in inside)
            if cold:  # only when a start went cold though a warm bot waited
                answer[name]["cold"] = cold
        return answer

    def history(self) -> list[dict[str, Any]]:
        """One sample a minute over the last hour, oldest first; minutes with nothing recorded are
        absent (a chart leaves a gap)."""
        minutes: dict[int, list[_Slot]] = {}
        horizon = self._clock() - HOUR_SECONDS
        for slot in self._slots:
            if slot.start >= horizon:
                minutes.setdefault(slot.start - slot.start % 60, []).append(slot)
        return [_minute(at, slots) for at, slots in sorted(minutes.items())]

    def _slot(self) -> _Slot:
        start = int(self._clock()) // SLOT_SECONDS * SLOT_SECONDS
        if self._slots and start <= self._slots[-1].start:  # the same slot, or a clock stepped back
            return self._slots[-1]
        self._slots.append(_Slot(start))
        return self._slots[-1]


def _summed(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for one in counts:
        for code, count in one.items():
            total[code] = total.get(code, 0) + count
    return dict(sorted(total.items()))


def _minute(at: int, slots: list[_Slot]) -> dict[str, Any]:
    ready = sorted(seconds for slot in slots for seconds in slot.ready)
    sampled = [slot for slot in slots if slot.sessions is not None]
    last = sampled[-1] if sampled else None
    return {
        "at": at,
        "starts": sum(slot.starts for slot in slots),
        "refused": sum(sum(slot.refusals.values()) for slot in slots),
        "ready_p50": _quantile(ready, 0.5),
        "ready_p95": _quantile(ready, 0.95),
        "sessions": last.sessions if last else None,
        "reserve_idle": last.reserve_idle if last else None,
    }


def _quantile(ordered: list[float], q: float) -> float | None:
    """The nearest-rank quantile of a sorted list; None for none."""
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 3)
