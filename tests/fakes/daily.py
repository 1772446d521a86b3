"""A fake Daily REST API (https://docs.daily.co/reference/rest-api), the parts voicefleet uses.

`GET /` (domain config), `POST /rooms` (400 `invalid-request-error` on a reused name),
`GET /rooms/:name` (the room object, a SIP room's `config.sip_uri.endpoint`), `GET /rooms/:name/presence`,
`DELETE /rooms/:name` (404 when missing), bearer auth (401), and the
documented error body `{"error", "info"}`. Telephony: a room's `sip` properties (`display_name`,
`video`, `sip_mode` "dial-in", `num_endpoints` 1-5; anything else is a 400) give it a SIP endpoint,
`enable_dialout` must be a boolean, and `POST /dialin/pinlessCallUpdate` `{callId, callDomain,
sipUri}` connects a held pinless call (`hold_call`) to a SIP URI of a room (404 for a call that is
not on hold, 400 for a URI no room has). Transfers: `POST /rooms/:name/sipCallTransfer` {sessionId,
toEndPoint, callerId?, extension?, waitBeforeExtensionDialSec?} and `/sipRefer` {sessionId, toEndPoint}
move a SIP participant (`dial_in`) out of the room (into `transfers`); any other field, a missing or
mistyped one, a `callerId` or `extension` with a SIP target, a REFER to a number, is a 400; a room or a
participant that is not there, or one that joined with a token (not SIP), is a 404. A room property
Daily's reference does not list is a 400, as Daily answers it; `enable_recording` takes Daily's
values, and `recordings_bucket` / `transcription_bucket` must hold `bucket_name`, `bucket_region`,
`assume_role_arn` (strings) and only Daily's other fields. `verify_token` checks a self-signed token
the way Daily would: HS256 with the API key.

Dial-out (docs.daily.co, REST API, rooms: "Room Dial Out Start", "stopDialOut()", "Update Permissions"):
`POST /rooms/:name/dialOut/start` takes one of `phoneNumber` (E.164) or `sipUri` (`sip:`), and Daily's other
documented fields (`userId` at most 36 characters), is refused 400 in a room without `enable_dialout: true`
(Daily requires it), and answers `{ok, sessionId}`. `callerId` ("the phone number displayed on the called phone")
is the `id` of one of the domain's purchased numbers (`purchased_numbers`, id -> number, which tests set; none
by default): any other is a 400 `invalid-request-error`, as is one with a `sipUri` (stricter than daily-js,
which documents the field as PSTN-only and ignored with a `sipUri`: the dispatcher never sends it there); Daily
documents neither refusal's words, so the fake's are its own (a `sipCallTransfer`'s alike). Each
start's body, `callerId` included, is kept in `dial_outs`. The person's leg joins the room as a participant whose id
is that `sessionId` (daily-js: the dial-out's `sessionId` is what `sipCallTransfer` and `stopDialOut` name, the
ids of a SIP participant) and whose `userId` is the start's, once the test answers it (`answer_dial_out`);
Daily's leg is in the room from `dialout.connected`, while it rings; here it joins at the answer (the review's
tests put it in while it rings: tests/dispatcher/phone/test_review_daily_warm.py).
`POST /rooms/:name/dialOut/stop` {sessionId} ends one (404 for one that is not live); `hang_up_dial_out`
is the person hanging up, `refuse_dial_out` a busy or unanswered line (it never joins). `POST
/rooms/:name/update-permissions` {data: {participant id or "*": {hasPresence, canSend, canReceive,
canAdmin}}}: any other key is a 400, a participant not in the room a 404; `canReceive` needs `base`, and
`byUserId` / `byParticipantId` maps to booleans or media objects (kept in `permissions`). `POST
/rooms/:name/eject` {ids?, user_ids?, ban?} removes those participants (a dial-out's leg stops) and answers
`{ejectedIds}`, a 200 though some were not there.

Webhooks (https://docs.daily.co/reference/rest-api/webhooks): `subscribe(url, hmac?)` is `POST /webhooks`: Daily
first POSTs its unsigned `{"test": "test"}` check and refuses the webhook unless that is answered 200; the `hmac`
is a BASE-64 secret (Daily makes 32 random bytes when none is given). Then each dial-out's `dialout.connected`
(the start taken: the phone rings), `dialout.answered` (`answer_dial_out`) and `dialout.stopped` (hung up,
refused, `dialOut/stop`, ejected) is POSTed as Daily documents the events (reference/rest-api/webhooks/events/
dialout-*: `{version, type, id, payload: {domain_id, room, timestamp, session_id, user_id, destination,
caller_id?}, event_ts}`), with `X-Webhook-Timestamp` (Unix seconds) and `X-Webhook-Signature`, the BASE-64
HMAC-SHA256 of `{timestamp}.{body}` keyed with the decoded secret. Each try's answer status is kept in
`sent_webhooks` (0: none). `retryType` (reference/rest-api/webhooks/create: "circuit-breaker", Daily's default, or
"exponential"): with `exponential` an event answered other than 2xx (or not at all) is sent again, the same body
signed anew, after a wait that doubles each time, RETRY_TRIES times at most (Daily's reference gives neither its
waits nor its count: these are the fake's bounds); with `circuit-breaker` it is tried once.

A transfer's webhooks (reference/rest-api/webhooks/events/calltransfer-*: `{version, type, id, payload: {domain_id,
room, timestamp, session_id (the SIP participant moved), mtg_session_id, to_endpoint, from_endpoint, is_sip_refer
(triggered, initiated)}, event_ts}`, `timestamp` a string of Unix seconds as Daily's examples send it):
`calltransfer.triggered` and `calltransfer.initiated` when a transfer is taken, then, for a `sipCallTransfer` only
(Daily sends neither for a REFER), `calltransfer.answered` (`answer_transfer`: the person picked up) and
`calltransfer.completed` (`end_transfer`: the person's end hung up). Daily documents no failure event, and the fake
sends none. `lose_transfer_answer(status)`: the next `sipCallTransfer` is taken, its webhooks delivered, and then it
is answered `status` (a 5xx: Daily acted, its answer lost). `pause_webhooks` holds every event back (Daily's delivery
lagging) until `release_webhooks` sends them in order; `send_again(kind)` delivers the last event of `kind` once more
(at least once), `send_event(event)` a test's own, signed as Daily signs.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import FakeApi

RETRY_TRIES = 5  # an event's tries in all with `retryType: exponential` (the fake's bound)
RETRY_FIRST_SECONDS = 0.05  # then doubled between tries (the fake's: tests wait on none of them)
API_KEY = "test-daily-key"
DOMAIN_NAME = "voicefleet-test"
DOMAIN_ID = "30f866c3-9123-452a-8723-ff58322d09c5"


def _error(status: int, kind: str, info: str) -> JSONResponse:
    return JSONResponse({"error": kind, "info": info}, status_code=status)


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class FakeDaily(FakeApi):
    error_body = staticmethod(
        lambda status: {"error": "rate-limit-error" if status == 429 else "server-error", "info": "injected"}
    )

    def __init__(self, api_key: str = API_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.rooms: dict[str, dict[str, Any]] = {}
        self.presence: dict[str, list[dict[str, Any]]] = {}  # room -> participants
        self.held_calls: dict[str, str] = {}  # pinless callId -> callDomain, waiting on hold
        self.connected_calls: dict[str, str] = {}  # callId -> the SIP URI it was patched to
        self.sip_participants: set[str] = set()  # participant ids that joined a room by SIP (`dial_in`)
        self.transfers: list[dict[str, Any]] = []  # each transfer taken: {"room", "how", and its body}
        self.dial_outs: dict[str, dict[str, Any]] = {}  # dial-out sessionId -> {"room", "state", and its body}
        self.purchased_numbers: dict[str, str] = {}  # `GET /purchased-phone-numbers`: each number's id -> E.164
        self.permissions: dict[str, dict[str, dict[str, Any]]] = {}  # room -> participant id -> last update
        self.webhook: tuple[str, str] | None = None  # (url, hmac): the domain's webhook, once subscribed
        self.retry_type = "circuit-breaker"  # the webhook's `retryType`, as `subscribe` set it
        self.deliver: Callable[[], httpx.AsyncClient] = lambda: httpx.AsyncClient(timeout=10)  # Daily → the server
        self.sent_webhooks: list[tuple[str, int]] = []  # (event type, the answer's status; 0: no answer)
        self.events: list[dict[str, Any]] = []  # every event emitted, in order
        self.call_transfers: dict[str, dict[str, Any]] = {}  # transferred participant -> {"room", "how", "state", …}
        self.lost_answers: list[int] = []  # the next sipCallTransfers: taken, then answered these statuses
        self.webhooks_paused = False
        self._held_events: list[tuple[str, bytes]] = []  # (type, body) held back while paused
        self._loop: asyncio.AbstractEventLoop | None = None  # the subscriber's: every delivery runs there

    @property
    def env(self) -> dict[str, str]:
        """What points the Daily client at this fake."""
        return {"DAILY_API_KEY": self.api_key, "DAILY_API_URL": self.url}

    def routes(self) -> list[Route]:
        return [
            Route("/v1/", self.domain, methods=["GET"]),
            Route("/v1/rooms", self.create_room, methods=["POST"]),
            Route("/v1/rooms", self.list_rooms, methods=["GET"]),
            Route("/v1/rooms/{name}/presence", self.room_presence, methods=["GET"]),
            Route("/v1/rooms/{name}", self.get_room, methods=["GET"]),
            Route("/v1/rooms/{name}", self.delete_room, methods=["DELETE"]),
            Route("/v1/dialin/pinlessCallUpdate", self.pinless_call_update, methods=["POST"]),
            Route("/v1/rooms/{name}/sipCallTransfer", self.sip_call_transfer, methods=["POST"]),
            Route("/v1/rooms/{name}/sipRefer", self.sip_refer, methods=["POST"]),
            Route("/v1/rooms/{name}/eject", self.eject, methods=["POST"]),
            Route("/v1/rooms/{name}/dialOut/start", self.dial_out_start, methods=["POST"]),
            Route("/v1/rooms/{name}/dialOut/stop", self.dial_out_stop, methods=["POST"]),
            Route("/v1/rooms/{name}/update-permissions", self.update_permissions, methods=["POST"]),
        ]

    # knobs ---------------------------------------------------------------------------------

    def hold_call(self, call_id: str, call_domain: str) -> None:
        """A caller dialled a pinless number: Daily holds them and calls `room_creation_api`."""
        self.held_calls[call_id] = call_domain

    def sip_endpoint(self, room: str) -> str:
        return f"sip:{room}@{DOMAIN_NAME}.sip.daily.co"

    def join(self, room: str, user_id: str) -> None:
        self.presence.setdefault(room, []).append({"id": f"p-{user_id}", "room": room, "userId": user_id})

    def dial_in(self, room: str, display_name: str = "+14155550100") -> str:
        """A caller's SIP leg joins `room`; its participant id. It has no meeting token, so its `userId` is
        Daily's documented default, its own session id (docs.daily.co, "daily-participant": user_id
        "Defaults to session_id if not set via token"), never a null the dispatcher could count on."""
        participant = str(uuid.uuid4())
        self.presence.setdefault(room, []).append({
            "room": room, "id": participant, "userId": participant, "userName": display_name,
            "mtgSessionId": f"mtg-{room}", "joinTime": datetime.now(UTC).isoformat(), "duration": 0})
        self.sip_participants.add(participant)
        return participant

    async def subscribe(self, url: str, secret: str | None = None, retry_type: str = "circuit-breaker") -> str:
        """`POST /webhooks`: Daily's check of `url` (an unsigned `{"test": "test"}`, 200 required), then every
        later event is sent there, signed with the webhook's `hmac` (returned), retried as `retry_type` says."""
        if retry_type not in ("circuit-breaker", "exponential"):
            raise ValueError(f"Daily refuses retryType {retry_type!r}: circuit-breaker or exponential")
        self.retry_type = retry_type
        async with self.deliver() as client:
            check = await client.post(url, content=b'{"test":"test"}', headers={"Content-Type": "application/json"})
        if check.status_code != 200:
            raise ValueError(f"Daily refuses the webhook: its check of {url} was answered {check.status_code}")
        secret = secret or base64.b64encode(secrets.token_bytes(32)).decode()
        self.webhook, self._loop = (url, secret), asyncio.get_running_loop()
        return secret

    def _emit(self, kind: str, session: str) -> None:
        """A dial-out's event POSTed to the webhook (from whichever thread the change happened on)."""
        dial = self.dial_outs[session]
        now = time.time()
        payload = {"domain_id": DOMAIN_ID, "room": dial["room"], "timestamp": int(now), "session_id": session,
                   "destination": dial.get("phoneNumber") or dial.get("sipUri"),
                   **({"user_id": dial["userId"]} if "userId" in dial else {}),
                   **({"caller_id": dial["callerId"]} if "callerId" in dial else {})}
        self._send({"version": "1.0.0", "type": kind, "id": f"{kind}-{session}-{uuid.uuid4().hex[:8]}",
                    "payload": payload, "event_ts": round(now, 3)})

    def _emit_transfer(self, kind: str, participant: str) -> concurrent.futures.Future[None] | None:
        """A transfer's event, shaped as Daily's reference shows it (its id: the event's kind, the participant
        and the second, as Daily's examples make it)."""
        moved = self.call_transfers[participant]
        now = time.time()
        payload: dict[str, Any] = {
            "domain_id": DOMAIN_ID, "room": moved["room"], "timestamp": str(int(now)), "session_id": participant,
            "mtg_session_id": f"mtg-{moved['room']}", "to_endpoint": moved["toEndPoint"],
            "from_endpoint": moved["from"]}
        if kind in ("calltransfer.triggered", "calltransfer.initiated"):
            payload["is_sip_refer"] = moved["how"] == "sipRefer"
        short = kind.removeprefix("calltransfer.")[:4]
        event_id = f"3602-call-transfer-{short}-{participant}{int(now)}"
        return self._send({"version": "1.0.0", "type": kind, "id": event_id, "payload": payload,
                           "event_ts": round(now, 2)})

    def _send(self, event: dict[str, Any]) -> concurrent.futures.Future[None] | None:
        """`event` POSTed to the webhook in the subscriber's loop (from whichever thread the change happened on),
        or held back while paused; the delivery's future."""
        self.events.append(event)
        if self.webhook is None or self._loop is None:
            return None
        body = json.dumps(event).encode()
        if self.webhooks_paused:
            self._held_events.append((event["type"], body))
            return None
        return asyncio.run_coroutine_threadsafe(self._post(event["type"], body), self._loop)

    def pause_webhooks(self) -> None:
        """Daily's delivery lags: every event from now on waits for `release_webhooks`."""
        self.webhooks_paused = True

    async def release_webhooks(self) -> None:
        """The events held back, delivered in the order they happened (each as its `retryType` says)."""
        self.webhooks_paused = False
        held, self._held_events = self._held_events, []
        for kind, body in held:
            await self._post(kind, body)

    async def send_again(self, kind: str) -> int:
        """The last event of `kind` delivered once more, signed anew (Daily delivers at least once): the status."""
        event = next(e for e in reversed(self.events) if e["type"] == kind)
        return await self._try(kind, json.dumps(event).encode())

    async def send_event(self, event: dict[str, Any]) -> int:
        """A test's own `event` (one the fake never makes: another deployment's room, a malformed one), signed
        as Daily signs: the status."""
        return await self._try(str(event.get("type")), json.dumps(event).encode())

    def answer_transfer(self, participant: str) -> None:
        """The person a `sipCallTransfer` rings answers: `calltransfer.answered`."""
        moved = self.call_transfers[participant]
        assert moved["how"] == "sipCallTransfer" and moved["state"] == "ringing", moved  # none for a REFER
        moved["state"] = "answered"
        self._emit_transfer("calltransfer.answered", participant)

    def end_transfer(self, participant: str) -> None:
        """The person's end hangs up the call they took: `calltransfer.completed`."""
        moved = self.call_transfers[participant]
        assert moved["how"] == "sipCallTransfer" and moved["state"] == "answered", moved
        moved["state"] = "completed"
        self._emit_transfer("calltransfer.completed", participant)

    def lose_transfer_answer(self, status: int = 503) -> None:
        """The next `sipCallTransfer` is taken (its webhooks delivered first, unless paused), then answered
        `status`: Daily acted, and its answer was lost."""
        self.lost_answers.append(status)

    async def _post(self, kind: str, body: bytes) -> None:
        """`body` delivered, and delivered again while it is not taken, as the webhook's `retryType` says."""
        tries = RETRY_TRIES if self.retry_type == "exponential" else 1
        wait = RETRY_FIRST_SECONDS
        for attempt in range(tries):
            if attempt:
                await asyncio.sleep(wait)
                wait *= 2
            if 200 <= await self._try(kind, body) < 300:
                return

    async def _try(self, kind: str, body: bytes) -> int:
        assert self.webhook is not None
        url, secret = self.webhook
        timestamp = str(int(time.time()))
        digest = hmac.new(base64.b64decode(secret), timestamp.encode() + b"." + body, hashlib.sha256).digest()
        headers = {"Content-Type": "application/json", "X-Webhook-Timestamp": timestamp,
                   "X-Webhook-Signature": base64.b64encode(digest).decode()}
        try:
            async with self.deliver() as client:
                answer = await client.post(url, content=body, headers=headers)
            status = answer.status_code
        except httpx.HTTPError:
            status = 0
        self.sent_webhooks.append((kind, status))
        return status

    def answer_dial_out(self, session: str) -> str:
        """The person answers a ringing dial-out: their leg joins its room (id: the dial-out's sessionId)."""
        dial = self.dial_outs[session]
        assert dial["state"] == "ringing", dial
        dial["state"] = "answered"
        target = dial.get("phoneNumber") or dial.get("sipUri")
        self.presence.setdefault(dial["room"], []).append({
            "room": dial["room"], "id": session, "userId": dial.get("userId"),
            "userName": dial.get("displayName") or target, "mtgSessionId": f"mtg-{dial['room']}",
            "joinTime": datetime.now(UTC).isoformat(), "duration": 0})
        self.sip_participants.add(session)
        self._emit("dialout.answered", session)
        return session

    def hang_up_dial_out(self, session: str) -> None:
        """The person hangs up: their leg leaves the room."""
        self._end_dial_out(session, "stopped")

    def refuse_dial_out(self, session: str) -> None:
        """Busy, declined or unanswered: Daily's dial-out stops without the person ever joining."""
        assert self.dial_outs[session]["state"] == "ringing"
        self.dial_outs[session]["state"] = "stopped"
        self._emit("dialout.stopped", session)

    def ringing(self, room: str) -> list[str]:
        return [key for key, dial in self.dial_outs.items() if dial["room"] == room and dial["state"] == "ringing"]

    def _end_dial_out(self, session: str, state: str) -> None:
        dial = self.dial_outs[session]
        dial["state"] = state
        people = self.presence.get(dial["room"], [])
        people[:] = [p for p in people if p["id"] != session]
        self._emit("dialout.stopped", session)

    def verify_token(self, token: str) -> dict[str, Any]:
        """The token's claims if its HS256 signature is valid for this domain's API key."""
        header, payload, signature = token.split(".")
        expected = hmac.new(self.api_key.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(signature)):
            raise ValueError("bad signature")
        if json.loads(_unb64(header)) != {"alg": "HS256", "typ": "JWT"}:
            raise ValueError("unexpected header")
        claims: dict[str, Any] = json.loads(_unb64(payload))
        return claims

    # endpoints -----------------------------------------------------------------------------

    def _authorized(self, request: Request) -> Response | None:
        auth = request.headers.get("authorization")
        if not auth:
            return _error(400, "authorization-header-error", "missing Authorization header")
        if auth != f"Bearer {self.api_key}":
            return _error(401, "authentication-error", "bad API key")
        return None

    async def domain(self, request: Request) -> Response:
        if denied := self._authorized(request):
            return denied
        return JSONResponse({"domain_name": DOMAIN_NAME, "domain_id": DOMAIN_ID, "config": {}})

    async def create_room(self, request: Request) -> Response:
        if denied := self._authorized(request):
            return denied
        body = await request.json()
        name = body.get("name")
        if name in self.rooms:
            return _error(400, "invalid-request-error", f"a room named {name} already exists")
        properties = body.get("properties", {})
        if problem := _telephony_problem(properties) or _property_problem(properties):
            return _error(400, "invalid-request-error", problem)
        room = {
            "id": f"id-{name}",
            "name": name,
            "api_created": True,
            "privacy": body.get("privacy", "public"),
            "url": f"https://{DOMAIN_NAME}.daily.co/{name}",
            "config": body.get("properties", {}),
            "created_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        if "sip" in properties:
            room["config"] = {**properties, "sip_uri": {"endpoint": self.sip_endpoint(name)}}
        self.rooms[name] = room
        return JSONResponse(room)

    async def pinless_call_update(self, request: Request) -> Response:
        if denied := self._authorized(request):
            return denied
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid-request-error", "body is not JSON")
        fields = {key: body.get(key) if isinstance(body, dict) else None for key in ("callId", "callDomain", "sipUri")}
        missing = [key for key, value in fields.items() if not isinstance(value, str) or not value]
        if missing:
            return _error(400, "invalid-request-error", f"missing {', '.join(missing)}")
        if self.held_calls.get(fields["callId"]) != fields["callDomain"]:
            return _error(404, "not-found", f"no call {fields['callId']} on hold in that domain")
        endpoints = {self.sip_endpoint(name) for name, room in self.rooms.items() if "sip_uri" in room["config"]}
        if fields["sipUri"] not in endpoints:
            return _error(400, "invalid-request-error", "sipUri is not the SIP endpoint of a room")
        del self.held_calls[fields["callId"]]
        self.connected_calls[fields["callId"]] = fields["sipUri"]
        return JSONResponse({"status": "success"})

    async def sip_call_transfer(self, request: Request) -> Response:
        return await self._transfer(request, "sipCallTransfer", TRANSFER_FIELDS)

    async def sip_refer(self, request: Request) -> Response:
        return await self._transfer(request, "sipRefer", REFER_FIELDS)

    async def _transfer(self, request: Request, how: str, fields: dict[str, type]) -> Response:
        if denied := self._authorized(request):
            return denied
        name = request.path_params["name"]
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid-request-error", "body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "invalid-request-error", "body must be an object")
        if unknown := sorted(set(body) - set(fields)):
            return _error(400, "invalid-request-error", f"unknown field: {unknown[0]}")
        for key, kind in fields.items():
            if key in body and (not isinstance(body[key], kind) or isinstance(body[key], bool)):
                return _error(400, "invalid-request-error", f"{key} must be a {kind.__name__}")
        session, to = body.get("sessionId"), body.get("toEndPoint")
        if not session or not to:
            return _error(400, "invalid-request-error", "sessionId and toEndPoint are required")
        pstn = not to.startswith(("sip:", "sips:"))
        if pstn and (how == "sipRefer" or not to.startswith("+") or not to[1:].isdigit()):
            return _error(400, "invalid-request-error", f"toEndPoint {to} is not a SIP URI"
                          + ("" if how == "sipRefer" else " or a phone number (+ and digits)"))
        if not pstn and ("callerId" in body or "extension" in body):
            return _error(400, "invalid-request-error", "callerId and extension are only valid with a phone number")
        if (refused := self._caller_id_refused(body)) is not None:
            return refused
        if not 0 <= body.get("waitBeforeExtensionDialSec", 0) <= 60 or not 1 <= len(body.get("extension", "1")) <= 20:
            return _error(400, "invalid-request-error", "extension is 1-20 characters, its wait 0-60 seconds")
        if name not in self.rooms:
            return _error(404, "not-found", f"room {name} not found")
        people = self.presence.get(name, [])
        found = next((p for p in people if p["id"] == session), None)
        if found is None or session not in self.sip_participants:
            return _error(404, "not-found", f"no SIP participant {session} in room {name}")
        people.remove(found)  # it leaves the room: Daily's participant-left
        self.transfers.append({"room": name, "how": how, **body})
        self.call_transfers[session] = {"room": name, "how": how, "state": "ringing", "toEndPoint": to,
                                        "from": found.get("userName") or session}
        sent = [self._emit_transfer(kind, session) for kind in ("calltransfer.triggered", "calltransfer.initiated")]
        if how == "sipCallTransfer" and self.lost_answers:
            for delivery in sent:  # heard before the lost answer (a paused webhook is not)
                if delivery is not None:
                    await asyncio.wrap_future(delivery)
            status = self.lost_answers.pop(0)
            return JSONResponse(self.error_body(status), status_code=status)
        return JSONResponse({"ok": "true"})

    async def _body(self, request: Request, fields: dict[str, type]) -> dict[str, Any] | Response:
        """The request's JSON object with Daily's documented `fields` only, each of its type; else Daily's 400."""
        if denied := self._authorized(request):
            return denied
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid-request-error", "body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "invalid-request-error", "body must be an object")
        if unknown := sorted(set(body) - set(fields)):
            return _error(400, "invalid-request-error", f"unknown field: {unknown[0]}")
        for key, kind in fields.items():
            if key in body and (not isinstance(body[key], kind) or (kind is not bool and isinstance(body[key], bool))):
                return _error(400, "invalid-request-error", f"{key} must be a {kind.__name__}")
        return body

    async def dial_out_start(self, request: Request) -> Response:
        body = await self._body(request, DIAL_OUT_FIELDS)
        if isinstance(body, Response):
            return body
        name = request.path_params["name"]
        phone, sip = body.get("phoneNumber"), body.get("sipUri")
        if (phone is None) == (sip is None):
            return _error(400, "invalid-request-error", "one of phoneNumber or sipUri is required, not both")
        if phone is not None and (not phone.startswith("+") or not phone[1:].isdigit()):
            return _error(400, "invalid-request-error", "phoneNumber must start with + and the country code")
        if sip is not None and not sip.startswith("sip:"):
            return _error(400, "invalid-request-error", "sipUri must start with sip:")
        if len(body.get("userId", "")) > 36:
            return _error(400, "invalid-request-error", "userId is at most 36 characters")
        if sip is not None and "callerId" in body:
            return _error(400, "invalid-request-error", "callerId is only valid with a phoneNumber")
        if (refused := self._caller_id_refused(body)) is not None:
            return refused
        if name not in self.rooms:
            return _error(404, "not-found", f"room {name} not found")
        if self.rooms[name]["config"].get("enable_dialout") is not True:
            return _error(400, "invalid-request-error", "dial-out is not enabled for this room (enable_dialout)")
        session = str(uuid.uuid4())
        self.dial_outs[session] = {"room": name, "state": "ringing", **body}
        self._emit("dialout.connected", session)  # the phone rings ("the initiator will hear the call ringing")
        return JSONResponse({"ok": "true", "sessionId": session})

    def _caller_id_refused(self, body: dict[str, Any]) -> Response | None:
        """A `callerId` that is none of the domain's purchased numbers' ids (a number itself included)."""
        caller_id = body.get("callerId")
        if caller_id is None or caller_id in self.purchased_numbers:
            return None
        return _error(400, "invalid-request-error", f"callerId {caller_id} is not a purchased phone number's id")

    async def dial_out_stop(self, request: Request) -> Response:
        body = await self._body(request, {"sessionId": str})
        if isinstance(body, Response):
            return body
        name, session = request.path_params["name"], body.get("sessionId")
        if not session:
            return _error(400, "invalid-request-error", "sessionId is required")
        if name not in self.rooms:
            return _error(404, "not-found", f"room {name} not found")
        dial = self.dial_outs.get(session)
        if dial is None or dial["room"] != name or dial["state"] == "stopped":
            return _error(404, "not-found", f"no active dial-out session {session}")
        self._end_dial_out(session, "stopped")
        return JSONResponse({"ok": "true"})

    async def update_permissions(self, request: Request) -> Response:
        body = await self._body(request, {"data": dict})
        if isinstance(body, Response):
            return body
        name, data = request.path_params["name"], body.get("data")
        if not data:
            return _error(400, "invalid-request-error", "data is required")
        if name not in self.rooms:
            return _error(404, "not-found", f"room {name} not found")
        present = {p["id"] for p in self.presence.get(name, [])}
        for participant, update in data.items():
            if problem := _permission_problem(update):
                return _error(400, "invalid-request-error", f"{participant}: {problem}")
            if participant != "*" and participant not in present:
                return _error(404, "not-found", f"no participant {participant} in room {name}")
        room = self.permissions.setdefault(name, {})
        for participant, update in data.items():
            room.setdefault(participant, {}).update(update)
        return JSONResponse({"ok": True})

    async def eject(self, request: Request) -> Response:
        """Daily's `eject` (docs.daily.co/reference/rest-api/rooms/eject): `ids` (participant ids) and `user_ids`
        (at most 100 each), `ban`, no other field; the ids it ejected, none missing one (still a 200)."""
        body = await self._body(request, {"ids": list, "user_ids": list, "ban": bool})
        if isinstance(body, Response):
            return body
        ids, users = body.get("ids", []), body.get("user_ids", [])
        if not all(isinstance(i, str) for i in [*ids, *users]) or len(ids) > 100 or len(users) > 100:
            return _error(400, "invalid-request-error", "ids and user_ids are lists of at most 100 strings")
        name = request.path_params["name"]
        if name not in self.rooms:
            return _error(404, "not-found", f"room {name} not found")
        people = self.presence.get(name, [])
        ejected = [p["id"] for p in people if p["id"] in ids or p["userId"] in users]
        people[:] = [p for p in people if p["id"] not in ejected]
        for dial_out, dial in self.dial_outs.items():
            if dial_out in ejected:
                dial["state"] = "stopped"
                self._emit("dialout.stopped", dial_out)
        return JSONResponse({"ejectedIds": ejected})

    async def list_rooms(self, request: Request) -> Response:
        """Newest first, at most `limit` (≤ 100), `ending_before=<id>` pages towards older rooms."""
        if denied := self._authorized(request):
            return denied
        rooms = list(reversed(self.rooms.values()))  # dicts keep creation order
        if before := request.query_params.get("ending_before"):
            ids = [room["id"] for room in rooms]
            rooms = rooms[ids.index(before) + 1 :] if before in ids else []
        limit = min(int(request.query_params.get("limit", "100")), 100)
        return JSONResponse({"total_count": len(self.rooms), "data": rooms[:limit]})

    async def room_presence(self, request: Request) -> Response:
        if denied := self._authorized(request):
            return denied
        name = request.path_params["name"]
        if name not in self.rooms:
            return _error(404, "not-found", f"room {name} not found")
        people = self.presence.get(name, [])
        if user_id := request.query_params.get("userId"):
            people = [p for p in people if p["userId"] == user_id]
        return JSONResponse({"total_count": len(people), "data": people})

    async def get_room(self, request: Request) -> Response:
        """`GET /rooms/:name`: the room object as `POST /rooms` answered it (a SIP room's `config.sip_uri`)."""
        if denied := self._authorized(request):
            return denied
        name = request.path_params["name"]
        if name not in self.rooms:
            return _error(404, "not-found", f"room {name} not found")
        return JSONResponse(self.rooms[name])

    async def delete_room(self, request: Request) -> Response:
        if denied := self._authorized(request):
            return denied
        name = request.path_params["name"]
        if self.rooms.pop(name, None) is None:
            return _error(404, "not-found", f"room {name} not found")
        self.presence.pop(name, None)
        return JSONResponse({"deleted": True, "name": name})


