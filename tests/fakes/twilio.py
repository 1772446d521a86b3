"""A fake of Twilio's Calls resource, the two requests a transfer makes
(https://www.twilio.com/docs/voice/api/call-resource):

    POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json   update a live call (form-encoded)
    GET  /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json   read a call

Strict where Twilio is: HTTP Basic with the Account SID and auth token or an API key's SID and secret
(401, error 20003); a form body (`application/x-www-form-urlencoded`) of the update's documented fields
only (`Url`, `Method`, `Status`, `FallbackUrl`, `FallbackMethod`, `StatusCallback`, `StatusCallbackMethod`,
`Twiml`, `TimeLimit`), `Twiml` at most 4,000 characters and a `<Response>` document; anything else is a
400. An unknown call (or another account's) is 404 with error 20404; new TwiML for a call that is no
longer in progress is 400 with error 21220, as Twilio refuses to redirect it; past `max_per_second`
requests a second, 429 with error 20429. Errors have Twilio's body `{code, message, more_info, status}`.

The fake is one Twilio region's API (`region`: us1, ie1 or au1), whose credentials are its own: one made
in another region is refused as any wrong one, 401 with error 20003. `host` is where Twilio serves that
region (https://www.twilio.com/docs/global-infrastructure/api-domain-migration-guide), which a test holds
the dispatcher's own host to: the fake itself is served on loopback.

`lose_answer(sid)`: the next update of that call is done, and its answer held until the gate it
returns is set (Twilio took it, its answer was lost on the way).

A call whose TwiML was replaced is `redirected`: Twilio then ends its media stream, which a test does
with the stream it holds (tests/fakes/carriers.py `hang_up`: `stop`, then the close).
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.second_window import SecondWindow
from tests.fakes.server import FakeApi

ACCOUNT_SID = "AC00000000000000000000000000000001"
AUTH_TOKEN = "test-twilio-auth-token"  # noqa: S105 (a test's)
UPDATE_FIELDS = frozenset({"Url", "Method", "Status", "FallbackUrl", "FallbackMethod", "StatusCallback",
                           "StatusCallbackMethod", "Twiml", "TimeLimit"})
MAX_TWIML_CHARS = 4000
# Where Twilio serves each region's REST API, as its docs name them (written here, not the dispatcher's code).
REGION_HOSTS = {"us1": "api.twilio.com", "ie1": "api.dublin.ie1.twilio.com", "au1": "api.sydney.au1.twilio.com"}
# What names each region to an SDK (twilio-python's TWILIO_REGION and TWILIO_EDGE); US1 is the default.
REGION_SETTINGS = {"us1": {}, "ie1": {"TWILIO_REGION": "ie1", "TWILIO_EDGE": "dublin"},
                   "au1": {"TWILIO_REGION": "au1", "TWILIO_EDGE": "sydney"}}
LIVE = frozenset({"queued", "ringing", "in-progress"})


def error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                         "status": status}, status_code=status)


@dataclass
class FakeCall:
    sid: str
    status: str = "in-progress"
    twiml: list[str] = field(default_factory=list)  # each update's TwiML, in order
    redirected: threading.Event = field(default_factory=threading.Event)
    direction: str = "inbound"  # a caller's call to the account's number
    to: str = "+14155550199"  # the account's number it reached
    sender: str = "+14155550100"  # the caller's
    created: float = field(default_factory=time.time)


class FakeTwilio(FakeApi):
    error_body = staticmethod(lambda status: {
        "code": 20429 if status == 429 else 20500, "message": "Too Many Requests" if status == 429 else "injected",
        "more_info": "https://www.twilio.com/docs/errors/20429", "status": status})
    update_fields = UPDATE_FIELDS
    document = "Twiml"  # the update's field for the new XML
    # Each refusal's HTTP status and the carrier's error code (FakeTelnyx has its own).
    refusals = {"throttled": (429, 20429), "unauthenticated": (401, 20003), "no_call": (404, 20404),
                "invalid": (400, 20001), "not_in_progress": (400, 21220)}

    def refuse(self, kind: str, message: str) -> JSONResponse:
        status, code = self.refusals[kind]
        return error(status, code, message)

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN,
                 api_key: tuple[str, str] | None = None, max_per_second: float = 10.0, region: str = "us1") -> None:
        super().__init__()
        self.account_sid = account_sid
        self.region, self.host = region, REGION_HOSTS[region]
        # This region's credentials alone: Twilio's regions each keep their own auth token and API keys.
        self.logins = {(account_sid, auth_token)} | ({api_key} if api_key else set())
        self.calls_by_sid: dict[str, FakeCall] = {}
        self.max_per_second = max_per_second
        self._window = SecondWindow()
        self._lost: dict[str, threading.Event] = {}  # by call, the gate its next update's answer waits on
        self._gates: list[threading.Event] = []  # every gate, opened by reset_knobs
        self._gateway_errors: dict[str, int] = {}  # by call, the 5xx its next update is answered after it is done

    def lose_answer(self, sid: str) -> threading.Event:
        """The next update of call `sid` is done, its answer held until the returned event is set."""
        self._lost[sid] = gate = threading.Event()
        self._gates.append(gate)
        return gate

    def answer_done_update_with(self, sid: str, status: int) -> None:
        """The next update of call `sid` is done, then answered `status` (a gateway's 502 or 504 that gave up
        on a backend that went on)."""
        self._gateway_errors[sid] = status

    def reset_knobs(self) -> None:
        super().reset_knobs()
        for gate in self._gates:
            gate.set()
        self._lost.clear()
        self._gates.clear()
        self._gateway_errors.clear()

    def env(self) -> dict[str, str]:
        """What points the dispatcher's transfers at this fake, its region named as a team there names it."""
        return {"TWILIO_ACCOUNT_SID": self.account_sid, "TWILIO_API_URL": self.url, **REGION_SETTINGS[self.region]}

    def live_call(self, sid: str) -> FakeCall:
        self.calls_by_sid[sid] = call = FakeCall(sid)
        return call

    def routes(self) -> list[Route]:
        return [Route("/2010-04-01/Accounts/{account}/Calls/{sid}.json", self._call, methods=["GET", "POST"])]

    def _over_rate(self) -> bool:
        return self._window.over(self.max_per_second)

    def _authorized(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            return False
        return (user, secret) in self.logins

    async def _call(self, request: Request) -> Response:
        if self._over_rate():
            return self.refuse("throttled", "Too Many Requests")
        if not self._authorized(request):
            return self.refuse("unauthenticated", "Authenticate")
        account, sid = request.path_params["account"], request.path_params["sid"]
        call = self.calls_by_sid.get(sid) if account == self.account_sid else None
        if call is None:
            return self.refuse("no_call", f"The requested resource {request.url.path} was not found")
        if request.method == "GET":
            return JSONResponse(self._resource(call))
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return self.refuse("invalid", "the request body must be application/x-www-form-urlencoded")
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        unknown = set(form) - self.update_fields
        if unknown:
            return self.refuse("invalid", f"Unknown parameters: {', '.join(sorted(unknown))}")
        if not {"Url", self.document, "Status"} & set(form):
            return self.refuse("invalid", f"Url, {self.document} or Status is required")
        twiml = form.get(self.document)
        if twiml is not None:
            if len(twiml) > MAX_TWIML_CHARS:
                return self.refuse("invalid", f"{self.document} exceeds {MAX_TWIML_CHARS} characters")
            try:
                root = ET.fromstring(twiml)  # noqa: S314 (the test's own input)
            except ET.ParseError:
                return self.refuse("invalid", f"{self.document} is not a valid XML document")
            if root.tag != "Response":
                return self.refuse("invalid", f"{self.document} must be a <Response> document")
            if call.status != "in-progress":
                return self.refuse("not_in_progress", "Call is not in-progress. Cannot redirect.")
            call.twiml.append(twiml)
            self.joined(call, root)
            call.redirected.set()
            gate = self._lost.pop(sid, None)
            while gate is not None and not gate.is_set():  # the fake's loop runs in its own thread: poll
                await asyncio.sleep(0.02)
            gateway = self._gateway_errors.pop(sid, None)
            if gateway is not None:
                return JSONResponse(self.error_body(gateway), status_code=gateway)
        status = form.get("Status")
        if status is not None:
            if status not in self.update_statuses:
                return self.refuse("invalid", f"Status must be {' or '.join(self.update_statuses)}")
            # `canceled` ends a call only while it is queued or ringing; an answered one goes on (`completed`
            # hangs it up): https://www.twilio.com/docs/voice/api/call-resource#update-a-call-resource
            if call.status in LIVE and not (status == "canceled" and call.status == "in-progress"):
                call.status = status
        return JSONResponse(self._resource(call))

    update_statuses: tuple[str, ...] = ("completed", "canceled")  # what an update's `Status` may set

    def joined(self, call: FakeCall, root: ET.Element) -> None:
        """A `<Dial><Conference>` in force: the call is in that room (tests/fakes/twilio_outbound.py runs it)."""

    def _resource(self, call: FakeCall) -> dict[str, Any]:
        return {"sid": call.sid, "account_sid": self.account_sid, "status": call.status, "direction": call.direction,
                "to": call.to, "from": call.sender, "date_created": email.utils.formatdate(call.created),
                "api_version": "2010-04-01", "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{call.sid}.json"}
