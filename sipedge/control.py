"""The edge's control API, where the dispatcher hands it outbound calls (docs/sip.md#outbound-calls):

- `GET /status`: the edge at a glance (sipedge/edge_status.py): up since, its code, its calls and free slots,
  each trunk's registration, its refusals over the last minute, whether it drains;
- `GET /trunks`: the trunks that place calls, with their `cps` (the dispatcher paces each across its
  replicas), `ring_seconds`, and, for a priced trunk, its outbound `usd_per_minute` and
  `increment_seconds` (the call's session prices its minutes by them); `inbound_only`, the names of the
  trunks that take calls in and place none (no `termination_uri`), so that the dispatcher refuses a call
  named through one saying so; and `stream_path: true`, which tells the dispatcher to hand a call's
  stream over as a path;
- `POST /calls/{session_id}/transfer` `{to, request_id, time_limit, mode, summary}`: the answered inbound call
  of that session handed to a person (sipedge/call_transfer.py; `mode: warm`, sipedge/warm_transfer.py; a
  bridged one hung up after `time_limit` seconds): `200` `{how: referred|bridged|warm, to, sip_status}` once
  done, `404` when the edge holds no answered call of the session, `409` naming why it was not handed over
  (the call then stays with its bot; its code `refer_outcome_unknown`: the trunk took the REFER and did not
  say how it went), `503 edge_full` when a bridge finds no call slot, `503 edge_draining` when it would place
  one while the edge drains (a REFER still goes out: it ends the edge's call the sooner). The same `request_id`
  again waits for the same outcome (a retried request transfers nothing twice); another one while one is under
  way is `409`;
- `POST /calls` `{session_id, stream_path, to, from, trunk, caller, edge_url?}`: `202` once the call is taken (its
  flow, sipedge/outbound_call.py, then reports the outcome; the same session again: `202`, nothing
  placed twice), `404` naming the trunks for an unknown one, `409 trunk_inbound_only` naming the setting
  for a trunk that takes calls in only, `403` naming the trunk's setting when
  the key `caller` may not call `to` as `from` through it (voicefleet_settings/call_policy.py),
  `503` with `Retry-After` while the edge is full (`edge_full`), not ready (`not_ready`) or draining
  (`edge_draining`, sipedge/drain.py): each placed nothing, so the dispatcher asks its next edge. The stream
  opens at the edge's own `dispatcher_url` (sipedge/stream_address.py): an older dispatcher's whole
  `stream_url` instead of `stream_path` is taken at that origin only, else `422 stream_not_at_dispatcher`.

Every request presents the control key derived for this edge (`Authorization: Bearer`, compared in constant time); it
is served on `control_address` (loopback by default: put it on a private network, never the SIP
side's public one)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from functools import partial
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from botchannel.transfer import SUMMARY_CHARS
from sipedge.call_reports import CallReports
from sipedge.call_transfer import DEFAULT_TIME_LIMIT_SECONDS, Handed, InboundCall, NotHanded, Transfer, hand_over
from sipedge.config import Trunk
from sipedge.control_auth import MAX_BODY_BYTES, control_app, error
from sipedge.drain import DRAINING, DRAINING_CODE
from sipedge.edge import Edge
from sipedge.edge_status import edge_status
from sipedge.invite_pace import InvitePace
from sipedge.outbound_call import CallOrder, run_outbound
from sipedge.refusals import DEFAULT_RETRY_SECONDS
from sipedge.stream_address import STREAM_PATH, NotAtDispatcher, own_stream, stream_at
from sipedge.warm_transfer import warm_over
from sipedge.worker_place import WORKER_HOST
from voicefleet_settings.call_policy import INBOUND_ONLY, inbound_only, refusal

log = logging.getLogger("sipedge")

E164 = r"^\+[1-9][0-9]{1,14}$"
REMEMBERED_CALLS = 1000  # a retried hand-over comes within seconds: far fewer calls are taken meanwhile
FINISH_SECONDS = 2.0  # a handed call's stream is let go this long after at most, answered or not
# A person: a number, or a SIP URI (user@host[:port][;params], nothing that could end a header or start another).
# The dispatcher checked the host against its allow list; of the parameters only those that keep the REFER's
# or the bridged call's request going to that host pass (RFC 3261 §19.1.1: `maddr` would send it elsewhere,
# `method` make the transferee send another request), as the dispatcher's own check (transfer_target.py).
PERSON = (r"^(\+[1-9][0-9]{1,14}|sips?:[A-Za-z0-9_.!~*'()%+\-]+@[A-Za-z0-9.\-]+(:[0-9]{1,5})?"
          r"(?i:(;(transport=(udp|tcp|tls|sctp)|user=(phone|ip)))*))$")


class CallAsked(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    session_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")
    # The stream's path, joined to the edge's own dispatcher_url (sipedge/stream_address.py); an older
    # dispatcher's whole URL instead, taken only at that dispatcher's origin.
    stream_path: str | None = Field(default=None, pattern=STREAM_PATH)
    stream_url: str | None = Field(default=None, pattern=r"^wss?://\S+$", max_length=4096)
    to: str = Field(pattern=E164)
    caller_id: str = Field(alias="from", pattern=E164)
    trunk: str = Field(min_length=1, max_length=128)
    caller: str = Field(min_length=1, max_length=128)  # the name of the API key that asked for the call
    # This edge as the dispatcher lists it (several edges): the call's stream names it, for its transfers.
    edge_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+$", max_length=512)

    @model_validator(mode="after")
    def _one_stream(self) -> CallAsked:
        if (self.stream_path is None) == (self.stream_url is None):
            raise ValueError("give the call's stream as `stream_path` (or, from an older dispatcher, "
                             "`stream_url`), one of them")
        return self

    def stream(self, dispatcher_url: str) -> str:
        """Where the call's stream connects: at `dispatcher_url`, whatever the request says
        (`NotAtDispatcher` for a whole URL elsewhere)."""
        if self.stream_path is not None:
            return stream_at(dispatcher_url, self.stream_path)
        return own_stream(dispatcher_url, str(self.stream_url))


class TransferAsked(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(pattern=PERSON, max_length=255)
    request_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    time_limit: int = Field(default=DEFAULT_TIME_LIMIT_SECONDS, ge=1, le=86400)  # a bridged transfer's seconds
    mode: Literal["cold", "warm"] = "cold"
    # A warm transfer's briefing, passed back to the dispatcher for the bot to say (no control characters).
    summary: str | None = Field(default=None, min_length=1, max_length=SUMMARY_CHARS,
                                pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")


Asked = TypeVar("Asked", bound=BaseModel)


async def _read(request: web.Request, model: type[Asked], what: str) -> Asked | web.Response:
    """The request's body as `model`, or the answer that says what is wrong with it."""
    try:
        return model.model_validate_json(await request.read())
    except web.HTTPRequestEntityTooLarge:
        return error(413, "body_too_large", f"{what} is at most {MAX_BODY_BYTES} bytes")
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return error(422, "invalid_request", problems)


