"""Calls placed through a SIP trunk (`POST /calls`, docs/sip.md#outbound-calls): the dispatcher's side.

The SIP edge (`python -m sipedge`) owns the trunks; the dispatcher asks it which trunks place calls
and at what pace (`GET /trunks`, kept `TRUNKS_SECONDS`), paces each trunk's calls across every
replica with the store's deployment-wide bucket (the one a provider's create limit uses: a call may
reserve the next turn, waiting at most `max_wait_seconds`, else it is refused with the wait), and
hands each call over (`POST /calls` with the session's stream path, which the edge opens at its own
`dispatcher_url`: the dispatcher it trusts, never an address a client's request names). Every request
to the edge is bounded and retried with backoff; each side presents a credential derived from `SIP_EDGE_SECRET`
for that edge alone (dispatcher/phone/edge_secret.py).

With several edges (dispatcher/phone/sip_edges.py) a call goes to the first listed that takes it, and to
the next only when one provably placed nothing: its connection refused or not made within a second, or its
answer `503` full, not ready or draining (an edge stopping once its calls end). A timeout or a lost answer
stops there, since that edge may ring the callee (the session then ends as a call the edge never took does,
its token spent); a second edge would ring them twice, so that call's retry with its Idempotency-Key places
nothing (dispatcher/api/call_order.py), and a session is only ever handed to the edge recorded for it in the
store before it is asked, at whichever replica, while other calls go to the other edges first.
The record is let go (and the next edge asked) only on the first request's own answer: a refusal with the
edge's error code, or its 503 full or draining; once a try may have reached the edge, whatever follows keeps it.
`GET /trunks` places nothing: any edge's failure passes it to the next. The pace is the trunk's
(`trunk:<name>`) whichever edge places the call.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from dispatcher.errors import ApiError
from dispatcher.observability.log_text import shown
from dispatcher.outbound.http_client import HttpError, HttpResponse
from dispatcher.outbound.http_failure import never_connected
from dispatcher.outbound.retry import RETRYABLE_STATUSES, Backoff, Transient, retry_after_of, send
from dispatcher.phone.call_pace import pace_turn
from dispatcher.phone.edge_secret import EdgeSecret
from dispatcher.phone.invite_spacing import InviteSpacing
from dispatcher.phone.sip_edges import HOLD_MARGIN, SipEdges, edge_urls, json_of
from dispatcher.regions.pace_homes import PaceTurn, RegionPaces
from dispatcher.store.coordination import CreateLimits, FirstClaims
from dispatcher.usage.trunk_line import TrunkLine, line_of
from voicefleet_settings.call_policy import INBOUND_ONLY, inbound_only
from voicefleet_settings.read import setting_float, setting_text

REQUEST_SECONDS = 5.0
BACKOFF = Backoff(attempts=3, base=0.2, cap=1.0, deadline=12.0)
TRUNKS_SECONDS = 30.0  # how long the edge's list of trunks is trusted before it is asked again
OUTCOMES = ("answered", "busy", "no_answer", "rejected", "not_placed")
PLACED_NOTHING = ("edge_full", "not_ready", "edge_draining")  # an edge's 503 codes for a call it did not take
# A call an edge may hold is never placed again under its key (dispatcher/api/call_order.py `current_try`).
MAY_HOLD = ("it may hold the call, so a retry with the same Idempotency-Key places nothing (it answers with this "
            "call's session, ended not_placed); a new key places the call again")
CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")  # an error code as the edge writes one (sipedge/control_auth.py)


@dataclass(frozen=True)
class TrunkCallSettings:
    edge_urls: tuple[str, ...]  # each edge's control API, in the order calls go to them
    secret: str = field(repr=False)
    max_wait_seconds: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TrunkCallSettings | None:
        url = setting_text(env, "SIP_EDGE_URL")
        if not url:
            return None
        secret = EdgeSecret.from_env(env, needed_by="SIP_EDGE_URL")  # raises rather than answer None here
        return cls(edge_urls(url), secret.secret if secret is not None else "",
                   setting_float(env, "SIP_CALL_MAX_WAIT_SECONDS"))


@dataclass(frozen=True)
class TrunkInfo:
    name: str
    cps: float
    callers: tuple[str, ...] | None = None  # the key names it places calls for; None: the edge did not say
    line: TrunkLine | None = None  # its outbound minutes' price, as the edge lists it; None: not priced

    def check_caller(self, caller: str) -> None:
        """403 before the trunk's pace is spent: a key the trunk's `callers` do not name (the edge checks it
        again, with the numbers)."""
        if self.callers is not None and caller not in self.callers:
            raise ApiError(403, "call_not_allowed", f"the key {caller!r} may not place calls through trunk "
                           f"{self.name!r}: the trunk's `callers` in the SIP edge's file must name it")


def _trunk_info(listed: Mapping[str, Any]) -> TrunkInfo:
    callers = listed.get("callers")
    price = listed.get("usd_per_minute")
    line = line_of({"trunk": listed["name"], "direction": "outbound", "usd_per_minute": price,
                    "increment_seconds": listed.get("increment_seconds", 60)}) if price is not None else None
    return TrunkInfo(str(listed["name"]), float(listed["cps"]),
                     tuple(str(c) for c in callers) if isinstance(callers, list) else None, line)


class TrunkCalls:
    def __init__(self, settings: TrunkCallSettings, limits: CreateLimits | RegionPaces, records: FirstClaims, *,
                 max_session_seconds: float, transfer_seconds: float,
                 registry: CollectorRegistry | None = None) -> None:
        """`records`: the store's, where each session's edge is recorded for its longest life, then a bridged
        transfer's person's leg's (`transfer_seconds`, PHONE_TRANSFER_TIME_LIMIT_SECONDS: the edge reports its
        end, which prices it), and HOLD_MARGIN (its retries and reports come within it). `registry`: where
        the edge records owed (`SipEdges.owed`) are counted."""
        self.settings = settings
        self._limits = limits
        # Each INVITE at its own turn too, as the trunk sees it (across the regions, as the pace).
        self.invites = InviteSpacing(limits, records, settings.max_wait_seconds)
        self._hold_seconds = max_session_seconds + transfer_seconds + HOLD_MARGIN
        self.edges = SipEdges(settings.edge_urls, EdgeSecret(settings.secret), timeout=REQUEST_SECONDS,
                              max_answer_bytes=65536,
                              records=records, registry=registry)
        self._trunks: dict[str, TrunkInfo] = {}
        self._inbound_only: frozenset[str] = frozenset()  # the edge's trunks that place no calls (none: older edge)
        self._trunks_at = -math.inf
        self.joins_paths = False  # the edge's `GET /trunks` says it takes a call's stream as a path

    def edge_of(self, authorization: str | None) -> str:
        """The listed edge whose own credential a request presents (its tag compared in constant time); 401
        naming the way out for anything else, 403 for an edge SIP_EDGE_URL does not list."""
        secret = EdgeSecret(self.settings.secret)
        edge = secret.edge_of(authorization)
        if edge is None:
            raise ApiError(401, "unauthorized", f"the SIP edge's routes take its credential as a Bearer token: "
                           f"{secret.refusal(authorization)}")
        return self.listed(edge)

    def listed(self, edge: str) -> str:
        """`edge`, one SIP_EDGE_URL lists; 403 for any other (an edge taken out of it: its credential, still
        genuine, speaks for nothing)."""
        if edge not in self.edges.urls:
            raise ApiError(403, "sip_edge_unlisted", f"the SIP edge {edge[:80]!r} is not one SIP_EDGE_URL lists: "
                           "list its control URL there (its credential is derived for that URL)")
        return edge

    async def took_inbound(self, session_id: str, edge: str) -> None:
        """Records `edge` as the one an inbound call's session came in at, for as long as its reports may come
        (the session's longest life, a bridged leg's and HOLD_MARGIN): `SipEdges.took_inbound`."""
        await self.edges.took_inbound(session_id, edge, self._hold_seconds)

    async def refused_inbound(self, session_id: str, edge: str) -> None:
        """An inbound start refused after `took_inbound`: its record let go (`SipEdges.forget_inbound`)."""
        await self.edges.forget_inbound(session_id, edge)

    async def trunk(self, name: str) -> TrunkInfo:
        """The trunk `name` places calls through; 404 naming the trunks there are, 409 naming the setting for
        one that takes calls in only (an edge of an inbound-only stack is listed for its status and
        transfers), 503 if the edge is away."""
        known = name in self._trunks or name in self._inbound_only
        if time.monotonic() - self._trunks_at > TRUNKS_SECONDS or not known:
            answer = await self._request("GET", "/trunks")
            listed = answer.get("trunks") if isinstance(answer, dict) else None
            if not isinstance(listed, list):
                raise ApiError(502, "sip_edge_failed", "the SIP edge's list of trunks could not be read")
            self._trunks = {str(t["name"]): _trunk_info(t) for t in listed
                            if isinstance(t, dict) and "name" in t and "cps" in t}
            inbound = answer.get("inbound_only")
            self._inbound_only = frozenset(str(t) for t in inbound) if isinstance(inbound, list) else frozenset()
            self._trunks_at = time.monotonic()
            self.joins_paths = answer.get("stream_path") is True
        found = self._trunks.get(name)
        if found is None and name in self._inbound_only:
            raise ApiError(409, INBOUND_ONLY, inbound_only(name, self._trunks))
        if found is None:
            names = ", ".join(sorted(self._trunks)) or "none (give a trunk a termination_uri in the edge's file)"
            raise ApiError(404, "unknown_trunk", f"no trunk named {name!r} places calls; the trunks: {names}")
        return found

    def stream_base(self, configured: str | None) -> str | None:
        """Where a call's stream URL points, None for its path alone: the edge joins a path to its own
        `dispatcher_url`. An older edge connects to the URL it is handed, which then names this dispatcher's
        configured address (`carrier_base`), never a request's Host; without one, 503 naming the ways out."""
        if self.joins_paths:
            return None
        if configured is None:
            raise ApiError(503, "sip_edge_outdated", "the SIP edge is older than this dispatcher: it connects a "
                           "call's stream wherever its URL says. Upgrade the edge (docs/sip.md#outbound-calls), "
                           "or set PHONE_PUBLIC_URL to this dispatcher's address", retry_after=60)
        return configured

    async def pace(self, trunk: TrunkInfo, holder: str | None = None) -> PaceTurn:
        """Waits for the trunk's next turn (its `cps`, across every replica and region, shared between keys:
        `holder` the caller's); the turn waited. A call that would wait more than `max_wait_seconds` is
        refused 429 with the wait."""
        return await pace_turn(self._limits, f"trunk:{trunk.name}", trunk.cps, self.settings.max_wait_seconds,
                           code="trunk_paced", what=f"trunk {trunk.name!r}", setting="SIP_CALL_MAX_WAIT_SECONDS",
                               holder=holder)

    async def invite_wait(self, session_id: str) -> float:
        """Seconds until the session's INVITE may go out at its trunk's pace (dispatcher/phone/invite_spacing.py)."""
        return await self.invites.wait(session_id, self._cps_of)

    async def invite_given_back(self, session_id: str) -> None:
        """The INVITE turn of a session that ended before its INVITE went, given back for the next call."""
        await self.invites.give_back(session_id, self._cps_of)

    async def _cps_of(self, name: str) -> float:
        return (await self.trunk(name)).cps

    async def hand_over(self, order: Mapping[str, Any], *, keyed: bool = True) -> str:
        """`POST /calls` at the first edge that takes the call: that edge's URL; an `ApiError` saying why not.
        Each edge is recorded in the store as the session's before it is asked (`SipEdges.claim`): a session
        an earlier hand-over recorded at an edge (at any replica) goes to that edge alone, and a record is let
        go only when the edge this hand-over recorded provably placed nothing. `keyed`: the session may be
        retried (an Idempotency-Key); without one, or with one edge, a store blink does not refuse the call."""
        session_id = str(order["session_id"])
        await self.invites.handed(session_id, str(order["trunk"]))
        several = len(self.edges.urls) > 1  # an edge is told its own name only then (older edges refuse the field)
        token = uuid.uuid4().hex[:16]  # this hand-over's, in its record at whichever edge it asks
        nothing: ApiError | None = None
        edges = list(self.edges.in_turn())
        for url in edges:
            claim = await self.edges.claim(session_id, url, self._hold_seconds, token, needed=several and keyed)
            body = {**order, "edge_url": claim.url} if several else dict(order)
            try:
                answer, first = await self._answer(claim.url, "POST", "/calls", json=body,
                                                   last=not claim.mine or url == edges[-1])
                self._read(answer, "/calls", first=first)
            except (_NothingPlaced, _Refused) as exc:
                await self.edges.let_go(session_id, claim)  # this hand-over's record alone: an earlier one's stays
                if isinstance(exc, _Refused) and claim.mine:
                    raise NothingHeld.of(exc) from None
                if isinstance(exc, _Refused):
                    raise
                if not claim.mine:
                    raise self._holding(claim.url, exc.error) from None
                nothing = exc.error
                continue
            except ApiError as exc:
                if not claim.mine and exc.code == "sip_edge_unavailable":
                    raise self._holding(claim.url, exc) from None
                raise
            return claim.url
        assert nothing is not None  # noqa: S101 - there is at least one edge
        raise NothingHeld.of(nothing)  # each edge's own first answer: it took nothing, nor did an earlier try

    def _holding(self, url: str, error: ApiError) -> ApiError:
        """A retry held at the edge an earlier try of its session went to, which did not take it now."""
        minutes = self._hold_seconds / 60
        return ApiError(503, "sip_edge_holding", f"an earlier try of this call (its Idempotency-Key) went to the SIP "
                        f"edge {url}, which did not take this one ({error.message}). That edge may hold the call, so "
                        f"no other edge places it: retry with this Idempotency-Key once it is back (its record lasts "
                        f"up to {minutes:.0f} minutes from that try). A new Idempotency-Key places the call at another "
                        "edge, and rings the callee twice if that edge placed it", retry_after=error.retry_after or 5.0)

    async def _request(self, method: str, path: str) -> Any:
        """A question any edge answers (`GET /trunks`, which places nothing): the first edge's that does."""
        nothing: ApiError | None = None
        edges = list(self.edges.in_turn())
        for url in edges:
            try:
                answer, first = await self._answer(url, method, path, json=None, last=url == edges[-1])
                return self._read(answer, path, first=first)
            except _NothingPlaced as exc:
                nothing = exc.error
        assert nothing is not None  # noqa: S101 - there is at least one edge
        raise nothing

    async def _answer(self, url: str, method: str, path: str, *, last: bool,
                      json: dict[str, Any] | None) -> tuple[HttpResponse, bool]:
        """The edge's answer, and whether it is the first request's own (else a retry's). A call's first try that
        may have reached it (a timeout, a reset, a 5xx other than full) is retried with backoff at this edge
        alone, as it takes a session's call once; so is one refused at the `last` edge to ask (it may be
        restarting). `_NothingPlaced` when the edge provably got nothing
        (or, for a question, whatever went wrong short of the last edge); an `ApiError` when it may hold it."""
        client = self.edges.client(url)
        passes_on = json is None and not last  # a question (`GET /trunks`): the next edge answers it as well
        reached = False  # whether a try may have reached the edge
        try:
            answer = await client.request(method, path, json=json, timeout=REQUEST_SECONDS)
        except HttpError as exc:
            self.edges.failed(url, exc)
            if (never_connected(exc) or passes_on) and not last:
                raise _NothingPlaced(ApiError(503, "sip_edge_unavailable", f"a SIP edge could not be reached "
                                              f"({exc}); try again", retry_after=5.0)) from None
            reached = not never_connected(exc)
        else:
            self.edges.answered(url)
            if answer.status_code not in RETRYABLE_STATUSES or _code(answer) in PLACED_NOTHING:
                return answer, True
            if passes_on:
                raise _NothingPlaced(ApiError(503, "sip_edge_unavailable", f"a SIP edge answered HTTP "
                                              f"{answer.status_code}; try again", retry_after=5.0))
            reached = True
        try:
            return await send(client, method, path, backoff=BACKOFF, timeout=REQUEST_SECONDS, json=json), False
        except Transient as exc:
            retry = exc.retry_after if exc.retry_after is not None else 5.0
            if reached or not exc.nothing_sent:
                # A try may have reached it (this last one, or an earlier retry: `served_before`): it may hold the call.
                raise ApiError(503, "sip_edge_unavailable", f"the SIP edge did not answer the call's request ({exc}); "
                               f"{MAY_HOLD}", retry_after=retry) from None
            raise _NothingPlaced(ApiError(503, "sip_edge_unavailable", f"the SIP edge did not take the request "
                                          f"({exc}); try again", retry_after=retry)) from None

    def _read(self, answer: HttpResponse, path: str, *, first: bool) -> Any:
        """The answer's JSON, or why not: `_NothingPlaced` or `_Refused` only for the `first` request's own
        answer that says so in the edge's words (its error code); else an `ApiError` (the edge may hold it)."""
        data = json_of(answer)
        if path == "/calls" and (answer.status_code == 404 or _code(answer) == INBOUND_ONLY):
            self._trunks_at = -math.inf  # the edge's list changed since it was read: a trunk gone or inbound-only
        if answer.status_code >= 300:
            error = data.get("error") if isinstance(data, dict) else None
            # The edge's words reach the caller's answer and the logs: one printable line, bounded.
            message = shown(error.get("message")) if isinstance(error, dict) else f"HTTP {answer.status_code}"
            said = first and bool(_code(answer))  # the edge's own answer to the first request, not a proxy's
            if answer.status_code == 503 and _code(answer) in PLACED_NOTHING and first:
                raise _NothingPlaced(ApiError(503, "sip_edge_unavailable", f"no SIP edge took the call ({message}); "
                                              "try again", retry_after=retry_after_of(answer.headers) or 5.0))
            if path != "/calls" or (answer.status_code < 500 and said):  # a question places nothing
                status = answer.status_code if answer.status_code in (403, 404, 409, 422) else 502
                code = {403: "call_not_allowed", 409: _conflict_code(answer)}.get(status, "sip_edge_refused")
                raise _Refused(status, code, f"the SIP edge refused the call: {message}")
            raise ApiError(502, "sip_edge_failed", f"the SIP edge answered HTTP {answer.status_code} ({message}), "
                           f"which does not prove it placed nothing (a try may have reached it): {MAY_HOLD}",
                           retry_after=5.0)
        return data

    async def aclose(self) -> None:
        await self.edges.aclose()


