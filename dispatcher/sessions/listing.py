"""The sessions a caller lists (`GET /sessions`): each admitted start's entry in the index
(dispatcher/store/session_index.py), closed by the timeline's end events, read a page at a time.

A listed session's `status` is what the index knows: `active` (started, no end seen yet),
`ended` or `failed` (with the error's `code`: a start's refusal code, `bot_exited` for a bot that
exited with an error, `machine_failed` for a machine that failed before its bot said why).
Only the session's own end or failure changes it: a pipeline error the bot reports leaves the
session running (Pipecat lets the bot go on), so it is shown as the entry's `error`, `bot_error`,
whatever the status; it is the cause, so it shows over the `bot_exited` that may follow it. An
active entry older than the longest a session may run is `ended`: its bot is stopped by then.
`GET /sessions/{id}` asks the provider for the live state; for a session the provider no longer
knows here (another replica's bot that ended, a machine the provider forgot), it answers the ended or
failed entry (`ended`), the same record at every replica.

Writes never delay a start nor fail one: they run in the background, at most `MAX_PENDING` at
once (past it an entry is left out of the listing and logged). A page examines at most
`MAX_EXAMINED` entries: a filtered page may come back short, with a cursor to go on from.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from dispatcher.machines.base import Machine, MachineState
from dispatcher.sessions.failure import shown_status
from dispatcher.sessions.ids import Caller
from dispatcher.sessions.machine_ends import EVENT as MACHINE_ENDED
from dispatcher.sessions.timeline import TRANSFERRED
from dispatcher.store.coordination import SessionIndex
from dispatcher.store.session_index import ALL, Position

log = logging.getLogger("dispatcher.sessions.listing")

MAX_PENDING = 1_000
MAX_EXAMINED = 500  # entries read for one page, whatever its filters
MAX_LIMIT = 100
STATUSES = ("active", "ended", "failed")
ENDED_GRACE_SECONDS = 120.0  # past MAX_SESSION_SECONDS, an entry with no end seen is ended
# Timeline events that end a session: (status, error code or None, whether it is a failure, which
# shows over an end told before it).
_ENDS: dict[str, tuple[str, str | None, bool]] = {
    "stop_requested": ("ended", None, False),
    "ended": ("ended", None, False),
}
PIPELINE_ERROR = "bot_error"  # the entry's `error` once its bot reported one (failure.py: failed once over)


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    release: str | None = None
    region: str | None = None
    since: float | None = None  # epoch seconds: sessions started at or after it
    eval: bool | None = None  # True: only evals' sessions; False: none of them

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.status, self.release, self.region, self.since, self.eval))

    def match(self, item: dict[str, Any]) -> bool:
        return ((self.status is None or item["status"] == self.status)
                and (self.release is None or item.get("release") == self.release)
                and (self.region is None or item.get("region") == self.region)
                and (self.eval is None or item["eval"] is self.eval))


class SessionListing:
    def __init__(self, index: SessionIndex, region: str, max_session_seconds: float) -> None:
        self._index = index
        self._region = region
        self._lasts = max_session_seconds + ENDED_GRACE_SECONDS
        self._pending: set[asyncio.Task[None]] = set()

    def opened(self, session_id: str, caller: Caller, release: str, transport: str, *, eval: bool = False) -> None:
        """An admitted start's entry, written in the background (`eval`: an eval's session)."""
        entry = {"session_id": session_id, "caller": caller.id, "key": caller.name, "created": round(time.time(), 3),
                 "release": release, "region": self._region or None, "transport": transport}
        if eval:
            entry["eval"] = True
        self._spawn(session_id, self._index.opened(entry))

    def timeline_event(self, session_id: str, record: dict[str, Any]) -> None:
        """A timeline listener: an end event closes the session's entry."""
        event = record.get("event")
        if event == "error":
            self._spawn(session_id, self._index.noted(session_id, {"pipeline_error": PIPELINE_ERROR}))
            return
        if event == TRANSFERRED:  # its phone call went to a person (dispatcher/phone/transfers.py): how it ends
            self._spawn(session_id, self._index.noted(session_id, {"end_reason": TRANSFERRED}, record=TRANSFERRED))
            return
        if event == "failed":
            end: tuple[str, str | None, bool] = ("failed", str(record.get("code") or "failed"), True)
        elif event == "ended" and record.get("exit_code") not in (None, 0):
            end = ("failed", "bot_exited", True)
        elif event == "machine_ended":  # its machine's end, as the provider showed it (machine_ends.py)
            end = ("failed", "machine_failed", True) if record.get("state") == "failed" else ("ended", None, False)
        elif event in _ENDS:
            end = _ENDS[str(event)]
        else:
            return
        status, code, failure = end
        fields = {"status": status, "ended": record.get("at"), "error": code}
        self._spawn(session_id, self._index.closed(session_id, fields, failure=failure))

    def called(self, session_id: str, call: dict[str, Any]) -> None:
        """The call a session serves (a WhatsApp call's id and caller), listed with it as `whatsapp`."""
        self._spawn(session_id, self._index.noted(session_id, {"whatsapp": call}, record="call"))

    async def page(self, caller: str | None, filters: Filters, limit: int,
                   below: Position | None) -> tuple[list[dict[str, Any]], Position | None]:
        """`caller`'s sessions (None: every caller's), newest first, and where the next page starts."""
        examine = MAX_EXAMINED if filters.any else limit
        page = await self._index.page(ALL if caller is None else caller, below, examine)
        items: list[dict[str, Any]] = []
        now = time.time()
        for n, entry in enumerate(page.entries):
            created = float(entry.get("created", 0))
            if filters.since is not None and created < filters.since:
                return items, None  # newest first: nothing older matches
            item = self._item(entry, now)
            if filters.match(item):
                items.append(item)
                if len(items) == limit:
                    last = n == len(page.entries) - 1 and page.next is None
                    return items, None if last else (int(created * 1000), str(entry["session_id"]))
        return items, page.next

    async def active_evals(self) -> set[str]:
        """The evals' sessions still active among the newest `MAX_EXAMINED` (`GET /status` counts them
        apart from callers' sessions)."""
        items, _ = await self.page(None, Filters(status="active", eval=True), MAX_EXAMINED, None)
        return {str(item["session_id"]) for item in items}

    async def item(self, session_id: str) -> dict[str, Any] | None:
        """The session as `GET /sessions` lists it (any caller's, at any replica), or None: not kept."""
        entry = await self._index.entry(session_id)
        return self._item(entry, time.time()) if entry is not None else None

    async def ended(self, session_id: str, events: list[dict[str, Any]]) -> Machine | None:
        """The session's machine as its listed entry shows it once it ended or failed, at any replica
        (kept a day): for a session its provider no longer knows here (another replica's bot that
        ended, a machine the provider forgot). Its `detail` is the provider's word on the machine's end
        (the timeline's `machine_ended`), else the listed error. None: not kept, or not ended."""
        entry = await self._index.entry(session_id)
        item = self._item(entry, time.time()) if entry is not None else None
        if item is None or item["status"] == "active":
            return None
        ends = [e.get("detail") for e in events if e.get("event") == MACHINE_ENDED and e.get("detail")]
        return Machine(session_id=session_id, machine_id="", state=MachineState(item["status"]),
                       created_at=float(item["created"] or 0), detail=str(ends[-1]) if ends else item["error"],
                       transport=item["transport"], release=item["release"])

    def _item(self, entry: dict[str, Any], now: float) -> dict[str, Any]:
        status = entry.get("status")
        if status is None:
            status = "ended" if now - float(entry.get("created", 0)) > self._lasts else "active"
        status = shown_status(str(status), bool(entry.get("pipeline_error")))
        handed = {"end_reason": entry["end_reason"]} if entry.get("end_reason") else {}  # `transferred`
        if entry.get("whatsapp"):  # the WhatsApp call it served (dispatcher/observability/whatsapp_call.py)
            handed["whatsapp"] = entry["whatsapp"]
        return {**handed, "session_id": entry["session_id"], "status": status, "created": entry.get("created"),
                "ended": entry.get("ended"), "release": entry.get("release"), "region": entry.get("region"),
                "transport": entry.get("transport"), "error": entry.get("pipeline_error") or entry.get("error"),
                "eval": entry.get("eval") is True,
                "cost_usd": entry.get("cost_usd"),  # once it ended and was priced (dispatcher/usage/usage_count.py)
                "key": entry.get("key"),
                "caller": entry.get("caller")}

    def _spawn(self, session_id: str, write: Coroutine[Any, Any, None]) -> None:
        if len(self._pending) >= MAX_PENDING:
            log.warning("session %s: listing entry dropped (%d writes pending)", session_id, MAX_PENDING)
            write.close()
            return
        try:
            task = asyncio.get_running_loop().create_task(self._write(session_id, write))
        except RuntimeError:  # no loop (a synchronous caller at shutdown): nothing to write with
            write.close()
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, session_id: str, write: Coroutine[Any, Any, None]) -> None:
        try:
            await write
        except Exception as exc:  # the listing is an aid: it never breaks what it lists
            log.warning("session %s: listing entry not written: %s", session_id, type(exc).__name__)

    async def settled(self) -> None:
        """Waits for the writes under way (a test, or a reader that just started a session)."""
        if self._pending:
            await asyncio.wait(set(self._pending))
