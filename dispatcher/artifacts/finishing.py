"""A recorded session's end, written: its upload completed (completion.py), then the objects beside
it (its index where none was written yet, `transcript.jsonl`, `logs.jsonl`, `report.json` last, so
a report in the store tells the truth of what is there), then `recording_ready`, `recording_partial`
or `recording_missing` on its timeline: the sign, for every replica, that its artifacts are finished.

`finished` is one attempt and may be asked again: a store that fails raises StoreError, and the next
attempt goes on from where it stopped (the objects still to write are held meanwhile: the spool).
Before each write, and once after the last, it looks for the session's erasure record
(erasure_check.py): a session erased meanwhile has what its end wrote deleted too, and its upload
aborted, so no object of an erased session is left without its index.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from dispatcher.artifacts.bot_logs import logs_kept
from dispatcher.artifacts.completion import abort_quietly, completed
from dispatcher.artifacts.cut_short import cut_short_by_stop, told
from dispatcher.artifacts.erasure_check import Erased, erasure_recorded
from dispatcher.artifacts.keys import RECORDING, REPORT, TRANSCRIPT, index_key
from dispatcher.artifacts.report import session_report
from dispatcher.artifacts.session_recording import Recording
from dispatcher.artifacts.store import ArtifactStore
from dispatcher.observability.sip_end import with_edge_end

log = logging.getLogger("dispatcher.artifacts")
Note = Callable[..., None]  # the timeline's `note(session_id, event, **fields)`
Events = Callable[[str], Awaitable[list[dict[str, Any]]]]  # the session's timeline, oldest first
Priced = Callable[[str, list[dict[str, Any]]], Awaitable[dict[str, Any]]]  # the report's `cost`
# A consent session whose bot never said its announcement played keeps nothing, whatever the bot uploaded:
# the dispatcher, not the bot's own code, is what holds a session to its policy.
NOT_ANNOUNCED = "a consent session whose announcement was never played (no recording.consent from its bot): " \
                "nothing of the call is kept"
ERASED_MEANWHILE = "its artifacts were erased (DELETE /sessions/{id}/artifacts) while its end was being written: " \
                   "what its end wrote was deleted as well"


def tags_of(recording: Recording) -> dict[str, str]:
    """What a team searches its store by (S3 object tags): the key name and the release."""
    return {name: str(recording.facts[name]) for name in ("key_name", "release") if recording.facts.get(name)}


def index_body(recording: Recording) -> bytes:
    """The index that names the session's folder: what reads and erasures find its objects by."""
    return json.dumps({"session_id": recording.session_id, "folder": recording.folder,
                       "started_at": recording.started_at, "sample_rate": recording.plan.sample_rate,
                       **recording.facts}).encode()


