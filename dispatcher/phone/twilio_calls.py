"""Twilio's Calls resource (https://www.twilio.com/docs/voice/api/call-resource): a transfer updates a
live call with new TwiML and reads it back; a call placed out (dispatcher/phone/twilio_dial.py) is
created, and ended or redirected once its answering machine is detected.

    POST {API}/2010-04-01/Accounts/{AccountSid}/Calls.json             form: To, From, Twiml, …
    POST {API}/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json   form: Twiml=<Response>…
    GET  {API}/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json
    GET  {API}/2010-04-01/Accounts/{AccountSid}/Calls.json?To=…&From=…   (a lost create's call)

{API}: the account's region's host (dispatcher/phone/twilio_host.py), or TWILIO_API_URL (a test's fake). HTTP
Basic: the Account SID and its auth token, or an API key's SID and secret (revocable alone). Twilio answers the
call's JSON (`status`: `in-progress`, …) or `{"code", "message", "more_info", "status"}` (20404, 21220: call over).

An update or a create is retried on 429 alone, within `Backoff`: the carrier did nothing. A 5xx (a
gateway's 502 or 504 above all) does not prove the backend did nothing: an update resent after it would
dial the person again, and a create has no idempotency key. So any 5xx is `Unanswered`, as are a 2xx
whose body is not the API's JSON object (a proxy's page) and no answer at all, and never sent again
blind: the caller reads the call back (dispatcher/phone/transfers.py). A read is safe to repeat and is
retried on every failure.

Twilio's rate limit is the account's: a 429 holds every request of this client (every call's) until
its `Retry-After` has passed, refused unsent meanwhile, so callers retrying in a loop do not keep the
account throttled, and with it Pipecat's own hang-ups, which share that account's API concurrency.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from dispatcher.outbound.http_client import HttpClient, HttpError, HttpResponse
from dispatcher.outbound.retry import Backoff, Transient, retry_after_of, send, with_retries
from dispatcher.phone.transfer_target import TransferTarget

CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
TIMEOUT_SECONDS = 5.0  # one request; Twilio answers an update in well under a second
UPDATE_BACKOFF = Backoff(attempts=3, base=0.5, cap=4.0, deadline=15.0)
THROTTLED_SECONDS = 1.0  # how long a 429 without Retry-After holds the account's requests
PACING_SLACK_SECONDS = 0.01
POST_RETRIED = frozenset({429})  # the carrier did nothing; any other answer to a POST may have been acted on


@dataclass(frozen=True)
class TwilioCredentials:
    account_sid: str
    user: str = field(repr=False)  # the Account SID, or an API key's SID (SK…)
    secret: str = field(repr=False)  # its auth token, or the API key's secret
    # The Twilio region it was made in (`IE1`), the only one it is valid in (dispatcher/phone/twilio_host.py).
    region: str = "US1"


class TwilioRefused(Exception):
    """The carrier answered with an error: its HTTP status, its error code (20404, 21220, …) and message.
    Telnyx's Twilio-compatible resource (dispatcher/phone/telnyx_calls.py) raises it too, `carrier` saying so."""

    def __init__(self, status: int, code: int | None, message: str, retry_after: float | None = None,
                 carrier: str = "Twilio") -> None:
        super().__init__(f"{carrier} answered {status}" + (f" (error {code})" if code else "") + f": {message}")
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


class Unanswered(Exception):
    """No answer to an update (timed out, connection lost): it may or may not have been done."""


