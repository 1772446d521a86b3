"""A session's timeline: what happened to it, when, and at which replica.

Events are `{"event", "at" (epoch seconds, the replica's clock), "replica", ...}`: `requested`
(with the session's `trace_id`), `claimed` or `launched` (the machine), `failed` (a start that did not start: its error
`code` and `message`), `machine_started` (a cold bot dialled in), then the bot's own reports,
`ready`, `joined`, `first_audio`, `error` (a fatal pipeline error, its `detail`) and `ended` (its
`reason`, `detail`, `exit_code`, its services' `usage`: botchannel/usage.py, and the call's
`conversation` in figures: botchannel/conversation.py, and how its WebRTC media went, its
`transport`: botchannel/transport_use.py), timed as they arrived (dispatcher/channel/bots.py),
`caller_hung_up` (dispatcher/phone/hang_up.py), `sip_ended` (dispatcher/observability/sip_end.py),
`telephony` (a SIP call's trunk and price: dispatcher/usage/trunk_line.py), `transferred` (handed to a
person), `transfer_answered` and `transfer_completed` (a Daily transfer's person answered, then the call
ended: dispatcher/phone/daily_calltransfer.py) and `stop_requested`. They are kept in the
coordination store (dispatcher/store/timelines.py: bounded length, a day), so any replica answers
`GET /sessions/{id}/timeline`.

Recording never delays a start nor fails one: each event is written in the background, at most
`MAX_PENDING` at once (past it, an event is dropped from the timeline and logged, though still
handed to the listeners: the lifecycle webhooks bound their own queue), and a store that does not
answer is answered from this replica's memory. Events are read back in time order.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from botchannel.contract import Report
from botchannel.utf8_text import utf8_text
from dispatcher.channel.bots import BotChannels, BotLink
from dispatcher.observability.log_format import KNOWN_SESSIONS
from dispatcher.store.coordination import Timelines

log = logging.getLogger("dispatcher.sessions.timeline")
Listener = Callable[[str, dict[str, Any]], None]

MAX_PENDING = 1_000
MAX_TEXT_CHARS = 512  # a provider's message or a bot's detail, as the channel bounds it
# A phone caller hung up before the bot's side of the call ended (dispatcher/phone/hang_up.py).
CALLER_HUNG_UP = "caller_hung_up"
# A phone call handed to a person (dispatcher/phone/transfers.py): an event, and the session's end reason.
TRANSFERRED = "transferred"
# A warm transfer's person answered and hears the bot's briefing, the caller on hold (dispatcher/api/warm_briefing.py).
TRANSFER_CONSULTING = "transfer_consulting"
# A Daily cold transfer's person answered; the call they took ended (Daily's calltransfer webhooks).
TRANSFER_ANSWERED, TRANSFER_COMPLETED = "transfer_answered", "transfer_completed"


class SessionTimeline:
    def __init__(self, timelines: Timelines, replica: str) -> None:
        self._timelines = timelines
        self._replica = replica
        self._pending: set[asyncio.Task[None]] = set()
        self.listeners: list[Listener] = []  # told each event as it is recorded (lifecycle webhooks)
        self.closers: list[Callable[[], Awaitable[None]]] = []  # the listeners' own, after the writes

    def follow(self, channels: BotChannels) -> None:
        """Records what the bots on this replica's channel report."""
        channels.report_listeners.append(self._reported)
        channels.session_listeners.append(self._bot_reached)

    def note(self, session_id: str, event: str, *, at: float | None = None, **fields: Any) -> None:
        """Records `event` in the background (never raises, never waits)."""
        if event == "requested":  # its log lines carry its trace and release from now on
            KNOWN_SESSIONS.remember(session_id, _text(fields.get("trace_id")), _text(fields.get("release")))
        record = self._record(event, at, fields)
        # The listeners first: a store slow to take the timeline's writes must not cost a lifecycle
        # webhook, which has its own bound (WEBHOOK_MAX_QUEUE) and its own count of what it drops.
        for listener in self.listeners:
            listener(session_id, record)
        self._keep(session_id, record)

    def amend(self, session_id: str, event: str, *, at: float | None = None, **fields: Any) -> None:
        """Records `event` as `note` does, without telling the listeners: a later word on an event they were
        told already (a Daily transfer's unknown outcome settled: dispatcher/phone/daily_calltransfer.py), which
        they must not act on twice (a second `session.transferred` webhook)."""
        self._keep(session_id, self._record(event, at, fields))

    def _record(self, event: str, at: float | None, fields: dict[str, Any]) -> dict[str, Any]:
        record = {"event": event, "at": round(at if at is not None else time.time(), 3), "replica": self._replica}
        record.update({k: _bounded(v) for k, v in fields.items() if v is not None})
        return record

    def _keep(self, session_id: str, record: dict[str, Any]) -> None:
        event = record["event"]
        if len(self._pending) >= MAX_PENDING:
            log.warning("session %s: timeline event %s dropped (%d writes pending)", session_id, event, MAX_PENDING)
            return
        try:
            task = asyncio.get_running_loop().create_task(self._write(session_id, record))
        except RuntimeError:  # no loop (a synchronous caller at shutdown): nothing to record with
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, session_id: str, record: dict[str, Any]) -> None:
        try:
            await self._timelines.append(session_id, record)
        except Exception as exc:  # the timeline is an aid: it never breaks what it records
            log.warning("session %s: timeline event %s not recorded: %s", session_id, record["event"],
                        type(exc).__name__)

    async def read(self, session_id: str) -> list[dict[str, Any]]:
        events = await self._timelines.read(session_id)
        requested = _requested(events)
        if requested is not None:  # a session started at another replica: its lines here carry its trace too
            KNOWN_SESSIONS.remember(session_id, _text(requested.get("trace_id")), _text(requested.get("release")))
        return _in_time_order(events)

    async def read_shared(self, session_id: str) -> list[dict[str, Any]]:
        """The events every replica sees, in time order; raises `StoreUnavailable` when the store does
        not answer, for a decision that this replica's memory alone would get wrong."""
        return _in_time_order(await self._timelines.read_shared(session_id))

    async def restore(self, session_id: str, events: list[dict[str, Any]]) -> None:
        """Writes back events another replica saw (a dead owner's kept machine end, sessions/machine_end_grace.py),
        as they were, oldest first; where the store does not take them they are kept in this replica's memory."""
        for event in _in_time_order(events):
            await self._timelines.append(session_id, event)

    async def settled(self) -> None:
        """Waits for the writes under way (a test, or a reader that just recorded)."""
        if self._pending:
            await asyncio.wait(set(self._pending))

    def _reported(self, link: BotLink, report: Report) -> None:
        self.note(report.session_id, report.event, at=report.t, machine_id=link.machine_id, reason=report.reason,
                  detail=report.detail, exit_code=report.exit_code,
                  usage=list(report.usage) if report.usage is not None else None,
                  conversation=dict(report.conversation) if report.conversation is not None else None,
                  transport=dict(report.transport) if report.transport is not None else None)

    def _bot_reached(self, link: BotLink) -> None:
        if link.hello.session_id is not None and link.session_id is not None:  # a cold bot's hello
            self.note(link.session_id, "machine_started", machine_id=link.machine_id)

    async def aclose(self) -> None:
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=2.0)
        for close in self.closers:
            await close()