class Control:
    def __init__(self, edge: Edge, secret: str) -> None:
        self.edge = edge
        self._secret = secret
        self.reports = CallReports(edge.config.dispatcher_url, edge.config.dispatcher_credential or secret)
        self._taken: dict[str, None] = {}  # the sessions whose calls were taken, oldest first
        self._invites = InvitePace()  # every outbound call's INVITE, spaced per trunk
        self._handing: dict[str, tuple[str, asyncio.Task[Handed]]] = {}  # session → its transfer (request, task)
        self._runner: web.AppRunner | None = None
        self._up_since = time.time()

    def outbound(self) -> dict[str, Trunk]:
        return {t.name: t for t in self.edge.config.trunks if t.termination_uri is not None}

    def app(self) -> web.Application:
        return control_app(self._secret, self._trunks, self._calls, self._transfer, self._status)

    async def start(self) -> int:
        """Serves the API on the configured address and port, or, as a worker behind the front, on its own fixed
        loopback port (worker_control_port + its index; sipedge/control_front.py): the port it serves on. Fixed,
        not the kernel's pick, so a host's firewall admits the edge's user to these ports alone."""
        config = self.edge.config
        address = WORKER_HOST if config.worker is not None else config.control_address
        port = config.control_port if config.worker is None else config.worker_control_port + config.worker
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, address, port)
        await site.start()
        port = int(self._runner.addresses[0][1])
        log.info("sipedge: control API on http://%s:%s", address, port)
        return port

    async def close(self) -> None:
        for task in [*self.edge.placing, *(task for _, task in self._handing.values())]:
            task.cancel()
        await asyncio.gather(*self.edge.placing, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        await self.reports.close()

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(edge_status(self.edge, self._up_since))

    async def _trunks(self, request: web.Request) -> web.Response:
        trunks = [{"name": t.name, "cps": t.cps, "ring_seconds": t.ring_seconds, "callers": list(t.callers),
                   **_price(t)} for t in self.outbound().values()]
        # `stream_path`: a call's stream is handed over as a path (older edges took a whole URL).
        inbound = sorted(t.name for t in self.edge.config.trunks if t.termination_uri is None)
        return web.json_response({"trunks": trunks, "inbound_only": inbound, "stream_path": True})

    async def _calls(self, request: web.Request) -> web.Response:
        asked = await _read(request, CallAsked, "a call's hand-over")
        if isinstance(asked, web.Response):
            return asked
        trunks = self.outbound()
        trunk = trunks.get(asked.trunk)
        if trunk is None and any(t.name == asked.trunk for t in self.edge.config.trunks):
            return error(409, INBOUND_ONLY, inbound_only(asked.trunk, trunks))
        if trunk is None:
            return error(404, "unknown_trunk", f"no trunk named {asked.trunk!r} places calls here; the edge's "
                          f"trunks: {', '.join(sorted(trunks)) or 'none (give a trunk a termination_uri)'}")
        try:
            stream_url = asked.stream(self.edge.config.dispatcher_url)
        except NotAtDispatcher as exc:
            log.warning("sipedge: call for session %s refused: %s", asked.session_id, exc)
            return error(422, "stream_not_at_dispatcher", str(exc))
        refused = refusal(trunk, asked.caller, asked.to, asked.caller_id)
        if refused is not None:
            log.warning("sipedge: call to %s through trunk %s refused: %s", asked.to, trunk.name, refused)
            return error(403, "call_not_allowed", refused)
        # The dispatcher's retry of a hand-over whose answer was lost: taken already, however full the
        # edge is now (a 503 would end the session of a call that is ringing).
        if asked.session_id in self._taken:
            return web.json_response({"session_id": asked.session_id}, status=202)
        if not self.edge.stack.started.is_set() or self.edge.stack.failed is not None:
            return error(503, "not_ready", "the edge's SIP stack is not up yet", DEFAULT_RETRY_SECONDS)
        if self.edge.draining:
            return error(503, DRAINING_CODE, DRAINING, DEFAULT_RETRY_SECONDS)
        if (full := self.edge.outbound_full()) is not None:
            return error(503, "edge_full", full, DEFAULT_RETRY_SECONDS)
        order = CallOrder(asked.session_id, stream_url, asked.to, asked.caller_id, trunk.name, asked.edge_url)
        task = asyncio.create_task(run_outbound(order, trunk, self.edge.stack, self.edge.link, self.reports,
                                                self.edge.config.answer_seconds, self._invites))
        self.edge.placing.add(task)
        self._taken[asked.session_id] = None
        while len(self._taken) > REMEMBERED_CALLS:
            self._taken.pop(next(iter(self._taken)))
        task.add_done_callback(self._done)
        log.info("sipedge: call to %s through trunk %s taken for session %s", asked.to, trunk.name, asked.session_id)
        return web.json_response({"session_id": asked.session_id}, status=202)

    async def _transfer(self, request: web.Request) -> web.Response:
        session_id = request.match_info["session_id"]
        asked = await _read(request, TransferAsked, "a transfer")
        if isinstance(asked, web.Response):
            return asked
        under_way = self._handing.get(session_id)
        if under_way is not None and under_way[0] != asked.request_id and not under_way[1].done():
            return error(409, "already_transferring", "this call is already being handed to a person")
        if under_way is None or under_way[0] != asked.request_id:
            held = self.edge.answered(session_id)
            if held is None:
                return error(404, "no_call", f"this edge holds no answered call of session {session_id[:128]!r} "
                              "(not answered yet, over, or already handed over)")
            task = asyncio.create_task(self._hand_over(session_id, held, asked))
            under_way = self._handing[session_id] = (asked.request_id, task)
            task.add_done_callback(lambda _: self._forget_transfer(session_id, task))
        try:
            handed = await asyncio.shield(under_way[1])  # a request that goes away leaves the transfer to finish
        except NotHanded as refused:
            return error(refused.status, refused.code, refused.message)
        except Exception:  # a bug of the edge's: said as such, the edge's log has the rest
            return error(500, "transfer_failed", "the edge failed handing the call over; its log says why")
        answer = web.json_response({"session_id": session_id, "how": handed.how, "to": handed.to,
                                    "sip_status": handed.sip_status})
        await answer.prepare(request)
        await answer.write_eof()
        handed.finish()  # the answer is on its way: the stream's end now finds the transfer noted
        return answer

    def _hand_over(self, session_id: str, held: InboundCall, asked: TransferAsked) -> Coroutine[Any, Any, Handed]:
        transfer = Transfer(asked.to, asked.time_limit, asked.mode, asked.summary)
        tell = partial(self.reports.bridged, session_id)
        if asked.mode == "warm":
            brief = partial(self.reports.warm, session_id, asked.request_id)
            return warm_over(self.edge.stack, held, transfer, self.edge.leg, brief, tell)
        return hand_over(self.edge.stack, held, transfer, self.edge.leg, tell)

    def _forget_transfer(self, session_id: str, task: asyncio.Task[Handed]) -> None:
        """A finished transfer is kept a while for its retried request, then dropped: `REMEMBERED_CALLS` at most.
        A done one lets the bot's stream go within FINISH_SECONDS even if its answer never went out."""
        if not task.cancelled() and task.exception() is not None and not isinstance(task.exception(), NotHanded):
            log.error("sipedge: a transfer failed: %r", task.exception())
        elif not task.cancelled() and task.exception() is None:
            asyncio.get_running_loop().call_later(FINISH_SECONDS, task.result().finish)
        while len(self._handing) > REMEMBERED_CALLS:
            oldest = next(iter(self._handing))
            if not self._handing[oldest][1].done():
                break
            self._handing.pop(oldest)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.edge.placing.discard(task)
        self.edge.collect_ended_call()
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("sipedge: an outbound call failed: %r", error)


def _price(trunk: Trunk) -> dict[str, object]:
    """Its outbound minutes' price, for the call's session's cost (dispatcher/phone/trunk_calls.py)."""
    line = trunk.price.line(trunk.name, "outbound") if trunk.price is not None else None
    return {} if line is None else {"usd_per_minute": line["usd_per_minute"],
                                    "increment_seconds": line["increment_seconds"]}