class CallsResource:
    """A Twilio-shaped Calls resource: a live call's update and read, form posts paced by the carrier's
    429s. A subclass says where a call lives (`_path`), how to sign in (`_auth`), and how its errors read."""

    carrier = "Twilio"
    document_field = "Twiml"  # the update's field for the call's new XML document
    gone_codes = frozenset({20404, 21220})  # error codes of a call that is over: no such call; not in progress

    def __init__(self, base_url: str, *, timeout: float = TIMEOUT_SECONDS, backoff: Backoff = UPDATE_BACKOFF) -> None:
        self._backoff = backoff
        self._timeout = timeout
        self._client = HttpClient(base_url, timeout=timeout, follow_redirects=False, max_answer_bytes=1 << 20)
        self._throttled_until = 0.0  # time.monotonic(): the carrier's last 429 asked for quiet until then

    def _path(self, call_sid: str) -> str:
        raise NotImplementedError

    def _read_path(self, call_sid: str) -> str:
        return self._path(call_sid)

    def is_gone(self, exc: TwilioRefused) -> bool:
        """Only the carrier's own codes for a call that is over: a bare 404 comes as well from a wrong API
        URL or another account's key, while the call goes on with its bot."""
        return exc.code in self.gone_codes

    def missing_setting(self) -> str | None:
        """What this carrier's transfers still need set, if anything."""
        return None

    async def transfer(self, call_sid: str, target: TransferTarget, time_limit: int, session_id: str) -> dict[str, Any]:
        """The call updated with `<Dial>` for `target`, as the carrier answers it (session_id: Plivo's)."""
        return await self.update(call_sid, target.twiml(self.dial_time_limit(time_limit)))

    async def killed_unfetched(self, call_sid: str) -> bool | None:
        """After an unanswered transfer: whether the carrier never took it and now never will (True), took
        it (False), or None where the carrier's call alone can say (Twilio's, Telnyx's: the stream)."""
        return None

    def dial_time_limit(self, seconds: int) -> int:
        """`<Dial timeLimit>` as this carrier takes it."""
        return seconds

    def _auth(self) -> dict[str, str]:
        raise NotImplementedError

    def _error_of(self, error: dict[str, Any]) -> tuple[int | None, str]:
        """The error code and message of an error body: Twilio's `{code, message, more_info, status}`."""
        code = error.get("code") if isinstance(error.get("code"), int) else None
        return code, str(error.get("message") or "")

    def _refused(self, status: int, code: int | None, message: str, retry_after: float | None = None) -> TwilioRefused:
        return TwilioRefused(status, code, message, retry_after=retry_after, carrier=self.carrier)

    def _paced(self) -> None:
        """`TwilioRefused` (429, unsent) while the carrier's last 429 holds."""
        wait = self._throttled_until - time.monotonic()
        if wait > PACING_SLACK_SECONDS:  # a retry that slept out the Retry-After may wake a hair early
            raise self._refused(429, None, f"not sent: {self.carrier} is throttling this account", retry_after=wait)

    def _heard(self, status: int | None, retry_after: float | None) -> None:
        if status == 429:
            until = time.monotonic() + (retry_after or THROTTLED_SECONDS)
            self._throttled_until = max(self._throttled_until, until)

    async def update(self, call_sid: str, twiml: str | None = None, *, status: str | None = None,
                     session_id: str = "", transfer: str | None = None) -> dict[str, Any]:
        """The call with `twiml` in force (or ended: `status` `completed`), as the carrier answers it;
        `TwilioRefused`, `Unanswered`. `session_id`: whose call it is, and `transfer`: the warm transfer whose
        room `twiml` joins (Plivo's one-time URL names both; Twilio runs the TwiML it is sent)."""
        form = {self.document_field: twiml} if twiml is not None else {}
        if status is not None:
            form["Status"] = status
        return await self._post(self._path(call_sid), list(form.items()))

    async def _post(self, path: str, form: list[tuple[str, str]]) -> dict[str, Any]:
        return await self._send(path, urlencode(form).encode(), "application/x-www-form-urlencoded")

    async def _post_json(self, path: str, document: dict[str, Any]) -> dict[str, Any]:
        return await self._send(path, json.dumps(document, separators=(",", ":")).encode(), "application/json")

    async def _send(self, path: str, body: bytes, content_type: str, method: str = "POST") -> dict[str, Any]:
        """A POST (or DELETE) retried only where the carrier answered 429 (it did nothing); a 5xx is `Unanswered`:
        it may have been done. A 204 is `{}`."""
        headers = {**self._auth(), "Content-Type": content_type}

        async def once() -> HttpResponse:
            self._paced()
            try:
                response = await self._client.request(method, path, content=body, headers=headers)
            except HttpError as exc:
                raise Unanswered(str(exc)) from None
            self._heard(response.status_code, retry_after_of(response.headers))
            if response.status_code in POST_RETRIED:
                raise Transient(f"{method} {path}: HTTP {response.status_code}",
                                retry_after=retry_after_of(response.headers), status=response.status_code)
            if response.status_code >= 500:  # any of them (501, 505, a CDN's 520…): none proves nothing was done
                raise Unanswered(f"{self.carrier} answered {response.status_code}: it may have been done")
            return response

        try:
            response = await with_retries(once, self._backoff)
        except Transient as exc:
            raise self._refused(exc.status or 503, None, f"{self.carrier} kept answering {exc.status}",
                                retry_after=exc.retry_after) from None
        if response.status_code == 204:
            return {}
        if 200 <= response.status_code < 300 and not isinstance(_json_of(response), dict):
            # A success that is not the API's JSON (a proxy's page): it was taken, but what it did is unknown.
            raise Unanswered(f"{self.carrier} answered {response.status_code} without its JSON: it may have been done")
        return self._answer(response)

    async def fetch(self, call_sid: str) -> dict[str, Any]:
        """The call as the carrier has it now; `TwilioRefused`, or `Unanswered` once every try went unanswered."""
        return await self._get(self._read_path(call_sid))

    async def _get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """A read (safe to repeat: retried on every failure); `TwilioRefused`, `Unanswered`."""
        self._paced()
        try:
            response = await send(self._client, "GET", path, backoff=self._backoff, headers=self._auth(),
                                  params=params)
        except Transient as exc:
            self._heard(exc.status, exc.retry_after)
            if exc.status is not None:
                raise self._refused(exc.status, None, f"{self.carrier} kept answering {exc.status}",
                                    retry_after=exc.retry_after) from None
            raise Unanswered(str(exc)) from None
        return self._answer(response)

    def _answer(self, response: HttpResponse) -> dict[str, Any]:
        data = _json_of(response)
        if 200 <= response.status_code < 300 and isinstance(data, dict):
            return data
        code, message = self._error_of(data if isinstance(data, dict) else {})
        message = (message or response.text[:200] or "no message")[:300]
        raise self._refused(response.status_code, code, message, retry_after=retry_after_of(response.headers))

    async def aclose(self) -> None:
        await self._client.aclose()


