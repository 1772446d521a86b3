"""A fake of Meta's WhatsApp Business Calling, both of its sides
(https://developers.facebook.com/documentation/business-messaging/whatsapp/calling/user-initiated-calls,
…/calling/reference, …/calling/troubleshooting):

- the webhook sender: a user-initiated call's `connect` (the caller's SDP offer) and its `terminate`, in
  Meta's envelope (`object: whatsapp_business_account`, `entry[].changes[]` of `field: calls`, the
  number's `metadata`, the caller in `contacts`), signed `X-Hub-Signature-256: sha256=HMAC(app secret,
  the raw body)`;
- the Graph API's `POST /v23.0/{phone_number_id}/calls`: `pre_accept` and `accept` with
  `session: {sdp_type: "answer", sdp}`, `reject` and `terminate` with none.

Never more lenient than Meta: the bearer token or 401 (code 190, `OAuthException`); JSON with
`messaging_product: whatsapp`, the documented fields only (anything else is 400, code 100, Invalid
parameter); an answer must be an SDP answer with an audio section and SHA-256 DTLS fingerprints only
(WhatsApp takes no other); an action the call's state does not allow (accept after a reject, terminate
before an accept, anything after the call ended) and an unknown call id are refused with code 100;
errors in Graph's shape `{"error": {"message", "type", "code", "fbtrace_id"}}`. Injected 429s and 5xx
(`fail`) have that shape too (code 130429, Meta's throughput limit). `done_then_fail` models the worse
fault: Meta did the action, then answered a 5xx. Any `terminate` webhook ends the call (whatever its
status), and a call nobody pre-accepted within `ring_seconds` is over: a business has 30 to 60 s to
pre-accept a call before Meta ends it as not answered
(https://docs.360dialog.com/partner/messaging/calling-api/user-initiated-whatsapp-calls); the fake takes
the middle, 45 s, settable.

A test plays Meta's media side with an aiortc peer: `ring()` makes the call and its signed webhook,
`answer_of()` waits for the SDP answer the dispatcher accepted it with.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dispatcher.whatsapp.signature import sign
from tests.fakes.server import FakeApi

VERSION = "v23.0"
ACCESS_TOKEN = "test-whatsapp-access-token"  # noqa: S105 (a test's)
APP_SECRET = "test-whatsapp-app-secret"  # noqa: S105
VERIFY_TOKEN = "test-whatsapp-verify-token"  # noqa: S105
PHONE_NUMBER_ID = "106540352242922"
BUSINESS_NUMBER = "15550001111"
WABA_ID = "366634483210360"
CALL_FIELDS = frozenset({"messaging_product", "call_id", "action", "session", "biz_opaque_callback_data"})
ANSWERS = frozenset({"pre_accept", "accept"})
# What each action may follow: a call rings, may be pre-accepted, then accepted (up) or rejected; an
# accepted call is terminated.
ALLOWED = {"pre_accept": {"ringing"}, "accept": {"ringing", "pre_accepted"},
           "reject": {"ringing", "pre_accepted"}, "terminate": {"accepted"}}
AFTER = {"pre_accept": "pre_accepted", "accept": "accepted", "reject": "rejected", "terminate": "terminated"}
RING_SECONDS = 45.0
NOT_ANSWERED = "not_answered"  # the state of a call Meta ended because the business did not answer in time


def graph_error(status: int, code: int, message: str, kind: str = "OAuthException") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": code,
                                   "fbtrace_id": secrets.token_urlsafe(9)}}, status_code=status)


@dataclass
class FakeWhatsAppCall:
    call_id: str
    caller: str  # the WhatsApp user's wa_id
    offer: str
    number: str = PHONE_NUMBER_ID  # the business phone number called
    state: str = "ringing"
    answer: str | None = None  # the SDP the call was accepted with
    actions: list[str] = field(default_factory=list)  # every action taken, in order
    rang_at: float = field(default_factory=time.monotonic)
    accepted: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)  # rejected or terminated by the business


class FakeWhatsApp(FakeApi):
    error_body = staticmethod(lambda status: {"error": {
        "message": "(#130429) Rate limit hit" if status == 429 else "An unexpected error has occurred.",
        "type": "OAuthException", "code": 130429 if status == 429 else 2, "fbtrace_id": "injected"}})

    def __init__(self, token: str = ACCESS_TOKEN, app_secret: str = APP_SECRET,
                 numbers: tuple[str, ...] = (PHONE_NUMBER_ID,), ring_seconds: float = RING_SECONDS) -> None:
        super().__init__()
        self.token, self.app_secret, self.numbers = token, app_secret, numbers
        self.ring_seconds = ring_seconds
        self.done_then_fail: dict[str, int] = {}  # action -> the 5xx answered once after doing it
        self.calls_by_id: dict[str, FakeWhatsAppCall] = {}
        self.refusals: list[dict[str, Any]] = []  # each refused request's error, for a test to read

    def env(self, numbers: str) -> dict[str, str]:
        """What points a dispatcher at this fake; `numbers` is WHATSAPP_NUMBERS."""
        return {"WHATSAPP_ACCESS_TOKEN": self.token, "WHATSAPP_APP_SECRET": self.app_secret,
                "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN, "WHATSAPP_NUMBERS": numbers,
                "WHATSAPP_GRAPH_URL": f"{self.url}/{VERSION}"}

    # The webhook sender.

    def ring(self, offer: str, caller: str = "16315553601", number: str = PHONE_NUMBER_ID) -> FakeWhatsAppCall:
        """A WhatsApp user calls the business: the call, ringing (its webhook: `connect_webhook`)."""
        call = FakeWhatsAppCall(f"wacid.{secrets.token_urlsafe(24)}", caller, offer, number)
        self.calls_by_id[call.call_id] = call
        return call

    def connect_webhook(self, call: FakeWhatsAppCall) -> tuple[bytes, dict[str, str]]:
        """The signed `connect` webhook of `call`: its body and headers, as Meta posts them."""
        event = {"id": call.call_id, "from": call.caller, "to": BUSINESS_NUMBER, "event": "connect",
                 "timestamp": str(int(time.time())), "direction": "USER_INITIATED",
                 "session": {"sdp_type": "offer", "sdp": call.offer}}
        contacts = [{"profile": {"name": "Test Caller"}, "wa_id": call.caller}]
        return self.signed(self._envelope(call, event, contacts=contacts))

    def terminate_webhook(self, call: FakeWhatsAppCall, status: str = "COMPLETED") -> tuple[bytes, dict[str, str]]:
        """The signed `terminate` webhook Meta sends when the call ends (the caller hung up: COMPLETED)."""
        event: dict[str, Any] = {"id": call.call_id, "from": call.caller, "to": BUSINESS_NUMBER, "event": "terminate",
                                 "timestamp": str(int(time.time())), "direction": "USER_INITIATED", "status": status}
        if call.state == "accepted":
            event["duration"] = 3
        call.state = "terminated"  # whatever its status: Meta takes no action for the call after it
        return self.signed(self._envelope(call, event))

    def signed(self, payload: dict[str, Any], secret: str | None = None) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(payload).encode()
        return body, {"Content-Type": "application/json",
                      "X-Hub-Signature-256": sign(secret if secret is not None else self.app_secret, body)}

    @staticmethod
    def _envelope(call: FakeWhatsAppCall, event: dict[str, Any], contacts: list[Any] | None = None) -> dict[str, Any]:
        value: dict[str, Any] = {"messaging_product": "whatsapp",
                                 "metadata": {"display_phone_number": BUSINESS_NUMBER,
                                              "phone_number_id": call.number},
                                 "calls": [event]}
        if contacts is not None:
            value["contacts"] = contacts
        return {"object": "whatsapp_business_account",
                "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": "calls"}]}]}

    async def answer_of(self, call: FakeWhatsAppCall, timeout: float = 60.0) -> str:
        """The SDP answer `call` was accepted with, once it is (AssertionError past `timeout`, with why)."""
        deadline = time.monotonic() + timeout
        while not call.accepted.is_set():  # set in the fake's own thread: polled
            if call.ended.is_set() or time.monotonic() > deadline:
                raise AssertionError(f"call not accepted ({call.state}; actions {call.actions}; "
                                     f"refusals {self.refusals})")
            await asyncio.sleep(0.02)
        assert call.answer is not None
        return call.answer

    # The Graph API.

    def routes(self) -> list[Route]:
        return [Route(f"/{VERSION}/{{number}}/calls", self._calls, methods=["POST"])]

    def _refused(self, status: int, code: int, message: str, kind: str = "OAuthException") -> JSONResponse:
        self.refusals.append({"status": status, "code": code, "message": message})
        return graph_error(status, code, message, kind)

    async def _calls(self, request: Request) -> Response:
        if request.headers.get("authorization", "") != f"Bearer {self.token}":
            return self._refused(401, 190, "Invalid OAuth access token - Cannot parse access token")
        number = request.path_params["number"]
        if number not in self.numbers:
            return self._refused(400, 100, f"Unsupported post request. Object with ID '{number}' does not exist, "
                                 "cannot be loaded due to missing permissions, or does not support this operation",
                                 "GraphMethodException")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return self._refused(400, 100, "(#100) Invalid parameter: the body must be JSON")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self._refused(400, 100, "(#100) Invalid parameter: the body is not JSON")
        problem = _invalid(body)
        if problem:
            return self._refused(400, 100, f"(#100) Invalid parameter: {problem}")
        call = self.calls_by_id.get(body["call_id"])
        if call is None or call.number != number:
            return self._refused(400, 100, "(#100) Invalid parameter: call_id names no call of this number")
        action = body["action"]
        if call.state == "ringing" and time.monotonic() - call.rang_at > self.ring_seconds:
            call.state = NOT_ANSWERED  # Meta ended it meanwhile (its `terminate` webhook is the test's to send)
        if call.state not in ALLOWED[action]:
            return self._refused(400, 100, f"(#100) Invalid parameter: a call that is {call.state} cannot be "
                                 f"given {action}")
        call.actions.append(action)
        call.state = AFTER[action]
        if action == "accept":
            call.answer = body["session"]["sdp"]
            call.accepted.set()
        if action in ("reject", "terminate"):
            call.ended.set()
        if action in self.done_then_fail:
            status = self.done_then_fail.pop(action)
            return self._refused(status, 2, "An unexpected error has occurred. Please retry your request later.")
        return JSONResponse({"success": True})


def _invalid(body: Any) -> str | None:
    """What Meta would refuse in a calls request's body, or None."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    unknown = set(body) - CALL_FIELDS
    if unknown:
        return f"unknown fields {sorted(unknown)}"
    if body.get("messaging_product") != "whatsapp":
        return "messaging_product must be whatsapp"
    if not isinstance(body.get("call_id"), str) or not body["call_id"]:
        return "call_id is required"
    action = body.get("action")
    if action not in ALLOWED:
        return f"action must be one of {sorted(ALLOWED)} (connect: a business-initiated call, not faked here)"
    session = body.get("session")
    if action not in ANSWERS:
        return "session is only for pre_accept and accept" if session is not None else None
    if not isinstance(session, dict) or set(session) != {"sdp_type", "sdp"}:
        return "session must be {sdp_type, sdp}"
    if session["sdp_type"] != "answer":
        return "session.sdp_type must be answer"
    return _invalid_answer(session["sdp"])


def _invalid_answer(sdp: Any) -> str | None:
    """An SDP answer WhatsApp would not take: not SDP, no audio, or a fingerprint other than SHA-256."""
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        return "session.sdp is not an SDP (RFC 8866)"
    lines = sdp.splitlines()
    if not any(line.startswith("m=audio ") for line in lines):
        return "session.sdp has no audio section"
    fingerprints = [line.split(":", 1)[1].split(" ", 1)[0].lower() for line in lines
                    if line.startswith("a=fingerprint:")]
    if not fingerprints or set(fingerprints) != {"sha-256"}:
        return f"SDP validation: only SHA-256 fingerprints are supported (got {sorted(set(fingerprints))})"
    return None
