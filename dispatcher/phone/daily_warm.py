"""A warm transfer of a Daily dial-in call: the person is dialled out into the session's own room while the
caller stays with the bot, the bot briefs them, then the two hear each other (docs/phone.md, "A warm transfer of a
Daily dial-in call"). Daily holds every leg's media; the dispatcher drives it with its own API key.

1. `dialOut/start` (https://docs.daily.co/reference/rest-api/rooms/dial-out/start) calls the person with a
   `userId` of the transfer's own, first recorded as this deployment's and waited on (renewed every poll in the
   background till the end, daily_legs.py); the bot is told `ringing`, as on Twilio.
2. The person's answer is Daily's `dialout.answered` webhook, kept in the replicas' store by whichever replica it
   reached (dispatcher/api/routers/daily_webhooks.py), within the ring (12 s): the leg is in the room from
   `dialout.connected`, while the phone still rings, so presence cannot tell an answer. Then `update-permissions`
   (https://docs.daily.co/reference/rest-api/rooms/update-permissions) lets each of the two receive the bot
   alone, and the bot is asked to `brief` (it speaks into the room: the caller hears the briefing too, as in
   Pipecat's own warm-transfer example, instead of silence; the person does not hear the caller yet).
3. Bridged (the leg marked the call's first: no late or repeated webhook stops it): the caller and the person
   receive everyone but the bot, which neither sends nor receives from then on; the session runs until the
   caller leaves (its room's end ends the person's leg); the person leaving first ends the caller's (`eject`).

Unanswered, busy (`dialout.stopped` / `dialout.error` before an answer) or gone during the briefing: the person's
leg is stopped (`dialOut/stop`), the caller hears the bot again, which is told `failed`, and the answer is 409
`person_unanswered` or `person_left`. The caller gone: the leg stopped, 409 `call_over`. A start Daily did not
answer may be ringing: it is never sent again, its waiting mark is given up (its `dialout.answered` finds the leg
nobody's and stops it), and a leg of its user that joins within a few seconds is stopped (a dial-out's
`sessionId` is its participant's id: daily-js `stopDialOut`, `sipCallTransfer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from botchannel.transfer import (
    BRIEF_SECONDS,
    DAILY_PERSON_USER,
    FAILED_SECONDS,
    METHOD_WARM_TRANSFER,
    STOP_SECONDS,
)
from dispatcher.errors import ApiError
from dispatcher.media.daily import DailyError, DailyRefused, DailyRooms
from dispatcher.phone.daily_leg_owner import leg_user
from dispatcher.phone.daily_legs import WAITING_SECONDS, DialoutLegs
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.phone.twilio_warm import RING_SECONDS, AskBot
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.phone")

POLL_SECONDS = 0.5  # the store and the room's presence read this often while the person rings or is briefed
WATCH_SECONDS = 3.0  # a bridged room's presence read this often: a request per call, of Daily's 20 a second
WATCH_FAILURES = 10  # failed requests in a row before a bridged room goes unwatched
CALL_SECONDS = 6.0  # one Daily request, its retries included
FOUND_SECONDS = 3.0  # after a start whose answer was lost: how long its leg may take to show in the room
WARM_SECONDS = 38.0  # start, ring, briefing, bridge: within the bot's wait (WARM_TRANSFER_TIMEOUT_SECONDS)
ANSWERED, ENDED = "answered", "ended"  # what `_heard` tells of the leg
# A waiting mark outlives the longest single step of the transfer plus the poll that renews it.
assert WAITING_SECONDS > CALL_SECONDS + POLL_SECONDS
PERSON_USER = DAILY_PERSON_USER  # + 24 hex, the region's tag first: the person's leg's userId (daily_leg_owner.py)


NoteLeg = Callable[[str], Awaitable[None]]  # the person's leg (its dial-out `sessionId`) written to the store


class DailyWarm:
    """The person's leg and its wait; `DailyTransfers` claims the call and notes the outcome."""

    def __init__(self, rooms: DailyRooms, ask_bot: AskBot, legs: DialoutLegs, *, ring_seconds: float = RING_SECONDS,
                 poll_seconds: float = POLL_SECONDS, found_seconds: float = FOUND_SECONDS,
                 watch_seconds: float = WATCH_SECONDS, region_tag: str = "", caller_id: str | None = None) -> None:
        self._rooms, self._ask_bot, self._legs = rooms, ask_bot, legs
        self._caller_id = caller_id  # DAILY_DIALOUT_CALLER_ID: the number the person sees (None: Daily's pick)
        self._tag = region_tag  # this region's, on each leg: the region its webhooks land in relays them here
        self._ring, self._poll, self._found, self._watch = ring_seconds, poll_seconds, found_seconds, watch_seconds
        self._telling: set[asyncio.Task[None]] = set()  # the bot told a step, a bridge watched: in the background

    async def transfer(self, session_id: str, caller: str, target: TransferTarget, wait_until: float,
                       note_leg: NoteLeg | None = None) -> str:
        """The person called, briefed and hearing the caller: their leg's `sessionId`. `ApiError` otherwise:
        409 `person_*` (the bot told `failed`), 409 `call_over`, or Daily's refusal (`DailyError`, nothing
        rings; `daily_unavailable` without `nothing_sent`: the start went unanswered, see the module)."""
        user = leg_user(self._tag)
        try:  # marked before the leg exists, so that its every webhook finds it this deployment's and waited on
            await self._legs.place(user)
        except StoreUnavailable:
            raise ApiError(503, "store_unavailable", "the replicas' store did not answer, so the person's answer "
                           "could not be heard: nobody was called and the caller is still with the bot; try again",
                           retry_after=1.0) from None
        marking = asyncio.create_task(self._keep_waiting(user))  # through the ring and the briefing alike
        try:
            return await self._call(session_id, caller, target, wait_until, note_leg, user, marking)
        finally:
            marking.cancel()
            await self._legs.done(user)

    async def _keep_waiting(self, user: str) -> None:
        """The waiting mark renewed every poll, whatever step the transfer is in (a slow read of the room
        included), until the transfer ends; a store that does not answer is asked again at the next poll."""
        while True:
            await asyncio.sleep(self._poll)
            try:
                await self._legs.wait(user)
            except StoreUnavailable:
                log.warning("daily dial-in: the store did not answer: the wait on the person's leg was not renewed")

    async def _call(self, session_id: str, caller: str, target: TransferTarget, wait_until: float,
                    note_leg: NoteLeg | None, user: str, marking: asyncio.Task[None]) -> str:
        try:
            async with asyncio.timeout(CALL_SECONDS):
                dial = await self._rooms.dial_out_start(session_id, target.to, user, self._caller_id)
        except TimeoutError:
            marking.cancel()
            await self._lost_start(session_id, user)
            raise DailyError("daily_unavailable", "Daily did not answer the dial-out's start") from None
        except DailyRefused as exc:
            if exc.status == 400 and self._caller_id is not None and not target.to.startswith(("sip:", "sips:")):
                raise CallerIdRefused(session_id, exc) from None
            raise
        except DailyError as exc:
            if exc.reason == "daily_unavailable" and not exc.nothing_sent:
                marking.cancel()
                await self._lost_start(session_id, user)
            raise
        log.info("daily dial-in %s: warm transfer: calling the person (%s)", session_id, dial)
        self._tell(session_id, {"event": "ringing", "to": target.to})
        try:
            if note_leg is not None:  # in the replicas' store: the leg of a replica that died can be found
                await note_leg(dial)
            return await self._consult(session_id, caller, dial, user, target, wait_until)
        except ApiError as exc:
            if exc.code.startswith("person_") or isinstance(exc, LegNotStopped):
                self._tell(session_id, {"event": "failed", "reason": exc.code})
            raise
        except (DailyError, TimeoutError) as exc:  # a permission Daily did not set: the transfer given up
            log.warning("daily dial-in %s: warm transfer given up: %s", session_id, str(exc) or "out of time")
            stopped = await self._undo(session_id, caller, dial)
            self._tell(session_id, {"event": "failed", "reason": "carrier_unavailable"})
            if not stopped:
                raise LegNotStopped(session_id) from None
            raise ApiError(503, "carrier_unavailable", "Daily did not take a step of the warm transfer (the "
                           "dispatcher's log says which): the call to the person is ended and the caller is still "
                           "with the bot; try again", retry_after=1.0) from None
        except StoreUnavailable:  # the leg could not be marked the call's before the bridge: given up
            log.warning("daily dial-in %s: warm transfer given up: the store did not answer before the bridge",
                        session_id)
            stopped = await self._undo(session_id, caller, dial)
            self._tell(session_id, {"event": "failed", "reason": "store_unavailable"})
            if not stopped:
                raise LegNotStopped(session_id) from None
            raise ApiError(503, "store_unavailable", "the replicas' store did not answer before the bridge: the "
                           "call to the person is ended and the caller is still with the bot; try again",
                           retry_after=1.0) from None
        except BaseException:  # cancelled (a replica stopping): nobody is left to join the person
            await asyncio.shield(self._undo(session_id, caller, dial))
            raise

    async def _consult(self, session_id: str, caller: str, dial: str, user: str, target: TransferTarget,
                       wait_until: float) -> str:
        loop = asyncio.get_running_loop()
        ring_until = min(loop.time() + self._ring, wait_until)
        while (heard := await self._heard(dial)) != ANSWERED:
            present = await self._present(session_id)
            await self._caller_stays(session_id, caller, dial, present)
            if heard is not None or loop.time() >= ring_until:  # the leg ended unanswered, or rang too long
                if not await self._undo(session_id, caller, dial):
                    raise LegNotStopped(session_id)
                raise ApiError(409, "person_unanswered", "the person did not answer (or their line was busy); "
                               "their call is ended and the caller is still with the bot")
            await asyncio.sleep(self._poll)
        present = await self._present(session_id)
        bot_user = self._rooms.bot_user_id(session_id)
        bot = next((str(entry["id"]) for entry in present if entry.get("userId") == bot_user), None)
        only_bot = {"canReceive": {"base": False, "byUserId": {bot_user: True}}}
        await self._permit(session_id, {dial: only_bot, caller: only_bot})
        # The bridge's own request is held back from the deadline: past it the bot has stopped waiting and told
        # the caller the transfer failed, so nothing may be asked of Daily then.
        last_ask = wait_until - CALL_SECONDS
        await self._brief(session_id, caller, dial, target, min(loop.time() + BRIEF_SECONDS, last_ask))
        if loop.time() > last_ask:
            raise TimeoutError  # a slow read of the room ate the bridge's time: given up, the leg stopped
        await self._legs.bridge(user)  # before the bridge: a late or repeated webhook never stops the call's leg
        everyone_but_bot = {"canReceive": {"base": True, "byUserId": {bot_user: False}}}
        await self._permit(session_id, {dial: everyone_but_bot, caller: everyone_but_bot,
                                        **({bot: {"canSend": False, "canReceive": {"base": False}}} if bot else {})})
        log.info("daily dial-in %s: warm transfer: the caller and the person are bridged", session_id)
        self._background(self._watch_bridge(session_id, caller, dial))
        return dial

    async def _watch_bridge(self, session_id: str, caller: str, dial: str) -> None:
        """Bridged, as a conference that ends when either leaves (Twilio's `endConferenceOnExit`): the person
        gone, the caller's leg is ejected (their call ends, and the bot ends with its caller); the caller gone
        (or the room), the watch ends, and the room's deletion ends the person's leg."""
        failures = 0
        while failures < WATCH_FAILURES:
            await asyncio.sleep(self._watch)
            try:
                async with asyncio.timeout(CALL_SECONDS):
                    present = await self._rooms.presence(session_id)
            except (DailyError, TimeoutError) as exc:
                failures += 1
                log.warning("daily dial-in %s: reading the bridged room failed: %s", session_id, exc)
                continue
            if present is None or not any(entry.get("id") == caller for entry in present):
                return
            if any(entry.get("id") == dial for entry in present):
                failures = 0
                continue
            try:
                async with asyncio.timeout(CALL_SECONDS):
                    await self._rooms.eject(session_id, caller)
                log.info("daily dial-in %s: the person hung up after the bridge: the caller's leg ended", session_id)
                return
            except (DailyError, TimeoutError) as exc:
                failures += 1
                log.warning("daily dial-in %s: ending the caller's leg after the person's failed: %s", session_id,
                            exc)
        log.warning("daily dial-in %s: the bridged room went unwatched after %d failed requests: the caller may "
                    "stay on a silent line until they hang up", session_id, WATCH_FAILURES)

    async def _brief(self, session_id: str, caller: str, dial: str, target: TransferTarget, until: float) -> None:
        """The bot says its briefing (bridged after it, or once its time is up); the room is read meanwhile."""
        step = {"event": "brief", "to": target.to, **({"summary": target.summary} if target.summary else {})}
        saying = asyncio.ensure_future(self._ask(session_id, step, BRIEF_SECONDS))
        loop = asyncio.get_running_loop()
        try:
            while not saying.done() and loop.time() < until:
                await asyncio.wait({saying}, timeout=self._poll)
                present = await self._present(session_id)
                await self._caller_stays(session_id, caller, dial, present)
                if await self._ended(dial) or present and not any(entry.get("id") == dial for entry in present):
                    saying.cancel()
                    await self._ask(session_id, {"event": "stop"}, STOP_SECONDS)  # quiet before the caller
                    await self._undo(session_id, caller, dial)
                    raise ApiError(409, "person_left", "the person hung up during the briefing; the caller is "
                                   "still with the bot")
        finally:
            saying.cancel()

    async def _ask(self, session_id: str, step: Mapping[str, str], seconds: float) -> None:
        """The bot asked to say its line for `step`; its answer (`spoken`, `stopped`) changes nothing here."""
        try:
            await self._ask_bot(session_id, METHOD_WARM_TRANSFER, step, seconds)
        except (ApiError, TimeoutError) as exc:
            log.warning("daily dial-in %s: the bot was not told the warm transfer's %s: %s", session_id,
                        step["event"], exc)

    def _tell(self, session_id: str, step: Mapping[str, str]) -> None:
        self._background(self._ask(session_id, step, FAILED_SECONDS))

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._telling.add(task)
        task.add_done_callback(self._telling.discard)

    async def _caller_stays(self, session_id: str, caller: str, dial: str, present: list[dict[str, Any]]) -> None:
        """A read of the room without the caller (an empty read is a failed one): the person's leg stopped."""
        if present and not any(entry.get("id") == caller for entry in present):
            log.info("daily dial-in %s: the caller left during the warm transfer: stopping the call to the "
                     "person", session_id)
            await self._stop(session_id, dial)
            raise ApiError(409, "call_over", "the caller hung up while the person was being called; the call "
                           "to the person is ended")

    async def _heard(self, dial: str) -> str | None:
        """What Daily's webhooks said of the leg so far: ANSWERED, ENDED, or None (nothing yet, or the store did
        not answer: asked again at the next poll)."""
        try:
            if await self._legs.answered(dial):
                return ANSWERED
            return ENDED if await self._legs.ended(dial) is not None else None
        except StoreUnavailable:
            log.warning("daily dial-in: the store did not answer while the person's leg (%s) rings", dial)
            return None

    async def _ended(self, dial: str) -> bool:
        """Whether Daily's webhook said the leg ended (the store not answering: not yet)."""
        try:
            return await self._legs.ended(dial) is not None
        except StoreUnavailable:
            return False

    async def _present(self, session_id: str) -> list[dict[str, Any]]:
        """The room's participants; none when the read failed (read again at the next poll)."""
        try:
            async with asyncio.timeout(CALL_SECONDS):
                return await self._rooms.presence(session_id) or []
        except (DailyError, TimeoutError) as exc:
            log.warning("daily dial-in %s: reading the room during a warm transfer failed: %s", session_id, exc)
            return []

    async def _permit(self, session_id: str, updates: Mapping[str, Mapping[str, Any]]) -> None:
        async with asyncio.timeout(CALL_SECONDS):
            await self._rooms.update_permissions(session_id, updates)

    async def _undo(self, session_id: str, caller: str, dial: str) -> bool:
        """The person's leg stopped and the caller hearing the room (the bot) again, whatever failed; False: the
        stop failed (the person's phone may still ring)."""
        stopped = await self._stop(session_id, dial)
        with contextlib.suppress(DailyError, TimeoutError):
            await self._permit(session_id, {caller: {"canReceive": {"base": True}}})
        return stopped

    async def _stop(self, session_id: str, dial: str) -> bool:
        """The person's leg ended (or gone already); False when Daily did not take the stop."""
        try:
            async with asyncio.timeout(CALL_SECONDS):
                await self._rooms.dial_out_stop(session_id, dial)
        except (DailyError, TimeoutError) as exc:
            log.warning("daily dial-in %s: stopping the call to the person (%s) failed: %s", session_id, dial, exc)
            return False
        return True

    async def _lost_start(self, session_id: str, user: str) -> None:
        """A start whose answer never came: nobody waits on its leg (its webhooks have it stopped where they land),
        and the leg it placed, if it joins the room soon, is stopped here by its id."""
        await self._legs.done(user)
        loop = asyncio.get_running_loop()
        until = loop.time() + self._found
        while loop.time() < until:
            found = [str(entry["id"]) for entry in await self._present(session_id) if entry.get("userId") == user]
            if found:
                await self._stop(session_id, found[0])
                return
            await asyncio.sleep(self._poll)
        log.warning("daily dial-in %s: a dial-out Daily did not answer may still ring the person", session_id)