class NothingHeld(ApiError):
    """`hand_over`'s proof that no edge holds the session's call: each edge asked (none of them an earlier
    hand-over's) answered its first request that it took nothing, or refused it in its own words. The call's
    retry may then run as a new call (dispatcher/api/call_order.py); any other failure may leave it held."""

    @classmethod
    def of(cls, error: ApiError) -> NothingHeld:
        return cls(error.status, error.code, error.message, retry_after=error.retry_after, extra=error.extra)


class _Refused(ApiError):
    """The edge answered that it will not place the call (a final answer, not one to retry): it holds nothing."""


class _NothingPlaced(Exception):
    """An edge said (or its refused connection proves) that it took nothing: another may be asked."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error



def _conflict_code(answer: HttpResponse) -> str:
    """A 409's code: the edge's (`trunk_inbound_only`, say) when it is one, else `sip_edge_conflict`, never an
    empty or made-up one (a proxy's 409, an older edge's)."""
    code = _code(answer)
    return code if CODE.fullmatch(code) else "sip_edge_conflict"


def _code(answer: HttpResponse) -> str:
    """The code of an edge's error answer (`{"error": {"code", "message"}}`), else ""."""
    data = json_of(answer)
    error = data.get("error") if isinstance(data, dict) else None
    return str(error.get("code")) if isinstance(error, dict) else ""
