"""Each ended session's cost, summed in `/metrics` (`voicefleet_session_cost_dollars_total` and
`voicefleet_session_machine_seconds_total`, by release).

A timeline listener: a bot's `ended` report is recorded once, at the replica whose channel holds the
bot, so that replica counts the session, once, whichever replica started it. The session's earlier
events (its claim or launch, its release) are read back from its timeline in the background; at
most `MAX_PENDING` reads at once (past it, the session is left uncounted and logged). A session
whose bot never reports its end (its machine died with it) is not in the sums: its cost is still
in `GET /sessions/{id}`, estimated. Nor is an eval's session (docs/evals.md): these sums are the
callers' cost per release, read beside each release's health, where a suite of evals would read as
traffic; who pays for it is billing (dispatcher/usage/usage_count.py), which counts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from dispatcher.observability.metrics import Metrics
from dispatcher.sessions.cost import SessionCosts
from dispatcher.sessions.timeline import SessionTimeline, is_eval

log = logging.getLogger("dispatcher.sessions.cost")

MAX_PENDING = 1_000
REMEMBERED = 10_000  # sessions counted lately: a repeated `ended` report is not counted twice
UNKNOWN_RELEASE = "unknown"  # a session whose `requested` event is gone (the store lost it)


class CostCount:
    def __init__(self, costs: SessionCosts, timeline: SessionTimeline, metrics: Metrics) -> None:
        self._costs = costs
        self._timeline = timeline
        self._metrics = metrics
        self._counted: OrderedDict[str, None] = OrderedDict()
        self._pending: set[asyncio.Task[None]] = set()

    def timeline_event(self, session_id: str, record: Mapping[str, Any]) -> None:
        """A timeline listener: counts a session when its bot's end is recorded; never waits."""
        if record.get("event") != "ended" or session_id in self._counted:
            return
        self._counted[session_id] = None
        if len(self._counted) > REMEMBERED:
            self._counted.popitem(last=False)
        if len(self._pending) >= MAX_PENDING:
            log.warning("session %s: its cost is not counted in /metrics (%d counts pending)", session_id,
                        MAX_PENDING)
            return
        try:
            task = asyncio.get_running_loop().create_task(self._count(session_id, record.get("at")))
        except RuntimeError:  # no loop (a synchronous caller at shutdown): nothing to count with
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _count(self, session_id: str, ended_at: object) -> None:
        try:
            await self._timeline.settled()  # its claim or launch, recorded here, is read back with it
            events = await self._timeline.read(session_id)
        except Exception as exc:  # the store: the session goes uncounted, said
            log.warning("session %s: its cost is not counted in /metrics: %s", session_id, type(exc).__name__)
            return
        if is_eval(events):  # an eval's call is not the deployment's traffic (its cost stays in its GET)
            return
        cost = await self._costs.of_session(session_id, events, running=False,
                                            ended_at=ended_at if isinstance(ended_at, int | float) else None)
        if cost is None:  # no machine was launched or claimed for it (its start record is gone)
            return
        release = next((str(e["release"]) for e in events
                        if e.get("event") == "requested" and isinstance(e.get("release"), str)), UNKNOWN_RELEASE)
        self._metrics.session_cost(release, dollars=cost.total, session_seconds=cost.session_seconds,
                                   idle_seconds=cost.idle_seconds)

    async def settled(self) -> None:
        """Waits for the counts under way (a test, or a reader that just ended a session)."""
        if self._pending:
            await asyncio.wait(set(self._pending))

    async def aclose(self) -> None:
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=2.0)
