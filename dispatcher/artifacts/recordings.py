"""Each recorded session's upload, from the plan its bot is assigned to the report beside the audio.

`plan_for` decides at the start: the policy for the session's key name and release (rules.py),
lowered by the start, never raised (a start that asks more is refused before it gets here); a store
that cannot be written records nothing and says why, and the call runs all the same, unless
`RECORDING_REQUIRED` refuses it. The objects' keys carry the session's retention (keys.py). The upload is
opened when the bot first asks for a part's URL, with an index object that says which day's folder
holds the session. `finish` (ending.py calls it once the session is over, whatever ended it)
completes the upload with the parts that arrived (the longest run from part 1, each of the plan's part size),
gives the WAV its true sizes, writes the report and notes `recording_ready` or `recording_partial`
on the timeline (and so the lifecycle webhooks). An upload with no part is aborted: nothing stays
half-uploaded. The sessions under way are this replica's memory (the replica that holds the bot's
channel; docs/recording.md says what several replicas do not share yet).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botchannel.contract import RequestFailed
from botchannel.recording import (
    MAX_PARTS,
    MIN_PART_BYTES,
    WAV_HEADER_BYTES,
    RecordingPlan,
    recording_seconds,
    wav_sizes,
)
from dispatcher.artifacts.bot_account import bot_account
from dispatcher.artifacts.bot_logs import BotLogs, write_logs
from dispatcher.artifacts.keys import RECORDING, REPORT, TRANSCRIPT, index_key, session_folder
from dispatcher.artifacts.report import session_report
from dispatcher.artifacts.rules import Keeping
from dispatcher.artifacts.settings import ArtifactSettings
from dispatcher.artifacts.store import ArtifactStore, Part, StoreError
from dispatcher.artifacts.transcript import transcript_lines
from dispatcher.artifacts.wanted import Wanted, lowered
from dispatcher.errors import ApiError

log = logging.getLogger("dispatcher.artifacts")
Note = Callable[..., None]  # the timeline's `note(session_id, event, **fields)`
Events = Callable[[str], Awaitable[list[dict[str, Any]]]]  # the session's timeline, oldest first
Cost = Callable[[list[dict[str, Any]]], dict[str, Any] | None]  # a timeline's cost (dispatcher/sessions/cost.py)
MAX_OPEN = 10_000  # sessions recorded at once in one replica
RECHECK_SECONDS = 60.0  # a store that failed its check is tried again this often (fixed: recording resumes)
OVERRUN_SECONDS = 120.0  # a call's audio past its longest (a bot's clock, its end's last part), allowed for
# A consent session whose bot never said its announcement played keeps nothing, whatever the bot uploaded:
# the dispatcher, not the bot's own code, is what holds a session to its policy.
NOT_ANNOUNCED = "a consent session whose announcement was never played (no recording.consent from its bot): " \
                "nothing of the call is kept"


def last_part(plan: RecordingPlan, max_seconds: float | None) -> int:
    """The highest part number a call of at most `max_seconds` fills: a bot asking past it is refused,
    so a hostile one cannot have the bucket take 10,000 parts of a 5-minute call."""
    if max_seconds is None:
        return MAX_PARTS
    audio = WAV_HEADER_BYTES + (max_seconds + OVERRUN_SECONDS) * plan.bytes_per_second
    return min(MAX_PARTS, math.ceil(audio / plan.part_bytes))


@dataclass
class Recording:
    session_id: str
    folder: str
    started_at: float
    plan: RecordingPlan
    facts: dict[str, Any]  # release, region, key name, provider, transport: the report's
    upload_id: str | None = None
    bot_stats: Mapping[str, Any] | None = None  # the bot's own account at its end (none: it died first)
    errors: list[str] = field(default_factory=list)
    opening: asyncio.Lock = field(default_factory=asyncio.Lock)
    adopted: bool = False  # taken up from the store (its dispatcher stopped), not started here
    transcript: list[dict[str, Any]] | None = None  # the bot's turns, handed over at its end
    last_part: int = MAX_PARTS  # the highest part number its longest call can reach
    logs: BotLogs | None = None  # the bot's own log lines, handed over at its end
    keeping: Keeping = Keeping(audio="on", transcript="on")  # what it keeps and for how long
    transcript_why: str | None = None  # the bot's reason for handing over no transcript (a redaction that failed)
    urls_until: float = 0.0  # when the last part URL handed to its bot expires


def kept_parts(parts: list[Part], part_bytes: int = MIN_PART_BYTES) -> list[Part]:
    """The parts that join into the bot's stream: from part 1 on, without a gap, every one but the
    last exactly the plan's `part_bytes` (a shorter one is a checkpoint whose full part never came:
    what follows would be shifted) and none longer (not what the bot was told to write: a part put
    to fill the bucket is left out, and S3 drops the parts a completion does not name)."""
    kept: list[Part] = []
    for part in sorted(parts, key=lambda p: p.number):
        if part.number != len(kept) + 1 or part.size > part_bytes or (kept and kept[-1].size != part_bytes):
            break
        kept.append(part)
    return kept


class SessionRecordings:
    def __init__(self, settings: ArtifactSettings, store: ArtifactStore, *, note: Note, events: Events,
                 region: str, provider: str, clock: Callable[[], float] = time.time,
                 max_session_seconds: float | None = None, cost: Cost | None = None) -> None:
        self.settings = settings
        self.store = store
        self._note = note
        self._events = events
        self._region = region
        self._provider = provider
        self._clock = clock
        self._max_seconds = max_session_seconds  # the longest a session runs: it bounds its part numbers
        self._cost = cost  # what the session cost, from its timeline (None: this dispatcher prices none)
        self.fault: StoreError | None = None  # the store's last failure (GET /status shows its words)
        self._checked_at: float | None = None
        self._open: dict[str, Recording] = {}
        self._finishing: dict[str, asyncio.Task[Any]] = {}
        self._completing: set[str] = set()  # taken out of `_open`, its objects not all written yet
        self._writable: dict[str, float] = {}  # ended, but a part URL can still write its recording until then
        self._rechecking: asyncio.Task[None] | None = None
        self.unknown_releases: list[str] = []  # the rules' releases the catalogue did not have at start-up

    @property
    def error(self) -> str | None:
        """The store's last failure in its own words: the log's and the admin's (GET /status), never a client's."""
        return None if self.fault is None else str(self.fault)

    async def check(self) -> None:
        """Whether the store can be written: at start-up; a failure is logged and shown in status."""
        self._checked_at = self._clock()
        try:
            await self.store.check()
        except StoreError as exc:
            self.fault = exc
            log.error("recordings cannot be kept: %s; calls run unrecorded until it is fixed", exc)
        else:
            self.fault = None

    async def checked(self) -> None:
        """Checks the store if it never was; one that failed its last check over RECHECK_SECONDS ago is
        checked again in the background: a start never waits on a store that does not answer (S3's
        timeouts and retries take minutes), it goes unrecorded until the check passes."""
        if self._checked_at is None:
            await self.check()
        elif self.error is not None and self._clock() - self._checked_at > RECHECK_SECONDS:
            self._checked_at = self._clock()
            self._rechecking = asyncio.get_running_loop().create_task(self.check(), name="recording-store-check")

    def status(self) -> dict[str, Any]:
        default = self.settings.rules.default
        shown: dict[str, Any] = {"policy": self.settings.policy, "audio": default.audio,
                                 "transcript": default.transcript, "retention_days": default.days,
                                 "required": self.settings.required, "destination": self.store.where}
        if self.settings.rules.rules:
            shown["rules"] = self.settings.rules_text.strip()
        if self.unknown_releases:
            shown["unknown_releases"] = self.unknown_releases
        if self.error is not None:
            shown["error"] = self.error
        return shown

    async def plan_for(self, session_id: str, *, transport: str, release: str, key_name: str | None,
                       wanted: Wanted | None = None) -> RecordingPlan | None:
        """The session's plan, or None (not recorded: the timeline says why when it was meant to be)."""
        if not self.settings.on:
            return None
        if session_id in self._open:  # a start replayed: the plan it was given
            return self._open[session_id].plan
        policy = self.settings.rules.for_session(key_name, release)
        keeping = lowered(policy, wanted)
        if keeping.audio == "off" and keeping.transcript == "off":
            asked = policy.audio != "off" or policy.transcript != "off"
            self._note(session_id, "recording_off", reason="the start asked for no recording" if asked
                       else "RECORDING_RULES keep nothing of its key's or release's sessions")
            return None
        await self.checked()
        if self.error is not None or len(self._open) >= MAX_OPEN:
            why = self.fault.client_text if self.fault else f"{MAX_OPEN} recordings under way in this replica"
            reason = self.fault.reason if self.fault else "recordings_at_capacity"
            if self.settings.required:
                raise ApiError(503, "recording_unavailable", f"this deployment requires every session to be "
                               f"recorded (RECORDING_REQUIRED) and it cannot be now: {why}", retry_after=60,
                               extra={"reason": reason})
            self._note(session_id, "recording_skipped", reason=why, code=reason)
            return None
        now = self._clock()
        plan = RecordingPlan(sample_rate=8000 if transport == "websocket" else 16000,
                             part_bytes=self.settings.part_bytes, checkpoint_seconds=self.settings.checkpoint_seconds,
                             audio=keeping.audio != "off", transcript=keeping.transcript != "off",
                             consent="consent" in (keeping.audio, keeping.transcript))
        self._open[session_id] = Recording(
            session_id, session_folder(self.store.prefix, session_id, now, keeping.days), now, plan,
            {"release": release, "region": self._region, "key_name": key_name, "provider": self._provider,
             "transport": transport, "retention_days": keeping.days},
            last_part=last_part(plan, self._max_seconds), keeping=keeping)
        return plan

    def discard(self, session_id: str) -> None:
        """A start that failed: its recording is dropped (finished, if its bot had begun uploading)."""
        recording = self._open.get(session_id)
        if recording is not None and recording.upload_id is None:
            del self._open[session_id]
        elif recording is not None:
            self.finish_soon(session_id, "the start failed")

    def adopt(self, session_id: str, folder: str, upload_id: str, index: Mapping[str, Any], started_at: float) -> None:
        """An upload no replica holds in memory (its dispatcher stopped mid-call), taken up so `finish`
        completes it; its index (when there is one) gives its rate and the report's facts."""
        rate = index.get("sample_rate")
        plan = RecordingPlan(sample_rate=rate if isinstance(rate, int) and rate > 0 else 16000,
                             part_bytes=self.settings.part_bytes)
        facts = {name: index.get(name) for name in ("release", "region", "key_name", "provider", "transport")}
        self._open[session_id] = Recording(session_id, folder, started_at, plan, facts, upload_id=upload_id,
                                           adopted=True)

    def overdue(self, older_than_seconds: float) -> list[str]:
        """The sessions recorded here that began longer ago than any session runs: nothing told of
        their end (a bot that never dialled, its machine's end unseen)."""
        now = self._clock()
        return [session_id for session_id, recording in self._open.items()
                if now - recording.started_at > older_than_seconds and session_id not in self._finishing]

    def recorded(self, session_id: str) -> bool:
        """True until its recording and report are written: an erasure before then would be undone."""
        return session_id in self._open or session_id in self._completing

    def writable_for(self, session_id: str) -> float:
        """Seconds its bot's last part URL can still write its recording, where the store's part URLs
        outlive their upload (0 elsewhere): an erasure before then could be written back."""
        left = self._writable.get(session_id, 0.0) - self._clock()
        if left <= 0:
            self._writable.pop(session_id, None)
        return max(0.0, left)

    async def part_url(self, session_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """`recording.part` from the session's bot: one part's upload URL, opening the upload first."""
        recording = self._open.get(session_id)
        if recording is None or not recording.plan.audio:
            raise RequestFailed(404, "not_recorded", "this session's audio is not being recorded")
        part = params.get("part")
        if not isinstance(part, int) or isinstance(part, bool) or not 1 <= part <= recording.last_part:
            raise RequestFailed(400, "invalid_part", f"part must be an integer from 1 to {recording.last_part} "
                                "(the most the session's longest call fills)")
        seconds = self.settings.part_url_seconds
        try:
            upload_id = await self._opened(recording)
            # In a thread: a store may sign through a call of its own (GCS without a key: IAM signBlob).
            recording.urls_until = max(recording.urls_until, self._clock() + seconds)  # before: it may be used at once
            url = await asyncio.to_thread(self.store.part_url, recording.folder + RECORDING, upload_id, part, seconds)
        except StoreError as exc:
            self.fault = exc
            raise RequestFailed(503, "store_unavailable", _failed(recording, exc)) from None
        return {"url": url, "expires_in": seconds}

    async def _opened(self, recording: Recording) -> str:
        async with recording.opening:
            if recording.upload_id is None:
                await self._indexed(recording)
                recording.upload_id = await self.store.open_upload(recording.folder + RECORDING, "audio/wav",
                                                                   self._tags(recording))
            return recording.upload_id

    async def _indexed(self, recording: Recording) -> None:
        """Writes the index that names the session's folder: what reads and erases its objects find it by."""
        index = {"session_id": recording.session_id, "folder": recording.folder,
                 "started_at": recording.started_at, "sample_rate": recording.plan.sample_rate, **recording.facts}
        await self.store.put(index_key(self.store.prefix, recording.session_id, recording.keeping.days),
                             json.dumps(index).encode(), "application/json", self._tags(recording))

    @staticmethod
    def _tags(recording: Recording) -> dict[str, str]:
        """What a team searches its store by (S3 object tags): the key name and the release."""
        return {name: str(recording.facts[name]) for name in ("key_name", "release") if recording.facts.get(name)}

    async def bot_finished(self, session_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """`recording.finished` from the session's bot: its own account (bounded, kept for the report)."""
        recording = self._open.get(session_id)
        if recording is None:
            raise RequestFailed(404, "not_recorded", "this session is not being recorded")
        recording.bot_stats = bot_account(params)
        if recording.plan.transcript:
            recording.transcript = transcript_lines(params.get("transcript"))
            why = params.get("transcript_why")
            recording.transcript_why = why[:500] if isinstance(why, str) and why else None
        return {}

    def consent(self, session_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """`recording.consent` from the session's bot: its announcement played; noted on the timeline."""
        recording = self._open.get(session_id)
        if recording is None or not recording.plan.consent:
            raise RequestFailed(404, "not_recorded", "this session's recording asks no consent")
        at, seconds = params.get("announced_at"), params.get("seconds")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                   for v in (at, seconds)):
            raise RequestFailed(400, "invalid_consent", "announced_at and seconds must be numbers of seconds")
        recording.facts["consent"] = {"announced_at": at, "seconds": seconds}
        self._note(session_id, "recording_consent", announced_at=at, seconds=seconds)
        return {}

    async def bot_logs(self, session_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """`recording.logs` from the session's bot: some of its last log lines (checked, bounded, kept)."""
        recording = self._open.get(session_id)
        if recording is None:
            raise RequestFailed(404, "not_recorded", "this session is not being recorded")
        recording.logs = recording.logs or BotLogs()
        recording.logs.take(params)
        return {}

    def finish_soon(self, session_id: str, why: str) -> None:
        """Finishes the session's recording in the background (once)."""
        if session_id not in self._open or session_id in self._finishing:
            return
        task = asyncio.get_running_loop().create_task(self.finish(session_id, why), name="recording-finish")
        self._finishing[session_id] = task
        task.add_done_callback(lambda _: self._finishing.pop(session_id, None))

    async def finish(self, session_id: str, why: str) -> dict[str, Any] | None:
        """Completes (or aborts) the upload and writes the report; the report, or None if not recorded."""
        recording = self._open.pop(session_id, None)
        if recording is None:
            return None
        now = self._clock()
        if self.store.part_urls_outlive_uploads and recording.urls_until > now:
            self._writable = {sid: until for sid, until in self._writable.items() if until > now}  # the expired go
            self._writable[session_id] = recording.urls_until
        self._completing.add(session_id)
        try:
            return await self._finished(recording, why)
        finally:
            self._completing.discard(session_id)

    async def _finished(self, recording: Recording, why: str) -> dict[str, Any] | None:
        session_id = recording.session_id
        unannounced = recording.plan.consent and "consent" not in recording.facts
        if unannounced:
            if recording.upload_id is not None:
                await self._abort_quietly(recording.folder + RECORDING, recording.upload_id)
            outcome: dict[str, Any] = {"status": "none", "why": NOT_ANNOUNCED}
        else:
            outcome = await self._complete(recording) if recording.plan.audio else {
                "status": "off", "why": "the session's policy keeps no audio"}
        if recording.adopted and outcome["status"] == "none":
            log.info("session %s: its left-over upload was not completed here (%s)", session_id, outcome["why"])
            return None  # another replica's sweep completed it first: its report stands
        events = await self._safe_events(session_id)
        transcript = {"kept": False, "why": NOT_ANNOUNCED} if unannounced else await self._transcript(recording)
        logs = await write_logs(self.store, recording.folder, recording.logs)
        report = session_report(recording.session_id, recording.facts, events, outcome, why=why,
                                errors=recording.errors, transcript=transcript, turns=recording.transcript,
                                logs=logs, cost=self._priced(events))
        try:
            if recording.upload_id is None:  # no index yet: a report it did not name could never be erased
                await self._indexed(recording)
            await self.store.put(recording.folder + REPORT, json.dumps(report, indent=2).encode(), "application/json",
                                 self._tags(recording))
        except StoreError as exc:
            log.error("session %s: its report was not written: %s", session_id, exc)
        event = "recording_ready" if outcome["status"] in ("complete", "off") else "recording_partial" \
            if outcome["status"] == "partial" else "recording_missing"
        self._note(session_id, event, seconds=outcome.get("seconds"), reason=outcome.get("why"),
                   folder=recording.folder)
        return report

    async def _transcript(self, recording: Recording) -> dict[str, Any]:
        """Writes `transcript.jsonl` (one turn a line) when the bot handed its turns over; what the report says."""
        if not recording.plan.transcript:
            return {"kept": False, "why": "the session's policy keeps no transcript"}
        if recording.transcript_why is not None:
            return {"kept": False, "why": recording.transcript_why}
        if recording.transcript is None:
            return {"kept": False, "why": "the bot ended without handing over its turns (killed or lost)"}
        body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in recording.transcript)
        try:
            await self.store.put(recording.folder + TRANSCRIPT, body.encode(), "application/x-ndjson",
                                 self._tags(recording))
        except StoreError as exc:
            return {"kept": False, "why": f"the store failed: {_failed(recording, exc)}"}
        return {"kept": True, "object": TRANSCRIPT, "turns": len(recording.transcript),
                "caller_lines": sum(1 for line in recording.transcript if line["who"] == "caller"),
                "bot_turns": sum(1 for line in recording.transcript if line["who"] == "bot")}

    async def _complete(self, recording: Recording) -> dict[str, Any]:
        outcome: dict[str, Any] = {"sample_rate": recording.plan.sample_rate, "channels": {"left": "caller",
                                                                                           "right": "bot"}}
        if recording.upload_id is None:
            return {**outcome, "status": "none", "why": "the bot uploaded no audio"}
        key = recording.folder + RECORDING
        try:
            arrived = await self.store.parts(key, recording.upload_id)
            kept = kept_parts(arrived, recording.plan.part_bytes)
            if not kept:
                await self.store.abort(key, recording.upload_id)
                return {**outcome, "status": "none", "why": "no part of the recording arrived"}
            await self.store.complete(key, recording.upload_id, kept)
            total = sum(part.size for part in kept)
            await self.store.patch(key, wav_sizes(total), first_part=kept[0].size, tags=self._tags(recording))
        except StoreError as exc:
            failed = _failed(recording, exc)
            await self._abort_quietly(key, recording.upload_id)
            return {**outcome, "status": "none", "why": f"the store failed: {failed}"}
        seconds = round(recording_seconds(total, recording.plan.sample_rate), 3)
        stats = recording.bot_stats
        status, why = "complete", None
        if stats is None:
            status, why = "partial", "the bot ended without closing its recording (it was killed or lost): " \
                                     "the parts it had uploaded are kept"
        elif len(kept) < len(arrived) or int(stats.get("bytes") or 0) > total:
            status, why = "partial", "some parts did not arrive"
        elif stats.get("degraded"):
            status, why = "partial", "; ".join(str(d) for d in stats["degraded"])[:500]
        return {**outcome, "status": status, "why": why, "object": RECORDING, "bytes": total,
                "seconds": seconds, "parts": len(kept), "bot": dict(stats) if stats else None,
                "header_bytes": WAV_HEADER_BYTES}

    async def _abort_quietly(self, key: str, upload_id: str) -> None:
        try:
            await self.store.abort(key, upload_id)
        except StoreError as exc:
            log.warning("an upload could not be aborted (the bucket's incomplete-upload rule removes it): %s", exc)

    def _priced(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """The report's `cost`: the session's, as `GET /sessions/{id}` gives it, or why there is none."""
        if self._cost is None:
            return {"known": False, "why": "this dispatcher reckons no session's cost"}
        try:
            cost = self._cost(events)
        except Exception as exc:  # the report is written without its cost rather than not at all
            log.exception("a session's cost could not be reckoned for its report")
            return {"known": False, "why": f"it could not be reckoned ({type(exc).__name__})"}
        if cost is None:
            return {"known": False, "why": "no machine was launched or claimed for it (its timeline says none)"}
        return cost

    async def _safe_events(self, session_id: str) -> list[dict[str, Any]]:
        try:
            return await self._events(session_id)
        except Exception:  # the report is written without its timeline rather than not at all
            return []

    async def aclose(self) -> None:
        """Finishes what is under way (a dispatcher that stops: its sessions' parts are kept)."""
        if self._rechecking is not None:
            self._rechecking.cancel()
        for session_id in list(self._open):
            self.finish_soon(session_id, "the dispatcher stopped")
        if self._finishing:
            await asyncio.wait(set(self._finishing.values()), timeout=10)


def _failed(recording: Recording, exc: StoreError) -> str:
    """A store failure during a session: its words to the log, the stable reason to the report and the client."""
    log.warning("session %s: the recording store failed: %s", recording.session_id, exc)
    recording.errors.append(exc.client_text)
    return exc.client_text
