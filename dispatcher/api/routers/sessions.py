"""The session routes of the HTTP contract (docs/design.md §3): start, look up (now, by long-poll or as
server-sent events), stop."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

import dispatcher.observability.tracing as tracing
from dispatcher.api.admin_access import READ, STOP, reachable_id
from dispatcher.api.call_handoff import hold_place
from dispatcher.api.call_order import checked_idempotency_key
from dispatcher.api.dependencies import app_state, identified, not_found, owned_id
from dispatcher.api.edge_holder import held_elsewhere
from dispatcher.api.edge_line import edge_line, start_edge, vouched_by_relay
from dispatcher.api.eval_mark import eval_mark
from dispatcher.api.phone_start import PHONE_TRANSPORTS, phone_session_id, phone_start
from dispatcher.api.pipecat import StartPlan, pipecat_names, plan_start, start_answer
from dispatcher.api.region_choice import kept, spilled_from, started_elsewhere, unknown_region
from dispatcher.api.region_relay import relayed_by
from dispatcher.api.schemas import ERRORS, START_PARAMETERS, RecordingAsked, SessionOut, StartOut, StartRequest
from dispatcher.api.state import AppState
from dispatcher.api.stream_slots import HeldStream
from dispatcher.api.utf8_bodies import utf8_only
from dispatcher.artifacts.rules import Keeping
from dispatcher.artifacts.wanted import Wanted, lowered, raised
from dispatcher.errors import ApiError
from dispatcher.machines.base import MachineState
from dispatcher.media.ice import ice_config
from dispatcher.media.rooms import NO_OPTIONS
from dispatcher.phone.access import handed_out_base
from dispatcher.phone.calls import PHONE_TRANSPORT
from dispatcher.phone.tokens import fresh_session_key
from dispatcher.sessions.failure import shown_status
from dispatcher.sessions.ids import Caller, owned_by
from dispatcher.sessions.ready_estimate import ReadyEstimate
from dispatcher.sessions.service import Session
from dispatcher.sessions.watch import Watch, changes
from dispatcher.usage.trunk_line import TrunkLine


async def authenticated(request: Request) -> Caller:
    """`identified`, as a `session.auth` span of the request (a refused key: its error status and
    code). Every route's `who`, declared there and not on the router: FastAPI would solve the
    router's dependency as a second one, a pass of its own over the request (a test holds that
    every route asks for it)."""
    with tracing.step("session.auth") as span:
        try:
            return await identified(request)
        except ApiError as exc:
            tracing.failed(span, exc.code)
            raise


router = APIRouter(responses=ERRORS)
# A long-poll answers within a minute: a load balancer's idle timeout (ALB: 60 s) must not cut it.
MAX_LONG_POLL_SECONDS = 50.0
KEEP_ALIVE_SECONDS = 15.0  # an event stream's comment while nothing changes


@router.post(
    "/start",
    response_model=StartOut,
    response_model_exclude_none=True,
    status_code=201,
    summary="Start a voice session",
    openapi_extra={"parameters": START_PARAMETERS},
)
async def start(
    request: Request,
    response: Response,
    who: Annotated[Caller, Depends(authenticated)],
    payload: Annotated[StartRequest | None, Body()] = None,
) -> dict[str, Any] | Response:
    wait = request.query_params.get("wait")
    if wait not in (None, "started"):
        raise ApiError(422, "invalid_request", "query.wait: only `started` (block until the bot runs), or leave it out")
    if payload is not None:
        utf8_only(payload.model_dump(exclude_none=True), "the start's JSON")
    idempotency_key = request.headers.get("idempotency-key")
    state = app_state(request)
    line = edge_line(request, state, payload)  # a SIP call's trunk price: the edge's alone
    if payload is not None and payload.transport in PHONE_TRANSPORTS:
        return await _phone_token(request, state, payload, who, line)
    if line is not None:
        raise ApiError(422, "invalid_request", "`sip_trunk` is a SIP call's: only with `transport: exotel`")
    if payload is not None and payload.eval_token is not None:
        raise ApiError(422, "invalid_request", "`eval_token` is a SIP call's: only with `transport: exotel`; "
                       "a web start marks itself with `eval` and `release`")
    plan = plan_start(payload, state.settings.transports)
    recording = asked_recording(state, who, payload)
    if len(json.dumps(plan.body, separators=(",", ":")).encode()) > state.settings.max_body_bytes:
        raise ApiError(413, "body_too_large", f"`body` exceeds {state.settings.max_body_bytes} bytes as JSON")
    checked_idempotency_key(idempotency_key)
    placed = await _placed(request, state, who, plan.transport, payload.maxWaitSeconds if payload else None,
                           payload.region if payload is not None else None, idempotency_key)
    if isinstance(placed, Response):
        return placed
    answer = await launched(state, who, plan, response, idempotency_key=idempotency_key, wait=wait is not None,
                            max_wait_seconds=payload.maxWaitSeconds if payload is not None else None,
                            spilled=placed, release=payload.release if payload is not None else None,
                            recording=recording, eval_session=payload is not None and payload.eval is True)
    if relayed_by(request.scope) is None:  # else the region it arrived at keeps its key's record
        kept(state, who.id, idempotency_key, state.settings.region)
    if state.runtime is not None and who.name is not None and who.name in state.runtime.keys.names():
        state.runtime.touched(who.name, started=1)  # `voicefleet keys list`'s sessions
    return answer


def asked_recording(state: AppState, who: Caller, payload: StartRequest | None) -> Wanted | None:
    """The start's `recording`, checked against its key's (and its named release's) policy: asking
    more than it gives is refused, so a caller never believes a call is kept when it is not."""
    asked = payload.recording if payload is not None else None
    wanted = Wanted.of(asked.model_dump(exclude_none=True) if isinstance(asked, RecordingAsked) else asked)
    if wanted is None:
        return None
    rules = state.artifacts.settings.rules if state.artifacts is not None else None
    policy = rules.for_session(who.name, payload.release if payload is not None else None) if rules else Keeping()
    beyond = raised(policy, wanted)
    if beyond:
        raise ApiError(422, "recording_not_allowed", f"this session's recording policy does not allow "
                       f"{', '.join(beyond)}: a start may lower its recording, never raise it; ask for less or "
                       "leave `recording` out, or ask the operator (RECORDING="
                       f"{rules.default.audio if rules else 'off'}, RECORDING_TRANSCRIPT, RECORDING_RULES)")
    return wanted


def kept_by_policy(state: AppState, who: Caller, release: str | None, wanted: Wanted | None) -> Keeping:
    """What this session's recording policy keeps, lowered by what its start asked."""
    if state.artifacts is None or not state.artifacts.settings.on:
        return Keeping()
    rules = state.artifacts.settings.rules
    # A start naming no release gets one chosen later (the default, or a canary's share): what the
    # room records from its start must be kept by whichever release that is.
    return lowered(rules.for_session(who.name, release) if release is not None else rules.for_any_release(who.name),
                   wanted)


async def launched(state: AppState, who: Caller, plan: StartPlan, response: Response, *,
                   idempotency_key: str | None, wait: bool, max_wait_seconds: float | None = None,
                   spilled: tuple[str, str] | None = None, release: str | None = None,
                   recording: Wanted | None = None, eval_session: bool = False) -> dict[str, Any]:
    """Starts the session (`POST /start`'s, or a release's smoke session) and answers as `POST /start`
    does: its fields, its `Location`, and for WebRTC the client's ICE servers."""
    options = NO_OPTIONS
    if state.rooms is not None and plan.transport == "daily":
        keeping = kept_by_policy(state, who, release, recording)
        options = state.rooms.options(
            plan.room_properties, plan.token_properties, state.settings.max_session_seconds,
            keeps_audio=keeping.audio == "on", keeps_transcript=keeping.transcript == "on",
        )
    # The client's TURN credential is counted before anything starts: a key past its bound gets
    # a 429 here, not a machine whose client the relay would then refuse.
    turn_quota = state.turn_quota if plan.transport == "webrtc" else None
    credential = await turn_quota.take(who.id) if turn_quota is not None else None
    try:
        session = await state.sessions.start(
            caller=who,
            idempotency_key=idempotency_key,
            body=plan.body,
            wait=wait,
            room_options=options,
            transport=plan.transport,
            max_wait_seconds=max_wait_seconds,
            counted_elsewhere=spilled is not None,
            release=release,
            recording=recording,
            eval_session=eval_session,
        )
    except BaseException:
        if turn_quota is not None and credential is not None:
            await turn_quota.give_back(who.id, credential)
        raise
    response.status_code = 201 if session.created else 200
    response.headers["Location"] = f"/sessions/{session.machine.session_id}"
    fields = _session_fields(session, state.sessions.ready, state.settings.region)
    if spilled is not None and session.created:
        fields["spilled_from"] = spilled[0]
        state.sessions.timeline.note(session.machine.session_id, "spilled", from_region=spilled[0], reason=spilled[1])
    if session.user_token is not None:
        fields["token"] = session.user_token
    if plan.transport == "webrtc" and session.machine.state.is_active:
        fields["iceConfig"] = await ice_config(
            state.ice_servers, session.machine.session_id, defaults_requested=plan.default_ice_servers
        )
    elif turn_quota is not None and credential is not None:
        await turn_quota.give_back(who.id, credential)  # no credential was handed out
    return start_answer(fields, plan)


async def _phone_token(request: Request, state: AppState, payload: StartRequest,
                       who: Caller, line: TrunkLine | None = None) -> dict[str, Any] | Response:
    """A call token (`transport: websocket` or a carrier's name). With several regions, one that could
    not start the call's bot warm within the caller's patience (`maxWaitSeconds`, else
    `PHONE_MAX_WAIT_SECONDS`) is relayed like any start; the region that takes it mints the token as
    a handed call's (a place held for it, its start counted where it arrived) with its own URL. Its
    `release` and `eval` ride in the token; an unknown release is refused now, not when the call comes,
    by the region that mints the token (a start relayed elsewhere is that region's to judge, as a web one).
    A `recording` wish is checked here, as a web start's, and rides in the token to the session, as does
    `line`, a SIP call's trunk and price from the edge (dispatcher/api/edge_line.py). A start that presents a
    listed SIP edge's credential records that edge as its session's (`took_inbound`), here also for a session
    another region made of it (`held_elsewhere`); one another region relayed here records that region, whose word
    on its edge is taken for the call (`RelayedStarts`); a start refused after them lets those records go."""
    recording = asked_recording(state, who, payload)
    patience = payload.maxWaitSeconds if payload.maxWaitSeconds is not None else state.phone.settings.max_wait_seconds
    edge = start_edge(request, state)
    # The edge's own credential was checked (its price taken, or it is listed), or the region that relayed the
    # start checked its own edge's: the call's end is that edge's to tell (dispatcher/observability/sip_end.py).
    edge_call = line is not None or edge is not None or vouched_by_relay(request)
    placed = await _placed(request, state, who, PHONE_TRANSPORT, patience, payload.region, None,
                           edge_vouched=edge_call)
    if isinstance(placed, Response):  # another region's session: the edge that sent its start recorded here
        return await held_elsewhere(state, edge, who, placed)
    session_key = fresh_session_key()
    session_id = phone_session_id(who, session_key, state.settings.region)
    if edge is not None and state.trunk_calls is not None:  # its reports on the call are that edge's alone
        await state.trunk_calls.took_inbound(session_id, edge)
    relayer = relayed_by(request.scope) if state.relayed_starts is not None else None
    if relayer is not None and state.relayed_starts is not None:  # its edge's words are vouched by that region alone
        await state.relayed_starts.took(session_id, relayer)
    try:
        return await _mint_call_token(request, state, payload, who, placed, recording, line, session_key, edge_call)
    except ApiError:
        if edge is not None and state.trunk_calls is not None:  # a refused start keeps no record
            await state.trunk_calls.refused_inbound(session_id, edge)
        if relayer is not None and state.relayed_starts is not None:
            await state.relayed_starts.forget(session_id, relayer)
        raise


async def _mint_call_token(request: Request, state: AppState, payload: StartRequest, who: Caller,
                           placed: tuple[str, str] | None, recording: Wanted | None, line: TrunkLine | None,
                           session_key: str, edge_call: bool) -> dict[str, Any]:
    """The call's token once its start is taken: a SIP eval's token spent, the release chosen, a place held."""
    mark = await eval_mark(state, who, payload)  # a SIP eval's token: spent here, before the session
    if mark.release is not None:
        state.sessions.releases.choose("", pinned=mark.release, caller_id=who.id)
    base = handed_out_base(state.phone.settings, request.headers, request.url.scheme, state.peers.regions)
    answer, grant = phone_start(state.phone, str(payload.transport), payload.body or {}, base, who,
                                state.settings.region, handed_from=placed, release=mark.release,
                                evaluation=mark.evaluation, recording=recording, line=line, session_key=session_key,
                                edge_call=edge_call)
    if placed is not None:  # a place here for the call, within this key's share
        await hold_place(state, grant, (who.id, answer["sessionId"]))
    return answer


async def _placed(request: Request, state: AppState, who: Caller, transport: str, patience: float | None,
                  pinned: str | None, idempotency_key: str | None,
                  edge_vouched: bool = False) -> Response | tuple[str, str] | None:
    """Where a start runs: another region's answer (relayed there: pinned, or spilled over because
    this region cannot start it warm within `patience`), or here, with (the region it spilled over
    from, why) when one relayed it here. The key's start rate is taken where the start arrived.
    `edge_vouched`: this region checked the SIP edge's secret, which a relay says for it."""
    if relayed_by(request.scope) is not None:  # its region was chosen where it arrived
        return spilled_from(request.headers) if state.peers.by_name else None
    await state.start_limit.check(who.id)
    if not state.peers.by_name:
        if pinned is not None and pinned != state.settings.region:
            raise unknown_region(pinned, [])
        return None
    return await started_elsewhere(request, state, transport, patience, pinned, who.id, idempotency_key,
                                   edge_vouched=edge_vouched)


@router.get(
    "/sessions/{session_id}", response_model=SessionOut, response_model_exclude_none=True, summary="A session's status"
)
async def get_session(
    request: Request,
    session_id: str,
    who: Annotated[Caller, Depends(authenticated)],
    wait: Annotated[str | None, Query(pattern="^started$", description="`started`: a long-poll; while the "
                                      "session is `starting`, answer when it moves on or `timeout` passes")] = None,
    timeout: Annotated[float, Query(gt=0, le=MAX_LONG_POLL_SECONDS, description="seconds a long-poll waits")] = 25.0,
) -> dict[str, Any]:
    state = app_state(request)
    owned = await reachable_id(request, session_id, who, READ)
    session = await state.sessions.get(owned)
    if session is None:
        raise not_found(session_id)
    if wait is not None and session.machine.state is MachineState.STARTING:
        release = state.waits.take(who.id)
        try:
            await state.sessions.settle(session.machine, min(timeout, state.settings.session_wait_seconds),
                                        state.settings.session_poll_seconds)
        finally:
            release()
        session = await state.sessions.get(owned)
        if session is None:
            raise not_found(session_id)
    return _answer(session, state.sessions.ready, state.settings.region)


@router.get(
    "/sessions/{session_id}/events",
    summary="A session's status changes, as server-sent events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "`status` events, then the end"}},
)
async def session_events(request: Request, session_id: str, who: Annotated[Caller, Depends(authenticated)]) -> Response:
    state = app_state(request)
    owned = await owned_id(state, session_id, who)
    if await state.sessions.get(owned) is None:
        raise not_found(session_id)
    release = state.waits.take(who.id)  # refused here, before the stream's 200
    settings = state.settings
    watch = Watch(seconds=settings.session_wait_seconds, poll_seconds=settings.session_poll_seconds,
                  quiet_seconds=KEEP_ALIVE_SECONDS)

    async def pace() -> float:  # each later read of the provider is the key's, as its own GET would be
        return await state.read_limit.take(who.id)

    async def stream() -> AsyncIterator[str]:
        told = state.sessions.ready

        async for session in changes(state.sessions, owned, watch, pace,
                                     ready_at=lambda s: told.ready_at(s.machine)):
            if session is None:
                yield ": keep-alive\n\n"  # a comment: proxies see traffic, clients ignore it
            else:
                answer = _answer(session, state.sessions.ready, state.settings.region)
                shown = {k: v for k, v in answer.items() if v is not None}
                data = json.dumps(shown, separators=(",", ":"))  # as GET: what does not apply is left out
                yield f"event: status\ndata: {data}\n\n"

    # No caching, and no buffering by a proxy (nginx honours X-Accel-Buffering): each event at once.
    return HeldStream(stream(), release, media_type="text/event-stream",
                      headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.delete("/sessions/{session_id}", status_code=204, summary="Stop a session's bot and end its room")
async def delete_session(request: Request, session_id: str, who: Annotated[Caller, Depends(authenticated)]) -> Response:
    state = app_state(request)
    # A stop of an id that never started is 404, with no audit line (a typo is not a stop).
    reached = await reachable_id(request, session_id, who, STOP, exists=state.sessions.ever_existed)
    # An admin's stop of another key's session: that key's share drops it at its next lookup of its
    # sessions (dispatcher/sessions/key_share.py), as for a session that ended by itself.
    machine = await state.sessions.stop(reached, caller=who.id if owned_by(reached, who.owner_key) else None)
    # Idempotent: 202 while the provider is still stopping the machine; 204 once it has stopped,
    # and for a session with nothing left to stop (ended, or forgotten by the provider, which
    # Compute Engine does at once and Fly soon after), so a second DELETE is harmless everywhere.
    return Response(status_code=202 if machine is not None and machine.state.is_active else 204)


def _answer(session: Session, ready: ReadyEstimate, region: str) -> dict[str, Any]:
    fields = _session_fields(session, ready, region)
    return {**fields, **pipecat_names(fields)}


def _session_fields(session: Session, ready: ReadyEstimate, region: str) -> dict[str, Any]:
    machine = session.machine
    fields: dict[str, Any] = {
        "session_id": machine.session_id,
        "region": region or None,  # with several regions: the one that holds the session
        "status": shown_status(machine.state.value, session.error is not None),
        "created_at": machine.created_at,
        "detail": machine.detail,
        "ready_in_seconds": ready.remaining(machine),
        "ready_in_basis": ready.basis() if machine.state is MachineState.STARTING else None,
        "trace_id": session.trace_id,
        "error": session.error,
        "release": machine.release,
        "cost": session.cost.as_json() if session.cost is not None else None,
        "eval": True if session.eval else None,  # left out for every other session
    }
    if session.takes_offers:
        fields["offer_url"] = f"/sessions/{machine.session_id}/api/offer"
    elif session.room_url is not None:
        fields["room_url"] = session.room_url
    if machine.state in (MachineState.ENDED, MachineState.FAILED):
        fields.pop("offer_url", None)
    return fields
