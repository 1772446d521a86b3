"""Each ended session's use, added to the usage rollups (dispatcher/usage/rollups.py) and to the
per-key counters in `/metrics` (dispatcher/usage/key_metrics.py).

A timeline listener, as the cost's count in `/metrics` is (dispatcher/sessions/cost_count.py): the
bot's `ended` report is recorded at the replica whose channel holds the bot (without one, its machine's
end is finalised once its grace is over, sessions/machine_end_grace.py: `machine_ended`), which reads back the
session's timeline (its release, its machine, its services' usage) and its listed entry (its key)
in the background, at most `MAX_PENDING` at once, adds it, and notes its cost beside its listed
entry (`GET /sessions`' `cost_usd`). The rollups' own marker makes a
second report of the same end, here or at another replica, add nothing. A bot that ended without
its report has its services counted as it last reported them during the call
(dispatcher/usage/so_far.py). An eval's session is billed to its key like any session (its
sessions, minutes, cost and per-key metrics), and also counted in a breakdown of its own
(`eval_sessions`, `eval_seconds`, `eval_usd`: "of which evals"): any key may mark its starts
`"eval": true`, so the mark never takes a call out of what its key is billed. A SIP call whose bot's side
ended first is added once its edge's count of its minutes came, or EDGE_END_WAIT_SECONDS passed
(dispatcher/observability/sip_end.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dispatcher.observability.sip_end import with_edge_end
from dispatcher.sessions.cost import SessionCost, SessionCosts
from dispatcher.sessions.machine_end_grace import CLOSE_WAIT_SECONDS
from dispatcher.sessions.timeline import SessionTimeline, is_eval
from dispatcher.usage.key_metrics import KeyUsageMetrics
from dispatcher.usage.rollups import Amount, Rollups, SessionUse

log = logging.getLogger("dispatcher.usage")

MAX_PENDING = 1_000
UNKNOWN = "(unknown)"  # a session whose `requested` event or listed entry is gone (the store lost it)
# A caller without a key name (an unnamed key, a phone call, a keyless local dispatcher) is filed under
# its id behind this prefix, which no key name can take: a key named like a caller id, `phone` or
# `local` never reads or joins another caller's usage.
CALLER_PREFIX = "caller:"
Entry = Callable[[str], Awaitable[dict[str, Any] | None]]
# A named key's session, priced: its billed spend counted in the key's spend budget (sessions/budget_usage.py).
Spent = Callable[[str, str, SessionCost, float], Awaitable[None]]
Note = Callable[..., Awaitable[None]]  # the session index's `noted`


@dataclass(frozen=True)
class Pending:
    """An addition in flight: a session's end."""

    session_id: str
    ended_at: object  # the end's `at`, as the timeline recorded it
    machine_end: bool  # a machine's end, its grace over: its bot's report, if it came, is the session's end