def trace_id_of(events: list[dict[str, Any]]) -> str | None:
    """The trace the session was started in (its `requested` event's)."""
    requested = _requested(events)
    return None if requested is None else _text(requested.get("trace_id"))


def is_eval(events: list[dict[str, Any]]) -> bool:
    """Whether the session is an eval (its start said `eval: true`): left out of the rollback's judge,
    and of the cost and load figures unless asked (docs/evals.md)."""
    return any(e.get("event") == "requested" and e.get("eval") is True for e in events)


def _requested(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((e for e in events if e.get("event") == "requested" and isinstance(e.get("trace_id"), str)), None)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def session_error(events: list[dict[str, Any]]) -> str | None:
    """The bot's first reported pipeline error, as the status shows it: the cause (a service that could
    not reach its provider), not the last of what followed from it (another's "no audio"); the count of
    those that followed says the timeline has them."""
    errors = [event for event in events if event.get("event") == "error"]
    if not errors:
        return None
    first = str(errors[0].get("detail") or errors[0].get("reason") or "the bot reported an error")
    more = len(errors) - 1
    return f"{first} (then {more} more error{'s' if more > 1 else ''}: see the timeline)" if more else first


def _in_time_order(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(events, key=lambda e: e.get("at", 0) if isinstance(e.get("at"), int | float) else 0)


# What steers a terminal or reorders a line: C0 but TAB, DEL, C1, the bidirectional embeddings,
# overrides and isolates, and the line and paragraph separators. Only these are escaped in what is
# stored: anything else (a ZWJ in an emoji, a narrow NBSP, a ZWNJ) is ordinary text, kept as sent;
# whoever prints it to a terminal (the CLI, the log) escapes by its own wider rule.
_STEERING = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _bounded(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = _STEERING.sub(lambda found: repr(found.group())[1:-1], utf8_text(value))
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + "…"
