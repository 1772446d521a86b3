"""A SIP call handed to a person: the dispatcher asks the SIP edge holding it (`POST /calls/{id}/transfer`
at that edge of SIP_EDGE_URL's, with SIP_EDGE_SECRET), which sends the caller's side a REFER or, refused, bridges the
caller to a call of its own to the person (sipedge/call_transfer.py, docs/sip.md).

A transfer is not safe to send twice, so each carries a request id: the edge answers a retried request
with the first one's outcome and never starts a second transfer. That makes a retry safe after a lost
answer, a reset connection or an edge restarting (503), within one deadline under the transfer's budget
(dispatcher/phone/transfers.py). An edge that never answers leaves the outcome unknown, and so does a
REFER the trunk accepted whose final NOTIFY the edge did not hear in time (the edge says so).

A warm transfer (`mode: warm`) waits longer: the person's ring, the bot's briefing (the edge asks for it at
`POST /edge/calls/{id}/warm`, dispatcher/api/warm_briefing.py) and the bridge, WARM_EXTRA_SECONDS more.
Its request id is recorded in the store for that long (`warm_key`, the first claim of it): the edge's steps
name it, and a step naming no warm transfer under way is refused, so the route makes no other bot speak.

A bridged transfer lasts at most `time_limit` seconds (PHONE_TRANSFER_TIME_LIMIT_SECONDS, as Twilio's
`<Dial timeLimit>`): the edge then hangs up both legs.

With several edges, the one holding the call is the one the store records for an outbound call (whichever
replica handed it over: dispatcher/phone/sip_edges.py), else the one its stream's `start` names (`edge_url`:
the dispatcher told it at an outbound call's hand-over, and an edge's `control_url` says it for inbound ones),
if SIP_EDGE_URL lists it; the request goes there alone, never to every edge. A call that names none of them
is not transferred (409 naming the edge's setting). The bot is sent the `start` without `edge_url`
(`unshown_to_bot`)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.types import Message

from botchannel.json_input import parse_json
from dispatcher.errors import ApiError
from dispatcher.outbound.http_client import HttpResponse
from dispatcher.outbound.retry import Backoff, Transient, send
from dispatcher.phone.edge_secret import EdgeSecret
from dispatcher.phone.sip_edges import SipEdges, json_of
from dispatcher.phone.transfer_target import WARM, TransferTarget
from dispatcher.phone.trunk_calls import TrunkCallSettings
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import FirstClaims

# The edge answers within its HAND_OVER_SECONDS (22 s: the REFER's final NOTIFY, or a refused REFER and a
# bridged call's ring, sipedge/call_transfer.py); retries share the deadline, under the bot's 30 s wait.
REQUEST_SECONDS = 24.0
BACKOFF = Backoff(attempts=3, base=0.2, cap=1.0, deadline=25.0)
# A warm one's edge answers within its WARM_SECONDS (36 s: a 12 s ring, a 20 s briefing, the bridge).
WARM_EXTRA_SECONDS = 14.0
WARM_BACKOFF = Backoff(attempts=3, base=0.2, cap=1.0, deadline=25.0 + WARM_EXTRA_SECONDS)
log = logging.getLogger("dispatcher.phone")
OUTCOME_UNKNOWN = "refer_outcome_unknown"  # the edge's code: the trunk took the REFER, its outcome unheard
EDGE_DRAINING = "edge_draining"  # the edge's 503 for a bridged or warm transfer while it drains: no retry changes it
HANDED = ("referred", "bridged", "warm")
SIP_EDGE_ACCOUNT = "sipedge"  # the account the edge's streams name in their `start` (sipedge/stream_frames.py)
WARM_UNDER_WAY_SECONDS = BACKOFF.deadline + WARM_EXTRA_SECONDS + 10.0  # the edge's answer, and its `failed` step


WARM_ASKED = "asked"  # the first claim of a warm transfer's key, by the dispatcher that asks the edge for it


def answer_seconds(warm: bool) -> float:
    """How long one try waits for the edge's answer: its hand-over's longest, a warm one's too."""
    return REQUEST_SECONDS + (WARM_EXTRA_SECONDS if warm else 0.0)


def edge_ask(target: TransferTarget, request_id: str, time_limit: int) -> dict[str, Any]:
    """What the edge is asked (`POST /calls/{id}/transfer`, sipedge/control.py `TransferAsked`)."""
    body: dict[str, Any] = {"to": target.to, "request_id": request_id, "time_limit": time_limit}
    if target.mode == WARM:
        body.update(mode=WARM, **({"summary": target.summary} if target.summary is not None else {}))
    return body


async def record_warm(records: FirstClaims, session_id: str, request_id: str) -> None:
    """The warm transfer `request_id` recorded as asked (`warm_key`) where the session runs, before the edge is
    asked: its steps are taken only then."""
    try:
        await records.first(warm_key(session_id, request_id), WARM_ASKED, WARM_UNDER_WAY_SECONDS)
    except StoreUnavailable:  # the edge's steps are refused: the person is called, the bot says nothing
        log.warning("phone call %s: the store did not record the warm transfer; the bot will not brief", session_id)


def warm_key(session_id: str, request_id: str) -> str:
    """The store's record of a warm transfer under way: claimed `WARM_ASKED` first when asked; a key claimed
    first by anything else (a step naming a transfer nobody asked for) never is."""
    return f"warm-transfer:{session_id}:{request_id}"


@dataclass(frozen=True)
class SipHanded:
    how: str  # "referred", "bridged" or "warm"
    to: str  # the SIP URI the person was reached at
    sip_status: int


