"""An Exotel call handed to a person, cold, the way Exotel documents it: the flow's Voicebot applet is
followed by a Connect applet whose "Dial whom" is the dispatcher's URL (dispatcher/phone/exotel_connect.py).
Exotel has no API that redirects a live call, so the transfer is three steps:

1. the target is recorded in the store against the call's CallSid (`exotel-transfer:`), so whichever
   replica Exotel's GET reaches can answer it; the record lives `RECORD_SECONDS`;
2. the bot's stream is closed: Exotel moves the flow on to its next applet, the Connect applet;
3. Exotel GETs the Connect URL for that CallSid, and the first GET claims the call's answer record
   (`exotel-connect:`) and is answered the number. The replica that asked waits for that claim.

If no GET comes within `FETCH_SECONDS` (the flow has no Connect applet after the Voicebot, the caller left),
the asking replica claims the answer record itself ("given up"): a GET that comes later is answered no
number, so the call never rings a person for a transfer that was answered as not made. Whoever writes the
record first decides, across replicas. Once a GET claimed it, every GET for the call while the record lives
is answered the same number: Exotel asks the applet's Fallback URL when its primary GET failed (its answer
lost or late at Exotel), and that ask must still dial the person the API said the call was handed to.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable

from dispatcher.errors import ApiError
from dispatcher.phone.transfer_target import E164, TransferTarget
from dispatcher.store.coordination import FirstClaims
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.phone")

PENDING = "exotel-transfer:"  # + the CallSid's digest: the target, for the Connect applet's GET
ANSWERED = "exotel-connect:"  # + the same: the first GET's claim, or the asker's give-up
GIVEN_UP = "given-up"
# Exotel moves on to the Connect applet as the stream closes and GETs its URL at once; a transfer's whole
# request fits in 25 s (dispatcher/phone/transfers.py), so its wait for the GET is 15 s of it.
FETCH_SECONDS = 15.0
POLL_SECONDS = 0.2
RECORD_SECONDS = 300.0  # past any wait for the GET: a record nobody answered is gone within minutes
# What Exotel documents and what is missing for a warm transfer: docs/phone.md "A warm transfer on Exotel".
WARM_MISSING = ("this is an Exotel call, and its warm transfer is not built: Exotel's Connect applet can read the "
                "person a briefing (start_call_playback), play the caller a tone while they ring (music_on_hold) "
                "and stop ringing (max_ringing_duration), but it runs only once the bot's stream has ended, so the "
                "bot that talked to the caller is gone; a caller nobody answered comes back only through a second "
                "Voicebot applet on the applet's no-answer and busy transitions, whose new stream the dispatcher "
                "does not yet join to the transfer (docs/phone.md, \"A warm transfer on Exotel\")")


def _digest(call_sid: str) -> str:
    return hashlib.sha256(call_sid.encode()).hexdigest()


class ExotelTransfers:
    def __init__(self, records: FirstClaims, *, fetch_seconds: float = FETCH_SECONDS,
                 poll_seconds: float = POLL_SECONDS) -> None:
        self._records = records
        self._fetch_seconds = fetch_seconds
        self._poll = poll_seconds

    async def hand_over(self, session_id: str, call_sid: str, target: TransferTarget, time_limit: int,
                        end_stream: Callable[[], Awaitable[None]]) -> None:
        """Records the target, ends the bot's stream and waits for Exotel's GET. Returns once Exotel was
        answered the number; raises `ApiError` when it was not (nothing rings the person later)."""
        if not E164.fullmatch(target.to):
            raise ApiError(422, "invalid_target", "an Exotel call is handed to a phone number in E.164 "
                           "(\"+919876543210\"): the flow's Connect applet dials numbers, not SIP URIs")
        key = _digest(call_sid)
        pending = json.dumps({"to": target.to, "limit": int(time_limit), "session": session_id})
        try:
            first = await self._records.first(PENDING + key, pending, RECORD_SECONDS)
        except StoreUnavailable:
            raise ApiError(503, "store_unavailable", "the replicas' store is unreachable: cannot record the "
                           "transfer for Exotel's Connect applet; nothing was transferred, try again",
                           retry_after=2.0) from None
        if first != pending:
            raise ApiError(409, "already_transferring", "a transfer of this Exotel call was already asked")
        await end_stream()  # Exotel's flow moves on to the Connect applet
        try:
            if await self._fetched(key):
                return
            if await self._records.first(ANSWERED + key, GIVEN_UP, RECORD_SECONDS) != GIVEN_UP:
                return  # Exotel's GET came as the wait ended: it was answered the number
        except StoreUnavailable:
            log.warning("phone call %s: the store did not say whether Exotel fetched the transfer", session_id)
            raise ApiError(504, "transfer_outcome_unknown", "the replicas' store did not say whether Exotel's "
                           "Connect applet fetched the number: the call may have been transferred; the bot's "
                           "stream is over either way", extra={"outcome": "unknown"}) from None
        raise ApiError(502, "connect_not_fetched", f"the bot's stream ended but Exotel did not ask the flow's "
                       f"Connect applet URL for this call within {self._fetch_seconds:.0f} s, so nobody was "
                       "dialled (and a later ask dials no one): the flow must follow the Voicebot applet with a "
                       "Connect applet whose URL is the dispatcher's (docs/phone.md); the call went on as the "
                       "flow says", extra={"outcome": "not_transferred"})

    async def _fetched(self, key: str) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._fetch_seconds
        while loop.time() < deadline:
            held = await self._records.held(ANSWERED + key)
            if held is not None:
                return held != GIVEN_UP
            await asyncio.sleep(self._poll)
        return False

    async def answer(self, call_sid: str) -> tuple[TransferTarget, int, str] | None:
        """Exotel's GET for `call_sid`: (the target, its time limit, its session) when a transfer was asked
        for the call and the asker did not give up waiting (every GET while the record lives: the Fallback
        URL's too); else None (no number: the flow's "didn't dial" branch). Raises `StoreUnavailable`."""
        key = _digest(call_sid)
        pending = await self._records.held(PENDING + key)
        if pending is None:
            return None
        mine = "fetched:" + secrets.token_hex(8)
        if await self._records.first(ANSWERED + key, mine, RECORD_SECONDS) == GIVEN_UP:
            return None  # the asker answered "not transferred": nobody rings now
        fields = json.loads(pending)
        return TransferTarget(str(fields["to"])), int(fields["limit"]), str(fields["session"])