# Daily's bodies (docs.daily.co, REST API, rooms: "Room SIP Call Transfer", "Room SIP Refer").
TRANSFER_FIELDS: dict[str, type] = {"sessionId": str, "toEndPoint": str, "callerId": str, "extension": str,
                                    "waitBeforeExtensionDialSec": int}
REFER_FIELDS: dict[str, type] = {"sessionId": str, "toEndPoint": str}
# "Room Dial Out Start"'s body (`videoSettings` and `codecs` are objects; `video` only with a sipUri).
DIAL_OUT_FIELDS: dict[str, type] = {"sipUri": str, "phoneNumber": str, "extension": str,
                                    "waitBeforeExtensionDialSec": int, "displayName": str, "userId": str,
                                    "callerId": str, "video": bool, "videoSettings": dict, "codecs": dict}
# "Update Permissions": a participant's update; `canReceive` as the in-call `updateParticipant` documents it.
PERMISSION_KEYS = {"hasPresence", "canSend", "canReceive", "canAdmin"}
MEDIA_KEYS = {"video", "audio", "screenVideo", "screenAudio", "customVideo", "customAudio"}
SEND_KINDS = MEDIA_KEYS  # `canSend`: a boolean or an array of these
ADMIN_KINDS = {"participants", "streaming", "transcription"}  # `canAdmin`: a boolean or an array of these
SIP_KEYS = {"display_name": str, "video": bool, "sip_mode": str, "num_endpoints": int}


