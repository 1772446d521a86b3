"""The strict Twilio fake (tests/fakes/twilio.py) with calls placed out: Calls create, its status
callbacks and answering-machine detection (https://www.twilio.com/docs/voice/api/call-resource,
https://www.twilio.com/docs/voice/answering-machine-detection).

    POST /2010-04-01/Accounts/{AccountSid}/Calls.json   form: To, From, Twiml | Url, StatusCallback, …

Strict where Twilio is: the documented create parameters only (anything else 400, 20001); `To` and
`From` required; `To` not a dialable number is 400 with error 21211, `From` not a phone number 21212,
`From` that is not one of the account's numbers 21210; `Timeout` a positive whole number (21208);
`MachineDetection` `Enable` or `DetectMessageEnd`; `AsyncAmd` `true`/`false`; `StatusCallbackEvent`
only `initiated`, `ringing`, `answered`, `completed`; the TwiML as an update's. Past `create_per_second`
creates a second (its CPS), 429 with error 20429. Every create's time is kept (`created_at`, monotonic).

The test plays the far end: `answer`, `finish` (busy, no-answer, failed, canceled, or completed after an
answer) send the status callbacks the create asked for, and `detect` the asynchronous AMD verdict
(`AnsweredBy`: with `Enable` human, machine_start, fax or unknown; with `DetectMessageEnd` human,
machine_end_beep, machine_end_silence, machine_end_other, fax or unknown), each POSTed form-encoded and
signed with `X-Twilio-Signature` as Twilio signs (HMAC-SHA1 of the URL and the sorted parameters, keyed
with the auth token: written here, not the dispatcher's code).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.twilio import MAX_TWIML_CHARS, FakeCall, FakeTwilio, error

CREATE_FIELDS = frozenset({
    "To", "From", "Url", "Method", "Twiml", "ApplicationSid", "FallbackUrl", "FallbackMethod", "StatusCallback",
    "StatusCallbackEvent", "StatusCallbackMethod", "SendDigits", "Timeout", "Record", "RecordingChannels",
    "RecordingStatusCallback", "RecordingStatusCallbackMethod", "RecordingStatusCallbackEvent", "RecordingTrack",
    "SipAuthUsername", "SipAuthPassword", "MachineDetection", "MachineDetectionTimeout",
    "MachineDetectionSpeechThreshold", "MachineDetectionSpeechEndThreshold", "MachineDetectionSilenceTimeout",
    "AsyncAmd", "AsyncAmdStatusCallback", "AsyncAmdStatusCallbackMethod", "Byoc", "CallReason", "CallToken",
    "CallerId", "Trim", "TimeLimit"})
EVENTS = ("initiated", "ringing", "answered", "completed")
ANSWERED_BY = {"Enable": ("human", "machine_start", "fax", "unknown"),
               "DetectMessageEnd": ("human", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax",
                                    "unknown")}
NOT_ANSWERED = ("busy", "no-answer", "failed", "canceled")
DIALABLE = re.compile(r"\+[1-9][0-9]{7,14}")  # what the fake's network rings: E.164, 8 to 15 digits
PHONE = re.compile(r"\+[1-9][0-9]{1,14}")
LIST_FILTERS = frozenset({"To", "From", "ParentCallSid", "Status", "StartTime", "StartTime<", "StartTime>", "EndTime",
                          "EndTime<", "EndTime>", "PageSize", "Page", "PageToken"})
# https://www.twilio.com/docs/voice/twiml/conference#attributes
CONFERENCE_ATTRIBUTES = frozenset({
    "muted", "beep", "startConferenceOnEnter", "endConferenceOnExit", "waitUrl", "waitMethod", "maxParticipants",
    "record", "region", "coach", "trim", "participantLabel", "jitterBufferSize", "statusCallbackEvent",
    "statusCallback", "statusCallbackMethod", "recordingStatusCallback", "recordingStatusCallbackMethod",
    "recordingStatusCallbackEvent", "eventCallbackUrl"})
# https://www.twilio.com/docs/voice/twiml: the voice verbs
VERBS = frozenset({"Connect", "Dial", "Enqueue", "Gather", "Hangup", "Leave", "Pause", "Play", "Record", "Redirect",
                   "Refer", "Reject", "Say", "Sms", "Start", "Stop", "Pay", "Prompt"})
BOOLEAN_ATTRIBUTES = frozenset({"muted", "startConferenceOnEnter", "endConferenceOnExit"})
STREAM_URL = re.compile(r'<Stream url="([^"]+)"')


def sign(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """Twilio's request signature: the URL, then each parameter's name and value, sorted by name."""
    signed = url + "".join(key + value for key, value in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()).decode()


@dataclass
class PlacedCall(FakeCall):
    form: list[tuple[str, str]] = field(default_factory=list)
    sequence: int = 0
    said: list[str] = field(default_factory=list)  # each `<Say>` the far end heard (`brief`)

    def one(self, name: str) -> str | None:
        return next((value for key, value in self.form if key == name), None)

    @property
    def stream_url(self) -> str:
        found = STREAM_URL.search(self.one("Twiml") or self.one("Texml") or "")  # Telnyx's TeXML: the same
        assert found is not None, self.form
        return found.group(1).replace("&amp;", "&")


class FakeTwilioCalls(FakeTwilio):
    def __init__(self, *, numbers: tuple[str, ...] = ("+14155550199",), create_per_second: float = 1.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.numbers = set(numbers)  # the account's own numbers: a call's From
        self.create_per_second = create_per_second
        self.created_at: list[float] = []  # time.monotonic() of every create Twilio took
        self.placed: list[PlacedCall] = []
        self.conferences: dict[str, set[str]] = {}  # by room name, the calls in it
        self._creates: list[float] = []
        # The next create's answer instead of its 201, the call queued all the same (a gateway that timed out;
        # a 2xx: a proxy's page, not the API's JSON).
        self.queued_but_answered: int | None = None
        self._auth_token = next(secret for user, secret in self.logins if user == self.account_sid)
        # How callbacks reach the dispatcher: over the network, or (an in-process app) its ASGI transport.
        self.deliver: Callable[[], httpx.AsyncClient] = lambda: httpx.AsyncClient(timeout=10)
        # What the far end does before the create's answer reaches the dispatcher (the network may hold an answer
        # while the call rings, is picked up and its verdict's callback is taken): run once the call is queued.
        self.before_answer: Callable[[PlacedCall], Awaitable[None]] | None = None

    def routes(self) -> list[Route]:
        return [Route("/2010-04-01/Accounts/{account}/Calls.json", self._calls, methods=["GET", "POST"]),
                *super().routes()]

    async def _calls(self, request: Request) -> Response:
        return await (self._list(request) if request.method == "GET" else self._create(request))

    async def _list(self, request: Request) -> Response:
        """Read multiple calls: filtered by `To`, `From`, `Status`, newest first, `PageSize` of them (at most 1000)."""
        if not self._authorized(request):
            return error(401, 20003, "Authenticate")
        if request.path_params["account"] != self.account_sid:
            return error(404, 20404, f"The requested resource {request.url.path} was not found")
        query = dict(request.query_params)
        unknown = set(query) - LIST_FILTERS
        if unknown:
            return error(400, 20001, f"Unknown parameters: {', '.join(sorted(unknown))}")
        size = query.get("PageSize", "50")
        if not size.isdigit() or not 1 <= int(size) <= 1000:
            return error(400, 20001, "PageSize must be between 1 and 1000")
        found = [call for call in reversed(list(self.calls_by_sid.values()))
                 if all(query.get(name) in (None, value) for name, value in
                        (("To", call.to), ("From", call.sender), ("Status", call.status)))][:int(size)]
        return JSONResponse({"calls": [self._resource(call) for call in found], "page": 0, "page_size": int(size),
                             "uri": request.url.path, "first_page_uri": request.url.path, "next_page_uri": None,
                             "previous_page_uri": None, "start": 0, "end": max(0, len(found) - 1)})

    def _over_cps(self) -> bool:
        now = time.monotonic()
        self._creates = [t for t in self._creates if now - t < 1.0]
        if len(self._creates) >= self.create_per_second:
            return True
        self._creates.append(now)
        return False

    async def _create(self, request: Request) -> Response:
        if not self._authorized(request):
            return error(401, 20003, "Authenticate")
        if request.path_params["account"] != self.account_sid:
            return error(404, 20404, f"The requested resource {request.url.path} was not found")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return error(400, 20001, "the request body must be application/x-www-form-urlencoded")
        form = parse_qsl((await request.body()).decode(), keep_blank_values=True)
        refused = _refusal(form, self.numbers)
        if refused is not None:
            return refused
        if self._over_cps():
            return error(429, 20429, "Too Many Requests")
        single = dict(form)
        number = len(self.calls_by_sid) + 1
        while f"CA{number:032x}" in self.calls_by_sid:  # a SID is never another call's (a live caller's, say)
            number += 1
        call = PlacedCall(f"CA{number:032x}", status="queued", form=form, direction="outbound-api",
                          to=single["To"], sender=single["From"])
        self.calls_by_sid[call.sid] = call
        self.placed.append(call)
        self.created_at.append(time.monotonic())
        if self.before_answer is not None:
            await self.before_answer(call)
        if self.queued_but_answered is not None:
            status, self.queued_but_answered = self.queued_but_answered, None
            return lost_answer(status) or error(status, 20500, "the call was queued; its answer was lost")
        return JSONResponse({**self._resource(call), "direction": "outbound-api", "to": call.one("To"),
                             "from": call.one("From")}, status_code=201)

    async def _callback(self, call: PlacedCall, url: str | None, params: dict[str, str]) -> httpx.Response | None:
        if not url:
            return None
        form = [("AccountSid", self.account_sid), ("CallSid", call.sid), *params.items()]
        async with self.deliver() as client:
            signature = sign(self._auth_token, url, form)
            return await client.post(url, data=dict(form), headers={"X-Twilio-Signature": signature})

    async def _status(self, call: PlacedCall, event: str, status: str) -> httpx.Response | None:
        asked = [value for key, value in call.form if key == "StatusCallbackEvent"] or ["completed"]
        call.status = status
        if event not in asked:
            return None
        call.sequence += 1
        return await self._callback(call, call.one("StatusCallback"), {
            "CallStatus": status, "CallbackSource": "call-progress-events", "From": call.one("From") or "",
            "To": call.one("To") or "", "SequenceNumber": str(call.sequence - 1), **self._status_fields()})

    def _status_fields(self) -> dict[str, str]:
        """What this carrier's status callbacks carry besides the call's status and numbers."""
        return {"Direction": "outbound-api", "ApiVersion": "2010-04-01",
                "Timestamp": time.strftime("%a, %d %b %Y %H:%M:%S +0000")}

    async def ring(self, sid: str) -> list[httpx.Response]:
        """Twilio dials and the far end rings: `initiated`, `ringing` (not answered yet)."""
        call = self._placed(sid)
        sent = [await self._status(call, "initiated", "initiated"), await self._status(call, "ringing", "ringing")]
        return [s for s in sent if s is not None]

    async def answer(self, sid: str) -> list[httpx.Response]:
        """The far end picks up: `initiated`, `ringing`, `answered` (CallStatus `in-progress`)."""
        call = self._placed(sid)
        sent = [await self._status(call, "initiated", "initiated"), await self._status(call, "ringing", "ringing"),
                await self._status(call, "answered", "in-progress")]
        return [s for s in sent if s is not None]

    async def finish(self, sid: str, status: str) -> list[httpx.Response]:
        """The call ends: never answered (`busy`, `no-answer`, `failed`, `canceled`), or `completed`."""
        assert status in (*NOT_ANSWERED, "completed"), status
        call = self._placed(sid)
        sent = []
        if status in NOT_ANSWERED and call.status == "queued":
            sent.append(await self._status(call, "initiated", "initiated"))
            if status != "failed":
                sent.append(await self._status(call, "ringing", "ringing"))
        sent.append(await self._status(call, "completed", status))
        return [s for s in sent if s is not None]

    async def detect(self, sid: str, answered_by: str) -> httpx.Response | None:
        """The asynchronous AMD verdict, to `AsyncAmdStatusCallback`."""
        call = self._placed(sid)
        mode = call.one("MachineDetection")
        assert mode is not None and call.one("AsyncAmd") == "true", "this call was placed without async AMD"
        assert answered_by in ANSWERED_BY[mode], f"{mode} never answers {answered_by}"
        return await self._callback(call, call.one("AsyncAmdStatusCallback"),
                                    {"AnsweredBy": answered_by, "MachineDetectionDuration": "2400"})

    async def brief(self, sid: str) -> None:
        """The answered call runs its TwiML as Twilio does: each `<Say>` heard (`said`), a `<Redirect>` POSTed
        signed to its URL (the answer is the TwiML run next), `<Dial><Conference>` joins that room."""
        call = self._placed(sid)
        assert call.status == "in-progress", f"{sid} is {call.status}: only an answered call runs its TwiML"
        document = call.one(self.document) or ""
        for _ in range(5):  # Twilio stops a chain of redirects too; five is plenty for a test's
            root = ET.fromstring(document)  # noqa: S314 (the dispatcher's own output, under test)
            redirect = None
            for verb in root:
                if verb.tag == "Say":
                    call.said.append(verb.text or "")
                elif verb.tag == "Hangup":
                    call.status = "completed"
                    return
                elif verb.tag == "Redirect":
                    redirect = verb.text or ""
                    break
            self.joined(call, root)
            if redirect is None:
                return
            answered = await self._callback(call, redirect, {"CallStatus": call.status, **self._status_fields(),
                                                             "From": call.sender, "To": call.to})
            assert answered is not None and answered.status_code == 200, answered and answered.text
            assert answered.headers["content-type"].startswith(("application/xml", "text/xml")), answered.headers
            refused = twiml_refusal(answered.text)
            assert refused is None, bytes(refused.body)
            document = answered.text

    conference_attributes = CONFERENCE_ATTRIBUTES

    def joined(self, call: FakeCall, root: ET.Element) -> None:
        for conference in root.iterfind("Dial/Conference"):
            for name, value in conference.attrib.items():
                assert name in self.conference_attributes, f"<Conference {name}> is not one of its attributes"
                assert name not in BOOLEAN_ATTRIBUTES or value in ("true", "false"), f"{name}={value!r}"
            for room in self.conferences.values():
                room.discard(call.sid)
            self.conferences.setdefault(conference.text or "", set()).add(call.sid)

    def _placed(self, sid: str) -> PlacedCall:
        call = self.calls_by_sid[sid]
        assert isinstance(call, PlacedCall), sid
        return call


def lost_answer(status: int) -> Response | None:
    """A 2xx `queued_but_answered`: a proxy's page in the API's place (not its JSON), the call queued behind it."""
    return Response("<html><body>OK</body></html>", status, media_type="text/html") if status < 300 else None


def _refusal(form: list[tuple[str, str]], numbers: set[str]) -> Response | None:
    """Twilio's answer to a create it refuses, or None."""
    names = {key for key, _ in form}
    unknown = names - CREATE_FIELDS
    if unknown:
        return error(400, 20001, f"Unknown parameters: {', '.join(sorted(unknown))}")
    single = {key: value for key, value in form if key != "StatusCallbackEvent"}
    if len(single) != sum(1 for key, _ in form if key != "StatusCallbackEvent"):
        return error(400, 20001, "a parameter was given twice")
    to, sender = single.get("To"), single.get("From")
    if not to:
        return error(400, 21201, "No 'To' number is specified")
    if not sender:
        return error(400, 21213, "No 'From' number is specified")
    if not DIALABLE.fullmatch(to):
        return error(400, 21211, f"Invalid 'To' Phone Number: {to}")
    if not PHONE.fullmatch(sender):
        return error(400, 21212, f"Invalid 'From' Phone Number: {sender}")
    if sender not in numbers:
        return error(400, 21210, f"The source phone number provided, {sender}, is not yet verified for your account")
    if not {"Url", "Twiml", "ApplicationSid"} & names:
        return error(400, 21205, "Url, Twiml or ApplicationSid is required")
    if "Timeout" in single and not (single["Timeout"].isdigit() and int(single["Timeout"]) > 0):
        return error(400, 21208, "Invalid Timeout")
    if single.get("MachineDetection", "Enable") not in ANSWERED_BY:
        return error(400, 20001, "MachineDetection must be Enable or DetectMessageEnd")
    if single.get("AsyncAmd", "false") not in ("true", "false"):
        return error(400, 20001, "AsyncAmd must be true or false")
    if any(key == "StatusCallbackEvent" and value not in EVENTS for key, value in form):
        return error(400, 20001, f"StatusCallbackEvent must be among {', '.join(EVENTS)}")
    return twiml_refusal(single.get("Twiml"))


def twiml_refusal(twiml: str | None) -> Response | None:
    if twiml is None:
        return None
    if len(twiml) > MAX_TWIML_CHARS:
        return error(400, 20001, f"Twiml exceeds {MAX_TWIML_CHARS} characters")
    try:
        root = ET.fromstring(twiml)  # noqa: S314 (the dispatcher's own output, under test)
    except ET.ParseError:
        return error(400, 20001, "Twiml is not a valid XML document")
    if root.tag != "Response":
        return error(400, 20001, "Twiml must be a <Response> document")
    unknown = [verb.tag for verb in root if verb.tag not in VERBS]
    return error(400, 20001, f"<{unknown[0]}> is not a TwiML verb") if unknown else None
