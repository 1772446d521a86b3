"""The strict Telnyx fake (tests/fakes/telnyx.py) with calls placed out through TeXML: the create, its
status callbacks and its asynchronous answering-machine detection
(https://developers.telnyx.com/api-reference/texml-rest-commands/initiate-an-outbound-call,
https://developers.telnyx.com/api-reference/callbacks/texml-call-amd, …/texml-call-answered).

    POST /v2/texml/Accounts/{account_sid}/Calls   JSON: ApplicationSid, To, From, Texml | Url, …

Strict where Telnyx is: `Authorization: Bearer {API key}` (401, 10009); another account's path 404 (10005);
a JSON object body (`application/json`), its documented fields only (anything else 422, 10015), each of its
type (`AsyncAmd` a boolean, `Timeout` a whole number of 5 to 120, `TimeLimit` 30 to 14,400);
`ApplicationSid`, `To` and `From` required, `ApplicationSid` the account's TeXML application, `From` one of
the account's numbers, `To` dialable E.164; `Texml` or `Url`, `Texml` a `<Response>` document;
`StatusCallbackEvent` space-separated among initiated, ringing, answered, completed; `MachineDetection`
`Enable`, `Disable` or `DetectMessageEnd`. Past `create_per_second` creates a second, 429 (10011). Its answer
is what Telnyx documents: `{from, to, status}`, no call SID.

The test plays the far end as with FakeTwilioCalls (`answer`, `finish`, `detect`, the same rules); each
callback is form-encoded, Twilio-shaped with Telnyx's fields (`AccountSid`, `CallSid` `v3:…`,
`CallbackSource`, `ConnectionId`), and signed as Telnyx signs: Ed25519 over `{telnyx-timestamp}|{body}`
with this fake's own key, whose public half `env()` gives as TELNYX_PUBLIC_KEY (written here with
`cryptography`, not the dispatcher's code).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.telnyx import FakeTelnyx, telnyx_error
from tests.fakes.twilio_outbound import DIALABLE, EVENTS, FakeTwilioCalls, PlacedCall, lost_answer, twiml_refusal

APPLICATION_SID = "1293384261075731499"
CONNECTION_ID = "1684641123236054244"
TEXT_FIELDS = frozenset({
    "ApplicationSid", "To", "From", "CallerId", "Url", "UrlMethod", "FallbackUrl", "Texml", "StatusCallback",
    "StatusCallbackEvent", "StatusCallbackMethod", "MachineDetection", "DetectionMode", "AsyncAmdStatusCallback",
    "AsyncAmdStatusCallbackMethod", "RecordingChannels", "RecordingStatusCallback", "RecordingStatusCallbackEvent",
    "RecordingStatusCallbackMethod", "RecordingTrack", "SipAuthUsername", "SipAuthPassword", "Trim",
    "PreferredCodecs", "SipRegion", "MediaEncryption", "SuperviseCallSid", "SupervisingRole"})
BOOLEAN_FIELDS = frozenset({"AsyncAmd", "Record", "SendRecordingUrl", "CancelPlaybackOnMachineDetection",
                            "CancelPlaybackOnDetectMessageEnd"})
WHOLE_FIELDS = {"Timeout": (5, 120), "TimeLimit": (30, 14_400), "MachineDetectionTimeout": (0, 10**6),
                "MachineDetectionSilenceTimeout": (0, 10**6), "MachineDetectionSpeechThreshold": (0, 10**6),
                "MachineDetectionSpeechEndThreshold": (0, 10**6), "RecordingTimeout": (0, 10**6)}
MACHINE_DETECTION = ("Enable", "Disable", "DetectMessageEnd")
METHODS = ("GET", "POST")
# https://developers.telnyx.com/docs/voice/programmable-voice/texml-verbs/conference (the attributes used here)
CONFERENCE_ATTRIBUTES = frozenset({"muted", "startConferenceOnEnter", "endConferenceOnExit", "maxParticipants", "beep"})


class FakeTelnyxCalls(FakeTelnyx, FakeTwilioCalls):
    conference_attributes = CONFERENCE_ATTRIBUTES
    def __init__(self, *, numbers: tuple[str, ...] = ("+14155550199",), create_per_second: float = 1.0,
                 application_sid: str = APPLICATION_SID, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # FakeTelnyx's account and key, then FakeTwilioCalls' calls placed
        self.numbers, self.create_per_second = set(numbers), create_per_second
        self.application_sid = application_sid
        self._key = Ed25519PrivateKey.generate()
        self.documents: list[dict[str, Any]] = []  # every create's JSON, as sent

    @property
    def signer(self) -> Ed25519PrivateKey:
        """The key its webhooks are signed with: a test's own (the call's first webhook) signs as Telnyx would."""
        return self._key

    @property
    def public_key(self) -> str:
        return base64.b64encode(self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()

    def env(self) -> dict[str, str]:
        """What points the dispatcher's Telnyx calls (transfers and calls placed out) at this fake."""
        return {**super().env(), "TELNYX_PUBLIC_KEY": self.public_key, "TELNYX_ACCOUNT_SID": self.account_sid,
                "TELNYX_APPLICATION_SID": self.application_sid}

    def routes(self) -> list[Route]:
        return [Route("/v2/texml/Accounts/{account}/Calls", self._create, methods=["POST"]), *FakeTelnyx.routes(self)]

    async def _create(self, request: Request) -> Response:
        if not self._authorized(request):
            return self.refuse("unauthenticated", "Authentication failed")
        if request.path_params["account"] != self.account_sid:
            return self.refuse("no_call", f"The requested resource {request.url.path} was not found")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return self.refuse("invalid", "the request body must be application/json")
        try:
            document = json.loads(await request.body())
        except ValueError:
            return self.refuse("invalid", "the request body is not JSON")
        refused = self._refusal(document)
        if refused is not None:
            return refused
        if self._over_cps():
            return self.refuse("throttled", "Too many requests")
        # Its requests (a `<Redirect>`'s too) name the call's own numbers, as Twilio's fake's do.
        call = PlacedCall(f"v3:{secrets.token_urlsafe(30)}", status="queued", form=_as_form(document),
                          to=document["To"], sender=document["From"])
        self.calls_by_sid[call.sid] = call
        self.placed.append(call)
        self.documents.append(document)
        self.created_at.append(time.monotonic())
        if self.queued_but_answered is not None:  # the call queued all the same (a gateway that timed out)
            status, self.queued_but_answered = self.queued_but_answered, None
            return lost_answer(status) or telnyx_error(status, "10007", "the call was queued; its answer was lost")
        return JSONResponse({"from": document["From"], "to": document["To"], "status": "queued"})

    def _refusal(self, document: Any) -> Response | None:
        """Telnyx's answer to a create it refuses, or None."""
        if not isinstance(document, dict):
            return self.refuse("invalid", "the body must be a JSON object")
        unknown = set(document) - TEXT_FIELDS - BOOLEAN_FIELDS - set(WHOLE_FIELDS)
        if unknown:
            return self.refuse("invalid", f"Unknown parameters: {', '.join(sorted(unknown))}")
        for name, value in document.items():
            if name in TEXT_FIELDS and not isinstance(value, str):
                return self.refuse("invalid", f"{name} must be a string")
            if name in BOOLEAN_FIELDS and not isinstance(value, bool):
                return self.refuse("invalid", f"{name} must be a boolean")
            if name in WHOLE_FIELDS:
                least, most = WHOLE_FIELDS[name]
                if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
                    return self.refuse("invalid", f"{name} must be a whole number from {least} to {most}")
            if name.endswith("Method") and value not in METHODS:
                return self.refuse("invalid", f"{name} must be GET or POST")
        for name in ("ApplicationSid", "To", "From"):
            if not document.get(name):
                return self.refuse("invalid", f"{name} is required")
        if document["ApplicationSid"] != self.application_sid:
            return self.refuse("invalid", f"ApplicationSid {document['ApplicationSid']} is not a TeXML application "
                                          "of this account")
        if not DIALABLE.fullmatch(document["To"]):
            return self.refuse("invalid", f"To {document['To']} is not a valid phone number")
        if document["From"] not in self.numbers:
            return self.refuse("invalid", f"From {document['From']} is not a number of this account")
        if not {"Texml", "Url"} & set(document):
            return self.refuse("invalid", "Texml or Url is required")
        if document.get("MachineDetection", "Disable") not in MACHINE_DETECTION:
            return self.refuse("invalid", f"MachineDetection must be one of {', '.join(MACHINE_DETECTION)}")
        if any(event not in EVENTS for event in document.get("StatusCallbackEvent", "completed").split(" ")):
            return self.refuse("invalid", f"StatusCallbackEvent must be among {', '.join(EVENTS)}, space separated")
        twiml_refused = twiml_refusal(document.get("Texml"))
        return None if twiml_refused is None else self.refuse("invalid", "Texml must be a <Response> document")

    def _status_fields(self) -> dict[str, str]:
        return {"ConnectionId": CONNECTION_ID, "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    async def _callback(self, call: PlacedCall, url: str | None, params: dict[str, str]) -> httpx.Response | None:
        if not url:
            return None
        form = {"AccountSid": self.account_sid, "CallSid": call.sid, "CallSidLegacy": call.sid, **params}
        if "AnsweredBy" in form:
            form["ConnectionId"] = CONNECTION_ID
        body = urlencode(form).encode()
        sent = str(int(time.time()))
        signature = base64.b64encode(self._key.sign(sent.encode() + b"|" + body)).decode()
        async with self.deliver() as client:
            return await client.post(url, content=body, headers={
                "Content-Type": "application/x-www-form-urlencoded", "telnyx-signature-ed25519": signature,
                "telnyx-timestamp": sent})


def _as_form(document: dict[str, Any]) -> list[tuple[str, str]]:
    """A create's JSON as FakeTwilioCalls reads a call's parameters: its events one by one, booleans as words."""
    form: list[tuple[str, str]] = []
    for name, value in document.items():
        if name == "StatusCallbackEvent":
            form.extend((name, event) for event in value.split(" "))
        else:
            form.append((name, ("true" if value else "false") if isinstance(value, bool) else str(value)))
    return form

