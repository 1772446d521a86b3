"""What each key used of its budgets, in the deployment's ledger (dispatcher/store/budget_ledger.py),
and the budget webhooks.

A budgeted key's start is checked against the ledger and opened there in one step (`admit`), so
starts at several replicas at once cannot pass a budget together, and a refusal quotes the ledger's
own figure; a store that does not answer leaves the check to what this replica last read, the open
to when it answers again. An unbudgeted key's start is opened in the background. The end of a
session, at whichever replica sees it (its stop, its bot's `ended`, its machine's end, all on the
timeline), closes it and adds its minutes and machine to its periods; until then it counts what it
ran so far, and against spend at least a reserve (dispatcher/sessions/start_reserve.py). Once a
second this replica reads the budgeted keys' usage, for `GET /capacity` and the webhooks.

A session's spend is what it is billed (dispatcher/sessions/cost.py `billed_usd`: its machine with a
warm bot's idle share, its services and TURN relay, as `GET /usage` and the daily file count it),
added in place of its machine once its usage count has priced it (dispatcher/usage/usage_count.py;
a bot killed before its end: its use as it last reported it, the services kept apart as estimated).

Crossing 80 % and 100 % of a budget pushes `key.budget.warning` and `key.budget.reached`, once each
per key, budget and period across every replica (the ledger's one-time record decides which), from
one region. With several regions every figure but what this region tells its peers (`own`) adds the
others' last-told use (dispatcher/regions/budget_use.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from dispatcher.regions.budget_use import MAX_KEYS
from dispatcher.sessions.budgets import KINDS, Budgets, Over, resets_at
from dispatcher.sessions.cost import PARTIAL, PARTIAL_RELAY, SessionCost
from dispatcher.sessions.start_reserve import LEAST_USD
from dispatcher.store.budget_in_flight import ESTIMATED, InFlight
from dispatcher.store.budget_ledger import KEEP_SECONDS, Budget, BudgetLedger
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.sessions.budgets")
READ_SECONDS = 1.0
ENDS = ("stop_requested", "ended", "machine_ended", "failed")  # a session's end, as the timeline tells it
# A start that failed with its machine still starting (`?wait=started` gave up: "it may still start"):
# the session runs on, until its bot's or its machine's own end.
STILL_STARTING = ("start_timeout",)


def is_end(record: Mapping[str, Any]) -> bool:
    """Whether a timeline record ends its session: not a failed start whose machine may still start."""
    event = record.get("event")
    return event in ENDS and not (event == "failed" and record.get("code") in STILL_STARTING)


THRESHOLDS = ((0.8, "key.budget.warning"), (1.0, "key.budget.reached"))
Push = Callable[[str, str, dict[str, Any]], None]  # the webhooks' `push` (message id, type, data)


class Elsewhere(Protocol):
    """The other regions' use of a key's budgets (dispatcher/regions/budget_use.py)."""

    def used(self, key: str, ledger_field: str) -> float: ...

    def tells(self, key: str) -> bool:
        """Whether this region pushes `key`'s budget webhooks (one region for the deployment)."""
        ...


class NoOtherRegion:
    """One region: nothing used elsewhere, and this region tells every webhook."""

    def used(self, key: str, ledger_field: str) -> float:
        return 0.0

    def tells(self, key: str) -> bool:
        return True


def field_of(kind: str, now: float) -> str:
    """The ledger's field a budget `kind` reads at `now`: e.g. `minutes:day:2026-11-27`."""
    unit, period = KINDS[kind]
    day = datetime.datetime.fromtimestamp(now, datetime.UTC)
    if period == "day":
        return f"minutes:day:{day:%Y-%m-%d}"
    if period == "month":
        return f"{'dollars' if unit == 'dollars' else 'minutes'}:month:{day:%Y-%m}"
    return "sessions"


DAY_SECONDS = 86_400  # a UTC day in epoch seconds (POSIX time has no leap seconds)


