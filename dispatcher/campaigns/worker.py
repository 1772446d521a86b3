"""Each replica works every live campaign (docs/phone.md#campaigns): it takes a turn of the campaign's pace
(`campaign:<id>`, the store's deployment-wide bucket, as a carrier's pace is), claims a row under a lease
(dispatcher/store/campaign_book.py: at most `concurrency` rows at once, across replicas), and places its call
through `POST /calls`' own path (dispatcher/api/call_order.py: the key's start rate, the carrier's or trunk's
policy and pace) with an Idempotency-Key of the campaign, the row and the attempt. It then follows the call's
session until its end, renewing the lease every third of it, and settles the row: its outcome, or a retry
after `retry.after_seconds`. A campaign stopped while its row waited for the carrier's pace places no call: the
row goes back to wait for the campaign's resume, its attempt not spent.

A replica that dies leaves its rows' leases to run out; the next replica to look claims them again and asks
for the same call with the same key: a call already placed is answered with its session (followed, never
placed twice), one never placed is placed then. A refusal that says "later" (429, 503) puts the row back
without spending an attempt; any other is the row's outcome (`not_placed`, with why)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from dispatcher.api.call_order import order_call
from dispatcher.api.call_schemas import CallRequest
from dispatcher.api.state import AppState
from dispatcher.campaigns.schemas import DO_NOT_CALL
from dispatcher.errors import ApiError
from dispatcher.phone.call_pace import pace_turn
from dispatcher.sessions.ids import Caller
from dispatcher.store.campaign_book import FINISHED, HALTED, LAST, LOST, RUNNING, CampaignBook, Claimed
from dispatcher.store.client import StoreUnavailable

log = logging.getLogger("dispatcher.campaigns")

POLL_SECONDS = 0.5  # how soon a replica sees a new campaign, a retry come due, a lease run out
WATCH_SECONDS = 1.0  # a call's session read this often until it ended
# A call whose session shows nothing for this long was never placed (its replica died before the create,
# and no callback came): the row's outcome is `unknown`, not a call placed again at a risk of two.
UNSEEN_SECONDS = 300.0
LATER = (429, 503)  # refusals that ask again later: the row waits, its attempt not spent
ENDS = ("ended", "machine_ended")
LEASE_LOST = "campaign_lease_lost"  # the fence before the carrier's create: this claim is no longer the row's
STOPPED_SINCE = "campaign_stopped"  # the fence before the carrier's create: the campaign was stopped meanwhile


@dataclass(frozen=True)
class Spec:
    """A campaign's calls, as its creator gave them (its `spec` in the store)."""

    caller_id: str
    carrier: str | None
    trunk: str | None
    voicemail: str | None
    pace: float
    retry_on: tuple[str, ...]
    retry_after: float
    attempts: int

    @classmethod
    def of(cls, text: str) -> Spec:
        spec = json.loads(text)
        retry = spec.get("retry") or {}
        return cls(spec["from"], spec.get("carrier"), spec.get("trunk"), spec.get("voicemail"), float(spec["pace"]),
                   tuple(retry.get("on", ())), float(retry.get("after_seconds", 0)), int(retry.get("attempts", 1)))


def owner_of(state: AppState, caller_id: str) -> Caller | None:
    """The key that created the campaign (None: removed since), or a keyless local dispatcher's caller."""
    if not state.auth.enabled:
        return state.auth.identify(None)
    return state.auth.by_id(caller_id)


