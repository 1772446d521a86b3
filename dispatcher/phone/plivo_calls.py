"""Plivo's Call resource, a live call handed to a person (https://www.plivo.com/docs/voice/api/call/):
Plivo's "Transfer a call" points the call at a URL whose Plivo XML it fetches and runs, so the `<Dial>`
is not sent in the request, as Twilio's is: the dispatcher hands Plivo a one-time `aleg_url` of its own
(dispatcher/phone/plivo_transfer_url.py) and answers Plivo's signed fetch of it with the XML.

    POST {PLIVO_API_URL}/v1/Account/{auth_id}/Call/{call_uuid}/               JSON: legs=aleg, aleg_url, aleg_method
    GET  {PLIVO_API_URL}/v1/Account/{auth_id}/Call/{call_uuid}/?status=live   the call, while it is live

HTTP Basic with the Auth ID and Auth Token. A transfer is answered 202 `{"message", "api_id"}`, a live
call `{"call_status", "call_uuid", …}`; errors `{"api_id", "error"}` with no code of their own, and
404 for a call that is not live (over, or never this account's): the call is over. Retries, pacing and
the unanswered update read back are Twilio's (dispatcher/phone/twilio_calls.py `CallsResource`), but
Plivo fetches the URL after its 202, maybe late: the read back claims the ticket first (`killed_unfetched`).
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from typing import Any

from dispatcher.outbound.retry import Backoff
from dispatcher.phone.plivo_numbers import from_plivo
from dispatcher.phone.plivo_transfer_url import TICKET_SECONDS, claim_key, dead_key, ticket_mac, transfer_url
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.phone.twilio_calls import TIMEOUT_SECONDS, UPDATE_BACKOFF, CallsResource, TwilioRefused
from dispatcher.store.coordination import OneTimeUse

PLIVO_API_URL = "https://api.plivo.com"
CALL_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class PlivoCalls(CallsResource):
    carrier = "Plivo"

    def __init__(self, auth_id: str, auth_token: str, public_url: str | None, token_key: bytes,
                 base_url: str = PLIVO_API_URL, *, timeout: float = TIMEOUT_SECONDS,
                 backoff: Backoff = UPDATE_BACKOFF, claims: OneTimeUse | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(base_url, timeout=timeout, backoff=backoff)
        self._auth_id, self._auth_token = auth_id, auth_token
        self._public_url, self._token_key = public_url, token_key
        self._claims = claims  # the tickets' once-only records, the transfer route's (webhooks.py)
        # A call's UUID → its last ticket's key and when it was minted, while a transfer Plivo did not answer may
        # still need it dead (read back, given up); an answered one's goes at once, any past its records' life too.
        self._tickets: dict[str, tuple[str, float]] = {}
        self._clock = clock

    def _path(self, call_sid: str) -> str:
        if not CALL_UUID.fullmatch(call_sid):  # it names a URL path: nothing but a call's UUID goes there
            raise ValueError("not a Plivo call UUID")
        return f"/v1/Account/{self._auth_id}/Call/{call_sid}/"

    def _read_path(self, call_sid: str) -> str:
        return self._path(call_sid) + "?status=live"

    def _auth(self) -> dict[str, str]:
        pair = f"{self._auth_id}:{self._auth_token}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}

    def _error_of(self, error: dict[str, Any]) -> tuple[int | None, str]:
        return None, str(error.get("error") or "")

    def is_gone(self, exc: TwilioRefused) -> bool:
        """Plivo's errors carry no code: its 404 is the call not live (Basic auth names the account, so a
        wrong Auth ID is a 401, not a 404)."""
        return exc.status == 404

    def missing_setting(self) -> str | None:
        if self._public_url is None:
            return ("set PHONE_PUBLIC_URL (or this region's URL in REGIONS): Plivo fetches the transferred "
                    "call's XML from the dispatcher there")
        return None

    async def transfer(self, call_sid: str, target: TransferTarget, time_limit: int, session_id: str) -> dict[str, Any]:
        """Plivo told to fetch the call's new XML from a one-time URL of this dispatcher's; its answer,
        `status` being its message (`call transferred`)."""
        return await self._point(call_sid, transfer_url(self._token_key, session_id, call_sid, target, time_limit))

    async def update(self, call_sid: str, twiml: str | None = None, *, status: str | None = None,
                     session_id: str = "", transfer: str | None = None) -> dict[str, Any]:
        """The call pointed at `twiml` (Plivo XML: a warm transfer's conference, `transfer` naming it, so that a
        fetch after its person left joins no empty room) through a one-time URL, as a transfer's `<Dial>` is;
        or, with `status`, hung up: Plivo's DELETE ends an ongoing call and cancels a
        queued one, 204 (https://www.plivo.com/docs/voice/detailed-reference/api/call/hangup-a-call/; a 404 is a
        call already over). Without a call UUID that DELETE would end every call of the account: `_path` takes
        nothing but one."""
        if status is not None:
            try:
                await self._send(self._path(call_sid), b"", "application/json", "DELETE")
            except TwilioRefused as exc:
                if not self.is_gone(exc):
                    raise
            return {"status": "completed"}
        assert twiml is not None
        return await self._point(call_sid, transfer_url(self._token_key, session_id, call_sid, None, 0, twiml,
                                                        transfer))

    async def create(self, document: dict[str, Any]) -> dict[str, Any]:
        """A new outbound call (https://www.plivo.com/docs/voice/api/call/make-a-call): 201 `{"message": "call
        fired", "request_uuid", "api_id"}`, which names no call: its callbacks' `CallUUID` does."""
        return await self._post_json(f"/v1/Account/{self._auth_id}/Call/", document)

    async def _point(self, call_sid: str, path: str) -> dict[str, Any]:
        """Plivo's "Transfer a call" of the A leg to the dispatcher's one-time `path`."""
        assert self._public_url is not None
        self._forget_spent()
        self._tickets[call_sid] = (ticket_mac(path), self._clock())
        url = self._public_url + path
        answer = await self._post_json(self._path(call_sid), {"legs": "aleg", "aleg_url": url, "aleg_method": "POST"})
        self._tickets.pop(call_sid, None)  # answered: the transfer is done, never given up or read back
        return {**answer, "status": str(answer.get("message") or "transferred")}

    def _forget_spent(self) -> None:
        """Tickets past their claims' records (an outcome never learnt, a request cancelled): nothing can kill
        them any more, and they would otherwise stay for the replica's life."""
        oldest = self._clock() - TICKET_SECONDS * 2
        for call_sid, (_, minted) in list(self._tickets.items()):
            if minted < oldest:
                del self._tickets[call_sid]

    async def killed_unfetched(self, call_sid: str) -> bool | None:
        """The ticket's record claimed before Plivo's fetch did: won, the ticket is dead (True); lost, Plivo
        fetched the `<Dial>` (False). `StoreUnavailable` when the store cannot say."""
        ticket = self._tickets.pop(call_sid, None)
        if ticket is None or self._claims is None:
            return None
        mac = ticket[0]
        if not await self._claims.first_use(claim_key(mac), TICKET_SECONDS * 2):
            return False
        await self._claims.first_use(dead_key(mac), TICKET_SECONDS * 2)
        return True

    async def fetch(self, call_sid: str) -> dict[str, Any]:
        """The live call, `status` its `call_status`, its `to`/`from` in E.164 (Plivo may write them without the
        `+`); `TwilioRefused` 404 once it is not live."""
        live = await super().fetch(call_sid)
        numbers = {name: from_plivo(live[name]) for name in ("to", "from") if isinstance(live.get(name), str)}
        return {**live, **numbers, "status": str(live.get("call_status") or "unknown")}
