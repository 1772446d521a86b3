"""Each API key's budgets, changed at runtime (`voicefleet keys limit NAME ...`): minutes a day or a
month, spend a month, sessions at once. A start over one is refused 429 `over_budget`, naming the
budget, what was used and when it resets.

A budget is a runtime capacity value named `budget.KEY.KIND` (dispatcher/api/runtime_capacity.py):
it is kept, audited and carried to every replica and region as capacity is, within about a second,
and applied here by `Budgets.limit`. A budgeted key's start is checked and its place taken in one
step of the deployment's ledger (`Budgets.admit`, dispatcher/sessions/budget_usage.py), so a burst
at every replica at once cannot pass a budget; a key without one adds no store round trip. With
several regions the others' use, as they last told it, is added (dispatcher/regions/budget_use.py).
"""

from __future__ import annotations

import datetime
import math
import re
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from dispatcher.errors import ApiError

# kind → (what it counts, the period it resets with: "" never, "day" or "month", UTC)
KINDS: dict[str, tuple[str, str]] = {
    "minutes-day": ("minutes", "day"),
    "minutes-month": ("minutes", "month"),
    "spend-month": ("dollars", "month"),
    "sessions": ("sessions at once", ""),
}
MAX_BUDGET = 10**9
NAME = re.compile(r"^budget\.([a-z0-9][a-z0-9-]{0,62})\.(" + "|".join(map(re.escape, KINDS)) + r")$")
RETRY_AFTER_SESSIONS_SECONDS = 5.0  # a budget of sessions at once frees up when one of them ends


def parsed(name: object) -> tuple[str, str] | None:
    """(key name, kind) of a budget's runtime name, or None when `name` is none."""
    found = NAME.fullmatch(name) if isinstance(name, str) else None
    return (found.group(1), found.group(2)) if found else None


def value_checked(name: str, value: object) -> float | int:
    """`value` as budget `name` keeps it, or 400 saying what a budget is."""
    named = parsed(name)
    kind = named[1] if named else ""
    whole = kind != "spend-month"
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_BUDGET \
            or (whole and not float(value).is_integer()) or not math.isfinite(value):
        shape = "a whole number" if whole else "an amount in dollars (e.g. 250 or 99.50)"
        raise ApiError(400, "invalid_budget", f"{name}={str(value)[:40]!r}: a budget is {shape} from 0 to "
                       f"{MAX_BUDGET}; send null to remove it (`voicefleet keys limit NAME --{kind} none`)",
                       extra={})
    return int(value) if whole else float(value)


class Usage(Protocol):
    def used(self, key: str, kind: str, now: float) -> float:
        """What key `key` used of budget `kind` in its current period (at `now`, epoch seconds), in
        every region."""
        ...

    def started(self, key: str, session_id: str) -> None:
        """A session of `key` admitted here (counted from now on; never waits)."""
        ...

    def estimated(self, key: str, kind: str, now: float) -> float:
        """The part of `used` that is services' use as last reported by bots killed before their end."""
        ...

    async def admit(self, key: str, session_id: str, limits: Mapping[str, float], now: float) -> Over | bool:
        """The start checked against `limits` and counted in the same step: the budget it would go
        over, True (counted from now on), or False (not decided there: checked on what was last read)."""
        ...

    def cancel(self, key: str, session_id: str) -> None:
        """A start `admit` counted, refused or failed after it: no longer counted (never waits)."""
        ...

    def elsewhere(self, key: str, kind: str, now: float) -> float:
        """The part of `used` the other regions last told (0 with one region)."""
        ...

    def shared(self, now: float) -> dict[str, dict[str, float]] | None:
        """What this region tells its peers: each budgeted key's own use here, by ledger field (None:
        not read yet, nothing to tell)."""
        ...


class NothingUsed:
    """No usage known (a service built without a ledger): only a budget of 0 refuses."""

    def used(self, key: str, kind: str, now: float) -> float:
        return 0.0

    def started(self, key: str, session_id: str) -> None:
        return None

    def estimated(self, key: str, kind: str, now: float) -> float:
        return 0.0

    async def admit(self, key: str, session_id: str, limits: Mapping[str, float], now: float) -> Over | bool:
        return False

    def cancel(self, key: str, session_id: str) -> None:
        return None

    def elsewhere(self, key: str, kind: str, now: float) -> float:
        return 0.0

    def shared(self, now: float) -> dict[str, dict[str, float]] | None:
        return {}


