"""A WhatsApp call's life at the dispatcher, from Meta's webhook events:

- `connect` (the caller's SDP offer): a session on the SmallWebRTC transport, owned by the number's API
  key and pinned to its release, its bot handed the offer as any offer reaches a bot
  (dispatcher/sessions/session_signal.py); the bot's answer goes to Meta (`pre_accept`, then `accept`).
  A call whose bot could not start or answer is rejected, so the caller is not left ringing.
- `terminate` (the caller hung up, or Meta ended the call): the session is stopped.
- The session ends first (the bot hung up, a stop, its time limit): the call is terminated at Meta.

Meta retries a webhook it got no 200 for, so each event is taken once across every replica (the store's
one-time record, as carriers' webhooks are); the session's id is derived from the call's id, so a
retried connect that got past it still finds the same session. The webhook is answered at once and the
call handled in the background: a cold bot takes longer than Meta waits for a webhook's answer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from dispatcher.channel.bots import BotChannels
from dispatcher.channel.signalling import Remote
from dispatcher.errors import ApiError
from dispatcher.observability.whatsapp_call import ANSWER, CALL, EVENT
from dispatcher.sessions.ids import Caller
from dispatcher.sessions.service import SessionService
from dispatcher.sessions.session_signal import signal_session
from dispatcher.whatsapp.answer_sdp import for_whatsapp
from dispatcher.whatsapp.events import CallEvent
from dispatcher.whatsapp.graph import GraphCalls, GraphRefused
from dispatcher.whatsapp.settings import NumberRoute, WhatsAppSettings

log = logging.getLogger("dispatcher.whatsapp")

# Meta retries an unanswered webhook for days: an event is taken once within this.
ONCE_SECONDS = 8 * 86_400.0
# A session's end, as its timeline tells it at this replica, hangs its call up.
SESSION_ENDS = frozenset({"ended", "machine_ended", "stop_requested", "failed"})
ANSWERS: tuple[Literal["pre_accept", "accept"], ...] = ("pre_accept", "accept")  # in Meta's order
MAX_TASKS = 1_000  # calls being answered or hung up at once, past which an event is logged and dropped


@dataclass
class LiveCall:
    call_id: str
    route: NumberRoute
    session_id: str
    caller: Caller
    answered: bool = False  # Meta took the bot's answer: the call is up
    over: bool = False  # hung up on either side (or refused): nothing more is sent to Meta for it


class WhatsAppCalls:
    def __init__(self, settings: WhatsAppSettings, sessions: SessionService, channels: BotChannels, remote: Remote,
                 once: Any, caller_for: Callable[[str | None], Caller], *, start_wait_seconds: float,
                 graph: GraphCalls | None = None) -> None:
        self.settings = settings
        self._sessions, self._channels, self._remote = sessions, channels, remote
        self._once = once  # OneTimeUse: the store's with several replicas
        self._caller_for = caller_for
        self._start_wait = start_wait_seconds
        self.graph = graph or GraphCalls(settings.graph_url, settings.access_token)
        self._live: dict[str, LiveCall] = {}  # by Meta's call id, while this replica handles the call
        self._by_session: dict[str, LiveCall] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        sessions.timeline.listeners.append(self._timeline_event)

    async def take(self, events: list[CallEvent]) -> int:
        """Starts handling each new event (a duplicate delivery is skipped); how many were new.
        Raises `StoreUnavailable` when the store cannot say whether an event was seen: Meta retries."""
        taken = 0
        for event in events:
            route = self.settings.numbers.get(event.phone_number_id)
            if route is None:
                log.warning("whatsapp: a %s for phone number %s, which WHATSAPP_NUMBERS does not name: skipped",
                            event.event, event.phone_number_id)
                continue
            if not await self._once.first_use(f"whatsapp:{event.call_id}:{event.event}", ONCE_SECONDS):
                log.info("whatsapp: call %s: %s delivered again, skipped", event.call_id, event.event)
                continue
            taken += 1
            self._spawn(self._connect(event, route) if event.event == "connect" else self._terminate(event, route))
        return taken

    def _call(self, event: CallEvent, route: NumberRoute) -> LiveCall:
        caller = self._caller_for(route.key)
        session_id = self._sessions.session_id_for(caller.owner_key, session_key(event.call_id))
        return LiveCall(event.call_id, route, session_id, caller)

    async def _connect(self, event: CallEvent, route: NumberRoute) -> None:
        call = self._call(event, route)
        self._live[call.call_id] = self._by_session[call.session_id] = call
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
            deadline = time.monotonic() + self._start_wait
            answer = await signal_session(self._sessions, self._channels, self._remote, call.session_id, "offer",
                                          {"sdp": event.offer, "type": "offer"}, deadline=deadline)
            sdp = for_whatsapp(str(answer.get("sdp") or ""))
            for action in ANSWERS:
                if call.over:  # the caller hung up meanwhile: a stop before the launch found nothing to stop
                    await self._stop(call)
                    return
                await self.graph.answer(route.phone_number_id, call.call_id, action, sdp)
            call.answered = True
            timeline.note(call.session_id, ANSWER, action="accept", session_created=session.created)
            log.info("whatsapp: call %s answered by session %s", call.call_id, call.session_id)
        except (ApiError, GraphRefused, ValueError) as exc:
            await self._refuse(call, exc)

    async def _refuse(self, call: LiveCall, why: Exception) -> None:
        """The call could not be answered: its session stopped, the call rejected (unless it is over)."""
        reason = why.code if isinstance(why, ApiError) else type(why).__name__
        log.warning("whatsapp: call %s not answered (%s): %s", call.call_id, reason, why)
        over, call.over = call.over, True
        await self._stop(call)
        fields: dict[str, Any] = {"reason": reason, "detail": str(why)[:300]}
        if not over:
            try:
                await self.graph.end(call.route.phone_number_id, call.call_id, "reject")
                fields["action"] = "reject"
            except GraphRefused as exc:
                log.warning("whatsapp: call %s could not be rejected: %s", call.call_id, exc)
                fields["action"], fields["refused"] = "reject", str(exc)[:300]
        self._sessions.timeline.note(call.session_id, ANSWER, **fields)
        self._forget(call)

    async def _terminate(self, event: CallEvent, route: NumberRoute) -> None:
        """Meta ended the call: its session is stopped, at whichever replica this webhook reached."""
        call = self._live.get(event.call_id) or self._call(event, route)
        call.over = True
        self._sessions.timeline.note(call.session_id, EVENT, **event.shown())
        await self._stop(call)
        self._forget(call)

    async def _stop(self, call: LiveCall) -> None:
        try:
            await self._sessions.stop(call.session_id, caller=call.caller.id)
        except ApiError as exc:
            log.warning("whatsapp: call %s: its session %s not stopped: %s", call.call_id, call.session_id, exc)

    def _timeline_event(self, session_id: str, record: dict[str, Any]) -> None:
        """A listener: the session of an answered call ended first, so the call is hung up at Meta."""
        if record.get("event") not in SESSION_ENDS:
            return
        call = self._by_session.get(session_id)
        if call is None or call.over or not call.answered:
            return  # not ours, already over, or still being answered (its failure rejects it)
        call.over = True
        self._forget(call)
        self._spawn(self._hang_up(call))

    async def _hang_up(self, call: LiveCall) -> None:
        fields: dict[str, Any] = {"action": "terminate", "reason": "session_ended"}
        try:
            await self.graph.end(call.route.phone_number_id, call.call_id, "terminate")
        except GraphRefused as exc:
            log.warning("whatsapp: call %s not terminated: %s", call.call_id, exc)
            fields["refused"] = str(exc)[:300]
        self._sessions.timeline.note(call.session_id, ANSWER, **fields)

    def _forget(self, call: LiveCall) -> None:
        self._live.pop(call.call_id, None)
        self._by_session.pop(call.session_id, None)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        if len(self._tasks) >= MAX_TASKS:
            log.warning("whatsapp: %d calls being handled at once: an event dropped", MAX_TASKS)
            work.close()
            return
        try:
            task = asyncio.get_running_loop().create_task(self._logged(work))
        except RuntimeError:  # no loop (a synchronous caller at shutdown): nothing to send it with
            work.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _logged(work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception:  # a call's handling never takes the dispatcher down; its cause is logged
            log.exception("whatsapp: a call event failed")

    async def settled(self) -> None:
        """Waits for the events being handled (a test; a closing dispatcher)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)
        await self.graph.aclose()


def session_key(call_id: str) -> str:
    """The idempotency key of a call's session: a retried connect finds the same one."""
    return f"whatsapp:{call_id}"