def _json_of(response: HttpResponse) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class TwilioCalls(CallsResource):
    def __init__(self, credentials: TwilioCredentials, base_url: str, *, timeout: float = TIMEOUT_SECONDS,
                 backoff: Backoff = UPDATE_BACKOFF) -> None:
        super().__init__(base_url, timeout=timeout, backoff=backoff)
        self._credentials = credentials

    def _path(self, call_sid: str) -> str:
        if not CALL_SID.fullmatch(call_sid):  # it names a URL path: nothing but a SID goes there
            raise ValueError("not a Twilio call SID")
        return f"/2010-04-01/Accounts/{self._credentials.account_sid}/Calls/{call_sid}.json"

    @property
    def region(self) -> str:
        """The region the credentials were made in, whose host this resource reaches (`US1`, `IE1`)."""
        return self._credentials.region

    def _auth(self) -> dict[str, str]:
        pair = f"{self._credentials.user}:{self._credentials.secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}

    async def create(self, form: list[tuple[str, str]]) -> dict[str, Any]:
        """A new outgoing call (`POST .../Calls.json`): the call's JSON (`sid`, `status` `queued`);
        `TwilioRefused` (nothing placed), `Unanswered` (it may have been placed)."""
        return await self._post(f"/2010-04-01/Accounts/{self._credentials.account_sid}/Calls.json", form)