@dataclass(frozen=True)
class Over:
    """A budget a start would go over: its key and kind, the budget, what was used, when it resets."""

    key: str
    kind: str
    budget: float
    used: float
    resets: float | None  # epoch seconds; None: when a session ends
    estimated: float = 0.0  # of `used`: services as last reported by bots killed before their end
    elsewhere: float = 0.0  # of `used`: the other regions' use, as they last told it
    reserved: float = 0.0  # of `used`: the reserves of the key's sessions still running (start_reserve.py)

    def refusal(self) -> ApiError:
        unit = KINDS[self.kind][0]
        when = (f"it resets at {_iso(self.resets)}" if self.resets is not None
                else "a session of the key ending frees one")
        retry = max(1.0, self.resets - _now()) if self.resets is not None else RETRY_AFTER_SESSIONS_SECONDS
        partly = (f" ({_figure(self.estimated)} of it estimated: the services of sessions whose bot ended "
                  "without its report, as it last reported them)" if self.estimated > 0 else "")
        regions = (f" across the regions ({_figure(self.elsewhere)} in the others, as they last told it)"
                   if self.elsewhere > 0 else "")
        # A reserve is no spend yet: said, so that "11.16 of 0.006 used" by a key that spent nothing reads.
        held = (f" ({_figure(self.reserved)} of it held for its sessions still running until their bills replace "
                "it, at least BUDGET_START_RESERVE_USD each)" if self.reserved > 0 else "")
        extra: dict[str, object] = {"budget": f"{self.kind}", "limit": self.budget, "used": self.used,
                                    "resets_at": _iso(self.resets) if self.resets is not None else None}
        if self.estimated > 0:
            extra["estimated"] = self.estimated
        if self.elsewhere > 0:
            extra["used_in_other_regions"] = self.elsewhere
        if self.reserved > 0:
            extra["reserved"] = self.reserved
        return ApiError(429, "over_budget", f"key {self.key!r} is at its {self.kind} budget: {_figure(self.used)} "
                        f"of {_figure(self.budget)} {unit} used{regions}{partly}{held}; {when} "
                        f"(an admin raises it with `voicefleet keys limit {self.key} --{self.kind} N`)",
                        retry_after=retry, extra=extra)


class Budgets:
    """The budgets as this replica applied them, checked before a start is admitted."""

    def __init__(self, usage: Usage | None = None) -> None:
        self.usage: Usage = usage or NothingUsed()
        self.follow: Callable[[], Coroutine[Any, Any, None]] | None = None  # reads the usage until cancelled
        self._limits: dict[str, dict[str, float]] = {}  # key name → kind → budget
        # Starts checked and not yet counted by the usage (their machine is being made): key → ids.
        # Held at the check, with no await between, so starts in flight at once cannot all pass it.
        self._held: dict[str, set[str]] = {}

    def limit(self, values: Mapping[str, Any]) -> None:
        """Applies the budgets among runtime values `values` (each checked already); the rest are not budgets."""
        limits: dict[str, dict[str, float]] = {}
        for name, value in values.items():
            named = parsed(name)
            if named is not None:
                limits.setdefault(named[0], {})[named[1]] = float(value)
        self._limits = limits

    def keys(self) -> list[str]:
        """The keys that have a budget."""
        return sorted(self._limits)

    def of(self, key: str) -> dict[str, float]:
        return dict(self._limits.get(key, {}))

    def in_use(self, values: Mapping[str, Any], now: float) -> dict[str, float]:
        """What each budget among runtime values `values` has used, by its runtime name."""
        named = ((name, parsed(name)) for name in values)
        return {name: self.usage.used(found[0], found[1], now) for name, found in named if found is not None}

    def over(self, key: str, now: float) -> Over | None:
        """The first budget of `key` a new start would go over, or None (no budget: nothing read)."""
        for kind, budget in self._limits.get(key, {}).items():
            used = self.usage.used(key, kind, now)
            if kind == "sessions":
                used += len(self._held.get(key, ()))
            if used >= budget:
                return Over(key, kind, budget, used, resets_at(KINDS[kind][1], now),
                            self.usage.estimated(key, kind, now), self.usage.elsewhere(key, kind, now))
        return None

    async def admit(self, key: str, session_id: str) -> None:
        """429 `over_budget` when a start by `key` would go over one of its budgets; else its place is
        taken until `cancel` or its end: in the deployment's ledger, or, where that does not decide,
        held here until `release` (as `check`)."""
        now = _now()
        limits = self._limits.get(key)
        if not limits:
            return
        decided = await self.usage.admit(key, session_id, limits, now)
        if isinstance(decided, Over):
            raise decided.refusal()
        if not decided:
            self.check(key, now, hold=session_id)

    def cancel(self, key: str, session_id: str) -> None:
        """A start `admit` let through and then refused or failed: its place given back."""
        self.release(key, session_id)
        self.usage.cancel(key, session_id)

    def check(self, key: str, now: float | None = None, hold: str | None = None) -> None:
        """429 `over_budget` when a start by `key` would go over one of its budgets; else, with `hold`
        (the start's session id), its place is held until `release` (its start counted, or failed)."""
        over = self.over(key, _now() if now is None else now)
        if over is not None:
            raise over.refusal()
        if hold is not None:
            self._held.setdefault(key, set()).add(hold)

    def release(self, key: str, session_id: str) -> None:
        """The place `check` held for a start: counted by the usage now, or the start failed."""
        held = self._held.get(key)
        if held is not None:
            held.discard(session_id)
            if not held:
                del self._held[key]


def resets_at(period: str, now: float) -> float | None:
    """When a budget of `period` resets after `now` (UTC midnight, the first of next month), or None."""
    today = datetime.datetime.fromtimestamp(now, datetime.UTC).date()
    if period == "day":
        nxt = today + datetime.timedelta(days=1)
    elif period == "month":
        nxt = (today.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)
    else:
        return None
    return datetime.datetime(nxt.year, nxt.month, nxt.day, tzinfo=datetime.UTC).timestamp()


def _now() -> float:
    return time.time()  # epoch seconds, as datetime.now(UTC).timestamp() gives them, without the datetime


def _iso(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _figure(value: float) -> str:
    return f"{value:g}"