class PeriodFields:
    """The ledger's field of each budget kind, worked out once a UTC day: a start's check asks for
    them at every start, and they change only at midnight."""

    def __init__(self) -> None:
        self._day = -1  # the UTC day (epoch seconds // DAY_SECONDS) `_fields` hold
        self._fields: dict[str, str] = {}

    def field(self, kind: str, now: float) -> str:
        day = int(now // DAY_SECONDS)
        if day != self._day:
            self._fields = {each: field_of(each, now) for each in KINDS}
            self._day = day
        return self._fields[kind]


def sessions_field(now: float) -> str:
    """The ledger's count of sessions ended in the month of `now` (a reserve is their average spend)."""
    return f"sessions:month:{datetime.datetime.fromtimestamp(now, datetime.UTC):%Y-%m}"


def reserve_field(now: float) -> str:
    """The spend of just those sessions (the month's spend may hold sessions the count does not)."""
    return f"counted:dollars:month:{datetime.datetime.fromtimestamp(now, datetime.UTC):%Y-%m}"


def fields_of(now: float) -> dict[str, str]:
    """The period fields a session ending at `now` adds to: field → "minutes", "dollars" or "sessions"."""
    return {field_of("minutes-day", now): "minutes", field_of("minutes-month", now): "minutes",
            field_of("spend-month", now): "dollars", reserve_field(now): "dollars", sessions_field(now): "sessions"}


def unit_of(kind: str) -> str:
    """How the ledger counts budget `kind`: "sessions" (open now), "dollars" or "minutes"."""
    return "sessions" if kind == "sessions" else "dollars" if KINDS[kind][0] == "dollars" else "minutes"


class LedgerUsage:
    def __init__(self, ledger: BudgetLedger, budgets: Budgets, dollars_per_second: float | None,
                 push: Push | None = None, clock: Callable[[], float] = time.time,
                 start_reserve: float = LEAST_USD) -> None:
        self._ledger, self._budgets, self._clock = ledger, budgets, clock
        self._dollars = dollars_per_second or 0.0
        self._start_reserve = start_reserve  # each running session's reserve at least (start_reserve.py)
        self.push = push
        self._read: dict[str, dict[str, float]] = {}
        self._read_at = 0.0  # when `_read` was read (this replica's clock)
        self._fields = PeriodFields()
        # Sessions admitted here that a reading may not hold yet: key → their ids; and those whose
        # open the ledger took (a reading that begins after it holds them).
        self._pending: dict[str, set[str]] = {}
        self._written: set[str] = set()
        # Opens the store did not take (it was down): still counted here, opened at a later reading
        # (session → key, its start); and closes it did not take, done then too (session → its end).
        self._unopened: dict[str, tuple[str, float]] = {}
        self._ended: dict[str, float] = {}
        self._taken: set[str] = set()  # sessions `admit` opened (their `started` opens nothing more)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.other_regions: Elsewhere = NoOtherRegion()
        budgets.usage = self
        budgets.follow = self.run

    def in_flight(self, now: float) -> InFlight:
        """How open sessions count against spend at `now` (this month's fields, the machine's price)."""
        return InFlight(self._dollars, self._start_reserve, reserve_field(now), sessions_field(now))

    def used(self, key: str, kind: str, now: float) -> float:
        """The deployment's: this region's (`own`) and the other regions' as they last told it."""
        return self.own(key, kind, now) + self.elsewhere(key, kind, now)

    def elsewhere(self, key: str, kind: str, now: float) -> float:
        return self.other_regions.used(key, self._fields.field(kind, now))

    def shared(self, now: float) -> dict[str, dict[str, float]] | None:
        """Each budgeted key's own use here by ledger field, for the peers: the `MAX_KEYS` nearest
        a budget (a key that used nothing here is left out). None before this replica first read its
        ledger: an empty answer would make the peers forget this region's minutes and spend."""
        if self._read_at == 0.0 and self._budgets.keys():
            return None
        found: list[tuple[float, str, dict[str, float]]] = []
        for key in self._budgets.keys():
            limits, fields, nearest = self._budgets.of(key), {}, 0.0
            for kind, limit in limits.items():
                used = self.own(key, kind, now)
                if used > 0:
                    fields[self._fields.field(kind, now)] = round(used, 6)
                    nearest = max(nearest, used / limit if limit > 0 else math.inf)
            if fields:
                found.append((nearest, key, fields))
        found.sort(key=lambda each: (-each[0], each[1]))
        return {key: fields for _, key, fields in found[:MAX_KEYS]}

    def own(self, key: str, kind: str, now: float) -> float:
        """This region's, as the ledger's `admit` counts it, from this replica's last reading and the starts since."""
        read = self._read.get(key, {})
        pending = len(self._pending.get(key, ()))
        if kind == "sessions":
            return read.get("sessions", 0.0) + pending
        base = read.get(self._fields.field(kind, now), 0.0)
        if KINDS[kind][0] == "dollars":  # open sessions' spend in flight, their machine run on since the reading
            grown = read.get("sessions", 0.0) * max(0.0, now - self._read_at) * self._dollars
            return base + read.get("in_flight", 0.0) + grown + pending * self.in_flight(now).reserve(read)
        # Its sessions open now count what they ran so far: else many long sessions at once took a
        # key any distance past its minutes before the first of them ended.
        return base + max(0.0, read.get("sessions", 0.0) * now - read.get("open_since", 0.0)) / 60

    async def admit(self, key: str, session_id: str, limits: Mapping[str, float], now: float) -> Over | bool:
        # The other regions' use is an addend to the ledger's figure: checked as what is left of each
        # budget here, so the store's one step is the same script with or without regions.
        elsewhere = {kind: self.elsewhere(key, kind, now) for kind in limits}
        budgets: list[Budget] = [(kind, self._fields.field(kind, now), unit_of(kind), limit - elsewhere[kind])
                                 for kind, limit in limits.items()]
        try:
            refused = await self._ledger.admit(key, session_id, now, budgets, self.in_flight(now))
        except StoreUnavailable:
            return False  # decided on the usage last read; opened once the store answers (`started`)
        if refused is not None:
            return Over(key, refused.kind, limits[refused.kind], refused.used + elsewhere[refused.kind],
                        resets_at(KINDS[refused.kind][1], now), refused.estimated, elsewhere[refused.kind],
                        refused.reserved)
        self._taken.add(session_id)
        self._pending.setdefault(key, set()).add(session_id)
        self._written.add(session_id)
        return True

    def cancel(self, key: str, session_id: str) -> None:
        if session_id in self._taken:
            self._taken.discard(session_id)
            self._pending.get(key, set()).discard(session_id)
            self._background(self._ledger.cancel(key, session_id))

    def estimated(self, key: str, kind: str, now: float) -> float:
        if KINDS[kind][0] != "dollars":
            return 0.0
        return self._read.get(key, {}).get(ESTIMATED + self._fields.field(kind, now), 0.0)

    async def services_spent(self, key: str, session_id: str, cost: SessionCost, at: float) -> None:
        """A session's billed spend, in its key's spend in the month it ended (`at`) in place of the
        machine its close added, once whichever replicas add it; a killed bot's services, as it last
        reported them, also as estimated."""
        billed = cost.billed_usd  # what GET /usage and the daily file count for it
        if billed <= 0:
            return
        partial = {PARTIAL, PARTIAL_RELAY} & set(cost.not_counted)
        await self._ledger.spent(key, session_id, billed, [field_of("spend-month", at), reserve_field(at)],
                                 cost.metered_usd if partial else 0.0)

    def started(self, key: str, session_id: str) -> None:
        """A session admitted here for `key`: opened in the ledger in the background (unless `admit` did)."""
        if session_id in self._taken:
            self._taken.discard(session_id)
            return
        self._pending.setdefault(key, set()).add(session_id)
        self._background(self._opened(key, session_id))

    async def _opened(self, key: str, session_id: str, at: float | None = None) -> None:
        at = self._clock() if at is None else at
        try:
            await self._ledger.open(key, session_id, at)
        except StoreUnavailable:  # the session runs all the same: counted here until the store takes it
            self._unopened[session_id] = (key, at)
            raise
        except BaseException:  # not in the ledger: no longer counted here either
            self._pending.get(key, set()).discard(session_id)
            raise
        self._unopened.pop(session_id, None)
        self._written.add(session_id)

    def timeline_event(self, session_id: str, record: Mapping[str, Any]) -> None:
        """A timeline listener: a session's end closes it in the ledger; never waits."""
        if is_end(record):
            at = self._clock()
            if session_id in self._unopened:
                self._ended.setdefault(session_id, at)  # closed once its open is taken
            else:
                self._background(self._closed(session_id, at))

    async def _closed(self, session_id: str, at: float) -> None:
        try:
            key = await self._ledger.owner(session_id)
            if key is None:  # its open not taken yet (at another replica, or held by an outage)
                key = await self._ledger.ended(session_id, at, self._dollars, fields_of(at))
            if key is not None:
                await self._ledger.close(key, session_id, at, self._dollars, fields_of(at))
        except StoreUnavailable:  # else open in the ledger for good: a place of its key's budget lost
            self._ended.setdefault(session_id, at)
            raise
        self._ended.pop(session_id, None)

    async def _catch_up(self) -> None:
        """Opens the sessions started while the store was down, then closes those that ended."""
        for session_id, (key, at) in list(self._unopened.items()):
            await self._opened(key, session_id, at)
        for session_id, at in list(self._ended.items()):
            await self._closed(session_id, at)

    async def refresh(self) -> None:
        """Reads the budgeted keys' usage, then pushes the webhooks of budgets it crossed."""
        await self._catch_up()
        budgeted = self._budgets.keys()
        written = set(self._written)
        now = self._clock()
        self._read, self._read_at = await self._ledger.read(budgeted, now, self.in_flight(now)), now
        self._written -= written
        for key in list(self._pending):  # held by this reading from now on
            self._pending[key] -= written
            if not self._pending[key]:
                del self._pending[key]
        now = self._clock()
        for key in budgeted:
            for kind, budget in self._budgets.of(key).items():
                await self._tell(key, kind, budget, self.used(key, kind, now), now)

    async def _tell(self, key: str, kind: str, budget: float, used: float, now: float) -> None:
        if self.push is None or budget <= 0 or not self.other_regions.tells(key):
            return
        for share, kind_of_event in THRESHOLDS:
            if used < share * budget:
                continue
            period = field_of(kind, now).rpartition(":")[2] if KINDS[kind][1] else "now"
            marker = f"{key}:{kind}:{budget:g}:{period}:{int(share * 100)}"
            if not await self._ledger.first(marker, KEEP_SECONDS):
                continue
            resets = resets_at(KINDS[kind][1], now)
            self.push(f"msg_budget_{marker.replace(':', '_')}", kind_of_event,
                      {"key": key, "budget": kind, "limit": budget, "used": round(used, 3),
                       "percent": int(share * 100), "at": now, "resets_at": resets})

    async def run(self) -> None:
        """Reads the usage once a second until cancelled."""
        while True:
            try:
                await self.refresh()
            except StoreUnavailable:
                pass  # the usage last read goes on applying; the store's health says why
            except Exception:
                log.exception("reading the keys' budget usage failed")
            await asyncio.sleep(READ_SECONDS)

    def _background(self, work: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(self._quietly(work))
        except RuntimeError:  # no loop (a synchronous caller at shutdown)
            work.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _quietly(self, work: Any) -> None:
        with contextlib.suppress(StoreUnavailable):
            try:
                await work
            except StoreUnavailable:
                raise
            except Exception:
                log.exception("the budget ledger did not take a session's open or close")
