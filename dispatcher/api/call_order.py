"""One call placed out, whoever asked: `POST /calls` (dispatcher/api/routers/trunk_calls.py) and each row of a
campaign (dispatcher/campaigns/worker.py) go through `order_call`, so the key's start rate, the trunk's or
carrier's policy and pace, and the Idempotency-Key's replay hold for both the same way.

The call's session is a carrier stream's (`transport: exotel`, as an inbound SIP call's): the key that asked
owns it. With an Idempotency-Key the same key again answers with the call's session (`replayed`): nothing is
placed twice, at any replica. A try that provably reached no edge or carrier leaves no record (`current_try`):
its retry runs, as a new call in a session of its own."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from dispatcher.api.call_outcomes import ended_unstarted, open_timeline
from dispatcher.api.call_place import check_policy, dialer_of, place_out, placed_base
from dispatcher.api.call_schemas import CallRequest
from dispatcher.api.phone_start import phone_session_id, phone_start
from dispatcher.api.state import AppState
from dispatcher.api.utf8_bodies import utf8_only
from dispatcher.errors import ApiError
from dispatcher.phone.access import carrier_base
from dispatcher.phone.dialer import UNANSWERED
from dispatcher.phone.trunk_calls import NothingHeld, TrunkCalls
from dispatcher.sessions.ids import IDEMPOTENCY_KEY, Caller
from dispatcher.store.unavailable import StoreUnavailable

REPLAY_SECONDS = 86_400.0  # an Idempotency-Key's call is placed once within a day
CARRIER = "exotel"  # the edge's stream speaks Exotel's shape (sipedge/stream_frames.py)
SPENT = "spent"  # a try that reached no edge or carrier: its key's retry is a new call
TRIES_LOOKED = 4  # bounds one request's moves past spent tries (each a concurrent retry's)


@dataclass(frozen=True)
class Placed:
    shown: dict[str, Any]  # `POST /calls`' answer
    replayed: bool  # the Idempotency-Key's first call, placed before: nothing was placed now


def trunk_calls_of(state: AppState) -> TrunkCalls:
    if state.trunk_calls is None:
        raise ApiError(503, "sip_edge_not_configured", "no SIP edge places calls for this dispatcher: set SIP_EDGE_URL "
                       "and SIP_EDGE_SECRET (docs/sip.md#outbound-calls)", retry_after=60)
    return state.trunk_calls


def checked_idempotency_key(idempotency_key: str | None) -> str | None:
    if idempotency_key is not None and not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 printable ASCII characters")
    return idempotency_key


def carrier_of(payload: CallRequest) -> str:
    """`sip` with a trunk, else `twilio`: a trunk names the SIP edge's way out, and a carrier's API needs none."""
    carrier = payload.carrier or ("sip" if payload.trunk else "twilio")
    if carrier == "sip" and not payload.trunk:
        raise ApiError(422, "trunk_required", "a call through the SIP edge names its `trunk` (or give "
                       "`\"carrier\": \"twilio\"` or `\"telnyx\"` to place it through that carrier's Calls API)")
    if carrier != "sip" and payload.trunk:
        raise ApiError(422, "trunk_not_used", f"a call through {carrier}'s Calls API takes no `trunk`: leave it "
                       "out, or give `\"carrier\": \"sip\"`")
    if carrier == "sip" and payload.voicemail:
        raise ApiError(422, "voicemail_not_offered", "`voicemail` applies to calls through Twilio or Telnyx (their "
                       "answering machine detection); leave it out of a SIP trunk's call")
    return carrier


async def order_call(state: AppState, who: Caller, payload: CallRequest, idempotency_key: str | None, *,
                     fence: Callable[[], Awaitable[None]] | None = None) -> Placed:
    """Places the call (an `ApiError` when it was not placed, or may have been: 504 `…_unanswered`). `fence`,
    awaited after the pace's wait and just before the call is marked placed and created, raises an `ApiError`
    when the asker may no longer place it (a campaign row's lease taken over meanwhile): nothing is placed."""
    carrier = carrier_of(payload)
    calls = trunk_calls_of(state) if carrier == "sip" else None
    if carrier != "sip":
        dialer_of(state, carrier)  # 503 naming the settings, before anything is counted
    utf8_only(payload.model_dump(exclude_none=True), "the call's JSON")
    user_body = payload.body or {}
    if len(json.dumps(user_body, separators=(",", ":")).encode()) > state.settings.max_body_bytes:
        raise ApiError(413, "body_too_large", f"`body` exceeds {state.settings.max_body_bytes} bytes as JSON")
    checked_idempotency_key(idempotency_key)
    await state.start_limit.check(who.id)
    caller = who.name or who.id  # the key's name: the edge's trunks name the keys that may use them
    trunk = await calls.trunk(str(payload.trunk)) if calls is not None else None
    if trunk is not None:
        trunk.check_caller(caller)
    else:
        check_policy(dialer_of(state, carrier), caller, payload.to, payload.caller_id)
    route: dict[str, Any] = {"trunk": trunk.name} if trunk is not None else {"carrier": carrier}
    bot_body = {"direction": "outbound", "from": payload.caller_id, "to": payload.to, **route, "body": user_body}
    # Neither the edge nor a carrier is told the request's Host: a key's holder would pick where the callee's
    # audio and the session's token go. The edge takes the stream's path (dispatcher/phone/trunk_calls.py).
    base = (calls.stream_base(carrier_base(state.phone.settings, state.peers.regions))
            if calls is not None else placed_base(state, carrier))
    session_key, earlier = (await current_try(state, who, idempotency_key) if idempotency_key is not None
                            else (None, None))
    answer, grant = phone_start(state.phone, CARRIER if trunk is not None else carrier, bot_body, base, who,
                                state.settings.region, session_key=session_key,
                                line=trunk.line if trunk is not None else None)
    session_id = str(answer["sessionId"])
    shown = {"session_id": session_id, "to": payload.to, "caller_id": payload.caller_id, "carrier": carrier, **route}
    if earlier is not None:
        return Placed({**shown, "status": earlier}, True)
    # A call refused here was never asked for: its retry is a first try.
    # Shared between keys: one key's campaign never holds more than one turn ahead of another key's call.
    turn = (await calls.pace(trunk, who.id) if calls is not None and trunk is not None
            else await dialer_of(state, carrier).pace(who.id))
    if who.name is not None:  # a key over its budget places nothing (its session would be refused at its start,
        state.sessions.budgets.check(who.name)  # after the carrier's create had rung the callee): 429 over_budget
    if fence is not None:
        await fence()
    if idempotency_key is not None and not await state.replication.coordination.spent.first_use(
            f"call:{session_id}", REPLAY_SECONDS):
        raise ApiError(409, "call_in_progress", "this Idempotency-Key's call is being placed; ask again in a moment "
                       "(or follow its session)", retry_after=1, extra={"session_id": session_id})
    stream_url = f"{answer['wsUrl']}/{answer['token']}"
    try:
        if calls is not None and trunk is not None:
            stream = {"stream_path" if base is None else "stream_url": stream_url}
            await calls.hand_over({"session_id": session_id, **stream, "to": payload.to,
                                   "from": payload.caller_id, "trunk": trunk.name, "caller": caller},
                                  keyed=idempotency_key is not None)
        else:
            shown["call_sid"] = await place_out(state, dialer_of(state, carrier), payload, who, session_id,
                                                stream_url, bot_body)
            await open_timeline(state, session_id, carrier=carrier, call_sid=shown["call_sid"])
    except ApiError as exc:
        if exc.code.endswith(UNANSWERED):  # it may ring yet: its stream stays open to it, and a retry is a replay
            state.sessions.timeline.note(session_id, "requested", carrier=carrier, placed="unknown")
            await state.sessions.timeline.settled()  # written before the answer: a retry at once sees it
            raise
        # The session never ran, and ends here with why. Its token spent now: an edge (or a carrier) that took
        # the call after all (its answer lost) cannot open it.
        await state.phone.spent.first_use(grant.token_id, grant.expires - time.time() + 60.0)
        # A carrier's refusal created nothing; an edge's failure proves it holds nothing only as `NothingHeld`
        # (else it may ring yet: the key's retry is refused naming this ended session, placing nothing).
        nothing = calls is None or isinstance(exc, NothingHeld)
        await ended_unstarted(state, session_id, **route, detail=exc.message,
                              handed_over=False if nothing else "unknown")
        raise
    if turn.by:  # several regions: whose turn it was, the home's or this region's share of the pace
        state.sessions.timeline.note(session_id, "paced", by=turn.by, waited=round(turn.wait, 3))
    return Placed({**shown, "status": "starting", "paced_seconds": round(turn.wait, 3) if turn.wait else None}, False)


async def current_try(state: AppState, who: Caller, idempotency_key: str) -> tuple[str, str | None]:
    """The session key of the Idempotency-Key's current try, and its status to answer with (a replay), or None:
    place it now. A try that provably reached no edge or carrier (each answered 503, say) leaves no record: the
    key moves on to a fresh session, so its retry runs as a new call, and each session ends once. The first
    try's key is `call-<key>`; later ones are recorded under the key (in the store: the same at every
    replica), and only when an earlier one was spent. Of concurrent retries, the first to move on names the
    next try for all."""
    records = state.replication.coordination.key_holders
    what = f"call-try:{who.id}:{idempotency_key}"
    try:
        held = await records.held(what) or f"call-{idempotency_key}"
        for _ in range(TRIES_LOOKED):
            status = await _earlier(state, phone_session_id(who, held, state.settings.region))
            if status != SPENT:
                return held, status
            await records.let_go(what, held)
            held = await records.first(what, f"call-{idempotency_key}-{secrets.token_hex(8)}", REPLAY_SECONDS)
    except StoreUnavailable:
        raise ApiError(503, "store_unavailable", "the store did not answer which try of this Idempotency-Key's "
                       "call is the current one: nothing was placed, try again", retry_after=1) from None
    raise ApiError(503, "call_retries_contended", "other requests with this Idempotency-Key are moving it on to a "
                   "new try: nothing was placed, ask again in a moment", retry_after=1)


async def _earlier(state: AppState, session_id: str) -> str | None:
    """A try's status to replay; None: never placed (place it now); SPENT: it ended before reaching the edge
    or carrier (`handed_over` false), and the key moves on. A try that may ring (its create unanswered) is
    replayed; one whose edge failed yet may hold it is refused again (409 `call_not_placed`): never placed twice."""
    session = await state.sessions.get(session_id)
    events = await state.sessions.timeline.read(session_id) if session is None else []
    ends = [e for e in events if e.get("event") == "ended"]
    unconfirmed = any(e.get("placed") == "unknown" for e in events)  # Twilio's create went unanswered
    if session is None and not unconfirmed and ends and all(e.get("handed_over") is False for e in ends):
        return SPENT
    failed = next((e for e in ends if e.get("handed_over") == "unknown"), None)
    if session is None and failed is not None:
        # The first try was answered with its failure, and its session ended then: a replay answers that
        # failure again (a failed session is never answered 2xx), never places it (the edge may hold it).
        raise ApiError(409, "call_not_placed", f"this Idempotency-Key's call failed and its session {session_id} "
                       f"ended: {failed.get('detail') or 'not placed'}. The SIP edge may have taken it (its answer "
                       "was lost), so it is not placed again under this key: place the call again with a new "
                       "Idempotency-Key", extra={"session_id": session_id})
    if session is None and not unconfirmed and not ends:
        return None
    return session.machine.state.value if session is not None else "ended" if ends else "starting"
