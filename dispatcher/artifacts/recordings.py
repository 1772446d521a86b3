"""Each recorded session's upload, from the plan its bot is assigned to the report beside the audio.

`plan_for` decides at the start: the policy for the session's key name and release (rules.py),
lowered by the start, never raised (a start that asks more is refused before it gets here); a store
that cannot be written records nothing and says why, and the call runs all the same, unless
`RECORDING_REQUIRED` refuses it. The objects' keys carry the session's retention (keys.py). The upload is
opened when the bot first asks for a part's URL, with an index object that says which day's folder
holds the session. `finish` (ending.py calls it once the session is over, whatever ended it)
completes the upload with the parts that arrived (the longest run from part 1, each of the plan's part size),
gives the WAV its true sizes, writes the report and notes `recording_ready` or `recording_partial`
on the timeline (and so the lifecycle webhooks): finishing.py. An upload with no part is aborted:
nothing stays half-uploaded. A store that fails at the end is asked again with backoff for
FINISH_DEADLINE_SECONDS, what is still to write held meanwhile (bounded); after that the session is
left (said on its timeline and in status) and tried again at each orphan sweep, its parts never
dropped for a failure. The sessions under way are this replica's memory (the replica that holds
the bot's channel, taken from the replica that planned it when the bot's channel ends elsewhere:
hand_over.py); the timeline's `recording_planned` tells the others one is (erasure_check.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from botchannel.contract import RequestFailed
from botchannel.recording import MAX_PARTS, WAV_HEADER_BYTES, RecordingPlan
from dispatcher.artifacts.bot_account import bot_account
from dispatcher.artifacts.bot_logs import BotLogs
from dispatcher.artifacts.completion import kept_parts
from dispatcher.artifacts.end_retries import FINISH_DEADLINE_SECONDS, EndRetries
from dispatcher.artifacts.erasure_check import FINISHED, still_finishing
from dispatcher.artifacts.finishing import SessionEnds, index_body, tags_of
from dispatcher.artifacts.hand_over import METHOD_HAND_OVER, METHOD_TAKE_OVER, holders, record_of, recording_from
from dispatcher.artifacts.keys import RECORDING, index_key, session_folder
from dispatcher.artifacts.local_store import LocalFolderStore
from dispatcher.artifacts.session_recording import Recording
from dispatcher.artifacts.settings import ArtifactSettings
from dispatcher.artifacts.store import ArtifactStore, StoreError
from dispatcher.artifacts.transcript import transcript_lines
from dispatcher.artifacts.wanted import Wanted, lowered
from dispatcher.errors import ApiError
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.relay import NotHere

__all__ = ["Recording", "SessionRecordings", "kept_parts", "last_part"]
log = logging.getLogger("dispatcher.artifacts")
Note = Callable[..., None]  # the timeline's `note(session_id, event, **fields)`
Events = Callable[[str], Awaitable[list[dict[str, Any]]]]  # the session's timeline, oldest first
# A session's cost from its id and timeline (dispatcher/sessions/cost.py's `of_session`: a bot killed
# before its end has its services counted as it last reported them, as `GET /sessions/{id}` does).
Cost = Callable[[str, list[dict[str, Any]]], Awaitable[dict[str, Any] | None]]
# Another replica's answer (`Coordination.ask_replica`): replica, session, method, params, timeout.
Ask = Callable[[str, str, str, Mapping[str, Any], float], Awaitable[Mapping[str, Any] | None]]
# The answer of the replica whose channel the session's bot dialled (`Coordination.ask_owner`):
# session, method, params, timeout; None when no other replica holds it.
AskOwner = Callable[[str, str, Mapping[str, Any], float], Awaitable[Mapping[str, Any] | None]]
HAND_OVER_TIMEOUT_SECONDS = 10.0  # the holder answers from its memory: milliseconds
HAND_OVER_ASKS = 4  # a holder stalled past one ask's wait is asked again (its first answer was lost)
HAND_OVER_BACKOFF_SECONDS = 1.0  # doubled before each ask again
GIVEN_AT_ONCE = 64  # recordings given to their bots' replicas at once when this one drains
HANDED_KEEP_SECONDS = 600.0  # what a holder handed over, kept for a repeat ask from the same replica
PLANNED_WAIT_SECONDS = 5.0  # a bot's first request may come before its timeline's `recording_planned` is in the store
MAX_OPEN = 10_000  # sessions recorded at once in one replica
RECHECK_SECONDS = 60.0  # a store that failed its check is tried again this often (fixed: recording resumes)
OVERRUN_SECONDS = 120.0  # a call's audio past its longest (a bot's clock, its end's last part), allowed for
def last_part(plan: RecordingPlan, max_seconds: float | None) -> int:
    """The highest part number a call of at most `max_seconds` fills: a bot asking past it is refused,
    so a hostile one cannot have the bucket take 10,000 parts of a 5-minute call."""
    if max_seconds is None:
        return MAX_PARTS
    audio = WAV_HEADER_BYTES + (max_seconds + OVERRUN_SECONDS) * plan.bytes_per_second
    return min(MAX_PARTS, math.ceil(audio / plan.part_bytes))


class SessionRecordings:
    def __init__(self, settings: ArtifactSettings, store: ArtifactStore, *, note: Note, events: Events,
                 region: str, provider: str, clock: Callable[[], float] = time.time,
                 max_session_seconds: float | None = None, cost: Cost | None = None,
                 finish_deadline_seconds: float = FINISH_DEADLINE_SECONDS, replica_id: str = "",
                 ask: Ask | None = None, ask_owner: AskOwner | None = None) -> None:
        self.settings = settings
        self.store = store
        self._note = note
        self._events = events
        self._region = region
        self._provider = provider
        self._clock = clock
        self._max_seconds = max_session_seconds  # the longest a session runs: it bounds its part numbers
        self._cost = cost  # what the session cost, from its timeline (None: this dispatcher prices none)
        self._replica_id = replica_id
        self._ask = ask  # None: one process, every recording is held here
        self._ask_owner = ask_owner  # None: one process
        self._taking: dict[str, asyncio.Task[bool]] = {}  # recordings being taken from another replica
        self._handed: dict[str, tuple[str, dict[str, Any], float]] = {}  # session: (taker, record, when)
        self._closing = False  # `aclose` began: another replica's recording is no longer taken here
        self._taken: dict[str, tuple[str, float]] = {}  # session: (giver, when), given here by a draining replica
        self.fault: StoreError | None = None  # the store's last failure: sessions go unrecorded meanwhile
        self._ends = SessionEnds(store, note=note, events=events, priced=self._priced)
        self._retries = EndRetries(self._ends, note, finish_deadline_seconds)
        self._left = self._retries.left  # ended, its end left to the sweep
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
        # What deletes a session once its retention has passed: no lifecycle rule exists for a folder.
        shown["retention_by"] = "this dispatcher, every 10 minutes" if isinstance(self.store, LocalFolderStore) \
            else "the store's lifecycle rules (the stacks write them; a bucket of your own needs them added)"
        if self.settings.rules.rules:
            shown["rules"] = self.settings.rules_text.strip()
        if self.unknown_releases:
            shown["unknown_releases"] = self.unknown_releases
        if self.error is not None or self.failure is not None:
            shown["error"] = self.error or self.failure
        waiting = [session_id for session_id in self._completing if session_id not in self._left]
        if self._left or (waiting and self.failure is not None):
            shown["unfinished"] = {"finishing": len(waiting), "left": len(self._left),
                                   "why": self.failure or "being written"}
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
        # Every replica reads it: an erasure elsewhere waits for the end's `recording_ready` (or partial, missing).
        self._note(session_id, "recording_planned", audio=keeping.audio, transcript=keeping.transcript,
                   days=keeping.days)
        return plan

    def discard(self, session_id: str) -> None:
        """A start that failed: its recording is dropped (finished, if its bot had begun uploading)."""
        recording = self._open.get(session_id)
        if recording is not None and recording.upload_id is None:
            del self._open[session_id]
            self._note(session_id, "recording_missing", reason="the start failed: nothing was recorded")
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
        return session_id in self._open or session_id in self._completing or session_id in self._left

    @property
    def failure(self) -> str | None:
        """The store's last failure at a session's end (GET /status shows it beside the check's)."""
        return self._retries.failure

    @failure.setter
    def failure(self, failure: str | None) -> None:
        self._retries.failure = failure

    async def finish_left(self) -> int:
        """The ends left while the store failed, tried again (the orphan sweep calls it); how many were written."""
        return await self._retries.finish_left()

    def finishing(self, session_id: str) -> bool:
        """Ended, its artifacts still being written here (or left to write when the store answers)."""
        return session_id in self._completing or session_id in self._left

    def finishing_elsewhere(self, session_id: str, events: list[dict[str, Any]]) -> bool:
        """Whether the session's timeline says a replica may still be writing its artifacts: planned,
        not finished, and not so long ago that no replica could still be at it (one whose end this
        replica wrote is not: its timeline's last event may still be on its way to the store)."""
        if self._retries.wrote(session_id):
            return False
        longest = (self._max_seconds or 4 * 3600.0) + self.settings.end_grace_seconds \
            + self._retries.deadline_seconds + 120
        return still_finishing(events, self._clock(), longest)

    def writable_for(self, session_id: str) -> float:
        """Seconds its bot's last part URL can still write its recording, where the store's part URLs
        outlive their upload (0 elsewhere): an erasure before then could be written back."""
        left = self._writable.get(session_id, 0.0) - self._clock()
        if left <= 0:
            self._writable.pop(session_id, None)
        return max(0.0, left)

    async def part_url(self, session_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """`recording.part` from the session's bot: one part's upload URL, opening the upload first."""
        recording = await self._for_bot(session_id)
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
                                                                   tags_of(recording))
            return recording.upload_id

    async def _indexed(self, recording: Recording) -> None:
        """Writes the index that names the session's folder: what reads and erases its objects find it by."""
        await self.store.put(index_key(self.store.prefix, recording.session_id, recording.keeping.days),
                             index_body(recording), "application/json", tags_of(recording))

    async def bot_finished(self, session_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """`recording.finished` from the session's bot: its own account (bounded, kept for the report)."""
        recording = await self._for_bot(session_id)
        if recording is None:
            raise RequestFailed(404, "not_recorded", "this session is not being recorded")
        recording.bot_stats = bot_account(params)
        if recording.plan.transcript:
            recording.transcript = transcript_lines(params.get("transcript"))
            why = params.get("transcript_why")
            recording.transcript_why = why[:500] if isinstance(why, str) and why else None
        return {}

    async def consent(self, session_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """`recording.consent` from the session's bot: its announcement played; noted on the timeline."""
        recording = await self._for_bot(session_id)
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
        recording = await self._for_bot(session_id)
        if recording is None:
            raise RequestFailed(404, "not_recorded", "this session is not being recorded")
        recording.logs = recording.logs or BotLogs()
        recording.logs.take(params)
        return {}

    async def here(self, session_id: str, planned_wait: float = 0.0) -> Recording | None:
        """The session's recording, held here: taken from the replica that holds it (the timeline
        names it) when its bot's channel ends here. `planned_wait`: how long its plan may take to
        reach the timeline (a bot's request: it was given one)."""
        return (await self._held(session_id, planned_wait))[0]

    async def _for_bot(self, session_id: str) -> Recording | None:
        """`here`, for a request of the session's bot. The holder's channel of the same bot still
        answering (this one's drop is not seen there yet) is no final no: the bot is told to ask again."""
        recording, bot_elsewhere = await self._held(session_id, PLANNED_WAIT_SECONDS)
        if recording is None and self._closing and self._ask is not None:  # its holder keeps it; the bot re-dials
            raise RequestFailed(503, "replica_stopping", "this replica is stopping and takes no recording over; "
                                "ask again once the channel is dialled again")
        if bot_elsewhere:
            raise RequestFailed(503, "recording_elsewhere", "this session's recording is held by another replica "
                                "where its bot's channel still answers; ask again in a few seconds")
        return recording

    async def _held(self, session_id: str, planned_wait: float) -> tuple[Recording | None, bool]:
        """The recording held here, and whether its holder kept it because its bot's channel answers there."""
        recording = self._open.get(session_id)
        if recording is not None or self._ask is None or not self.settings.on or self.finishing(session_id) \
                or self._closing:  # a replica stopping takes nothing it would not finish
            return recording, False
        taking = self._taking.get(session_id)
        if taking is None:  # one hand-over at a time for a session; its other requests wait for it
            taking = asyncio.get_running_loop().create_task(self._take(session_id, planned_wait),
                                                            name="recording-hand-over")
            self._taking[session_id] = taking
            taking.add_done_callback(lambda _: self._taking.pop(session_id, None))
        bot_elsewhere = await asyncio.shield(taking)
        recording = self._open.get(session_id)
        return recording, recording is None and bot_elsewhere

    async def _take(self, session_id: str, planned_wait: float) -> bool:
        """Takes the recording from its holder; True when the holder keeps it for its bot's live channel there."""
        assert self._ask is not None
        deadline = time.monotonic() + planned_wait
        while True:  # the timeline is in the store: read again until the plan's event is there, or the wait is over
            events = await self._timeline(session_id)
            chain = holders(events)
            if chain or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.2)
        holder = chain[-1] if chain else None
        if holder == self._replica_id and len(chain) > 1 and not any(e.get("event") in FINISHED for e in events):
            holder = chain[-2]  # handed here, its answer lost: the replica that handed it answers it again
        if holder is None or holder == self._replica_id:
            return False  # never recorded, or finished here already
        answer = await self._asked(session_id, holder)
        record = answer.get("recording") if answer is not None else None
        try:
            recording = recording_from(session_id, record) if isinstance(record, Mapping) else None
        except ValueError:
            log.warning("session %s: replica %s handed over no recording this version reads", session_id, holder)
            return False
        if recording is not None and session_id not in self._open:
            self._open[session_id] = recording
            if answer is not None and not answer.get("moved"):  # a holder of an earlier version did not note it
                self._note(session_id, "recording_moved", replica_from=holder)
        return answer is not None and answer.get("bot_here") is True

    async def _asked(self, session_id: str, holder: str) -> Mapping[str, Any] | None:
        """The holder's answer to the hand-over, asked again (with backoff) when it does not come:
        the relay answers at most once, and the holder keeps what it handed for this replica's repeat."""
        assert self._ask is not None
        params = {"asker": self._replica_id}
        for ask in range(HAND_OVER_ASKS):
            try:
                return await self._ask(holder, session_id, METHOD_HAND_OVER, params, HAND_OVER_TIMEOUT_SECONDS)
            except (TimeoutError, StoreUnavailable) as exc:
                failure: Exception = exc
            except (ApiError, NotHere) as exc:  # a holder gone or of an earlier version: asking again changes nothing
                failure = exc
                break
            if ask + 1 < HAND_OVER_ASKS:
                await asyncio.sleep(HAND_OVER_BACKOFF_SECONDS * 2 ** ask)
        # Left where it is: that replica completes it with what arrived (its grace, sweep or stop).
        log.warning("session %s: its recording could not be taken from replica %s (%s)", session_id, holder,
                    type(failure).__name__)
        return None

    async def _timeline(self, session_id: str) -> list[dict[str, Any]]:
        try:
            return await self._events(session_id)
        except Exception:  # a store that does not answer: not recorded here, as if never planned
            log.warning("session %s: its timeline could not be read to find its recording", session_id)
            return []

    async def hand_over(self, session_id: str, asker: str = "", *, bot_here: bool = False) -> dict[str, Any]:
        """Another replica holds the session's bot now: the recording goes there, to be written
        at its end (`{"recording": None}`: not held here, its end already being written, or its bot's
        channel still live here, so the asker's is a stale one). `asker`: the replica asking, answered
        the same record again when it asks again (its first answer lost)."""
        handed = self._handed.get(session_id)
        if handed is not None and asker and handed[0] == asker and session_id not in self._open:
            return {"recording": handed[1], "moved": True}
        recording = self._open.get(session_id)
        if recording is None or session_id in self._finishing:
            return {"recording": None}
        if bot_here:  # the asker's channel is the stale one, or this one's drop is not seen yet: ask again
            return {"recording": None, "bot_here": True}
        async with recording.opening:  # an upload being opened here goes over opened
            if self._open.get(session_id) is not recording or session_id in self._finishing:
                return {"recording": None}
            del self._open[session_id]
        record = record_of(recording)
        if not asker:  # a replica of an earlier version: it notes the move itself
            return {"recording": record}
        now = self._clock()
        self._handed = {sid: kept for sid, kept in self._handed.items() if now - kept[2] < HANDED_KEEP_SECONDS}
        if len(self._handed) < MAX_OPEN:
            self._handed[session_id] = (asker, record, now)
        # Noted before the answer: an answer lost on its way still leaves the timeline naming the taker.
        self._note(session_id, "recording_moved", replica_from=self._replica_id, replica_to=asker)
        return {"recording": record, "moved": True}

    async def take_over(self, session_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """A draining replica gives the session's recording to this one, its bot's: held here till its end.
        The giver asking again (its first answer lost) is answered the same: it must not finish it too."""
        giver, record = params.get("from"), params.get("recording")
        if not isinstance(record, Mapping) or not isinstance(giver, str):
            return {"taken": False}
        taken = self._taken.get(session_id)
        if taken is not None and taken[0] == giver:
            return {"taken": True}
        if session_id in self._open or self.finishing(session_id) or self._closing:
            return {"taken": False}
        try:
            self._open[session_id] = recording_from(session_id, record)
        except ValueError:
            return {"taken": False}
        now = self._clock()
        self._taken = {sid: kept for sid, kept in self._taken.items() if now - kept[1] < HANDED_KEEP_SECONDS}
        if len(self._taken) < MAX_OPEN:
            self._taken[session_id] = (giver, now)
        self._note(session_id, "recording_moved", replica_from=giver, replica_to=self._replica_id)
        return {"taken": True}

    async def _given_to_bot_replica(self, session_id: str) -> bool | None:
        """At a drain: the recording given to the replica its bot dialled, which ends it with the call
        (this replica finishing it now would lose the rest of the call). True: given; False: kept here;
        None: unclear (every answer lost), so not finished here either: two ends would overwrite each other."""
        recording = self._open.get(session_id)
        if recording is None or self._ask_owner is None:
            return False
        params = {"recording": record_of(recording), "from": self._replica_id}
        unclear: Exception | None = None
        for ask in range(HAND_OVER_ASKS):
            try:  # None: its bot is here (a re-dial elsewhere is handed it there) or nowhere yet
                async with recording.opening:
                    answer = await self._ask_owner(session_id, METHOD_TAKE_OVER, params, HAND_OVER_TIMEOUT_SECONDS)
            except (TimeoutError, StoreUnavailable) as exc:  # it may have been taken: ask again, answered the same
                unclear = exc
            except (ApiError, NotHere) as exc:
                log.warning("session %s: its recording could not be given to its bot's replica (%s)",
                            session_id, type(exc).__name__)
                break
            else:
                if answer is not None and answer.get("taken") is True:
                    self._open.pop(session_id, None)
                    return True
                if answer is not None or unclear is None:  # refused: a taker answers a repeat as it did the first
                    return False
                break
            if ask + 1 < HAND_OVER_ASKS:
                await asyncio.sleep(HAND_OVER_BACKOFF_SECONDS * 2 ** ask)
        if unclear is None:
            return False
        # Its upload stays open: the orphan sweep completes it with its parts if the bot's replica never took it.
        log.warning("session %s: whether its bot's replica took its recording is unknown (%s); not finished here",
                    session_id, type(unclear).__name__)
        self._open.pop(session_id, None)
        return None

    async def finish_here(self, session_id: str, why: str) -> None:
        """The session's end, told by its bot's channel here: its recording finished, taken first
        from the replica that holds it if need be."""
        if await self.here(session_id) is not None:
            self.finish_soon(session_id, why)

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
            return await self._retries.finished(recording, why)
        finally:
            self._completing.discard(session_id)

    async def _priced(self, session_id: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        """The report's `cost`: the session's, as `GET /sessions/{id}` gives it, or why there is none."""
        if self._cost is None:
            return {"known": False, "why": "this dispatcher reckons no session's cost"}
        try:
            cost = await self._cost(session_id, events)
        except Exception as exc:  # the report is written without its cost rather than not at all
            log.exception("a session's cost could not be reckoned for its report")
            return {"known": False, "why": f"it could not be reckoned ({type(exc).__name__})"}
        if cost is None:
            return {"known": False, "why": "no machine was launched or claimed for it (its timeline says none)"}
        return cost

    async def aclose(self) -> None:
        """Finishes what is under way (a dispatcher that stops: its sessions' parts are kept)."""
        self._closing = True  # from here nothing is taken: a recording taken now would never be finished
        self._ends.closing.set()  # its reports go with what their timelines have now
        if self._rechecking is not None:
            self._rechecking.cancel()
        for taking in list(self._taking.values()):
            taking.cancel()
        under_way = [session_id for session_id in self._open if session_id not in self._finishing]
        gate = asyncio.Semaphore(GIVEN_AT_ONCE)  # a drain with many calls waits one ask's bound, not one per call

        async def given(session_id: str) -> bool | None:
            async with gate:
                return await self._given_to_bot_replica(session_id)
        for session_id, gone in zip(under_way, await asyncio.gather(*map(given, under_way)), strict=True):
            if gone is False:
                self.finish_soon(session_id, "the dispatcher stopped")
        if self._finishing:
            await asyncio.wait(set(self._finishing.values()), timeout=10)
        if self._left:
            log.error("%d session(s) whose end the store did not take are let go: their parts stay in their uploads "
                      "for the orphan sweep; their transcripts, logs and reports are lost", len(self._left))


def _failed(recording: Recording, exc: StoreError) -> str:
    """A store failure during a session: its words to the log, the stable reason to the report and the client."""
    log.warning("session %s: the recording store failed: %s", recording.session_id, exc)
    if exc.client_text not in recording.errors:
        recording.errors.append(exc.client_text)
    return exc.client_text