class CampaignWorker:
    def __init__(self, state: AppState, book: CampaignBook, *, lease_seconds: float,
                 poll_seconds: float = POLL_SECONDS, watch_seconds: float = WATCH_SECONDS) -> None:
        self._state = state
        self._book = book
        self._lease = lease_seconds
        self._poll = poll_seconds
        self._watch = watch_seconds
        self.holder = f"{state.replication.coordination.replica_id}:{secrets.token_hex(6)}"
        self._feeding: dict[str, asyncio.Task[None]] = {}
        self._rows: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Looks at the live campaigns every `poll_seconds` until cancelled; each is fed by a task of its own."""
        try:
            while True:
                with contextlib.suppress(StoreUnavailable):  # said by the store's health; looked at again
                    await self.look()
                await asyncio.sleep(self._poll)
        finally:
            await self.aclose()

    async def look(self) -> None:
        due = await self._book.live(time.time())  # those with something to do now: idle ones cost nothing
        for campaign_id in [c for c, task in self._feeding.items() if task.done()]:
            del self._feeding[campaign_id]
        for campaign_id in due:
            feeding = self._feeding.get(campaign_id)
            if feeding is None or feeding.done():
                self._feeding[campaign_id] = asyncio.create_task(self._feed(campaign_id),
                                                                 name=f"campaign {campaign_id}")

    async def _feed(self, campaign_id: str) -> None:
        """Claims the campaign's rows while there are some to claim, one pace turn each."""
        try:
            while (record := await self._book.read(campaign_id)) is not None and record.meta["status"] != FINISHED:
                if record.meta["status"] != RUNNING and record.in_progress == 0:
                    return  # stopped, no call of its under way: nothing to claim until it is resumed
                spec = Spec.of(record.meta["spec"])
                if record.meta["status"] == RUNNING and record.pending + record.retrying > 0 and \
                        record.in_progress < int(record.meta["concurrency"]):
                    # The campaign's own pace, across this region's replicas (its store's: a campaign is its region's);
                    # the carrier's, across every region, comes with each call (`order_call`).
                    try:
                        await pace_turn(self._state.replication.coordination, f"campaign:{campaign_id}", spec.pace,
                                        self._lease / 3, code="campaign_paced", what=f"campaign {campaign_id}",
                                        setting="its pace")
                    except ApiError:
                        return  # its turns are taken by other replicas' feeders: looked at again next poll
                claimed = await self._book.claim(campaign_id, self.holder, time.time(), self._lease)
                if claimed is None:
                    return
                task = asyncio.create_task(self._call(campaign_id, record.meta, spec, claimed))
                self._rows.add(task)
                task.add_done_callback(self._rows.discard)
            if record is None:  # its records expired: out of the indexes
                await self._book.forget(campaign_id)
        except StoreUnavailable:
            return
        except Exception:
            log.exception("campaign %s: its rows could not be claimed", campaign_id)

    async def _call(self, campaign_id: str, meta: dict[str, str], spec: Spec, claimed: Claimed) -> None:
        """One row's call, from its claim to its settling, its lease renewed meanwhile."""
        renewing = asyncio.create_task(self._renew(campaign_id, claimed))
        try:
            await self._called(campaign_id, meta, spec, claimed, renewing)
        except StoreUnavailable:
            log.warning("campaign %s row %s: the store did not answer; its lease runs out and it is taken again",
                        campaign_id, claimed.row)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("campaign %s row %s: left to its lease", campaign_id, claimed.row)
        finally:
            renewing.cancel()

    async def _renew(self, campaign_id: str, claimed: Claimed) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            with contextlib.suppress(StoreUnavailable):
                if not await self._book.renew(campaign_id, claimed.row, claimed.lease, time.time() + self._lease):
                    log.warning("campaign %s row %s: its lease went to another replica", campaign_id, claimed.row)
                    return

    async def _fence(self, campaign_id: str, claimed: Claimed) -> None:
        """Just before the carrier's create: the lease renewed under this claim's fence, or nothing placed. A
        replica paused past its lease (another has settled or taken the row since) places no call, nor does a row
        whose campaign was stopped while it waited for the carrier's turn."""
        said = await self._book.fence(campaign_id, claimed.row, claimed.lease, time.time() + self._lease)
        if said == LOST:
            raise ApiError(409, LEASE_LOST, f"campaign {campaign_id} row {claimed.row}: its lease went to another "
                           "replica before the call was placed; that replica places or settles it")
        if said == HALTED:
            raise ApiError(409, STOPPED_SINCE, f"campaign {campaign_id} row {claimed.row}: the campaign was stopped "
                           "before the call was placed; it is placed once the campaign is resumed")

    async def _called(self, campaign_id: str, meta: dict[str, str], spec: Spec, claimed: Claimed,
                      renewing: asyncio.Task[None]) -> None:
        row, state = claimed.row, dict(claimed.state)
        sessions: list[str] = list(state.get("sessions", []))
        following = state.get("status") == "calling"  # a replica gone mid-call held it: its call is asked again
        attempt = int(state.get("attempts", 0)) - (1 if following else 0)
        if not following and claimed.call.get("to") in self._state.campaign_settings.do_not_call:
            # Put on the list since its row was added (the list is read at start-up): never placed.
            state |= {"status": "skipped", "outcome": "skipped", "detail": DO_NOT_CALL}
            await self._settle(campaign_id, claimed, state, None, ("skipped",))
            return
        if not following:
            state |= {"status": "calling", "attempts": attempt + 1}
            if not await self._book.note(campaign_id, row, claimed.lease, state, ()):
                return
        owner = owner_of(self._state, meta["owner"])
        session_id, detail = None, None
        if owner is None:
            detail = "the key that created the campaign is no longer one of this deployment's"
        else:
            try:
                session_id = await self._placed(campaign_id, claimed, spec, owner, attempt)
            except ApiError as exc:
                if exc.code == LEASE_LOST:  # another replica holds the row now: it is that one's
                    log.warning("%s", exc.message)
                    return
                if exc.status in LATER or exc.code == STOPPED_SINCE:  # not placed: it waits, its attempt not spent
                    state |= {"status": "retrying" if sessions else "pending", "attempts": attempt}
                    if exc.code == STOPPED_SINCE:  # due as it was: a never-called row is `pending` again
                        due = time.time() if sessions else 0.0
                    else:
                        due = time.time() + (exc.retry_after or 1.0)
                    await self._settle(campaign_id, claimed, state, due, ())
                    return
                detail = exc.message
        if session_id is None:
            state |= {"status": "done", "outcome": "not_placed", "detail": detail}
            await self._settle(campaign_id, claimed, state, None, ("outcome:not_placed",))
            return
        counts = () if len(sessions) > attempt else ("placed",)  # counted once, whoever placed it
        if len(sessions) <= attempt:
            sessions.append(session_id)
        state |= {"session_id": session_id, "sessions": sessions}
        if not await self._book.note(campaign_id, row, claimed.lease, state, counts):
            return
        outcome, events = await self._followed(session_id, renewing)
        if outcome is None:  # the lease went elsewhere: that replica follows the call now
            return
        state |= _result(outcome, events)
        state["cost_usd"] = await self._cost(session_id, events)
        if outcome in spec.retry_on and attempt + 1 < spec.attempts:
            state |= {"status": "retrying"}
            await self._settle(campaign_id, claimed, state, time.time() + spec.retry_after, ("retries",))
            return
        state |= {"status": "done"}
        await self._settle(campaign_id, claimed, state, None, (f"outcome:{outcome}",))

    async def _placed(self, campaign_id: str, claimed: Claimed, spec: Spec, owner: Caller,
                      attempt: int) -> str | None:
        """The call's session (placed now, before, or under way at the carrier); an `ApiError` when not placed."""
        row, call = claimed.row, claimed.call
        try:
            payload = CallRequest.model_validate({
                "to": call["to"], "from": spec.caller_id, "trunk": spec.trunk, "carrier": spec.carrier,
                "voicemail": spec.voicemail, "body": call.get("body")})
        except ValidationError as exc:
            raise ApiError(422, "invalid_row", f"the row is not a call: {exc.errors()[0].get('msg')}") from None
        try:
            placed = await order_call(self._state, owner, payload, f"campaign-{campaign_id}-{row}-{attempt}",
                                      fence=lambda: self._fence(campaign_id, claimed))
        except ApiError as exc:
            if exc.code == "call_in_progress" or exc.code.endswith("_unanswered"):  # placed, or may ring: follow it
                return str((exc.extra or {}).get("session_id") or "") or None
            raise
        return str(placed.shown["session_id"])

    async def _followed(self, session_id: str,
                        renewing: asyncio.Task[None]) -> tuple[str | None, list[dict[str, Any]]]:
        """The call's outcome once its session ended (None: this replica's lease was lost meanwhile)."""
        timeline = self._state.sessions.timeline
        began = time.monotonic()
        bound = self._state.settings.max_session_seconds + UNSEEN_SECONDS
        while not renewing.done():
            events = await timeline.read(session_id)
            if any(e.get("event") in ENDS for e in events):
                return _outcome(events), events
            waited = time.monotonic() - began
            if (not events and waited > UNSEEN_SECONDS) or waited > bound:
                return "unknown", events
            await asyncio.sleep(self._watch)
        return None, []

    async def _cost(self, session_id: str, events: list[dict[str, Any]]) -> float | None:
        try:
            cost = await self._state.sessions.costs.of_session(session_id, events, running=False)
        except Exception:  # a cost not read is left out of the results, never the row's outcome
            return None
        total = cost.as_json().get("total") if cost is not None else None
        return float(total) if isinstance(total, int | float) else None

    async def _settle(self, campaign_id: str, claimed: Claimed, state: dict[str, Any], due: float | None,
                      counts: tuple[str, ...]) -> None:
        said = await self._book.settle(campaign_id, claimed.row, claimed.lease, state, due, counts, time.time())
        if said == LOST:
            log.warning("campaign %s row %s: settled by the replica that took its lease over", campaign_id,
                        claimed.row)
        elif said == LAST:
            await finished(self._state, self._book, campaign_id)

    async def aclose(self) -> None:
        tasks = [*self._feeding.values(), *self._rows]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def finished(state: AppState, book: CampaignBook, campaign_id: str) -> None:
    """`campaign.finished`, pushed once: by whoever settled its last row (or stopped it with none left). It
    names the key that owns the campaign (`key_id`: one receiver may serve several keys)."""
    log.info("campaign %s finished", campaign_id)
    if state.push_webhook is None:
        return
    record = await book.read(campaign_id)
    counts = record.counts if record is not None else {}
    state.push_webhook(f"msg_{campaign_id}_campaign.finished", "campaign.finished", {
        "campaign_id": campaign_id, "key_id": record.meta.get("owner") if record else None, "at": time.time(),
        "rows": int(record.meta.get("total", 0)) if record else None,
        "outcomes": {k.removeprefix("outcome:"): v for k, v in counts.items() if k.startswith("outcome:")},
        "skipped": counts.get("skipped", 0)})


def _outcome(events: list[dict[str, Any]]) -> str:
    """The call's last `call_outcome` (a machine's answer follows `answered`), else how its session ended."""
    outcomes = [e.get("outcome") for e in events if e.get("event") == "call_outcome"]
    if outcomes:
        return str(outcomes[-1])
    ended = next((e for e in events if e.get("event") == "ended"), None)
    return str(ended.get("reason") or "ended") if ended is not None else "ended"


def _result(outcome: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The row's outcome, and an answered call's length (from its answer to its session's end)."""
    answered = next((e.get("at") for e in events if e.get("event") == "call_outcome"
                     and e.get("outcome") == "answered"), None)
    ended = next((e.get("at") for e in events if e.get("event") in ENDS), None)
    duration = None
    if isinstance(answered, int | float) and isinstance(ended, int | float):
        duration = round(max(0.0, ended - answered), 3)
    detail = next((e.get("detail") for e in events if e.get("event") == "ended" and e.get("detail")), None)
    return {"outcome": outcome, "duration_seconds": duration, "detail": detail}