class LegNotStopped(ApiError):
    """The person's leg may still ring (Daily did not take its stop): the transfer's claim is kept, so that a
    retry never rings a second phone, and the answer says the outcome is unknown."""

    def __init__(self, session_id: str) -> None:
        log.warning("daily dial-in %s: the call to the person could not be stopped: it may still ring", session_id)
        super().__init__(504, "transfer_outcome_unknown", "the caller is still with the bot, but Daily did not stop "
                         "the call to the person, which may still ring: a new transfer of this call is refused "
                         "(Daily's dashboard shows the dial-out)", extra={"outcome": "unknown"})


class CallerIdRefused(ApiError):
    """Daily refused a call to the person that named DAILY_DIALOUT_CALLER_ID as its caller id (400): nobody rings.
    Daily does not document its words for an id that is none of the domain's numbers, so the answer names the
    caller id as one possible cause and Daily's own words stay in the log, as for any refusal. `how`: the request
    refused, a warm transfer's dial-out or a cold one's `sipCallTransfer`."""

    def __init__(self, session_id: str, refused: DailyRefused, how: str = "dial-out") -> None:
        log.warning("daily dial-in %s: Daily refused the %s to the person with DAILY_DIALOUT_CALLER_ID as its "
                    "caller id: %s", session_id, how, refused)
        said = f"Daily answered {refused.status}" + (f" {refused.kind}" if refused.kind else "")
        super().__init__(502, "carrier_refused", f"Daily refused the call to the person ({said}; the dispatcher's "
                         "log has Daily's message): nobody was called and the caller is still with the bot. The "
                         "call was to show DAILY_DIALOUT_CALLER_ID: if Daily's message names the caller id, it must "
                         "be the `id` of a number the Daily domain bought, as `GET /purchased-phone-numbers` lists "
                         f"it; else the {how} itself was refused")
