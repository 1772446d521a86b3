"""A fake of Plivo's Call resource, the two requests a transfer makes, and what Plivo then does
(https://www.plivo.com/docs/voice/api/call/transfer-a-call, .../retrieve-a-live-call):

    POST /v1/Account/{auth_id}/Call/{call_uuid}/              transfer a live call (JSON)
    GET  /v1/Account/{auth_id}/Call/{call_uuid}/?status=live  read a live call

Strict where Plivo is: HTTP Basic with the Auth ID and Auth Token, the path's Auth ID the same (401);
a JSON body of the documented arguments only (`legs`, `aleg_url`, `aleg_method`, `bleg_url`,
`bleg_method`), `legs` one of aleg, bleg, both, `aleg_url` given for aleg, methods GET or POST (400
otherwise); a call that is not live, or another account's, 404; past `max_per_second` requests, 429.
Errors have Plivo's body `{"api_id", "error"}`; a transfer is answered 202 `{"message": "call
transferred", "api_id"}`; then, after the answer (Plivo queues the transfer: the 202 says it was
accepted, not done), Plivo fetches `aleg_url` as it does any URL of the application: a form POST
(`CallUUID`, `From`, `To`, `CallStatus`, `Direction`) signed with X-Plivo-Signature-V3 and its nonce,
and runs the XML: a `<Response>` whose `<Dial>` holds a `<Number>` or a `<User>` is `redirected` (the
test then ends the stream, as Plivo does); a `<Stream>` streams the call again (`streamed`). Anything
else, a 4xx or 5xx included, is kept in `refused` and hangs the call up: Plivo's callback policy
retries only a connect or read timeout (rc=1, rp=ct,rt), and a call whose XML failed is hung up.
This fake never times out, so it never retries.

A live call, its fetch and its callbacks write numbers as Plivo does: country code, no `+`.

A warm transfer's call to the person (https://www.plivo.com/docs/voice/api/call/make-a-call):

    POST   /v1/Account/{auth_id}/Call/               make a call (JSON): 201 {"message": "call fired",
                                                     "request_uuid", "api_id"}; the call's own UUID comes with
                                                     its callbacks, never in the answer
    DELETE /v1/Account/{auth_id}/Call/{call_uuid}/   hang up a call, ringing or answered: 204; 404 once it is over

The create takes the documented arguments only (`from`, `to`, `answer_url` required; `ring_timeout` and
`time_limit` integers, methods GET or POST; `from` and `to` not the same number: 400), and then the test
plays the person: `ring` (the ring_url, `CallStatus=ringing`), `answer` (the answer_url's XML run: its
`<Speak>` kept in `said`, its `<Redirect>` fetched and run: a `<Conference>` joins `conferences`, a
`<Hangup>` ends the call), `finish(uuid, status)` (the hangup_url with Plivo's final `CallStatus`: completed,
busy, no-answer, timeout, cancel, failed). Every callback is a form POST signed with X-Plivo-Signature-V3
and its nonce, carrying `CallUUID`, `RequestUUID`, `From`, `To` (Plivo's numbers: no `+`), `CallStatus`,
`Direction=outbound` and `Event` (Ring, StartApp, Redirect, Hangup). A DELETE of a call ends it as Plivo
does: its hangup_url is sent `CallStatus=cancel` while it rang, `completed` once answered.
A placed call that was answered can be transferred as a caller's is (its A leg): its `aleg_url` is fetched and
run as its answer's XML is. `speak_only`: `answer` stops before the `<Redirect>` (the person still hears the briefing).
`answer_create_with(status)`: the next create places the call, then is answered `status` (a lost answer).

`answer_done_transfer_with(uuid, status)`: the next transfer of that call is done, then answered `status`
(a gateway's 5xx that gave up on a backend that went on). `fetch_late(uuid, seconds)`: that call's
next fetch waits `seconds` after the answer (Plivo's queue, busy).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import threading
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.second_window import SecondWindow
from tests.fakes.server import FakeApi

AUTH_ID = "MA0001"  # tests/phone/conftest.py's: the bots' own hang-ups name the same account
AUTH_TOKEN = "test-plivo-token"  # noqa: S105 (a test's)
TRANSFER_FIELDS = frozenset({"legs", "aleg_url", "aleg_method", "bleg_url", "bleg_method"})
CREATE_FIELDS = frozenset({  # Make a call's arguments (plivo-python resources/calls.py `Calls.create`)
    "from", "to", "answer_url", "answer_method", "ring_url", "ring_method", "hangup_url", "hangup_method",
    "fallback_url", "fallback_method", "caller_name", "send_digits", "send_on_preanswer", "time_limit",
    "hangup_on_ring", "machine_detection", "machine_detection_time", "machine_detection_url",
    "machine_detection_method", "sip_headers", "ring_timeout", "parent_call_uuid", "error_if_parent_not_found"})
FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "timeout", "cancel", "failed"})
METHODS = frozenset({"GET", "POST"})


def plivo_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"api_id": str(uuid.uuid4()), "error": message}, status_code=status)


def v3_signature(auth_token: str, url: str, nonce: str, form: dict[str, str]) -> str:
    """Plivo's V3 signature of a form POST to `url` (no query): the URL, `?`, each key and value sorted
    by key, then `.` and the nonce, HMAC-SHA256 keyed with the auth token, base64."""
    signed = url + "?" + "".join(key + form[key] for key in sorted(form)) + "." + nonce
    return base64.b64encode(hmac.new(auth_token.encode(), signed.encode(), hashlib.sha256).digest()).decode()


@dataclass
class PlivoCall:
    uuid: str
    from_number: str = "+14155550100"
    to_number: str = "+14155550199"
    live: bool = True
    xml: list[str] = field(default_factory=list)  # each transfer's XML, as the aleg_url answered it
    refused: list[tuple[int, str]] = field(default_factory=list)  # aleg_url answers run as neither: hung up
    streamed: list[str] = field(default_factory=list)  # aleg_url answers that streamed the call again
    fetches: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)  # url, form, headers
    redirected: threading.Event = field(default_factory=threading.Event)


@dataclass
class PlacedCall:
    """A call the create placed: the person's phone, played by the test."""
    uuid: str
    request_uuid: str
    document: dict[str, Any]
    status: str = "queued"  # then ringing, in-progress, and a final one (FINAL_STATUSES)
    said: list[str] = field(default_factory=list)  # each `<Speak>` it ran

    def url(self, name: str) -> str | None:
        value = self.document.get(name)
        return value if isinstance(value, str) else None


