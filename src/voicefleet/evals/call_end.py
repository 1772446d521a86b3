"""Why a call ended before its scenario did, and whose end it was, as the caller saw it and the
dispatcher recorded it. A turn under which the call ended fails with that reason, and the turns after
it are not taken. Shared by the WebRTC caller (call.py) and the phone caller (phone_call.py).

Who can end a call mid-scenario, and what each leaves:
- the bot: its session's error (a crash: `the bot's session failed: …`), or its host's end reason in
  the timeline's `ended` event (its pipeline ended, its idle timeout, its session's cap, a stop…):
  `the bot ended the call at turn N (…)`, a failure; so are its own close of its connection, which its
  host tells from its peer's (`bot_closed`: `the bot closed its connection at turn N`), and a consent
  expiry its own code made by blocking its host's event loop (`bot_blocked`: `the bot blocked its event
  loop for 31 s at turn N`, bot/connection_end.py), whether or not the caller saw the end;
- the connection, lost between them: the bot's host ended the session `connection_lost` (no answer to
  its ICE consent checks for 30 s: bot/ice_consent.py), or it saw its peer go (`peer_disconnected`)
  while the caller's connection was still up (an older host, whose consent checks gave up on a caller
  that answered 6 of them in a row later than 0.5 s): `the call's connection was lost at turn N: …`, an inconclusive
  call (lost_connection.py), never the bot's failure. The caller never gives a call up itself
  (loadtest/webrtc.py): its own lag must not end what it measures.

A turn that heard nothing over a connection gone quiet (no audio at all from the bot for `QUIET_SECONDS`,
where a live one carries its silence too) waits for the session's end, up to `QUIET_END_WAIT`, before it
is judged: a lost connection is told so ~30 s after it went quiet, and must read as lost, not as a bot
that did not answer. Audio that comes back ends the wait: the turn fails on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from voicefleet.evals.bot_blocked import BLOCKED
from voicefleet.evals.bot_latency import blocks_of
from voicefleet.evals.outcome import Target, TurnResult
from voicefleet.loadtest.session_calls import json_object, session_url, timeline_once_ended
from voicefleet.loadtest.within import within

OVER = ("ended", "failed")
# The caller saw the hang-up → the dispatcher has the session's end: the bot host reports it as the
# bot exits, and a crashed bot's error comes with that report. Generous for a loaded machine.
END_WAIT = 20.0
POLL_SECONDS = 0.5
CLOSE_WAIT = 5.0  # a bot's close reaches its caller in milliseconds; a loaded caller reads it later
# A live connection brings the bot's audio every 20 ms, silence too: this long without any, it went quiet.
QUIET_SECONDS = 2.0
# Consent expires 30 s after its last answered check (bot/ice_consent.py), and the host reports it in
# seconds: a quiet connection's end is awaited this long before its turn is judged.
QUIET_END_WAIT = 45.0
NOT_TAKEN = "not taken: the call had ended"
# The bot host's end reason (bot/lifecycle.py) for a WebRTC connection whose ICE consent expired.
CONNECTION_LOST = "connection_lost"
PEER_GONE = "peer_disconnected"  # its WebRTC peer's connection closed: the caller's close, or its own
BOT_CLOSED = "bot_closed"  # the bot's own code closed its connection (bot/connection_end.py)
BOT_BLOCKED = "bot_blocked"  # consent expired while the bot's own code blocked its host's loop
CLOSED = "the bot closed its connection"
# The bot host's other end reasons, as a reader of the report is told them (docs/bot.md).
END_WORDS = {
    "peer_disconnected": "it closed the connection",  # its own close is reported so too: it comes first
    "participant_left": "its room's participant left",
    "pipeline_finished": "its pipeline ended",
    "idle_timeout": "its pipeline's idle timeout",
    "max_duration": "the session reached its maximum duration",
    "signal": "its host was told to stop",
    "vendor_ended": "its speech-to-speech vendor ended the session",
    "channel_lost": "its host lost its channel to the dispatcher",
}


@dataclass(frozen=True)
class CallEnd:
    reason: str  # the failed turn's first problem
    lost: bool = False  # the connection was lost, not ended by the bot: the call is inconclusive


async def ended_reason(target: Target, http: httpx.AsyncClient, session_id: str | None, turn: int, *,
                       hung_up: bool, caller_end: asyncio.Event | None = None,
                       quiet: Callable[[], bool] | None = None) -> CallEnd | None:
    """A failed turn's end when the call ended under it; None when the caller saw no end and the
    session is still up (the turn failed on its own). `hung_up`: the caller saw its connection end
    (`caller_end`, set when it does: a busy caller may see a bot's close after its host reported it).
    Waits for the session's end when the caller saw the call end, or, up to `QUIET_END_WAIT`, while
    `quiet` says its connection is quiet (a turn that heard nothing)."""
    if hung_up:
        session = await _session_once_over(target, http, session_id, END_WAIT)
    elif quiet is not None and quiet():
        seen_end = caller_end.is_set if caller_end is not None else lambda: False
        session = await _session_once_over(target, http, session_id, QUIET_END_WAIT,
                                           until=lambda: not quiet() or seen_end())
        hung_up = seen_end()
    else:
        session = await _session_once_over(target, http, session_id, 0.0)
    over = session.get("status") in OVER
    if not (hung_up or over):
        return None
    if over and (error := session.get("error") or (session.get("status") == "failed" and session.get("detail"))):
        return CallEnd(f"the bot's session failed: {error}"[:500])
    ended = None
    if over and session_id is not None:  # the bot host's report is on the timeline by now
        events = await timeline_once_ended(http, target.base_url, session_id, target.headers(), 0.0)
        ended = next((e for e in events or [] if e.get("event") == "ended"), None)
    if (ended or {}).get("reason") == PEER_GONE and not hung_up and caller_end is not None:
        with contextlib.suppress(TimeoutError):  # the bot's close, still on its way to a caller behind
            await within(caller_end.wait(), CLOSE_WAIT)
        hung_up = caller_end.is_set()
    return end_of(turn, ended, hung_up=hung_up)


def end_of(turn: int, ended: dict[str, Any] | None, *, hung_up: bool) -> CallEnd:
    """The end the bot host reported (the timeline's `ended` event), in words: the connection lost, or
    the bot's end with its reason; without a report, the bot's end as the caller saw it."""
    reason, detail = (ended or {}).get("reason"), (ended or {}).get("detail")
    said = f": {detail}" if isinstance(detail, str) and detail else ""
    if reason == BOT_BLOCKED:
        longest = max((b.seconds for b in blocks_of(ended)), default=None)
        return CallEnd(f"{BLOCKED} for {longest:.0f} s at turn {turn}" if longest is not None else
                       f"{BLOCKED} at turn {turn}{said}"[:500])
    if reason == BOT_CLOSED:
        return CallEnd(f"{CLOSED} at turn {turn}")
    if reason == CONNECTION_LOST:
        return CallEnd(f"the call's connection was lost at turn {turn}, as the bot's host saw it{said}"[:500],
                       lost=True)
    if reason == PEER_GONE and not hung_up:  # the bot's close reaches the caller (DTLS close_notify): this did not
        return CallEnd(f"the call's connection was lost at turn {turn}: the bot's host saw the caller go "
                       "while the caller's connection was up", lost=True)
    if not isinstance(reason, str) or not reason:
        return CallEnd(f"the bot ended the call at turn {turn}")
    words = END_WORDS.get(reason, f"its host's end: {reason}")
    return CallEnd(f"the bot ended the call at turn {turn} ({words}{said})"[:500])


def own_end(problems: list[str]) -> bool:
    """Whether a turn's first problem is an end its bot made itself: its close, or its loop's block."""
    return bool(problems) and problems[0].startswith((CLOSED, BLOCKED))


def went_quiet(arrivals: list[float], since: float, now: float | None = None) -> bool:
    """Whether a connection whose audio frames arrived at `arrivals` (monotonic) has brought none for
    `QUIET_SECONDS`, counting from `since` (the turn's start) when none came after it."""
    now = time.monotonic() if now is None else now
    last = max(arrivals[-1] if arrivals else since, since)
    return now - last >= QUIET_SECONDS


def not_taken(said: str) -> TurnResult:
    return TurnResult(said, "", None, [NOT_TAKEN])


async def _session_once_over(target: Target, http: httpx.AsyncClient, session_id: str | None,
                             wait: float, until: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """`GET /sessions/{id}` once the session is over, or as it is after `wait` seconds or once `until`
    says so ({} unreadable)."""
    if session_id is None:
        return {}
    deadline = time.monotonic() + wait
    while True:
        try:
            response = await http.get(session_url(target.base_url, session_id), headers=target.headers())
            session = json_object(response)
        except httpx.TransportError:
            session = {}
        if session.get("status") in OVER or time.monotonic() >= deadline or until():
            return session
        await asyncio.sleep(POLL_SECONDS)