# Daily's room properties (docs.daily.co, REST API, rooms: "Config").
ROOM_PROPERTIES = frozenset({
    "nbf", "exp", "max_participants", "enable_people_ui", "enable_pip_ui", "enable_emoji_reactions",
    "enable_hand_raising", "enable_prejoin_ui", "enable_live_captions_ui", "enable_network_ui",
    "enable_noise_cancellation_ui", "enable_breakout_rooms", "enable_knocking", "enable_screenshare",
    "enable_video_processing_ui", "enable_chat", "enable_shared_chat_history", "start_video_off",
    "start_audio_off", "owner_only_broadcast", "enable_recording", "eject_at_room_exp", "eject_after_elapsed",
    "enable_advanced_chat", "enable_hidden_participants", "enable_mesh_sfu", "sfu_switchover",
    "enable_adaptive_simulcast", "enable_multiparty_adaptive_simulcast", "enforce_unique_user_ids",
    "experimental_optimize_large_calls", "lang", "meeting_join_hook", "signaling_imp", "geo", "rtmp_geo",
    "disable_rtmp_geo_fallback", "recordings_bucket", "enable_terse_logging", "auto_transcription_settings",
    "enable_transcription_storage", "transcription_bucket", "recordings_template", "enable_dialout",
    "dialout_config", "streaming_endpoints", "permissions", "sip", "sip_uri",
})  # fmt: skip
RECORDING_VALUES = ("cloud", "cloud-audio-only", "local", "raw-tracks", "<not set>")
BUCKET_REQUIRED = ("bucket_name", "bucket_region", "assume_role_arn")
BUCKET_FIELDS = frozenset({*BUCKET_REQUIRED, "allow_api_access", "allow_streaming_from_bucket"})