class FakePlivo(FakeApi):
    error_body = staticmethod(lambda status: {"api_id": "injected", "error": f"injected {status}"})

    def __init__(self, auth_id: str = AUTH_ID, auth_token: str = AUTH_TOKEN, max_per_second: float = 10.0) -> None:
        super().__init__()
        self.auth_id, self.auth_token = auth_id, auth_token
        self.calls_by_uuid: dict[str, PlivoCall] = {}
        self.max_per_second = max_per_second
        self._window = SecondWindow()
        self._gateway_errors: dict[str, int] = {}
        self._late: dict[str, float] = {}
        self.placed: list[PlacedCall] = []
        self.conferences: dict[str, set[str]] = {}  # a room's name → the calls in it
        self.create_answer: int | None = None  # `answer_create_with`
        self.speak_only = False  # `answer` runs the answer URL's XML but not its `<Redirect>` (still briefing)
        self.deliver = lambda: httpx.AsyncClient(timeout=10)  # how Plivo reaches the dispatcher

    def env(self) -> dict[str, str]:
        """What points the dispatcher's Plivo transfers at this fake."""
        return {"PLIVO_AUTH_ID": self.auth_id, "PLIVO_AUTH_TOKEN": self.auth_token, "PLIVO_API_URL": self.url}

    def live_call(self, call_uuid: str, to_number: str = "+14155550199") -> PlivoCall:
        self.calls_by_uuid[call_uuid] = call = PlivoCall(call_uuid, to_number=to_number)
        return call

    def answer_done_transfer_with(self, call_uuid: str, status: int) -> None:
        self._gateway_errors[call_uuid] = status

    def fetch_late(self, call_uuid: str, seconds: float) -> None:
        self._late[call_uuid] = seconds

    def answer_create_with(self, status: int) -> None:
        self.create_answer = status

    def reset_knobs(self) -> None:
        super().reset_knobs()
        self._gateway_errors.clear()
        self._late.clear()
        self.create_answer = None
        self.speak_only = False

    def routes(self) -> list[Route]:
        return [Route("/v1/Account/{auth_id}/Call/", self._create, methods=["POST"]),
                Route("/v1/Account/{auth_id}/Call/{uuid}/", self._call, methods=["GET", "POST", "DELETE"])]

    def person(self, call_uuid: str) -> PlacedCall:
        return next(call for call in self.placed if call.uuid == call_uuid)

    async def _create(self, request: Request) -> Response:
        if self._over_rate():
            return plivo_error(429, "too many requests")
        if not self._authorized(request):
            return plivo_error(401, "authentication failed")
        body = await _json_body(request)
        why = body if isinstance(body, Response) else _invalid_create(body)
        if why is not None:
            return why if isinstance(why, Response) else plivo_error(400, why)
        call = PlacedCall(str(uuid.uuid4()), str(uuid.uuid4()), body)
        self.placed.append(call)
        if self.create_answer is not None:
            return JSONResponse(self.error_body(self.create_answer), status_code=self.create_answer)
        return JSONResponse({"message": "call fired", "request_uuid": call.request_uuid,
                             "api_id": str(uuid.uuid4())}, status_code=201)

    async def ring(self, call_uuid: str) -> list[httpx.Response]:
        call = self.person(call_uuid)
        call.status = "ringing"
        return [answer for answer in [await self._callback(call, call.url("ring_url"), "Ring")] if answer]

    async def answer(self, call_uuid: str) -> list[httpx.Response]:
        """The person picks up: the answer_url's XML run, its `<Redirect>` followed (one hop, as the briefing's)."""
        call = self.person(call_uuid)
        call.status = "in-progress"
        answers: list[httpx.Response] = []
        url, event = call.url("answer_url"), "StartApp"
        while url is not None and call.status == "in-progress":
            answer = await self._callback(call, url, event)
            if answer is None:
                break
            answers.append(answer)
            url, event = await self._run(call, answer), "Redirect"
            if self.speak_only:
                break
        return answers

    async def finish(self, call_uuid: str, status: str) -> list[httpx.Response]:
        """The call over with Plivo's final `CallStatus`, its hangup_url told."""
        assert status in FINAL_STATUSES, status
        call = self.person(call_uuid)
        call.status = status
        for members in self.conferences.values():
            members.discard(call_uuid)
        return [answer for answer in [await self._callback(call, call.url("hangup_url"), "Hangup")] if answer]

    async def _run(self, call: PlacedCall, answer: httpx.Response) -> str | None:
        """A callback's XML run on the person's call: the next URL to fetch (a `<Redirect>`), else None."""
        try:
            root = ET.fromstring(answer.text) if answer.status_code == 200 else None  # noqa: S314 (a test's)
        except ET.ParseError:
            root = None
        if root is None or root.tag != "Response":
            await self.finish(call.uuid, "failed")  # Plivo hangs up a call whose XML failed
            return None
        for verb in root:
            if verb.tag == "Speak":
                call.said.append(verb.text or "")
            elif verb.tag == "Redirect":
                return verb.text
            elif verb.tag == "Conference":
                self.conferences.setdefault(verb.text or "", set()).add(call.uuid)
                return None
            elif verb.tag == "Hangup":
                await self.finish(call.uuid, "completed")
                return None
        return None

    async def _callback(self, call: PlacedCall, url: str | None, event: str) -> httpx.Response | None:
        if url is None:
            return None
        form = {"CallUUID": call.uuid, "RequestUUID": call.request_uuid, "From": _plivo_number(call.document["from"]),
                "To": _plivo_number(call.document["to"]), "CallStatus": call.status, "Direction": "outbound",
                "Event": event}
        return await self.signed_post(url, form)

    async def signed_post(self, url: str, form: dict[str, str]) -> httpx.Response:
        nonce = secrets.token_hex(10)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Plivo-Signature-V3-Nonce": nonce,
                   "X-Plivo-Signature-V3": v3_signature(self.auth_token, url, nonce, form)}
        async with self.deliver() as client:
            return await client.post(url, content=urlencode(form), headers=headers)

    def _transfer_person(self, call: PlacedCall, aleg_url: str) -> Response:
        """"Transfer a call" of a placed call (its own A leg): 202, then its `aleg_url` fetched and run."""
        if call.status != "in-progress":
            return plivo_error(404, "not found")

        async def run() -> None:
            answer = await self._callback(call, aleg_url, "Transfer")
            if answer is not None:
                await self._run(call, answer)

        return JSONResponse({"message": "call transferred", "api_id": str(uuid.uuid4())}, status_code=202,
                            background=BackgroundTask(run))

    async def _hang_up(self, call_uuid: str) -> Response:
        """Plivo's DELETE of a call: 204 while it rings or talks, its hangup_url told; 404 once it is over."""
        caller = self.calls_by_uuid.get(call_uuid)
        if caller is not None and caller.live:
            caller.live = False
            return Response(status_code=204)
        person = next((call for call in self.placed if call.uuid == call_uuid), None)
        if person is None or person.status in FINAL_STATUSES:
            return plivo_error(404, "not found")
        final = "completed" if person.status == "in-progress" else "cancel"
        return Response(status_code=204, background=BackgroundTask(self.finish, call_uuid, final))

    def _over_rate(self) -> bool:
        return self._window.over(self.max_per_second)

    def _authorized(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic" or request.path_params["auth_id"] != self.auth_id:
            return False
        try:
            user, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            return False
        return (user, secret) == (self.auth_id, self.auth_token)

    async def _call(self, request: Request) -> Response:
        if self._over_rate():
            return plivo_error(429, "too many requests")
        if not self._authorized(request):
            return plivo_error(401, "authentication failed")
        if request.method == "DELETE":
            return await self._hang_up(request.path_params["uuid"])
        call = self.calls_by_uuid.get(request.path_params["uuid"])
        if request.method == "GET":
            if request.query_params.get("status") != "live" or call is None or not call.live:
                return plivo_error(404, "not found")
            # Plivo's spelling: no `+` (plivo-python's fixture liveCallGetResponse.json: "to": "919798990001").
            return JSONResponse({"api_id": str(uuid.uuid4()), "call_status": "in-progress", "call_uuid": call.uuid,
                                 "direction": "inbound", "from": _plivo_number(call.from_number),
                                 "to": _plivo_number(call.to_number)})
        body = await _json_body(request)
        why = body if isinstance(body, Response) else _invalid(body)
        if why is not None:
            return why if isinstance(why, Response) else plivo_error(400, why)
        person = next((placed for placed in self.placed if placed.uuid == request.path_params["uuid"]), None)
        if person is not None:
            return self._transfer_person(person, body["aleg_url"])
        if call is None or not call.live:
            return plivo_error(404, "not found")
        fetch = BackgroundTask(self._fetch, call, body["aleg_url"], body.get("aleg_method", "POST"),
                               self._late.pop(call.uuid, 0.0))
        gateway = self._gateway_errors.pop(call.uuid, None)
        if gateway is not None:
            return JSONResponse(self.error_body(gateway), status_code=gateway, background=fetch)
        return JSONResponse({"message": "call transferred", "api_id": str(uuid.uuid4())}, status_code=202,
                            background=fetch)

    async def _fetch(self, call: PlivoCall, url: str, method: str, delay: float = 0.0) -> None:
        """Plivo's signed request for the call's new XML, and the XML run (a `<Dial>` redirects it)."""
        await asyncio.sleep(delay)
        form = {"CallUUID": call.uuid, "From": _plivo_number(call.from_number), "To": _plivo_number(call.to_number),
                "CallStatus": "in-progress", "Direction": "inbound"}
        nonce = secrets.token_hex(10)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Plivo-Signature-V3-Nonce": nonce,
                   "X-Plivo-Signature-V3": v3_signature(self.auth_token, url, nonce, form)}
        call.fetches.append((url, form, headers))
        try:
            async with self.deliver() as client:
                answer = await client.request(method, url, content=urlencode(form), headers=headers)
        except httpx.HTTPError as exc:  # Plivo's retry of a timeout would fail the same way: hung up
            call.refused.append((0, repr(exc)))
            call.live = False
            return
        verb = _verb(answer.text) if answer.status_code == 200 else None
        if verb == "Dial":
            call.xml.append(answer.text.split("?>", 1)[-1].strip())
            call.redirected.set()
        elif verb == "Conference":
            call.xml.append(answer.text)
            room = ET.fromstring(answer.text).find("Conference")  # noqa: S314 (the dispatcher's answer, in a test)
            assert room is not None
            self.conferences.setdefault(room.text or "", set()).add(call.uuid)
            call.redirected.set()
        elif verb == "Stream":
            call.streamed.append(answer.text)
        else:
            call.refused.append((answer.status_code, answer.text))
            call.live = False


