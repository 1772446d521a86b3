"""How many of a session's reports its bot may have passed on: each of its `ready`, `joined`, `first_audio`
and `ended` once, its `error` and `slow_answer` MAX_REPEATED times each. A bot's reports are its own code's:
one that sends them in a loop would otherwise fill its session's timeline (pushing out how its call ended and
what it is priced at) and every listener's queue (docs/security.md, "Bounded"). Counted by session on this
replica, not by connection: a bot that hangs up its channel and dials again is not counted anew (one that
dials another replica is counted there anew, and its session's timeline keeps no more of them: KIND_BOUNDS,
dispatcher/store/timelines.py)."""

from __future__ import annotations

import logging
from collections import defaultdict

from botchannel.contract import Report
from dispatcher.observability.log_text import shown
from dispatcher.recent import Recent
from dispatcher.store.timelines import MAX_REPEATED, REPEATED  # the timeline keeps as many, across replicas

log = logging.getLogger("dispatcher.channel.bots")

MAX_SESSIONS = 10_000  # as many as one process's memory keeps timelines of (dispatcher/store/timelines.py)


class ReportCaps:
    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        # A session's counts are written back on each report: the sessions heard from least lately forgotten first.
        self._told: Recent[str | None, defaultdict[str, int]] = Recent(max_sessions)

    def tells(self, machine_id: str, report: Report) -> bool:
        """Whether `report` is passed on; past its bound, dropped (said once in the log, not per report)."""
        counts = self._told.get(report.session_id) or defaultdict(int)
        self._told[report.session_id] = counts  # the newest last: the oldest sessions forgotten first
        told = counts[report.event]
        counts[report.event] = told + 1
        most = MAX_REPEATED if report.event in REPEATED else 1
        if told == most:
            log.warning("bot %s: its %s reports for %s past %d are dropped", shown(machine_id), report.event,
                        shown(report.session_id), most)
        return told < most
