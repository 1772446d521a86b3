"""A warm transfer of a Plivo call: the steps of a Twilio call's (twilio_warm.py), through Plivo's Call API and
Plivo XML, which takes no document in a request: every document is fetched from a URL of the dispatcher's.

1. The consult call is created (https://www.plivo.com/docs/voice/api/call/make-a-call, JSON): `from` the number
   the caller reached, `to` the person (numbers with their country code and no `+`, as its reference writes
   them, and as its callbacks send them back), `ring_timeout` the SIP edge's ring (12 s), `time_limit`, and three signed
   URLs: `ring_url` and `hangup_url` (its status callbacks: `CallStatus` ringing, then completed, busy,
   no-answer, timeout, cancel or failed) and `answer_url`, whose fetch is answered with the briefing spoken by
   Plivo's `<Speak>` (Plivo's text-to-speech voice, not the bot's), then a `<Redirect>` to the dispatcher. The
   briefing is kept in the store for that fetch (never in a URL: it may name the caller). Plivo's 201 names
   the request, not the call: the call's `CallUUID` comes with its callbacks.
2. The `<Redirect>` is answered with `<Conference>` (https://www.plivo.com/docs/voice/xml/conference), and the
   caller's call is pointed at the same room by "Transfer a call" to a one-time URL (plivo_calls.py `update`).
3. Ending the consult call is Plivo's DELETE of the call. A person still hearing the briefing when the wait
   ends is moved to the room as the caller is, by "Transfer a call" of their call to a one-time URL; that
   URL names no session, so fetched late (given up, expired) it hangs their call up, never streams it to a bot.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape, quoteattr

from dispatcher.errors import ApiError
from dispatcher.phone.plivo_calls import CALL_UUID, PlivoCalls
from dispatcher.phone.plivo_numbers import to_plivo
from dispatcher.phone.twilio_warm import ABANDONED, KEPT_SECONDS, STATUS_CALLBACK, TwilioWarm, record_key
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import FirstClaims

ANSWER_CALLBACK = "answer"  # the consult call's `answer_url` (routers/plivo_warm.py)
# Plivo's final `CallStatus` of an outbound call in Twilio's words, which the steps read (twilio_warm.py ENDED).
STATUSES = {"timeout": "no-answer", "cancel": "canceled"}


def briefing_key(transfer: str) -> str:
    return record_key(transfer, "briefing")


class PlivoWarm(TwilioWarm):
    carrier = "Plivo"
    call_id = CALL_UUID
    ringing_ends = ("completed",)  # a DELETE, whatever the call is doing (plivo_calls.py `update`)

    def __init__(self, rest: PlivoCalls, records: FirstClaims, *args: Any, **kwargs: Any) -> None:
        super().__init__(rest, records, *args, **kwargs)
        self._plivo = rest

    def consult_document(self, line: str, briefed_url: str) -> str:
        return (f'<Response><Speak>{escape(line)}</Speak><Redirect method="POST">{escape(briefed_url)}</Redirect>'
                "</Response>")

    def conference(self, transfer: str, time_limit: int | None = None) -> str:
        """Plivo's `<Conference>` is a verb of its own, not a `<Dial>` noun; no beep as either joins."""
        limit = f" timeLimit={quoteattr(str(int(time_limit)))}" if time_limit is not None else ""
        return (f'<Response><Conference startConferenceOnEnter="true" endConferenceOnExit="true" enterSound="" '
                f'exitSound=""{limit}>vf-warm-{escape(transfer)}</Conference></Response>')

    async def _create(self, caller_sid: str, form: list[tuple[str, str]], transfer: str) -> str | None:
        fields = dict(form)
        status_url = fields["StatusCallback"]
        # The answer URL is the status URL's sibling: the same signed segment, another kind.
        answer_url = status_url.removesuffix(STATUS_CALLBACK) + ANSWER_CALLBACK
        try:
            await self._records.first(briefing_key(transfer), fields["Twiml"], KEPT_SECONDS)
        except StoreUnavailable:
            raise ApiError(503, "store_unavailable", "the store did not keep the briefing, so nobody was called and "
                           "the caller is still with the bot: try again", retry_after=1.0) from None
        await self._plivo.create({  # numbers as Plivo's reference writes them: country code, no `+`
            "from": to_plivo(fields["From"]), "to": to_plivo(fields["To"]),
            "answer_url": answer_url, "answer_method": "POST",
            "ring_url": status_url, "ring_method": "POST", "hangup_url": status_url, "hangup_method": "POST",
            "ring_timeout": int(fields["Timeout"]), "time_limit": int(fields["TimeLimit"])})
        return None

    async def person_left(self, transfer: str) -> bool:
        """Whether the transfer's call to the person is over (its hangup_url said so): the room the caller would
        join ended with them (`endConferenceOnExit`). `StoreUnavailable` when the store cannot say."""
        return await self._records.held(record_key(transfer, "ended")) is not None

    async def briefing(self, transfer: str, sid: str) -> str | None:
        """The answer of call `sid`: its briefing and `<Redirect>` while it is the transfer's own call (the first its
        callbacks named) and the transfer was not given up; None otherwise (or gone with the transfer's records)."""
        if await self._records.held(record_key(transfer, "sid")) != sid:
            return None
        if await self._records.held(record_key(transfer, ABANDONED)) is not None:
            return None
        return await self._records.held(briefing_key(transfer))

    async def briefing_again(self, transfer: str, sid: str) -> str | None:
        """A copy of the answer fetch's answer: the briefing only while it can still be Plivo's retry of a fetch
        whose answer it lost, the call answered, not over, and nothing decided (its `<Redirect>` has not come);
        None otherwise: after that, only a captured request is replayed, and the briefing may name the caller."""
        if await self._records.held(record_key(transfer, "answered")) is None:
            return None
        if await self._records.held(record_key(transfer, "ended")) is not None:
            return None
        if await self._records.held(record_key(transfer, "outcome")) is not None:
            return None
        return await self.briefing(transfer, sid)