class SessionEnds:
    def __init__(self, store: ArtifactStore, *, note: Note, events: Events, priced: Priced) -> None:
        self.store = store
        self._note = note
        self._events = events
        self._priced = priced
        self.closing = asyncio.Event()  # the dispatcher stops: a SIP call's report waits no longer for its edge's end

    async def finished(self, recording: Recording, why: str) -> dict[str, Any] | None:
        """The report once everything is written; None when nothing is kept here (an adopted upload
        another replica completed first, or an erasure meanwhile). StoreError: ask again."""
        try:
            if recording.erased:
                raise Erased(recording.session_id)
            if recording.report is None and not await self._settled(recording, why):
                return None
            for key in list(recording.pending):
                await self._unless_erased(recording)
                body, content_type = recording.pending[key]
                await self.store.put(key, body, content_type, tags_of(recording))
                recording.written.append(key)
                del recording.pending[key]
            await self._unless_erased(recording)  # an erasure since any of them was written
        except Erased:
            recording.erased = True
            await self._undo(recording)
            return None
        report = recording.report
        assert report is not None
        outcome = report["recording"]
        event = "recording_ready" if outcome["status"] in ("complete", "off") else "recording_partial" \
            if outcome["status"] == "partial" else "recording_missing"
        self._note(recording.session_id, event, seconds=outcome.get("seconds"), reason=outcome.get("why"),
                   folder=recording.folder)
        return report

    async def _settled(self, recording: Recording, why: str) -> bool:
        """Its audio completed and its report built, with the objects to write; False: nothing to keep."""
        await self._unless_erased(recording)
        unannounced = recording.plan.consent and "consent" not in recording.facts
        key = recording.folder + RECORDING
        if unannounced:
            if recording.upload_id is not None:
                await abort_quietly(self.store, key, recording.upload_id)
            outcome: dict[str, Any] = {"status": "none", "why": NOT_ANNOUNCED}
        elif recording.plan.audio:
            outcome = await completed(self.store, key, recording.upload_id, recording.completion,
                                      part_bytes=recording.plan.part_bytes, sample_rate=recording.plan.sample_rate,
                                      bot_stats=recording.bot_stats, tags=tags_of(recording),
                                      guard=lambda: self._unless_erased(recording))
        else:
            outcome = {"status": "off", "why": "the session's policy keeps no audio"}
        if recording.adopted and outcome["status"] == "none":
            log.info("session %s: its left-over upload was not completed here (%s)", recording.session_id,
                     outcome["why"])
            return False  # another replica's sweep completed it first: its report stands
        # A SIP call whose bot's side ended first: its edge's end (and count of its minutes) follows the session's.
        events = await with_edge_end(self._safe_events, recording.session_id, self.closing)
        stopped = cut_short_by_stop(events)  # what cut the bot short, said as it was
        why = told(why, stopped)
        pending: dict[str, tuple[bytes, str]] = {}
        if recording.upload_id is None:  # no index yet: a report it did not name could never be erased
            pending[index_key(self.store.prefix, recording.session_id, recording.keeping.days)] = (
                index_body(recording), "application/json")
        transcript, body = (({"kept": False, "why": NOT_ANNOUNCED}, None) if unannounced
                            else self._transcript(recording))
        if body is not None:
            pending[recording.folder + TRANSCRIPT] = (body, "application/x-ndjson")
        logs, name, body = logs_kept(recording.logs, withheld=self._logs_withheld(recording, unannounced),
                                     consent=_consent_end(recording.facts))
        for section in (outcome, transcript, logs):
            if isinstance(said := section.get("why"), str):
                section["why"] = told(said, stopped)
        if body is not None:
            pending[recording.folder + name] = (body, "application/x-ndjson")
        report = session_report(recording.session_id, recording.facts, events, outcome, why=why,
                                errors=recording.errors, transcript=transcript, turns=recording.transcript,
                                logs=logs, cost=await self._priced(recording.session_id, events))
        pending[recording.folder + REPORT] = (json.dumps(report, indent=2).encode(), "application/json")
        recording.pending, recording.report = pending, report
        return True

    @staticmethod
    def _transcript(recording: Recording) -> tuple[dict[str, Any], bytes | None]:
        """What the report says of `transcript.jsonl`, and its body when it is kept."""
        if not recording.plan.transcript:
            return {"kept": False, "why": "the session's policy keeps no transcript"}, None
        if recording.transcript_why is not None:
            return {"kept": False, "why": recording.transcript_why}, None
        if recording.transcript is None:
            return {"kept": False, "why": "the bot ended without handing over its turns (killed or lost)"}, None
        body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in recording.transcript)
        return {"kept": True, "object": TRANSCRIPT, "turns": len(recording.transcript),
                "caller_lines": sum(1 for line in recording.transcript if line["who"] == "caller"),
                "bot_turns": sum(1 for line in recording.transcript if line["who"] == "bot")}, body.encode()

    @staticmethod
    def _logs_withheld(recording: Recording, unannounced: bool) -> str | None:
        """Why the bot's log lines are not kept, as the transcript is not (they can hold what was said:
        an STT service's debug lines quote it): None when its policy keeps them."""
        if unannounced:
            return NOT_ANNOUNCED
        if not recording.plan.transcript:
            return "the session's policy keeps no transcript, nor the bot's log lines (they may quote the call)"
        if recording.transcript_why is not None:
            return f"withheld with the transcript: {recording.transcript_why}"
        return None

    async def _unless_erased(self, recording: Recording) -> None:
        if await erasure_recorded(self.store, recording.session_id, recording.started_at, time.time()):
            raise Erased(recording.session_id)

    async def _undo(self, recording: Recording) -> None:
        """An erasure came while its end was written: every object it may have written goes (StoreError: again)."""
        key = recording.folder + RECORDING
        if recording.upload_id is not None and not recording.completion.joined:
            await abort_quietly(self.store, key, recording.upload_id)
        index = index_key(self.store.prefix, recording.session_id, recording.keeping.days)
        await self.store.delete(sorted({key, index, *recording.written, *recording.pending}))
        recording.pending.clear()
        log.warning("session %s: erased while its end was written; what it wrote was deleted", recording.session_id)
        self._note(recording.session_id, "recording_missing", reason=ERASED_MEANWHILE, folder=recording.folder)

    async def _safe_events(self, session_id: str) -> list[dict[str, Any]]:
        try:
            return await self._events(session_id)
        except Exception:  # the report is written without its timeline rather than not at all
            return []


def _consent_end(facts: Mapping[str, Any]) -> float | None:
    """When a consent session's announcement ended (epoch seconds), or None where it asked none."""
    consent = facts.get("consent")
    if not isinstance(consent, dict):
        return None
    return float(consent["announced_at"]) + float(consent["seconds"])