def _property_problem(properties: dict[str, Any]) -> str | None:
    """Why Daily would refuse a room property that is not a telephony one, or None."""
    unknown = sorted(set(properties) - ROOM_PROPERTIES)
    if unknown:
        return f"unknown room property: {unknown[0]}"
    if "enable_recording" in properties and properties["enable_recording"] not in RECORDING_VALUES:
        return f"enable_recording must be one of {', '.join(RECORDING_VALUES)}"
    storage = properties.get("enable_transcription_storage", False)
    if not isinstance(storage, bool):
        return "enable_transcription_storage must be a boolean"
    for name in ("recordings_bucket", "transcription_bucket"):
        if name not in properties:
            continue
        bucket = properties[name]
        if not isinstance(bucket, dict) or set(bucket) - BUCKET_FIELDS \
                or not all(isinstance(bucket.get(f), str) and bucket.get(f) for f in BUCKET_REQUIRED):
            return f"{name} must hold {', '.join(BUCKET_REQUIRED)} (and only Daily's other bucket fields)"
    return None


def _permission_problem(update: object) -> str | None:
    """Why Daily would refuse one participant's permission update, or None."""
    if not isinstance(update, dict) or not update:
        return "a permission update is an object of hasPresence, canSend, canReceive, canAdmin"
    if unknown := sorted(set(update) - PERMISSION_KEYS):
        return f"unknown permission: {unknown[0]}"
    if "hasPresence" in update and not isinstance(update["hasPresence"], bool):
        return "hasPresence is a boolean"
    for key, kinds in (("canSend", SEND_KINDS), ("canAdmin", ADMIN_KINDS)):
        value = update.get(key, False)
        if not isinstance(value, bool) and not (isinstance(value, list) and all(v in kinds for v in value)):
            return f"{key} is a boolean or an array of {', '.join(sorted(kinds))}"
    receive = update.get("canReceive")
    if receive is None:
        return None
    if not isinstance(receive, dict) or "base" not in receive or set(receive) - {"base", "byUserId", "byParticipantId"}:
        return "canReceive takes base (required), byUserId and byParticipantId"
    if not all(isinstance(receive.get(key, {}), dict) for key in ("byUserId", "byParticipantId")):
        return "canReceive.byUserId and byParticipantId map ids to permissions"
    grants = [receive["base"], *(v for key in ("byUserId", "byParticipantId") for v in receive.get(key, {}).values())]
    for grant in grants:
        if not isinstance(grant, bool) and not (isinstance(grant, dict) and not set(grant) - MEDIA_KEYS):
            return "a canReceive permission is a boolean or an object of media kinds"
    return None


def _telephony_problem(properties: dict[str, Any]) -> str | None:
    """Why Daily would refuse the room's telephony properties, or None."""
    if "enable_dialout" in properties and not isinstance(properties["enable_dialout"], bool):
        return "enable_dialout must be a boolean"
    sip = properties.get("sip")
    if sip is None:
        return None
    if not isinstance(sip, dict):
        return "sip must be an object"
    for key, value in sip.items():
        kind = SIP_KEYS.get(key)
        if kind is None or not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return f"sip.{key} is not a valid SIP property"
    if sip.get("sip_mode", "dial-in") != "dial-in":
        return "sip.sip_mode must be dial-in"
    if not 1 <= sip.get("num_endpoints", 1) <= 5:
        return "sip.num_endpoints must be 1-5"
    return None