class UsageCount:
    def __init__(self, costs: SessionCosts, timeline: SessionTimeline, entry: Entry, rollups: Rollups,
                 metrics: KeyUsageMetrics, note: Note | None = None) -> None:
        self._costs, self._timeline, self._entry, self._note = costs, timeline, entry, note
        self.rollups = rollups
        self._metrics = metrics
        self._pending: dict[asyncio.Task[None], Pending] = {}
        self.spent: Spent | None = None  # set by the wiring where keys have budgets
        self._closing = asyncio.Event()  # set at the close: a SIP call's end waits no longer for its edge's

    def timeline_event(self, session_id: str, record: Mapping[str, Any]) -> None:
        """A timeline listener: adds a session when its bot's end is recorded; never waits."""
        if record.get("event") != "ended":
            return
        if any(pending.session_id == session_id for pending in self._pending.values()):
            return  # one addition a session (the rollups take one anyway): an end told again adds nothing
        if len(self._pending) >= MAX_PENDING:
            log.warning("session %s: its usage is not added (%d additions pending)", session_id, MAX_PENDING)
            return
        try:
            task = asyncio.get_running_loop().create_task(self._add(Pending(session_id, record.get("at"), False)))
        except RuntimeError:  # no loop (a synchronous caller at shutdown)
            return
        self._pending[task] = Pending(session_id, record.get("at"), False)
        task.add_done_callback(self._done)

    async def machine_ended(self, session_id: str, record: Mapping[str, Any]) -> None:
        """A machine's end whose grace is over (sessions/machine_end_grace.py), at the replica that saw it or at
        the one that swept it up after a close: its bot's report, if it came meanwhile, is the end added. Raises
        when it could not be added (the store), so that a handed-over end is offered again (the rollups' marker
        makes that harmless)."""
        await self._added(Pending(session_id, record.get("at"), True))

    def _done(self, task: asyncio.Task[None]) -> None:
        self._pending.pop(task, None)

    async def _add(self, pending: Pending) -> None:
        try:
            await self._added(pending)
        except Exception as exc:  # the store: the session goes uncounted, said
            log.warning("session %s: its usage is not added: %s", pending.session_id, type(exc).__name__)

    async def _added(self, pending: Pending) -> None:
        session_id, ended_at = pending.session_id, pending.ended_at
        await self._timeline.settled()
        # A SIP call whose bot's side ended first: its edge's count of the call's minutes follows its end.
        events = await with_edge_end(self._timeline.read, session_id, self._closing)
        evaluation = is_eval(events)
        at = ended_at if isinstance(ended_at, int | float) else None
        # A machine's end: its bot's report, when it came meanwhile, is the session's end.
        # A bot killed before its end: its services counted up to its last report during the call.
        cost = await self._costs.of_session(session_id, events, running=False,
                                            ended_at=None if pending.machine_end else at, strict=True)
        if cost is None:
            return
        entry = await self._entry(session_id) or {}
        await self._spend(entry.get("key"), session_id, cost, at)
        key = usage_key(entry.get("key"), entry.get("caller"))
        release = next((str(e["release"]) for e in events
                        if e.get("event") == "requested" and isinstance(e.get("release"), str)), UNKNOWN)
        day = datetime.fromtimestamp(at if at is not None else 0, UTC).date()
        billed = amounts(cost) + (eval_amounts(cost) if evaluation else ())
        if await self.rollups.add(SessionUse(session_id, day, key, release, billed)):
            self._metrics.ended(key, seconds=cost.session_seconds, dollars=cost.billed_usd)
            if self._note is not None and cost.total is not None:  # the listing's COST
                await self._note(session_id, {"cost_usd": round(cost.total, 6)}, record="costed")

    async def _spend(self, name: object, session_id: str, cost: SessionCost, at: float | None) -> None:
        """A named key's session: its billed spend counted in the key's spend, with a once-only mark of
        their own (whichever replicas see the end, whatever the rollups did); a failure is said, and
        the rollups are added all the same."""
        if self.spent is None or not isinstance(name, str) or not name:
            return
        try:
            await self.spent(name, session_id, cost, at if at is not None else time.time())
        except Exception as exc:
            log.warning("session %s: its services are not added to its key's spend: %s", session_id,
                        type(exc).__name__)

    async def settled(self) -> None:
        if self._pending:
            await asyncio.wait(set(self._pending))

    async def aclose(self) -> None:
        """Waits up to CLOSE_WAIT_SECONDS for the additions in flight (a machine's end still in its grace is the
        grace's to hand over, sessions/machine_end_grace.py)."""
        self._closing.set()
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=CLOSE_WAIT_SECONDS)


def amounts(cost: SessionCost) -> tuple[Amount, ...]:
    """The session's row (model ""; its relay's share when it was relayed, a SIP call's minutes at its
    trunk's price) and one row per service
    (`kind:model`)."""
    rows = [Amount("", "sessions", 1.0), Amount("", "seconds", cost.session_seconds)]
    machine = cost.machine_usd
    rows.append(Amount("", "machine_usd", machine) if machine is not None else Amount("", "unpriced", 1.0))
    if cost.relay is not None and cost.relay.relayed:  # a relayed call's TURN relay (usage/relay_cost.py)
        relay = cost.relay_usd
        rows.append(Amount("", "relay_usd", relay) if relay is not None else Amount("", "relay_unpriced", 1.0))
    if cost.telephony_usd is not None:  # a SIP call's minutes at its trunk's price (usage/telephony_cost.py)
        rows.append(Amount("", "telephony_usd", cost.telephony_usd))
    for row in cost.services.rows if cost.services is not None else ():
        model = f"{row.row.get('kind')}:{row.row.get('model') or row.row.get('processor')}"
        rows.append(Amount(model, "usd", row.usd) if row.usd is not None else Amount(model, "unpriced", 1.0))
        rows += [Amount(model, name, float(value)) for name, value in row.row.items()
                 if name not in ("kind", "processor", "model") and isinstance(value, int | float)]
    return tuple(rows)


def eval_amounts(cost: SessionCost) -> tuple[Amount, ...]:
    """An eval's session's share, beside its billed rows (`amounts`): "of which evals"."""
    return (Amount("", "eval_sessions", 1.0), Amount("", "eval_seconds", cost.session_seconds),
            Amount("", "eval_usd", cost.billed_usd))


def usage_key(name: object, caller: object) -> str:
    """The key a session's use is filed under: its key's name, else `caller:<id>`."""
    if isinstance(name, str) and name:
        return name
    return f"{CALLER_PREFIX}{caller}" if isinstance(caller, str) and caller else UNKNOWN