def _invalid(body: Any) -> str | None:
    """Why a transfer's JSON is refused (400), None when Plivo takes it."""
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    unknown = set(body) - TRANSFER_FIELDS
    if unknown:
        return f"unknown arguments: {', '.join(sorted(unknown))}"
    legs = body.get("legs", "aleg")
    if legs not in ("aleg", "bleg", "both"):
        return "legs must be aleg, bleg or both"
    if legs in ("aleg", "both") and not isinstance(body.get("aleg_url"), str):
        return "aleg_url is required when legs is aleg or both"
    if legs != "aleg":
        return "this call is in no Dial: it has no B leg to transfer"
    if body.get("aleg_method", "POST") not in METHODS:
        return "aleg_method must be GET or POST"
    return None


async def _json_body(request: Request) -> Any:
    """The request's JSON, or Plivo's 400 when it is not JSON."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return plivo_error(400, "the request body must be JSON (application/json)")
    try:
        return json.loads(await request.body())
    except ValueError:
        return plivo_error(400, "the request body is not valid JSON")


def _invalid_create(body: Any) -> str | None:
    """Why a create's JSON is refused (400), None when Plivo takes it."""
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    unknown = set(body) - CREATE_FIELDS
    if unknown:
        return f"unknown arguments: {', '.join(sorted(unknown))}"
    missing = [name for name in ("from", "to", "answer_url") if not isinstance(body.get(name), str) or not body[name]]
    if missing:
        return f"{', '.join(missing)} required"
    if _plivo_number(body["from"]) in [_plivo_number(to) for to in body["to"].split("<")]:
        return "src and destination cannot overlap"
    for name in ("ring_timeout", "time_limit"):
        if name in body and (not isinstance(body[name], int) or isinstance(body[name], bool) or body[name] < 0):
            return f"{name} must be a whole number of seconds"
    for name in ("answer_method", "ring_method", "hangup_method", "fallback_method"):
        if body.get(name, "POST") not in METHODS:
            return f"{name} must be GET or POST"
    return None


def _plivo_number(number: str) -> str:
    """A number as Plivo writes it in its callbacks: digits, no `+`."""
    return number.removeprefix("+")


def _verb(text: str) -> str | None:
    """What the XML does when run: `Dial` (a `<Dial>` of a `<Number>` or `<User>`), `Conference`, `Stream`,
    else None."""
    try:
        root = ET.fromstring(text.split("?>", 1)[-1].strip())  # noqa: S314 (the dispatcher's answer, in a test)
    except ET.ParseError:
        return None
    if root.tag != "Response":
        return None
    dial = root.find("Dial")
    if dial is not None and any(child.tag in ("Number", "User") for child in dial):
        return "Dial"
    if root.find("Conference") is not None:
        return "Conference"
    return "Stream" if root.find("Stream") is not None else None