class SipTransfers:
    def __init__(self, settings: TrunkCallSettings, records: FirstClaims) -> None:
        self._under_way = records  # the warm transfers asked of the edge, for its steps (`warm_key`)
        self.edges = SipEdges(settings.edge_urls, EdgeSecret(settings.secret), timeout=REQUEST_SECONDS,
                              max_answer_bytes=16384,
                              records=records)

    async def holding(self, session_id: str, named: object) -> str:
        """The edge that holds `session_id`'s call: the one the store recorded its outbound call at, else the
        one its stream named as its edge (`named`); 409 when neither is listed."""
        edge = await self.edges.recorded(session_id) or self.edges.holding(named)
        if edge is None:
            raise ApiError(409, "sip_edge_unknown", "this call's stream did not name its SIP edge as SIP_EDGE_URL "
                           "lists it, so the dispatcher cannot tell which of the edges holds it: set each edge's "
                           "`control_url` to its address in SIP_EDGE_URL (docs/sip.md#outbound-calls)")
        return edge

    async def transfer(self, session_id: str, target: TransferTarget, time_limit: int, edge: str) -> SipHanded:
        """The outcome at `edge` (the one holding the call); an `ApiError` saying why the call stays with its
        bot (or that nobody knows)."""
        body = edge_ask(target, uuid.uuid4().hex, time_limit)
        if target.mode == WARM:
            await record_warm(self._under_way, session_id, body["request_id"])
        return await self.ask(session_id, body, edge)

    async def ask(self, session_id: str, body: dict[str, Any], edge: str, within: float | None = None) -> SipHanded:
        """`body` (`edge_ask`'s) sent to `edge` and its answer read, as `transfer` says; `within`: the seconds the
        whole may take (another region's wait for it), past which the outcome is unknown. Under one try's wait
        (`answer_seconds`), it alone cuts a try: the client's own timeout firing with it would swallow its cut,
        and the retries would run on past it."""
        warm = body.get("mode") == WARM
        try:
            async with asyncio.timeout(within):
                answer = await send(self.edges.client(edge), "POST", f"/calls/{session_id}/transfer", json=body,
                                    backoff=WARM_BACKOFF if warm else BACKOFF, final=_draining,
                                    timeout=answer_seconds(warm))
        except Transient as exc:
            if exc.status is not None and exc.status != 504:  # the edge answered: it did nothing
                raise ApiError(503, "sip_edge_unavailable", f"the SIP edge did not take the transfer ({exc}): "
                               "nothing was transferred, try again", retry_after=exc.retry_after or 1.0) from None
            raise outcome_unknown("the SIP edge did not answer the transfer: the call may have been handed over; "
                                  "it is not sent again (the edge's log says where the call went)") from None
        except TimeoutError:  # `within` passed while a try was under way: it may have reached the edge
            raise outcome_unknown("the SIP edge did not answer the transfer in time: the call may have been handed "
                                  "over; it is not sent again (the edge's log says where the call went)") from None
        data = json_of(answer)
        if (handed := handed_of(answer.status_code, data, body["to"])) is not None:
            return handed
        error = data.get("error") if isinstance(data, dict) else None
        code = str(error.get("code")) if isinstance(error, dict) else ""
        message = str(error.get("message")) if isinstance(error, dict) else f"HTTP {answer.status_code}"
        if answer.status_code == 404:
            raise ApiError(409, "no_live_call", "the SIP edge holds no answered call of this session (not answered "
                           "yet, over, or already handed over)")
        if _draining(answer):  # the call's own edge, which alone can bridge it, until its drain ends
            raise ApiError(409, EDGE_DRAINING, f"the call's SIP edge is draining, which no retry changes: {message}")
        if answer.status_code == 409 and code == OUTCOME_UNKNOWN:
            raise outcome_unknown(message)
        if answer.status_code == 409:
            raise ApiError(409, code or "transfer_refused", message)
        raise ApiError(502, "sip_edge_refused", f"the SIP edge refused the transfer: {message}")

    async def aclose(self) -> None:
        await self.edges.aclose()


def handed_of(status: int, data: Any, to: str) -> SipHanded | None:
    """The edge's answer `data` (its status `status`) as a hand-over done, else None; `to`: the person asked."""
    if status == 200 and isinstance(data, dict) and data.get("how") in HANDED:
        return SipHanded(str(data["how"]), str(data.get("to", to)), int(data.get("sip_status") or 200))
    return None


def _draining(answer: HttpResponse) -> bool:
    """The edge's refusal of a transfer that places a call while it drains: final, where its other 503s are not."""
    if answer.status_code != 503:
        return False
    data = json_of(answer)
    error = data.get("error") if isinstance(data, dict) else None
    return isinstance(error, dict) and error.get("code") == EDGE_DRAINING


def unshown_to_bot(handshake: list[Message]) -> list[Message]:
    """A carrier's first frames as its bot is sent them: the SIP edge's `start` without the `edge_url` it names
    (the edge's control API, for the dispatcher's transfers, is none of the bot's business)."""
    return [_without_edge_url(message) for message in handshake]


def _without_edge_url(message: Message) -> Message:
    text = message.get("text")
    try:
        event = parse_json(text) if text is not None else None
    except ValueError:
        return message
    start = event.get("start") if isinstance(event, dict) and event.get("event") == "start" else None
    if not isinstance(start, dict) or "edge_url" not in start:
        return message
    start.pop("edge_url")
    return {**message, "text": json.dumps(event, separators=(",", ":"))}


def outcome_unknown(message: str) -> ApiError:
    """Nobody knows where the call went: the call stays `transferring`, so no second transfer follows."""
    return ApiError(504, "transfer_outcome_unknown", message, extra={"outcome": "unknown"})

