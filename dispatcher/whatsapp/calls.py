"""A WhatsApp call's life at the dispatcher, from Meta's webhook events:

- `connect` (the caller's SDP offer): a session on the SmallWebRTC transport, owned by the number's API
  key and pinned to its release, its bot handed the offer as any offer reaches a bot
  (dispatcher/sessions/session_signal.py); the bot's answer goes to Meta (`pre_accept`, then `accept`).
  A call whose bot could not start or answer, or whose number's key is no live key, is rejected, so the
  caller is not left ringing; once an `accept` may have reached Meta, it is terminated instead.
- `terminate` (the caller hung up, or Meta ended the call): the session is stopped. One that lands in a region
  that does not hold the call, and did not end it, is sent on to the others, which take it once if they hold
  it (elsewhere.py).
- The session ends first (the bot hung up, a stop, its time limit), at this replica or another: the call
  is terminated at Meta, or rejected when it ends while the call is still being answered. The call is
  recorded in the book every replica shares, and its end decided once across them (hang_ups.py).

Meta retries a webhook it got no 200 for, so each event is taken once across every replica (the store's
one-time record, as carriers' webhooks are); the session's id is derived from the call's id, so a
retried connect that got past it still finds the same session. The webhook is answered at once and the
call handled in the background: a cold bot takes longer than Meta waits for a webhook's answer. A connect
signed longer ago than a call rings is skipped (a replay after a restart, when the one-time record is
gone), and an event that finds this replica handling MAX_TASKS others is refused (`CallsBusy`: a 503,
which Meta retries) before its one-time record is spent."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol

from dispatcher.channel.bots import BotChannels
from dispatcher.channel.signalling import Remote
from dispatcher.errors import ApiError
from dispatcher.observability.whatsapp_call import ANSWER, CALL, EVENT
from dispatcher.sessions.ids import Caller
from dispatcher.sessions.service import SessionService
from dispatcher.sessions.session_signal import signal_session
from dispatcher.store.coordination import OneTimeUse
from dispatcher.store.whatsapp_book import BookedCall, MemoryWhatsAppBook, WhatsAppBook
from dispatcher.whatsapp.answer_sdp import for_whatsapp
from dispatcher.whatsapp.events import CallEvent
from dispatcher.whatsapp.graph import GraphCalls, GraphRefused
from dispatcher.whatsapp.hang_ups import HangUps
from dispatcher.whatsapp.settings import NumberRoute, WhatsAppSettings

log = logging.getLogger("dispatcher.whatsapp")

# Meta retries an unanswered webhook for days: an event is taken once within this.
ONCE_SECONDS = 8 * 86_400.0
# A caller rings for at most 60 s: a business has 30 to 60 s to pre-accept a call before Meta ends it as not
# answered (https://docs.360dialog.com/partner/messaging/calling-api/user-initiated-whatsapp-calls). A connect
# signed longer ago than that, plus 30 s for clocks that disagree, is a call already over or a replay.
CONNECT_MAX_AGE_SECONDS = 60.0 + 30.0
# A session's end, as its timeline tells it at any replica, hangs its call up.
SESSION_ENDS = frozenset({"ended", "machine_ended", "stop_requested", "failed"})
ANSWERS: tuple[Literal["pre_accept", "accept"], ...] = ("pre_accept", "accept")  # in Meta's order
CLOSE_SECONDS = 5.0  # what a closing replica waits for its calls' tasks
MAX_TASKS = 1_000  # calls being answered or hung up at once, past which a webhook is refused (503)
# Terminates being sent on to the other regions at once, apart from MAX_TASKS: a region down or slow holds
# each for its tries, and must not make this one refuse its own calls. Past it, one is dropped (logged).
MAX_RELAYS = 1_000


class Elsewhere(Protocol):
    """The other regions (elsewhere.py's `RegionsElsewhere`)."""

    async def send(self, event: CallEvent) -> None:
        """`event` sent to every other region, which takes it if it holds the call."""
        ...

    async def aclose(self) -> None:
        """Its connections closed, once nothing is being sent."""
        ...


class CallsBusy(Exception):
    """This replica handles MAX_TASKS calls already: the webhook is refused, for Meta to retry."""


class SessionEnded(Exception):
    """The call's session ended (a stop, its bot's exit, its time limit) while the call was being answered."""


@dataclass
class LiveCall:
    call_id: str
    route: NumberRoute
    session_id: str
    caller: Caller
    answered: bool = False  # Meta took the bot's answer: the call is up
    over: bool = False  # hung up on either side (or refused): nothing more is sent to Meta for it
    maybe_accepted: bool = False  # an `accept` may have reached Meta: ending the call takes `terminate`
    session_ended: bool = False  # its session ended while the call was being answered

    def booked(self, *, answered: bool = False) -> BookedCall:
        return BookedCall(self.call_id, self.route.phone_number_id, answered=answered)


class WhatsAppCalls:
    def __init__(self, settings: WhatsAppSettings, sessions: SessionService, channels: BotChannels, remote: Remote,
                 once: Any, caller_for: Callable[[str | None], Caller], *, start_wait_seconds: float,
                 live_key: Callable[[str | None], bool] = lambda _key: True, graph: GraphCalls | None = None,
                 book: WhatsAppBook | None = None, ends: OneTimeUse | None = None,
                 elsewhere: Elsewhere | None = None, clock: Callable[[], float] = time.time) -> None:
        """`caller_for`: a number's key's caller, by name; `live_key`: whether some key of that name still
        opens sessions (not revoked, not removed): a call to a number whose key is not is rejected.
        `book`: the calls every replica sees (the store's with several); `ends`: each call's end, decided
        once (the store's one-time record; `once` when not given); `elsewhere`: the other regions, with several."""
        self.settings = settings
        self._sessions, self._channels, self._remote = sessions, channels, remote
        self._once = once  # OneTimeUse: the store's with several replicas
        self._caller_for, self._live_key, self._clock = caller_for, live_key, clock
        self._start_wait = start_wait_seconds
        self.graph = graph or GraphCalls(settings.graph_url, settings.access_token)
        self.hang_ups = HangUps(book or MemoryWhatsAppBook(), ends or once, self.graph, sessions.timeline)
        self._live: dict[str, LiveCall] = {}  # by Meta's call id, while this replica handles the call
        self._by_session: dict[str, LiveCall] = {}
        self._elsewhere = elsewhere
        self._tasks: set[asyncio.Task[None]] = set()
        self._relays: set[asyncio.Task[None]] = set()  # events being sent on to the other regions
        self._ending: dict[asyncio.Task[None], str] = {}  # hang-up tasks, by their session
        self._closing = False
        sessions.timeline.listeners.append(self._timeline_event)

    async def take(self, events: list[CallEvent], relayed_from: str | None = None) -> int:
        """Starts handling each new event (a duplicate delivery is skipped); how many were new.
        Raises `StoreUnavailable` when the store cannot say whether an event was seen, and `CallsBusy`
        when this replica cannot take one more: Meta retries (the events taken are skipped then).
        `relayed_from`: the region that sent these on (a connect never is; they are never sent on again)."""
        taken = 0
        for event in events:
            if relayed_from is not None and event.event == "connect":
                log.warning("whatsapp: call %s: a connect relayed by region %s skipped (the region Meta sent it "
                            "to takes it)", event.call_id, relayed_from)
                continue
            route = self.settings.numbers.get(event.phone_number_id)
            if route is None:
                log.warning("whatsapp: a %s for phone number %s, which WHATSAPP_NUMBERS does not name: skipped",
                            event.event, event.phone_number_id)
                continue
            if event.event == "connect" and self._too_old(event):
                continue
            if len(self._tasks) >= MAX_TASKS:  # before its one-time record: Meta's retry must find it unspent
                raise CallsBusy(f"{MAX_TASKS} calls being handled at once")
            if not await self._once.first_use(f"whatsapp:{event.call_id}:{event.event}", ONCE_SECONDS):
                log.info("whatsapp: call %s: %s delivered again, skipped", event.call_id, event.event)
                continue
            taken += 1
            if event.event == "connect":
                self._spawn(partial(self._connect, event, route))
            else:
                self._spawn(partial(self._terminate, event, route, relayed_from))
        return taken

    def _too_old(self, event: CallEvent) -> bool:
        try:
            age = self._clock() - int(event.timestamp)
        except ValueError:
            age = float("inf")
        if age <= CONNECT_MAX_AGE_SECONDS:
            return False
        log.warning("whatsapp: call %s: a connect signed %s (%.0f s ago, longer than a call rings): skipped as over "
                    "or replayed", event.call_id, event.timestamp[:20], age)
        return True

    def _call(self, event: CallEvent, route: NumberRoute) -> LiveCall:
        caller = self.caller_of(route)
        session_id = self._sessions.session_id_for(caller.owner_key, session_key(event.call_id))
        return LiveCall(event.call_id, route, session_id, caller)

    async def _connect(self, event: CallEvent, route: NumberRoute) -> None:
        call = self._call(event, route)
        if not self._live_key(route.key):  # as a carrier's call of a removed key: nothing starts, no timeline
            log.warning("whatsapp: call %s to %s rejected: WHATSAPP_NUMBERS runs its calls as key %r, which no live "
                        "key has (revoked or removed): name a live key there", call.call_id, route.phone_number_id,
                        route.key)
            await self._end_at_meta(call, "reject")
            return
        self._live[call.call_id] = self._by_session[call.session_id] = call
        await self.hang_ups.book(call.session_id, call.call_id, route.phone_number_id)  # before its session
        timeline = self._sessions.timeline
        record: dict[str, Any] = {"call_id": call.call_id, "from": event.caller, "to": event.business,
                                  "phone_number_id": route.phone_number_id}
        body = {"whatsapp": record}  # runner_args.body for a bot(runner_args); run_bot(connection) needs none
        try:
            try:
                session = await self._sessions.start(
                    caller=call.caller, idempotency_key=session_key(call.call_id), body=body, wait=False,
                    transport="webrtc", release=route.release)
            finally:  # after the start's first event (`requested`, or its `failed`), which opens the timeline
                timeline.note(call.session_id, CALL, **record)
                timeline.note(call.session_id, EVENT, **event.shown())
            self._sessions.listing.called(call.session_id, {"call_id": call.call_id, "from": event.caller})
            sdp = await self.bot_answer(call.session_id, str(event.offer or ""))
            for action in ANSWERS:
                if call.over:  # the caller hung up meanwhile: a stop before the launch found nothing to stop
                    await self._stop(call)
                    return
                if call.session_ended:
                    raise SessionEnded(f"session {call.session_id} ended before {action}")
                await self._answer(call, action, sdp)
        except (ApiError, GraphRefused, SessionEnded, ValueError) as exc:
            await self._refuse(call, exc)
            return
        call.answered = True
        self._forget(call)  # the book holds it from now on: its session's end, seen anywhere, hangs it up
        timeline.note(call.session_id, ANSWER, action="accept", session_created=session.created)
        # Marked answered in the step that reads whether its session ended meanwhile, at any replica.
        booked = await self.hang_ups.mark(call.session_id, "answered")
        if not call.over and (call.session_ended or (booked is not None and booked.ended)):
            await self.hang_ups.hang_up(call.session_id, booked or call.booked(answered=True))
            return
        log.info("whatsapp: call %s answered by session %s", call.call_id, call.session_id)

    @property
    def sessions(self) -> SessionService:
        return self._sessions

    def caller_of(self, route: NumberRoute) -> Caller:
        """Who a number's calls run as: the caller of its key."""
        return self._caller_for(route.key)

    async def bot_answer(self, session_id: str, offer: str) -> str:
        """The session's bot's SDP answer to `offer`, as Meta takes it (answer_sdp.py): a cold bot is waited
        for up to the start's wait. ApiError as signalling refuses; ValueError when Meta would refuse it."""
        deadline = time.monotonic() + self._start_wait
        answer = await signal_session(self._sessions, self._channels, self._remote, session_id, "offer",
                                      {"sdp": offer, "type": "offer"}, deadline=deadline)
        return for_whatsapp(str(answer.get("sdp") or ""))

    async def _answer(self, call: LiveCall, action: Literal["pre_accept", "accept"], sdp: str) -> None:
        """One answer to Meta. One that may have been done (a 5xx, no answer) is never sent again blindly:
        after a `pre_accept`, the `accept` follows (Meta takes it from a ringing call too); an `accept` is
        sent once more, and its refusal means the first one landed (the call is accepted already)."""
        number = call.route.phone_number_id
        if action == "accept":
            call.maybe_accepted = True
            # Before it is sent: this replica may die while Meta takes it, and an end seen elsewhere
            # must then still hang the call up (hang_ups.py, session_ended).
            await self.hang_ups.mark(call.session_id, "accepting")
        try:
            await self.graph.answer(number, call.call_id, action, sdp)
        except GraphRefused as exc:
            if not exc.maybe_done:
                call.maybe_accepted = False  # Meta refused it: it did not accept the call
                raise
            log.warning("whatsapp: call %s: %s may have been done (%s): going on", call.call_id, action, exc)
            if action == "pre_accept":
                return
            try:
                await self.graph.answer(number, call.call_id, "accept", sdp)
            except GraphRefused as again:
                if again.maybe_done:
                    raise
                log.info("whatsapp: call %s: accept refused after one that may have landed (%s): it had",
                         call.call_id, again)

    async def _refuse(self, call: LiveCall, why: Exception) -> None:
        """The call could not be answered: its session stopped, the call rejected (terminated when an
        `accept` may have reached Meta), unless it is over."""
        reason = why.code if isinstance(why, ApiError) else type(why).__name__
        log.warning("whatsapp: call %s not answered (%s): %s", call.call_id, reason, why)
        over, call.over = call.over, True
        await self._stop(call)
        fields: dict[str, Any] = {"reason": reason, "detail": str(why)[:300]}
        if not over:
            action: Literal["reject", "terminate"] = "terminate" if call.maybe_accepted else "reject"
            fields.update(action=action, refused=await self._end_at_meta(call, action))
        self._sessions.timeline.note(call.session_id, ANSWER, **fields)
        self._forget(call)

    async def _terminate(self, event: CallEvent, route: NumberRoute, relayed_from: str | None = None) -> None:
        """Meta ended the call: its session is stopped, at whichever replica this webhook reached, and
        nobody hangs it up at Meta again (its end is taken before the stop that others see). A region that
        does not hold the call sends the event on to the others (`relayed_from`: one that did so), unless
        it ended the call itself or was told its end already: Meta sends its `terminate` for every end,
        whoever ended the call, and the region that ended it has closed its record by then."""
        call = self._live.get(event.call_id) or self._call(event, route)
        held = self._elsewhere is None or event.call_id in self._live or await self.hang_ups.holds(call.session_id)
        first: bool | None = None  # whether this region took the call's end here (None: not asked yet)
        if held is not True and self._elsewhere is not None and relayed_from is None:
            first = await self.hang_ups.first_to_end(call.call_id)
            if first:  # beside this region's own handling, if any
                self._relay(self._elsewhere, event)
        if held is False and relayed_from is not None:  # another region's call: nothing of it here
            log.info("whatsapp: call %s: a %s relayed by region %s is for a call not held here", call.call_id,
                     event.event, relayed_from)
            return
        if held is False and first is False:  # ended here already: its session was ended with it
            return
        # Held, or not as far as the book says: Meta's own event still stops the session its call id gives
        # here, as a call whose record never reached the shared book (the store blinked as it was booked)
        # may run at another replica of this region (another region's session is none here: a stop finds none).
        call.over = True
        self._sessions.timeline.note(call.session_id, EVENT, **event.shown())
        if first is None:
            await self.hang_ups.first_to_end(call.call_id)
        await self._stop(call)
        await self.hang_ups.close(call.session_id)
        self._forget(call)

    async def _stop(self, call: LiveCall) -> None:
        try:
            await self._sessions.stop(call.session_id, caller=call.caller.id)
        except ApiError as exc:
            log.warning("whatsapp: call %s: its session %s not stopped: %s", call.call_id, call.session_id, exc)

    def _timeline_event(self, session_id: str, record: dict[str, Any]) -> None:
        """A listener, at every replica: a session ended. A call still being answered here is marked, for
        its answering to end it (`_connect`); the book is told, so an answered call is hung up at Meta
        wherever it was answered (hang_ups.py)."""
        if record.get("event") not in SESSION_ENDS:
            return
        call = self._by_session.get(session_id)
        if call is not None and not call.over:
            call.session_ended = True
        if not self.hang_ups.seen_end(session_id):
            self._spawn_end(session_id)

    def _spawn_end(self, session_id: str) -> None:
        """The hang-up a session's end may call for; while this replica shuts down, only owed (`aclose`)."""
        task = self._spawn(partial(self.hang_ups.owe_end if self._closing else self.hang_ups.session_ended,
                                   session_id))
        if task is not None:
            self._ending[task] = session_id
            task.add_done_callback(lambda done: self._ending.pop(done, None))

    async def _end_at_meta(self, call: LiveCall, action: Literal["reject", "terminate"]) -> str | None:
        """Rejects or terminates the call at Meta, unless its end was decided elsewhere already; Meta's
        refusal, if it refused (logged)."""
        if action == "terminate":  # owed before its end is taken, as hang_ups.hang_up: a crash between is swept
            await self.hang_ups.owe(call.session_id)
        if not await self.hang_ups.first_to_end(call.call_id):
            return "the call was over already"
        return await self.hang_ups.send(call.session_id, call.booked(), action)

    def _forget(self, call: LiveCall) -> None:
        self._live.pop(call.call_id, None)
        self._by_session.pop(call.session_id, None)

    def _relay(self, elsewhere: Elsewhere, event: CallEvent) -> None:
        """`event` sent on to the other regions, in a task of the relays' own bound (MAX_RELAYS)."""
        if len(self._relays) >= MAX_RELAYS:
            log.warning("whatsapp: call %s: its %s not sent on to the other regions: %d are being sent already "
                        "(a region slow or down holds each for its tries)", event.call_id, event.event, MAX_RELAYS)
            return
        self._spawn(partial(elsewhere.send, event), self._relays)

    def _spawn(self, work: Callable[[], Coroutine[Any, Any, None]],
               tasks: set[asyncio.Task[None]] | None = None) -> asyncio.Task[None] | None:
        """`work` called in a task of its own, kept in `tasks` (the calls' by default). Called there, not here:
        a task cancelled before it starts (at shutdown) then leaves no coroutine that was never awaited."""
        try:
            task = asyncio.get_running_loop().create_task(self._logged(work))
        except RuntimeError:  # no loop (a synchronous caller at shutdown): nothing to send it with
            return None
        kept = self._tasks if tasks is None else tasks
        kept.add(task)
        task.add_done_callback(kept.discard)
        return task

    @staticmethod
    async def _logged(work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        try:
            await work()
        except Exception:  # a call's handling never takes the dispatcher down; its cause is logged
            log.exception("whatsapp: a call event failed")

    async def settled(self) -> None:
        """Waits for the events being handled and sent on (a test; a closing dispatcher)."""
        while self._tasks or self._relays:
            await asyncio.wait(self._tasks | self._relays)

    async def reconcile(self) -> None:
        """Owed hang-ups sent again until Meta answers: every replica runs it (until cancelled)."""
        await self.hang_ups.reconcile()

    async def aclose(self) -> None:
        """The calls being handled are cancelled; a session end seen from now on (its hang-up cancelled here, or
        its session stopped as the dispatcher closes) is owed in the book, for the next sweep of any replica
        (`owed_at_shutdown` waits for those)."""
        self._closing = True
        cut_short = [session_id for task, session_id in self._ending.items() if not task.done()]
        for task in [*self._tasks, *self._relays]:
            task.cancel()
        if self._tasks or self._relays:
            await asyncio.wait(self._tasks | self._relays, timeout=CLOSE_SECONDS)
        for session_id in cut_short:
            self._spawn_end(session_id)
        await self.owed_at_shutdown()
        await self.graph.aclose()
        if self._elsewhere is not None:
            await self._elsewhere.aclose()

    async def owed_at_shutdown(self) -> None:
        """Waits (CLOSE_SECONDS at most) for the hang-ups owed as this replica shuts down: after its sessions
        were stopped too."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=CLOSE_SECONDS)


def session_key(call_id: str) -> str:
    """The idempotency key of a call's session: a retried connect finds the same one."""
    return f"whatsapp:{call_id}"
